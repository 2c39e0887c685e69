"""The packed charm on a real Juju model: the seed's local, swift and ceph scenarios.

keystone + MySQL + nova-cloud-controller + glance (as the seed's commands), then Swift is
added, then Ceph. Each scenario asserts every application active, an image round trip through
the Keystone catalog into the scenario's store, and that nova-cloud-controller received
`glance-api-server` (the image endpoint keystone lists). The tests share one model (module
scope) and build on each other in file order. The HA scenario is test_ha.py. They are
skipped (see conftest.py) when no Juju controller is reachable.
"""

from __future__ import annotations

from pathlib import Path

import jubilant
import pytest

from tests.integration import helpers


@pytest.fixture(scope="module")
def admin_password() -> str:
    return helpers.keystone_admin_password()


@pytest.fixture(scope="module")
def core(juju: jubilant.Juju, charm_path: Path, admin_password: str) -> jubilant.Juju:
    helpers.deploy_core(juju, charm_path, admin_password)
    return juju


def assert_nova_has_glance(juju: jubilant.Juju, endpoint: str) -> None:
    """nova-cloud-controller got `glance-api-server` from every glance unit: the endpoint."""
    sent = helpers.glance_api_servers(juju)
    assert set(sent) == set(juju.status().apps[helpers.APP].units), sent
    assert set(sent.values()) == {endpoint.rstrip("/")}, sent


def test_local_storage(core: jubilant.Juju, admin_password: str) -> None:
    status = helpers.wait_active(core)
    unit = next(iter(status.apps[helpers.APP].units.values()))
    assert unit.workload_status.message == "Unit is ready"
    client = helpers.image_client(core, admin_password)
    assert {store["id"] for store in client.stores()} == {"local"}
    helpers.round_trip(client, "local")
    assert_nova_has_glance(core, client.endpoint)


def test_image_endpoint_registered_in_keystone(core: jubilant.Juju, admin_password: str) -> None:
    client = helpers.image_client(core, admin_password)
    unit = next(iter(core.status().apps[helpers.APP].units.values()))
    addresses = {unit.public_address, unit.address} - {""}
    assert client.endpoint.rstrip("/") in {f"http://{address}:9292" for address in addresses}


def test_swift_storage(core: jubilant.Juju, admin_password: str) -> None:
    helpers.deploy_swift(core)
    client = helpers.image_client(core, admin_password)
    stores = {store["id"]: store for store in client.stores()}
    assert set(stores) == {"local", "swift"}
    assert stores["swift"].get("default") is True
    helpers.round_trip(client, "swift")
    assert_nova_has_glance(core, client.endpoint)


def test_ceph_storage(core: jubilant.Juju, admin_password: str) -> None:
    helpers.deploy_ceph(core)
    client = helpers.image_client(core, admin_password)
    stores = {store["id"]: store for store in client.stores()}
    assert {"local", "ceph"} <= set(stores)
    assert stores["ceph"].get("default") is True
    image = helpers.round_trip(client, "ceph")
    assert image["stores"] == "ceph"
    assert_nova_has_glance(core, client.endpoint)

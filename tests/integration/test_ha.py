"""The seed's HA scenario on a real Juju model: 3 glance units, hacluster, a VIP, Ceph.

`juju deploy -n 3 glance`, `juju deploy hacluster haglance`, `juju config glance vip=...`,
glance related to haglance, MySQL, keystone, nova-cloud-controller and ceph-mon. Shown: every
application active; the VIP (and no unit address) is the image endpoint in keystone's catalog
and the `glance-api-server` nova-cloud-controller received; an image round trip through it
into Ceph; the unit holding the VIP removed, the VIP moves to another unit and the API keeps
answering (the image uploaded before is still listed and downloads intact).

The VIP must be a free address on the model's network: GLANCE_IT_VIP (skipped with that reason
when unset). Skipped, like the whole tier, when no Juju controller is reachable.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import jubilant
import pytest

from tests.functional import realstack
from tests.integration import helpers

NO_VIP = ("HA scenario: set GLANCE_IT_VIP to a free address on the model's network "
          "(hacluster puts it on a glance unit)")


@pytest.fixture(scope="module")
def admin_password() -> str:
    return helpers.keystone_admin_password()


@pytest.fixture(scope="module")
def ha(juju: jubilant.Juju, charm_path: Path, admin_password: str) -> jubilant.Juju:
    if not helpers.VIP:
        pytest.skip(NO_VIP)
    helpers.deploy_core(juju, charm_path, admin_password, units=3,
                        config={"vip": helpers.VIP}, wait=False)
    helpers.deploy_hacluster(juju)
    helpers.deploy_ceph(juju)  # waits for every application to be active
    return juju


def test_vip_is_the_endpoint_everywhere(ha: jubilant.Juju, admin_password: str) -> None:
    status = helpers.wait_active(ha)
    assert len(status.apps[helpers.APP].units) == 3
    client = helpers.image_client(ha, admin_password)
    vip_url = f"http://{helpers.VIP}:9292"
    assert client.endpoint.rstrip("/") == vip_url
    sent = helpers.glance_api_servers(ha)
    assert set(sent) == set(status.apps[helpers.APP].units), sent
    assert set(sent.values()) == {vip_url}, sent
    assert helpers.vip_holder(ha, helpers.VIP) is not None


def test_removing_the_vip_holder_keeps_the_api_answering(
    ha: jubilant.Juju, admin_password: str,
) -> None:
    client = helpers.image_client(ha, admin_password)
    before = helpers.round_trip(client, "ceph")  # deleted again: keep one for after
    assert before["stores"] == "ceph"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kept.raw"
        digest = realstack.make_random_file(source, helpers.IMAGE_MIB, seed=3)
        kept = client.create_image("it-ha-kept")
        try:
            client.upload(kept["id"], source, store="ceph")
            client.wait_for_status(kept["id"], timeout=300)
            holder = helpers.vip_holder(ha, helpers.VIP)
            assert holder is not None
            ha.remove_unit(holder)
            ha.wait(lambda s: holder not in s.apps[helpers.APP].units
                    and len(s.apps[helpers.APP].units) == 2
                    and jubilant.all_active(s) and jubilant.all_agents_idle(s),
                    error=jubilant.any_error, timeout=helpers.DEPLOY_TIMEOUT, delay=5)
            new_holder = helpers.vip_holder(ha, helpers.VIP)
            assert new_holder not in (None, holder)
            after = helpers.image_client(ha, admin_password)
            assert after.endpoint.rstrip("/") == f"http://{helpers.VIP}:9292"
            assert kept["id"] in [image["id"] for image in after.list_images()]
            back = after.download(kept["id"], Path(tmp) / "back.raw")
            assert back.sha256 == digest
            helpers.round_trip(after, "ceph")
        finally:
            client.delete_image(kept["id"], missing_ok=True)

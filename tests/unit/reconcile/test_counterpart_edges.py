"""Issue 13 items 5-7: workers, image-service kept while serving, no endpoints on local-only HA.

Each test fails on the code before these changes (workers uncapped, glance-api-server withdrawn
on any incomplete relation, VIP endpoints sent to keystone while storage blocked).
"""

from __future__ import annotations

import ops
import pytest

from glance_charm.domain import stores
from tests.unit.conftest import GlanceHarness

VIP = "10.5.100.1"


def relate_core(gh: GlanceHarness) -> int:
    """Database, keystone and nova-cloud-controller; return the image-service relation id."""
    image = gh.add_fixture("image-service_nova-cloud-controller")
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    return image


def image_bag(gh: GlanceHarness, rel: int) -> dict[str, str]:
    return dict(gh.harness.get_relation_data(rel, "glance/0"))


def identity_bag(gh: GlanceHarness) -> dict[str, str]:
    relation = gh.harness.model.get_relation("identity-service")
    assert relation is not None
    return dict(gh.harness.get_relation_data(relation.id, "glance/0"))


# ---- item 5: workers ------------------------------------------------------------------------
@pytest.mark.parametrize(("cpus", "multiplier", "workers"), [
    (64, None, 4),    # unset: capped at MAX_DEFAULT_WORKERS (LP#1665270), not 128
    (1, None, 2),     # unset: 2 per core below the cap
    (2, None, 4),
    (64, 1.5, 96),    # set: the operator's multiplier, uncapped
    (64, 0.0, 1),     # 0: a single worker
    (3, 0.1, 1),      # at least one
])
def test_workers_as_the_classic_charm(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
    cpus: int, multiplier: float | None, workers: int,
) -> None:
    """glance-api.conf `workers` equals what the classic charm renders.

    Follows openstack/charm-glance charmhelpers/contrib/openstack/context.py
    `_calculate_workers` (WorkerConfigContext): cpus x worker-multiplier, DEFAULT_MULTIPLIER
    2 when unset, at least 1, and min(count, MAX_DEFAULT_WORKERS=4) when unset.
    """
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    if multiplier is not None:
        gh.harness.update_config({"worker-multiplier": multiplier})
    relate_core(gh)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["DEFAULT"]["workers"] == str(workers)


# ---- item 6: image-service not withdrawn while glance serves ---------------------------------
def test_image_service_kept_while_keystone_bag_is_briefly_incomplete(gh: GlanceHarness) -> None:
    """A keystone unit rewriting its bag must not make nova drop glance.

    nova-cloud-controller reads only `glance-api-server` (openstack/charm-nova-cloud-controller
    hooks/nova_cc_context.py ImageServiceContext; openstack/charm-nova-compute
    hooks/nova_compute_context.py ImageServiceContext); the classic glance charm
    (openstack/charm-glance hooks/glance_relations.py image_service_joined) never withdraws it.
    """
    image = relate_core(gh)
    published = image_bag(gh, image)
    assert published["glance-api-server"] == "http://10.5.0.100:9292"
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    gh.harness.update_relation_data(identity.id, "keystone/0", {"service_password": ""})
    assert isinstance(gh.status(), ops.WaitingStatus)
    assert "glance-api" in gh.services.running
    assert image_bag(gh, image) == published
    gh.harness.update_relation_data(identity.id, "keystone/0", {"service_password": "s3cr3t"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert image_bag(gh, image) == published


def test_image_service_kept_when_a_second_unit_joins(gh: GlanceHarness) -> None:
    """A peer joining a local-disk glance blocks it, but the running unit still serves nova.

    Same contract as above (nova-cloud-controller hooks/nova_cc_context.py reads only
    `glance-api-server`).
    """
    image = relate_core(gh)
    published = image_bag(gh, image)
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    gh.harness.add_relation_unit(peer.id, "glance/1")
    gh.harness.update_relation_data(peer.id, "glance/1", {"private-address": "10.5.0.101"})
    assert isinstance(gh.status(), ops.BlockedStatus)
    assert image_bag(gh, image) == published


def test_image_service_withdrawn_when_glance_really_stops(gh: GlanceHarness) -> None:
    """Withdrawn when glance-api is not running (paused, or stopped and not restartable)."""
    image = relate_core(gh)
    out = gh.harness.run_action("pause")
    assert out.results == {"outcome": "paused"}
    assert image_bag(gh, image) == {"glance-api-ready": "no"}
    gh.event()  # hooks while paused keep it withdrawn
    assert image_bag(gh, image) == {"glance-api-ready": "no"}
    gh.harness.run_action("resume")
    assert image_bag(gh, image)["glance-api-server"] == "http://10.5.0.100:9292"
    # glance-api down and the keystone data incomplete: nothing serves, nova is told so
    gh.services.running.discard("glance-api")
    gh.services.fail_on.add("restart")
    gh.services.fail_on.add("start")
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    gh.harness.update_relation_data(identity.id, "keystone/0", {"service_password": ""})
    assert image_bag(gh, image) == {"glance-api-ready": "no"}


# ---- item 7: no endpoints while storage blocks ----------------------------------------------
def test_no_vip_endpoints_while_ha_has_only_local_storage(gh: GlanceHarness) -> None:
    """Keystone gets no URL while a clustered VIP deployment is Blocked on local disk.

    openstack/charm-keystone hooks/keystone_utils.py add_endpoint/_add_endpoint (via
    add_service_to_keystone) registers whatever public/internal/admin URLs a unit sends, so
    a VIP sent now would be in the catalog answering 503 from units without the image.
    """
    gh.harness.update_config({"vip": VIP})
    relate_core(gh)
    gh.add_fixture("ha_hacluster")  # clustered: yes
    assert gh.status() == ops.BlockedStatus(stores.HA_NEEDS_SHARED_STORE)
    bag = identity_bag(gh)
    assert not {"public_url", "internal_url", "admin_url", "service"} & set(bag), bag
    app_bag = gh.harness.get_relation_data(
        gh.harness.model.get_relation("identity-service").id, "glance")  # type: ignore[union-attr]
    assert "service-endpoints" not in app_bag
    gh.add_fixture("object-store_swift-proxy")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    bag = identity_bag(gh)
    assert bag["public_url"] == bag["internal_url"] == bag["admin_url"] == f"http://{VIP}:9292"


def test_endpoints_withdrawn_when_the_shared_store_goes(gh: GlanceHarness) -> None:
    """Removing the only shared store of a scaled-out glance takes the VIP out of keystone.

    Same contract (openstack/charm-keystone hooks/keystone_utils.py add_endpoint).
    """
    gh.harness.update_config({"vip": VIP})
    relate_core(gh)
    gh.add_fixture("ha_hacluster")
    swift = gh.add_fixture("object-store_swift-proxy")
    assert identity_bag(gh)["public_url"] == f"http://{VIP}:9292"
    gh.harness.remove_relation(swift)
    assert gh.status() == ops.BlockedStatus(stores.HA_NEEDS_SHARED_STORE)
    assert "public_url" not in identity_bag(gh)

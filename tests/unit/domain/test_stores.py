"""Multi-store: precedence, default-store pinning, HA guard, and the pure store helpers."""

from __future__ import annotations

import ops
import pytest

from glance_charm.domain import stores
from glance_charm.domain.ceph_broker import BrokerResponse
from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.exceptions import BlockedError
from glance_charm.workload.rendering import swift_escape
from tests.unit.conftest import GlanceHarness

HA_MESSAGE = "HA requires ceph or swift storage: relate glance to ceph-mon or swift-proxy"


def relate_stores(gh: GlanceHarness, related: str) -> dict[str, int]:
    rels = {}
    if "ceph" in related:
        rels["ceph"] = gh.relate_ceph()
    if "swift" in related:
        rels["swift"] = gh.add_fixture("object-store_swift-proxy")
    return rels


# ---- precedence ---------------------------------------------------------------------------
@pytest.mark.parametrize(("related", "pinned", "backends", "default"), [
    ("", None, "local:file", "local"),
    ("swift", None, "local:file, swift:swift", "swift"),
    ("ceph", None, "local:file, ceph:rbd", "ceph"),
    ("ceph swift", None, "local:file, ceph:rbd, swift:swift", "ceph"),
    ("ceph swift", "swift", "local:file, ceph:rbd, swift:swift", "swift"),
    ("ceph swift", "local", "local:file, ceph:rbd, swift:swift", "local"),
    ("swift", "local", "local:file, swift:swift", "local"),
    ("ceph", "ceph", "local:file, ceph:rbd", "ceph"),
])
def test_precedence_table(gh: GlanceHarness, related: str, pinned: str | None,
                          backends: str, default: str) -> None:
    if pinned:
        gh.harness.update_config({"default-store": pinned})
    gh.relate_core()
    relate_stores(gh, related)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == backends
    assert conf["glance_store"]["default_backend"] == default
    expose = "true" if default == "ceph" else "false"
    assert conf["DEFAULT"]["show_image_direct_url"] == expose


def test_pinning_a_store_that_is_not_ready_blocks_and_keeps_config(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.relate_ceph()
    before = gh.conf_path.read_bytes()
    gh.harness.update_config({"default-store": "swift"})
    assert gh.status() == ops.BlockedStatus(
        "default-store: swift is not related/ready (ready: ceph, local)"
    )
    assert gh.conf_path.read_bytes() == before
    gh.add_fixture("object-store_swift-proxy")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["glance_store"]["default_backend"] == "swift"


def test_pinned_ceph_while_its_broker_is_pending_blocks(gh: GlanceHarness) -> None:
    gh.harness.update_config({"default-store": "ceph"})
    gh.relate_core()
    assert gh.status() == ops.BlockedStatus(
        "default-store: ceph is not related/ready (ready: local)"
    )
    assert not gh.conf_path.exists()
    rel = gh.relate_ceph(answer=False)
    assert gh.status().name == "blocked"
    gh.answer_broker(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_removing_ceph_leaves_swift_default_and_no_ceph_files(gh: GlanceHarness) -> None:
    gh.relate_core()
    rels = relate_stores(gh, "ceph swift")
    restarts = gh.services.count("restart")
    gh.harness.remove_relation(rels["ceph"])
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, swift:swift"
    assert conf["glance_store"]["default_backend"] == "swift"
    assert not conf.has_section("ceph")
    assert not (gh.root / "etc/ceph/ceph.conf").exists()
    assert not (gh.root / "etc/ceph/ceph.client.glance.keyring").exists()
    assert (gh.root / "etc/glance/glance-swift.conf").exists()
    assert gh.services.count("restart") == restarts + 1


def test_swift_keeps_serving_while_ceph_waits(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.add_fixture("object-store_swift-proxy")
    gh.relate_ceph(answer=False)
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    assert gh.conf()["glance_store"]["default_backend"] == "swift"


# ---- a store in use keeps its config while its data is unusable ---------------------------
def garble_ceph_keys(gh: GlanceHarness, rel: int) -> None:
    for unit in ("ceph-mon/0", "ceph-mon/1", "ceph-mon/2"):
        gh.harness.update_relation_data(rel, unit, {"key": "garbage!!"})


def test_ceph_in_use_keeps_the_last_good_config_until_its_data_is_back(
    gh: GlanceHarness,
) -> None:
    gh.relate_core()
    rel = gh.relate_ceph()
    before = gh.conf_path.read_bytes()
    keyring = (gh.root / "etc/ceph/ceph.client.glance.keyring").read_bytes()
    restarts = gh.services.count("restart")
    garble_ceph_keys(gh, rel)
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    gh.harness.update_config({"debug": True})  # waits too: nothing is written meanwhile
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    assert gh.conf_path.read_bytes() == before
    assert (gh.root / "etc/ceph/ceph.client.glance.keyring").read_bytes() == keyring
    assert gh.services.count("restart") == restarts
    gh.harness.update_relation_data(rel, "ceph-mon/1", {"key": keyring.decode().split()[-1]})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["debug"] == "true"
    assert conf["glance_store"]["default_backend"] == "ceph"
    assert gh.services.count("restart") == restarts + 1


def test_removing_an_unusable_ceph_drops_it(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph()
    garble_ceph_keys(gh, rel)
    gh.harness.update_config({"debug": True})
    gh.harness.remove_relation(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file"
    assert conf["DEFAULT"]["debug"] == "true"
    assert not (gh.root / "etc/ceph/ceph.client.glance.keyring").exists()


def test_a_new_store_that_is_not_ready_does_not_hold_back_other_changes(
    gh: GlanceHarness,
) -> None:
    gh.relate_core()
    gh.relate_ceph()
    gh.harness.add_relation("object-store", "swift-proxy")  # no unit yet
    gh.harness.update_config({"debug": True})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    conf = gh.conf()
    assert conf["DEFAULT"]["debug"] == "true"
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, ceph:rbd"


def test_check_stores_kept() -> None:
    local = stores.local_store(GlanceConfig.from_mapping({}))
    issue = stores.StorageIssue(incomplete=True)
    selection = stores.StoreSelection(stores=(local,), issue=issue)
    stores.check_stores_kept(selection, {}, {"ceph": 3})  # not in use yet
    stores.check_stores_kept(selection, {"ceph": 2}, {"ceph": 3})  # another relation
    stores.check_stores_kept(selection, {"ceph": 2}, {})  # relation gone
    with pytest.raises(stores.StorageNotReadyError) as err:
        stores.check_stores_kept(selection, {"ceph": 3}, {"ceph": 3})
    assert err.value.message == "Incomplete relations: storage-backend"


# ---- HA guard -----------------------------------------------------------------------------
def add_peer(gh: GlanceHarness) -> None:
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    gh.harness.add_relation_unit(peer.id, "glance/1")


def add_clustered_vip(gh: GlanceHarness) -> None:
    """Scale-out needs a VIP: set one and let hacluster report clustered."""
    gh.harness.update_config({"vip": "10.5.100.1"})
    gh.add_fixture("ha_hacluster")


def test_scale_out_on_local_disk_is_refused(gh: GlanceHarness) -> None:
    add_peer(gh)
    gh.relate_core()
    assert gh.status() == ops.BlockedStatus(HA_MESSAGE)
    assert not gh.conf_path.exists()
    assert [call for call in gh.services.calls if call[1] == "glance-api"] == []


def test_ha_relation_on_local_disk_is_refused(gh: GlanceHarness) -> None:
    gh.relate_core()
    before = gh.conf_path.read_bytes()
    restarts = gh.services.count("restart")
    gh.harness.add_relation("ha", "hacluster")
    assert gh.status() == ops.BlockedStatus(HA_MESSAGE)
    assert gh.conf_path.read_bytes() == before
    assert gh.services.count("restart") == restarts


@pytest.mark.parametrize("related", ["ceph", "swift"])
def test_scale_out_with_a_shared_store_runs(gh: GlanceHarness, related: str) -> None:
    add_peer(gh)
    add_clustered_vip(gh)
    gh.relate_core()
    relate_stores(gh, related)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["glance_store"]["default_backend"] == related


def test_scale_out_waits_for_a_related_shared_store(gh: GlanceHarness) -> None:
    add_peer(gh)
    add_clustered_vip(gh)
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    assert not gh.conf_path.exists()
    gh.answer_broker(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_removing_the_only_shared_store_under_ha_blocks(gh: GlanceHarness) -> None:
    add_peer(gh)
    gh.relate_core()
    rel = gh.add_fixture("object-store_swift-proxy")
    gh.harness.remove_relation(rel)
    assert gh.status() == ops.BlockedStatus(HA_MESSAGE)
    # The last good config keeps running until a shared store is related again.
    assert gh.conf()["glance_store"]["default_backend"] == "swift"


# ---- pure helpers -------------------------------------------------------------------------
def test_storage_issue_merge_and_error() -> None:
    issue = stores.StorageIssue(incomplete=True).merge(
        stores.StorageIssue(waiting=(stores.BROKER_PENDING,))
    )
    assert issue.merge(None) is issue
    error = issue.error(missing={"identity"})
    assert error.blocked
    assert error.message == (
        "Missing relations: identity; incomplete relations: storage-backend, "
        "Ceph broker request incomplete"
    )
    blocked = stores.StorageIssue(blocked=("Ceph broker request failed: x",)).error()
    assert blocked.blocked
    assert blocked.message == "Ceph broker request failed: x"


def test_pick_default_store_without_any_store() -> None:
    assert stores.pick_default_store(GlanceConfig.from_mapping({}), ()) == "local"
    with pytest.raises(BlockedError):
        stores.pick_default_store(GlanceConfig.model_validate({"default-store": "ceph"}), ())


def test_failure_message() -> None:
    response = BrokerResponse.model_validate({"exit-code": 1, "stderr": " a\t\tb\n"})
    assert stores.failure_message(response) == "a b"


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"),
    ("50%", "50%%"),
    ('"quoted', '""quoted"'),
    (" padded", '" padded"'),
])
def test_swift_escape(value: str, expected: str) -> None:
    assert swift_escape(value) == expected


def test_wanted_pool_names() -> None:
    config = GlanceConfig.model_validate({
        "pool-type": "erasure-coded", "rbd-pool-name": "images",
        "ec-rbd-metadata-pool": "images-meta",
    })
    assert stores.wanted_ceph_pool(config, "glance") == stores.CephPool(
        pool="images-meta", data_pool="images"
    )

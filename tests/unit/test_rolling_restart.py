"""Rolling restarts: with several units, one glance-api restarts at a time."""

from __future__ import annotations

import ops

from relations import peers
from tests.unit.conftest import GlanceHarness

VIP = "10.5.100.1"


def scaled(gh: GlanceHarness, leader: bool = True) -> ops.Relation:
    gh.harness.set_leader(leader)
    gh.harness.update_config({"vip": VIP})
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    gh.harness.add_relation_unit(peer.id, "glance/1")
    gh.harness.update_relation_data(peer.id, "glance/1", {"private-address": "10.5.0.101"})
    gh.add_fixture("ha_hacluster")
    gh.add_fixture("object-store_swift-proxy")
    gh.add_fixture("shared-db_mysql-router")
    if not leader:
        gh.harness.update_relation_data(peer.id, "glance", {
            "db-initialised": '{"database": "shared-db:127.0.0.1/glance", "version": "x"}'})
    gh.add_fixture("identity-service_keystone")
    return peer


def test_leader_takes_the_free_lock_restarts_and_releases(gh: GlanceHarness) -> None:
    peer = scaled(gh)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    restarts = gh.services.count("restart")
    gh.harness.update_config({"debug": True})
    assert gh.services.count("restart") == restarts + 1
    assert gh.workload.health_waits >= 1
    bag = gh.harness.get_relation_data(peer.id, "glance/0")
    assert peers.RESTART_REQUEST_KEY not in bag
    assert bag[peers.RESTART_DONE_KEY]
    assert gh.harness.get_relation_data(peer.id, "glance").get(peers.RESTART_GRANT_KEY) is None
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_unit_waits_while_another_holds_the_lock(gh: GlanceHarness) -> None:
    peer = scaled(gh)
    gh.harness.update_relation_data(peer.id, "glance/1", {peers.RESTART_REQUEST_KEY: "t1"})
    gh.event()  # the leader grants glance/1 (it asked first, the leader has nothing owed)
    assert gh.harness.get_relation_data(peer.id, "glance")[peers.RESTART_GRANT_KEY] == (
        "glance/1 t1")
    restarts = gh.services.count("restart")
    gh.harness.update_config({"debug": True})  # now the leader needs a restart too
    assert gh.services.count("restart") == restarts  # but glance/1 holds the lock
    assert gh.status() == ops.WaitingStatus("Waiting for the rolling restart lock")
    assert gh.conf()["DEFAULT"]["debug"] == "true"  # written, waiting for its turn
    assert "glance-api" in gh.services.running  # and still serving the old config
    gh.harness.update_relation_data(peer.id, "glance/1", {
        peers.RESTART_REQUEST_KEY: "", peers.RESTART_DONE_KEY: "t1"})
    assert gh.services.count("restart") == restarts + 1
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_non_leader_restarts_only_when_granted(gh: GlanceHarness) -> None:
    peer = scaled(gh, leader=False)
    restarts = gh.services.count("restart")
    gh.harness.update_config({"debug": True})
    token = gh.harness.get_relation_data(peer.id, "glance/0")[peers.RESTART_REQUEST_KEY]
    assert gh.services.count("restart") == restarts
    assert gh.status() == ops.WaitingStatus("Waiting for the rolling restart lock")
    gh.harness.update_relation_data(peer.id, "glance", {
        peers.RESTART_GRANT_KEY: f"glance/0 {token}"})
    assert gh.services.count("restart") == restarts + 1
    assert gh.harness.get_relation_data(peer.id, "glance/0")[peers.RESTART_DONE_KEY] == token


def test_departed_holder_frees_the_lock(gh: GlanceHarness) -> None:
    peer = scaled(gh)
    gh.harness.update_relation_data(peer.id, "glance/1", {peers.RESTART_REQUEST_KEY: "t1"})
    gh.event()
    restarts = gh.services.count("restart")
    gh.harness.update_config({"debug": True})
    assert gh.services.count("restart") == restarts
    gh.harness.remove_relation_unit(peer.id, "glance/1")
    assert gh.services.count("restart") == restarts + 1  # alone now: restart directly

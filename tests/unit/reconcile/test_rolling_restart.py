"""Rolling restarts: with several units, one glance-api restarts at a time."""

from __future__ import annotations

import ops
import pytest

from glance_charm.relations import peers
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
    assert gh.charm.haproxy.up_waits[-1:] == ["glance-0"]  # type: ignore[attr-defined]
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


def test_holder_drains_before_restarting_and_ends_the_drain(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/healthcheck fails (every haproxy drains the unit) until glance-api restarted."""
    scaled(gh)
    flag = gh.workload.paths.healthcheck_disable
    seen: list[bool] = []
    restart = gh.services.restart

    def restart_seeing_the_drain(name: str) -> None:
        seen.append(flag.exists())
        restart(name)

    monkeypatch.setattr(gh.services, "restart", restart_seeing_the_drain)
    waits: list[str] = gh.charm.haproxy.drain_waits  # type: ignore[attr-defined]
    before = len(waits)
    gh.harness.update_config({"debug": True})
    assert seen == [True]  # drained while restarting
    assert not flag.exists()  # and back in rotation after
    assert waits[before:] == ["glance-0"]
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_drain_that_haproxy_does_not_confirm_still_restarts(gh: GlanceHarness) -> None:
    scaled(gh)
    gh.charm.haproxy.drained = False  # type: ignore[attr-defined]
    restarts = gh.services.count("restart")
    gh.harness.update_config({"debug": True})
    assert gh.services.count("restart") == restarts + 1
    assert not gh.workload.draining()


def test_single_unit_restarts_without_draining(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    gh.harness.update_config({"debug": True})
    assert gh.charm.haproxy.drain_waits == []  # type: ignore[attr-defined]
    assert not gh.workload.draining()


def test_drain_left_by_a_dead_hook_ends_at_the_next_hook(gh: GlanceHarness) -> None:
    peer = scaled(gh)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    gh.workload.set_draining(True)  # the hook died between drain and restart
    gh.event()  # update-status: not steady while drained
    assert not gh.workload.draining()
    assert gh.harness.get_relation_data(peer.id, "glance/0").get(peers.RESTART_REQUEST_KEY) \
        is None

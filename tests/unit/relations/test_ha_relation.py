"""`ha` relation adapter: publish is idempotent, VIP changes delete old resources, clustered."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ops
import ops.testing
import pytest

from glance_charm.domain.ha_resources import vip_resource_name
from glance_charm.relations import ha, peers
from tests.fixtures import load
from tests.unit.domain.test_ha_resources import Case, charmhelpers_relation_data

REPO_ROOT = Path(__file__).resolve().parents[3]
V4, V4B, V6 = "10.5.100.1", "10.5.100.2", "2001:db8::100"
NICS: dict[str, tuple[str | None, str | None]] = {
    V4: ("eth0", "255.255.0.0"), V4B: ("eth0", "255.255.0.0"), V6: ("eth0", "64"),
}


class TinyCharm(ops.CharmBase):
    """Only the metadata matters: the helpers under test take relations and units."""


@pytest.fixture
def harness() -> Iterator[ops.testing.Harness[TinyCharm]]:
    harness = ops.testing.Harness(TinyCharm, meta=(REPO_ROOT / "metadata.yaml").read_text())
    harness.begin()
    yield harness
    harness.cleanup()


def ha_relation(
    harness: ops.testing.Harness[TinyCharm], remote: dict[str, str] | None = None
) -> ops.Relation:
    rel_id = harness.add_relation("ha", "haglance")
    harness.add_relation_unit(rel_id, "haglance/0")
    if remote:
        harness.update_relation_data(rel_id, "haglance/0", remote)
    relation = harness.model.get_relation("ha", rel_id)
    assert relation is not None
    return relation


def own_bag(harness: ops.testing.Harness[TinyCharm], relation: ops.Relation) -> dict[str, str]:
    return dict(harness.get_relation_data(relation.id, harness.charm.unit.name))


def nic_for(vip: str) -> tuple[str | None, str | None] | None:
    return NICS.get(vip)


def send(
    harness: ops.testing.Harness[TinyCharm], relation: ops.Relation, vip: str
) -> dict[str, str]:
    """One hook: compute from config + own bag, publish."""
    data = ha.desired_data(relation, harness.charm.unit, vip.split(), "eth0", 24, nic_for=nic_for)
    ha.publish(relation, harness.charm.unit, data)
    return data


def reference(monkeypatch: pytest.MonkeyPatch, vip: str, delete: tuple[str, ...] = ()) -> Any:
    return charmhelpers_relation_data(monkeypatch, Case(vip, NICS, delete_resources=delete))


# ---- clustered ----------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("yes", True), ("YES", True), ("true", True), ("True", True), ("on", True), ("1", True),
    (" yes ", True),
    ("no", False), ("false", False), ("0", False), ("", False), ("__null__", False),
    ("maybe", False), (None, False),
])
def test_clustered_values(
    harness: ops.testing.Harness[TinyCharm], value: str | None, expected: bool
) -> None:
    relation = ha_relation(harness, {"clustered": value} if value is not None else {})
    assert ha.is_clustered(relation) is expected


def test_clustered_from_real_hacluster_data(harness: ops.testing.Harness[TinyCharm]) -> None:
    fixture = load("ha_hacluster")
    rel_id = harness.add_relation("ha", fixture["remote_app"])
    for unit, bag in fixture["remote_units_data"].items():
        harness.add_relation_unit(rel_id, unit)
        harness.update_relation_data(rel_id, unit, bag)
    assert ha.is_clustered(harness.model.get_relation("ha"))


def test_not_related_is_not_clustered(harness: ops.testing.Harness[TinyCharm]) -> None:
    assert ha.is_clustered(harness.model.get_relation("ha")) is False
    assert ha.is_clustered(ha_relation(harness)) is False


# ---- publishing ---------------------------------------------------------------------------
def test_first_publish_equals_charmhelpers(
    harness: ops.testing.Harness[TinyCharm], monkeypatch: pytest.MonkeyPatch
) -> None:
    relation = ha_relation(harness)
    data = send(harness, relation, V4)
    assert data == reference(monkeypatch, V4)
    assert own_bag(harness, relation) == data


def test_resend_is_a_noop(
    harness: ops.testing.Harness[TinyCharm], monkeypatch: pytest.MonkeyPatch
) -> None:
    relation = ha_relation(harness)
    data = send(harness, relation, f"{V4} {V6}")
    writes: list[str] = []
    original_set = ops.model.RelationDataContent.__setitem__
    original_del = ops.model.RelationDataContent.__delitem__

    def counting_set(self: ops.model.RelationDataContent, key: str, value: str) -> None:
        writes.append(key)
        original_set(self, key, value)

    def counting_del(self: ops.model.RelationDataContent, key: str) -> None:
        writes.append(key)
        original_del(self, key)

    monkeypatch.setattr(ops.model.RelationDataContent, "__setitem__", counting_set)
    monkeypatch.setattr(ops.model.RelationDataContent, "__delitem__", counting_del)
    assert ha.publish(relation, harness.charm.unit, data) is False
    assert send(harness, relation, f"{V4} {V6}") == data  # recomputed from own bag: same
    assert writes == []


def test_vip_change_deletes_the_old_resource(
    harness: ops.testing.Harness[TinyCharm], monkeypatch: pytest.MonkeyPatch
) -> None:
    relation = ha_relation(harness)
    send(harness, relation, V4)
    data = send(harness, relation, V4B)
    old, new = vip_resource_name("glance", V4), vip_resource_name("glance", V4B)
    resources = json.loads(data["json_resources"])
    assert new in resources and old not in resources
    assert json.loads(data["json_groups"]) == {"grp_glance_vips": new}
    assert json.loads(data["json_delete_resources"]) == [old, "res_glance_eth0_vip"]
    assert data == reference(monkeypatch, V4B, (old,))
    assert own_bag(harness, relation) == data


def test_deletion_stays_listed_until_hacluster_has_seen_it(
    harness: ops.testing.Harness[TinyCharm],
) -> None:
    relation = ha_relation(harness)
    send(harness, relation, V4)
    changed = send(harness, relation, V4B)
    # a second hook before hacluster ran: the old VIP must still be deleted
    again = send(harness, relation, V4B)
    assert again == changed
    assert vip_resource_name("glance", V4) in json.loads(again["json_delete_resources"])


def test_back_to_the_old_vip_undeletes_it(harness: ops.testing.Harness[TinyCharm]) -> None:
    relation = ha_relation(harness)
    send(harness, relation, V4)
    send(harness, relation, V4B)
    data = send(harness, relation, V4)
    deleted = json.loads(data["json_delete_resources"])
    assert vip_resource_name("glance", V4) not in deleted
    assert vip_resource_name("glance", V4B) in deleted
    assert vip_resource_name("glance", V4) in json.loads(data["json_resources"])


def test_ipv4_to_ipv6(
    harness: ops.testing.Harness[TinyCharm], monkeypatch: pytest.MonkeyPatch
) -> None:
    relation = ha_relation(harness)
    send(harness, relation, V4)
    data = send(harness, relation, V6)
    name = vip_resource_name("glance", V6)
    assert json.loads(data["json_resources"])[name] == "ocf:heartbeat:IPv6addr"
    assert data == reference(monkeypatch, V6, (vip_resource_name("glance", V4),))


def test_adding_a_vip_deletes_nothing_new(
    harness: ops.testing.Harness[TinyCharm], monkeypatch: pytest.MonkeyPatch
) -> None:
    relation = ha_relation(harness)
    send(harness, relation, V4)
    data = send(harness, relation, f"{V4} {V6}")
    assert data == reference(monkeypatch, f"{V4} {V6}")


def test_stale_owned_keys_are_removed(harness: ops.testing.Harness[TinyCharm]) -> None:
    relation = ha_relation(harness)
    harness.update_relation_data(relation.id, harness.charm.unit.name, {
        "resources": "{'res_glance_eth0_vip': 'ocf:heartbeat:IPaddr2'}",
        "corosync_bindiface": "eth0",
        "json_ms": "{}",
        "unrelated": "kept",
    })
    data = ha.relation_data([V4], None, None, nic_for=lambda vip: None)  # no NIC, no fallback
    assert "json_groups" not in data and "json_delete_resources" not in data
    assert ha.publish(relation, harness.charm.unit, data) is True
    assert own_bag(harness, relation) == {**data, "unrelated": "kept"}


def test_unreadable_own_bag_counts_as_nothing_sent(
    harness: ops.testing.Harness[TinyCharm],
) -> None:
    relation = ha_relation(harness)
    harness.update_relation_data(relation.id, harness.charm.unit.name, {
        "json_resources": "{not json", "json_delete_resources": '{"a": 1}',
    })
    assert ha.sent_vip_resources(relation, harness.charm.unit) == []
    harness.update_relation_data(relation.id, harness.charm.unit.name, {
        "json_resources": json.dumps({"res_glance_haproxy": "lsb:haproxy", "res_x_vip":
                                      "ocf:heartbeat:IPv6addr"}),
        "json_delete_resources": '["res_old"]',
    })
    assert ha.sent_vip_resources(relation, harness.charm.unit) == ["res_old", "res_x_vip"]


def test_relation_data_without_vip_raises() -> None:
    with pytest.raises(ValueError, match="at least one VIP"):
        ha.relation_data([], "eth0", 24)


# ---- problems -----------------------------------------------------------------------------
def test_missing_vip_problem() -> None:
    assert ha.missing_vip_problem(True, ()) == "Missing required configuration: vip"
    assert ha.missing_vip_problem(True, (V4,)) is None
    assert ha.missing_vip_problem(False, ()) is None


@pytest.mark.parametrize(("n_units", "vips", "dns_ha", "blocked"), [
    (1, (), False, False),
    (2, (), False, True),
    (5, (), False, True),
    (3, (V4,), False, False),
    (3, (), True, False),
])
def test_peer_units_without_vip(
    n_units: int, vips: tuple[str, ...], dns_ha: bool, blocked: bool
) -> None:
    message = ha.peer_units_without_vip_problem(n_units, vips, dns_ha)
    assert (message is not None) is blocked
    if message:
        assert message.startswith(f"{n_units} units need a virtual IP")
        assert "vip" in message and "hacluster" in message


# ---- endpoint host ------------------------------------------------------------------------
def test_endpoint_host_waits_for_clustered() -> None:
    args: dict[str, Any] = {"override": None, "vips": (V4,), "networks": (),
                            "unit_address": "10.5.0.10"}
    assert ha.endpoint_host(clustered=False, **args) is None  # never the unit address first
    assert ha.endpoint_host(clustered=True, **args) == V4
    assert ha.endpoint_host(clustered=False, **{**args, "vips": ()}) == "10.5.0.10"
    assert ha.endpoint_host(
        clustered=False, **{**args, "override": "glance.example.com"}
    ) == "glance.example.com"


def test_select_vip_by_network() -> None:
    vips = ("10.5.100.1", "192.168.1.1", V6)
    assert ha.select_vip(vips, ["192.168.1.0/24"]) == "192.168.1.1"
    assert ha.select_vip(vips, ["garbage", "2001:db8::/64"]) == V6
    assert ha.select_vip(vips, ["172.16.0.0/12"]) == "10.5.100.1"
    assert ha.select_vip(vips) == "10.5.100.1"


# ---- NIC detection ------------------------------------------------------------------------
IP_JSON = [
    {"ifname": "lo", "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
        {"family": "inet6", "local": "::1", "prefixlen": 128}]},
    {"ifname": "eth0", "addr_info": [
        {"family": "inet", "local": "10.5.0.10", "prefixlen": 16},
        {"family": "inet", "local": "192.168.9.10", "prefixlen": 24},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
        {"family": "inet6", "local": "2001:db8::10", "prefixlen": 64}]},
    {"ifname": "broken", "addr_info": [{"family": "inet"}, "junk"]},
]


@pytest.mark.parametrize(("vip", "expected"), [
    (V4, ("eth0", "255.255.0.0")),
    (V6, ("eth0", "64")),
    ("192.168.9.1", None),  # only the first IPv4 address counts, as in charmhelpers
    ("fe80::99", None),  # link-local networks are skipped
    ("172.16.0.1", None),
])
def test_nic_for_address(vip: str, expected: tuple[str, str] | None) -> None:
    assert ha.nic_for_address(vip, IP_JSON) == expected


def test_local_nic_for_on_this_machine() -> None:
    assert ha.local_nic_for("127.0.0.5") == ("lo", "255.0.0.0")


def test_local_nic_for_without_ip_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: object, **__: object) -> None:
        raise FileNotFoundError("ip")

    monkeypatch.setattr(subprocess, "run", missing)
    assert ha.local_nic_for(V4) is None


# ---- peer addresses -----------------------------------------------------------------------
def test_peer_addresses_ignore_garbage_and_include_self(
    harness: ops.testing.Harness[TinyCharm],
) -> None:
    rel_id = harness.add_relation("cluster", "glance")
    bags = {
        "glance/1": {"private-address": "10.5.0.11"},
        "glance/2": {},
        "glance/3": {"private-address": "not an address"},
        "glance/4": {"private-address": "__null__"},
        "glance/5": {"private-address": "[fd00::15]"},
        "glance/10": {"private-address": " juju-x-10.lxd "},
    }
    for unit, bag in bags.items():
        harness.add_relation_unit(rel_id, unit)
        if bag:
            harness.update_relation_data(rel_id, unit, bag)
    relation = harness.model.get_relation("cluster")
    assert peers.peer_addresses(relation, harness.charm.unit, "10.5.0.10") == [
        ("glance/0", "10.5.0.10"),
        ("glance/1", "10.5.0.11"),
        ("glance/5", "fd00::15"),
        ("glance/10", "juju-x-10.lxd"),
    ]
    assert peers.peer_addresses(relation, harness.charm.unit, None)[0] == ("glance/1", "10.5.0.11")


def test_peer_addresses_without_relation(harness: ops.testing.Harness[TinyCharm]) -> None:
    assert peers.peer_addresses(None, harness.charm.unit, "10.5.0.10") == [
        ("glance/0", "10.5.0.10")
    ]
    assert peers.peer_addresses(None, harness.charm.unit, "bad address") == []

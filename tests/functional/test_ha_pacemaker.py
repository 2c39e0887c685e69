"""HA for real: three glance units on three namespaced nodes, a VIP run by pacemaker.

`juju deploy -n 3 glance` + hacluster + `vip`, on this machine: three nodes (network, mount,
pid and uts namespaces, 198.19.115.11-13 on a bridge), each running one unit of the charm
(ops.testing, the real workload: its own glance-api and haproxy through `service`), corosync
and pacemaker (Debian's, started with `corosync -f` / `pacemakerd -f`). The counterpart
hacluster turns the charm's ``json_*`` data into ``crm configure`` as charm-hacluster does
(tests/functional/hacluster_counterpart.py), then reports ``clustered``. The images go to one
real Swift, the units share one MariaDB and one Keystone (host loopback, relayed into each
node's 127.0.0.1). A client namespace on the bridge polls the VIP.

Run (root; installs corosync, pacemaker, crmsh, resource-agents, swift, glance... with apt)::

    flock /tmp/glance-functional.lock python tests/run_pytest.py
        tests/functional/test_ha_pacemaker.py -p no:randomly -x -s    (one line)

The tests share one deployment and run in file order; each reports its numbers (printed, and
in ``$REALSTACK_BASE_DIR/ha-pacemaker-results.json``). Nothing is skipped: a missing package
or a cluster that does not form fails the module.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from glance_charm.domain.ha_resources import vip_resource_name
from glance_charm.relations import ha as ha_relation
from tests.functional import realstack
from tests.functional.driver import round_trip
from tests.functional.hacluster_counterpart import HaclusterError, check_dns_ha_data
from tests.functional.pacemaker_deploy import (
    APP,
    HOSTNAMES,
    NEW_VIP,
    VIP,
    Deployment,
    Poller,
    vip_resource,
)
from tests.functional.pacemaker_lab import SUBNET, Node

with warnings.catch_warnings():  # registered nowhere else: the tier owns no pytest config
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.ha_pacemaker]

UNIT_ADDRESSES = tuple(f"{SUBNET}.{11 + i}" for i in range(3))
REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RESULTS: dict[str, Any] = {}


def note(key: str, value: Any) -> None:
    RESULTS[key] = value
    print(f"\n[ha-pacemaker] {key}: {json.dumps(value, default=str)}")


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll check() every 0.25 s; return the seconds it took, fail the test after timeout."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def ha() -> Iterator[Deployment]:
    workdir = realstack.base_dir() / f"ha-pacemaker-{int(time.time())}"
    deployment = Deployment(workdir)
    started = time.monotonic()
    try:
        with deployment.logs_on_failure():
            deployment.start()
        note("bring_up", {**deployment.timings, "total_s": round(time.monotonic() - started, 1)})
        yield deployment
    finally:
        deployment.teardown()
        RESULTS["module_s"] = round(time.monotonic() - started, 1)
        out = realstack.base_dir() / "ha-pacemaker-results.json"
        out.write_text(json.dumps(RESULTS, indent=2, default=str) + "\n")
        print(f"\n[ha-pacemaker] results in {out}")


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the nodes' log tails after a failed test (the nodes go at teardown)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed and "ha" in request.fixturenames:
        deployment: Deployment = request.getfixturevalue("ha")
        print(f"\n[ha-pacemaker] logs after {request.node.name}:\n{deployment.diagnostics()}")


def holder_of(ha: Deployment, vip: str, node: Node | None = None) -> str:
    assert ha.hacluster is not None
    status = ha.hacluster.status(node or ha.live_node())
    nodes = status.resources.get(vip_resource_name(APP, vip), [])
    assert len(nodes) == 1, f"{vip} started on {nodes}"
    return nodes[0]


def served_by(ha: Deployment, poller: Poller) -> dict[str, int]:
    """Requests of the poller each unit's glance-api logged (by x-openstack-request-id)."""
    assert ha.lab is not None
    wanted = {s.request_id for s in poller.samples if s.ok and s.request_id}
    counts = {}
    for node in ha.lab.nodes:
        log = node.path("/var/log/glance/glance-api.log")
        text = log.read_text(errors="replace") if log.exists() else ""
        counts[f"{APP}/{node.index}"] = len(wanted & set(REQUEST_ID.findall(text)))
    return counts


def image_urls(ha: Deployment) -> list[str]:
    assert ha.keystone is not None
    return [endpoint["url"] for service in ha.keystone.catalog(as_service="glance")
            if service.get("type") == "image" for endpoint in service.get("endpoints", [])]


# ---- 1 ------------------------------------------------------------------------------------------
def test_vip_on_one_node_haproxy_everywhere_and_balanced(ha: Deployment) -> None:
    assert ha.hacluster is not None and ha.lab is not None and ha.juju is not None
    status = ha.hacluster.status()
    assert status.online == set(HOSTNAMES)
    assert list(vip_resource(status)) == [vip_resource_name(APP, VIP)]
    holder = holder_of(ha, VIP)
    assert sorted(status.resources[f"res_{APP}_haproxy"]) == sorted(HOSTNAMES)
    assert not status.failed, status.failed
    assert [n.hostname for n in ha.lab.nodes if VIP in ha.addresses(n)] == [holder]
    assert not ha.hacluster.failed_commands(), ha.hacluster.failed_commands()
    assert all(s == {"status": "active", "message": "Unit is ready"}
               for s in ha.juju.statuses.values()), ha.juju.statuses
    # Keystone: the VIP only, and never a unit address (nothing was published before clustered)
    hosts = {urllib.parse.urlsplit(url).hostname for _, url in ha.juju.published}
    assert hosts == {VIP}, ha.juju.published
    assert image_urls(ha) and {urllib.parse.urlsplit(u).hostname for u in image_urls(ha)} == {
        VIP}
    with ha.poller(max_requests=900, max_seconds=30) as poller:
        wait_until("900 requests through the VIP", lambda: len(poller.samples) >= 900, 30)
    counts = served_by(ha, poller)
    note("balanced", {"holder": holder, **poller.summary(), "served_by": counts})
    assert poller.failures() == []
    assert all(count > 0 for count in counts.values()), counts
    assert sum(counts.values()) == sum(1 for s in poller.samples if s.ok)


# ---- 2 ------------------------------------------------------------------------------------------
def test_failover_when_the_vip_holder_dies(ha: Deployment, tmp_path: Path) -> None:
    assert ha.hacluster is not None and ha.lab is not None and ha.keystone is not None
    holder = ha.node_of(holder_of(ha, VIP))
    survivor = next(n for n in ha.lab.nodes if n is not holder)
    with ha.poller(max_requests=8000, max_seconds=150) as poller:
        wait_until("a baseline through the VIP", lambda: poller.successes_since(0) >= 100, 30)
        killed_at = time.monotonic()
        killed = ha.hacluster.kill_node(holder)
        ha.lab.set_link(holder, up=False)
        moved = ha.hacluster.wait_for(
            "the VIP started on another node",
            lambda s: any(h != holder.hostname
                          for h in s.resources.get(vip_resource_name(APP, VIP), [])),
            node=survivor, timeout=120)
        moved_at = time.monotonic()
        wait_until("a request served after the move",
                   lambda: poller.successes_since(moved_at) > 0, 60)
        served_again = min(s.began for s in poller.samples if s.ok and s.began >= moved_at)
        # the new holder's haproxy takes the dead unit out (fall 3 x inter 2 s)
        new_agent = ha.agent_of(ha.node_of(holder_of(ha, VIP, survivor)))
        dead_server = f"{APP}-{holder.index}"
        wait_until(f"{dead_server} DOWN in the new holder's haproxy", lambda: (
            new_agent.call("haproxy_servers").get(dead_server, "").startswith("DOWN")), 60)
        recovered = max(served_again, time.monotonic())
        wait_until("300 more requests", lambda: poller.successes_since(recovered) >= 300, 60)
    new_holder = holder_of(ha, VIP, survivor)
    gap, gap_from, gap_to = poller.longest_gap()
    late = [s for s in poller.failures() if s.began >= recovered]
    slowest = max(s.ended - s.began for s in poller.samples if s.ok)
    ha.killed = holder
    note("failover", {
        "killed": holder.hostname, "killed_pids": len(killed), "new_holder": new_holder,
        "vip_moved_after_s": round(moved_at - killed_at, 2),
        "seconds_without_service": round(gap, 2),
        "gap_began_after_kill_s": round(gap_from - killed_at, 2),
        "dead_unit_down_in_holder_haproxy_after_s": round(recovered - killed_at, 2),
        **poller.summary(), "slowest_success_s": round(slowest, 2),
        "failed_after_recovery": len(late), "crm_online": sorted(moved.online),
    })
    assert new_holder != holder.hostname
    assert [n.hostname for n in ha.lab.nodes if n is not holder and VIP in ha.addresses(n)] == [
        new_holder]
    assert late == [], late[:5]
    assert gap_to >= killed_at  # the longest gap is the failover, not something before it
    # an upload started after the failover, through the catalog's endpoint (the VIP)
    client = realstack.ImageClient(ha.keystone, timeout=120)
    result = ha.client_call(lambda: round_trip(client, tmp_path, size_mib=32))
    note("upload_after_failover", {k: result[k] for k in (
        "endpoint", "sha256_equal", "upload_mib_s", "download_mib_s", "stores")})
    assert result["endpoint"] == f"http://{VIP}:9292"
    assert result["sha256_equal"] and result["deleted"]


# ---- 3 ------------------------------------------------------------------------------------------
def test_killed_node_rejoins_without_flap_back(ha: Deployment) -> None:
    assert ha.hacluster is not None and ha.lab is not None
    dead = ha.killed or pytest.fail("the failover test did not run")
    holder = holder_of(ha, VIP)
    with ha.poller(max_requests=8000, max_seconds=150) as poller:
        wait_until("a baseline", lambda: poller.successes_since(0) >= 100, 30)
        # it comes back as from a reboot: runtime addresses (the VIP IPaddr2 added) are gone
        stale_vip = VIP in ha.addresses(dead)
        if stale_vip:
            dead.ns.run(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
        ha.lab.set_link(dead, up=True)
        started = time.monotonic()
        ha.hacluster.start_node(dead)
        ha.hacluster.wait_online(ha.lab.nodes, timeout=120)
        online_s = time.monotonic() - started
        ha.wait_resources(VIP)
        before = served_by(ha, poller)[f"{APP}/{dead.index}"]
        wait_until(f"{dead.hostname}'s glance-api serving again",
                   lambda: served_by(ha, poller)[f"{APP}/{dead.index}"] > before + 20, 60)
    after = holder_of(ha, VIP)
    note("rejoin", {"node": dead.hostname, "online_after_s": round(online_s, 1),
                    "vip_holder": after, "stale_vip_removed": stale_vip, **poller.summary(),
                    "served_by": served_by(ha, poller)})
    assert after == holder  # resource-stickiness=100: no flap back
    assert poller.failures() == [], poller.summary()


# ---- 4 ------------------------------------------------------------------------------------------
def test_config_change_rolls_through_with_zero_failed_requests(ha: Deployment) -> None:
    assert ha.lab is not None and ha.juju is not None
    pids = {node.hostname: ha.glance_pid(node) for node in ha.lab.nodes}
    started = time.monotonic()
    with ha.poller(max_requests=20000, max_seconds=300) as poller:
        wait_until("a baseline", lambda: poller.successes_since(0) >= 100, 30)
        ha.juju.everywhere("config", options={"image-size-cap": "2TB"})
    took = time.monotonic() - started
    after = {node.hostname: ha.glance_pid(node) for node in ha.lab.nodes}
    note("rolling_restart", {"seconds": round(took, 1), **poller.summary(),
                             "statuses": ha.juju.statuses, "served_by": served_by(ha, poller)})
    assert all(after[h] and after[h] != pids[h] for h in pids), (pids, after)
    for node in ha.lab.nodes:
        conf = node.path("/etc/glance/glance-api.conf").read_text()
        assert re.search(r"(?m)^image_size_cap = 2199023255552$", conf), node.hostname
    assert all(s["status"] == "active" for s in ha.juju.statuses.values()), ha.juju.statuses
    assert poller.failures() == [], poller.summary()


# ---- 5 ------------------------------------------------------------------------------------------
def test_vip_change_replaces_the_vip_resource(ha: Deployment) -> None:
    assert ha.hacluster is not None and ha.lab is not None and ha.juju is not None
    old, new = vip_resource_name(APP, VIP), vip_resource_name(APP, NEW_VIP)
    ha.juju.everywhere("config", options={"vip": NEW_VIP})
    bag = ha.ha_bag()
    assert old in json.loads(bag["json_delete_resources"])
    ha.hacluster.ha_relation_changed(bag)
    status = ha.wait_resources(NEW_VIP)
    assert list(vip_resource(status)) == [new]
    assert not ha.hacluster.crm_opt_exists(old)
    holders = [n.hostname for n in ha.lab.nodes if NEW_VIP in ha.addresses(n)]
    assert holders == status.resources[new]
    assert not [n.hostname for n in ha.lab.nodes if VIP in ha.addresses(n)]
    ha.register_endpoints()
    assert {urllib.parse.urlsplit(u).hostname for u in image_urls(ha)} == {NEW_VIP}
    serving = ha.wait_serving(NEW_VIP, timeout=60)
    with ha.poller(NEW_VIP, max_requests=300, max_seconds=30) as poller:
        wait_until("300 requests through the new VIP", lambda: len(poller.samples) >= 300, 30)
    note("vip_change", {"deleted": old, "created": new, "holder": holders,
                        "serving_after_s": round(serving, 2), **poller.summary()})
    assert poller.failures() == []


# ---- 6 ------------------------------------------------------------------------------------------
def test_ha_relation_removed_as_juju_and_hacluster_carry_it_out(ha: Deployment) -> None:
    """`juju remove-relation glance haglance`: glance asks for ha, the cluster goes.

    No ``delete_resources`` can travel here: the relation is gone, and charm-hacluster has no
    ha-relation-departed/broken hook. Its units go with the relation and run hooks.stop
    (node maintenance, node delete, purge). Maintenance leaves running resources as they are,
    so the VIP's address stays on the node that held it, managed by nothing: shown and
    reported here, since it is charm-hacluster's behaviour, not something glance can send.
    """
    assert ha.hacluster is not None and ha.lab is not None and ha.juju is not None
    last_holder = holder_of(ha, NEW_VIP)
    for agent in ha.agents:
        ha.juju.run(agent, "remove", endpoint="ha")
    removal = ha.hacluster.remove_units(ha.lab.nodes)
    leftovers = {n.hostname: [a for a in ha.addresses(n) if a in (VIP, NEW_VIP)]
                 for n in ha.lab.nodes}
    note("ha_removed", {"statuses": ha.juju.statuses, "removal": removal,
                        "vip_addresses_left": leftovers})
    assert all(s == {"status": "blocked", "message": "Missing relations: ha"}
               for s in ha.juju.statuses.values()), ha.juju.statuses
    assert all(steps["maintenance"] == 0 and steps["delete"] == 0
               for steps in removal.values()), removal
    assert not ha.hacluster.daemons  # no corosync or pacemaker runs on any node
    # the unmanaged leftover: only the last holder, only the last VIP
    assert leftovers == {n.hostname: [NEW_VIP] if n.hostname == last_holder else []
                         for n in ha.lab.nodes}


# ---- DNS HA ----------------------------------------------------------------------------------
def test_dns_ha_data_is_well_formed_for_hacluster() -> None:
    data = ha_relation.dns_ha_relation_data(
        {"public": ("glance.cloud.test", UNIT_ADDRESSES[0]),
         "internal": ("glance-int.cloud.test", UNIT_ADDRESSES[0])},
        previous=[vip_resource_name(APP, VIP)])
    assert check_dns_ha_data(data) == []
    broken = dict(data, json_resource_params=json.dumps(
        {"res_glance_public_hostname": 'params fqdn="glance.cloud.test"'}))
    assert check_dns_ha_data(broken), "the check finds a resource without ip_address"
    with pytest.raises(HaclusterError, match="MAAS"):
        from tests.functional.hacluster_counterpart import Hacluster

        Hacluster.ha_relation_changed(Hacluster.__new__(Hacluster), data)

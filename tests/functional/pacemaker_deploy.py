"""`juju deploy -n 3 glance` + hacluster on three namespaced nodes, and a client that polls it.

:class:`Deployment` brings up, in this order: the shared services on the host's loopback
(MariaDB, Keystone, a single-replica Swift: the functional tier's realstack/swiftstack), the
:class:`~tests.functional.pacemaker_lab.Lab` (three nodes and a client namespace on a bridge,
loopback relays to those services), corosync + pacemaker on every node, and one unit agent
per node (:mod:`tests.functional.pacemaker_unit`). :class:`Juju` plays the controller between
the unit agents (peer data delivered after every hook until quiet) and the counterpart charms:
mysql-router on ``shared-db`` (one router subordinate per unit, ``db_host`` 127.0.0.1),
keystone on ``identity-service`` (and the catalog registration charm-keystone does), swift-proxy
on ``object-store`` and hacluster on ``ha`` (:class:`~tests.functional.hacluster_counterpart.
Hacluster`). :class:`Poller` sends ``GET /v2/images`` through the VIP from the client
namespace, bounded in requests and time.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.functional import realstack, swiftstack
from tests.functional.hacluster_counterpart import PACKAGES, ClusterStatus, Hacluster
from tests.functional.pacemaker_lab import SUBNET, Lab, Node, enter_netns, sweep_stale
from tests.functional.pacemaker_unit import UnitAgent

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
APP = "glance"
HA_APP = "haglance"
VIP = f"{SUBNET}.100"
NEW_VIP = f"{SUBNET}.101"
FRONTEND_PORT = 9292
HOSTNAMES = ("juju-glance-0", "juju-glance-1", "juju-glance-2")
UNIT_CONFIG = {"vip": VIP, "worker-multiplier": 0.5}  # one glance-api worker per unit


def free_port() -> int:
    """A TCP port free on the host's loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vip_resource(status: ClusterStatus) -> dict[str, list[str]]:
    """IPaddr2 resources and the nodes each is started on."""
    return {rid: nodes for rid, nodes in status.resources.items()
            if status.agents.get(rid) == "ocf:heartbeat:IPaddr2"}


# ---- the controller --------------------------------------------------------------------------
@dataclass
class Juju:
    """Hooks on the unit agents, and the peer data Juju delivers between them."""

    agents: list[UnitAgent]
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)
    published: list[tuple[str, str]] = field(default_factory=list)  # (unit, url) ever seen
    deliveries: int = 0

    def leader(self) -> UnitAgent:
        return self.agents[0]

    def run(self, agent: UnitAgent, op: str, **args: Any) -> dict[str, str]:
        """One hook (or harness call) on a unit, then deliver peer data until quiet."""
        self.statuses[agent.unit] = agent.call(op, **args)
        self.note_published(agent)
        self.settle()
        return self.statuses[agent.unit]

    def note_published(self, agent: UnitAgent) -> None:
        bag = agent.call("bag", endpoint="identity-service", entity=agent.unit)
        for key in ("public_url", "internal_url", "admin_url"):
            if bag.get(key) and (agent.unit, bag[key]) not in self.published:
                self.published.append((agent.unit, bag[key]))

    def _deliver(self, src: UnitAgent, dst: UnitAgent) -> bool:
        moved = False
        entities = ([APP] if src is self.leader() else []) + [src.unit]
        for entity in entities:
            want = src.call("bag", endpoint="cluster", entity=entity)
            have = dst.call("bag", endpoint="cluster", entity=entity)
            diff = {k: v for k, v in want.items() if have.get(k) != v}
            diff.update({k: "" for k in have if k not in want})
            if diff:
                self.deliveries += 1
                self.statuses[dst.unit] = dst.call("update", endpoint="cluster", entity=entity,
                                                   data=diff)
                self.note_published(dst)
                moved = True
        return moved

    def settle(self, rounds: int = 40) -> None:
        for _ in range(rounds):
            moved = False
            for src in self.agents:
                for dst in self.agents:
                    if src is not dst:
                        moved |= self._deliver(src, dst)
            if not moved:
                return
        raise AssertionError(f"peer data still moving after {rounds} rounds")

    def everywhere(self, op: str, **args: Any) -> None:
        """The same change on every unit, non-leaders first (the contended lock case)."""
        for agent in [*self.agents[1:], self.agents[0]]:
            self.run(agent, op, **args)


# ---- the client ------------------------------------------------------------------------------
@dataclass
class Sample:
    began: float
    ended: float
    ok: bool
    what: str  # HTTP status or the error
    request_id: str = ""


@dataclass
class Poller:
    """Clients in a namespace sending GET /v2/images through the VIP, bounded in count and time.

    Each request uses a fresh connection and a 10 s timeout; each client pauses 50 ms between
    requests. The clients stop at `stop()`, after
    `max_requests` in all, or after `max_seconds`, whichever comes first.
    """

    ns_pid: int
    host: str
    token: str = field(repr=False)
    clients: int = 4
    max_requests: int = 4000
    max_seconds: float = 150.0
    timeout: float = 10.0
    pause: float = 0.05  # between one client's requests: ~80 requests/s with 4 clients
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _one(self) -> Sample:
        began = time.monotonic()
        conn = http.client.HTTPConnection(self.host, FRONTEND_PORT, timeout=self.timeout)
        try:
            conn.request("GET", "/v2/images?limit=1", headers={"X-Auth-Token": self.token})
            resp = conn.getresponse()
            resp.read()
            return Sample(began, time.monotonic(), resp.status == 200, str(resp.status),
                          resp.getheader("x-openstack-request-id") or "")
        except (OSError, http.client.HTTPException) as err:
            return Sample(began, time.monotonic(), False, type(err).__name__)
        finally:
            conn.close()

    def _loop(self, deadline: float) -> None:
        enter_netns(self.ns_pid)
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.samples) >= self.max_requests:
                    return
            sample = self._one()
            with self._lock:
                self.samples.append(sample)
            time.sleep(self.pause)

    def __enter__(self) -> Poller:
        deadline = time.monotonic() + self.max_seconds
        self._threads = [threading.Thread(target=self._loop, args=(deadline,), daemon=True)
                         for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def successes_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for s in self.samples if s.ok and s.began >= moment)

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def longest_gap(self) -> tuple[float, float, float]:
        """(seconds, from, to): the longest time in which no request succeeded."""
        ends = sorted(s.ended for s in self.samples if s.ok)
        best = (0.0, 0.0, 0.0)
        for before, after in itertools.pairwise(ends):
            # a success that began before `before` ended does not close the gap
            if after - before > best[0]:
                best = (after - before, before, after)
        return best

    def summary(self) -> dict[str, Any]:
        gap, _, _ = self.longest_gap()
        failed = self.failures()
        kinds: dict[str, int] = {}
        for sample in failed:
            kinds[sample.what] = kinds.get(sample.what, 0) + 1
        span = (max(s.ended for s in self.samples) - min(s.began for s in self.samples)
                if self.samples else 0.0)
        return {"requests": len(self.samples), "failed": len(failed), "failures": kinds,
                "longest_gap_s": round(gap, 2), "seconds": round(span, 1)}


# ---- the deployment --------------------------------------------------------------------------
@dataclass
class Deployment:
    """Everything of one run; `teardown()` stops all of it, whatever state it is in."""

    workdir: Path
    mariadb: realstack.Mariadb | None = None
    keystone: realstack.Keystone | None = None
    swift: swiftstack.SwiftStack | None = None
    lab: Lab | None = None
    hacluster: Hacluster | None = None
    agents: list[UnitAgent] = field(default_factory=list)
    juju: Juju | None = None
    timings: dict[str, float] = field(default_factory=dict)
    clustered_at: float | None = None
    killed: Node | None = None  # the node the failover test took down

    # bring-up ----------------------------------------------------------------------------
    def _timed(self, key: str, func: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = func()
        self.timings[key] = round(time.monotonic() - started, 1)
        return result

    def start(self) -> None:
        if os.geteuid() != 0:
            raise realstack.RealStackError("the pacemaker HA tier needs root")
        self._timed("apt_s", lambda: realstack.install_packages(
            [*swiftstack.SWIFT_PACKAGES, *PACKAGES]))
        stale = sweep_stale()
        if stale:
            logger.warning("killed namespaces left by an earlier run: %s", stale)
        # Free ports: a functional session's shared stack may hold 3306/5000/8080 meanwhile.
        self.mariadb = realstack.Mariadb(port=free_port())
        self._timed("mariadb_s", self.mariadb.start)
        self.keystone = realstack.Keystone(self.mariadb, port=free_port())
        self._timed("keystone_s", self.keystone.start)
        self.swift = swiftstack.SwiftStack(
            self.keystone, proxy_port=free_port(),
            ports={kind: free_port() for kind in ("account", "container", "object")})
        self._timed("swift_s", self.swift.start)
        self.lab = Lab(self.workdir / "nodes")
        self._timed("lab_s", lambda: self.lab.build(HOSTNAMES))  # type: ignore[union-attr]
        ports = (self.mariadb.port, self.keystone.port, self.swift.proxy_port)
        for ns in [self.lab.client, *(node.ns for node in self.lab.nodes)]:
            self.lab.relay(ns, ports)
        self.hacluster = Hacluster(self.lab)
        self._timed("corosync_start_s", lambda: [
            self.hacluster.start_node(node) for node in self.lab.nodes])  # type: ignore
        self._timed("units_begin_s", self._start_units)
        self._timed("cluster_online_s", lambda: self.hacluster.wait_online(  # type: ignore
            self.lab.nodes, timeout=120))  # type: ignore[union-attr]
        self._timed("relations_s", self._relate_all)
        self._timed("hacluster_s", self._cluster)
        self._timed("behind_vip_s", lambda: self.wait_serving(VIP))

    def _start_units(self) -> None:
        assert self.lab is not None
        env = realstack.system_env({"PYTHONPATH": f"{REPO / 'src'}:{REPO}",
                                    "PYTHONDONTWRITEBYTECODE": "1"})
        for node in self.lab.nodes:
            log = node.path("/var/log/glance") / "unit-agent.log"
            process = node.ns.popen(
                [sys.executable, "-m", "tests.functional.pacemaker_unit"], log, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            )
            self.agents.append(UnitAgent(f"{APP}/{node.index}", process, log))  # type: ignore
        self.juju = Juju(self.agents)
        for agent, node in zip(self.agents, self.lab.nodes, strict=True):
            peers = [a.unit for a in self.agents if a is not agent]
            self.juju.statuses[agent.unit] = agent.call(
                "begin", unit=agent.unit, address=node.address, leader=node.index == 0,
                peers=peers, config=UNIT_CONFIG)
        self.juju.settle()

    def _relate_all(self) -> None:
        assert self.juju is not None and self.mariadb is not None
        assert self.keystone is not None and self.swift is not None
        juju = self.juju
        for agent in self.agents:  # mysql-router: a subordinate per unit, on 127.0.0.1
            number = agent.unit.partition("/")[2]
            router = f"{APP}-mysql-router/{number}"
            juju.run(agent, "relate", endpoint="shared-db", app=f"{APP}-mysql-router",
                     units={router: {}})
            request = agent.call("bag", endpoint="shared-db", entity=agent.unit)
            reply = self.mariadb.handle_shared_db_request(request, agent.unit)
            juju.run(agent, "update", endpoint="shared-db", entity=router, data=reply)
        self.keystone.create_service_user("glance")
        identity = self.keystone.identity_relation_data("glance")
        for agent in self.agents:
            juju.run(agent, "relate", endpoint="identity-service", app="keystone",
                     units={"keystone/0": identity})
        for agent in self.agents:
            juju.run(agent, "relate", endpoint="object-store", app="swift-proxy",
                     units={"swift-proxy/0": self.swift.relation_data()})
        for agent in self.agents:
            number = agent.unit.partition("/")[2]
            juju.run(agent, "relate", endpoint="ha", app=HA_APP,
                     units={f"{HA_APP}/{number}": {}})

    def ha_bag(self, agent: UnitAgent | None = None) -> dict[str, str]:
        agent = agent or self.agents[0]
        return dict(agent.call("bag", endpoint="ha", entity=agent.unit))

    def _cluster(self) -> None:
        """The hacluster leader configures the principal's resources; then clustered=yes."""
        assert self.hacluster is not None and self.juju is not None
        self.hacluster.ha_relation_changed(self.ha_bag())
        self.wait_resources(VIP)
        self.clustered_at = time.monotonic()
        for agent in self.agents:
            number = agent.unit.partition("/")[2]
            self.juju.run(agent, "update", endpoint="ha", entity=f"{HA_APP}/{number}",
                          data={"clustered": "yes"})
        self.register_endpoints()

    def wait_resources(self, vip: str, timeout: float = 90.0) -> ClusterStatus:
        """The VIP's IPaddr2 started on one node, the haproxy clone on every online node."""
        assert self.hacluster is not None and self.lab is not None
        from glance_charm.domain.ha_resources import vip_resource_name

        name = vip_resource_name(APP, vip)

        def ready(status: ClusterStatus) -> bool:
            clone = status.resources.get(f"res_{APP}_haproxy", [])
            return (len(status.resources.get(name, [])) == 1
                    and set(clone) >= status.online and len(status.online) >= 2)

        return self.hacluster.wait_for(f"{name} and the haproxy clone started", ready,
                                       node=self.live_node(), timeout=timeout)

    def live_node(self) -> Node:
        assert self.lab is not None and self.hacluster is not None
        return next(node for node in self.lab.nodes if node.hostname in self.hacluster.daemons)

    def register_endpoints(self) -> dict[str, str]:
        """What charm-keystone does with the leader's identity-service data."""
        assert self.keystone is not None
        bag = self.agents[0].call("bag", endpoint="identity-service", entity=self.agents[0].unit)
        self.keystone.register_endpoints(bag["service"], "image", bag["region"],
                                         bag["public_url"], bag["admin_url"],
                                         bag["internal_url"])
        return dict(bag)

    def node_of(self, hostname: str) -> Node:
        assert self.lab is not None
        return next(node for node in self.lab.nodes if node.hostname == hostname)

    def client_call(self, func: Callable[[], Any]) -> Any:
        """Run func in a thread inside the client namespace (its sockets are the client's)."""
        from tests.functional.pacemaker_lab import in_netns

        assert self.lab is not None
        return in_netns(self.lab.client.pid, func)

    def wait_serving(self, vip: str, timeout: float = 120.0) -> float:
        """Until GET /healthcheck through the VIP answers 200 from the client namespace."""
        started = time.monotonic()

        def probe() -> bool:
            conn = http.client.HTTPConnection(vip, FRONTEND_PORT, timeout=3)
            try:
                conn.request("GET", "/healthcheck")
                return conn.getresponse().status == 200
            except (OSError, http.client.HTTPException):
                return False
            finally:
                conn.close()

        while time.monotonic() - started < timeout:
            if self.client_call(probe):
                return time.monotonic() - started
            time.sleep(0.5)
        raise realstack.RealStackError(f"{vip}:{FRONTEND_PORT} did not answer /healthcheck")

    def poller(self, vip: str = VIP, **kwargs: Any) -> Poller:
        assert self.keystone is not None and self.lab is not None
        return Poller(self.lab.client.pid, vip, self.keystone.token(), **kwargs)

    def agent_of(self, node: Node) -> UnitAgent:
        return self.agents[node.index]

    def glance_pid(self, node: Node) -> str:
        return node.ns.run(["cat", "/run/glance/glance-api.pid"], check=False).stdout.strip()

    def addresses(self, node: Node) -> list[str]:
        out = node.ns.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        return [line.split()[3].split("/")[0] for line in out.splitlines()]

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            logger.error("deployment state at failure:\n%s", self.diagnostics())
            raise

    def diagnostics(self) -> str:
        parts = []
        if self.lab is not None:
            for node in self.lab.nodes:
                for rel in ("var/log/glance/unit-agent.log", "var/log/glance/glance-api.log",
                            "var/log/cluster/corosync.out", "var/log/pacemaker/pacemaker.log"):
                    parts.append(realstack.log_tails([node.root / rel], 15))
        return realstack.redact("\n".join(p for p in parts if p))

    # teardown ----------------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop everything started, in reverse; each step runs even if one before failed."""
        steps: list[Callable[[], None]] = [agent.stop for agent in self.agents]
        if self.hacluster is not None:
            steps.append(self.hacluster.stop_all)
        if self.lab is not None:
            steps.append(self.lab.destroy)
        # only what this deployment started: a functional session's shared stack stays up
        steps += [service.stop for service in (self.swift, self.keystone, self.mariadb)
                  if service is not None]
        if not os.environ.get(realstack.KEEP_DATA_ENV):
            steps.append(lambda: shutil.rmtree(self.workdir, ignore_errors=True))
        for step in steps:
            try:
                step()
            except Exception:
                logger.exception("teardown step %r failed", step)

"""Hook latency, hook-tool calls, restarts and scale of the glance charm, run as Juju runs it.

The charm is assembled into a temporary charm directory (``src/``, ``templates/``, the three
yaml files and a charmcraft-style ``dispatch``) from the committed ``HEAD`` (or the work tree
with ``--source worktree``) and executed hook by hook exactly as a Juju unit agent would:
``./dispatch`` with ``JUJU_DISPATCH_PATH``, ``JUJU_UNIT_NAME``, ``JUJU_RELATION_ID``, ... in
a clean environment, and the stand-in hook tools of :mod:`hooktools` first on PATH. The same
directory holds stand-ins for the system tools the workload runs (``service``, ``dpkg-query``,
``apt-get``, ``runuser``, ``glance-manage``, ``haproxy``), so no package or service of this
machine is touched and every restart or apt/dpkg process is counted.

The charm writes its files for real (``/etc/glance/glance-api.conf`` ...). Run as root, the
benchmark re-executes itself in private mount and network namespaces (``unshare --mount
--net``), bind-mounts scratch copies over ``/etc/glance``, ``/etc/haproxy``, ``/var/lib/glance``
and ``/var/lib/charm`` (the machine's own files are never changed) and answers the
``/healthcheck`` the charm polls after a restart on the private loopback (ports 9282, 9292),
so nothing clashes with services or tests running on the machine. ``--no-namespace`` writes
the files for real (and a restart in a multi-unit deployment then waits for a health check
nobody answers).

Measured (issue 7): update-status, config-changed without change, identity-service
relation-changed without change and one that rewrites glance-api.conf (service_password
toggled between runs) against the floor ``python -c "import ops"`` of the same venv, runs
interleaved so machine noise hits all alike; hook-tool calls per hook; restarts over a scripted
deployment; time and calls with 1/10/100 peer units and 1/10/50 image-service consumers; and
the heaviest imports of each hook (``-X importtime``).

Usage: ``sudo .venv/bin/python bench/run_hooks.py [--runs 20] [--smoke] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import http.server
import importlib.util
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hooktools
import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "data" / "relations"
VENV_PYTHON = REPO / ".venv" / "bin" / "python3"
CHARM_FILES = ("src", "templates", "metadata.yaml", "config.yaml", "actions.yaml")
# The dirs the charm writes: scratch copies in every bench (the data plane runs the real
# stack, which needs the machine's own /run and package database).
CHARM_DIRS = ("/etc/glance", "/etc/haproxy", "/var/lib/glance", "/var/lib/charm")
# The hook bench also hides /run (the pidfiles the charm reads; the stand-in `service` keeps
# them) and /var/lib/dpkg (the package database the charm reads; the stand-in apt keeps it).
PRIVATE_DIRS = (*CHARM_DIRS, "/run", "/var/lib/dpkg")
DPKG_STATUS = "/var/lib/dpkg/status"
SEEDED_DIRS = ("/etc/glance", "/etc/haproxy")  # copied from the machine; the others start empty
GLANCE_CONF = Path("/etc/glance/glance-api.conf")
WATCHED_DIRS = ("/etc/glance", "/etc/haproxy")  # config whose change needs a service restart
SERVICE_CONFIG = {"glance-api": "/etc/glance/", "haproxy": "/etc/haproxy/"}
HEALTH_PORTS = (9282, 9292)  # glance-api backend, haproxy frontend
HOOK_TIMEOUT = 300.0
UNIT = "glance/0"
APP = "glance"
MODEL_UUID = "5f0c1e4a-7d1c-4b8e-9a55-3c2b1d0e9f10"
UNIT_ADDRESS = "10.5.0.30"
VIP = "10.5.0.100"
TARGETS = {"update-status": 1.3, "config-changed": 2.0, "relation-changed (rewrite)": 3.0}
NOOP_CALL_TARGET = 6
SCALE_GROWTH_TARGET = 2.0

DISPATCH = (  # charmcraft's dispatch, with this repo's venv python
    "#!/bin/sh\n"
    'JUJU_DISPATCH_PATH="${{JUJU_DISPATCH_PATH:-$0}}" PYTHONPATH=lib:venv:src '
    "exec {python} ./src/charm.py\n"
)


# ---- charm directory ---------------------------------------------------------------------------
def snapshot(dest: Path, source: str, paths: tuple[str, ...] = CHARM_FILES) -> str:
    """Copy paths of the repo into dest from git HEAD or the work tree; say which it was.

    HEAD is the default everywhere: other people edit the work tree while a benchmark runs.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if source == "head":
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD",
                                  *paths], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        return f"git HEAD {commit}"
    for name in paths:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return "work tree (uncommitted changes included)"


def charm_pidfiles(charm_dir: Path) -> dict[str, str]:
    """The pidfiles the measured charm reads (its distro.PIDFILES): the stand-in keeps each.

    Read from that charm's own module (standard library only), so a service the charm
    watches is kept by the stand-in `service` too: one missing here looks stopped to the
    charm, and every steady hook then reconciles and starts it again.
    """
    path = charm_dir / "src" / "glance_charm" / "domain" / "distro.py"
    spec = importlib.util.spec_from_file_location("_bench_charm_distro", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return dict(module.PIDFILES)


def build_charm_dir(dest: Path, source: str) -> str:
    """Assemble the charm with a charmcraft-style dispatch into dest; return its source."""
    label = snapshot(dest, source)
    dispatch = dest / "dispatch"
    dispatch.write_text(DISPATCH.format(python=VENV_PYTHON))
    dispatch.chmod(0o755)
    (dest / "src" / "charm.py").chmod(0o755)
    return label


# ---- private mount namespace ---------------------------------------------------------------
def reexec_in_namespace(script: str, network: bool = False) -> None:
    """Re-run `script` with this argv in a private mount (and network) namespace; root only.

    Returns when running inside. With `network`, loopback is private too (brought up here):
    ports the charm's stand-in services "listen" on cannot clash with anyone else's.
    """
    if os.environ.get("BENCH_IN_NAMESPACE") == "1":
        if network:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            # glance-api listens (and the charm polls /healthcheck) on the cluster
            # binding's address: give the private loopback the unit's address too.
            subprocess.run(["ip", "addr", "add", f"{UNIT_ADDRESS}/32", "dev", "lo"],
                           check=True)
        return
    env = {**os.environ, "BENCH_IN_NAMESPACE": "1"}
    cmd = ["unshare", "--mount", *(["--net"] if network else []), "--propagation", "private",
           "--", sys.executable, os.path.abspath(script), *sys.argv[1:]]
    os.execvpe("unshare", cmd, env)  # noqa: S606 - fixed argv, no shell


def save_pristine(root: Path) -> Path:
    """Copy the machine's seeded dirs aside once, before anything is mounted over them."""
    pristine = root / "pristine"
    for path in SEEDED_DIRS:
        if os.path.isdir(path):
            target = pristine / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-a", path, str(target)], check=True)
    return pristine


class Sandbox:
    """Scratch copies of the dirs the charm writes, bind-mounted over them while active.

    Each deployment under test has its own sandbox, so deployments can be measured
    interleaved (activation happens between hooks, outside the timed region).
    """

    active: Sandbox | None = None

    def __init__(self, root: Path, pristine: Path,
                 private: tuple[str, ...] = PRIVATE_DIRS) -> None:
        self.root = root
        self.pristine = pristine
        self.paths = [path for path in private if os.path.isdir(path)]

    def activate(self) -> None:
        """Mount this sandbox's dirs (replacing the previously active sandbox's)."""
        if Sandbox.active is self:
            return
        if Sandbox.active is not None:
            # only what that sandbox mounted: a dir created on the machine since (the
            # functional tier makes /var/lib/charm) is in self.paths but not mounted there
            for path in Sandbox.active.paths:
                subprocess.run(["umount", path], check=True)
        for path in self.paths:
            live = self.root / path.lstrip("/")
            if not live.exists():  # same owner and mode as the machine's directory
                original = os.stat(path)
                live.mkdir(parents=True)
                os.chown(live, original.st_uid, original.st_gid)
                live.chmod(original.st_mode & 0o7777)
            subprocess.run(["mount", "--bind", str(live), path], check=True)
        Sandbox.active = self

    def reset(self) -> None:
        """Empty the dirs and re-seed /etc/glance and /etc/haproxy from the pristine copy."""
        self.activate()
        for path in self.paths:
            for child in Path(path).iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            seed = self.pristine / path.lstrip("/")
            if seed.is_dir():
                subprocess.run(["cp", "-a", f"{seed}/.", path], check=True)


class _Healthy(http.server.BaseHTTPRequestHandler):
    """Answers 200 to everything: the stand-in for glance-api's and haproxy's /healthcheck."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def start_health_stubs(ports: tuple[int, ...] = HEALTH_PORTS) -> None:
    """Serve /healthcheck on the private loopback (the charm polls it after a restart)."""
    host = "0.0.0.0" if os.environ.get("BENCH_IN_NAMESPACE") == "1" else "127.0.0.1"  # noqa: S104
    for port in ports:
        server = http.server.ThreadingHTTPServer((host, port), _Healthy)
        threading.Thread(target=server.serve_forever, daemon=True).start()


# ---- relation state ---------------------------------------------------------------------------
def load_fixture(name: str) -> dict[str, Any]:
    """A relation fixture from tests/data/relations."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def default_config() -> dict[str, Any]:
    """What config-get returns with no user config: options that have a default."""
    options = yaml.safe_load((REPO / "config.yaml").read_text())["options"]
    return {name: opt["default"] for name, opt in options.items()
            if opt.get("default") is not None}


def network(address: str) -> dict[str, Any]:
    """network-get output for one address."""
    return {"bind-addresses": [{"mac-address": "00:16:3e:00:00:30", "interface-name": "eth0",
                                "addresses": [{"hostname": "", "value": address,
                                               "cidr": "10.5.0.0/16"}]}],
            "egress-subnets": [f"{address}/32"], "ingress-addresses": [address]}


def address(index: int, base: int = 1) -> str:
    """A distinct 10.5.x.y address for remote unit number `index`."""
    return f"10.5.{base + index // 250}.{index % 250 + 1}"


def unit_bag(addr: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The keys Juju puts in every unit bag, plus extra."""
    return {"private-address": addr, "ingress-address": addr, "egress-subnets": f"{addr}/32",
            **(extra or {})}


@dataclass
class Deployment:
    """Shape of the model around glance/0."""

    profile: str = "single"  # single: one unit, local store; ha: peers + swift + hacluster + vip
    peers: int = 0
    consumers: int = 1
    consumer_mode: str = "relations"  # one relation per consumer app, or N units of one app


def empty_state(config: dict[str, Any], pidfiles: dict[str, str]) -> dict[str, Any]:
    """A freshly deployed unit: no relations, nothing installed; `pidfiles` the charm's."""
    return {
        "model": {"name": "bench", "uuid": MODEL_UUID},
        "unit": UNIT, "leader": True, "config": config, "relations": {},
        "networks": {"default": network(UNIT_ADDRESS)},
        "status": {"unit": {"status": "unknown", "message": ""},
                   "app": {"status": "unknown", "message": ""}},
        "packages": {}, "services": {},
        # Files the charm reads instead of running dpkg-query / `service status`; the
        # stand-ins keep them (only inside the benchmark's private mount namespace).
        "pidfiles": pidfiles if os.environ.get("BENCH_IN_NAMESPACE") == "1" else {},
        "dpkg_status": DPKG_STATUS if os.environ.get("BENCH_IN_NAMESPACE") == "1" else "",
        "service_pid": os.getpid(),
    }


def relation_plan(deployment: Deployment) -> list[dict[str, Any]]:
    """Every relation of the deployment: endpoint, remote app and remote unit bags."""
    def from_fixture(name: str) -> dict[str, Any]:
        fixture = load_fixture(name)
        return {"endpoint": fixture["endpoint"], "remote_app": fixture["remote_app"],
                "units": dict(fixture["remote_units_data"]),
                "app_data": dict(fixture["remote_app_data"])}

    peers = {f"{APP}/{i + 1}": unit_bag(address(i, 1)) for i in range(deployment.peers)}
    plan = [{"endpoint": "cluster", "remote_app": APP, "units": peers, "app_data": {}},
            from_fixture("shared-db_mysql-router"), from_fixture("identity-service_keystone")]
    consumer = load_fixture("image-service_nova-cloud-controller")
    if deployment.consumer_mode == "units":
        units = {f"{consumer['remote_app']}/{i}": unit_bag(address(i, 100))
                 for i in range(deployment.consumers)}
        plan.append({"endpoint": "image-service", "remote_app": consumer["remote_app"],
                     "units": units, "app_data": {}})
    else:
        for i in range(deployment.consumers):
            app = consumer["remote_app"] if i == 0 else f"consumer-{i}"
            plan.append({"endpoint": "image-service", "remote_app": app,
                         "units": {f"{app}/0": unit_bag(address(i, 100))}, "app_data": {}})
    if deployment.profile == "ha":
        plan.append(from_fixture("object-store_swift-proxy"))
        plan.append(from_fixture("ha_hacluster"))
    return plan


def deployment_config(deployment: Deployment) -> dict[str, Any]:
    """Config of the deployment: defaults, plus a VIP for HA."""
    config = default_config()
    if deployment.profile == "ha":
        config["vip"] = VIP
    return config


# ---- running hooks ---------------------------------------------------------------------------
@dataclass
class Clock:
    """Wall time and CPU time (user+sys of the child and everything it waited for)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextlib.contextmanager
def timed() -> Iterator[Clock]:
    """Measure one child process run: wall clock and its CPU time from RUSAGE_CHILDREN."""
    clock = Clock()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    yield clock
    clock.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@dataclass
class HookRun:
    """One hook execution: wall time, exit code, the tool calls it made, what it changed."""

    hook: str
    seconds: float
    cpu_seconds: float
    rc: int
    calls: list[dict[str, Any]]
    changed_files: list[str]
    status: str
    stderr: str = ""

    @property
    def conf_rewritten(self) -> bool:
        """Whether glance-api.conf was (re)written."""
        return str(GLANCE_CONF) in self.changed_files

    @property
    def juju_calls(self) -> list[dict[str, Any]]:
        """Hook-tool invocations (round-trips to the Juju agent)."""
        return [c for c in self.calls if c.get("tool") in hooktools.JUJU_TOOLS]

    @property
    def restarts(self) -> int:
        """Service restarts, starts and reloads (every one interrupts or risks the service)."""
        return sum(len(actions) for actions in self.service_actions.values())

    @property
    def service_actions(self) -> dict[str, list[str]]:
        """Map each service to its restart/start/reload/stop calls in order (status left out)."""
        out: dict[str, list[str]] = {}
        for call in self.calls:
            action = _service_action(call)
            if action in ("restart", "start", "reload", "stop", "try-restart", "force-reload"):
                out.setdefault(_service_name(call), []).append(str(action))
        return out

    @property
    def workload_procs(self) -> list[str]:
        """System-tool processes the hook started (`service glance-api status`, dpkg-query...)."""
        out = []
        for call in self.calls:
            if call.get("tool") in hooktools.WORKLOAD_TOOLS:
                words = [a for a in call.get("args", []) if not a.startswith("-")]
                action = _service_action(call)
                out.append(f"{call['tool']} {_service_name(call)} {action}" if action else
                           f"{call['tool']} {' '.join(words[:1])}".strip())
        return out

    @property
    def apt_dpkg(self) -> list[str]:
        """apt/dpkg processes the hook started."""
        return [c["tool"] for c in self.calls if c.get("tool") in hooktools.APT_TOOLS]


def _service_action(call: dict[str, Any]) -> str | None:
    words = [a for a in call.get("args", []) if not a.startswith("-")]
    if call.get("tool") == "service" and len(words) >= 2:
        return str(words[1])
    if call.get("tool") == "systemctl" and words:
        return str(words[0])
    return None


def _service_name(call: dict[str, Any]) -> str:
    words = [a for a in call.get("args", []) if not a.startswith("-")]
    if call.get("tool") == "service":
        return str(words[0])
    return str(words[1]).removesuffix(".service") if len(words) > 1 else "?"


def files_fingerprint() -> dict[str, tuple[int, int, str]]:
    """Inode, mtime and digest of every file under the config dirs (atomic writes change inode)."""
    out = {}
    for top in WATCHED_DIRS:
        for path in sorted(Path(top).rglob("*")) if Path(top).is_dir() else []:
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path)] = (stat.st_ino, stat.st_mtime_ns, digest)
    return out


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Paths written, created or removed between two fingerprints."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


class Bench:
    """A charm directory, the stand-in tools and the model state they answer from."""

    def __init__(self, work: Path, source: str, tools: str, sandbox: Sandbox | None) -> None:
        self.work = work
        self.sandbox = sandbox
        self.charm_dir = work / "charm"
        self.source_label = build_charm_dir(self.charm_dir, source)
        self.pidfiles = charm_pidfiles(self.charm_dir)
        self.bin_dir = work / "bin"
        self.state_path = work / "state.json"
        self.log_path = work / "tools.log"
        self.tools = tools
        self.state_path.write_text(json.dumps(empty_state({}, self.pidfiles)))
        self.server: hooktools.ToolServer | None = None
        if tools == "daemon":
            self.server = hooktools.ToolServer(str(self.state_path), str(self.log_path)).start()
        hooktools.install_tools(str(self.bin_dir), tools,
                                self.server.port if self.server else None)
        self._log_offset = 0
        self._context = 0
        self.deployment = Deployment()
        self.relation_ids: dict[str, list[str]] = {}
        self._next_relation_id = -1
        self.extra_env: dict[str, str] = {}

    def close(self) -> None:
        """Stop the tool server."""
        if self.server is not None:
            self.server.stop()

    # -- state ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Change the model between hooks (as Juju would) and persist it for the tools."""
        if self.server is not None:
            with self.server.lock:
                yield self.server.state
            self.server.save()
            return
        state = json.loads(self.state_path.read_text())
        yield state
        self.state_path.write_text(json.dumps(state, indent=1, sort_keys=True))

    def snapshot(self) -> dict[str, Any]:
        """A copy of the current model state."""
        with self.edit() as state:
            return copy.deepcopy(state)

    def reset(self, deployment: Deployment) -> None:
        """A fresh unit: empty state, no unit-state db, scratch dirs reset."""
        self.deployment = deployment
        self.relation_ids = {}
        self._next_relation_id = -1
        (self.charm_dir / ".unit-state.db").unlink(missing_ok=True)
        if self.sandbox is not None:
            self.sandbox.reset()
        with self.edit() as state:
            state.clear()
            state.update(empty_state(deployment_config(deployment), self.pidfiles))
            hooktools.write_dpkg_status(state)

    def add_relation(self, spec: dict[str, Any], with_units: bool) -> str:
        """Create a relation (optionally with every remote unit already joined)."""
        with self.edit() as state:
            self._next_relation_id += 1
            rel_id = str(self._next_relation_id)
            data: dict[str, dict[str, str]] = {UNIT: {}}
            data.setdefault(spec["remote_app"], dict(spec["app_data"]))
            units: list[str] = []
            if with_units:
                units = list(spec["units"])
                for unit, bag in spec["units"].items():
                    data[unit] = dict(bag)
            state["relations"][rel_id] = {"endpoint": spec["endpoint"],
                                          "remote_app": spec["remote_app"],
                                          "units": units, "data": data}
        self.relation_ids.setdefault(spec["endpoint"], []).append(rel_id)
        return rel_id

    def join(self, rel_id: str, unit: str, bag: dict[str, str]) -> None:
        """A remote unit joins (its settings already there, as Juju shows them)."""
        with self.edit() as state:
            relation = state["relations"][rel_id]
            relation["units"].append(unit)
            relation["data"][unit] = dict(bag)

    def depart(self, rel_id: str, unit: str) -> None:
        """A remote unit leaves (gone from relation-list during relation-departed)."""
        with self.edit() as state:
            relation = state["relations"][rel_id]
            relation["units"].remove(unit)
            relation["data"].pop(unit, None)

    def mark_broken(self, rel_id: str) -> None:
        """The relation is going away (relation-broken runs next)."""
        with self.edit() as state:
            state["relations"][rel_id]["broken"] = True

    def drop(self, rel_id: str) -> None:
        """The relation is gone (after relation-broken)."""
        with self.edit() as state:
            del state["relations"][rel_id]
        for ids in self.relation_ids.values():
            if rel_id in ids:
                ids.remove(rel_id)

    def relation(self, rel_id: str) -> dict[str, Any]:
        """The relation's endpoint/remote app/units."""
        with self.edit() as state:
            return copy.deepcopy(state["relations"][rel_id])

    # -- hooks ----------------------------------------------------------------------------
    def env(self, hook: str, rel_id: str | None = None, remote_unit: str | None = None,
            departing: str | None = None) -> dict[str, str]:
        """The environment a Juju unit agent gives a hook."""
        self._context += 1
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8",
            "JUJU_CHARM_DIR": str(self.charm_dir), "CHARM_DIR": str(self.charm_dir),
            "JUJU_UNIT_NAME": UNIT, "JUJU_MODEL_NAME": "bench", "JUJU_MODEL_UUID": MODEL_UUID,
            "JUJU_VERSION": "3.6.0", "JUJU_DISPATCH_PATH": f"hooks/{hook}",
            "JUJU_HOOK_NAME": hook, "JUJU_CONTEXT_ID": f"{UNIT}-{hook}-{self._context}",
            "JUJU_MACHINE_ID": "0", "JUJU_AVAILABILITY_ZONE": "",
            "JUJU_AGENT_SOCKET_ADDRESS": "@/var/lib/juju/agents/unit-glance-0/agent.socket",
            "JUJU_AGENT_SOCKET_NETWORK": "unix", "JUJU_API_ADDRESSES": "10.5.0.1:17070",
            "BENCH_STATE": str(self.state_path), "BENCH_TOOL_LOG": str(self.log_path),
        }
        if rel_id is not None:
            relation = self.relation(rel_id)
            env.update(JUJU_RELATION=relation["endpoint"],
                       JUJU_RELATION_ID=f"{relation['endpoint']}:{rel_id}",
                       JUJU_REMOTE_APP=relation["remote_app"])
            if remote_unit:
                env["JUJU_REMOTE_UNIT"] = remote_unit
            if departing:
                env["JUJU_DEPARTING_UNIT"] = departing
        return env

    def run(self, hook: str, rel_id: str | None = None, remote_unit: str | None = None,
            departing: str | None = None, extra_env: dict[str, str] | None = None) -> HookRun:
        """Run ./dispatch for one hook; return time, exit code, tool calls, file changes."""
        env = {**self.env(hook, rel_id, remote_unit, departing), **self.extra_env,
               **(extra_env or {})}
        if self.sandbox is not None:
            self.sandbox.activate()
        _, self._log_offset = hooktools.read_log(str(self.log_path), self._log_offset)
        before = files_fingerprint()
        with timed() as clock:
            try:
                proc = subprocess.run(["./dispatch"], cwd=self.charm_dir, env=env,
                                      capture_output=True, text=True, check=False,
                                      timeout=HOOK_TIMEOUT)
            except subprocess.TimeoutExpired as err:
                proc = subprocess.CompletedProcess(err.cmd, -9, "", f"timeout: {err}")
        calls, self._log_offset = hooktools.read_log(str(self.log_path), self._log_offset)
        with self.edit() as state:
            unit_status = state["status"]["unit"]
            status = f"{unit_status['status']}: {unit_status['message']}"
        return HookRun(hook, clock.wall, clock.cpu, proc.returncode, calls,
                       changed(before, files_fingerprint()), status, proc.stderr)

    def run_floor(self, code: str = "import ops") -> Clock:
        """`python -c CODE` in the same venv, environment and directory."""
        env = self.env("floor")
        with timed() as clock:
            subprocess.run([str(VENV_PYTHON), "-c", code], cwd=self.charm_dir, env=env,
                           capture_output=True, check=True)
        return clock

    def relation_hooks(self, rel_id: str, kinds: tuple[str, ...] = ("changed",),
                       unit: str | None = None) -> list[HookRun]:
        """Run `<endpoint>-relation-<kind>` hooks for one remote unit (first one by default)."""
        relation = self.relation(rel_id)
        unit = unit or (relation["units"][0] if relation["units"] else None)
        return [self.run(f"{relation['endpoint']}-relation-{kind}", rel_id,
                         None if kind in ("created", "broken") else unit) for kind in kinds]

    def deploy(self, deployment: Deployment, per_unit: bool) -> list[HookRun]:
        """Bring a fresh unit to the steady related state; return the hooks run.

        per_unit: run joined+changed for every remote unit as Juju does; otherwise the
        relations appear with their units and one relation-changed runs (fast for scale).
        """
        self.reset(deployment)
        runs = [self.run("install")]
        runs += [self.run("leader-elected"), self.run("config-changed"), self.run("start")]
        for spec in relation_plan(deployment):
            rel_id = self.add_relation(spec, with_units=not per_unit)
            runs.append(self.relation_hooks(rel_id, ("created",))[0])
            if per_unit:
                for unit, bag in spec["units"].items():
                    self.join(rel_id, unit, bag)
                    runs += self.relation_hooks(rel_id, ("joined", "changed"), unit)
            elif spec["units"]:
                runs += self.relation_hooks(rel_id, ("changed",))
        for _ in range(3):  # settle: until a hook changes nothing
            run = self.run("update-status")
            runs.append(run)
            if not any(c["tool"] == "relation-set" for c in run.calls) and not run.changed_files:
                break
        return runs


# ---- statistics and formatting ----------------------------------------------------------------
def summary(samples: list[float]) -> dict[str, float]:
    """min/median/max in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    return {"min_ms": ms[0], "median_ms": statistics.median(ms), "max_ms": ms[-1], "n": len(ms)}


def call_names(run: HookRun) -> list[str]:
    """Compact `tool args` strings of a hook's Juju tool calls."""
    out = []
    for call in run.juju_calls:
        args = [a for a in call["args"] if a not in ("--format=json", "--")]
        if call["tool"] == "juju-log":
            args = args[:2] + ([args[2][:70]] if len(args) > 2 else [])
        out.append(" ".join([call["tool"], *args]))
    return out


def tool_histogram(run: HookRun) -> str:
    """`relation-getx5, juju-logx4, ...`."""
    counts = Counter(c["tool"] for c in run.juju_calls)
    return ", ".join(f"{name}x{n}" for name, n in counts.most_common())


class Samples:
    """Wall and CPU samples of one named run kind, plus the last HookRun."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.calls: set[int] = set()
        self.last: HookRun | None = None

    def add(self, wall: float, cpu: float, run: HookRun | None = None) -> None:
        """Record one run."""
        self.wall.append(wall)
        self.cpu.append(cpu)
        if run is not None:
            self.calls.add(len(run.juju_calls))
            self.last = run

    def stats(self) -> dict[str, Any]:
        """Wall min/median/max (ms) and CPU min/median (ms)."""
        cpu = summary(self.cpu)
        return {**summary(self.wall), "cpu_min_ms": cpu["min_ms"],
                "cpu_median_ms": cpu["median_ms"]}


# ---- the measurements -------------------------------------------------------------------------
def identity_rel(bench: Bench) -> tuple[str, str]:
    """The identity-service relation id and its keystone unit."""
    rel_id = bench.relation_ids["identity-service"][0]
    return rel_id, bench.relation(rel_id)["units"][0]


def toggle_password(bench: Bench) -> None:
    """Give keystone's bag a different service_password (forces a glance-api.conf rewrite)."""
    rel_id, unit = identity_rel(bench)
    with bench.edit() as state:
        bag = state["relations"][rel_id]["data"][unit]
        flip = "1" if bag["service_password"].startswith("bench-password-0") else "0"
        bag["service_password"] = f"bench-password-{flip}-" + "x" * 40


def latency_hooks(bench: Bench) -> dict[str, Callable[[int], HookRun]]:
    """The measured hooks, by name; each takes the run index."""
    rel_id, unit = identity_rel(bench)

    def rewrite(i: int) -> HookRun:
        toggle_password(bench)
        return bench.run("identity-service-relation-changed", rel_id, unit)

    return {
        "update-status": lambda i: bench.run("update-status"),
        "config-changed": lambda i: bench.run("config-changed"),
        "relation-changed (no change)": lambda i: bench.run(
            "identity-service-relation-changed", rel_id, unit),
        "relation-changed (rewrite)": rewrite,
    }


def measure_latency(bench: Bench, runs: int, warmup: int) -> dict[str, Any]:
    """Interleave floor and hooks; return timings, calls and checks per hook."""
    hooks = latency_hooks(bench)
    floors = {"floor: import ops": "import ops", "floor: python -c pass": "pass"}
    samples = {name: Samples() for name in [*floors, *hooks]}
    problems: list[str] = []
    for i in range(warmup + runs):
        measured = i >= warmup
        for name, code in floors.items():
            clock = bench.run_floor(code)
            if measured:
                samples[name].add(clock.wall, clock.cpu)
        for name, hook in hooks.items():
            run = hook(i)
            if not measured:
                continue
            samples[name].add(run.seconds, run.cpu_seconds, run)
            if run.rc != 0:
                problems.append(f"{name} exited {run.rc}: {run.stderr[-300:]}")
            if (name == "relation-changed (rewrite)") != run.conf_rewritten:
                problems.append(f"{name} run {i}: glance-api.conf rewritten={run.conf_rewritten}")
    floor = samples["floor: import ops"].stats()
    table = {}
    for name in hooks:
        stats, last = samples[name].stats(), samples[name].last
        assert last is not None
        table[name] = {
            **stats,
            "ratio_median": stats["median_ms"] / floor["median_ms"],
            "ratio_min": stats["min_ms"] / floor["min_ms"],
            "ratio_cpu": stats["cpu_median_ms"] / floor["cpu_median_ms"],
            "target": TARGETS.get(name),
            "juju_calls": sorted(samples[name].calls),
            "histogram": tool_histogram(last),
            "calls": call_names(last),
            "restarts_last_run": last.restarts,
            "apt_dpkg_last_run": last.apt_dpkg,
            "workload_procs_last_run": last.workload_procs,
            "status": last.status,
        }
    return {"floor": floor, "bare_python": samples["floor: python -c pass"].stats(),
            "hooks": table, "problems": problems}


def measure_importtime(bench: Bench, runs: int) -> dict[str, Any]:
    """`-X importtime` of each measured hook, `runs` times; per module the fastest run counts.

    Import time is wall time, so on a busy machine single runs are noisy; the minimum over
    runs is what the imports cost.
    """
    out = {}
    bench.extra_env = {"PYTHONPROFILEIMPORTTIME": "1"}
    try:
        hooks = latency_hooks(bench)
        parsed: dict[str, list[dict[str, tuple[int, int, int]]]] = {name: [] for name in hooks}
        for index in range(runs):
            for name, hook in hooks.items():
                parsed[name].append(parse_importtime(hook(index).stderr))
    finally:
        bench.extra_env = {}
    for name, samples in parsed.items():
        out[name] = importtime_summary(samples)
    return out


def parse_importtime(stderr: str) -> dict[str, tuple[int, int, int]]:
    """Map each module to (self us, cumulative us, depth) from `-X importtime` output."""
    modules: dict[str, tuple[int, int, int]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # one space, then two per level
        modules[name.strip()] = (int(self_us), int(cumulative_us), depth)
    return modules


def importtime_summary(samples: list[dict[str, tuple[int, int, int]]]) -> dict[str, Any]:
    """Heaviest top-level imports (cumulative) and libraries (summed self), min over runs."""
    names = set().union(*samples)
    best = {name: (min(s[name][0] for s in samples if name in s),
                   min(s[name][1] for s in samples if name in s),
                   min(s[name][2] for s in samples if name in s)) for name in names}
    per_lib: Counter[str] = Counter()
    for name, (self_us, _, _) in best.items():
        per_lib[name.split(".")[0]] += self_us
    top = sorted(((name, cum) for name, (_, cum, depth) in best.items() if depth == 0),
                 key=lambda item: -item[1])
    return {
        "total_ms": sum(self_us for self_us, _, _ in best.values()) / 1000,
        "modules": len(best),
        "top_level": [[name, round(us / 1000, 1)] for name, us in top[:15]],
        "libraries": [[name, round(us / 1000, 1)] for name, us in per_lib.most_common(15)],
    }


def verdict(runs: list[HookRun], services_running: set[str]) -> tuple[list[str], list[str]]:
    """Per service: restarts that changed nothing, and config changes left without a restart.

    A service whose config files changed should be restarted (or reloaded) once; starting a
    service that was not running yet is a start, not an outage, and is not counted as extra.
    """
    extra, missed = [], []
    files = {path for run in runs for path in run.changed_files}
    actions: dict[str, list[str]] = {}
    for run in runs:
        for service, acts in run.service_actions.items():
            actions.setdefault(service, []).extend(acts)
    for service, prefix in SERVICE_CONFIG.items():
        config_changed = any(path.startswith(prefix) for path in files)
        acts = actions.get(service, [])
        outages = [a for a in acts if a != "start" or service in services_running]
        if len(outages) > int(config_changed):
            extra.append(f"{service} {'+'.join(acts)} without config change"
                         if not config_changed else f"{service} {'+'.join(acts)}")
        if config_changed and not acts and service in services_running:
            missed.append(f"{service} config changed, not restarted")
    return extra, missed


def measure_restarts(bench: Bench) -> dict[str, Any]:
    """Scripted deployment; per step: files written, service actions, and whether they match."""
    deployment = Deployment(profile="single", consumers=1)
    steps: list[dict[str, Any]] = []
    running: set[str] = set()

    def record(label: str, run_list: list[HookRun]) -> None:
        extra, missed = verdict(run_list, running)
        actions: dict[str, list[str]] = {}
        for run in run_list:
            for service, acts in run.service_actions.items():
                actions.setdefault(service, []).extend(acts)
        running.update(service for service, acts in actions.items() if acts[-1] != "stop")
        files = sorted({path for run in run_list for path in run.changed_files})
        steps.append({
            "step": label, "hooks": len(run_list), "files": files,
            "service_actions": actions, "restarts": sum(r.restarts for r in run_list),
            "extra": extra, "missed": missed,
            "juju_calls": sum(len(r.juju_calls) for r in run_list),
            "apt_dpkg": sum(len(r.apt_dpkg) for r in run_list),
            "status": run_list[-1].status, "rc": max(r.rc for r in run_list),
        })

    runs = bench.deploy(deployment, per_unit=True)
    record("install, leader-elected, config-changed, start", runs[:4])
    cursor = 4
    for spec in relation_plan(deployment):
        count = 1 + 2 * len(spec["units"])
        label = f"{spec['endpoint']} related: created" + (
            ", joined, changed" if spec["units"] else "")
        record(label, runs[cursor:cursor + count])
        cursor += count
    record("settle: update-status", runs[cursor:])
    rel_id, unit = identity_rel(bench)
    record("no-op: update-status x3", [bench.run("update-status") for _ in range(3)])
    record("no-op: config-changed", [bench.run("config-changed")])
    record("no-op: identity-service-relation-changed (same data)",
           [bench.run("identity-service-relation-changed", rel_id, unit)])
    record("no-op: leader-elected", [bench.run("leader-elected")])
    with bench.edit() as state:
        state["config"]["debug"] = True
    record("config change: debug=true", [bench.run("config-changed")])
    for endpoint in ("image-service", "shared-db"):
        rel = bench.relation_ids[endpoint][0]
        remote = bench.relation(rel)["units"][0]
        bench.depart(rel, remote)
        departed = bench.run(f"{endpoint}-relation-departed", rel, remote, departing=remote)
        bench.mark_broken(rel)
        broken = bench.run(f"{endpoint}-relation-broken", rel)
        bench.drop(rel)
        record(f"{endpoint} departs: departed, broken", [departed, broken])
    noop = [s for s in steps if s["step"].startswith("no-op")]
    return {"steps": steps,
            "noop_restarts": sum(s["restarts"] for s in noop),
            "mismatches": [f"{s['step']}: {'; '.join(s['extra'] + s['missed'])}"
                           for s in steps if s["rc"] == 0 and (s["extra"] or s["missed"])]}


def measure_scale(make_bench: Callable[[str], Bench], runs: int, peers: tuple[int, ...],
                  consumers: tuple[int, ...]) -> dict[str, Any]:
    """Steady update-status/config-changed with growing peers and image-service consumers.

    Every size is deployed in its own charm dir, state and sandbox, then the sizes are
    measured interleaved (round robin), so load from other processes hits all sizes alike.
    """
    series: dict[str, list[Deployment]] = {
        "peer units (ha profile)": [Deployment("ha", peers=n) for n in peers],
        "image-service consumer apps (1 relation each)": [
            Deployment("single", consumers=n) for n in consumers],
        "image-service consumer units (1 relation)": [
            Deployment("single", consumers=n, consumer_mode="units") for n in consumers],
    }
    out: dict[str, Any] = {}
    for name, deployments in series.items():
        benches = []
        rows: list[dict[str, Any]] = []
        for index, deployment in enumerate(deployments):
            slug = "-".join(name.split(" (")[0].split())  # "image-service-consumer-apps"
            bench = make_bench(f"{slug}-{index}")
            settle = bench.deploy(deployment, per_unit=False)
            size = deployment.peers if deployment.profile == "ha" else deployment.consumers
            benches.append(bench)
            rows.append({"size": size, "settle_rc": max(r.rc for r in settle),
                         "status": settle[-1].status,
                         "samples": {"update-status": Samples(), "config-changed": Samples()}})
        for i in range(runs + 1):
            for bench, row in zip(benches, rows, strict=True):
                for hook, samples in row["samples"].items():
                    run = bench.run(hook)
                    if i > 0:  # the first round warms up
                        samples.add(run.seconds, run.cpu_seconds, run)
        for bench, row in zip(benches, rows, strict=True):
            bench.close()
            for hook, samples in row.pop("samples").items():
                last = samples.last
                row[hook] = {**samples.stats(), "juju_calls": len(last.juju_calls),
                             "histogram": tool_histogram(last), "rc": last.rc,
                             "files_written": last.changed_files}
        growth = {hook: {
            key: rows[-1][hook][key] / max(1e-9, rows[0][hook][key])
            for key in ("min_ms", "median_ms", "cpu_median_ms")
        } | {"calls": rows[-1][hook]["juju_calls"] / max(1, rows[0][hook]["juju_calls"])}
            for hook in ("update-status", "config-changed")}
        out[name] = {"rows": rows, "growth": growth}
    return out


def real_readonly_commands(runs: int) -> dict[str, dict[str, float]]:
    """What the read-only system commands a steady hook runs cost on this machine for real."""
    commands = {
        "real: dpkg-query -W glance-api": ["dpkg-query", "-W", "-f=${Status}\t${Version}",
                                           "glance-api"],
        "real: service glance-api status": ["service", "glance-api", "status"],
        "real: /bin/true": ["/bin/true"],
    }
    out = {}
    for name, cmd in commands.items():
        if shutil.which(cmd[0]) is None:
            continue
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            samples.append(time.perf_counter() - started)
        out[name] = summary(samples)
    return out


# ---- report ------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    load = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": str(os.cpu_count()),
        "uname": " ".join(platform.uname()),
        "python": subprocess.run([str(VENV_PYTHON), "-VV"], capture_output=True,
                                 text=True, check=False).stdout.strip(),
        "ops": subprocess.run([str(VENV_PYTHON), "-c", "import ops; print(ops.__version__)"],
                              capture_output=True, text=True, check=False).stdout.strip(),
        "loadavg_at_end": " ".join(f"{x:.2f}" for x in load),
    }


def _latency_md(profile: str, data: dict[str, Any]) -> list[str]:
    floor, bare = data["floor"], data["bare_python"]
    lines = [
        f"\n#### Hook latency, profile `{profile}` ({floor['n']} runs each, interleaved)\n",
        "| run | wall min ms | wall median ms | ratio median | ratio min | target | "
        "CPU median ms | CPU ratio | hook-tool calls | restarts | system-tool processes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| floor `python -c \"import ops\"` | {floor['min_ms']:.0f} | {floor['median_ms']:.0f}"
        f" | 1.00 | 1.00 | | {floor['cpu_median_ms']:.0f} | 1.00 | | | |",
        f"| `python -c pass` | {bare['min_ms']:.0f} | {bare['median_ms']:.0f} | "
        f"{bare['median_ms'] / floor['median_ms']:.2f} | {bare['min_ms'] / floor['min_ms']:.2f}"
        f" | | {bare['cpu_median_ms']:.0f} | "
        f"{bare['cpu_median_ms'] / floor['cpu_median_ms']:.2f} | | | |",
    ]
    for name, row in data["hooks"].items():
        target = f"<= {row['target']}x" if row["target"] else ""
        calls = "/".join(str(c) for c in row["juju_calls"])
        lines.append(
            f"| {name} | {row['min_ms']:.0f} | {row['median_ms']:.0f} | "
            f"{row['ratio_median']:.2f} | {row['ratio_min']:.2f} | {target} | "
            f"{row['cpu_median_ms']:.0f} | {row['ratio_cpu']:.2f} | {calls} | "
            f"{row['restarts_last_run']} | {', '.join(row['workload_procs_last_run']) or '-'} |")
    lines.append("")
    lines += [f"- {name}: {row['histogram']} — status `{row['status']}`"
              for name, row in data["hooks"].items()]
    if data["problems"]:
        lines.append("\nProblems: " + "; ".join(data["problems"]))
    return lines


def _scale_md(scale: dict[str, Any]) -> list[str]:
    lines = [
        "\n#### Scale (steady state; sizes measured round robin)\n",
        "| series | size | update-status wall min / median ms | CPU ms | calls | "
        "config-changed wall min / median ms | CPU ms | calls | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, data in scale.items():
        for row in data["rows"]:
            us, cc = row["update-status"], row["config-changed"]
            lines.append(
                f"| {name} | {row['size']} | {us['min_ms']:.0f} / {us['median_ms']:.0f} | "
                f"{us['cpu_median_ms']:.0f} | {us['juju_calls']} | {cc['min_ms']:.0f} / "
                f"{cc['median_ms']:.0f} | {cc['cpu_median_ms']:.0f} | {cc['juju_calls']} | "
                f"`{row['status']}` |")
        g = data["growth"]
        us, cc = g["update-status"], g["config-changed"]
        lines.append(
            f"| **growth** (largest / smallest) | | **{us['min_ms']:.2f}x / "
            f"{us['median_ms']:.2f}x** | **{us['cpu_median_ms']:.2f}x** | **{us['calls']:.2f}x** "
            f"| **{cc['min_ms']:.2f}x / {cc['median_ms']:.2f}x** | "
            f"**{cc['cpu_median_ms']:.2f}x** | **{cc['calls']:.2f}x** | "
            f"target <= {SCALE_GROWTH_TARGET}x |")
    return lines


def _restarts_md(data: dict[str, Any]) -> list[str]:
    lines = ["\n#### Restarts over a scripted deployment (profile `single`)\n",
             "| step | hooks | files written | service actions | verdict | hook-tool calls | "
             "apt/dpkg procs | status after |", "|---|---:|---|---|---|---:|---:|---|"]
    for s in data["steps"]:
        files = ", ".join(Path(f).name for f in s["files"]) or "-"
        actions = ", ".join(f"{svc} {'+'.join(acts)}"
                            for svc, acts in s["service_actions"].items()) or "-"
        verdict_text = "; ".join(s["extra"] + s["missed"]) or "ok"
        lines.append(f"| {s['step']} | {s['hooks']} | {files} | {actions} | {verdict_text} | "
                     f"{s['juju_calls']} | {s['apt_dpkg']} | `{s['status']}` |")
    lines.append(f"\nRestarts in no-op steps: {data['noop_restarts']}.")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """Tables for bench/RESULTS.md."""
    lines: list[str] = [f"Charm: {result.get('charm')}; stand-in tools: {result.get('tools')}."]
    for profile, data in result.get("latency", {}).items():
        lines += _latency_md(profile, data)
    if "update_status_calls" in result:
        lines += ["\n#### Hook-tool calls of one steady update-status (profile `single`), "
                  "in order\n", "```", *result["update_status_calls"], "```"]
    if "importtime" in result:
        lines += ["\n#### Heaviest imports (`-X importtime`; per module the fastest of the runs; "
                  "profile `single`)\n",
                  "| hook | all imports ms (modules) | heaviest top-level imports "
                  "(cumulative ms) | by library (self ms) |", "|---|---:|---|---|"]
        for hook, data in result["importtime"].items():
            top = ", ".join(f"{n} {ms}" for n, ms in data["top_level"][:8])
            libs = ", ".join(f"{n} {ms}" for n, ms in data["libraries"][:10])
            lines.append(f"| {hook} | {data['total_ms']:.0f} ({data['modules']}) | {top} | "
                         f"{libs} |")
    if "restarts" in result:
        lines += _restarts_md(result["restarts"])
    if "scale" in result:
        lines += _scale_md(result["scale"])
    if "overhead" in result:
        lines += ["\n#### Cost of one call: the stand-in hook tools, and the real read-only "
                  "system commands a steady hook runs (from Python, like ops)\n",
                  "| call | min ms | median ms |", "|---|---:|---:|"]
        lines += [f"| {name} | {row['min_ms']:.2f} | {row['median_ms']:.2f} |"
                  for name, row in result["overhead"].items()]
    m = result.get("machine", {})
    lines.append(f"\nMachine: {m.get('nproc')} CPUs, `{m.get('uname')}`, {m.get('python')}, "
                 f"ops {m.get('ops')}; {m.get('date')}; load average at end "
                 f"{m.get('loadavg_at_end')}.")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per hook (>= 20)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--scale-runs", type=int, default=10)
    parser.add_argument("--importtime-runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true",
                        help="1 run of everything, small scale sizes (for CI)")
    parser.add_argument("--source", choices=("head", "worktree"), default="head")
    parser.add_argument("--tools", choices=("daemon", "python"), default="daemon")
    parser.add_argument("--profiles", default="single,ha")
    parser.add_argument("--only", default="latency,importtime,restarts,scale,overhead")
    parser.add_argument("--no-namespace", action="store_true",
                        help="write /etc/glance etc. on this machine for real")
    parser.add_argument("--json", type=Path, help="write all results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: the charm writes /etc/glance and chowns to glance")
    options.peers, options.consumers = (1, 10, 100), (1, 10, 50)
    if options.smoke:
        options.runs, options.warmup, options.scale_runs, options.importtime_runs = 1, 0, 1, 1
        options.peers, options.consumers = (1, 2), (1, 2)
        options.profiles = "single"
    options.only = set(options.only.split(","))
    return options


def run_profiles(bench: Bench, options: argparse.Namespace, result: dict[str, Any]) -> list[str]:
    """Deploy each profile and measure latency (and import time for `single`)."""
    failures: list[str] = []
    for profile in options.profiles.split(","):
        deployment = Deployment(profile, peers=2 if profile == "ha" else 0)
        settle = bench.deploy(deployment, per_unit=True)
        failures += [f"{profile} deploy: {r.hook} exited {r.rc}: {r.stderr[-400:]}"
                     for r in settle if r.rc != 0]
        if "latency" in options.only:
            data = measure_latency(bench, options.runs, options.warmup)
            result.setdefault("latency", {})[profile] = data
            failures += data["problems"]
            if profile == "single":
                result["update_status_calls"] = data["hooks"]["update-status"]["calls"]
        if "importtime" in options.only and profile == "single":
            result["importtime"] = measure_importtime(bench, options.importtime_runs)
    return failures


def main() -> int:
    """Run every measurement, print markdown (and write JSON/markdown files when asked)."""
    options = parse_args()
    if not options.no_namespace:
        reexec_in_namespace(__file__, network=True)
        start_health_stubs()
    result: dict[str, Any] = {"command": " ".join(sys.argv), "tools": options.tools}
    failures: list[str] = []
    benches: list[Bench] = []
    with tempfile.TemporaryDirectory(prefix="glance-bench-") as tmp:
        work = Path(tmp)
        pristine = None if options.no_namespace else save_pristine(work)

        def make_bench(name: str) -> Bench:
            root = work / name
            sandbox = None if pristine is None else Sandbox(root / "sandbox", pristine)
            bench = Bench(root, options.source, options.tools, sandbox)
            benches.append(bench)
            return bench

        try:
            bench = make_bench("main")
            result["charm"] = bench.source_label
            if options.only & {"latency", "importtime"}:
                failures += run_profiles(bench, options, result)
            if "restarts" in options.only:
                result["restarts"] = measure_restarts(bench)
                failures += [f"restarts: {step}" for step in result["restarts"]["mismatches"]]
            if "scale" in options.only:
                result["scale"] = measure_scale(make_bench, options.scale_runs, options.peers,
                                                options.consumers)
            if "overhead" in options.only:
                result["overhead"] = hooktools.measure_overhead(20 if options.smoke else 200)
                result["overhead"].update(real_readonly_commands(5 if options.smoke else 30))
        finally:
            for each in benches:
                each.close()
    result["machine"] = machine()
    return report(result, failures, options)


def report(result: dict[str, Any], failures: list[str], options: argparse.Namespace) -> int:
    """Print the tables, write the requested files; exit 1 when a hook failed."""
    text = markdown(result)
    print(text)
    if options.markdown:
        options.markdown.write_text(text)
    if options.json:
        options.json.write_text(json.dumps(result, indent=1, default=str))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

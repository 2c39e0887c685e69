"""A real single-node Ceph cluster, and ceph-mon played truthfully on the `ceph` relation.

:class:`CephCluster` runs one ``ceph-mon``, one ``ceph-mgr`` and one ``ceph-osd`` with the
``memstore`` object store (data in RAM, no block device) on 127.0.0.1, everything (config,
keyrings, mon store, logs, PID files, admin sockets) under a fresh work directory. The
cluster's own ``ceph.conf`` lives in that directory and every daemon and CLI call is pointed at
it with ``-c``: ``/etc/ceph/ceph.conf`` belongs to the glance charm, which writes it from the
relation data. Every ``ceph``/``rbd`` CLI call is wrapped in ``timeout`` (``ceph`` waits forever
for a monitor or a mgr that is not there) and runs under ``/usr/bin/python3`` with a cleaned
environment (the ``python3`` on PATH may be pyenv's, which cannot import ``rados``).

:class:`CephMon` plays the ceph-mon charm on glance's ``ceph`` relation as
charm-ceph-mon (``src/ceph_client.py``) and charms.ceph (``broker.py``, ``utils.py``) do:

* every mon unit sends ``auth=cephx``, ``key`` (the key of ``client.<application-name>``,
  created with charms.ceph's ``_default_caps`` like ``get_named_key``) and
  ``ceph-public-address``;
* the leader answers the broker request the charm sent (``broker_req``) under
  ``broker-rsp-<unit-name>`` and the legacy ``broker_rsp``, echoing its ``request-id``, after
  EXECUTING it against the cluster (``create-pool``, ``add-permissions-to-key``); an op it
  cannot execute is answered with exit-code 1 and ``stderr``, as the broker does.

Pinned deviation from a real cluster: the cluster has one OSD, so a pool is created with the
requested pg count but its size is set to 1 (``--yes-i-really-mean-it``), and the pg
autoscaler stays off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.functional import realstack

logger = logging.getLogger(__name__)

CEPH_PACKAGES: tuple[str, ...] = (
    "ceph-mon",
    "ceph-mgr",
    "ceph-osd",
    "ceph-common",
    "python3-rbd",
    "python3-rados",
)
CEPH = "/usr/bin/ceph"
RBD = "/usr/bin/rbd"
CEPH_AUTHTOOL = "/usr/bin/ceph-authtool"
MONMAPTOOL = "/usr/bin/monmaptool"
CEPH_MON = "/usr/bin/ceph-mon"
CEPH_MGR = "/usr/bin/ceph-mgr"
CEPH_OSD = "/usr/bin/ceph-osd"
MON_ID = "a"
MGR_ID = "x"
GIB = 1024**3
# Caps of a client key as charms.ceph `get_named_key` creates it (`_default_caps`).
DEFAULT_CLIENT_CAPS: tuple[tuple[str, str], ...] = (
    ("mon", 'allow r; allow command "osd blacklist"; allow command "osd blocklist"'),
    ("osd", "allow rwx"),
)
# charmhelpers `get_pgs` constants.
PGS_PER_OSD_TARGET = 100
MINIMUM_PGS = 2
AUTOSCALER_DEFAULT_PGS = 32

_CEPH_CONF = """\
# written by tests/functional/cephstack.py: the test cluster's own config
[global]
fsid = {fsid}
mon initial members = {mon_id}
mon host = [v2:{host}:{v2_port},v1:{host}:{v1_port}]
public network = {network}
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd class dir = {osd_class_dir}
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = {avail_warn}
mon data avail crit = {avail_crit}
run dir = {workdir}/run
admin socket = {workdir}/run/$cluster-$name.asok
pid file = {workdir}/run/$cluster-$name.pid
log file = {workdir}/log/$cluster-$name.log
crash dir = {workdir}/crash
mon data = {workdir}/mon/$cluster-$id
mgr data = {workdir}/mgr/$cluster-$id
osd data = {workdir}/osd/$cluster-$id

[client.admin]
keyring = {workdir}/ceph.client.admin.keyring
"""


class CephError(realstack.RealStackError):
    """The test cluster could not be set up or a ceph command failed."""


#: Health checks that do not stop rbd clients: trixie's ceph-mgr 18 on Python 3.13 cannot
#: load some of its Python modules (HEALTH_WARN MGR_MODULE_DEPENDENCY / MGR_MODULE_ERROR,
#: and then it creates no .mgr pool); the mons, the OSD and rbd work regardless.
TOLERATED_HEALTH_CHECKS = frozenset({"MGR_MODULE_DEPENDENCY", "MGR_MODULE_ERROR"})


def rados_class_dir() -> str:
    """Where the OSD loads object classes (cls_rbd) from, as an absolute path.

    Ceph 18 (trixie) defaults `osd class dir` to a relative path: an OSD started in another
    directory cannot load cls_rbd and `rbd create` fails with errno 95. Ceph 16 (bookworm)
    defaults to the absolute multiarch path; the test cluster states it either way.
    """
    candidates = [*sorted(Path("/usr/lib").glob("*/rados-classes")),
                  Path("/usr/lib/rados-classes"), Path("/usr/lib64/rados-classes")]
    for candidate in candidates:
        if (candidate / "libcls_rbd.so").exists():
            return str(candidate)
    raise CephError("no rados-classes directory with libcls_rbd.so: is ceph-osd installed?")


def health_ready(health: Mapping[str, Any]) -> bool:
    """HEALTH_OK, or HEALTH_WARN whose every check is in TOLERATED_HEALTH_CHECKS."""
    if health.get("status") == "HEALTH_OK":
        return True
    checks = health.get("checks", {})
    return (health.get("status") == "HEALTH_WARN" and isinstance(checks, Mapping)
            and bool(checks) and set(checks) <= TOLERATED_HEALTH_CHECKS)


def _run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = 60.0,
    log_path: Path | None = None,
) -> str:
    """Run a ceph tool under ``timeout`` with the system environment; raise on failure.

    Args:
        argv: the command (no secrets: keys go on stdin or into files).
        stdin: text fed on stdin.
        timeout: seconds; ``timeout`` kills the command after that (SIGKILL 5 s later).
        log_path: if given, the command and its output are appended there.

    Returns:
        Its stdout.

    Raises:
        CephError: on a non-zero exit (124: timed out).
    """
    wrapped = ["timeout", "-k", "5", f"{timeout:.0f}", *argv]
    result = subprocess.run(
        wrapped,
        input=stdin,
        capture_output=True,
        text=True,
        env=realstack.system_env(),
        timeout=timeout + 30,
        check=False,
    )
    if log_path is not None:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(realstack.redact(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n"))
    if result.returncode != 0:
        what = "timed out" if result.returncode == 124 else f"exited {result.returncode}"
        output = realstack.redact((result.stdout + result.stderr).strip())[-2000:]
        raise CephError(f"{' '.join(argv)} {what}: {output}")
    return result.stdout


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def pgs_for(replicas: int, weight: float | None, osd_count: int) -> int:
    """Placement groups for a new pool, as charmhelpers ``BasePool.get_pgs`` computes them.

    Args:
        replicas: pool size the client asked for.
        weight: percentage of the cluster's data expected in the pool (``weight``).
        osd_count: OSDs in the cluster.

    Returns:
        A power of two, at least 2 (2 for glance's weight 5 on one OSD).
    """
    percent = (weight if weight is not None else 10.0) / 100.0
    num_pg = max(int((PGS_PER_OSD_TARGET * osd_count * percent) // max(replicas, 1)), MINIMUM_PGS)
    nearest = 2 ** math.floor(math.log2(num_pg))
    return int(nearest * 2) if (num_pg - nearest) > (num_pg * 0.25) else int(nearest)


class CephCluster:
    """One mon + one mgr + one memstore OSD on 127.0.0.1, built fresh in a work directory."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        v2_port: int = 3300,
        v1_port: int = 6789,
        memstore_bytes: int = 2 * GIB,
    ) -> None:
        """Describe the cluster; nothing runs until :meth:`start`.

        Args:
            workdir: directory for everything; default: a fresh one under
                :func:`realstack.base_dir`, removed at stop unless ``REALSTACK_KEEP_DATA``.
            host: the address every daemon binds to (and ceph-mon's ``ceph-public-address``).
            v2_port: the monitor's msgr2 port.
            v1_port: the monitor's legacy (v1) port.
            memstore_bytes: RAM the OSD's memstore may use.
        """
        self.host = host
        self.v2_port = v2_port
        self.v1_port = v1_port
        self.memstore_bytes = memstore_bytes
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = self._given_workdir
        self.fsid = str(uuid.uuid4())
        self.processes: dict[str, realstack.ManagedProcess] = {}
        self.timings: dict[str, float] = {}

    # paths -----------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.workdir is None:
            raise CephError("the ceph cluster is not started")
        return self.workdir / name

    @property
    def conf(self) -> Path:
        """The cluster's own ceph.conf (never /etc/ceph/ceph.conf)."""
        return self._path("ceph.conf")

    @property
    def admin_keyring(self) -> Path:
        """client.admin's keyring."""
        return self._path("ceph.client.admin.keyring")

    @property
    def log_dir(self) -> Path:
        """Where the daemons log."""
        return self._path("log")

    @property
    def commands_log(self) -> Path:
        """Every ceph/rbd CLI call and its output."""
        return self._path("log/commands.log")

    # CLI -------------------------------------------------------------------------------------
    def ceph(self, *args: str, stdin: str | None = None, timeout: float = 30.0) -> str:
        """Run ``ceph`` as client.admin against this cluster (wrapped in ``timeout``).

        Args:
            *args: the ceph command.
            stdin: text for ``-i -``.
            timeout: seconds.

        Returns:
            Its stdout.
        """
        argv = [
            CEPH, "-c", str(self.conf), "--name", "client.admin", "--keyring",
            str(self.admin_keyring), "--connect-timeout", str(max(1, int(timeout) - 1)), *args,
        ]
        return _run(argv, stdin=stdin, timeout=timeout, log_path=self.commands_log)

    def ceph_json(self, *args: str, timeout: float = 30.0) -> Any:
        """Run a ceph command with ``--format json`` and decode its output.

        Args:
            *args: the ceph command.
            timeout: seconds.

        Returns:
            The decoded JSON.
        """
        return json.loads(self.ceph(*args, "--format", "json", timeout=timeout) or "null")

    def rbd(self, *args: str, timeout: float = 30.0) -> str:
        """Run ``rbd`` as client.admin against this cluster.

        Args:
            *args: the rbd command.
            timeout: seconds.

        Returns:
            Its stdout.
        """
        argv = [
            RBD, "-c", str(self.conf), "--name", "client.admin", "--keyring",
            str(self.admin_keyring), *args,
        ]
        return _run(argv, timeout=timeout, log_path=self.commands_log)

    # lifecycle -------------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Whether all three daemons run."""
        return len(self.processes) == 3 and all(p.alive() for p in self.processes.values())

    def _check_ports(self) -> None:
        busy = [p for p in (self.v2_port, self.v1_port) if not _port_free(self.host, p)]
        if busy:
            raise CephError(
                f"ceph-mon ports {busy} on {self.host} are in use (another cluster? see "
                "`ss -ltnp` and `pgrep -a ceph-mon`)"
            )

    def _write_conf(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ceph-", dir=realstack.base_dir()))
        for sub in ("run", "log", "crash", "mon", "mgr", "osd"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o750)
        usage = shutil.disk_usage(self.workdir)
        free_pct = 100 * usage.free // usage.total
        # ceph warns (HEALTH_WARN) when the mon store's disk has less than 30% free.
        avail_warn = max(1, min(30, free_pct - 10))
        self.conf.write_text(
            _CEPH_CONF.format(
                fsid=self.fsid,
                mon_id=MON_ID,
                host=self.host,
                v2_port=self.v2_port,
                v1_port=self.v1_port,
                network="127.0.0.0/8" if self.host.startswith("127.") else f"{self.host}/32",
                memstore_bytes=self.memstore_bytes,
                avail_warn=avail_warn,
                avail_crit=max(1, avail_warn // 2),
                osd_class_dir=rados_class_dir(),
                workdir=self.workdir,
            )
        )

    def _gen_key(self) -> str:
        key = _run([CEPH_AUTHTOOL, "--gen-print-key"]).strip()
        realstack.remember_secret(key)
        return key

    def _keyring(self, path: Path, entity: str, key: str, caps: Mapping[str, str]) -> None:
        lines = [f"[{entity}]", f"\tkey = {key}"]
        lines += [f'\tcaps {svc} = "{cap}"' for svc, cap in caps.items()]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def _start_daemon(self, name: str, argv: Sequence[str]) -> realstack.ManagedProcess:
        proc = realstack.start_process(
            name, argv, log_path=self.log_dir / f"{name}.out", cwd=self.workdir
        )
        self.processes[name] = proc
        return proc

    def _bootstrap_mon(self) -> None:
        mon_keyring = self._path("mon.keyring")
        self._keyring(mon_keyring, "mon.", self._gen_key(), {"mon": "allow *"})
        admin_key = self._gen_key()
        self._keyring(
            self.admin_keyring,
            "client.admin",
            admin_key,
            {"mds": "allow *", "mgr": "allow *", "mon": "allow *", "osd": "allow *"},
        )
        with mon_keyring.open("a") as handle:
            handle.write(self.admin_keyring.read_text())
        monmap = self._path("monmap")
        addrs = f"[v2:{self.host}:{self.v2_port},v1:{self.host}:{self.v1_port}]"
        _run([MONMAPTOOL, "--create", "--fsid", self.fsid, "--addv", MON_ID, addrs,
              str(monmap)], log_path=self.commands_log)
        _run([CEPH_MON, "-c", str(self.conf), "--mkfs", "-i", MON_ID, "--monmap", str(monmap),
              "--keyring", str(mon_keyring)], timeout=60, log_path=self.commands_log)
        mon_keyring.unlink()
        proc = self._start_daemon("ceph-mon", [CEPH_MON, "-c", str(self.conf), "-f", "-i", MON_ID])
        self._wait(self._quorum, "ceph-mon quorum", 30, proc)

    def _quorum(self) -> bool:
        try:
            status = self.ceph_json("quorum_status", timeout=5)
        except CephError:
            return False
        return MON_ID in status.get("quorum_names", [])

    def _start_mgr(self) -> None:
        data = self._path(f"mgr/ceph-{MGR_ID}")
        data.mkdir(parents=True, exist_ok=True)
        keyring = self.ceph(
            "auth", "get-or-create", f"mgr.{MGR_ID}", "mon", "allow profile mgr",
            "osd", "allow *", "mds", "allow *",
        )
        (data / "keyring").write_text(keyring)
        (data / "keyring").chmod(0o600)
        self._start_daemon("ceph-mgr", [CEPH_MGR, "-c", str(self.conf), "-f", "-i", MGR_ID])

    def _start_osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        key = self._gen_key()
        osd_id = self.ceph("osd", "new", osd_uuid, "-i", "-",
                           stdin=json.dumps({"cephx_secret": key})).strip()
        data = self._path(f"osd/ceph-{osd_id}")
        data.mkdir(parents=True, exist_ok=True)
        self._keyring(data / "keyring", f"osd.{osd_id}", key, {})
        _run([CEPH_OSD, "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid],
             timeout=60, log_path=self.commands_log)
        self._start_daemon("ceph-osd", [CEPH_OSD, "-c", str(self.conf), "-f", "-i", osd_id])

    def _wait(
        self,
        predicate: Callable[[], bool],
        what: str,
        timeout: float,
        proc: realstack.ManagedProcess | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            dead = [name for name, p in self.processes.items() if not p.alive()]
            if dead or time.monotonic() > deadline:
                reason = f"{', '.join(dead)} exited" if dead else f"not after {timeout:.0f}s"
                raise CephError(f"{what}: {reason}\n{self.diagnostics()}")
            time.sleep(0.25)

    def health(self) -> dict[str, Any]:
        """``ceph status`` as JSON.

        Returns:
            The status document.
        """
        return dict(self.ceph_json("status", timeout=10))

    def active_clean(self) -> bool:
        """Whether HEALTH_OK, the OSD is up and in, a mgr is active and every PG active+clean.

        Returns:
            True when the cluster is ready for clients.
        """
        try:
            status = self.health()
        except CephError:
            return False
        osdmap = status.get("osdmap", {})
        osdmap = osdmap.get("osdmap", osdmap)  # nested in older releases
        pgmap = status.get("pgmap", {})
        total = pgmap.get("num_pgs", 0)
        clean = sum(
            entry.get("count", 0)
            for entry in pgmap.get("pgs_by_state", [])
            if entry.get("state_name") == "active+clean"
        )
        if not (
            health_ready(status.get("health", {}))
            and osdmap.get("num_up_osds") == 1
            and osdmap.get("num_in_osds") == 1
            and status.get("mgrmap", {}).get("available", False)
            # HEALTH_OK comes before the mgr creates its .mgr pool: wait for its PGs; a mgr
            # that cannot load its modules (trixie) creates none, and no PG is then ready
            and (total > 0 or status.get("health", {}).get("status") != "HEALTH_OK")
            and clean == total
        ):
            return False
        # The pgmap comes from the mgr and lags the osdmap: every pool must be counted (the mgr
        # creates its own pool a few seconds after it starts; HEALTH_OK comes earlier).
        try:
            return len(self.pool_names()) == pgmap.get("num_pools")
        except CephError:
            return False

    def wait_active_clean(self, timeout: float = 90.0) -> float:
        """Wait until :meth:`active_clean`.

        Args:
            timeout: seconds.

        Returns:
            Seconds waited.
        """
        started = time.monotonic()
        self._wait(self.active_clean, "ceph HEALTH_OK and all PGs active+clean", timeout)
        return time.monotonic() - started

    def start(self, timeout: float = 90.0) -> float:
        """Build the cluster from scratch and wait until it is HEALTH_OK and active+clean.

        Idempotent: returns 0.0 while this object's cluster runs.

        Args:
            timeout: seconds for the cluster to become ready.

        Returns:
            Seconds spent (also ``timings['cluster_up_s']``).
        """
        if self.is_running():
            return 0.0
        started = time.monotonic()
        for tool in (CEPH, CEPH_MON, CEPH_MGR, CEPH_OSD, CEPH_AUTHTOOL, MONMAPTOOL):
            if not Path(tool).exists():
                raise CephError(f"{tool} is missing: install {' '.join(CEPH_PACKAGES)}")
        self._check_ports()
        realstack.register_cleanup(self.stop)
        self._write_conf()
        self._bootstrap_mon()
        self.timings["mon_s"] = time.monotonic() - started
        self._start_mgr()
        self._start_osd()
        self.timings["ready_wait_s"] = self.wait_active_clean(timeout)
        self.timings["cluster_up_s"] = time.monotonic() - started
        return self.timings["cluster_up_s"]

    def stop(self, *, cleanup: bool | None = None) -> None:
        """Stop the daemons by PID (OSD, mgr, then mon) and optionally remove the work dir.

        Safe to call more than once.

        Args:
            cleanup: remove the work directory; default: only a fresh one this object made,
                unless ``REALSTACK_KEEP_DATA`` is set.
        """
        for name in ("ceph-osd", "ceph-mgr", "ceph-mon"):
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.stop(20.0)
        self.workdir = realstack.release_workdir(self.workdir, self._given_workdir, cleanup)

    def diagnostics(self, lines: int = 25) -> str:
        """Log tails of the daemons and the last CLI calls, redacted, for failure messages.

        Args:
            lines: lines per log.

        Returns:
            The text.
        """
        if self.workdir is None:
            return "(ceph cluster not started)"
        return realstack.log_tails(sorted(self.log_dir.glob("*")), lines)

    # what a ceph-mon unit does -----------------------------------------------------------------
    def osd_count(self) -> int:
        """Number of OSDs in the osdmap."""
        return len(self.ceph_json("osd", "ls"))

    def pool_names(self) -> list[str]:
        """Names of the pools."""
        return [str(pool["poolname"]) for pool in self.ceph_json("osd", "lspools")]

    def pool_detail(self, name: str) -> dict[str, Any]:
        """``ceph osd pool get <name> all`` as JSON.

        Args:
            name: pool name.

        Returns:
            The pool's settings.
        """
        return dict(self.ceph_json("osd", "pool", "get", name, "all"))

    def get_or_create_key(self, name: str, caps: Sequence[tuple[str, str]] = DEFAULT_CLIENT_CAPS
                          ) -> str:
        """Return the key of ``client.<name>``, creating it with ``caps`` like ``get_named_key``.

        Args:
            name: the client application name.
            caps: (subsystem, caps) pairs used when the key is created.

        Returns:
            The cephx key (registered for redaction).
        """
        entity = f"client.{name}"
        with contextlib.suppress(CephError):
            key = self.ceph("auth", "print-key", entity).strip()
            if key:
                realstack.remember_secret(key)
                return key
        args = [item for pair in caps for item in pair]
        self.ceph("auth", "get-or-create", entity, *args)
        key = self.ceph("auth", "print-key", entity).strip()
        realstack.remember_secret(key)
        return key

    def key_caps(self, name: str) -> dict[str, str]:
        """Caps of ``client.<name>``.

        Args:
            name: the client application name.

        Returns:
            Subsystem -> caps.
        """
        entries = self.ceph_json("auth", "get", f"client.{name}")
        return dict(entries[0].get("caps", {})) if entries else {}


@dataclass
class BrokerOutcome:
    """What the played ceph-mon did with one broker request.

    Attributes:
        request_id: the request's id.
        response: the response dict sent back.
        actions: the ceph commands it ran, in order (for assertions and the report).
    """

    request_id: str
    response: dict[str, Any]
    actions: list[str] = field(default_factory=list)


class CephMon:
    """The ceph-mon charm on glance's `ceph` relation, backed by a real :class:`CephCluster`."""

    def __init__(self, cluster: CephCluster, *, app: str = "ceph-mon", units: int = 1) -> None:
        """Describe the application.

        Args:
            cluster: the running cluster whose monitor(s) this application stands for.
            app: application name.
            units: number of mon units; unit 0 is the leader. With one real monitor every
                unit sends the same ``ceph-public-address``.
        """
        self.cluster = cluster
        self.app = app
        self.unit_names = [f"{app}/{index}" for index in range(units)]
        self.leader = self.unit_names[0]
        self.processed: dict[str, BrokerOutcome] = {}
        self.groups: dict[str, list[str]] = {}

    # relation plumbing -------------------------------------------------------------------------
    def relate(self, harness: Any, endpoint: str = "ceph", *, answer: bool = True) -> int:
        """Relate, join every mon unit, hand over key and address, then answer the request.

        Mirrors the hook order: glance sends ``application-name`` on joined; ceph-mon (in
        quorum with OSDs) sends auth/key/address; glance then sends ``broker_req``; the leader
        executes it and answers.

        Args:
            harness: the glance charm's ops.testing Harness.
            endpoint: glance's endpoint name.
            answer: also execute and answer the broker request (False: leave it pending).

        Returns:
            The relation id.
        """
        rel = int(harness.add_relation(endpoint, self.app))
        for unit in self.unit_names:
            harness.add_relation_unit(rel, unit)
        self.sync(harness, rel, answer=answer)
        return rel

    def sync(self, harness: Any, rel: int, *, answer: bool = True) -> BrokerOutcome | None:
        """Do what ceph-mon's relation-changed does with the current glance data.

        Args:
            harness: the Harness.
            rel: the relation id.
            answer: execute and answer a broker request glance has sent.

        Returns:
            The broker outcome when glance has sent a request, else None.
        """
        glance_unit = harness.charm.unit.name
        bag = harness.get_relation_data(rel, glance_unit)
        service = bag.get("application-name") or harness.charm.app.name
        key = self.cluster.get_or_create_key(service)
        base = {
            "auth": "cephx",
            "key": key,
            "ceph-public-address": self.cluster.host,
        }
        for unit in self.unit_names:
            juju = {
                "private-address": self.cluster.host,
                "ingress-address": self.cluster.host,
                "egress-subnets": f"{self.cluster.host}/32",
            }
            harness.update_relation_data(rel, unit, {**juju, **base})
        bag = harness.get_relation_data(rel, glance_unit)
        if "broker_req" not in bag or not answer:
            return None
        outcome = self.process(bag["broker_req"])
        unit_id = bag.get("unit-name", glance_unit).replace("/", "-")
        reply = json.dumps(outcome.response)
        harness.update_relation_data(
            rel, self.leader, {f"broker-rsp-{unit_id}": reply, "broker_rsp": reply}
        )
        return outcome

    # broker ----------------------------------------------------------------------------------
    def process(self, raw: str) -> BrokerOutcome:
        """Execute a broker request once (a processed request id returns its stored answer).

        Args:
            raw: the ``broker_req`` JSON.

        Returns:
            The outcome, with the response ceph-mon sends.
        """
        request = json.loads(raw)
        request_id = str(request.get("request-id", ""))
        if request_id in self.processed:
            return self.processed[request_id]
        outcome = BrokerOutcome(request_id, {"exit-code": 0})
        if request.get("api-version") != 1:
            outcome.response = {
                "exit-code": 1,
                "stderr": f"Missing or invalid api version ({request.get('api-version')})",
            }
        else:
            for op in request.get("ops", []):
                try:
                    self._execute(op, outcome.actions)
                except (CephError, KeyError, ValueError) as err:
                    logger.warning("broker op %s failed: %s", op.get("op"), err)
                    outcome.response = {"exit-code": 1, "stderr": str(err)[-500:]}
                    break
        if request_id:
            outcome.response["request-id"] = request_id
        self.processed[request_id] = outcome
        return outcome

    def _execute(self, op: Mapping[str, Any], actions: list[str]) -> None:
        kind = op.get("op")
        if kind == "create-pool":
            self._create_pool(op, actions)
        elif kind == "add-permissions-to-key":
            self._add_permissions(op, actions)
        else:
            raise ValueError(f'Unknown operation "{kind}"')

    def _run(self, actions: list[str], *args: str) -> str:
        actions.append(" ".join(args))
        return self.cluster.ceph(*args)

    def _create_pool(self, op: Mapping[str, Any], actions: list[str]) -> None:
        """``create-pool`` (replicated), as charms.ceph ``handle_replicated_pool`` does it."""
        name = str(op["name"])
        if op.get("pool-type", "replicated") != "replicated":
            raise ValueError(f"pool-type {op.get('pool-type')} is not supported by this cluster")
        replicas = int(op.get("replicas") or 3)
        if op.get("group"):
            self._add_pool_to_group(name, str(op["group"]), op.get("group-namespace"))
        if name not in self.cluster.pool_names():
            osds = self.cluster.osd_count()
            pg_num = pgs_for(replicas, op.get("weight"), osds)
            if op.get("pg_num"):
                pg_num = min(int(op["pg_num"]), pgs_for(replicas, 100.0, osds))
            self._run(actions, "osd", "pool", "create",
                      f"--pg-num-min={min(AUTOSCALER_DEFAULT_PGS, pg_num)}", name, str(pg_num),
                      str(op.get("crush-profile") or "replicated_rule"))
            # One OSD: the requested replicas cannot be placed; size 1 is the only healthy size.
            self._run(actions, "osd", "pool", "set", name, "size", "1", "--yes-i-really-mean-it")
            if op.get("weight") is not None:
                self._run(actions, "osd", "pool", "set", name, "target_size_ratio",
                          str(float(op["weight"]) / 100.0))
            if op.get("app-name"):
                self._run(actions, "osd", "pool", "application", "enable", name,
                          str(op["app-name"]))
        self._set_quota(name, op, actions)

    def _add_pool_to_group(self, pool: str, group: str, namespace: str | None) -> None:
        pools = self.groups.setdefault(f"{namespace}-{group}" if namespace else group, [])
        if pool not in pools:
            pools.append(pool)

    def _set_quota(self, name: str, op: Mapping[str, Any], actions: list[str]) -> None:
        quota = []
        if op.get("max-bytes"):
            quota += ["max_bytes", str(int(op["max-bytes"]))]
        if op.get("max-objects"):
            quota += ["max_objects", str(int(op["max-objects"]))]
        if quota:
            self._run(actions, "osd", "pool", "set-quota", name, *quota)

    def _add_permissions(self, op: Mapping[str, Any], actions: list[str]) -> None:
        """``add-permissions-to-key``: restrict the key's osd caps to its groups' pools."""
        service = str(op["name"])
        namespace = op.get("group-namespace")
        group = f"{namespace}-{op['group']}" if namespace else str(op["group"])
        permission = str(op.get("group-permission") or "rwx")
        osd_caps = [
            f"allow {permission} pool={pool}" for pool in self.groups.get(group, [])
        ]
        for perm, prefixes in sorted((op.get("object-prefix-permissions") or {}).items()):
            osd_caps += [f"allow {perm} object_prefix {prefix}" for prefix in prefixes]
        self._run(actions, "auth", "caps", f"client.{service}", "mon",
                  'allow r, allow command "osd blacklist", allow command "osd blocklist"',
                  "osd", ", ".join(osd_caps))

"""Namespaces for the pacemaker HA tier: nodes, a bridge between them, loopback relays.

Every node is a private network + mount + pid + uts namespace made here (``unshare``), with a
small reaper as its PID 1 (daemons the init scripts double-fork get reaped, so nothing lingers
as a zombie the charm's restart check would see). Each node has its own copies of the
directories glance, haproxy, corosync and pacemaker write (bind mounts of per-node copies
under the run's work directory) and its own tmpfs on ``/run`` and ``/dev/shm``: the mounts
exist only in the node's mount namespace and vanish with it.

The nodes (and a client namespace) are joined by veth pairs to a bridge that lives in a
namespace of its own, ``lan``: killing the namespaces' PID 1s destroys the bridge, every veth
and every mount, so :meth:`Lab.destroy` leaves nothing behind even after a failed test.
Addresses come from the benchmarking range 198.18.0.0/15 (``198.19.115.0/24``); nothing is
routed anywhere else.

The shared services (MariaDB, Keystone, Swift) run on the host's loopback. A node reaches them
on its own 127.0.0.1, as a mysql-router unit serves 127.0.0.1:3306 on every glance unit:
:class:`Relay` listens inside a namespace (a socket made by a thread that entered it with
``setns``) and connects to the host's loopback from the host namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.functional import realstack

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
SUBNET = "198.19.115"  # inside 198.18.0.0/15, RFC 2544 benchmarking range
PREFIX = 24
MARKER = "glance-ha-pacemaker-ns"  # in every namespace PID 1's argv, for stale sweeps
# PID 1 of a node: reap every orphan (start-stop-daemon's daemons are reparented here).
REAPER = (
    "import os, sys, time\n"
    "while True:\n"
    "    try:\n"
    "        os.wait()\n"
    "    except ChildProcessError:\n"
    "        time.sleep(0.2)\n"
)
# Directories each node owns (copied from the host's, or empty), bind-mounted in its namespace.
NODE_DIRS = (
    "/etc/glance", "/etc/haproxy", "/etc/corosync", "/etc/ceph",
    "/etc/rc0.d", "/etc/rc1.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d",
    "/etc/rc6.d", "/etc/rcS.d",
    "/var/lib/glance", "/var/lib/haproxy", "/var/lib/charm", "/var/lib/pacemaker",
    "/var/lib/corosync", "/var/log/glance", "/var/log/pacemaker", "/var/log/cluster",
    "/var/log/corosync", "/var/log/crmsh", "/var/cache/glance", "/var/lib/heartbeat",
)
_LIBC = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """A namespace, link or relay could not be set up."""


# ---- entering a network namespace from a thread -----------------------------------------------
def enter_netns(pid: int) -> None:
    """Move the calling thread (only it) into the network namespace of a process."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _LIBC.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise LabError(f"setns into the netns of {pid}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def in_netns(pid: int, func: Callable[[], T]) -> T:
    """Run func in a fresh thread inside a network namespace; return its result.

    Sockets it makes stay in that namespace after the thread ends.
    """
    result: dict[str, T] = {}
    errors: list[BaseException] = []

    def body() -> None:
        try:
            enter_netns(pid)
            result["value"] = func()
        except BaseException as err:  # handed to the caller below
            errors.append(err)

    thread = threading.Thread(target=body, name=f"netns-{pid}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result["value"]


def run(argv: Sequence[str], *, timeout: float = 60.0, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a host command (no secrets in argv); raise LabError with its output on failure."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False, env=realstack.system_env())
    except subprocess.TimeoutExpired as err:
        raise LabError(f"{' '.join(argv)} timed out after {timeout:.0f}s") from err
    if check and done.returncode != 0:
        output = realstack.redact((done.stdout + done.stderr).strip())[-2000:]
        raise LabError(f"{' '.join(argv)} exited {done.returncode}: {output}")
    return done


# ---- one namespace -------------------------------------------------------------------------
@dataclass
class Namespace:
    """A set of namespaces held by a reaper running as their PID 1."""

    name: str
    kinds: tuple[str, ...] = ("--net", "--mount", "--uts", "--pid")
    holder: subprocess.Popen[bytes] | None = None
    pid: int = 0  # PID 1 of the namespace, as the host sees it

    def start(self) -> None:
        """Create the namespaces; the reaper's PID (host view) becomes `pid`."""
        argv = ["unshare", *self.kinds, "--fork", "--kill-child", "--propagation", "private"]
        if "--pid" in self.kinds:
            argv.append("--mount-proc")
        argv += ["/usr/bin/python3", "-c", REAPER, MARKER, self.name]
        self.holder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children")
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                found = children.read_text().split()
                if found:
                    self.pid = int(found[0])
                    if self._netns() != _netns_of(os.getpid()):
                        return
            if self.holder.poll() is not None:
                raise LabError(f"unshare for {self.name} exited {self.holder.returncode}")
            time.sleep(0.02)
        raise LabError(f"namespace {self.name} did not come up")

    def _netns(self) -> str:
        return _netns_of(self.pid)

    def nsenter(self) -> list[str]:
        """The nsenter prefix that runs a command inside every namespace of this one."""
        flags = {"--net": "-n", "--mount": "-m", "--uts": "-u", "--pid": "-p"}
        return ["nsenter", "-t", str(self.pid), *(flags[k] for k in self.kinds), "--"]

    def run(self, argv: Sequence[str], *, timeout: float = 60.0, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside; raise LabError on failure when `check`."""
        return run([*self.nsenter(), *argv], timeout=timeout, check=check, stdin=stdin)

    def sh(self, script: str, *, timeout: float = 60.0) -> str:
        """Run a shell script inside (no secrets in it); return stdout."""
        return self.run(["/bin/sh", "-ec", script], timeout=timeout).stdout

    def popen(self, argv: Sequence[str], log_path: Path,
              env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a long-running command inside, output to log_path."""
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [*self.nsenter(), *argv], stdout=kwargs.pop("stdout", log), stderr=log,
                stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                env=dict(env) if env is not None else realstack.system_env(), **kwargs,
            )

    def pids(self) -> list[int]:
        """Host PIDs of every process in this namespace's pid namespace but its PID 1."""
        if not self.pid:
            return []
        mine = _pidns_of(self.pid)
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.pid:
                with contextlib.suppress(OSError):
                    if _pidns_of(int(entry.name)) == mine:
                        found.append(int(entry.name))
        return found

    def destroy(self) -> None:
        """SIGKILL PID 1: the kernel kills the rest; the namespaces, links and mounts go."""
        if self.pid and realstack._pid_alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.holder is not None:
            try:
                self.holder.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait(timeout=5)
        self.pid = 0


def _netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _pidns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def sweep_stale() -> list[int]:
    """SIGKILL the namespace PID 1s an earlier run of this tier left (by their argv marker)."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[:1] == [b"/usr/bin/python3"] and MARKER.encode() in argv:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


# ---- a loopback relay ----------------------------------------------------------------------
@dataclass
class Relay:
    """Listen on 127.0.0.1:<port> inside a namespace; forward to the host's 127.0.0.1:<port>."""

    ns_pid: int
    port: int
    target_port: int
    _listener: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _open: set[socket.socket] = field(default_factory=set)

    def start(self) -> None:
        def listen() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(128)
            return sock

        self._listener = in_netns(self.ns_pid, listen)
        threading.Thread(target=self._accept, daemon=True,
                         name=f"relay-{self.ns_pid}-{self.port}").start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(262144):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            for sock in (src, dst):
                if sock.fileno() == -1:
                    self._open.discard(sock)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.close()
        self._open.clear()


# ---- the lab: bridge, nodes, client ----------------------------------------------------------
@dataclass
class Node:
    """One machine: its namespaces, hostname, address and private directories."""

    index: int
    hostname: str
    address: str
    root: Path  # host directory holding this node's private copies
    ns: Namespace
    link: str = ""  # its veth end on the bridge (in the lan namespace)

    def path(self, inside: str) -> Path:
        """Where a node-private path (under one of NODE_DIRS) is on the host."""
        return self.root / inside.lstrip("/")


@dataclass
class Lab:
    """A bridge in its own namespace, N nodes and one client namespace on it."""

    workdir: Path
    hosts: str = ""
    lan: Namespace = field(default_factory=lambda: Namespace("lan", ("--net",)))
    client: Namespace = field(default_factory=lambda: Namespace("client", ("--net",)))
    nodes: list[Node] = field(default_factory=list)
    relays: list[Relay] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)  # host mount points made here
    client_address: str = f"{SUBNET}.50"

    def build(self, hostnames: Sequence[str]) -> None:
        """Bring everything up; on failure the caller's destroy() still cleans up."""
        self.hosts = "127.0.0.1 localhost\n" + "".join(
            f"{SUBNET}.{11 + i} {name}\n" for i, name in enumerate(hostnames))
        self.lan.start()
        self.lan.kinds = ("--net",)
        run([*self.lan.nsenter(), "ip", "link", "add", "br0", "type", "bridge"])
        run([*self.lan.nsenter(), "ip", "link", "set", "br0", "up"])
        run([*self.lan.nsenter(), "ip", "link", "set", "lo", "up"])
        for index, name in enumerate(hostnames):
            node = Node(index, name, f"{SUBNET}.{11 + index}", self.workdir / name,
                        Namespace(name))
            self.nodes.append(node)
            node.ns.start()
            self._prepare_node(node)
            node.link = self._plug(node.ns, f"n{index}", node.address)
        self.client.start()
        self._plug(self.client, "cl", self.client_address)

    def _plug(self, ns: Namespace, tag: str, address: str) -> str:
        """A veth pair: eth0 in ns (with address), the other end on br0 in lan."""
        outer, inner = f"gha{os.getpid() % 100000}{tag}", f"ghi{os.getpid() % 100000}{tag}"
        run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
        run(["ip", "link", "set", outer, "netns", str(self.lan.pid)])
        run(["ip", "link", "set", inner, "netns", str(ns.pid)])
        lan = self.lan.nsenter()
        run([*lan, "ip", "link", "set", outer, "master", "br0"])
        run([*lan, "ip", "link", "set", outer, "up"])
        inside = ["nsenter", "-t", str(ns.pid), "-n", "--"]
        run([*inside, "ip", "link", "set", inner, "name", "eth0"])
        run([*inside, "ip", "addr", "add", f"{address}/{PREFIX}", "dev", "eth0"])
        run([*inside, "ip", "link", "set", "eth0", "up"])
        run([*inside, "ip", "link", "set", "lo", "up"])
        return outer

    def _prepare_node(self, node: Node) -> None:
        node.root.mkdir(parents=True, exist_ok=True)
        (node.root / "hosts").write_text(self.hosts)
        binds = []
        for inside in NODE_DIRS:
            staged = node.path(inside)
            staged.parent.mkdir(parents=True, exist_ok=True)
            if Path(inside).is_dir():
                run(["cp", "-a", inside, str(staged)])
            else:
                staged.mkdir(parents=True, exist_ok=True)
                Path(inside).mkdir(parents=True)  # the mount point (removed at destroy)
                self.created_dirs.append(Path(inside))
            binds.append(f"mount --bind {staged} {inside}")
        script = "\n".join([
            f"hostname {node.hostname}",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -p -m 1777 /run/lock",
            "mkdir -p /run/haproxy /run/glance /run/crm /run/corosync",
            "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
            *binds,
            f"mount --bind {node.root / 'hosts'} /etc/hosts",
        ])
        node.ns.sh(script)

    def relay(self, ns: Namespace, ports: Iterable[int]) -> None:
        """Loopback relays inside ns to the host's services on the same ports."""
        for port in ports:
            relay = Relay(ns.pid, port, port)
            relay.start()
            self.relays.append(relay)

    def set_link(self, node: Node, up: bool) -> None:
        """Plug or unplug a node's cable (its veth end on the bridge)."""
        run([*self.lan.nsenter(), "ip", "link", "set", node.link, "up" if up else "down"])

    def destroy(self) -> None:
        """Stop the relays, kill every namespace, remove the mount points made on the host."""
        for relay in self.relays:
            relay.stop()
        self.relays.clear()
        for ns in [self.client, *(node.ns for node in self.nodes), self.lan]:
            try:
                ns.destroy()
            except Exception:
                logger.exception("destroying namespace %s", ns.name)
        for path in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                path.rmdir()
        self.created_dirs.clear()
        if not os.environ.get(realstack.KEEP_DATA_ENV):  # logs kept on request
            shutil.rmtree(self.workdir, ignore_errors=True)


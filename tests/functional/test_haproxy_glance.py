"""The charm's rendered haproxy.cfg run by the real haproxy in front of two API backends.

haproxy is started from the file HaproxyWorkload wrote (after its `haproxy -c` gate) and is
reloaded through the same workload when the backend list changes, the way Ubuntu's systemd
unit runs it (master-worker, reload = `haproxy -c` + SIGUSR2).

Backends, on different loopback addresses and ports:
* ``glance-api``: two real ``/usr/bin/glance-api`` processes sharing one database and one
  file store, as units share MySQL and Ceph/Swift. To run without the keystone + MySQL stack
  (realstack.py), they use SQLite and glance's unauthenticated pipeline (paste flavor
  unset); the requests are real API calls (``GET /v2/images`` reads the database).
  Skipped when glance-api is not installed.
* ``stand-in``: small HTTP servers that answer ``/healthcheck`` and take a fixed time per
  request, to drive haproxy harder than glance-api can.

Shown: requests through haproxy reach both backends; polling clients see no failed request
while one backend is killed (SIGKILL) with requests in flight on it (GET/HEAD re-sent to the
other server, refused connections redispatched), before, during and after haproxy marks it
DOWN; the backend rejoins when restarted; reloads under load (a unit leaving and joining)
drop nothing.
"""

from __future__ import annotations

import grp
import http.client
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from glance_charm.workload.haproxy import (
    HaproxyPaths,
    HaproxyWorkload,
    server_states,
    stats,
)
from glance_charm.workload.haproxy_config import Backend, HaproxyConfig
from tests.functional.realstack import wait_for

pytestmark = pytest.mark.functional

HAPROXY_BIN = "/usr/sbin/haproxy"
GLANCE_API = "/usr/bin/glance-api"
GLANCE_MANAGE = "/usr/bin/glance-manage"
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
if not Path(HAPROXY_BIN).exists():
    pytest.skip(
        f"{HAPROXY_BIN} not installed (apt-get install haproxy)", allow_module_level=True
    )

STAND_IN_CODE = r"""
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection, like a plain client

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(0.1)  # an API call that takes a while, so a kill lands mid-request
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # haproxy's health checks reset the connection once they have the status

Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""

GLANCE_CONF = """\
[DEFAULT]
bind_host = {host}
bind_port = {port}
workers = 1
enabled_backends = local:file
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = {shared}/images/
[database]
connection = sqlite:///{shared}/glance.sqlite
[oslo_concurrency]
lock_path = {own}/lock
[paste_deploy]
flavor =
[os_glance_staging_store]
filesystem_store_datadir = {own}/staging/
[os_glance_tasks_store]
filesystem_store_datadir = {own}/tasks/
[oslo_policy]
policy_file = {own}/sandbox-policy.yaml
"""
# The unauthenticated pipeline (flavor empty) gives glance a context with no roles and no
# project. Zed's defaults let it through; Epoxy's (enforce_new_defaults and scope checks on)
# refuse every call with 403. The sandbox states its policy instead of relying on either:
# every image API the tests call is open to any caller. (Also no deprecated option is set.)
SANDBOX_POLICY = "".join(f'"{rule}": ""\n' for rule in (
    "default", "context_is_admin", "get_images", "get_image", "add_image", "modify_image",
    "upload_image", "download_image", "delete_image", "stage_image", "copy_image",
    "deactivate", "reactivate", "publicize_image", "communitize_image", "get_image_location",
    "set_image_location", "delete_image_location", "get_task", "get_tasks", "add_task",
    "get_members", "get_member", "add_member", "modify_member", "delete_member",
))


# ---- helpers ------------------------------------------------------------------------------
def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def get(host: str, port: int, path: str, timeout: float = 10.0) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def answers(host: str, port: int, path: str) -> bool:
    try:
        return get(host, port, path, timeout=2) == 200
    except OSError:
        return False


def me() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


# ---- backends -----------------------------------------------------------------------------
@dataclass
class ApiProcess:
    """One API backend process (its own session, killed as a group)."""

    unit: str
    host: str
    port: int
    workdir: Path
    kind: str = "stand-in"
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return self.unit.replace("/", "-")

    def api_path(self, slow: bool = True) -> str:
        """A real API call for glance-api; a 0.1 s or an instant request for the stand-in."""
        if self.kind == "glance-api":
            return "/v2/images"
        return "/slow" if slow else "/fast"

    def command(self) -> list[str]:
        if self.kind == "stand-in":
            return [sys.executable, "-c", STAND_IN_CODE, self.host, str(self.port)]
        own = self.workdir / self.server
        for sub in ("lock", "staging", "tasks"):
            (own / sub).mkdir(parents=True, exist_ok=True)
        (own / "sandbox-policy.yaml").write_text(SANDBOX_POLICY)
        conf = own / "glance-api.conf"
        conf.write_text(GLANCE_CONF.format(
            host=self.host, port=self.port, shared=self.workdir / "shared", own=own
        ))
        return [GLANCE_API, "--config-file", str(conf)]

    def start(self) -> None:
        log = (self.workdir / f"{self.server}.log").open("ab")
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, env=SYSTEM_ENV if self.kind == "glance-api" else None,
        )
        log.close()
        wait_for(f"{self.server} on {self.host}:{self.port}",
                 lambda: answers(self.host, self.port, "/healthcheck"))

    def kill(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # parent and its workers
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="module")
def glance_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database and a file store the glance-api backends share."""
    if not Path(GLANCE_API).exists():
        pytest.skip(f"{GLANCE_API} not installed (apt-get install glance-api)")
    workdir = tmp_path_factory.mktemp("glance")
    shared = workdir / "shared"
    (shared / "images").mkdir(parents=True)
    conf = workdir / "db.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{shared}/glance.sqlite\n")
    result = subprocess.run(
        [GLANCE_MANAGE, "--config-file", str(conf), "db_sync"],
        capture_output=True, text=True, timeout=300, check=False, env=SYSTEM_ENV,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir


@pytest.fixture(params=["glance-api", "stand-in"])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ApiProcess]]:
    kind = request.param
    workdir = request.getfixturevalue("glance_db") if kind == "glance-api" else tmp_path
    processes = [
        ApiProcess("glance/0", "127.0.0.1", free_port("127.0.0.1"), workdir, kind),
        ApiProcess("glance/1", "127.0.0.2", free_port("127.0.0.2"), workdir, kind),
    ]
    try:
        started = time.monotonic()
        threads = [threading.Thread(target=p.start) for p in processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(not answers(p.host, p.port, "/healthcheck") for p in processes):
            pytest.fail(f"{kind} backends did not start; logs in {workdir}")
        print(f"\n{kind}: both backends answer /healthcheck after "
              f"{time.monotonic() - started:.1f}s")
        yield processes
    finally:
        for process in processes:
            process.kill()


# ---- haproxy ------------------------------------------------------------------------------
@dataclass
class HaproxyProcess:
    """The real haproxy behind ServiceManager-like `start`/`reload`, driven by HaproxyWorkload.

    Run the way Ubuntu's systemd unit runs it: master-worker (``-W``, here daemonised with
    ``-D -p pidfile`` as there is no systemd), reload = ``haproxy -c`` then SIGUSR2 to the
    master, which starts new workers on the same listeners. Never a stop + start.
    """

    config: Path
    pidfile: Path
    calls: list[str] = field(default_factory=list)
    masters: list[int] = field(default_factory=list)

    def _haproxy(self, *args: str) -> None:
        result = subprocess.run(
            [HAPROXY_BIN, "-f", str(self.config), *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        self._haproxy("-W", "-D", "-p", str(self.pidfile))
        # the master keeps its PID across reloads (it re-executes itself), while the
        # pidfile is rewritten then: remember the PID rather than re-reading the file
        self.masters.append(int(self.pidfile.read_text().split()[0]))

    def reload(self, name: str) -> None:
        self.calls.append(f"reload {name}")
        self._haproxy("-c", "-q")  # ExecReload's first step
        os.kill(self.masters[-1], signal.SIGUSR2)

    def restart(self, name: str) -> None:
        raise AssertionError("haproxy must be reloaded, not restarted")

    def is_running(self, name: str) -> bool:
        return bool(self.masters) and Path(f"/proc/{self.masters[-1]}").exists()

    def stop(self, name: str) -> None:
        for master in self.masters:
            try:
                os.kill(master, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while Path(f"/proc/{master}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)


@dataclass
class Lb:
    """haproxy as the charm runs it: workload (render, check, write) + the process."""

    workload: HaproxyWorkload
    process: HaproxyProcess
    port: int
    sock: Path

    def config(self, backends: list[ApiProcess]) -> HaproxyConfig:
        # the production user and chroot when we can drop privileges like the service does
        unprivileged: dict[str, Any] = (
            {} if os.geteuid() == 0 else {"user": None, "group": None, "chroot": None}
        )
        return HaproxyConfig.from_options(
            [Backend(unit=b.unit, address=b.host, port=b.port) for b in backends],
            bind_address="127.0.0.1", frontend_port=self.port, stats_socket=str(self.sock),
            **unprivileged,
        )

    def apply(self, backends: list[ApiProcess]) -> bool:
        """What the charm's reconcile does: configure, then ensure_running."""
        return self.workload.ensure_running(self.workload.configure(self.config(backends)))

    def states(self) -> dict[str, str]:
        try:
            return server_states(self.sock)
        except OSError:
            return {}

    def served(self) -> Counter[str]:
        """Requests each server has answered so far (haproxy's per-server `stot`)."""
        return Counter({
            row["svname"]: int(row["stot"] or 0) for row in stats(self.sock)
            if row["pxname"] == "glance_api" and row["svname"] not in ("FRONTEND", "BACKEND")
        })

    def server_row(self, server: str) -> dict[str, str]:
        return next(row for row in stats(self.sock) if row["svname"] == server)


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[Lb]:
    paths = HaproxyPaths(tmp_path / "root")
    process = HaproxyProcess(paths.config, tmp_path / "haproxy.pid")
    owner, group = me()
    workload = HaproxyWorkload(
        paths=paths, services=process, owner=owner, group=group,  # type: ignore[arg-type]
    )
    # never 9292: a real glance-api of the functional stack may (re)bind it at any moment
    try:
        yield Lb(workload, process, free_port("127.0.0.1"), tmp_path / "admin.sock")
    finally:
        process.stop("haproxy")


# ---- polling client -----------------------------------------------------------------------
@dataclass
class Poller:
    """Clients polling an API path through haproxy from threads, counting every outcome."""

    port: int
    path: str
    clients: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _loop(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                status = get("127.0.0.1", self.port, self.path)
                failure = None if status == 200 else f"HTTP {status}"
            except OSError as err:
                failure = repr(err)
            with self._lock:
                if failure is None:
                    self.ok += 1
                else:
                    self.failures.append(failure)
                self.slowest = max(self.slowest, time.monotonic() - start)

    def __enter__(self) -> Poller:
        self._threads = [
            threading.Thread(target=self._loop, daemon=True) for _ in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)


# ---- tests --------------------------------------------------------------------------------
def test_haproxy_balances_and_survives_a_killed_backend(
    backends: list[ApiProcess], lb: Lb
) -> None:
    path = backends[0].api_path()

    # one unit: rendered, checked by haproxy -c, written, started
    assert lb.apply(backends[:1])
    wait_for("haproxy to answer", lambda: answers("127.0.0.1", lb.port, path))
    assert lb.process.calls == ["start haproxy"]

    # a second unit joins: the file changes, haproxy is reloaded (not restarted)
    assert lb.apply(backends)
    assert lb.process.calls == ["start haproxy", "reload haproxy"]
    took = wait_for("both servers UP", lambda: lb.states() == {
        "glance-0": "UP", "glance-1": "UP",
    })
    print(f"both backends UP {took:.1f}s after the reload")
    assert not lb.apply(backends)  # unchanged: neither re-written nor reloaded

    before = lb.served()
    assert all(get("127.0.0.1", lb.port, path) == 200 for _ in range(40))
    spread = lb.served() - before
    assert set(spread) == {"glance-0", "glance-1"}, spread

    # kill one backend while clients poll; haproxy re-sends the in-flight GETs and
    # redispatches refused connections, then marks the server DOWN after 3 failed checks
    with Poller(lb.port, path) as poller:
        time.sleep(1.0)
        backends[1].kill()
        down_after = wait_for("glance-1 DOWN", lambda: lb.states().get("glance-1") == "DOWN")
        until_down = poller.total
        time.sleep(2.0)
    killed = lb.server_row("glance-1")
    print(
        f"{backends[0].kind}: {poller.total} requests ({until_down} until DOWN), "
        f"failed {len(poller.failures)}; DOWN {down_after:.1f}s after SIGKILL; slowest "
        f"{poller.slowest:.2f}s; glance-1 retries {killed['wretr']}, redispatches "
        f"{killed['wredis']}; failures: {poller.failures[:5]}"
    )
    assert poller.failures == []
    assert int(killed["wredis"]) > 0  # requests meant for the dead server went to glance-0

    before = lb.served()
    assert all(get("127.0.0.1", lb.port, path) == 200 for _ in range(10))
    assert set(lb.served() - before) == {"glance-0"}

    # the unit comes back: haproxy's checks bring it UP again, no reload needed
    backends[1].start()
    wait_for("glance-1 UP again", lambda: lb.states().get("glance-1") == "UP")
    before = lb.served()
    assert all(get("127.0.0.1", lb.port, path) == 200 for _ in range(20))
    assert set(lb.served() - before) == {"glance-0", "glance-1"}
    assert lb.process.calls == ["start haproxy", "reload haproxy"]


def test_reloads_under_load_drop_nothing(backends: list[ApiProcess], lb: Lb) -> None:
    path = backends[0].api_path(slow=False)  # as many requests per reload as we can
    assert lb.apply(backends)
    wait_for("both servers UP", lambda: lb.states() == {"glance-0": "UP", "glance-1": "UP"})
    reloads = 20
    with Poller(lb.port, path, clients=8) as poller:
        for n in range(reloads):
            # a unit leaves, then joins again: every other config drops glance-1
            assert lb.apply(backends if n % 2 else backends[:1])
            time.sleep(0.2)
    print(
        f"{backends[0].kind}: {reloads} reloads, {poller.total} requests, "
        f"failed {len(poller.failures)}, slowest {poller.slowest:.2f}s; "
        f"failures: {poller.failures[:5]}"
    )
    assert lb.process.calls == ["start haproxy"] + ["reload haproxy"] * reloads
    assert poller.failures == []

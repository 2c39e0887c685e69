"""The charm's rendered haproxy.cfg run by the real haproxy in front of two API backends.

haproxy is started from the file HaproxyWorkload wrote (after its `haproxy -c` gate) and is
reloaded through the same workload when a backend joins. The backends are two small HTTP
servers standing in for glance-api (they answer ``/healthcheck`` like glance's middleware
and tag every response with ``X-Served-By``) on different loopback addresses and ports;
real glance-api processes need the database + keystone stack of realstack.py and can take
their place once that fixture runs here.

Shown: requests through haproxy reach both backends; polling clients see no failed
request while one backend is killed (SIGKILL) with requests in flight on it (GET/HEAD are
re-sent to the other server, refused connections redispatched), before, during and after
haproxy marks it DOWN; the backend rejoins when restarted; reloads under load (new backend
list) drop nothing.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from haproxy import Backend, HaproxyConfig, HaproxyPaths, HaproxyWorkload, server_states, stats

pytestmark = pytest.mark.functional

HAPROXY_BIN = "/usr/sbin/haproxy"
if not Path(HAPROXY_BIN).exists():
    pytest.skip(
        f"{HAPROXY_BIN} not installed (apt-get install haproxy)", allow_module_level=True
    )

BACKEND_CODE = r"""
import http.server, sys, time

NAME = sys.argv[3]
DELAY = float(sys.argv[4])  # seconds an API call takes, so a kill can land mid-request

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection, like a plain client

    def do_GET(self):
        body = b"OK" if self.path == "/healthcheck" else NAME.encode()
        if self.path != "/healthcheck":
            time.sleep(DELAY)
        self.send_response(200)
        self.send_header("X-Served-By", NAME)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # haproxy's health checks reset the connection once they have the status

Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll until check() is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Served-By", "")
    finally:
        conn.close()


def answers(port: int, path: str = "/") -> bool:
    try:
        return get(port, path, timeout=2)[0] == 200
    except OSError:
        return False


@dataclass
class StandIn:
    """A stand-in API process on one address and port."""

    name: str
    host: str
    port: int
    delay: float = 0.1
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", BACKEND_CODE, self.host, str(self.port), self.name,
             str(self.delay)],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(f"{self.name} on {self.host}:{self.port}", self.ready)

    def ready(self) -> bool:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
            conn.request("GET", "/healthcheck")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


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
class Poller:
    """Clients polling through haproxy from threads, counting every outcome."""

    port: int
    clients: int = 4
    served: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _loop(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                status, by = get(self.port)
                outcome = by if status == 200 else f"HTTP {status}"
            except OSError as err:
                outcome = f"error {err!r}"
            with self._lock:
                if outcome.startswith(("HTTP ", "error ")):
                    self.failures.append(outcome)
                else:
                    self.served[outcome] += 1
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
        return sum(self.served.values()) + len(self.failures)


@pytest.fixture
def stand_ins(request: pytest.FixtureRequest) -> Iterator[list[StandIn]]:
    delay = float(getattr(request, "param", 0.1))
    backends = [
        StandIn("glance-0", "127.0.0.1", free_port("127.0.0.1"), delay),
        StandIn("glance-1", "127.0.0.2", free_port("127.0.0.2"), delay),
    ]
    try:
        for backend in backends:
            backend.start()
        yield backends
    finally:
        for backend in backends:
            backend.kill()


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[tuple[HaproxyWorkload, HaproxyProcess]]:
    paths = HaproxyPaths(tmp_path / "root")
    process = HaproxyProcess(paths.config, tmp_path / "haproxy.pid")
    workload = HaproxyWorkload(
        paths=paths, services=process,  # type: ignore[arg-type]
        owner=_me()[0], group=_me()[1],
    )
    try:
        yield workload, process
    finally:
        process.stop("haproxy")


def _me() -> tuple[str, str]:
    import grp
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def config_for(backends: list[StandIn], port: int, sock: Path) -> HaproxyConfig:
    # the production user and chroot when we can drop privileges like the service does
    unprivileged: dict[str, Any] = (
        {} if os.geteuid() == 0 else {"user": None, "group": None, "chroot": None}
    )
    return HaproxyConfig.from_options(
        [Backend(unit=b.name.replace("-", "/"), address=b.host, port=b.port) for b in backends],
        bind_address="127.0.0.1", frontend_port=port, stats_socket=str(sock), **unprivileged,
    )


def test_haproxy_balances_and_survives_a_killed_backend(
    stand_ins: list[StandIn], lb: tuple[HaproxyWorkload, HaproxyProcess], tmp_path: Path,
) -> None:
    workload, process = lb
    # never 9292: a real glance-api of the functional stack may (re)bind it at any moment
    port = free_port("127.0.0.1")
    sock = tmp_path / "admin.sock"

    # one unit: rendered, checked by haproxy -c, written, started
    assert workload.ensure_running(workload.configure(config_for(stand_ins[:1], port, sock)))
    wait_for("haproxy to answer", lambda: answers(port))
    assert process.calls == ["start haproxy"]

    # a second unit joins: the file changes, haproxy is reloaded (not restarted)
    assert workload.ensure_running(workload.configure(config_for(stand_ins, port, sock)))
    assert process.calls == ["start haproxy", "reload haproxy"]
    took = wait_for("both servers UP", lambda: _states(sock) == {
        "glance-0": "UP", "glance-1": "UP",
    })
    print(f"both backends UP {took:.1f}s after the reload")
    # an unchanged config is neither re-written nor reloaded
    assert not workload.ensure_running(workload.configure(config_for(stand_ins, port, sock)))

    seen = Counter(get(port)[1] for _ in range(40))
    assert set(seen) == {"glance-0", "glance-1"}, seen

    # kill one backend while a client polls; haproxy first retries/redispatches the
    # refused connections, then marks the server DOWN after its health checks fail
    with Poller(port) as poller:
        time.sleep(1.0)
        stand_ins[1].kill()
        killed_at = time.monotonic()
        down_after = wait_for("glance-1 DOWN", lambda: _states(sock).get("glance-1") == "DOWN")
        before_down = poller.total
        time.sleep(2.0)
    killed = next(row for row in stats(sock) if row["svname"] == "glance-1")
    print(
        f"requests: {poller.total} ({dict(poller.served)}), failed: {len(poller.failures)}, "
        f"marked DOWN {down_after:.1f}s after the kill, slowest request {poller.slowest:.2f}s, "
        f"{before_down} requests issued until DOWN; glance-1 connection errors "
        f"{killed['econ']}, retries {killed['wretr']}, redispatches {killed['wredis']}; "
        f"failures: {poller.failures}"
    )
    assert poller.failures == []
    assert int(killed["wredis"]) > 0  # refused connections were sent to glance-0
    assert poller.served["glance-1"] > 0 and poller.served["glance-0"] > 0
    assert time.monotonic() - killed_at > down_after
    assert {get(port)[1] for _ in range(10)} == {"glance-0"}

    # the unit comes back: haproxy's checks bring it UP again, no reload needed
    stand_ins[1].start()
    wait_for("glance-1 UP again", lambda: _states(sock).get("glance-1") == "UP")
    assert {get(port)[1] for _ in range(20)} == {"glance-0", "glance-1"}
    assert process.calls == ["start haproxy", "reload haproxy"]


def _states(sock: Path) -> dict[str, str]:
    try:
        return server_states(sock)
    except OSError:
        return {}



@pytest.mark.parametrize("stand_ins", [0.0], indirect=True)  # as many requests as we can
def test_reloads_under_load_drop_nothing(
    stand_ins: list[StandIn], lb: tuple[HaproxyWorkload, HaproxyProcess], tmp_path: Path,
) -> None:
    workload, process = lb
    port, sock = free_port("127.0.0.1"), tmp_path / "admin.sock"
    full = config_for(stand_ins, port, sock)
    assert workload.ensure_running(workload.configure(full))
    wait_for("haproxy to answer", lambda: answers(port))
    reloads = 20
    with Poller(port, clients=8) as poller:
        for n in range(reloads):
            # a unit leaves, then joins again: every other config drops glance-1
            cfg = full if n % 2 else config_for(stand_ins[:1], port, sock)
            assert workload.ensure_running(workload.configure(cfg))
            time.sleep(0.2)
    print(
        f"{reloads} reloads, {poller.total} requests ({dict(poller.served)}), "
        f"failed: {len(poller.failures)}, slowest {poller.slowest:.2f}s"
    )
    assert process.calls == ["start haproxy"] + ["reload haproxy"] * reloads
    assert poller.failures == []

"""haproxy.cfg rendering, the real `haproxy -c` gate before writing, and reload decisions."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import ops
import ops.testing
import pytest
from pydantic import ValidationError

from glance_charm.domain.exceptions import BlockedError, WorkloadError
from glance_charm.relations import peers
from glance_charm.workload import haproxy
from glance_charm.workload.haproxy import HaproxyPaths, HaproxyWorkload, server_states
from glance_charm.workload.haproxy_config import HaproxyConfig, render
from glance_charm.workload.service import ServiceManager
from tests.unit.conftest import FakeServices

REPO_ROOT = Path(__file__).resolve().parents[3]
HAPROXY_BIN = shutil.which("haproxy") or "/usr/sbin/haproxy"
needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY_BIN).exists(),
    reason=f"haproxy binary not installed ({HAPROXY_BIN}); apt-get install haproxy",
)


# ---- helpers ------------------------------------------------------------------------------
def sections(text: str) -> dict[str, list[str]]:
    """Parse haproxy.cfg into `header -> [directive lines]` (comments dropped)."""
    parsed: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw[0].isspace():
            current = parsed.setdefault(line.strip(), [])
        else:
            current.append(" ".join(line.split()))
    return parsed


def servers(cfg: HaproxyConfig) -> list[str]:
    body = sections(render(cfg).decode())["backend glance_api"]
    return [line for line in body if line.startswith("server ")]


def directive(cfg: HaproxyConfig, section: str, name: str) -> list[str]:
    body = sections(render(cfg).decode())[section]
    return [line for line in body if line.split()[0] == name or line.startswith(f"{name} ")]


def units(count: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"glance/{n}", f"10.5.0.{10 + n}") for n in range(start, start + count)]


def me() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def make_workload(root: Path, services: object | None = None, **kwargs: object) -> HaproxyWorkload:
    owner, group = me()
    return HaproxyWorkload(
        paths=HaproxyPaths(root), services=services or FakeServices(),  # type: ignore[arg-type]
        owner=owner, group=group, **kwargs,  # type: ignore[arg-type]
    )


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "etc/haproxy").iterdir() if p.name != "haproxy.cfg")


# ---- rendering ----------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 3, 5])
def test_one_server_per_unit(count: int) -> None:
    cfg = HaproxyConfig.from_options(list(reversed(units(count))))
    assert servers(cfg) == [
        f"server glance-{n} 10.5.0.{10 + n}:9282 check inter 2000 rise 2 fall 3"
        for n in range(count)
    ]


def test_units_sorted_by_number_not_text() -> None:
    cfg = HaproxyConfig.from_options(
        [("glance/10", "10.0.0.10"), ("glance/9", "10.0.0.9"), ("glance/2", "10.0.0.2")]
    )
    assert [line.split()[1] for line in servers(cfg)] == ["glance-2", "glance-9", "glance-10"]
    # the same set in any order renders the same bytes
    assert render(cfg) == render(HaproxyConfig.from_options(
        [("glance/2", "10.0.0.2"), ("glance/10", "10.0.0.10"), ("glance/9", "10.0.0.9")]
    ))


def test_frontend_and_backend_sections() -> None:
    cfg = HaproxyConfig.from_options(units(2))
    parsed = sections(render(cfg).decode())
    assert parsed["frontend glance_api"] == ["bind 0.0.0.0:9292", "default_backend glance_api"]
    backend = parsed["backend glance_api"]
    assert backend[:5] == [
        "balance leastconn", "option httpchk GET /healthcheck", "http-check expect status 200",
        "retry-on conn-failure empty-response", "http-request disable-l7-retry if !METH_GET",
    ]
    defaults = parsed["defaults"]
    assert {"mode http", "option redispatch", "retries 3", "option forwardfor"} <= set(defaults)
    assert (
        "stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners"
        in parsed["global"]
    )
    # no TCP stats listener anywhere
    assert not [header for header in parsed if header.startswith("listen")]
    assert all("stats" not in line for line in parsed["frontend glance_api"])


def test_buffers_sized_for_image_bodies() -> None:
    """64 KiB buffers and spliced responses, as the data-plane bench justifies them.

    bench/RESULTS.md §8 (tune.bufsize) and §10 (option splice-response: haproxy's CPU per
    GiB downloaded, and 4 concurrent downloads through haproxy).
    """
    cfg = HaproxyConfig.from_options(units(1))
    parsed = sections(render(cfg).decode())
    tuned = [line for line in parsed["global"] if line.startswith("tune.")]
    assert tuned == ["tune.bufsize 65536", "tune.maxrewrite 1024"]
    assert [line for line in parsed["defaults"] if "splice" in line] == [
        "option splice-response"]
    if shutil.which(haproxy.HAPROXY_BIN) or Path(haproxy.HAPROXY_BIN).exists():
        check = subprocess.run([haproxy.HAPROXY_BIN, "-c", "-f", "/dev/stdin"],
                               input=render(cfg), capture_output=True, check=False)
        assert check.returncode == 0, check.stderr.decode()[-500:]


def test_default_timeouts_are_the_classic_ones() -> None:
    cfg = HaproxyConfig.from_options(units(1))
    assert directive(cfg, "defaults", "timeout") == [
        "timeout queue 9000", "timeout connect 9000",
        "timeout client 90000", "timeout server 90000",
    ]


def test_timeouts_from_options() -> None:
    cfg = HaproxyConfig.from_options(
        units(1), client_timeout=1000, server_timeout=2000, queue_timeout=3000,
        connect_timeout=4000,
    )
    assert directive(cfg, "defaults", "timeout") == [
        "timeout queue 3000", "timeout connect 4000",
        "timeout client 1000", "timeout server 2000",
    ]
    partial = HaproxyConfig.from_options(units(1), server_timeout=120000)
    assert (partial.client_timeout, partial.server_timeout) == (90000, 120000)


def test_maxconn_left_to_haproxy_unless_set() -> None:
    assert directive(HaproxyConfig.from_options(units(1)), "global", "maxconn") == []
    cfg = HaproxyConfig.from_options(units(1), maxconn=4096)
    assert directive(cfg, "global", "maxconn") == ["maxconn 4096"]


def test_roundrobin() -> None:
    cfg = HaproxyConfig.from_options(units(2), balance="roundrobin")
    assert directive(cfg, "backend glance_api", "balance") == ["balance roundrobin"]


def test_ipv6_backends_are_bracketed() -> None:
    cfg = HaproxyConfig.from_options(
        [("glance/0", "2001:db8::10"), ("glance/1", "[fd00::11]"), ("glance/2", "10.5.0.12")]
    )
    assert [line.split()[2] for line in servers(cfg)] == [
        "[2001:db8::10]:9282", "[fd00::11]:9282", "10.5.0.12:9282",
    ]


def test_ipv6_frontend_binds_both_families() -> None:
    cfg = HaproxyConfig.from_options(units(1), ipv6=True)
    assert directive(cfg, "frontend glance_api", "bind") == ["bind [::]:9292 v4v6"]


@pytest.mark.parametrize(("address", "bind"), [
    ("127.0.0.1", "bind 127.0.0.1:19292"),
    ("::1", "bind [::1]:19292"),
])
def test_explicit_bind_address(address: str, bind: str) -> None:
    cfg = HaproxyConfig.from_options(units(1), bind_address=address, frontend_port=19292)
    assert directive(cfg, "frontend glance_api", "bind") == [bind]


def test_tls_termination() -> None:
    cfg = HaproxyConfig.from_options(units(1), tls_pem="/etc/haproxy/glance.pem")
    front = sections(render(cfg).decode())["frontend glance_api"]
    assert front[0] == "bind 0.0.0.0:9292 ssl crt /etc/haproxy/glance.pem"
    assert "http-request set-header X-Forwarded-Proto https" in front


def test_hostname_backend_and_no_backends() -> None:
    cfg = HaproxyConfig.from_options([("glance/0", "juju-abc-0.lxd")])
    assert servers(cfg)[0].split()[2] == "juju-abc-0.lxd:9282"
    assert servers(HaproxyConfig.from_options([])) == []


@pytest.mark.parametrize("bad", [
    {"backends": [("glance", "10.0.0.1")]},
    {"backends": [("glance/0", "10.0.0.1 ; evil")]},
    {"backends": [("glance/0", "10.0.0")]},
    {"backends": [("glance/0", "")]},
    {"backends": [("glance/0", "10.0.0.1"), ("glance/0", "10.0.0.2")]},
    {"backends": [], "client_timeout": 0},
    {"backends": [], "tls_pem": "relative.pem"},
    {"backends": [], "tls_pem": "/etc/ssl/a b.pem"},
    {"backends": [], "stats_socket": "/run/../etc/passwd"},
    {"backends": [], "user": "Root\n"},
    {"backends": [], "balance": "source"},
    {"backends": [], "frontend_port": 70000},
    {"backends": [], "bind_address": "0.0.0.0\nlisten x"},
])
def test_invalid_config_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        HaproxyConfig.model_validate(bad)


def test_template_is_found_through_glance_render_template() -> None:
    assert (REPO_ROOT / "templates" / "haproxy.cfg.j2").is_file()
    assert render(HaproxyConfig()).startswith(b"# Managed by the glance charm")


# ---- the real haproxy accepts every rendered variant ---------------------------------------
@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=glance",
         "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    combined = directory / "glance.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    return combined


VARIANTS: dict[str, dict[str, object]] = {
    "one-unit": {"backends": units(1)},
    "three-units": {"backends": units(3)},
    "five-units": {"backends": units(5)},
    "no-backends": {"backends": []},
    "timeouts": {"backends": units(3), "client_timeout": 1, "server_timeout": 3600000,
                 "queue_timeout": 500, "connect_timeout": 100},
    "roundrobin": {"backends": units(3), "balance": "roundrobin"},
    "maxconn": {"backends": units(3), "maxconn": 20000},
    "ipv6-bind": {"backends": units(2), "ipv6": True},
    "ipv6-backends": {"backends": [("glance/0", "2001:db8::10"), ("glance/1", "fd00::11")]},
    "dual-stack-backends": {"backends": [("glance/0", "10.5.0.1"), ("glance/1", "fd00::11")]},
    "loopback-v6": {"backends": units(1), "bind_address": "::1", "frontend_port": 19292},
    "no-chroot-no-user": {"backends": units(1), "user": None, "group": None, "chroot": None},
    "tls": {"backends": units(3), "tls_pem": "PEM"},
}


@needs_haproxy
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_haproxy_accepts_every_variant(variant: str, pem: Path, tmp_path: Path) -> None:
    values = {k: (str(pem) if v == "PEM" else v) for k, v in VARIANTS[variant].items()}
    cfg = HaproxyConfig.model_validate(values)
    path = tmp_path / "haproxy.cfg"
    path.write_bytes(render(cfg))
    result = subprocess.run(
        [HAPROXY_BIN, "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout
    make_workload(tmp_path / "root", haproxy_bin=HAPROXY_BIN).check(render(cfg))  # no raise


# ---- HaproxyWorkload: gate, atomic write, reload ------------------------------------------
@needs_haproxy
def test_configure_writes_once_then_noop(tmp_path: Path) -> None:
    workload = make_workload(tmp_path, haproxy_bin=HAPROXY_BIN)
    cfg = HaproxyConfig.from_options(units(3))
    assert workload.configure(cfg) is True
    path = tmp_path / "etc/haproxy/haproxy.cfg"
    assert path.read_bytes() == render(cfg)
    assert path.stat().st_mode & 0o777 == 0o644
    assert workload.configure(cfg) is False
    assert leftovers(tmp_path) == []
    assert workload.configure(HaproxyConfig.from_options(units(4))) is True


@needs_haproxy
def test_rejected_config_keeps_old_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    workload = make_workload(tmp_path, haproxy_bin=HAPROXY_BIN)
    good = HaproxyConfig.from_options(units(2))
    assert workload.configure(good)
    assert workload.ensure_running(True)
    old = (tmp_path / "etc/haproxy/haproxy.cfg").read_bytes()
    # A certificate file that does not exist: valid syntax, refused by the real haproxy.
    broken = HaproxyConfig.from_options(units(3), tls_pem=str(tmp_path / "missing.pem"))
    with pytest.raises(BlockedError, match=haproxy.REJECTED_MESSAGE):
        workload.configure(broken)
    assert (tmp_path / "etc/haproxy/haproxy.cfg").read_bytes() == old
    assert leftovers(tmp_path) == []  # the candidate was removed
    assert not workload.paths.reload_marker.exists()  # nothing new to load
    assert "haproxy -c failed" in caplog.text


def test_missing_binary_is_a_workload_error(tmp_path: Path) -> None:
    workload = make_workload(tmp_path, haproxy_bin=str(tmp_path / "no-haproxy"))
    with pytest.raises(WorkloadError, match="not installed"):
        workload.configure(HaproxyConfig.from_options(units(1)))
    assert not (tmp_path / "etc/haproxy/haproxy.cfg").exists()
    assert leftovers(tmp_path) == []


def test_check_timeout_is_a_workload_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(cmd: list[str], **_: object) -> None:
        raise subprocess.TimeoutExpired(cmd, 60)

    monkeypatch.setattr(haproxy.subprocess, "run", slow)
    with pytest.raises(WorkloadError, match="did not finish"):
        make_workload(tmp_path).check(b"global\n")
    assert leftovers(tmp_path) == []


def fake_check(workload: HaproxyWorkload, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    checked: list[bytes] = []
    monkeypatch.setattr(workload, "check", checked.append)
    return checked


def test_reload_only_when_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = FakeServices()
    workload = make_workload(tmp_path, services)
    checked = fake_check(workload, monkeypatch)
    one, two = HaproxyConfig.from_options(units(1)), HaproxyConfig.from_options(units(2))

    assert workload.ensure_running(workload.configure(one)) is True
    assert services.calls == [("start", "haproxy")]  # stopped -> start (no reload needed)
    assert workload.ensure_running(workload.configure(one)) is False
    assert services.calls == [("start", "haproxy")]
    assert workload.ensure_running(workload.configure(two)) is True
    assert services.calls[-1] == ("reload", "haproxy")
    assert ("restart", "haproxy") not in services.calls
    assert len(checked) == 2  # unchanged bytes are not even re-checked
    assert not workload.paths.reload_marker.exists()


def test_reload_owed_by_a_dead_hook_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = FakeServices(running={"haproxy"})
    workload = make_workload(tmp_path, services)
    fake_check(workload, monkeypatch)
    assert workload.configure(HaproxyConfig.from_options(units(2)))
    # the hook dies here; the next one finds nothing changed but the marker still set
    assert workload.configure(HaproxyConfig.from_options(units(2))) is False
    assert workload.ensure_running(False) is True
    assert services.calls == [("reload", "haproxy")]
    assert workload.ensure_running(False) is False


def test_stopped_haproxy_is_started(tmp_path: Path) -> None:
    services = FakeServices()
    assert make_workload(tmp_path, services).ensure_running(False) is True
    assert services.calls == [("start", "haproxy")]


@pytest.mark.parametrize("action", ["start", "reload"])
def test_service_failure_is_a_workload_error(tmp_path: Path, action: str) -> None:
    services = FakeServices(running=set() if action == "start" else {"haproxy"}, fail_on={action})
    workload = make_workload(tmp_path, services)
    with pytest.raises(WorkloadError, match="haproxy failed"):
        workload.ensure_running(True)


@pytest.mark.parametrize(("systemd", "status", "reload"), [
    # no cgroup v2 tree under the root: systemctl answers
    (True, [["systemctl", "is-active", "--quiet", "haproxy"]], ["systemctl", "reload", "haproxy"]),
    (False, [], ["service", "haproxy", "reload"]),  # the pidfile answers
])
def test_with_and_without_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systemd: bool, status: list[list[str]],
    reload: list[str],
) -> None:
    cmds: list[list[str]] = []

    def run(cmd: list[str], **_: object) -> SimpleNamespace:
        cmds.append(cmd)
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    pidfile = tmp_path / "run/haproxy.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(os.getpid()))
    workload = make_workload(tmp_path, ServiceManager(systemd=systemd, root=str(tmp_path)))
    assert workload.ensure_running(True) is True
    assert cmds == [*status, reload]


def test_default_workload_targets_the_real_paths() -> None:
    workload = HaproxyWorkload(services=FakeServices())  # type: ignore[arg-type]
    spec = workload.spec(HaproxyConfig())
    assert spec.path == Path("/etc/haproxy/haproxy.cfg")
    assert (spec.owner, spec.group, spec.mode) == ("root", "root", 0o644)


# ---- stats socket -------------------------------------------------------------------------
STAT_CSV = (
    "# pxname,svname,qcur,scur,status,\n"
    "glance_api,FRONTEND,0,0,OPEN,\n"
    "glance_api,glance-0,0,0,UP,\n"
    "glance_api,glance-1,0,0,DOWN,\n"
    "glance_api,glance-2,0,3,MAINT,\n"
    "glance_api,BACKEND,0,3,UP,\n"
    "other,srv,0,0,UP,\n\n"
)


@pytest.fixture
def stats_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "admin.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(100))
            conn.sendall(STAT_CSV.encode())

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield path
    thread.join(timeout=5)
    server.close()
    assert received == [b"show stat\n"]


def test_server_states(stats_socket: Path) -> None:
    assert server_states(stats_socket) == {"glance-0": "UP", "glance-1": "DOWN",
                                           "glance-2": "MAINT"}


@pytest.mark.parametrize(("server", "up"), [("glance-0", True), ("glance-1", False),
                                            ("glance-9", False)])
def test_wait_server_up(stats_socket: Path, monkeypatch: pytest.MonkeyPatch, server: str,
                        up: bool) -> None:
    """UP: True after one more check interval; DOWN past the timeout or unlisted: False."""
    monkeypatch.setattr(haproxy, "CHECK_INTERVAL", 0.0)
    workload = HaproxyWorkload(stats_socket=str(stats_socket))
    assert workload.wait_server_up(server, timeout=0) is up


def test_wait_server_up_without_haproxy(tmp_path: Path) -> None:
    workload = HaproxyWorkload(stats_socket=str(tmp_path / "missing.sock"))
    assert workload.wait_server_up("glance-0") is False


def test_configure_remembers_the_stats_socket(tmp_path: Path) -> None:
    workload = HaproxyWorkload(paths=HaproxyPaths(tmp_path), haproxy_bin="true",
                               services=FakeServices())  # type: ignore[arg-type]
    workload.owner, workload.group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(
        os.getgid()).gr_name
    workload.configure(HaproxyConfig(stats_socket="/run/elsewhere.sock"))
    assert workload.stats_socket == "/run/elsewhere.sock"


# ---- from peers to haproxy.cfg (Harness, 1/3/5 units) ---------------------------------------
class TinyCharm(ops.CharmBase):
    """Only the metadata matters: the peer relation is read by the helpers under test."""


@pytest.fixture
def harness() -> Iterator[ops.testing.Harness[TinyCharm]]:
    harness = ops.testing.Harness(TinyCharm, meta=(REPO_ROOT / "metadata.yaml").read_text())
    harness.begin()
    yield harness
    harness.cleanup()


@pytest.mark.parametrize("count", [1, 3, 5])
def test_peer_units_become_backends(harness: ops.testing.Harness[TinyCharm], count: int) -> None:
    rel_id = harness.add_relation("cluster", "glance")
    for n in range(1, count):
        harness.add_relation_unit(rel_id, f"glance/{n}")
        harness.update_relation_data(
            rel_id, f"glance/{n}", {"private-address": f"10.5.0.{10 + n}"}
        )
    relation = harness.model.get_relation("cluster")
    pairs = peers.peer_addresses(relation, harness.charm.unit, "10.5.0.10")
    cfg = HaproxyConfig.from_options(pairs)
    assert servers(cfg) == [
        f"server glance-{n} 10.5.0.{10 + n}:9282 check inter 2000 rise 2 fall 3"
        for n in range(count)
    ]


def test_departed_peer_leaves_the_backends(harness: ops.testing.Harness[TinyCharm]) -> None:
    rel_id = harness.add_relation("cluster", "glance")
    for n in (1, 2):
        harness.add_relation_unit(rel_id, f"glance/{n}")
        harness.update_relation_data(rel_id, f"glance/{n}", {"private-address": f"10.5.0.{n}"})
    harness.remove_relation_unit(rel_id, "glance/1")
    relation = harness.model.get_relation("cluster")
    pairs = peers.peer_addresses(relation, harness.charm.unit, "10.5.0.0")
    assert pairs == [("glance/0", "10.5.0.0"), ("glance/2", "10.5.0.2")]


@pytest.mark.parametrize(("server", "drained"), [
    ("glance-1", True),  # DOWN, no session left
    ("glance-0", False),  # still UP past the timeout
    ("glance-2", False),  # out of rotation, but 3 requests still running
    ("glance-9", False),  # not listed
])
def test_wait_server_drained(stats_socket: Path, monkeypatch: pytest.MonkeyPatch, server: str,
                             drained: bool) -> None:
    monkeypatch.setattr(haproxy, "CHECK_INTERVAL", 0.0)
    workload = HaproxyWorkload(stats_socket=str(stats_socket))
    assert workload.wait_server_drained(server, timeout=0) is drained


def test_wait_server_drained_without_haproxy(tmp_path: Path) -> None:
    workload = HaproxyWorkload(stats_socket=str(tmp_path / "missing.sock"))
    assert workload.wait_server_drained("glance-0", timeout=0) is False

"""Workload edges: apt, dpkg-query, glance-manage, service commands, atomic files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from glance_charm.domain import distro
from glance_charm.domain.exceptions import WorkloadError
from glance_charm.workload import files, glance
from glance_charm.workload.service import ServiceError, ServiceManager


class Recorder:
    def __init__(self, returncode: int = 0, stdout: str = "") -> None:
        self.cmds: list[list[str]] = []
        self.returncode = returncode
        self.stdout = stdout

    def __call__(self, cmd: list[str], **_: object) -> SimpleNamespace:
        self.cmds.append(cmd)
        return SimpleNamespace(returncode=self.returncode, stdout=self.stdout, stderr="boom")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(subprocess, "run", recorder)
    return recorder


@pytest.mark.parametrize(("systemd", "expected"), [
    (True, ["systemctl", "restart", "glance-api"]),
    (False, ["service", "glance-api", "restart"]),
])
def test_service_commands(run: Recorder, systemd: bool, expected: list[str]) -> None:
    ServiceManager(systemd=systemd).restart("glance-api")
    assert run.cmds == [expected]


def test_service_status_and_failure(run: Recorder, tmp_path: Path) -> None:
    manager = ServiceManager(systemd=False, root=str(tmp_path))  # no pidfile: stopped
    assert not manager.is_running("haproxy")
    assert run.cmds == []  # answered from the pidfile, no process
    pidfile = tmp_path / distro.PIDFILES["haproxy"].lstrip("/")
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{os.getpid()}\n")
    assert manager.is_running("haproxy")
    pidfile.write_text("999999999\n")  # stale: no such process
    assert not manager.is_running("haproxy")
    pidfile.write_bytes(b"\xff\xfe")  # unreadable: ask the init script
    assert manager.is_running("haproxy")
    assert run.cmds[-1] == ["service", "haproxy", "status"]
    run.returncode = 3
    assert not manager.is_running("haproxy")
    assert not ServiceManager(systemd=False).is_running("no-such-service")  # no pidfile known
    assert run.cmds[-1] == ["service", "no-such-service", "status"]
    with pytest.raises(ServiceError):
        manager.start("haproxy")
    manager.enable("haproxy")  # SysV: nothing to do
    assert run.cmds[-1] == ["service", "haproxy", "start"]
    systemd = ServiceManager(systemd=True)
    run.returncode = 0
    systemd.enable("haproxy")
    systemd.stop("haproxy")
    systemd.reload("haproxy")
    assert run.cmds[-3:] == [["systemctl", "enable", "haproxy"], ["systemctl", "stop", "haproxy"],
                            ["systemctl", "reload", "haproxy"]]


def test_systemd_status_from_the_units_cgroup(run: Recorder, tmp_path: Path) -> None:
    manager = ServiceManager(systemd=True, root=str(tmp_path))
    assert manager.is_running("glance-api")  # no cgroup v2 tree: systemctl answers
    assert run.cmds == [["systemctl", "is-active", "--quiet", "glance-api"]]
    procs = tmp_path / distro.SYSTEMD_CGROUP.format(name="glance-api").lstrip("/")
    procs.parent.mkdir(parents=True)
    assert not manager.is_running("haproxy")  # the tree, but no cgroup: stopped
    procs.write_text("")
    assert not manager.is_running("glance-api")  # an empty cgroup: stopped
    procs.write_text("1234\n1240\n")
    assert manager.is_running("glance-api")
    assert len(run.cmds) == 1


DPKG_STATUS_TEXT = """Package: glance-common
Status: install ok installed
Version: 2:25.1.0-2

Package: glance-api
Status: deinstall ok config-files
Architecture: all
Version: 2:24.0.0-1

Package: glance-api
Status: install ok installed
Description: OpenStack Image Registry and Delivery Service - API server
 Version: 9.9 (a continuation line, not the field)
Version: 2:25.1.0-2

Package: haproxy
Status: hold ok installed
Version: 2.6.12-1"""


def test_installed_version_reads_dpkg_status(run: Recorder, tmp_path: Path) -> None:
    status = tmp_path / distro.DPKG_STATUS.lstrip("/")
    workload = glance.GlanceWorkload(paths=glance.GlancePaths(tmp_path))
    assert workload.installed_version() is None  # no dpkg database at all
    status.parent.mkdir(parents=True)
    status.write_text(DPKG_STATUS_TEXT)
    assert workload.installed_version() == "2:25.1.0-2"
    assert workload.installed_version("haproxy") == "2.6.12-1"
    assert workload.installed_version("glance") is None  # a prefix of other names
    assert workload.packages_installed(("glance-common", "haproxy"))
    assert not workload.packages_installed(("glance-common", "ceph-common"))
    status.write_text(DPKG_STATUS_TEXT.replace("Status: install ok installed\nDescription",
                                               "Status: deinstall ok config-files\nDescr"))
    assert workload.installed_version() is None
    assert run.cmds == []  # no dpkg-query process


def test_dpkg_status_matches_dpkg_query() -> None:
    """On this machine: the reader answers what dpkg-query does, for every package."""
    if not Path(distro.DPKG_STATUS).exists():
        pytest.skip("no dpkg database on this machine")
    query = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Version}\n"],
                           capture_output=True, text=True, check=True).stdout
    expected: dict[str, str | None] = {}
    for line in query.splitlines():
        name, status, version = line.split("\t")
        if ":" in name:  # multi-arch names: the reader looks packages up by plain name
            continue
        expected[name] = version if status.endswith(" installed") else None
    names = tuple(sorted(expected))[:400]
    assert distro.dpkg_versions(names) == {name: expected[name] for name in names}


def test_db_sync_runs_as_glance_and_hides_output(run: Recorder, caplog) -> None:
    workload = glance.GlanceWorkload()
    workload.db_sync()
    assert run.cmds[0][:4] == ["runuser", "-u", "glance", "--"]
    assert run.cmds[0][-1] == "db_sync"
    run.returncode = 1
    run.stdout = "mysql+pymysql://glance:SECRET@db/glance"
    with pytest.raises(WorkloadError):
        workload.db_sync()
    assert "SECRET" not in caplog.text


def test_install_distro_and_cloud_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    from charmlibs import apt

    added: list[object] = []
    repos: list[str] = []
    monkeypatch.setattr(apt, "add_package", lambda names, **_: added.append(names))

    def add(_self: object, repo: apt.DebianRepository, **_: object) -> None:
        repos.append(f"{repo.repotype} {repo.uri} {repo.release} {' '.join(repo.groups)}")

    monkeypatch.setattr(apt.RepositoryMapping, "__init__", lambda _self: None)
    monkeypatch.setattr(apt.RepositoryMapping, "add", add)
    workload = glance.GlanceWorkload()
    workload.install("distro")
    assert added == [list(distro.GLANCE_PACKAGES)] and repos == []
    workload.install("cloud:noble-epoxy")
    assert added[1] == "ubuntu-cloud-keyring"
    assert repos == ["deb http://ubuntu-cloud.archive.canonical.com/ubuntu "
                     "noble-updates/epoxy main"]


def test_install_failure_is_workload_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from charmlibs import apt

    def fail(*_: object, **__: object) -> None:
        raise apt.PackageError("Failed to install packages: glance-api")

    monkeypatch.setattr(apt, "add_package", fail)
    with pytest.raises(WorkloadError, match="Package installation failed"):
        glance.GlanceWorkload().install("distro")


def test_healthy_against_a_local_server() -> None:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthcheck" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        workload = glance.GlanceWorkload()
        assert workload.healthy(server.server_address[1])
    finally:
        server.shutdown()
    assert not workload.healthy(server.server_address[1], timeout=0.5)


def test_release_profiles() -> None:
    assert distro.release_for_version("2:25.1.0-2+deb12u5") == "zed"
    assert distro.release_for_version("2:28.0.1-0ubuntu1") == "caracal"
    assert distro.release_for_version("garbage") == "unknown"
    assert not distro.release_profile("zed").enforce_scope
    assert distro.release_profile("caracal").enforce_new_defaults


def test_atomic_write_modes_and_noop(tmp_path: Path) -> None:
    import grp
    import pwd

    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    spec = files.FileSpec(tmp_path / "d" / "secret.conf", b"key=1\n", 0o600, owner, group)
    assert files.write(spec)
    assert (spec.path.stat().st_mode & 0o777) == 0o600
    assert not files.write(spec)
    os.chmod(spec.path, 0o644)
    assert files.write(spec)  # mode drift is repaired
    assert (spec.path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in spec.path.parent.iterdir()] == ["secret.conf"]
    assert files.remove(spec.path) and not files.remove(spec.path)
    assert files.ensure_dir(tmp_path / "x", 0o750, owner, group)
    assert not files.ensure_dir(tmp_path / "x", 0o750, owner, group)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    import grp
    import pwd

    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "glance-api.conf"
    files.write(files.FileSpec(path, b"old\n", 0o640, owner, group))

    def broken_replace(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        files.write(files.FileSpec(path, b"new\n", 0o640, owner, group))
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["glance-api.conf"]


def test_requests_running_counts_connections_to_the_port(tmp_path: Path) -> None:
    """What the drain waits for: accepted connections on glance-api's port, from anyone."""
    import socket

    workload = glance.GlanceWorkload(paths=glance.GlancePaths(tmp_path))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        assert workload.requests_running(port) == 0
        assert workload.wait_idle(port, timeout=5)
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                assert workload.requests_running(port) == 1  # the server side only
                assert not workload.wait_idle(port, timeout=0)
            client.close()
        assert workload.requests_running(port) == 0  # closed: TIME_WAIT is not a request

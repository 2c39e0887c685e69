"""ServiceManager against real commands: pause at boot (item 9), restarts that restart (item 11).

Issue 13 items 9 and 11. The systemd branch runs a fake `systemctl` put first on PATH (no
systemd here) that records its argv and keeps unit state (running, enabled, masked) in
files; the SysV branch runs the real `update-rc.d` on this machine's glance-api script; the
restart escalation runs real processes that ignore SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glance_charm.domain import distro
from glance_charm.domain.exceptions import WorkloadError
from glance_charm.workload import service as service_module
from glance_charm.workload.glance import GlancePaths, GlanceWorkload
from glance_charm.workload.service import ServiceError, ServiceManager, alive

FAKE_SYSTEMCTL = r"""#!/bin/sh
# records argv; keeps each unit's state as files, as systemd would answer
state="$FAKE_STATE"
echo "$*" >> "$state/argv"
if [ "$1" = is-active ]; then name="$3"; else name="$2"; fi
case "$1" in
  is-active) [ -e "$state/running-$name" ] ;;
  start|restart)
    if [ -e "$state/masked-$name" ]; then echo "Unit $name.service is masked." >&2; exit 1; fi
    touch "$state/running-$name" ;;
  stop) rm -f "$state/running-$name" ;;
  enable) if [ -e "$state/masked-$name" ]; then exit 1; fi; touch "$state/enabled-$name" ;;
  disable) rm -f "$state/enabled-$name" ;;
  mask) touch "$state/masked-$name" ;;
  unmask) rm -f "$state/masked-$name" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake systemctl first on PATH; returns its state directory."""
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    script = bindir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    for name in ("glance-api", "haproxy"):
        (state / f"running-{name}").touch()
        (state / f"enabled-{name}").touch()
    return state


def argv(state: Path) -> list[str]:
    return (state / "argv").read_text().splitlines()


def test_systemd_pause_stops_disables_masks_and_resume_reverses(
    systemctl: Path, tmp_path: Path,
) -> None:
    """Pause: stop, `systemctl disable`, `systemctl mask`; resume: unmask, enable.

    Follows charmhelpers charmhelpers/core/host.py service_pause / service_resume (the
    classic charm's pause/resume actions, openstack/charm-glance actions/actions.py ->
    charmhelpers/contrib/openstack/utils.py pause_unit / resume_unit).
    """
    services = ServiceManager(systemd=True, root=str(tmp_path / "root"))
    services.pause("glance-api")
    assert argv(systemctl) == ["is-active --quiet glance-api", "stop glance-api",
                               "disable glance-api", "mask glance-api"]
    assert not services.is_running("glance-api")
    with pytest.raises(ServiceError):  # masked: a reboot (or anyone) cannot start it
        services.start("glance-api")
    assert not (systemctl / "enabled-glance-api").exists()
    (systemctl / "argv").unlink()
    services.enable_boot("glance-api")
    assert argv(systemctl) == ["unmask glance-api", "enable glance-api"]
    services.start("glance-api")
    assert services.is_running("glance-api")


def test_systemd_pause_of_a_stopped_service_still_masks(systemctl: Path, tmp_path: Path) -> None:
    """Charmhelpers core/host.py service_pause: stop only when running, mask regardless."""
    (systemctl / "running-haproxy").unlink()
    ServiceManager(systemd=True, root=str(tmp_path)).pause("haproxy")
    assert argv(systemctl) == ["is-active --quiet haproxy", "disable haproxy", "mask haproxy"]


def test_upstart_override_written_and_removed(tmp_path: Path) -> None:
    """Charmhelpers core/host.py service_pause: upstart jobs get NAME.override "manual"."""
    (tmp_path / "etc/init").mkdir(parents=True)
    (tmp_path / "etc/init/glance-api.conf").write_text("exec glance-api\n")
    services = ServiceManager(systemd=False, root=str(tmp_path))
    services.disable_boot("glance-api")
    assert (tmp_path / "etc/init/glance-api.override").read_text() == "manual\n"
    services.enable_boot("glance-api")
    assert not (tmp_path / "etc/init/glance-api.override").exists()


def test_unknown_init_system_is_an_error(tmp_path: Path) -> None:
    """Charmhelpers core/host.py service_pause raises when no init system knows the service."""
    with pytest.raises(ServiceError, match="no systemd, upstart or SysV"):
        ServiceManager(systemd=False, root=str(tmp_path)).disable_boot("glance-api")


def rc_links(name: str) -> list[str]:
    return sorted(f"{d.name}/{link.name}" for d in Path("/etc").glob("rc?.d")
                  for link in d.iterdir() if link.name[3:] == name)


@pytest.mark.skipif(not Path(distro.INIT_D_DIR, "glance-api").exists()
                    or not Path("/usr/sbin/update-rc.d").exists(),
                    reason="needs Debian's glance-api package and update-rc.d")
def test_sysv_boot_links_disabled_and_enabled_for_real() -> None:
    """A real `update-rc.d glance-api disable|enable` on this machine's SysV links.

    charmhelpers core/host.py service_pause/service_resume (SysV branch): no S link is
    left to start glance-api at boot while paused; resume restores the start links.
    """
    services = ServiceManager(systemd=False, root="/")
    before = rc_links("glance-api")
    assert any(link.split("/")[1].startswith("S") for link in before)
    try:
        services.disable_boot("glance-api")
        paused = rc_links("glance-api")
        assert paused and not any(link.split("/")[1].startswith("S") for link in paused)
    finally:
        services.enable_boot("glance-api")
    assert rc_links("glance-api") == before


# ---- item 11: the restart escalation --------------------------------------------------------

STUBBORN_MASTER = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the old master that will not stop
if os.fork() == 0:  # a worker in the master's process group, as glance-api's are
    time.sleep(600)
    sys.exit(0)
with open(sys.argv[1] + ".ready", "w") as handle:
    handle.write(str(os.getpid()))
time.sleep(600)
"""

# Debian's /etc/init.d/glance-api restart when its stop gives up on the old master:
# do_stop SIGTERMs the pidfile's pid, its start-stop-daemon --retry fails, `rm -f
# $PIDFILE` runs anyway, then a new master is started and written to the pidfile.
FAKE_SERVICE = """\
#!/bin/sh
echo "$*" >> "$FAKE_STATE/argv"
[ "$1" = glance-api ] && [ "$2" = restart ] || exit 2
[ -s "$PIDFILE" ] && kill -TERM "$(cat "$PIDFILE")" 2>/dev/null  # --retry gives up: ignored
rm -f "$PIDFILE"
setsid "$PYTHON" "$NEW_MASTER" > /dev/null 2>&1 &
echo $! > "$PIDFILE"
"""


@pytest.fixture
def stubborn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[subprocess.Popen[bytes], ServiceManager, Path]]:
    """A real glance-api master (named so) that ignores SIGTERM, owning the pidfile."""
    root, bindir, state = tmp_path / "root", tmp_path / "bin", tmp_path / "state"
    for path in (bindir, state):
        path.mkdir()
    pidfile = root / distro.PIDFILES["glance-api"].lstrip("/")
    pidfile.parent.mkdir(parents=True)
    fake = bindir / "service"
    fake.write_text(FAKE_SERVICE)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("PIDFILE", str(pidfile))
    program = tmp_path / "glance-api"
    program.write_text(STUBBORN_MASTER)
    (tmp_path / "new").mkdir()
    (tmp_path / "new/glance-api").write_text("import time\ntime.sleep(600)\n")
    monkeypatch.setenv("NEW_MASTER", str(tmp_path / "new/glance-api"))
    monkeypatch.setenv("PYTHON", sys.executable)
    master = subprocess.Popen([sys.executable, str(program), str(pidfile)],
                              start_new_session=True)  # its own process group, like glance's
    ready = Path(f"{pidfile}.ready")
    while not ready.exists() or not ready.read_text():
        if master.poll() is not None:
            pytest.fail("the stubborn master died")
    pidfile.write_text(f"{master.pid}\n")
    services = ServiceManager(systemd=False, root=str(root))
    services.term_timeout = 1.0  # the bounded wait, short for the test
    yield master, services, state
    for pid, _ in new_master(services, timeout=2.0):
        os.kill(pid, signal.SIGKILL)
    if master.poll() is None:
        os.killpg(master.pid, signal.SIGKILL)
    master.wait()


def test_restart_kills_an_old_master_that_ignores_sigterm(
    stubborn: tuple[subprocess.Popen[bytes], ServiceManager, Path],
) -> None:
    """The old master and its worker are gone after restart(): SIGTERM, then SIGKILL.

    Follows Debian's /etc/init.d/glance-api (openstack-pkg-tools init-script-template:
    do_stop `start-stop-daemon --stop --retry=TERM/30/KILL/5 --pidfile`, then `rm -f
    $PIDFILE` whatever the outcome) and glance's glance/common/wsgi.py PosixServer (the
    master leads its workers' process group). Today the restart returns with both alive.
    """
    master, services, state = stubborn
    old = services.processes("glance-api")
    assert len(old) == 2  # the master and its worker
    services.restart("glance-api")
    assert alive(old) == set()
    assert master.wait() == -signal.SIGKILL  # SIGTERM was ignored: SIGKILL ended it
    # once, and once more after the kill (the new master could not have bound the port)
    assert (state / "argv").read_text().splitlines() == ["glance-api restart"] * 2
    new = new_master(services)
    assert new and not new & old


def new_master(services: ServiceManager, timeout: float = 10.0) -> set[tuple[int, int]]:
    """The new master, from the pidfile, once it has exec'd.

    The restart returns when the pidfile is written, as start-stop-daemon --background
    does, while the child may still be exec'ing: within an exec its command line is briefly
    empty (the kernel installs the new image before its arguments), and `processes`, which
    checks the pidfile's pid is glance-api by its command line, does not see it then.
    """
    deadline = time.monotonic() + timeout
    while not (found := services.processes("glance-api")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_old_master_surviving_sigkill_blocks_naming_glance_api(
    stubborn: tuple[subprocess.Popen[bytes], ServiceManager, Path],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Not killable (signals not delivered): the restart fails, the restart stays owed.

    The unit is then Blocked "glance-api failed to start; see its log" (never Active on
    the old master's stale config), and the next hook retries the restart.
    """
    master, services, state = stubborn
    services.kill_timeout = 0.5
    workload = GlanceWorkload(paths=GlancePaths(tmp_path / "root"), services=services)
    workload.mark_restart_needed()
    with monkeypatch.context() as patch:  # undone before the fixture kills what is left
        patch.setattr(service_module.os, "kill", lambda pid, sig: None)
        with pytest.raises(WorkloadError, match=r"^glance-api failed to start; see its log$"):
            workload.ensure_running(restart=True)
    assert workload.restart_needed()
    assert master.poll() is None
    assert (state / "argv").read_text().splitlines() == ["glance-api restart"]


def test_restart_of_a_clean_service_runs_once(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A master that stops as asked: one restart command, nothing killed."""
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    (bindir / "service").write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "$*" >> "$FAKE_STATE/argv"
    """))
    (bindir / "service").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    ServiceManager(systemd=False, root=str(tmp_path)).restart("glance-api")
    assert (state / "argv").read_text().splitlines() == ["glance-api restart"]


def test_processes_systemd_reads_the_units_cgroup(tmp_path: Path) -> None:
    """systemd: the unit's processes are its cgroup's (a restart checks those are gone)."""
    cgroup = tmp_path / "sys/fs/cgroup/system.slice/glance-api.service/cgroup.procs"
    services = ServiceManager(systemd=True, root=str(tmp_path))
    assert services.processes("glance-api") == set()  # stopped: no cgroup
    cgroup.parent.mkdir(parents=True)
    with subprocess.Popen(["sleep", "60"]) as child:
        try:
            cgroup.write_text(f"{child.pid}\n")
            (found,) = services.processes("glance-api")
            assert found[0] == child.pid
            child.kill()
            child.wait()
            assert alive({found}) == set()  # gone (and a reused pid would differ in start)
        finally:
            child.kill()


def test_a_stale_pidfile_never_names_another_program(tmp_path: Path) -> None:
    """The pidfile's pid now runs something else (a stale file): nothing is ours to kill."""
    pidfile = tmp_path / distro.PIDFILES["glance-api"].lstrip("/")
    pidfile.parent.mkdir(parents=True)
    services = ServiceManager(systemd=False, root=str(tmp_path))
    assert services.processes("glance-api") == set()  # no pidfile
    assert services.processes("glance-registry") == set()  # no pidfile known
    pidfile.write_text("not a pid\n")
    assert services.processes("glance-api") == set()
    with subprocess.Popen(["sleep", "60"]) as child:
        try:
            pidfile.write_text(f"{child.pid}\n")
            assert services.processes("glance-api") == set()  # `sleep`, not glance-api
            child.kill()
            child.wait()
            assert services.processes("glance-api") == set()  # no such process
        finally:
            child.kill()


def test_terminate_skips_processes_already_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that ends between the look and the signal is not an error."""
    with subprocess.Popen(["sleep", "60"]) as child:
        (found,) = {p for p in service_module.process_group(os.getpgid(child.pid))
                    if p[0] == child.pid}

        real_kill = os.kill

        def gone(pid: int, sig: int) -> None:
            real_kill(child.pid, signal.SIGKILL)  # it ends just before the signal
            child.wait()
            raise ProcessLookupError(pid)

        with monkeypatch.context() as patch:
            patch.setattr(service_module.os, "kill", gone)
            ServiceManager(systemd=False).terminate({found})
        assert alive({found}) == set()


def test_failing_update_rc_d_is_a_service_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`update-rc.d` failing fails pause (the action then fails), as check_call would."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "update-rc.d").write_text("#!/bin/sh\necho 'insserv: broken' >&2\nexit 1\n")
    (bindir / "update-rc.d").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (tmp_path / "etc/init.d").mkdir(parents=True)
    (tmp_path / "etc/init.d/glance-api").write_text("#!/bin/sh\n")
    services = ServiceManager(systemd=False, root=str(tmp_path))
    with pytest.raises(ServiceError, match=r"update-rc\.d glance-api disable failed"):
        services.disable_boot("glance-api")
    with pytest.raises(ServiceError, match=r"update-rc\.d glance-api enable failed"):
        services.enable_boot("glance-api")
    with pytest.raises(ServiceError, match="no systemd, upstart or SysV"):
        services.enable_boot("haproxy")

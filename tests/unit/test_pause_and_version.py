"""Issue 13 items 9 and 10 at the charm: pause survives a reboot; the workload version.

Item 9: `pause` stops glance-api and haproxy and disables them at boot (masked on
systemd), `resume` enables them again; the `start` hook Juju runs after a reboot (and any
other hook) keeps a paused unit's services stopped where nothing masks them.
Item 10: `juju status` shows glance's upstream version, refreshed when the packages may
have changed, without a hook tool or process on a steady update-status.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ops
import pytest
from ops.testing import ActionFailed

from glance_charm.workload.service import ServiceManager
from tests.unit.conftest import UPGRADED_VERSION, GlanceHarness
from tests.unit.workload.test_service_lifecycle import FAKE_SYSTEMCTL

PAUSED = ops.MaintenanceStatus("Paused. Use 'resume' action to resume normal service.")
SERVICES = ("glance-api", "haproxy")


@pytest.fixture
def ready(gh: GlanceHarness) -> GlanceHarness:
    gh.relate_core()
    gh.event()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    return gh


def test_pause_disables_at_boot_and_resume_enables(ready: GlanceHarness) -> None:
    """Charmhelpers charmhelpers/core/host.py service_pause / service_resume, per service.

    The classic charm's pause/resume (openstack/charm-glance actions/actions.py ->
    hooks/glance_utils.py pause_unit_helper -> charmhelpers contrib/openstack/utils.py
    pause_unit) disable every service at boot, not only stop it.
    """
    gh = ready
    gh.harness.run_action("pause")
    assert gh.services.boot_disabled == set(SERVICES)
    assert gh.services.running <= {"memcached"}  # the loopback token cache stays
    gh.harness.run_action("resume")
    assert gh.services.boot_disabled == set()
    assert gh.services.running == {*SERVICES, "memcached"}
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_start_after_reboot_keeps_a_paused_unit_stopped(ready: GlanceHarness) -> None:
    """No systemd to mask them (SysV boot, or started by hand): `start` stops them again.

    Follows charmhelpers core/host.py service_pause's intent (a paused service stays down
    across a reboot); Juju runs the `start` hook after every boot.
    """
    gh = ready
    gh.harness.run_action("pause")
    gh.services.running.update(SERVICES)  # the machine rebooted and init started both
    gh.charm.on.start.emit()
    assert gh.services.running <= {"memcached"}  # the loopback token cache stays
    assert gh.status() == PAUSED
    gh.services.running.add("glance-api")  # started by hand: any hook stops it again
    gh.event()
    assert gh.services.running <= {"memcached"}  # the loopback token cache stays
    gh.harness.update_config({"debug": True})
    assert gh.services.running <= {"memcached"}  # the loopback token cache stays


def test_start_of_an_active_unit_reconciles_only_when_owed(ready: GlanceHarness) -> None:
    """`start` on a steady unit does nothing; with glance-api down it starts it."""
    gh = ready
    calls = len(gh.services.calls)
    gh.charm.on.start.emit()
    assert gh.services.calls[calls:] == []
    gh.services.running.discard("glance-api")
    gh.charm.on.start.emit()
    assert gh.services.running == {*SERVICES, "memcached"}


def test_pause_and_resume_on_systemd_run_the_commands(
    ready: GlanceHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commands an operator would see on a systemd host (fake systemctl on PATH).

    charmhelpers core/host.py service_pause: stop, `systemctl disable`, `systemctl mask`;
    service_resume: `systemctl unmask`, `systemctl enable`, then start.
    """
    gh = ready
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bindir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    for name in SERVICES:
        (state / f"running-{name}").touch()
        (state / f"enabled-{name}").touch()
    systemd = ServiceManager(systemd=True, root=str(gh.root))
    monkeypatch.setattr(gh.charm.workload, "services", systemd)
    monkeypatch.setattr(gh.charm.haproxy, "services", systemd)
    gh.harness.run_action("pause")
    assert (state / "argv").read_text().splitlines() == [
        line for name in SERVICES for line in (
            f"is-active --quiet {name}", f"stop {name}", f"disable {name}", f"mask {name}")
    ]
    assert sorted(p.name for p in state.iterdir() if p.name != "argv") == [
        "masked-glance-api", "masked-haproxy"]
    (state / "argv").unlink()
    gh.harness.run_action("resume")
    commands = (state / "argv").read_text().splitlines()
    assert commands[:4] == ["unmask glance-api", "enable glance-api", "unmask haproxy",
                            "enable haproxy"]
    assert {p.name for p in state.iterdir()} >= {"running-glance-api", "running-haproxy",
                                                  "enabled-glance-api", "enabled-haproxy"}
    assert gh.status() == ops.ActiveStatus("Unit is ready")


# ---- item 10 ------------------------------------------------------------------------------

class VersionSpy:
    """Records the unit's application-version-set calls."""

    def __init__(self, gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        backend: Any = gh.harness._backend
        original = backend.application_version_set

        def recorded(version: str) -> None:
            self.calls.append(version)
            original(version)

        monkeypatch.setattr(backend, "application_version_set", recorded)


def test_workload_version_after_install_and_upgrade(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upstream version of the installed package, as the classic charm shows it.

    openstack/charm-glance hooks/glance_utils.py assess_status ->
    os_application_version_set(VERSION_PACKAGE='glance-common'), charmhelpers
    charmhelpers/contrib/openstack/utils.py -> fetch/ubuntu_apt_pkg.py upstream_version:
    `2:25.1.0-2+deb12u5` shows as `25.1.0`.
    """
    spy = VersionSpy(gh, monkeypatch)
    gh.relate_core()
    gh.charm.on.install.emit()
    assert gh.harness.get_workload_version() == "25.1.0"
    gh.harness.update_config({"openstack-origin": "cloud:noble-epoxy"})  # upgrades
    assert gh.workload.version == UPGRADED_VERSION
    assert gh.harness.get_workload_version() == "30.0.0"
    assert spy.calls == ["25.1.0", "30.0.0"]
    gh.charm.on.upgrade_charm.emit()  # looked at again, unchanged: not set again
    assert spy.calls == ["25.1.0", "30.0.0"]


def test_workload_version_follows_dpkg_without_cost_when_steady(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A package changed outside the charm: the next update-status shows its version.

    (unattended-upgrades, an operator's apt). While dpkg's database is unchanged,
    update-status sets nothing.

    openstack/charm-glance hooks/glance_utils.py assess_status sets the version in every
    hook; here only when /var/lib/dpkg/status changed (one stat, no process, no hook tool).
    """
    status = gh.root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text("")
    gh.relate_core()
    gh.event()
    assert gh.harness.get_workload_version() == "25.1.0"
    spy = VersionSpy(gh, monkeypatch)
    for _ in range(2):
        gh.event()
    assert spy.calls == []
    gh.workload.version = "2:25.2.0-1"
    stamp = status.stat().st_mtime_ns
    os.utime(status, ns=(stamp + 10**9, stamp + 10**9))  # dpkg wrote its database
    gh.event()
    assert spy.calls == ["25.2.0"]
    gh.event()
    assert spy.calls == ["25.2.0"]


def test_resume_fails_when_the_services_cannot_be_enabled(ready: GlanceHarness) -> None:
    """Resume that cannot enable them at boot fails and leaves the unit paused."""
    gh = ready
    gh.harness.run_action("pause")
    gh.services.fail_on.add("enable_boot")
    with pytest.raises(ActionFailed, match="enabling glance-api at boot failed"):
        gh.harness.run_action("resume")
    assert gh.status() == PAUSED
    assert gh.services.running <= {"memcached"}  # the loopback token cache stays


def test_paused_stop_failing_is_logged_not_raised(
    ready: GlanceHarness, caplog: pytest.LogCaptureFixture,
) -> None:
    """A paused unit whose service will not stop logs it; the hook does not raise."""
    gh = ready
    gh.harness.run_action("pause")
    gh.services.running.add("glance-api")
    gh.services.fail_on.add("stop")
    gh.charm.on.start.emit()
    assert "stopping glance-api (paused) failed" in caplog.text
    assert gh.status() == PAUSED

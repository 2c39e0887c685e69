"""Harness set-up: the real charm and workload code, with files under a temp root.

Only the edges that need a real machine are replaced: the service manager records calls
instead of running `service`, apt/dpkg/glance-manage are recorded, and files land under
tmp_path with the test user's owner and group. Rendering, comparing, atomic writes,
restart decisions and relation handling are the production code.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ops
import ops.testing
import pytest

from charm import GlanceCharm
from glance_charm.domain import distro
from glance_charm.workload.glance import GlancePaths, GlanceWorkload
from glance_charm.workload.haproxy import HAPROXY_BIN, HaproxyPaths, HaproxyWorkload
from glance_charm.workload.tls import TLSPaths, TLSWorkload
from tests.fixtures import load

GLANCE_VERSION = "2:25.1.0-2+deb12u5"
UPGRADED_VERSION = "2:30.0.0-0ubuntu1~cloud0"


@dataclass
class FakeServices:
    """Records service actions; tracks which services run."""

    running: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_on: set[str] = field(default_factory=set)
    boot_disabled: set[str] = field(default_factory=set)  # disable_boot'ed (pause)

    def _act(self, action: str, name: str) -> None:
        from glance_charm.workload.service import ServiceError

        self.calls.append((action, name))
        if action in self.fail_on:
            raise ServiceError(f"{action} {name} failed")

    def start(self, name: str) -> None:
        self._act("start", name)
        self.running.add(name)

    def stop(self, name: str) -> None:
        self._act("stop", name)
        self.running.discard(name)

    def restart(self, name: str) -> None:
        self._act("restart", name)
        self.running.add(name)

    def reload(self, name: str) -> None:
        self._act("reload", name)

    def is_running(self, name: str) -> bool:
        return name in self.running

    def disable_boot(self, name: str) -> None:
        self._act("disable_boot", name)
        self.boot_disabled.add(name)

    def enable_boot(self, name: str) -> None:
        self._act("enable_boot", name)
        self.boot_disabled.discard(name)

    def pause(self, name: str) -> None:
        if name in self.running:
            self.stop(name)
        self.disable_boot(name)

    def count(self, action: str, name: str = "glance-api") -> int:
        return self.calls.count((action, name))


@dataclass
class RecordingWorkload(GlanceWorkload):
    """The real workload, with apt, dpkg-query and glance-manage recorded."""

    version: str | None = GLANCE_VERSION
    installs: list[str] = field(default_factory=list)
    db_syncs: int = 0
    install_error: Exception | None = None
    # what install() put there (the fixture starts with glance installed)
    packages: set[str] = field(default_factory=lambda: set(distro.GLANCE_PACKAGES))
    package_installs: list[tuple[str, ...]] = field(default_factory=list)
    package_error: Exception | None = None

    def installed_version(self, package: str = "glance-api") -> str | None:
        if package == "glance-api":
            return self.version
        return "1.0" if package in self.packages else None

    def _apt_install(self, packages: tuple[str, ...]) -> None:
        """Record the apt call instead of running it (package_error: apt fails)."""
        self.package_installs.append(tuple(packages))
        if self.package_error is not None:
            raise self.package_error
        self.packages.update(packages)

    def install(self, origin: str) -> None:
        self.installs.append(origin)
        if self.install_error is not None:
            raise self.install_error
        self.version = GLANCE_VERSION
        self.packages.update(distro.GLANCE_PACKAGES)

    def db_sync(self) -> None:
        self.db_syncs += 1

    upgrades: list[str] = field(default_factory=list)
    health_waits: int = 0

    def wait_healthy(self, port: int, timeout: float = 120.0) -> bool:
        """No API here: record the wait (the functional tier polls the real one)."""
        self.health_waits += 1
        return True

    def wait_idle(self, port: int, timeout: float = 600.0) -> bool:
        """No API here: nothing runs (the functional tier counts real connections)."""
        return True

    def upgrade(self, origin: str) -> None:
        """Record the upgrade; the new release's package version becomes installed."""
        self.upgrades.append(origin)
        self.version = UPGRADED_VERSION


@dataclass
class RecordingHaproxy(HaproxyWorkload):
    """The real haproxy workload; waiting for a server back in rotation is only recorded."""

    up_waits: list[str] = field(default_factory=list)
    drain_waits: list[str] = field(default_factory=list)
    drained: bool = True

    def wait_server_up(self, server: str, timeout: float = 60.0) -> bool:
        """No haproxy here: record the wait (the functional tier reads the real one)."""
        self.up_waits.append(server)
        return True

    def wait_server_drained(self, server: str, timeout: float = 60.0) -> bool:
        """Record the wait; answer `drained` (the functional tier reads the real one)."""
        self.drain_waits.append(server)
        return self.drained


def make_haproxy(root: Path, services: FakeServices) -> RecordingHaproxy:
    """The real haproxy workload under root; `haproxy -c` is the real binary when present."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    binary = HAPROXY_BIN if Path(HAPROXY_BIN).exists() else "true"
    return RecordingHaproxy(paths=HaproxyPaths(root), services=services,  # type: ignore[arg-type]
                            haproxy_bin=binary, owner=user, group=group)


@dataclass
class RecordingTLS(TLSWorkload):
    """The real TLS files under the test root; update-ca-certificates is only counted."""

    ca_refreshes: int = 0

    def refresh_ca_store(self) -> None:
        self.ca_refreshes += 1


def make_tls(root: Path) -> RecordingTLS:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return RecordingTLS(paths=TLSPaths(root), owner=user, group=group)


def make_workload(root: Path) -> RecordingWorkload:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return RecordingWorkload(
        paths=GlancePaths(root), services=FakeServices(),  # type: ignore[arg-type]
        user=user, group=group, config_owner=user,
    )


class GlanceHarness:
    """Harness plus shortcuts for the relations glance has."""

    def __init__(self, harness: ops.testing.Harness[GlanceCharm], root: Path) -> None:
        self.harness = harness
        self.root = root

    @property
    def charm(self) -> GlanceCharm:
        return self.harness.charm

    @property
    def workload(self) -> RecordingWorkload:
        return self.harness.charm.workload  # type: ignore[return-value]

    @property
    def services(self) -> FakeServices:
        return self.workload.services  # type: ignore[return-value]

    @property
    def conf_path(self) -> Path:
        return self.root / "etc/glance/glance-api.conf"

    def add_fixture(self, name: str, units: int | None = None,
                    override: dict[str, Any] | None = None) -> int:
        data = load(name)
        rel_id = self.harness.add_relation(data["endpoint"], data["remote_app"])
        if data["remote_app_data"]:
            self.harness.update_relation_data(rel_id, data["remote_app"], data["remote_app_data"])
        for index, (unit, bag) in enumerate(sorted(data["remote_units_data"].items())):
            if units is not None and index >= units:
                break
            self.harness.add_relation_unit(rel_id, unit)
            self.harness.update_relation_data(rel_id, unit, {**bag, **(override or {})})
        return rel_id

    def relate_core(self) -> tuple[int, int]:
        """Relate the required database and identity (glance can run with local storage)."""
        return self.add_fixture("shared-db_mysql-router"), self.add_fixture(
            "identity-service_keystone"
        )

    def relate_ceph(self, answer: bool = True, units: int | None = None) -> int:
        """Relate ceph-mon without its canned broker answers; answer our request if asked."""
        rel = self.add_fixture("ceph_ceph-mon", units=units, override=dict.fromkeys(
            ("broker-rsp-glance-0", "broker_rsp"), ""
        ))
        if answer:
            self.answer_broker(rel)
        return rel

    def sent_broker_request(self, rel: int) -> dict[str, Any]:
        """The broker request this unit sent on the ceph relation."""
        import json

        return json.loads(self.harness.get_relation_data(rel, self.charm.unit.name)["broker_req"])

    def answer_broker(self, rel: int, exit_code: int = 0, stderr: str | None = None,
                      request_id: str | None = None, unit: str = "ceph-mon/0") -> None:
        """Play the ceph-mon leader: answer the request this unit sent (its request-id)."""
        import json

        response: dict[str, Any] = {
            "exit-code": exit_code,
            "request-id": request_id or self.sent_broker_request(rel)["request-id"],
        }
        if stderr is not None:
            response["stderr"] = stderr
        self.harness.update_relation_data(rel, unit, {"broker-rsp-glance-0": json.dumps(response)})

    def status(self) -> ops.StatusBase:
        self.harness.evaluate_status()
        return self.harness.model.unit.status

    def event(self) -> None:
        """Fire a no-op event the way Juju would (one hook)."""
        self.harness.charm.on.update_status.emit()

    def conf(self) -> Any:
        import configparser

        # [DEFAULT] is a section like the others here: its keys must not leak into them.
        parser = configparser.ConfigParser(interpolation=None, default_section="\0")
        parser.read_string(self.conf_path.read_text())
        return parser


def use_test_workloads(root: Path, monkeypatch: pytest.MonkeyPatch) -> RecordingWorkload:
    """Every charm built from now on gets the real workloads under root, services recorded."""
    workload = make_workload(root)
    monkeypatch.setattr(GlanceCharm, "workload_factory", staticmethod(lambda: workload))
    haproxy = make_haproxy(root, workload.services)  # type: ignore[arg-type]
    monkeypatch.setattr(GlanceCharm, "haproxy_factory", staticmethod(lambda: haproxy))
    tls = make_tls(root)
    monkeypatch.setattr(GlanceCharm, "tls_factory", staticmethod(lambda: tls))
    return workload


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlanceHarness]:
    root = tmp_path / "root"
    use_test_workloads(root, monkeypatch)
    harness = ops.testing.Harness(GlanceCharm)
    harness.add_network("10.5.0.100")
    harness.set_leader(True)
    harness.add_relation("cluster", "glance")
    harness.begin()
    wrapped = GlanceHarness(harness, root)
    yield wrapped
    harness.cleanup()


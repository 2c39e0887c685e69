"""update-status and config-changed that find nothing to do: no reconcile, no status-set.

A steady unit (last hook active, same leadership, services running, nothing owed) answers
update-status without rendering, without hook tools beyond what ops itself calls, and
config-changed compares config + binding addresses with the last active reconcile. Anything
else falls through to the full reconcile, which these tests show converging.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import ops
import pytest

import charm as charm_module
from tests.unit.conftest import GlanceHarness


class Spy:
    """Counts reconciles and status-set calls of the charm under test."""

    def __init__(self, gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reconciles = 0
        self.status_sets: list[tuple[str, str]] = []
        original = charm_module.GlanceCharm._reconcile

        def counted(charm: charm_module.GlanceCharm, *args: Any) -> str | None:
            self.reconciles += 1
            return original(charm, *args)

        monkeypatch.setattr(charm_module.GlanceCharm, "_reconcile", counted)
        backend: Any = gh.harness._backend
        status_set = backend.status_set

        def recorded(status: str, message: str = "", *, is_app: bool = False) -> None:
            if not is_app:
                self.status_sets.append((status, message))
            status_set(status, message, is_app=is_app)

        monkeypatch.setattr(backend, "status_set", recorded)


def hook(gh: GlanceHarness, event: Any) -> ops.StatusBase:
    """Emit an event and collect status as ops does at the end of every hook."""
    event.emit()
    return gh.status()


@pytest.fixture
def steady(gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch) -> tuple[GlanceHarness, Spy]:
    gh.relate_core()
    assert hook(gh, gh.charm.on.update_status) == ops.ActiveStatus("Unit is ready")
    assert gh.services.running == {"glance-api", "haproxy", "memcached"}
    return gh, Spy(gh, monkeypatch)


def test_steady_update_status_does_nothing(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    written = gh.conf_path.stat().st_mtime_ns
    calls = len(gh.services.calls)
    for _ in range(3):
        assert hook(gh, gh.charm.on.update_status) == ops.ActiveStatus("Unit is ready")
    assert spy.reconciles == 0
    assert spy.status_sets == []  # Juju keeps the status it has
    assert gh.services.calls[calls:] == []
    assert gh.conf_path.stat().st_mtime_ns == written


def test_update_status_restarts_a_dead_service(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    gh.services.running.discard("glance-api")
    assert hook(gh, gh.charm.on.update_status) == ops.ActiveStatus("Unit is ready")
    assert spy.reconciles == 1
    assert gh.services.count("start") == 1
    gh.services.running.discard("haproxy")
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 2
    assert gh.services.count("start", "haproxy") >= 1
    # the token cache glance-api.conf points at is watched too (not only at the next hook)
    gh.services.running.discard("memcached")
    assert hook(gh, gh.charm.on.update_status) == ops.ActiveStatus("Unit is ready")
    assert spy.reconciles == 3
    assert "memcached" in gh.services.running
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 3


def test_update_status_finishes_an_owed_restart(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    restarts = gh.services.count("restart")
    gh.workload.mark_restart_needed()  # a hook died between writing and restarting
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 1
    assert gh.services.count("restart") == restarts + 1
    assert not gh.workload.restart_needed()
    gh.charm.haproxy.mark_reload_needed()
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 2
    assert gh.services.count("reload", "haproxy") >= 1
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 2


def test_update_status_reconciles_after_a_problem(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(gh, monkeypatch)
    assert hook(gh, gh.charm.on.update_status).name == "blocked"  # no relations yet
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 2  # not active: every update-status looks again
    assert spy.status_sets == [("blocked", "Missing relations: database, identity")]


def test_leadership_moved_without_a_hook_reconciles(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    with gh.harness.hooks_disabled():
        gh.harness.set_leader(False)
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 1


def test_paused_update_status_keeps_paused(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    gh.harness.run_action("pause")
    assert gh.status() == ops.MaintenanceStatus(charm_module.PAUSED_MESSAGE)
    hook(gh, gh.charm.on.update_status)
    assert spy.reconciles == 0
    assert spy.status_sets == [("maintenance", charm_module.PAUSED_MESSAGE)]
    assert "glance-api" not in gh.services.running


def test_config_changed_without_change_does_nothing(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    assert hook(gh, gh.charm.on.config_changed) == ops.ActiveStatus("Unit is ready")
    assert spy.reconciles == 0
    assert spy.status_sets == []


def test_config_changed_with_change_reconciles(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    restarts = gh.services.count("restart")
    gh.harness.update_config({"debug": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert spy.reconciles == 1
    assert gh.services.count("restart") == restarts + 1
    assert gh.conf()["DEFAULT"]["debug"] == "true"
    gh.harness.charm.on.config_changed.emit()  # the same config again
    assert spy.reconciles == 1


def test_config_changed_after_an_address_change_reconciles(
    steady: tuple[GlanceHarness, Spy],
) -> None:
    gh, spy = steady
    gh.harness.add_network("10.5.0.200", endpoint="cluster")  # (Harness: no extra-bindings)
    gh.harness.charm.framework.model._bindings._data.clear()  # a new hook: nothing cached
    hook(gh, gh.charm.on.config_changed)
    assert spy.reconciles == 1
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    assert "10.5.0.200" in gh.harness.get_relation_data(peer.id, "glance/0").values()


def test_bad_config_then_back_reconciles_each_time(steady: tuple[GlanceHarness, Spy]) -> None:
    gh, spy = steady
    gh.harness.update_config({"worker-multiplier": -1.0})
    assert gh.status().name == "blocked"
    gh.harness.charm.on.config_changed.emit()
    assert spy.reconciles == 2  # blocked: no fast path
    gh.harness.update_config({"worker-multiplier": 2.0})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert spy.status_sets[-1] == ("active", "Unit is ready")


def test_progress_status_is_followed_by_the_final_status(
    steady: tuple[GlanceHarness, Spy],
) -> None:
    gh, spy = steady
    gh.charm.reconciler.set_progress(ops.MaintenanceStatus("Installing Ceph packages"))
    assert hook(gh, gh.charm.on.config_changed) == ops.ActiveStatus("Unit is ready")
    assert spy.status_sets[-1] == ("active", "Unit is ready")


@pytest.mark.parametrize("name", ["metadata.yaml", "config.yaml", "actions.yaml"])
def test_libyaml_parses_the_charm_files_as_ops_would(
    name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    text = (Path(__file__).resolve().parents[2] / name).read_text()
    expected = yaml.safe_load(text)
    monkeypatch.setattr(yaml, "safe_load", yaml.safe_load)  # restored after the test
    charm_module.use_libyaml()
    assert isinstance(yaml.safe_load, functools.partial)
    assert yaml.safe_load.keywords == {"Loader": yaml.CSafeLoader}
    assert yaml.safe_load(text) == expected


STEADY_PROBE = """
import sys, tempfile
from pathlib import Path
sys.path[:0] = [sys.argv[1]]
import ops.testing
import charm
from glance_charm.workload.glance import GlancePaths, GlanceWorkload
from glance_charm.workload.haproxy import HaproxyPaths, HaproxyWorkload

class Running:
    def is_running(self, name):
        return True

root = Path(tempfile.mkdtemp())
charm.GlanceCharm.workload_factory = staticmethod(
    lambda: GlanceWorkload(paths=GlancePaths(root), services=Running()))
charm.GlanceCharm.haproxy_factory = staticmethod(
    lambda: HaproxyWorkload(paths=HaproxyPaths(root), services=Running()))
harness = ops.testing.Harness(charm.GlanceCharm)
harness.begin()
stored = harness.charm._stored
stored.last_status = ["active", charm.READY_MESSAGE]
stored.leader = False
harness.charm.on.update_status.emit()
heavy = ("pydantic", "jinja2", "cryptography", "charmlibs", "glance_charm.reconcile",
         "glance_charm.relations", "glance_charm.state")
print(sorted(m for m in sys.modules if m.startswith(heavy)))
"""


def test_steady_update_status_loads_no_heavy_module() -> None:
    """A steady update-status (run in a fresh interpreter) imports none of the reconcile side."""
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", STEADY_PROBE, str(src)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_root_logger_filter_only_in_the_hook_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the charm patches nothing; main()'s set-up adds the filter once."""
    import logging

    root = logging.getLogger()
    assert charm_module._not_debug not in root.filters  # importing installed nothing
    monkeypatch.setattr(root, "filters", list(root.filters))
    charm_module.quiet_root_logger()
    charm_module.quiet_root_logger()
    assert root.filters.count(charm_module._not_debug) == 1
    debug = logging.LogRecord("root", logging.DEBUG, __file__, 1, "x", None, None)
    info = logging.LogRecord("root", logging.INFO, __file__, 1, "x", None, None)
    assert not root.filter(debug)
    assert root.filter(info)


def test_main_sets_up_the_process_then_runs_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(charm_module, "use_libyaml", lambda: calls.append("libyaml"))
    monkeypatch.setattr(charm_module, "quiet_root_logger", lambda: calls.append("logger"))
    monkeypatch.setattr(charm_module.ops, "main",
                        lambda cls: calls.append(f"ops.main({cls.__name__})"))
    charm_module.main()
    assert calls == ["libyaml", "logger", "ops.main(GlanceCharm)"]

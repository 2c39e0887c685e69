"""Actions: pause/resume, openstack-upgrade (action-managed), security-checklist."""

from __future__ import annotations

import ops
import pytest
from ops.testing import ActionFailed

from tests.unit.conftest import UPGRADED_VERSION, GlanceHarness

PAUSED = ops.MaintenanceStatus("Paused. Use 'resume' action to resume normal service.")


@pytest.fixture
def ready(gh: GlanceHarness) -> GlanceHarness:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    return gh


def test_pause_survives_hooks_and_resume_restarts(ready: GlanceHarness) -> None:
    gh = ready
    out = gh.harness.run_action("pause")
    assert out.results == {"outcome": "paused"}
    assert "glance-api" not in gh.services.running
    assert gh.status() == PAUSED
    gh.harness.update_config({"debug": True})  # config written, service left stopped
    gh.event()
    assert gh.conf()["DEFAULT"]["debug"] == "true"
    assert "glance-api" not in gh.services.running
    assert gh.status() == PAUSED
    restarts = gh.services.count("restart")
    gh.harness.run_action("resume")
    assert gh.services.count("restart") == restarts + 1  # the owed restart, once
    assert "glance-api" in gh.services.running
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_upgrade_action_refused_unless_action_managed(ready: GlanceHarness) -> None:
    with pytest.raises(ActionFailed, match="action-managed-upgrade is false"):
        ready.harness.run_action("openstack-upgrade")


def test_config_change_upgrades_when_not_action_managed(ready: GlanceHarness) -> None:
    gh = ready
    restarts = gh.services.count("restart")
    gh.harness.update_config({"openstack-origin": "cloud:noble-epoxy"})
    assert gh.workload.upgrades == ["cloud:noble-epoxy"]
    assert gh.workload.db_syncs == 2  # new package version: the leader migrates once
    assert gh.services.count("restart") == restarts + 1
    gh.event()
    assert gh.workload.upgrades == ["cloud:noble-epoxy"]


def test_action_managed_upgrade_waits_for_the_action(ready: GlanceHarness) -> None:
    gh = ready
    gh.harness.update_config({"action-managed-upgrade": True})
    gh.harness.update_config({"openstack-origin": "cloud:noble-epoxy"})
    gh.event()
    assert gh.workload.upgrades == []
    restarts = gh.services.count("restart")
    out = gh.harness.run_action("openstack-upgrade")
    assert out.results == {"outcome": "upgraded to cloud:noble-epoxy",
                           "version": UPGRADED_VERSION}
    assert gh.workload.upgrades == ["cloud:noble-epoxy"]
    assert gh.workload.db_syncs == 2
    assert gh.services.count("restart") == restarts + 1
    again = gh.harness.run_action("openstack-upgrade")
    assert again.results == {"outcome": "no upgrade available"}


def test_security_checklist_reports_each_check(ready: GlanceHarness) -> None:
    gh = ready
    gh.workload.group = "root"  # charm-written files carry the test user's group
    with pytest.raises(ActionFailed) as failed:
        gh.harness.run_action("security-checklist")
    results = failed.value.output.results
    assert results["config-permissions"] == "PASS"
    assert results["keystone-auth"] == "PASS"
    assert results["image-locations-hidden"] == "PASS"
    assert results["keystone-tls"].startswith("FAIL: keystone URLs without TLS")
    assert results["api-tls"].startswith("FAIL")
    assert "checks failed" in failed.value.message


def test_checklist_flags_world_readable_config(ready: GlanceHarness) -> None:
    from glance_charm.workload.checklist import check_permissions

    ready.conf_path.chmod(0o644)
    ok, why = check_permissions(ready.workload.paths, "glance")
    assert not ok and "glance-api.conf is 0o644" in why

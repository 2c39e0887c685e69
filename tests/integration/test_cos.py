"""The packed charm with the real grafana-agent subordinate on `cos-agent` (issue 14, COS).

Builds on the core deployment (keystone, MySQL, nova-cloud-controller, glance): relates
grafana-agent (canonical/grafana-agent-operator, whose `COSAgentRequirer` reads the unit's
``config``), then checks from inside the unit that haproxy's exporter answers on the scrape
job's target, that the agent's view of the relation holds the job, the alert rules and the
dashboard, and that haproxy's log file exists for the agent to tail. Skipped (conftest.py)
when no Juju controller is reachable.
"""

from __future__ import annotations

import json
from pathlib import Path

import jubilant
import pytest

from tests.integration import helpers


@pytest.fixture(scope="module")
def cos(juju: jubilant.Juju, charm_path: Path) -> jubilant.Juju:
    helpers.deploy_core(juju, charm_path, helpers.keystone_admin_password())
    helpers.deploy_grafana_agent(juju)
    helpers.wait_active(juju, helpers.APP)
    return juju


def test_agent_gets_the_scrape_job_rules_and_dashboard(cos: jubilant.Juju) -> None:
    sent = helpers.cos_agent_data(cos)
    assert set(sent) == set(cos.status().apps[helpers.APP].units)
    for raw in sent.values():
        data = json.loads(raw)
        (job,) = data["metrics_scrape_jobs"]
        assert job["static_configs"] == [{"targets": ["127.0.0.1:8405"]}]
        alerts = {rule["alert"] for group in data["metrics_alert_rules"]["groups"]
                  for rule in group["rules"]}
        assert "GlanceAPIUnavailable" in alerts
        assert len(data["dashboards"]) == 1


def test_exporter_answers_on_the_unit_and_haproxy_logs_to_a_file(cos: jubilant.Juju) -> None:
    for unit in cos.status().apps[helpers.APP].units:
        metrics = cos.exec("curl", "-sf", "http://127.0.0.1:8405/metrics", unit=unit).stdout
        assert 'haproxy_backend_active_servers{proxy="glance_api"} 1' in metrics
        cos.exec("curl", "-s", "-o", "/dev/null", "http://127.0.0.1:9292/healthcheck",
                 unit=unit)
        log = cos.exec("tail", "-n", "50", "/var/log/haproxy.log", unit=unit).stdout
        assert "glance_api" in log

"""cos-agent: the data grafana-agent / opentelemetry-collector read; haproxy's exporter.

Contract: canonical/grafana-agent-operator `lib/charms/grafana_agent/v0/cos_agent.py`
(LIBAPI 0, LIBPATCH 11): `COSAgentProvider._on_refresh` writes `CosAgentProviderUnitData`
as JSON under the unit key ``config``; `COSAgentRequirer._validated_provider_data` reads it
with ``CosAgentProviderUnitData(**json.loads(raw))`` (required: ``metrics_alert_rules`` and
``log_alert_rules`` dicts, ``dashboards`` strings, ``metrics_scrape_jobs`` dicts, ``log_slots``
strings); `_scrape_jobs` names jobs ``<app>_<index>_<name>``; `metrics_jobs` adds the juju
topology labels to each static config. The rules and dashboards are checked against cosl
(the library the provider uses: `cosl.rules.AlertRules`, `cosl.utils.LZMABase64`), a
test-only dependency.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import ops
import pytest
import yaml

from glance_charm.domain import distro, observability
from glance_charm.workload.haproxy_config import HaproxyConfig
from tests.unit.conftest import GlanceHarness

ROOT = Path(__file__).resolve().parents[3]
RULES_DIR = ROOT / "src" / "prometheus_alert_rules"
DASHBOARDS_DIR = ROOT / "src" / "grafana_dashboards"
MODEL_UUID = "3f1e2c4a-9b7d-4e6f-8a1b-2c3d4e5f6a7b"
# CosAgentProviderUnitData's fields: required, then optional (None)
REQUIRED = {"metrics_alert_rules", "log_alert_rules", "dashboards", "metrics_scrape_jobs",
            "log_slots"}
OPTIONAL = {"subordinate", "tracing_protocols"}


def relate_agent(gh: GlanceHarness) -> int:
    rel = gh.harness.add_relation("cos-agent", "grafana-agent")
    gh.harness.add_relation_unit(rel, "grafana-agent/0")
    return rel


def sent(gh: GlanceHarness, rel: int) -> dict[str, Any]:
    raw = gh.harness.get_relation_data(rel, gh.charm.unit.name)["config"]
    data = json.loads(raw)
    assert isinstance(data, dict)
    return data


def haproxy_cfg(gh: GlanceHarness) -> str:
    return (gh.root / "etc/haproxy/haproxy.cfg").read_text()


def test_provider_data_as_the_cos_agent_requirer_reads_it(gh: GlanceHarness) -> None:
    """Every field `CosAgentProviderUnitData` requires, with the types it validates."""
    gh.relate_core()
    rel = relate_agent(gh)
    data = sent(gh, rel)
    assert set(data) == REQUIRED | OPTIONAL
    assert data["subordinate"] is None and data["tracing_protocols"] is None
    assert data["log_slots"] == []
    assert data["log_alert_rules"] == {}  # no Loki rules shipped: see the charm's docs
    assert data["metrics_scrape_jobs"] == [{
        "job_name": "glance_0_haproxy",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": ["127.0.0.1:8405"]}],
    }]
    assert isinstance(data["dashboards"], list) and len(data["dashboards"]) == 1
    groups = data["metrics_alert_rules"]["groups"]
    model = gh.charm.model
    assert [g["name"] for g in groups] == [f"{model.name}_{model.uuid[:8]}_glance_glance_rules"]
    assert groups[0]["rules"][0]["labels"]["juju_model_uuid"] == model.uuid
    alerts = {rule["alert"] for rule in groups[0]["rules"]}
    assert alerts == {"GlanceHAProxyDown", "GlanceAPIUnavailable", "GlanceAPIBackendDown",
                      "GlanceAPIHigh5xxRate"}
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_sent_while_glance_still_waits_for_its_relations(gh: GlanceHarness) -> None:
    """Monitoring does not wait for the database: the alerts must see a unit that is down."""
    rel = relate_agent(gh)
    assert sent(gh, rel)["metrics_scrape_jobs"]
    assert "frontend metrics" in haproxy_cfg(gh)
    assert isinstance(gh.status(), ops.BlockedStatus)  # missing relations, reported as before


def test_exporter_frontend_only_while_related_and_on_the_loopback(gh: GlanceHarness) -> None:
    """The exporter answers anyone who reaches it: loopback only, gone with the agent."""
    gh.relate_core()
    assert "prometheus-exporter" not in haproxy_cfg(gh)
    rel = relate_agent(gh)
    cfg = haproxy_cfg(gh)
    assert "frontend metrics\n    bind 127.0.0.1:8405\n" in cfg
    assert "http-request use-service prometheus-exporter if { path /metrics }" in cfg
    gh.harness.remove_relation(rel)
    assert "prometheus-exporter" not in haproxy_cfg(gh)


def test_rsyslog_installed_with_the_relation(gh: GlanceHarness) -> None:
    """Haproxy logs reach /var/log/haproxy.log (which the agent tails) through rsyslog."""
    gh.workload.packages.discard("rsyslog")
    gh.relate_core()
    assert "rsyslog" not in gh.workload.packages
    relate_agent(gh)
    assert distro.LOG_PACKAGES in gh.workload.package_installs


def test_no_write_when_nothing_changed(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = relate_agent(gh)
    before = gh.harness.get_relation_data(rel, gh.charm.unit.name)["config"]
    gh.event()
    assert gh.harness.get_relation_data(rel, gh.charm.unit.name)["config"] == before


def test_metrics_frontend_refuses_addresses_off_the_machine() -> None:
    with pytest.raises(ValueError, match="loopback"):
        HaproxyConfig(metrics_address="10.5.0.100")
    with pytest.raises(ValueError, match="loopback"):
        HaproxyConfig(metrics_address="0.0.0.0")  # noqa: S104
    assert HaproxyConfig(metrics_address="::1").metrics_bind == "[::1]:8405"


def topology() -> observability.Topology:
    return observability.Topology(model="openstack", model_uuid=MODEL_UUID,
                                  application="glance", unit="glance/0", charm_name="glance")


def test_alert_rules_equal_cosl_with_the_matchers_cos_tool_would_inject() -> None:
    """Group names and labels exactly as cosl `AlertRules` makes them.

    The expressions are cosl's with the topology matchers where the charm marked each
    selector (cosl has `cos-tool` inject them into every selector, and drops the mark when
    the binary is absent, as here).
    """
    from cosl import JujuTopology
    from cosl.rules import AlertRules

    ours = observability.alert_rules(RULES_DIR, topology())
    theirs_obj = AlertRules(query_type="promql", topology=JujuTopology(
        model="openstack", model_uuid=MODEL_UUID, application="glance", unit="glance/0",
        charm_name="glance"))
    theirs_obj.add_path(str(RULES_DIR))
    theirs = theirs_obj.as_dict()
    matchers = topology().matchers
    assert matchers == ('juju_model="openstack",juju_model_uuid="3f1e2c4a-9b7d-4e6f-8a1b-'
                        '2c3d4e5f6a7b",juju_application="glance"')
    assert [g["name"] for g in ours["groups"]] == [g["name"] for g in theirs["groups"]]
    for our_group, their_group in zip(ours["groups"], theirs["groups"], strict=True):
        for our_rule, their_rule in zip(our_group["rules"], their_group["rules"], strict=True):
            assert our_rule["labels"] == their_rule["labels"]
            assert our_rule["expr"].count(matchers) >= 1
            assert our_rule["expr"].replace(matchers + ",", "") == their_rule["expr"]
            assert {k: v for k, v in our_rule.items() if k not in ("expr", "labels")} == {
                k: v for k, v in their_rule.items() if k not in ("expr", "labels")}


def test_every_selector_is_kept_to_this_application() -> None:
    """A rule without the matchers would alert on every glance in the COS (cosl's purpose)."""
    for group in observability.alert_rules(RULES_DIR, topology())["groups"]:
        for rule in group["rules"]:
            selectors = rule["expr"].count("{")
            assert rule["expr"].count(topology().matchers) == selectors, rule["alert"]


def test_dashboard_decodes_as_cosl_and_grafana_read_it() -> None:
    from cosl.utils import LZMABase64

    (encoded,) = observability.dashboards(DASHBOARDS_DIR)
    dashboard = json.loads(LZMABase64.decompress(encoded))
    assert dashboard == json.loads((DASHBOARDS_DIR / "glance.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Requests per second", "Responses by status class", "glance-api servers up",
            "Upload throughput (client to glance)", "Download throughput (glance to client)",
            "Latency (average of the last 1024 requests)"} <= titles
    for panel in dashboard["panels"]:  # COS's datasource variable, as its charms' dashboards
        assert panel["datasource"]["uid"] == "${prometheusds}"
        assert all(t["expr"] for t in panel["targets"])


def test_single_rule_files_and_bad_files(tmp_path: Path) -> None:
    """The single-rule format (one rule per file, group named after the file).

    A broken file is an error, not silently dropped.
    """
    (tmp_path / "one.rule").write_text(yaml.safe_dump(
        {"alert": "X", "expr": "up{%%juju_topology%%} < 1", "labels": {"severity": "info"}}))
    rules = observability.alert_rules(tmp_path, topology())
    (group,) = rules["groups"]
    assert group["name"] == "openstack_3f1e2c4a_glance_one_rules"
    assert group["rules"][0]["labels"]["severity"] == "info"
    assert group["rules"][0]["labels"]["juju_charm"] == "glance"
    assert observability.alert_rules(tmp_path / "absent", topology()) == {}
    (tmp_path / "bad.rules").write_text("groups: [{name: x}]\n")
    with pytest.raises(observability.RulesError, match=r"bad\.rules"):
        observability.alert_rules(tmp_path, topology())
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(observability.RulesError, match=r"broken\.json"):
        observability.dashboards(tmp_path)


def test_unreadable_rules_block_with_the_relation_named(gh: GlanceHarness,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> dict[str, Any]:
        raise observability.RulesError("glance.rules: broken")

    gh.relate_core()
    monkeypatch.setattr(observability, "provider_data", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relate_agent(gh)
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus) and "cos-agent" in status.message


def test_rules_and_dashboard_name_the_proxy_haproxy_cfg_defines() -> None:
    """A renamed frontend/backend would leave every alert and panel silently empty."""
    import re

    from glance_charm.workload.haproxy import BACKEND_NAME

    texts = [(RULES_DIR / "glance.rules").read_text(),
             (DASHBOARDS_DIR / "glance.json").read_text().replace('\\"', '"')]
    named = {name for text in texts for name in re.findall(r'proxy="([^"]+)"', text)}
    assert named == {BACKEND_NAME}

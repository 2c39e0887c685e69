"""Issue 14 (COS) on the real stack: the agent's view of glance, with real Prometheus.

The grafana-agent subordinate is played as canonical/grafana-agent-operator does it: its
`COSAgentRequirer` (`lib/charms/grafana_agent/v0/cos_agent.py`) reads the unit's ``config``
JSON, adds the juju topology labels to every scrape job's static configs (`metrics_jobs`) and
hands the jobs and the alert rules to Prometheus; its machine charm tails ``/var/log/**/*log``
(`src/charm.py` `_additional_log_configs`, job ``varlog``). Here Debian's Prometheus gets
exactly those jobs and rules, scrapes the exporter the charm put into the real haproxy in
front of the real glance-api, and evaluates the rules every second:

* every dashboard query and alert expression is valid PromQL over the real series, and the
  series the dashboard needs exist (requests, responses, bytes, servers up);
* with glance-api stopped, GlanceAPIUnavailable and GlanceAPIBackendDown go pending, and
  clear once it is back;
* ``promtool check rules`` accepts the rules and ``promtool test rules`` shows each alert
  firing (and not firing) on synthetic series after its ``for``;
* haproxy's request log reaches /var/log/haproxy.log through rsyslog and the haproxy
  package's own rsyslog drop-in (a socket in haproxy's chroot), and glance-api's log is
  /var/log/glance/glance-api.log: both files the agent tails.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ops
import pytest
import yaml

from tests.functional import realstack
from tests.functional.driver import GlanceStack
from tests.functional.realstack import wait_for

PACKAGES = ("prometheus", "rsyslog")
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS_ADDRESS = "127.0.0.1:19090"  # the sandbox's own loopback
HAPROXY_RSYSLOG_DROPIN = Path("/etc/rsyslog.d/49-haproxy.conf")
HAPROXY_LOG = Path("/var/log/haproxy.log")
GLANCE_LOG = Path("/var/log/glance/glance-api.log")
DASHBOARD_VARS = {"$__rate_interval": "1m", "$juju_model_uuid": ".*", "$juju_model": ".*",
                  "$juju_application": ".*", "$juju_unit": ".*"}


@pytest.fixture
def agent(stack: GlanceStack) -> Iterator[dict[str, Any]]:
    """Relate a grafana-agent unit; yield the provider data the charm wrote."""
    assert stack.harness is not None
    realstack.install_packages(extra=PACKAGES)
    rel = stack.harness.add_relation("cos-agent", "grafana-agent")
    stack.harness.add_relation_unit(rel, "grafana-agent/0")
    try:
        raw = stack.harness.get_relation_data(rel, stack.charm.unit.name)["config"]
        yield json.loads(raw)
    finally:
        if stack.harness.model.get_relation("cos-agent") is not None:
            stack.harness.remove_relation(rel)


def topology_labels(stack: GlanceStack) -> dict[str, str]:
    """The labels `COSAgentRequirer.metrics_jobs` adds (topology without the charm name)."""
    model = stack.charm.model
    return {"juju_model": model.name or "test", "juju_model_uuid": model.uuid,
            "juju_application": stack.charm.app.name, "juju_unit": stack.charm.unit.name}


def agent_jobs(stack: GlanceStack, data: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = []
    for sent in data["metrics_scrape_jobs"]:
        job = {**sent, "scrape_interval": "1s", "scrape_timeout": "1s"}
        job["static_configs"] = [{**sc, "labels": {**sc.get("labels", {}),
                                                   **topology_labels(stack)}}
                                 for sc in job["static_configs"]]
        jobs.append(job)
    return jobs


def query(expr: str) -> list[dict[str, Any]]:
    url = f"http://{PROMETHEUS_ADDRESS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", (expr, answer)
    result = answer["data"]["result"]
    assert isinstance(result, list)
    return result


def alerts(state: str) -> set[str]:
    return {r["metric"]["alertname"] for r in query(f'ALERTS{{alertstate="{state}"}}')}


@pytest.fixture
def prometheus(stack: GlanceStack, agent: dict[str, Any],
               tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Debian's Prometheus with the agent's jobs and the charm's rules, evaluated every 1 s."""
    rules = tmp_path / "glance.rules.yml"
    rules.write_text(yaml.safe_dump(agent["metrics_alert_rules"]))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": agent_jobs(stack, agent),
    }))
    check = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address={PROMETHEUS_ADDRESS}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    try:
        wait_for("Prometheus to scrape the exporter", _up, timeout=60)
        yield agent
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _up() -> bool:
    try:
        return any(r["value"][1] == "1" for r in query('up{job="glance_0_haproxy"}'))
    except (OSError, ValueError):
        return False


def test_prometheus_scrapes_the_exporter_and_the_rules_follow_glance_api(
        stack: GlanceStack, prometheus: dict[str, Any]) -> None:
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    client = stack.image_client()
    for _ in range(5):
        client.list_images()
    assert alerts("pending") | alerts("firing") == set()
    wait_for("the requests in haproxy's counters", lambda: any(
        float(r["value"][1]) >= 5 for r in query(
            'haproxy_frontend_http_requests_total{proxy="glance_api"}')))
    labels = topology_labels(stack)
    (up,) = query('up{job="glance_0_haproxy"}')
    assert {k: up["metric"][k] for k in labels} == labels

    # the dashboard: every query runs, and the series behind its panels are there
    dashboard = json.loads((Path("src/grafana_dashboards/glance.json")).read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in DASHBOARD_VARS.items():
                expr = expr.replace(var, value)
            query(expr)
    for metric in ("haproxy_frontend_http_requests_total", "haproxy_frontend_bytes_in_total",
                   "haproxy_frontend_bytes_out_total", "haproxy_frontend_http_responses_total",
                   "haproxy_backend_active_servers", "haproxy_server_status",
                   "haproxy_backend_response_time_average_seconds",
                   "haproxy_process_start_time_seconds"):
        assert query(f'{metric}{{juju_unit="{labels["juju_unit"]}"}}'), metric
    (active,) = query('haproxy_backend_active_servers{proxy="glance_api"}')
    assert active["value"][1] == "1"
    for group in prometheus["metrics_alert_rules"]["groups"]:
        for rule in group["rules"]:
            assert query(rule["expr"]) == [], rule["alert"]  # valid, and quiet while healthy

    subprocess.run(["service", "glance-api", "stop"], check=True, capture_output=True)
    down = {"GlanceAPIUnavailable", "GlanceAPIBackendDown", "GlanceAPIHigh5xxRate"}
    try:
        def clients_get_503() -> bool:  # haproxy answers 503 once the server is DOWN
            status = realstack.http_request("GET", "http://127.0.0.1:9292/healthcheck",
                                            expect=range(100, 600)).status
            return status == 503
        wait_for("haproxy to answer 503", clients_get_503, timeout=60)
        for _ in range(20):
            clients_get_503()
        wait_for(f"{sorted(down)} pending", lambda: down <= alerts("pending"), timeout=90)
        (pending,) = [r["metric"] for r in query('ALERTS{alertname="GlanceAPIBackendDown"}')]
        assert pending["server"] == "glance-0" and pending["severity"] == "warning"
        assert pending["juju_application"] == "glance" and pending["juju_charm"] == "glance"
    finally:
        subprocess.run(["service", "glance-api", "start"], check=True, capture_output=True)
        stack.wait_healthy(timeout=90)
    # the outage's 503s stay in the 5xx rule's 5-minute window; the others clear at once
    wait_for("the unavailability alerts to clear", lambda: not (
        alerts("pending") | alerts("firing")) & (down - {"GlanceAPIHigh5xxRate"}), timeout=90)


def test_promtool_accepts_the_rules_and_each_alert_fires_after_its_for(
        agent: dict[str, Any], tmp_path: Path) -> None:
    """Synthetic series through `promtool test rules`: firing, and quiet before `for`."""
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(agent["metrics_alert_rules"]))
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    by_name = {rule["alert"]: rule
               for group in agent["metrics_alert_rules"]["groups"] for rule in group["rules"]}
    first = next(iter(by_name.values()))
    topo = {k: first["labels"][k] for k in ("juju_model", "juju_model_uuid", "juju_application")}
    unit = {**topo, "juju_unit": "glance/0", "instance": "glance/0"}

    def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
        inner = ",".join(f'{k}="{v}"' for k, v in {**unit, **labels}.items())
        return {"series": f"{metric}{{{inner}}}", "values": values}

    def expanded(template: str, labels: dict[str, str], value: str) -> str:
        """The annotation as Prometheus expands it (the templates the rules use)."""
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], template)
        return text.replace("{{ $value | humanizePercentage }}", value)

    def fired(name: str, at: str, labels: dict[str, str], value: str = "") -> dict[str, Any]:
        rule = by_name[name]
        exp = {**rule["labels"], **labels}
        return {"eval_time": at, "alertname": name, "exp_alerts": [{
            "exp_labels": exp,
            "exp_annotations": {key: expanded(text, exp, value)
                                for key, text in rule["annotations"].items()},
        }]}

    def quiet(name: str, at: str) -> dict[str, Any]:
        return {"eval_time": at, "alertname": name, "exp_alerts": []}

    job = {"job": "glance_0_haproxy"}
    backend = {"proxy": "glance_api"}
    server_down = {"proxy": "glance_api", "server": "glance-1", "state": "DOWN"}
    aggregated = {k: unit[k] for k in ("juju_model", "juju_model_uuid", "juju_application",
                                       "juju_unit")}  # the 5xx rule's `sum by`
    tests = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            series("up", job, "1 1 0x20"),
            series("haproxy_backend_active_servers", backend, "2 2 0x10"),
            series("haproxy_server_status", server_down, "0 1x20"),
            series("haproxy_frontend_http_responses_total", {**backend, "code": "5xx"},
                   "0+10x30"),
            series("haproxy_frontend_http_responses_total", {**backend, "code": "2xx"},
                   "0+90x30"),
        ],
        "alert_rule_test": [
            quiet("GlanceHAProxyDown", "5m"),
            fired("GlanceHAProxyDown", "8m", {**unit, **job}),
            quiet("GlanceAPIUnavailable", "3m"),
            fired("GlanceAPIUnavailable", "5m", {**unit, **backend}),
            quiet("GlanceAPIBackendDown", "4m"),
            fired("GlanceAPIBackendDown", "7m", {**unit, **server_down}),
            quiet("GlanceAPIHigh5xxRate", "9m"),
            fired("GlanceAPIHigh5xxRate", "20m", aggregated, value="10%"),
        ],
    }]}
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    run = subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_haproxy_and_glance_logs_land_where_the_agent_tails(
        stack: GlanceStack, agent: dict[str, Any], tmp_path: Path) -> None:
    """Rsyslog with the haproxy package's drop-in (only: no /dev/log of the machine's)."""
    assert HAPROXY_RSYSLOG_DROPIN.exists(), "the haproxy package ships the rsyslog drop-in"
    # the package's /var/lib/haproxy/dev (the sandbox's /var/lib/haproxy starts empty)
    Path("/var/lib/haproxy/dev").mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "rsyslog.conf"
    conf.write_text('module(load="imuxsock" SysSock.Use="off")\n'
                    f"$IncludeConfig {HAPROXY_RSYSLOG_DROPIN}\n")
    proc = subprocess.Popen(
        ["/usr/sbin/rsyslogd", "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "rsyslogd.log").open("w"))
    try:
        try:
            wait_for("rsyslog's socket in haproxy's chroot",
                     lambda: Path("/var/lib/haproxy/dev/log").is_socket(), timeout=30)
        except AssertionError:
            print((tmp_path / "rsyslogd.log").read_text())
            raise
        client = stack.image_client()
        marker = f"/v2/images?name=cos-log-{int(time.time())}"
        client._call("GET", marker)
        wait_for("haproxy's request line in /var/log/haproxy.log", lambda: HAPROXY_LOG.exists()
                 and marker in HAPROXY_LOG.read_text(errors="replace"), timeout=30)
        line = next(ln for ln in HAPROXY_LOG.read_text().splitlines() if marker in ln)
        assert "glance_api glance_api/glance-0" in line and " 200 " in line, line
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert GLANCE_LOG.exists() and GLANCE_LOG.stat().st_size > 0
    assert str(GLANCE_LOG).endswith("log") and str(HAPROXY_LOG).endswith("log")  # **/*log

"""What the charm gives COS over `cos-agent`: scrape jobs, alert rules and dashboards.

The data is canonical/grafana-agent-operator's `lib/charms/grafana_agent/v0/cos_agent.py`
`CosAgentProviderUnitData` (LIBAPI 0, LIBPATCH 11), built here without the library (it needs
`cosl`, which needs pydantic, tenacity and diskcache at hook time, and a `cos-tool` binary to
inject label matchers):

* ``metrics_scrape_jobs``: Prometheus ``scrape_config`` dicts; the job names are
  ``<app>_<index>_<name>`` as `COSAgentProvider._scrape_jobs` names them; the agent adds the
  ``juju_*`` topology labels to every static config (`COSAgentRequirer.metrics_jobs`);
* ``metrics_alert_rules`` / ``log_alert_rules``: the Prometheus rule-file format with the
  topology applied as cosl's `Rules._from_dict` applies it (group names
  ``<model>_<uuid[:8]>_<app>_<group>_rules``, ``juju_model``, ``juju_model_uuid``,
  ``juju_application`` and ``juju_charm`` labels on every rule). Where cosl has `cos-tool`
  inject the label matchers into every selector, the charm's rules mark each selector with
  ``%%juju_topology%%`` and the matchers replace the mark, so the result is the same without
  the binary;
* ``dashboards``: each Grafana dashboard's JSON, LZMA-compressed and base64-encoded (cosl
  `LZMABase64.compress`, preset 3).
"""

from __future__ import annotations

import base64
import json
import lzma
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TOPOLOGY_MARK = "%%juju_topology%%"
_RULE_SUFFIXES = (".rule", ".rules", ".yml", ".yaml")
_INVALID_METRIC_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_LZMA_PRESET = 3  # cosl.utils._LZMA_PRESET
METRICS_PATH = "/metrics"


class RulesError(ValueError):
    """A rule file the charm ships cannot be read (a packaging defect, not user input)."""


@dataclass(frozen=True)
class Topology:
    """The Juju topology COS labels everything with (cosl `JujuTopology`).

    Attributes:
        model: model name.
        model_uuid: model UUID.
        application: application name.
        unit: unit name.
        charm_name: the charm's name (metadata ``name``).
    """

    model: str
    model_uuid: str
    application: str
    unit: str
    charm_name: str

    @property
    def identifier(self) -> str:
        """``<model>_<uuid[:8]>_<application>`` (cosl `JujuTopology.identifier`)."""
        return f"{self.model}_{self.model_uuid[:8]}_{self.application}".replace("/", "_")

    @property
    def labels(self) -> dict[str, str]:
        """The ``juju_*`` labels put on every rule (cosl `label_matcher_dict`), in order."""
        items = (("juju_model", self.model), ("juju_model_uuid", self.model_uuid),
                 ("juju_application", self.application), ("juju_charm", self.charm_name))
        return {key: value for key, value in items if value}

    @property
    def matchers(self) -> str:
        """The selector matchers that keep a rule to this application's series."""
        keys = ("juju_model", "juju_model_uuid", "juju_application")
        return ",".join(f'{key}="{self.labels[key]}"' for key in keys if key in self.labels)


def _rule_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in _RULE_SUFFIXES)


def _groups_of(path: Path) -> list[dict[str, Any]]:
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise RulesError(f"{path.name}: {err}") from None
    if not isinstance(content, dict):
        raise RulesError(f"{path.name}: not a rule file")
    if "groups" in content:
        groups = content["groups"]
    elif "expr" in content and ({"alert", "record"} & content.keys()):
        groups = [{"name": path.stem, "rules": [content]}]  # cosl's one-rule-per-file form
    else:
        raise RulesError(f"{path.name}: neither `groups` nor a single rule")
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("name"), str) and isinstance(g.get("rules"), list)
        for g in groups
    ):
        raise RulesError(f"{path.name}: every group needs a name and a list of rules")
    return groups


def alert_rules(directory: Path, topology: Topology) -> dict[str, Any]:
    """The rule files under `directory` as one rule file, with the topology applied.

    Args:
        directory: the charm's rule directory (``src/prometheus_alert_rules``); files ending
            in .rule, .rules, .yml or .yaml, in the official or the single-rule format.
        topology: this unit's topology.

    Returns:
        ``{"groups": [...]}``; ``{}`` without any rule (cosl `Rules.as_dict`).

    Raises:
        RulesError: a file is not a rule file.
    """
    groups = []
    for path in _rule_files(directory):
        for group in _groups_of(path):
            name = f"{topology.identifier}_{group['name']}"
            if not name.endswith("_rules"):
                name += "_rules"
            rules = []
            for raw in group["rules"]:
                if not isinstance(raw, dict) or not isinstance(raw.get("expr"), str):
                    raise RulesError(f"{path.name}: a rule without an expression")
                rule = dict(raw)
                # labels the rule sets itself win (cosl only adds the missing ones)
                rule["labels"] = {**topology.labels, **dict(rule.get("labels") or {})}
                rule["expr"] = rule["expr"].replace(TOPOLOGY_MARK, topology.matchers)
                rules.append(rule)
            groups.append({**group, "name": _INVALID_METRIC_NAME_CHARS.sub("_", name),
                           "rules": rules})
    return {"groups": groups} if groups else {}


def compress(raw: bytes) -> str:
    """LZMA + base64, as cosl `LZMABase64.compress` (Grafana dashboards on the wire)."""
    return base64.b64encode(lzma.compress(raw, preset=_LZMA_PRESET)).decode()


def dashboards(directory: Path) -> list[str]:
    """Every ``*.json`` dashboard under `directory`, compressed for the relation.

    Raises:
        RulesError: a dashboard is not JSON.
    """
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        raw = path.read_bytes()
        try:
            json.loads(raw)
        except ValueError as err:
            raise RulesError(f"{path.name}: {err}") from None
        found.append(compress(raw))
    return found


def scrape_jobs(application: str, targets: Iterable[str]) -> list[dict[str, Any]]:
    """The haproxy exporter's scrape job, named as `COSAgentProvider._scrape_jobs` names it.

    Args:
        application: the application name (the job's prefix).
        targets: ``host:port`` of the exporter, as the agent on this machine reaches it.
    """
    return [{
        "job_name": f"{application}_0_haproxy",
        "metrics_path": METRICS_PATH,
        "static_configs": [{"targets": list(targets)}],
    }]


def provider_data(*, topology: Topology, targets: Iterable[str], metrics_rules_dir: Path,
                  log_rules_dir: Path, dashboards_dir: Path) -> dict[str, Any]:
    """The `cos-agent` unit data (`CosAgentProviderUnitData`, under the key ``config``).

    Raises:
        RulesError: a rule file or dashboard the charm ships is unreadable.
    """
    return {
        "metrics_alert_rules": alert_rules(metrics_rules_dir, topology),
        "log_alert_rules": alert_rules(log_rules_dir, topology),
        "dashboards": dashboards(dashboards_dir),
        "metrics_scrape_jobs": scrape_jobs(topology.application, targets),
        "log_slots": [],  # glance and haproxy are debs: the agent tails /var/log itself
    }

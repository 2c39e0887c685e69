"""`cos-agent` (cos_agent, provides): the unit's telemetry for grafana-agent / otel-collector.

Wire format of canonical/grafana-agent-operator `lib/charms/grafana_agent/v0/cos_agent.py`
(LIBAPI 0, LIBPATCH 11): the principal writes one key, ``config``, in its own unit bag: the
JSON of `CosAgentProviderUnitData` (``metrics_alert_rules``, ``log_alert_rules``,
``dashboards``, ``metrics_scrape_jobs``, ``log_slots``, plus the optional ``subordinate`` and
``tracing_protocols``, null here). The subordinate reads it in `COSAgentRequirer` with
``CosAgentProviderUnitData(**json.loads(raw))``. Only unit data: the relation is subordinate.
The agent's own answer (tracing ``receivers``) is not used: glance sends no traces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ops

from glance_charm.relations.common import update_bag

ENDPOINT = "cos-agent"
KEY = "config"  # CosAgentProviderUnitData.KEY


def publish(relation: ops.Relation, unit: ops.Unit, data: Mapping[str, Any]) -> bool:
    """Write the provider data under ``config``; return whether the bag changed."""
    payload = {**data, "subordinate": None, "tracing_protocols": None}
    return update_bag(relation.data[unit], {KEY: json.dumps(payload, sort_keys=True)})

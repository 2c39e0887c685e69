"""`cluster` peer relation (glance-ha): unit addresses and the leader's db_sync record."""

from __future__ import annotations

import json

import ops

from relations.common import clean, update_bag

ENDPOINT = "cluster"
DB_SYNC_KEY = "db-initialised"


def db_sync_record(relation: ops.Relation | None, app: ops.Application) -> dict[str, str] | None:
    """The leader's record of the last db_sync: {"version": ..., "database": ...}."""
    if relation is None:
        return None
    raw = clean(relation.data[app].get(DB_SYNC_KEY))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    return {str(k): str(v) for k, v in record.items()}


def record_db_sync(
    relation: ops.Relation, app: ops.Application, version: str, database: str
) -> bool:
    """Leader only: remember that db_sync ran for this package version and database."""
    value = json.dumps({"database": database, "version": version}, sort_keys=True)
    return update_bag(relation.data[app], {DB_SYNC_KEY: value})


def publish_address(relation: ops.Relation, unit: ops.Unit, address: str | None) -> bool:
    """Publish this unit's address for the other units' haproxy backends."""
    return update_bag(relation.data[unit], {"private-address": address})

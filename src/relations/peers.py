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


def _unit_number(name: str) -> tuple[str, int]:
    app, _, number = name.partition("/")
    return app, int(number) if number.isdigit() else -1


def _usable_address(value: object) -> str | None:
    """An IP address or host name from a peer bag; None for garbage."""
    from haproxy import valid_host

    text = clean(value)
    if text is None:
        return None
    try:
        return valid_host(text)
    except ValueError:
        return None


def _peer_bags(relation: ops.Relation | None) -> list[tuple[ops.Unit, ops.RelationDataContent]]:
    if relation is None:
        return []
    return [(unit, relation.data[unit]) for unit in relation.units]


def peer_addresses(
    relation: ops.Relation | None, own_unit: ops.Unit, own_address: str | None
) -> list[tuple[str, str]]:
    """Every unit's (name, address) for haproxy's backends, this unit included.

    Peers that have not published a usable ``private-address`` yet (missing, empty or
    not an address) are left out; they appear once their bag holds one.

    Args:
        relation: the ``cluster`` peer relation (None before it exists).
        own_unit: this unit.
        own_address: this unit's address (its ``cluster`` binding); None leaves it out.

    Returns:
        (unit name, address) pairs sorted by application and unit number.
    """
    found: dict[str, str] = {}
    if (address := _usable_address(own_address)) is not None:
        found[own_unit.name] = address
    for unit, bag in _peer_bags(relation):
        address = _usable_address(bag.get("private-address"))
        if unit.name != own_unit.name and address is not None:
            found[unit.name] = address
    return sorted(found.items(), key=lambda item: _unit_number(item[0]))

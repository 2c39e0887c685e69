"""`cluster` peer relation (glance-ha): unit addresses and the leader's db_sync record."""

from __future__ import annotations

import json

import ops

from glance_charm.domain.models import valid_host
from glance_charm.relations.common import clean, update_bag

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
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
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
    text = clean(value)
    if text is None:
        return None
    try:
        return valid_host(text, normalize=True)
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


# ---- rolling restarts: one unit at a time, granted by the leader ----------------------------
RESTART_REQUEST_KEY = "restart-request"
RESTART_DONE_KEY = "restart-done"
RESTART_GRANT_KEY = "restart-granted"


def restart_request(relation: ops.Relation, unit: ops.Unit) -> str | None:
    """The token of the restart a unit is waiting for, if any."""
    return clean(relation.data[unit].get(RESTART_REQUEST_KEY))


def request_restart(relation: ops.Relation, unit: ops.Unit, token: str) -> bool:
    """Ask the leader for the restart lock (keeps an existing request's token)."""
    if restart_request(relation, unit):
        return False
    return update_bag(relation.data[unit], {RESTART_REQUEST_KEY: token})


def finish_restart(relation: ops.Relation, unit: ops.Unit, token: str) -> bool:
    """Report the restart done, which frees the lock for the next unit."""
    return update_bag(relation.data[unit], {RESTART_REQUEST_KEY: None, RESTART_DONE_KEY: token})


def restart_grant(relation: ops.Relation, app: ops.Application) -> tuple[str, str] | None:
    """(unit name, token) currently allowed to restart, from the leader's app bag."""
    raw = clean(relation.data[app].get(RESTART_GRANT_KEY))
    if raw is None or " " not in raw:
        return None
    unit, token = raw.split(" ", 1)
    return unit, token


def next_restart_grant(
    relation: ops.Relation, app: ops.Application, own_unit: ops.Unit
) -> tuple[str, str] | None:
    """Leader: the grant to hold now (keep the current one until its unit is done or gone)."""
    units = {unit.name: unit for unit in (*relation.units, own_unit)}
    current = restart_grant(relation, app)
    if current is not None:
        holder = units.get(current[0])
        done = holder is None or clean(relation.data[holder].get(RESTART_DONE_KEY)) == current[1]
        if not done:
            return current
    waiting = sorted(
        (name, token) for name, unit in units.items()
        if (token := restart_request(relation, unit))
        and (current is None or (name, token) != current)
    )
    return waiting[0] if waiting else None


def set_restart_grant(
    relation: ops.Relation, app: ops.Application, grant: tuple[str, str] | None
) -> bool:
    """Leader: publish who may restart now."""
    value = f"{grant[0]} {grant[1]}" if grant else None
    return update_bag(relation.data[app], {RESTART_GRANT_KEY: value})

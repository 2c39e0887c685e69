"""`shared-db` (mysql-shared): ask for a database, read db_host/password back."""

from __future__ import annotations

import json
from collections.abc import Mapping

import ops
from pydantic import ValidationError

from glance_charm.domain.models import DatabaseInfo
from glance_charm.relations.common import clean, decode_ca, first_bag_with, log_bad_key, update_bag

ENDPOINT = "shared-db"


def publish_request(
    relation: ops.Relation, unit: ops.Unit, database: str, username: str, hostname: str
) -> bool:
    """Ask the provider for `database` owned by `username`, connecting from `hostname`."""
    return update_bag(
        relation.data[unit], {"database": database, "username": username, "hostname": hostname}
    )


def _password(bag: Mapping[str, str], username: str) -> str | None:
    """Read the password under the key the provider used (plain or username-prefixed)."""
    return clean(bag.get("password")) or clean(bag.get(f"{username}_password"))


def _port(bag: Mapping[str, str]) -> int | None:
    raw = clean(bag.get("db_port"))
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        log_bad_key(ENDPOINT, "db_port", "not an integer")
        return None


def allowed_units(relation: ops.Relation) -> list[str] | None:
    """Units the provider granted access to, or None when it did not say."""
    bag = first_bag_with(relation, ["db_host"])
    if bag is None:
        return None
    raw = bag.get("allowed_units")
    if not isinstance(raw, str):
        return None
    try:
        listed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        listed = raw.split()
    if isinstance(listed, str):
        listed = listed.split()
    if not isinstance(listed, list):
        return None
    return [str(item) for item in listed]


def read(
    relation: ops.Relation, unit_name: str, username: str, database: str
) -> DatabaseInfo | None:
    """Return connection data once db_host and password are there and this unit is allowed."""
    bag = first_bag_with(relation, ["db_host"])
    if bag is None:
        return None
    password = _password(bag, username)
    if password is None:
        return None
    allowed = allowed_units(relation)
    if allowed is not None and unit_name not in allowed:
        return None
    try:
        return DatabaseInfo(
            endpoint=ENDPOINT,
            host=clean(bag.get("db_host")) or "",
            port=_port(bag),
            user=username,
            password=password,  # type: ignore[arg-type]
            name=database,
            ssl_ca=decode_ca(ENDPOINT, clean(bag.get("ssl_ca"))),
        )
    except ValidationError as err:
        for problem in err.errors():
            log_bad_key(ENDPOINT, str(problem["loc"][0]), problem["msg"])
        return None

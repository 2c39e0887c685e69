"""`shared-db` (mysql-shared): ask for a database, read db_host/password back."""

from __future__ import annotations

import json
from collections.abc import Mapping

import ops
from pydantic import ValidationError

from glance_charm.domain.models import DatabaseInfo
from glance_charm.relations.common import clean, decode_ca, log_bad_key, remote_bags, update_bag

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


def _allowed(bag: Mapping[str, str]) -> list[str] | None:
    """Units a bag grants access to (`allowed_units`), or None when the bag does not say.

    percona-cluster and Charmed MySQL send a space-separated list, mysql-router a JSON
    list or the single unit name; anything else reads as "does not say".
    """
    raw = bag.get("allowed_units")
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        listed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        listed = raw.split()
    if isinstance(listed, str):
        listed = listed.split()
    if not isinstance(listed, list):  # a bare JSON number or object: the words as written
        listed = raw.split()
    return [str(item) for item in listed]


def _candidates(relation: ops.Relation, username: str) -> list[Mapping[str, str]]:
    """Bags holding db_host and a password: the provider's app bag first, then its units.

    Charmed MySQL writes the app bag and its leader's unit bag; a former leader's unit
    bag (and a former percona-cluster leader's) keeps what it last wrote, so the app bag
    is the current word where there is one.
    """
    bags = remote_bags(relation)
    ordered = bags[-1:] + bags[:-1] if relation.app is not None else bags
    return [bag for bag in ordered
            if clean(bag.get("db_host")) and _password(bag, username) is not None]


def choose_bag(
    relation: ops.Relation, unit_name: str, username: str
) -> tuple[Mapping[str, str], bool] | None:
    """The bag to connect with, and whether it grants this unit (lists it in allowed_units).

    The first bag (app bag first) that lists this unit wins; else the first that keeps
    no list at all (not granted: the leader must not migrate through it yet). Bags that
    list only other units are stale or not for this unit: when every bag is such, None.
    """
    candidates = _candidates(relation, username)
    for bag in candidates:
        allowed = _allowed(bag)
        if allowed is not None and unit_name in allowed:
            return bag, True
    for bag in candidates:
        if _allowed(bag) is None:
            return bag, False
    return None


def access_network(relation: ops.Relation) -> str | None:
    """The network percona-cluster wants clients to connect from (`access-network`)."""
    for bag in remote_bags(relation):
        if network := clean(bag.get("access-network")):
            return network
    return None


def read(
    relation: ops.Relation, unit_name: str, username: str, database: str
) -> DatabaseInfo | None:
    """Return connection data from the bag that grants this unit (see choose_bag)."""
    chosen = choose_bag(relation, unit_name, username)
    if chosen is None:
        return None
    bag, granted = chosen
    password = _password(bag, username)
    try:
        return DatabaseInfo(
            endpoint=ENDPOINT,
            host=clean(bag.get("db_host")) or "",
            port=_port(bag),
            user=username,
            password=password,  # type: ignore[arg-type]
            name=database,
            ssl_ca=decode_ca(ENDPOINT, clean(bag.get("ssl_ca"))),
            granted=granted,
        )
    except ValidationError as err:
        for problem in err.errors():
            log_bad_key(ENDPOINT, str(problem["loc"][0]), problem["msg"])
        return None

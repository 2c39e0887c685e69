"""Helpers shared by the relation adapters: bag lookup and safe value checks."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping

import ops

logger = logging.getLogger(__name__)

NULL_VALUE = "__null__"


def remote_bags(relation: ops.Relation) -> list[Mapping[str, str]]:
    """Return the remote unit bags of a relation, in unit-name order, then the app bag."""
    bags: list[Mapping[str, str]] = [
        relation.data[unit] for unit in sorted(relation.units, key=lambda u: u.name)
    ]
    if relation.app is not None:
        bags.append(relation.data[relation.app])
    return bags


def clean(value: object) -> str | None:
    """Return a stripped string value, or None for absent, empty, `__null__` or non-text data."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or value == NULL_VALUE:
        return None
    return value


def first_bag_with(relation: ops.Relation, keys: Iterable[str]) -> Mapping[str, str] | None:
    """Return the first remote bag in which every key holds a usable value."""
    wanted = list(keys)
    for bag in remote_bags(relation):
        if all(clean(bag.get(key)) for key in wanted):
            return bag
    return None


def update_bag(bag: ops.RelationDataContent, values: Mapping[str, str | None]) -> bool:
    """Write only the keys whose value differs (None deletes); return whether anything changed.

    Reading before writing keeps no-op hooks free of relation-set calls.
    """
    changed = False
    for key, value in values.items():
        current = bag.get(key)
        if value is None or value == "":
            if current is not None:
                del bag[key]
                changed = True
        elif current != value:
            bag[key] = value
            changed = True
    return changed


def has_unsafe_chars(value: str) -> bool:
    """Whether a value would break an ini file or a URL (newlines, NUL and other controls)."""
    return any(ord(char) < 32 or ord(char) == 127 for char in value)


def log_bad_key(endpoint: str, key: str, reason: str) -> None:
    """Log which key of a relation is unusable, never its value."""
    logger.warning("%s relation: ignoring key %r (%s)", endpoint, key, reason)


def decode_ca(endpoint: str, raw: str | None) -> str | None:
    """Decode the base64 PEM CA a provider may send; None when absent or garbled."""
    if raw is None:
        return None
    try:
        text = base64.b64decode(raw, validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
        log_bad_key(endpoint, "ssl_ca", "not base64 PEM")
        return None
    return text if "BEGIN CERTIFICATE" in text else None

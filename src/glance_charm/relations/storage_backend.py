"""`storage-backend` (glance-backend subordinate) and `cinder-volume-service` (cinder).

cinder sends nothing: the relation existing enables the cinder store. A glance-backend
subordinate sends `cinder-backend` (a boolean flag: enable the cinder store) and
`subordinate_configuration`, JSON read as charmhelpers SubordinateConfigContext(
service=['glance-api'], config_file='/etc/glance/glance-api.conf') reads it in the
classic charm: `{"glance-api": {"/etc/glance/glance-api.conf": {"sections":
{"<section>": [[key, value], ...]}}}}`, sections of every unit concatenated.
"""

from __future__ import annotations

import json
import logging
import re

import ops

ENDPOINT = "storage-backend"
CINDER_ENDPOINT = "cinder-volume-service"
SERVICE = "glance-api"
CONFIG_FILE = "/etc/glance/glance-api.conf"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")

logger = logging.getLogger(__name__)

Sections = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def cinder_backend(relation: ops.Relation) -> bool:
    """Whether a subordinate unit asks for the cinder store (`cinder-backend` true)."""
    for unit in sorted(relation.units, key=lambda u: u.name):
        value = relation.data[unit].get("cinder-backend")
        if value is not None:  # classic: the first unit that sent it decides
            return value.strip().lower() in ("true", "yes", "1")
    return False


def _one_line(text: str) -> bool:
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)


def _unit_sections(raw: str, unit: str) -> dict[str, list[tuple[str, str]]]:
    try:
        data = json.loads(raw)
        sections = data[SERVICE][CONFIG_FILE]["sections"]
    except (ValueError, KeyError, TypeError):
        logger.warning("storage-backend: %s sent no usable subordinate_configuration", unit)
        return {}
    if not isinstance(sections, dict):
        return {}
    found: dict[str, list[tuple[str, str]]] = {}
    for section, pairs in sections.items():
        if not isinstance(pairs, list):
            continue
        for pair in pairs:
            ok = (isinstance(pair, list) and len(pair) == 2 and _NAME.match(str(section))
                  and isinstance(pair[0], str) and _NAME.match(pair[0])
                  and isinstance(pair[1], str | int | float | bool)
                  and _one_line(str(pair[1])))
            if not ok:
                logger.warning("storage-backend: %s: an entry of [%s] ignored (not a "
                               "one-line key/value)", unit, _printable(str(section)))
                continue
            found.setdefault(section, []).append((pair[0], str(pair[1])))
    return found


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:60]


def subordinate_sections(relation: ops.Relation) -> Sections:
    """The glance-api.conf sections the subordinate units ask for, [DEFAULT] left out.

    The classic template (templates/parts/section-storage) skips DEFAULT; entries that
    are not one-line key/value pairs are ignored (logged), as unreadable JSON is.
    """
    merged: dict[str, list[tuple[str, str]]] = {}
    for unit in sorted(relation.units, key=lambda u: u.name):
        raw = relation.data[unit].get("subordinate_configuration")
        if not raw:
            continue
        for section, pairs in _unit_sections(raw, unit.name).items():
            if section != "DEFAULT":
                merged.setdefault(section, []).extend(pairs)
    return tuple((section, tuple(pairs)) for section, pairs in merged.items())

"""`nrpe-external-master` (nrpe-external-master, container): the nagios host name and `monitors`.

Wire format of charmhelpers `contrib/charmsupport/nrpe.py` (classic glance
`update_nrpe_config`) and the nrpe charm (canonical/charm-nrpe `hooks/nrpe_helpers.py`): the
subordinate sends `nagios_hostname` and `nagios_host_context`; the principal sends `primary`
and `monitors`, YAML `{"monitors": {"remote": {"nrpe": {<shortname>: {"command":
"check_<shortname>"}}}}}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import ops
import yaml

from glance_charm.relations.common import clean, remote_bags, update_bag

ENDPOINT = "nrpe-external-master"
# The host name becomes part of a file name under /var/lib/nagios/export and a nagios object.
_NAGIOS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,252}$")


class InvalidNrpeDataError(ValueError):
    """The subordinate sent a host name or context nagios cannot use."""


def _remote(relation: ops.Relation, key: str) -> str | None:
    for bag in remote_bags(relation):
        if (value := clean(bag.get(key))) is not None:
            if not _NAGIOS_NAME.match(value):
                raise InvalidNrpeDataError(f"{ENDPOINT}: invalid {key}")
            return value
    return None


def nagios_hostname(relation: ops.Relation, context: str, unit: ops.Unit) -> str:
    """The subordinate's `nagios_hostname`, else `<nagios_context>-<unit with - for />`.

    Raises:
        InvalidNrpeDataError: the value is not a usable nagios host name.
    """
    return _remote(relation, "nagios_hostname") or f"{context}-{unit.name.replace('/', '-')}"


def nagios_unit_name(relation: ops.Relation, unit: ops.Unit) -> str:
    """The unit name in check descriptions, prefixed by `nagios_host_context:` when sent.

    Raises:
        InvalidNrpeDataError: the host context is not a usable nagios name.
    """
    context = _remote(relation, "nagios_host_context")
    return f"{context}:{unit.name}" if context else unit.name


def publish(relation: ops.Relation, unit: ops.Unit, monitors: Mapping[str, object]) -> bool:
    """Send `primary` and the `monitors` YAML; return whether the bag changed."""
    return update_bag(relation.data[unit], {
        "primary": "True",
        "monitors": yaml.safe_dump(dict(monitors), default_flow_style=False),
    })

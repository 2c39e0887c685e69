"""`ceph` (ceph-client, ceph-mon): send the broker request, read key, mon hosts and the answer."""

from __future__ import annotations

import ipaddress
import re

import ops
from pydantic import SecretStr

from glance_charm.domain.ceph_broker import BrokerRequest, BrokerResponse, select_broker_response
from glance_charm.domain.models import url_host
from glance_charm.domain.stores import CephClientData
from glance_charm.relations.common import clean, log_bad_key, update_bag

ENDPOINT = "ceph"
LEGACY_RESPONSE_KEY = "broker_rsp"

_CEPHX_KEY = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_AUTH = re.compile(r"^[a-z]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


def response_key(unit_name: str) -> str:
    """Key under which ceph-mon answers this unit, e.g. `broker-rsp-glance-0`."""
    return f"broker-rsp-{unit_name.replace('/', '-')}"


def _remote_unit_bags(relation: ops.Relation) -> list[ops.RelationDataContent]:
    return [relation.data[unit] for unit in sorted(relation.units, key=lambda u: u.name)]


def has_key(relation: ops.Relation) -> bool:
    """Whether any monitor has sent a cephx key yet (then the broker request can go)."""
    return any(clean(bag.get("key")) for bag in _remote_unit_bags(relation))


def publish_request(
    relation: ops.Relation, unit: ops.Unit, app_name: str, request: BrokerRequest
) -> bool:
    """Send `application-name`, and once a monitor has a key, the broker request.

    The request JSON is deterministic, so re-sending an unchanged request writes nothing.
    """
    values: dict[str, str | None] = {"application-name": app_name}
    if has_key(relation):
        values.update({"broker_req": request.to_json(), "unit-name": unit.name})
    return update_bag(relation.data[unit], values)


def _mon_address(raw: str) -> str | None:
    try:
        return url_host(str(ipaddress.ip_address(raw)))
    except ValueError:
        return raw if _HOSTNAME.match(raw) and ".." not in raw else None


def _mon_hosts(relation: ops.Relation) -> tuple[str, ...]:
    hosts: set[str] = set()
    for bag in _remote_unit_bags(relation):
        for raw in (clean(bag.get("ceph-public-address")) or "").split():
            address = _mon_address(raw)
            if address is None:
                log_bad_key(ENDPOINT, "ceph-public-address", "not an address")
            else:
                hosts.add(address)
    return tuple(sorted(hosts))


def _first(relation: ops.Relation, key: str, pattern: re.Pattern[str]) -> str | None:
    """The first usable value of a key across the monitors (unusable ones are logged)."""
    for bag in _remote_unit_bags(relation):
        value = clean(bag.get(key))
        if value is None:
            continue
        if pattern.match(value):
            return value
        log_bad_key(ENDPOINT, key, "invalid value")
    return None


def _rbd_features(relation: ops.Relation) -> int | None:
    raw = _first(relation, "rbd-features", re.compile(r"^\d{1,10}$"))
    return int(raw) if raw is not None else None


def _response(relation: ops.Relation, unit_name: str, request_id: str) -> BrokerResponse | None:
    """The answer to `request_id`: a success from any monitor wins over a failure."""
    answers = [
        select_broker_response(
            bag.get(response_key(unit_name)), bag.get(LEGACY_RESPONSE_KEY), request_id
        )
        for bag in _remote_unit_bags(relation)
    ]
    found = [answer for answer in answers if answer is not None]
    for answer in found:
        if answer.succeeded:
            return answer
    return found[0] if found else None


def read(relation: ops.Relation, unit_name: str, request_id: str) -> CephClientData | None:
    """Return ceph-mon's data once `auth`, `key` and a monitor address are there.

    Args:
        relation: the ceph relation.
        unit_name: this unit (its response key is `broker-rsp-<unit with - for />`).
        request_id: id of the broker request this unit sent.

    Returns:
        The data (its `response` None until ceph-mon answered that request), or None
        while ceph-mon has not sent enough to talk to the cluster.
    """
    auth = _first(relation, "auth", _AUTH)
    key = _first(relation, "key", _CEPHX_KEY)
    mon_hosts = _mon_hosts(relation)
    if auth is None or key is None or not mon_hosts:
        return None
    return CephClientData(
        auth=auth,
        key=SecretStr(key),
        mon_hosts=mon_hosts,
        rbd_features=_rbd_features(relation),
        response=_response(relation, unit_name, request_id),
    )


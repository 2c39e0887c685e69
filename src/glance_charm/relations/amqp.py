"""`amqp` (rabbitmq): ask for a user and vhost, read the broker hosts and password back."""

from __future__ import annotations

from collections.abc import Mapping

import ops
from pydantic import ValidationError

from glance_charm.domain.models import MessagingInfo
from glance_charm.relations.common import clean, decode_ca, log_bad_key, update_bag

ENDPOINT = "amqp"


def publish_request(
    relation: ops.Relation, unit: ops.Unit, app: ops.Application | None, user: str, vhost: str
) -> bool:
    """Send username/vhost (unit bag for rabbitmq-server; app bag too for rabbitmq-k8s)."""
    request = {"username": user, "vhost": vhost}
    changed = update_bag(relation.data[unit], request)
    if app is not None:
        changed |= update_bag(relation.data[app], request)
    return changed


def _hosts_and_password(relation: ops.Relation) -> tuple[list[str], str | None, Mapping[str, str]]:
    """Hosts from every complete unit (or the VIP when clustered), password, first bag."""
    hosts: list[str] = []
    password: str | None = None
    first: Mapping[str, str] = {}
    for unit in sorted(relation.units, key=lambda u: u.name):
        bag = relation.data[unit]
        unit_password = clean(bag.get("password"))
        host = clean(bag.get("private-address")) or clean(bag.get("hostname"))
        if not unit_password or not host:
            continue
        if clean(bag.get("clustered")) and clean(bag.get("vip")):
            return [clean(bag.get("vip")) or ""], unit_password, bag
        if not first:
            first, password = bag, unit_password
        hosts.append(host)
    if not hosts and relation.app is not None:  # rabbitmq-k8s: app bag
        bag = relation.data[relation.app]
        host, app_password = clean(bag.get("hostname")), clean(bag.get("password"))
        if host and app_password:
            return [host], app_password, bag
    return hosts, password, first


def read(relation: ops.Relation, user: str, vhost: str) -> MessagingInfo | None:
    """Return the broker connection once a host and the password are known."""
    hosts, password, bag = _hosts_and_password(relation)
    if not hosts or password is None:
        return None
    ssl_port = clean(bag.get("ssl_port"))
    try:
        port = int(ssl_port) if ssl_port else 5672
    except ValueError:
        log_bad_key(ENDPOINT, "ssl_port", "not an integer")
        return None
    try:
        return MessagingInfo(
            hosts=tuple(hosts), port=port, user=user, password=password,  # type: ignore[arg-type]
            vhost=vhost, ssl=bool(ssl_port), ssl_ca=decode_ca(ENDPOINT, clean(bag.get("ssl_ca"))),
        )
    except ValidationError as err:
        for problem in err.errors():
            log_bad_key(ENDPOINT, str(problem["loc"][0]), problem["msg"])
        return None

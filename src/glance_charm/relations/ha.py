"""`ha` subordinate relation (hacluster): VIP + haproxy resources out, `clustered` in."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ops

from glance_charm.domain.ha_resources import (
    NicLookup,
    build_dns_ha_resources,
    build_ha_resources,
    vip_resource_names,
)
from glance_charm.relations.common import clean, remote_bags, update_bag

logger = logging.getLogger(__name__)

ENDPOINT = "ha"
SERVICE = "glance"
MISSING_VIP = "Missing required configuration: vip"
DNS_HA_WITHOUT_HOSTNAME = (
    "dns-ha needs os-public-hostname, os-internal-hostname or os-admin-hostname"
)
VIP_AGENTS = ("ocf:heartbeat:IPaddr2", "ocf:heartbeat:IPv6addr")
TRUTHY = frozenset({"yes", "y", "true", "on", "1"})

# hacluster reads json_<k>, else the plain <k>: glance owns every one of them in its bag.
_HA_KEYS = (
    "resources", "delete_resources", "resource_params", "groups", "ms", "orders",
    "colocations", "clones", "locations", "init_services",
)
OWNED_KEYS = (
    *(f"json_{key}" for key in _HA_KEYS),
    *_HA_KEYS,
    "corosync_bindiface",
    "corosync_mcastport",
)


# ---- reading ------------------------------------------------------------------------------
def is_clustered(relation: ops.Relation | None) -> bool:
    """Whether a hacluster unit reports the cluster formed (`clustered=yes`).

    charm-hacluster sends ``clustered="yes"``. ``yes``/``true``/``on``/``1`` (any case)
    count; ``no``, ``false``, empty or absent do not (charmhelpers took any non-empty
    value, so an explicit "no" read as clustered there).

    Args:
        relation: the ``ha`` relation, or None when not related.

    Returns:
        Whether any remote bag says clustered.
    """
    if relation is None:
        return False
    for bag in remote_bags(relation):
        value = clean(bag.get("clustered"))
        if value is not None and value.lower() in TRUTHY:
            return True
    return False


def sent_vip_resources(relation: ops.Relation, unit: ops.Unit) -> list[str]:
    """Names of VIP resources this unit asked for before, and ones it asked to delete.

    Read back from this unit's own bag (``json_resources`` entries whose agent is
    IPaddr2/IPv6addr, plus ``json_delete_resources``); unreadable JSON counts as empty.

    Args:
        relation: the ``ha`` relation.
        unit: this unit.

    Returns:
        Sorted resource names.
    """
    bag = relation.data[unit]
    names: set[str] = set()
    resources = _json(bag.get("json_resources"))
    if isinstance(resources, dict):
        names.update(str(name) for name, agent in resources.items() if agent in VIP_AGENTS)
    deleted = _json(bag.get("json_delete_resources"))
    if isinstance(deleted, list):
        names.update(str(name) for name in deleted)
    return sorted(names)


def _json(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        return None


# ---- what to send -------------------------------------------------------------------------
def relation_data(
    vips: Sequence[str],
    vip_iface: str | None,
    vip_cidr: int | None,
    *,
    previous: Iterable[str] = (),
    nic_for: NicLookup | None = None,
) -> dict[str, str]:
    """Compute the hacluster data for the configured VIPs.

    ``json_delete_resources`` holds every VIP resource sent before (``previous``) that is
    not wanted now, then the legacy per-interface names charmhelpers always lists.
    Deletions stay listed in later hooks: hacluster reads only the latest data, so a name
    dropped from the list before hacluster's hook ran would leave the old VIP running.
    Deleting an absent resource is a no-op for hacluster.

    Args:
        vips: config ``vip`` split on whitespace (must not be empty).
        vip_iface: config ``vip_iface`` (used when the VIP's NIC is not detected).
        vip_cidr: config ``vip_cidr`` (used when the VIP's netmask is not detected).
        previous: resource names read back with sent_vip_resources.
        nic_for: finds (iface, netmask) of the local NIC on a VIP's network.

    Returns:
        ``json_*`` keys, identical to charmhelpers ``generate_ha_relation_data('glance',
        extra_settings={'delete_resources': [...]})``.

    Raises:
        ValueError: no VIP, or a VIP is not an IP address.
    """

    def build(delete_resources: Sequence[str]) -> dict[str, str]:
        return build_ha_resources(
            service=SERVICE, vips=vips, vip_iface=vip_iface, vip_cidr=vip_cidr,
            nic_for=nic_for, delete_resources=delete_resources,
        ).to_relation_data()

    plain = build(())
    keep = set(vip_resource_names(SERVICE, vips))
    keep.update(_json(plain.get("json_delete_resources")) or ())  # legacy names it adds
    stale = sorted(set(previous) - keep)
    return build(stale) if stale else plain


def desired_data(
    relation: ops.Relation,
    unit: ops.Unit,
    vips: Sequence[str],
    vip_iface: str | None,
    vip_cidr: int | None,
    nic_for: NicLookup | None = None,
) -> dict[str, str]:
    """relation_data() with the previously sent VIP resources read from this unit's bag.

    Args:
        relation: the ``ha`` relation.
        unit: this unit.
        vips: config ``vip`` split on whitespace (must not be empty).
        vip_iface: config ``vip_iface``.
        vip_cidr: config ``vip_cidr``.
        nic_for: NIC detection; pass local_nic_for on a real unit.

    Returns:
        The data to publish.
    """
    return relation_data(
        vips, vip_iface, vip_cidr, previous=sent_vip_resources(relation, unit), nic_for=nic_for
    )


def dns_ha_relation_data(
    hostnames: Mapping[str, tuple[str, str]], *, previous: Iterable[str] = ()
) -> dict[str, str]:
    """Compute the hacluster data for DNS HA (config ``dns-ha``).

    Every VIP resource sent before (``previous``) is listed in ``json_delete_resources``,
    so switching from a VIP to DNS HA leaves no VIP running.

    Args:
        hostnames: endpoint type -> (``os-<type>-hostname``, this unit's address for it).
        previous: resource names read back with sent_vip_resources.

    Returns:
        ``json_*`` keys, identical to charmhelpers ``generate_ha_relation_data('glance')``
        with ``dns-ha`` set (``update_hacluster_dns_ha``).

    Raises:
        ValueError: no hostname.
    """
    return build_dns_ha_resources(
        service=SERVICE, hostnames=hostnames, delete_resources=sorted(set(previous))
    ).to_relation_data()


def desired_dns_ha_data(
    relation: ops.Relation, unit: ops.Unit, hostnames: Mapping[str, tuple[str, str]]
) -> dict[str, str]:
    """dns_ha_relation_data() with the previously sent VIP resources from this unit's bag.

    Args:
        relation: the ``ha`` relation.
        unit: this unit.
        hostnames: endpoint type -> (fqdn, address); see dns_ha_relation_data.

    Returns:
        The data to publish.
    """
    return dns_ha_relation_data(hostnames, previous=sent_vip_resources(relation, unit))


def publish(relation: ops.Relation, unit: ops.Unit, data: Mapping[str, str]) -> bool:
    """Set the hacluster keys in this unit's bag; keys glance owns but `data` lacks go.

    Only differing keys are written, so re-sending identical data is a no-op.

    Args:
        relation: the ``ha`` relation.
        unit: this unit.
        data: output of desired_data / relation_data.

    Returns:
        Whether anything changed.
    """
    values: dict[str, str | None] = dict.fromkeys(OWNED_KEYS)
    values.update(data)
    return update_bag(relation.data[unit], values)


# ---- problems the charm turns into status -------------------------------------------------
def missing_vip_problem(
    ha_related: bool, vips: Sequence[str], dns_ha: bool = False
) -> str | None:
    """Blocked message when hacluster is related but neither a VIP nor DNS HA is set.

    Args:
        ha_related: whether the ``ha`` relation exists.
        vips: config ``vip`` split on whitespace.
        dns_ha: config ``dns-ha`` (DNS HA needs no VIP).

    Returns:
        ``Missing required configuration: vip``, or None when fine.
    """
    return MISSING_VIP if ha_related and not vips and not dns_ha else None


def dns_ha_problem(dns_ha: bool, hostnames: Iterable[str | None]) -> str | None:
    """Blocked message when ``dns-ha`` is set without any ``os-*-hostname``.

    charmhelpers ``update_hacluster_dns_ha`` sets Blocked ("Hostname group has no
    members") in that case; the message here names the options to set.

    Args:
        dns_ha: config ``dns-ha``.
        hostnames: config ``os-public/internal/admin-hostname``.

    Returns:
        The message, or None when fine.
    """
    return DNS_HA_WITHOUT_HOSTNAME if dns_ha and not any(hostnames) else None


def peer_units_without_vip_problem(n_units: int, vips: Sequence[str], dns_ha: bool) -> str | None:
    """Blocked message when several units would each publish their own address.

    Args:
        n_units: units of the application (peers + this one).
        vips: config ``vip`` split on whitespace.
        dns_ha: config ``dns-ha``.

    Returns:
        The message, or None for one unit or when a VIP / dns-ha fronts the units.
    """
    if n_units > 1 and not vips and not dns_ha:
        return (
            f"{n_units} units need a virtual IP: set vip and relate hacluster "
            "(or enable dns-ha)"
        )
    return None


# ---- endpoint host ------------------------------------------------------------------------
def select_vip(vips: Sequence[str], networks: Iterable[str] = ()) -> str:
    """Pick the VIP on one of the given networks (the binding's subnets), else the first.

    Args:
        vips: config ``vip`` split on whitespace (not empty).
        networks: CIDRs of the endpoint's network, e.g. ``os-public-network`` and the
            binding's interface subnets, most specific first.

    Returns:
        The VIP to put in the endpoint URL.
    """
    for network in networks:
        try:
            subnet = ipaddress.ip_network(network, strict=False)
        except ValueError:
            continue
        for vip in vips:
            if ipaddress.ip_address(vip) in subnet:
                return vip
    return vips[0]


def endpoint_host(
    *,
    override: str | None,
    vips: Sequence[str],
    clustered: bool,
    networks: Iterable[str],
    unit_address: str | None,
    dns_ha: bool = False,
) -> str | None:
    """The host part of an endpoint URL, or None while it must not be published yet.

    ``os-*-hostname`` wins. With a VIP configured the VIP is used, but only once hacluster
    reports ``clustered``: before that None is returned and nothing must be published,
    never the unit's own address (LP#1544959). Without a VIP, the unit address. With
    DNS HA nothing is published before ``clustered`` either: the hostnames resolve only
    once hacluster's ocf:maas:dns resources have registered them.

    Args:
        override: config ``os-<type>-hostname``.
        vips: config ``vip`` split on whitespace.
        clustered: is_clustered() of the ``ha`` relation.
        networks: CIDRs of the endpoint's network (see select_vip).
        unit_address: this unit's address on that binding.
        dns_ha: config ``dns-ha``.

    Returns:
        Host name or address (IPv6 not bracketed), or None.
    """
    if dns_ha and not clustered:
        return None
    if override:
        return override
    if vips:
        return select_vip(vips, networks) if clustered else None
    return unit_address


# ---- NIC detection ------------------------------------------------------------------------
def nic_for_address(vip: str, interfaces: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Find the local NIC whose network holds a VIP, as charmhelpers does with netifaces.

    IPv4 uses each NIC's first IPv4 address and reports a dotted netmask; IPv6 looks at
    every non-link-local address and reports the prefix length.

    Args:
        vip: the VIP.
        interfaces: ``ip -j addr show`` output.

    Returns:
        (interface, netmask), or None when no NIC is on the VIP's network.
    """
    address = ipaddress.ip_address(vip)
    for nic in interfaces:
        infos = [info for info in nic.get("addr_info", ()) if isinstance(info, Mapping)]
        family = "inet" if address.version == 4 else "inet6"
        infos = [info for info in infos if info.get("family") == family]
        if address.version == 4:
            infos = infos[:1]
        for info in infos:
            try:
                network = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
            except (KeyError, ValueError):
                continue
            if network.is_link_local or address not in network:
                continue
            netmask = str(network.netmask) if address.version == 4 else str(network.prefixlen)
            return str(nic["ifname"]), netmask
    return None


def local_nic_for(vip: str) -> tuple[str, str] | None:
    """nic_for_address() on this machine's interfaces (``ip -j addr show``).

    Args:
        vip: the VIP.

    Returns:
        (interface, netmask), or None when unknown (hacluster then gets vip_iface/vip_cidr).
    """
    try:
        result = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=30, check=True
        )
        interfaces = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        logger.warning("cannot list network interfaces: %s", type(err).__name__)
        return None
    return nic_for_address(vip, interfaces if isinstance(interfaces, list) else [])

"""The pacemaker resources glance asks hacluster for: its VIPs and a cloned haproxy.

Reproduces charmhelpers ``contrib.openstack.ha.utils.generate_ha_relation_data``
for the VIP case (``update_hacluster_vip``) and the DNS HA case
(``update_hacluster_dns_ha``): same resource names, params and compact JSON.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

# Interface and netmask of the local NIC whose network holds a VIP; either part may be
# unknown (None), and None as a whole means no NIC matched.
NicLookup = Callable[[str], tuple[str | None, str | None] | None]

VIP_MONITOR = 'op monitor timeout="20s" interval="10s" depth="0"'
HAPROXY_PARAMS = (
    'meta migration-threshold="INFINITY" failure-timeout="5s" op monitor interval="5s"'
)
DNS_HA_AGENT = "ocf:maas:dns"
# charmhelpers update_hacluster_dns_ha walks os-{admin,internal,public,access}-hostname in
# this order; resolve_address names the internal endpoint type "int".
DNS_HA_ENDPOINT_TYPES = (("admin", "admin"), ("internal", "int"), ("public", "public"))


class HaResources(BaseModel):
    """Resource definitions in hacluster's vocabulary (each sent as ``json_<field>``).

    Attributes:
        resources: resource name -> agent, e.g. ``ocf:heartbeat:IPaddr2``.
        resource_params: resource name -> crm params string.
        init_services: resource name -> init service it manages.
        clones: clone name -> resource name.
        groups: group name -> space-separated resource names.
        delete_resources: resource names hacluster must remove.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    resources: dict[str, str]
    resource_params: dict[str, str]
    init_services: dict[str, str]
    clones: dict[str, str]
    groups: dict[str, str]
    delete_resources: list[str]

    def to_relation_data(self) -> dict[str, str]:
        """Encode as relation data: compact sorted JSON, empty collections left out."""
        return {
            f"json_{key}": json.dumps(
                value, sort_keys=True, allow_nan=False, indent=None, separators=(",", ":")
            )
            for key, value in self.model_dump().items()
            if value
        }


def _is_ipv6(vip: str) -> bool:
    """Whether a VIP is IPv6; raise ValueError if it is not a plain IP address."""
    if "%" in vip:
        raise ValueError(f"VIP {vip!r} must not carry an IPv6 zone")
    try:
        address = ipaddress.ip_address(vip)
    except ValueError:
        raise ValueError(f"VIP {vip!r} is not an IP address") from None
    return isinstance(address, ipaddress.IPv6Address)


def vip_resource_name(service: str, vip: str) -> str:
    """Return the pacemaker resource name of one VIP: ``res_<service>_<sha1(vip)[:7]>_vip``.

    Args:
        service: service name, e.g. ``glance``.
        vip: the VIP as configured.

    Returns:
        The resource name.
    """
    return f"res_{service}_{hashlib.sha1(vip.encode(), usedforsecurity=False).hexdigest()[:7]}_vip"


def vip_resource_names(service: str, vips: Sequence[str]) -> list[str]:
    """Return the resource names of VIPs, in order and without repeats.

    The charm can compute names to delete when ``vip`` changes as the names for the
    old VIPs that are not among the names for the new ones.

    Args:
        service: service name, e.g. ``glance``.
        vips: the VIPs.

    Returns:
        Resource names.
    """
    return list(dict.fromkeys(vip_resource_name(service, vip) for vip in vips))


def _vip_settings(
    vip: str, vip_iface: str | None, vip_cidr: int | None, nic_for: NicLookup | None
) -> tuple[str | None, str | int | None, bool]:
    """Return (iface, netmask, fallback) like charmhelpers ``get_vip_settings``."""
    detected = nic_for(vip) if nic_for else None
    iface, netmask = detected if detected else (None, None)
    fallback = False
    iface_or_fallback: str | None = iface
    netmask_or_fallback: str | int | None = netmask
    if iface is None:
        iface_or_fallback = vip_iface
        fallback = True
    if netmask is None:
        netmask_or_fallback = vip_cidr
        fallback = True
    return iface_or_fallback, netmask_or_fallback, fallback


def _haproxy_clone(service: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(resource name, resources, resource_params) of the cloned haproxy."""
    haproxy = f"res_{service}_haproxy"
    return haproxy, {haproxy: "lsb:haproxy"}, {haproxy: HAPROXY_PARAMS}


def build_dns_ha_resources(
    *,
    service: str = "glance",
    hostnames: Mapping[str, tuple[str, str]],
    delete_resources: Sequence[str] = (),
) -> HaResources:
    """Build the DNS HA (``ocf:maas:dns``) and haproxy resources for hacluster.

    As charmhelpers ``update_hacluster_dns_ha``: one ``res_<service>_<type>_hostname``
    resource per configured ``os-<type>-hostname`` (``internal`` is named ``int``), with
    params ``fqdn="<hostname>" ip_address="<this unit's address for that type>"``, all in
    the group ``grp_<service>_hostnames``; no VIP resources and no legacy deletions.

    Args:
        service: service name used in every resource name.
        hostnames: endpoint type (``admin``, ``internal``, ``public``) -> (fqdn, address).
        delete_resources: resources to delete (e.g. VIPs sent before switching to DNS HA).

    Returns:
        The resources.

    Raises:
        ValueError: no hostname given, or an unknown endpoint type.
    """
    unknown = set(hostnames) - {name for name, _ in DNS_HA_ENDPOINT_TYPES}
    if unknown:
        raise ValueError(f"unknown endpoint types {sorted(unknown)}")
    haproxy, resources, resource_params = _haproxy_clone(service)
    group: list[str] = []
    for endpoint_type, short in DNS_HA_ENDPOINT_TYPES:
        if endpoint_type not in hostnames:
            continue
        fqdn, address = hostnames[endpoint_type]
        name = f"res_{service}_{short}_hostname"
        resources[name] = DNS_HA_AGENT
        resource_params[name] = f'params fqdn="{fqdn}" ip_address="{address}"'
        group.append(name)
    if not group:
        raise ValueError("DNS HA needs at least one os-*-hostname")
    return HaResources(
        resources=resources,
        resource_params=resource_params,
        init_services={haproxy: "haproxy"},
        clones={f"cl_{service}_haproxy": haproxy},
        groups={f"grp_{service}_hostnames": " ".join(group)},
        delete_resources=list(delete_resources),
    )


def build_ha_resources(
    *,
    service: str = "glance",
    vips: Sequence[str],
    vip_iface: str | None = None,
    vip_cidr: int | None = None,
    nic_for: NicLookup | None = None,
    delete_resources: Sequence[str] = (),
) -> HaResources:
    """Build the VIP and haproxy resources for hacluster.

    Args:
        service: service name used in every resource name.
        vips: the VIPs (config ``vip`` split on whitespace), IPv4 or IPv6.
        vip_iface: config ``vip_iface``, used when the NIC of a VIP is not detected.
        vip_cidr: config ``vip_cidr``, used when the netmask of a VIP is not detected.
        nic_for: finds (iface, netmask) of the local NIC on a VIP's network.
        delete_resources: extra resources to delete (e.g. VIPs no longer configured);
            listed before the legacy per-interface names charmhelpers always adds.

    Returns:
        The resources.

    Raises:
        ValueError: no VIP given, or a VIP is not an IP address.
    """
    if not vips:
        raise ValueError("at least one VIP is needed for hacluster")
    ipv6_flags = [_is_ipv6(vip) for vip in vips]

    haproxy, resources, resource_params = _haproxy_clone(service)
    to_delete = list(delete_resources)
    legacy_names: list[str] = []
    vip_group: list[str] = []
    for vip, ipv6 in zip(vips, ipv6_flags, strict=True):
        agent, param = ("IPv6addr", "ipv6addr") if ipv6 else ("IPaddr2", "ip")
        iface, netmask, fallback = _vip_settings(vip, vip_iface, vip_cidr, nic_for)
        if iface is None:
            continue
        # Old-style names encoded the interface; charmhelpers asks to delete them.
        legacy = f"res_{service}_{iface}_vip"
        legacy_names.append(f"{legacy}_{param}" if legacy in legacy_names else legacy)
        name = vip_resource_name(service, vip)
        resources[name] = f"ocf:heartbeat:{agent}"
        nic_params = f'cidr_netmask="{netmask}" nic="{iface}" ' if fallback else ""
        resource_params[name] = f'params {param}="{vip}" {nic_params}{VIP_MONITOR}'
        vip_group.append(name)

    return HaResources(
        resources=resources,
        resource_params=resource_params,
        init_services={haproxy: "haproxy"},
        clones={f"cl_{service}_haproxy": haproxy},
        groups={f"grp_{service}_vips": " ".join(vip_group)} if vip_group else {},
        delete_resources=to_delete + legacy_names,
    )

"""Bindings: the addresses this unit binds and listens on, and the endpoint URLs it publishes."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import ops

from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.models import Endpoints, url_host
from glance_charm.domain.ports import FRONTEND_PORT
from glance_charm.relations import ha, identity

logger = logging.getLogger(__name__)

BINDINGS = ("public", "internal", "admin")


def _networks(cidrs: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Space-separated CIDRs (config os-*-network, percona's access-network); bad ones dropped."""
    found = []
    for cidr in (cidrs or "").split():
        try:
            found.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            logger.warning("ignoring network %r: not a CIDR", cidr)
    return found


def nic_addresses(interfaces: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every address of `ip -j addr show` output, IPv6 link-local ones left out.

    charmhelpers (contrib/network/ip.py get_address_in_network) walks every NIC with
    netifaces the same way: all IPv4 addresses, and the IPv6 ones that are not link-local.
    """
    found = []
    for nic in interfaces:
        for info in nic.get("addr_info", ()) if isinstance(nic, Mapping) else ():
            if not isinstance(info, Mapping) or info.get("family") not in ("inet", "inet6"):
                continue
            try:
                address = ipaddress.ip_address(str(info.get("local")))
            except ValueError:
                continue
            if not (address.version == 6 and address.is_link_local):
                found.append(str(address))
    return found


def local_addresses() -> list[str]:
    """This machine's addresses (`ip -j addr show`); empty when they cannot be listed."""
    try:
        result = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                                timeout=30, check=True)
        interfaces = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        logger.warning("cannot list network interfaces: %s", type(err).__name__)
        return []
    return nic_addresses(interfaces if isinstance(interfaces, list) else [])


def _binding_addresses(charm: ops.CharmBase, endpoint: str) -> list[str]:
    try:
        binding = charm.model.get_binding(endpoint)
        if binding is None:
            return []
        return [str(i.address) for i in binding.network.interfaces if i.address is not None]
    except ops.ModelError:
        return []


def address_in_network(
    charm: ops.CharmBase, cidrs: str | None, endpoint: str, fallback: str | None
) -> str | None:
    """This unit's address inside one of the CIDRs, else `fallback`.

    What charmhelpers get_address_in_network(network, fallback) answers (classic glance's
    db_joined via get_relation_ip, and resolve_address for os-*-network): the endpoint's
    binding is looked at first (no process), then every local NIC.
    """
    networks = _networks(cidrs)
    if not networks:
        return fallback
    for candidates in (lambda: _binding_addresses(charm, endpoint), local_addresses):
        addresses = [ipaddress.ip_address(a) for a in candidates()]
        for network in networks:
            for address in addresses:
                if address.version == network.version and address in network:
                    return str(address)
    logger.warning("no address of this unit in %s; using %s", cidrs, fallback)
    return fallback


def bind_address(charm: ops.CharmBase, endpoint: str) -> str | None:
    """The address this unit binds for an endpoint (network-get), None if unknown."""
    try:
        binding = charm.model.get_binding(endpoint)
        if binding is not None and binding.network.bind_address is not None:
            return str(binding.network.bind_address)
    except ops.ModelError:
        logger.warning("no bind address for %s", endpoint)
    return None


def listen_address(charm: ops.CharmBase, endpoint: str, config: GlanceConfig) -> str | None:
    """The binding's address to listen on; None (every address) when unusable.

    Unusable: unknown, or of the other family than `prefer-ipv6` asks for (the classic
    charm then binds ``::``).
    """
    address = bind_address(charm, endpoint)
    if address is None or (":" in address) != config.prefer_ipv6:
        return None
    return address


def _frontend_address(charm: ops.CharmBase, name: str, config: GlanceConfig) -> str | None:
    """The address haproxy listens on for one endpoint type: the URL's own address."""
    listen = listen_address(charm, name, config)
    if not getattr(config, f"os_{name}_network"):
        return listen
    address = address_in_network(charm, getattr(config, f"os_{name}_network"), name, listen)
    if address is None or (":" in address) != config.prefer_ipv6:
        return None
    return address


def frontend_addresses(charm: ops.CharmBase, config: GlanceConfig) -> tuple[str, ...]:
    """Where haproxy listens: the public, internal and admin bindings' addresses.

    Empty (every address) when a VIP or DNS HA fronts the units, as the classic charm
    does: the VIP moves onto whichever unit hacluster picks, so haproxy must accept it
    without a restart; also when a binding's address is unknown.
    """
    if config.vip or config.dns_ha:
        return ()
    addresses = [_frontend_address(charm, name, config) for name in BINDINGS]
    if any(address is None for address in addresses):
        return ()
    return tuple(dict.fromkeys(address for address in addresses if address))


def binding_network(charm: ops.CharmBase, binding: str) -> tuple[str | None, list[str]]:
    """Ingress address and subnets of an extra-binding (fallback: identity-service's)."""
    for name in (binding, identity.ENDPOINT):
        try:
            bound = charm.model.get_binding(name)
            if bound is not None and bound.network.ingress_address is not None:
                subnets = [str(i.subnet) for i in getattr(bound.network, "interfaces", [])
                           if getattr(i, "subnet", None)]
                return str(bound.network.ingress_address), subnets
        except Exception as err:  # network-get fails for bindings Juju does not know
            logger.debug("no address for binding %s: %s", name, type(err).__name__)
    return None, []


def endpoint_address(
    charm: ops.CharmBase, config: GlanceConfig, name: str, bound: str | None
) -> str:
    """This unit's own address for endpoint type `name` (public, internal, admin).

    As charmhelpers contrib/openstack/ip.py resolve_address does when not clustered:
    with `os-<name>-network` set, the unit's address inside that network (so a unit
    switched from the classic charm registers the same URL), else the binding's
    address `bound`; the unit name as a last resort.
    """
    fallback = bound or charm.unit.name.replace("/", "-")
    network = getattr(config, f"os_{name}_network")
    return address_in_network(charm, network, name, fallback) or fallback


def dns_ha_hostnames(charm: ops.CharmBase, config: GlanceConfig) -> dict[str, tuple[str, str]]:
    """Endpoint type -> (`os-<type>-hostname`, this unit's address) for DNS HA.

    The address is what charmhelpers resolve_address(endpoint_type, override=False)
    gives an unclustered unit: its address in `os-<type>-network`, else the binding's.
    Only types with a hostname configured are listed.
    """
    hostnames = {}
    for name in BINDINGS:
        if fqdn := getattr(config, f"os_{name}_hostname"):
            address, _ = binding_network(charm, name)
            hostnames[name] = (fqdn, endpoint_address(charm, config, name, address))
    return hostnames


def endpoint_urls(
    charm: ops.CharmBase, config: GlanceConfig, scheme: str = "http"
) -> Endpoints | None:
    """Public/internal/admin URLs on port 9292, or None while they must not be published.

    `scheme` is ``https`` when haproxy terminates TLS.

    The host is `os-*-hostname`, else the VIP once hacluster reports clustered (never the
    unit address before that: LP#1544959), else the binding's address.
    """
    clustered = ha.is_clustered(charm.model.get_relation(ha.ENDPOINT))
    urls = {}
    for name in BINDINGS:
        address, subnets = binding_network(charm, name)
        network = getattr(config, f"os_{name}_network")
        host = ha.endpoint_host(
            override=getattr(config, f"os_{name}_hostname"), vips=config.vip,
            clustered=clustered, networks=[n for n in (network, *subnets) if n],
            unit_address=endpoint_address(charm, config, name, address),
            dns_ha=config.dns_ha,
        )
        if host is None:
            return None
        urls[name] = f"{scheme}://{url_host(host)}:{FRONTEND_PORT}"
    return Endpoints(**urls)

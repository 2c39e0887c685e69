"""Bindings: the addresses this unit binds and listens on, and the endpoint URLs it publishes."""

from __future__ import annotations

import logging

import ops

from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.models import Endpoints, url_host
from glance_charm.domain.ports import FRONTEND_PORT
from glance_charm.relations import ha, identity

logger = logging.getLogger(__name__)

BINDINGS = ("public", "internal", "admin")


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


def frontend_addresses(charm: ops.CharmBase, config: GlanceConfig) -> tuple[str, ...]:
    """Where haproxy listens: the public, internal and admin bindings' addresses.

    Empty (every address) when a VIP or DNS HA fronts the units, as the classic charm
    does: the VIP moves onto whichever unit hacluster picks, so haproxy must accept it
    without a restart; also when a binding's address is unknown.
    """
    if config.vip or config.dns_ha:
        return ()
    addresses = [listen_address(charm, name, config) for name in BINDINGS]
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
            unit_address=address or charm.unit.name.replace("/", "-"),
        )
        if host is None:
            return None
        urls[name] = f"{scheme}://{url_host(host)}:{FRONTEND_PORT}"
    return Endpoints(**urls)

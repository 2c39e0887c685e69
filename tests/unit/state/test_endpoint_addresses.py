"""os-*-network: the endpoint URL (and haproxy's listen address) is the unit's address there."""

from __future__ import annotations

import ops
import pytest

from glance_charm.state import network
from tests.unit.conftest import GlanceHarness

PUBLIC_NIC = "10.30.0.9"  # this unit's NIC on os-public-network 10.30.0.0/24


def machine_nics(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    interfaces = [{"ifname": f"eth{index}", "addr_info": [
        {"family": "inet", "local": address, "prefixlen": 24}]}
        for index, address in enumerate(addresses)]
    monkeypatch.setattr(network, "local_addresses", lambda: network.nic_addresses(interfaces),
                        raising=False)


def test_os_public_network_uses_the_units_address_in_it(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not clustered: public_url is the unit's own address inside os-public-network.

    Follows juju/charm-helpers charmhelpers/contrib/openstack/ip.py resolve_address
    (`get_address_in_network(net_addr, fallback_addr)` when not clustered), which the
    classic openstack/charm-glance registers through canonical_url: a unit switched
    from the classic charm keeps the URLs keystone already has.
    """
    machine_nics(monkeypatch, "10.5.0.100", PUBLIC_NIC)
    gh.harness.update_config({"os-public-network": "10.30.0.0/24"})
    _, identity = gh.relate_core()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    bag = gh.harness.get_relation_data(identity, "glance/0")
    assert bag["public_url"] == f"http://{PUBLIC_NIC}:9292"
    assert bag["internal_url"] == "http://10.5.0.100:9292"
    assert bag["admin_url"] == "http://10.5.0.100:9292"
    binds = [line.strip() for line in (gh.root / "etc/haproxy/haproxy.cfg").read_text()
             .splitlines() if line.strip().startswith("bind ")]
    assert binds == [f"bind {PUBLIC_NIC}:9292", "bind 10.5.0.100:9292"]


def test_os_network_without_a_local_address_falls_back_to_the_binding(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No NIC in the network: the binding's address (charmhelpers' fallback_addr).

    Follows juju/charm-helpers charmhelpers/contrib/network/ip.py get_address_in_network
    (returns `fallback` when no interface is inside the network).
    """
    machine_nics(monkeypatch, "10.5.0.100")
    gh.harness.update_config({"os-admin-network": "10.40.0.0/24"})
    _, identity = gh.relate_core()
    assert gh.harness.get_relation_data(identity, "glance/0")["admin_url"] == (
        "http://10.5.0.100:9292")


def test_nic_addresses_reads_ip_json() -> None:
    """Every IPv4 address and the non-link-local IPv6 ones, as netifaces walks them.

    Follows juju/charm-helpers charmhelpers/contrib/network/ip.py get_address_in_network
    (AF_INET addresses; AF_INET6 through _get_ipv6_network_from_address, no fe80::).
    """
    interfaces = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "10.5.0.100"}, {"family": "inet", "local": "10.6.0.1"},
            {"family": "inet6", "local": "fe80::1"}, {"family": "inet6", "local": "fd00::5"},
            {"family": "inet", "local": "not-an-ip"}, "junk"]},
        "junk",
    ]
    assert network.nic_addresses(interfaces) == [  # type: ignore[arg-type]
        "127.0.0.1", "10.5.0.100", "10.6.0.1", "fd00::5"]

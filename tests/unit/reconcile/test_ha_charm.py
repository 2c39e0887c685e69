"""HA in the charm: haproxy backends per peer, VIP endpoints only once clustered."""

from __future__ import annotations

import json

import ops
import pytest

from tests.unit.conftest import GlanceHarness

VIP = "10.5.100.1"


def relate_all(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("object-store_swift-proxy")


def add_peers(gh: GlanceHarness, count: int) -> None:
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    for index in range(1, count):
        unit = f"glance/{index}"
        gh.harness.add_relation_unit(peer.id, unit)
        address = f"10.5.0.{100 + index}"
        gh.harness.update_relation_data(peer.id, unit, {"private-address": address})


def haproxy_servers(gh: GlanceHarness) -> list[list[str]]:
    text = (gh.root / "etc/haproxy/haproxy.cfg").read_text()
    return [line.split()[1:3] for line in text.splitlines() if line.strip().startswith("server")]


@pytest.mark.parametrize("units", [1, 3, 5])
def test_haproxy_has_one_backend_per_unit(gh: GlanceHarness, units: int) -> None:
    if units > 1:
        gh.harness.update_config({"vip": VIP})
        gh.add_fixture("ha_hacluster")
    add_peers(gh, units)
    relate_all(gh)
    servers = haproxy_servers(gh)
    assert [name for name, _ in servers] == [f"glance-{i}" for i in range(units)]
    assert servers[0][1] == "10.5.0.100:9282"
    assert all(address.endswith(":9282") for _, address in servers)
    assert gh.conf()["DEFAULT"]["bind_port"] == "9282"
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_unit_leaving_updates_backends_and_reloads_once(gh: GlanceHarness) -> None:
    gh.harness.update_config({"vip": VIP})
    gh.add_fixture("ha_hacluster")
    add_peers(gh, 3)
    relate_all(gh)
    reloads = gh.services.count("reload", "haproxy")
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    gh.harness.remove_relation_unit(peer.id, "glance/2")
    assert [name for name, _ in haproxy_servers(gh)] == ["glance-0", "glance-1"]
    assert gh.services.count("reload", "haproxy") == reloads + 1
    assert gh.services.count("restart", "haproxy") == 0
    gh.event()
    assert gh.services.count("reload", "haproxy") == reloads + 1


def test_vip_endpoints_only_after_clustered(gh: GlanceHarness) -> None:
    gh.harness.update_config({"vip": VIP})
    image = gh.add_fixture("image-service_nova-cloud-controller")
    relate_all(gh)
    ha_rel = gh.harness.add_relation("ha", "haglance")
    gh.harness.add_relation_unit(ha_rel, "haglance/0")
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    bag = gh.harness.get_relation_data(identity.id, "glance/0")
    assert "public_url" not in bag and "service" not in bag  # never the unit address
    assert gh.harness.get_relation_data(image, "glance/0").get("glance-api-server") is None
    assert gh.status() == ops.WaitingStatus("Waiting for hacluster to report clustered")
    resources = json.loads(gh.harness.get_relation_data(ha_rel, "glance/0")["json_resources"])
    assert resources["res_glance_haproxy"] == "lsb:haproxy"
    gh.harness.update_relation_data(ha_rel, "haglance/0", {"clustered": "yes"})
    bag = gh.harness.get_relation_data(identity.id, "glance/0")
    assert bag["public_url"] == bag["internal_url"] == bag["admin_url"] == f"http://{VIP}:9292"
    assert gh.harness.get_relation_data(image, "glance/0")["glance-api-server"] == (
        f"http://{VIP}:9292")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_vip_change_moves_endpoints_and_deletes_old_resources(gh: GlanceHarness) -> None:
    gh.harness.update_config({"vip": VIP})
    relate_all(gh)
    ha_rel = gh.add_fixture("ha_hacluster")
    gh.harness.update_config({"vip": "10.5.100.2"})
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    assert gh.harness.get_relation_data(identity.id, "glance/0")["public_url"] == (
        "http://10.5.100.2:9292")
    sent = gh.harness.get_relation_data(ha_rel, "glance/0")
    from glance_charm.domain.ha_resources import vip_resource_name

    assert vip_resource_name("glance", VIP) in json.loads(sent["json_delete_resources"])
    assert vip_resource_name("glance", "10.5.100.2") in json.loads(sent["json_resources"])


def test_hostname_override_wins_over_vip(gh: GlanceHarness) -> None:
    gh.harness.update_config({"vip": VIP, "os-public-hostname": "images.example.com"})
    relate_all(gh)
    gh.add_fixture("ha_hacluster")
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    bag = gh.harness.get_relation_data(identity.id, "glance/0")
    assert bag["public_url"] == "http://images.example.com:9292"
    assert bag["internal_url"] == f"http://{VIP}:9292"


def test_ha_without_vip_blocks(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.add_fixture("ha_hacluster")
    assert gh.status() == ops.BlockedStatus("Missing required configuration: vip")


def test_vip_without_ha_relation_is_missing(gh: GlanceHarness) -> None:
    gh.harness.update_config({"vip": VIP})
    relate_all(gh)
    assert gh.status() == ops.BlockedStatus("Missing relations: ha")


def test_several_units_without_vip_block(gh: GlanceHarness) -> None:
    add_peers(gh, 3)
    relate_all(gh)
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus)
    assert "virtual IP" in status.message


def test_pause_stops_haproxy_too(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.harness.run_action("pause")
    assert "haproxy" not in gh.services.running
    gh.event()
    assert "haproxy" not in gh.services.running
    gh.harness.run_action("resume")
    assert "haproxy" in gh.services.running


# ---- DNS HA (issue 13 item 2) -------------------------------------------------------------
PUBLIC_FQDN = "glance.example.com"
INTERNAL_FQDN = "glance-int.example.com"


def test_dns_ha_sends_maas_dns_resources_and_publishes_hostnames_once_clustered(
    gh: GlanceHarness,
) -> None:
    """dns-ha without vip: ocf:maas:dns resources, hostnames published after clustered.

    Follows charmhelpers contrib/openstack/ha/utils.py generate_ha_relation_data /
    update_hacluster_dns_ha (as openstack/charm-glance hooks/glance_relations.py
    ha_relation_joined calls it) and charm-hacluster hooks/hooks.py, which sets
    clustered=yes once the resources run.
    """
    gh.harness.update_config({
        "dns-ha": True, "os-public-hostname": PUBLIC_FQDN,
        "os-internal-hostname": INTERNAL_FQDN,
    })
    image = gh.add_fixture("image-service_nova-cloud-controller")
    relate_all(gh)
    add_peers(gh, 3)
    assert gh.status() == ops.BlockedStatus("Missing relations: ha")
    ha_rel = gh.harness.add_relation("ha", "haglance")
    gh.harness.add_relation_unit(ha_rel, "haglance/0")
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    bag = gh.harness.get_relation_data(identity.id, "glance/0")
    assert "public_url" not in bag and "internal_url" not in bag
    assert gh.harness.get_relation_data(image, "glance/0").get("glance-api-server") is None
    assert gh.status() == ops.WaitingStatus("Waiting for hacluster to report clustered")

    sent = gh.harness.get_relation_data(ha_rel, "glance/0")
    resources = json.loads(sent["json_resources"])
    assert resources == {
        "res_glance_haproxy": "lsb:haproxy",
        "res_glance_int_hostname": "ocf:maas:dns",
        "res_glance_public_hostname": "ocf:maas:dns",
    }
    params = json.loads(sent["json_resource_params"])
    address = gh.harness.model.get_binding("public").network.ingress_address
    assert params["res_glance_public_hostname"] == (
        f'params fqdn="{PUBLIC_FQDN}" ip_address="{address}"')
    assert json.loads(sent["json_groups"]) == {
        "grp_glance_hostnames": "res_glance_int_hostname res_glance_public_hostname"}
    assert "json_delete_resources" not in sent

    gh.harness.update_relation_data(ha_rel, "haglance/0", {"clustered": "yes"})
    bag = gh.harness.get_relation_data(identity.id, "glance/0")
    assert bag["public_url"] == f"http://{PUBLIC_FQDN}:9292"
    assert bag["internal_url"] == f"http://{INTERNAL_FQDN}:9292"
    assert gh.harness.get_relation_data(image, "glance/0")["glance-api-server"] == (
        f"http://{INTERNAL_FQDN}:9292")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_dns_ha_without_hostname_blocks_naming_the_options(gh: GlanceHarness) -> None:
    """Charmhelpers update_hacluster_dns_ha blocks when no os-*-hostname is set."""
    gh.harness.update_config({"dns-ha": True})
    relate_all(gh)
    ha_rel = gh.add_fixture("ha_hacluster")
    assert gh.status() == ops.BlockedStatus(
        "dns-ha needs os-public-hostname, os-internal-hostname or os-admin-hostname")
    assert "json_resources" not in gh.harness.get_relation_data(ha_rel, "glance/0")


def test_switch_from_vip_to_dns_ha_deletes_the_vip(gh: GlanceHarness) -> None:
    """Going from vip to dns-ha lists the old VIP in delete_resources.

    hacluster hooks.py ha_relation_changed deletes json_delete_resources before configuring.
    """
    from glance_charm.domain.ha_resources import vip_resource_name

    gh.harness.update_config({"vip": VIP})
    relate_all(gh)
    ha_rel = gh.add_fixture("ha_hacluster")
    assert vip_resource_name("glance", VIP) in json.loads(
        gh.harness.get_relation_data(ha_rel, "glance/0")["json_resources"])
    gh.harness.update_config({"vip": "", "dns-ha": True, "os-public-hostname": PUBLIC_FQDN})
    sent = gh.harness.get_relation_data(ha_rel, "glance/0")
    assert vip_resource_name("glance", VIP) not in json.loads(sent["json_resources"])
    assert vip_resource_name("glance", VIP) in json.loads(sent["json_delete_resources"])
    assert "grp_glance_vips" not in json.loads(sent["json_groups"])
    identity = gh.harness.model.get_relation("identity-service")
    assert identity is not None
    assert gh.harness.get_relation_data(identity.id, "glance/0")["public_url"] == (
        f"http://{PUBLIC_FQDN}:9292")
    assert gh.status() == ops.ActiveStatus("Unit is ready")

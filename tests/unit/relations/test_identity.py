"""identity-service: endpoint publishing and credentials from classic and k8s keystone."""

from __future__ import annotations

import json

import ops

from tests.unit.conftest import GlanceHarness


def test_endpoints_published_on_join(gh: GlanceHarness) -> None:
    rel = gh.harness.add_relation("identity-service", "keystone")
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag == {
        "service": "glance", "region": "RegionOne",
        "public_url": "http://10.5.0.100:9292", "internal_url": "http://10.5.0.100:9292",
        "admin_url": "http://10.5.0.100:9292",
    }
    app_bag = gh.harness.get_relation_data(rel, "glance")
    endpoints = json.loads(app_bag["service-endpoints"])
    assert endpoints[0]["service_name"] == "glance"
    assert endpoints[0]["type"] == "image"
    assert app_bag["region"] == "RegionOne"


def test_hostname_overrides_and_region(gh: GlanceHarness) -> None:
    rel = gh.harness.add_relation("identity-service", "keystone")
    gh.harness.update_config({"os-public-hostname": "images.example.com",
                              "os-admin-hostname": "glance-admin.internal",
                              "region": "RegionTwo"})
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag["public_url"] == "http://images.example.com:9292"
    assert bag["admin_url"] == "http://glance-admin.internal:9292"
    assert bag["internal_url"] == "http://10.5.0.100:9292"
    assert bag["region"] == "RegionTwo"


def test_binding_addresses_per_endpoint(gh: GlanceHarness, monkeypatch) -> None:
    """Harness cannot give extra-bindings a network: answer network-get for them here."""
    import ipaddress
    from types import SimpleNamespace

    extra = {"public": "192.168.10.5", "internal": "fd00::20"}
    real_get_binding = gh.harness.model.get_binding

    def get_binding(name):
        if name in extra:
            address = ipaddress.ip_address(extra[name])
            return SimpleNamespace(network=SimpleNamespace(ingress_address=address,
                                                           bind_address=address))
        if name == "admin":
            raise ops.ModelError("no such binding")
        return real_get_binding(name)

    monkeypatch.setattr(gh.harness.model, "get_binding", get_binding)
    rel = gh.harness.add_relation("identity-service", "keystone")
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag["public_url"] == "http://192.168.10.5:9292"
    assert bag["internal_url"] == "http://[fd00::20]:9292"
    assert bag["admin_url"] == "http://10.5.0.100:9292"  # falls back to identity-service


def test_identity_lifecycle(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    rel = gh.add_fixture("identity-service_keystone",
                         override={"service_password": "", "service_tenant_id": ""})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: identity")
    gh.harness.update_relation_data(rel, "keystone/0", {"service_password": "pw"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: identity")  # v3 needs ids
    gh.harness.update_relation_data(rel, "keystone/0", {"service_tenant_id": "abc"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    gh.harness.update_relation_data(rel, "keystone/0", {"auth_protocol": "https"})
    assert gh.conf()["keystone_authtoken"]["auth_url"] == "https://10.5.0.10:35357/v3"
    gh.harness.remove_relation(rel)
    assert gh.status() == ops.BlockedStatus("Missing relations: identity")
    assert gh.conf()["keystone_authtoken"]["password"] == "pw"


def test_null_values_are_dropped(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override={"service_password": "__null__"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: identity")


def test_garbage_port_is_incomplete(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override={"auth_port": "http"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: identity")
    assert not gh.conf_path.exists()


def test_keystone_v2_without_domain_ids(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override={
        "api_version": "2.0", "service_domain": "", "service_domain_id": ""})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["keystone_authtoken"]["user_domain_name"] == "default"


def test_keystone_k8s_app_bag_with_secret(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    rel = gh.harness.add_relation("identity-service", "keystone-k8s")
    gh.harness.add_relation_unit(rel, "keystone-k8s/0")
    secret = gh.harness.add_model_secret("keystone-k8s", {"username": "svc-glance",
                                                          "password": "k8spw"})
    gh.harness.grant_secret(secret, "glance")
    gh.harness.update_relation_data(rel, "keystone-k8s", {
        "api-version": "v3", "service-host": "ks.example", "service-port": "443",
        "service-protocol": "https", "internal-host": "keystone.internal",
        "internal-port": "5000", "internal-protocol": "http",
        "service-project-name": "services", "service-domain-name": "service_domain",
        "service-domain-id": "d1", "service-credentials": secret,
    })
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    auth = gh.conf()["keystone_authtoken"]
    assert auth["www_authenticate_uri"] == "https://ks.example:443/v3"
    assert auth["auth_url"] == "http://keystone.internal:5000/v3"
    assert (auth["username"], auth["password"]) == ("svc-glance", "k8spw")


def test_non_leader_does_not_write_app_bag(gh: GlanceHarness) -> None:
    gh.harness.set_leader(False)
    rel = gh.harness.add_relation("identity-service", "keystone")
    assert gh.harness.get_relation_data(rel, "glance") == {}
    assert gh.harness.get_relation_data(rel, "glance/0")["service"] == "glance"

"""amqp (rabbitmq): optional notifications, every broker unit in transport_url."""

from __future__ import annotations

import base64

import ops

from tests.unit.conftest import GlanceHarness

PW = "Oeb1lIcUvYV8m0pVXh3qNa6KzJ5sCwT2dRfE7gHy9iLkMn4oPqRsTuVwXyZ0aBcD"
CA = "-----BEGIN CERTIFICATE-----\nMIIBrabbit\n-----END CERTIFICATE-----\n"


def relate_core(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")


def test_no_amqp_means_no_notifications_and_no_complaint(gh: GlanceHarness) -> None:
    relate_core(gh)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert not conf.has_section("oslo_messaging_notifications")
    assert not conf.has_option("DEFAULT", "transport_url")


def test_request_published(gh: GlanceHarness) -> None:
    rel = gh.harness.add_relation("amqp", "rabbitmq-server")
    assert gh.harness.get_relation_data(rel, "glance/0") == {
        "username": "glance", "vhost": "openstack"}
    gh.harness.update_config({"rabbit-user": "img", "rabbit-vhost": "glance"})
    assert gh.harness.get_relation_data(rel, "glance/0") == {"username": "img", "vhost": "glance"}


def test_related_incomplete_waits(gh: GlanceHarness) -> None:
    relate_core(gh)
    before = gh.conf_path.read_bytes()
    rel = gh.harness.add_relation("amqp", "rabbitmq-server")
    gh.harness.add_relation_unit(rel, "rabbitmq-server/0")
    assert gh.status() == ops.WaitingStatus("Incomplete relations: messaging")
    assert gh.conf_path.read_bytes() == before


def test_every_unit_in_transport_url(gh: GlanceHarness) -> None:
    relate_core(gh)
    gh.add_fixture("amqp_rabbitmq-server")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    expected = (f"rabbit://glance:{PW}@10.5.0.91:5672,glance:{PW}@10.5.0.92:5672,"
                f"glance:{PW}@10.5.0.93:5672/openstack")
    assert conf["DEFAULT"]["transport_url"] == expected
    assert conf["oslo_messaging_notifications"]["driver"] == "messagingv2"
    assert conf["oslo_messaging_notifications"]["transport_url"] == expected
    assert conf["oslo_messaging_rabbit"]["ssl"] == "false"


def test_host_is_private_address_not_hostname(gh: GlanceHarness) -> None:
    relate_core(gh)
    gh.add_fixture("amqp_rabbitmq-server", units=1, override={"hostname": "rabbit-0.maas"})
    assert "@10.5.0.91:5672/" in gh.conf()["DEFAULT"]["transport_url"]


def test_clustered_vip_and_ssl(gh: GlanceHarness) -> None:
    relate_core(gh)
    gh.add_fixture("amqp_rabbitmq-server", override={
        "clustered": "true", "vip": "10.5.0.99", "ssl_port": "5671",
        "ssl_ca": base64.b64encode(CA.encode()).decode()})
    conf = gh.conf()
    assert conf["DEFAULT"]["transport_url"] == f"rabbit://glance:{PW}@10.5.0.99:5671/openstack"
    assert conf["oslo_messaging_rabbit"]["ssl"] == "true"
    assert conf["oslo_messaging_rabbit"]["ssl_ca_file"] == "/etc/glance/rabbit-client-ca.pem"
    assert (gh.root / "etc/glance/rabbit-client-ca.pem").read_text() == CA


def test_departure_removes_notifications_and_restarts_once(gh: GlanceHarness) -> None:
    relate_core(gh)
    rel = gh.add_fixture("amqp_rabbitmq-server", units=1)
    restarts = gh.services.count("restart")
    gh.harness.remove_relation(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert not gh.conf().has_section("oslo_messaging_notifications")
    assert gh.services.count("restart") == restarts + 1


def test_password_with_specials_is_quoted(gh: GlanceHarness) -> None:
    relate_core(gh)
    gh.add_fixture("amqp_rabbitmq-server", units=1, override={"password": "a@b/c$d"})
    assert gh.conf()["DEFAULT"]["transport_url"] == (
        "rabbit://glance:a%40b%2Fc%24d@10.5.0.91:5672/openstack")


def test_garbage_ssl_port_is_incomplete(gh: GlanceHarness) -> None:
    relate_core(gh)
    gh.add_fixture("amqp_rabbitmq-server", units=1, override={"ssl_port": "tls"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: messaging")


def test_rabbitmq_k8s_app_bag(gh: GlanceHarness) -> None:
    relate_core(gh)
    rel = gh.harness.add_relation("amqp", "rabbitmq-k8s")
    gh.harness.add_relation_unit(rel, "rabbitmq-k8s/0")
    assert gh.harness.get_relation_data(rel, "glance")["username"] == "glance"
    gh.harness.update_relation_data(rel, "rabbitmq-k8s", {"hostname": "10.1.2.3",
                                                          "password": "k8s"})
    assert gh.conf()["DEFAULT"]["transport_url"] == "rabbit://glance:k8s@10.1.2.3:5672/openstack"

"""Swift store: object-store relation, glance-swift.conf reference file, removal."""

from __future__ import annotations

import configparser

import ops

from tests.unit.conftest import GlanceHarness

PASSWORD = "skdHjx9cN3Tuez4nHYWVOpaBsVmLu3EZtwFHO8oCjC302mqIU2kmkcZtZARezidh"


def swift_path(gh: GlanceHarness):
    return gh.root / "etc/glance/glance-swift.conf"


def read_reference(gh: GlanceHarness) -> dict[str, str]:
    """Read glance-swift.conf as glance_store does (ConfigParser + its quote stripping)."""
    parser = configparser.ConfigParser()
    parser.read_string(swift_path(gh).read_text())
    values = {}
    for key in parser["swift"]:
        value = parser.get("swift", key)
        if value[:1] in "\"'" and len(value) > 1 and value[-1] == value[0]:
            value = value[1:-1]
        values[key] = value
    return values


def test_related_swift_enables_the_store(gh: GlanceHarness) -> None:
    gh.relate_core()
    restarts = gh.services.count("restart")
    gh.add_fixture("object-store_swift-proxy")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, swift:swift"
    assert conf["glance_store"]["default_backend"] == "swift"
    assert dict(conf["swift"]) == {
        "default_swift_reference": "swift",
        "swift_store_config_file": "/etc/glance/glance-swift.conf",
        "swift_store_container": "glance",
        "swift_store_create_container_on_put": "true",
        "swift_store_large_object_size": "5120",
        "swift_store_large_object_chunk_size": "200",
        "swift_store_endpoint_type": "publicURL",
        "swift_store_auth_insecure": "false",
    }
    assert conf["DEFAULT"]["show_image_direct_url"] == "false"
    assert gh.services.count("restart") == restarts + 1


def test_reference_file_holds_glance_keystone_credentials(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.add_fixture("object-store_swift-proxy")
    assert read_reference(gh) == {
        "auth_version": "3",
        "auth_address": "http://10.5.0.10:5000/v3",
        "user": "services:glance",
        "key": PASSWORD,
        "user_domain_name": "service_domain",
        "project_domain_name": "service_domain",
        "user_domain_id": "ec5404075acaba06387ffaa4761435a9",
        "project_domain_id": "ec5404075acaba06387ffaa4761435a9",
        "container": "glance",
    }
    assert swift_path(gh).stat().st_mode & 0o777 == 0o640


def test_awkward_password_survives_configparser(gh: GlanceHarness) -> None:
    password = '"100%  sure$ '
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override={"service_password": password})
    gh.add_fixture("object-store_swift-proxy")
    # `clean()` strips relation values, so the trailing space is not part of the password.
    assert read_reference(gh)["key"] == password.strip()


def test_keystone_v2_credentials_have_no_domain_ids(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override={
        "api_version": "2.0", "service_domain_id": "", "service_domain": "",
    })
    gh.add_fixture("object-store_swift-proxy")
    reference = read_reference(gh)
    assert "user_domain_id" not in reference
    assert reference["user_domain_name"] == "default"


def test_internal_endpoints_option(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.add_fixture("object-store_swift-proxy")
    gh.harness.update_config({"use-internal-endpoints": True})
    assert gh.conf()["swift"]["swift_store_endpoint_type"] == "internalURL"


def test_swift_without_a_unit_is_incomplete(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.harness.add_relation("object-store", "swift-proxy")
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    assert gh.conf()["DEFAULT"]["enabled_backends"] == "local:file"
    assert not swift_path(gh).exists()


def test_swift_waits_for_identity_credentials(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("object-store_swift-proxy")
    assert gh.status() == ops.BlockedStatus("Missing relations: identity")
    gh.add_fixture("identity-service_keystone", override={"service_password": ""})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: identity")
    assert not swift_path(gh).exists()


def test_removing_swift_removes_its_config_and_restarts_once(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.add_fixture("object-store_swift-proxy")
    restarts = gh.services.count("restart")
    gh.harness.remove_relation(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert not swift_path(gh).exists()
    conf = gh.conf()
    assert not conf.has_section("swift")
    assert conf["DEFAULT"]["enabled_backends"] == "local:file"
    assert conf["glance_store"]["default_backend"] == "local"
    assert gh.services.count("restart") == restarts + 1


def test_password_rotation_rewrites_reference_and_restarts(gh: GlanceHarness) -> None:
    _, ks = gh.relate_core()
    gh.add_fixture("object-store_swift-proxy")
    restarts = gh.services.count("restart")
    gh.harness.update_relation_data(ks, "keystone/0", {"service_password": "new-secret"})
    assert read_reference(gh)["key"] == "new-secret"
    assert gh.services.count("restart") == restarts + 1

"""S3 store, cinder store and the storage-backend subordinate (issue 14).

References: openstack/charm-glance hooks/glance_contexts.py ExternalS3Context,
CinderStoreContext, MultiBackendContext (backends, sections, default order), templates/
epoxy/glance-api.conf and templates/parts/section-storage, hooks/glance_utils.py
check_optional_config_and_relations ('Invalid external S3 config'), PY3_PACKAGES,
charmhelpers contrib/openstack/context.py SubordinateConfigContext and VolumeAPIContext.
"""

from __future__ import annotations

import json
import logging
import stat

import ops
import pytest

from tests.unit.conftest import GlanceHarness

SECRET = "s3cr3t-KEY-never-logged"
S3 = {"s3-store-host": "http://10.5.0.90:7480", "s3-store-access-key": "AKIAEXAMPLE",
      "s3-store-secret-key": SECRET, "s3-store-bucket": "glance-images"}


def ready(gh: GlanceHarness, **config: str | int | bool) -> None:
    if config:
        gh.harness.update_config(config)
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_s3_store_rendered_and_secret_never_logged(
    gh: GlanceHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ready(gh, **{"expose-image-locations": True})
    gh.harness.update_config(S3)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, s3:s3"
    assert conf["glance_store"]["default_backend"] == "s3"
    assert dict(conf["s3"]) == {"s3_store_host": "http://10.5.0.90:7480",
                                "s3_store_access_key": "AKIAEXAMPLE",
                                "s3_store_secret_key": SECRET,
                                "s3_store_bucket": "glance-images"}
    assert conf["DEFAULT"]["show_image_direct_url"] == "false"
    mode = gh.conf_path.stat().st_mode
    assert stat.S_IMODE(mode) == 0o640
    assert ("python3-boto3",) in gh.workload.package_installs
    assert SECRET not in caplog.text
    assert SECRET not in repr(gh.charm.reconciler.config())


@pytest.mark.parametrize("partial, missing", [
    ({"s3-store-host": "http://h:1"},
     "s3-store-access-key, s3-store-secret-key, s3-store-bucket"),
    ({k: v for k, v in S3.items() if k != "s3-store-secret-key"}, "s3-store-secret-key"),
])
def test_partial_s3_config_blocks_and_keeps_the_last_config(
    gh: GlanceHarness, partial: dict[str, str], missing: str
) -> None:
    ready(gh)
    before = gh.conf_path.read_bytes()
    gh.harness.update_config(partial)
    assert gh.status() == ops.BlockedStatus(f"Invalid external S3 config: missing {missing}")
    assert gh.conf_path.read_bytes() == before


@pytest.mark.parametrize("option, value", [
    ("s3-store-host", "10.5.0.90:7480"), ("s3-store-host", "ftp://x"),
    ("s3-store-bucket", "Bad_Bucket"), ("s3-store-secret-key", "a b"),
])
def test_bad_s3_values_are_invalid_config(gh: GlanceHarness, option: str, value: str) -> None:
    ready(gh)
    gh.harness.update_config({**S3, option: value})
    assert gh.status() == ops.BlockedStatus(f"Invalid config: {option}")
    assert SECRET not in gh.status().message


def test_s3_counts_as_shared_storage_for_ha(gh: GlanceHarness) -> None:
    ready(gh, **S3)
    cluster = gh.harness.model.get_relation("cluster")
    assert cluster is not None
    gh.harness.add_relation_unit(cluster.id, "glance/1")
    gh.event()
    assert gh.status() != ops.BlockedStatus(
        "HA requires ceph or swift storage: relate glance to ceph-mon or swift-proxy")


def test_cinder_store_without_volume_types(gh: GlanceHarness) -> None:
    ready(gh)
    gh.add_fixture("cinder-volume-service_cinder")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, cinder:cinder"
    assert conf["glance_store"]["default_backend"] == "cinder"
    assert dict(conf["cinder"]) == {"cinder_http_retries": "3",
                                    "cinder_state_transition_timeout": "300"}
    assert ("python3-cinderclient", "python3-os-brick",
            "python3-oslo.rootwrap") in gh.workload.package_installs


def test_cinder_store_per_volume_type_with_glance_credentials(gh: GlanceHarness) -> None:
    options: dict[str, str | int | bool] = {
        "cinder-volume-types": "fast,slow", "cinder-http-retries": 5,
        "cinder-state-transition-timeout": 60, "use-internal-endpoints": True}
    ready(gh, **options)
    gh.add_fixture("cinder-volume-service_cinder")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, fast:cinder, slow:cinder"
    assert conf["glance_store"]["default_backend"] == "fast"
    fast = conf["fast"]
    assert fast["cinder_volume_type"] == "fast"
    assert fast["cinder_http_retries"] == "5"
    assert fast["cinder_state_transition_timeout"] == "60"
    assert fast["cinder_catalog_info"] == "volumev3:cinderv3:internalURL"
    auth = conf["keystone_authtoken"]
    assert fast["cinder_store_user_name"] == auth["username"]
    assert fast["cinder_store_password"] == auth["password"]
    assert fast["cinder_store_project_name"] == auth["project_name"]
    assert fast["cinder_store_auth_address"] == auth["auth_url"]
    assert fast["cinder_store_user_domain_name"] == auth["user_domain_name"]
    assert conf["slow"]["cinder_volume_type"] == "slow"


@pytest.mark.parametrize("types", ["ceph", "a,,b", "a,a", "bad type", "glance_store"])
def test_bad_volume_types_are_invalid(gh: GlanceHarness, types: str) -> None:
    ready(gh)
    gh.harness.update_config({"cinder-volume-types": types})
    assert gh.status() == ops.BlockedStatus("Invalid config: cinder-volume-types")


def test_default_store_can_pin_s3_or_cinder(gh: GlanceHarness) -> None:
    ready(gh, **S3, **{"cinder-volume-types": "fast"})
    gh.add_fixture("cinder-volume-service_cinder")
    gh.harness.update_config({"default-store": "cinder"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["glance_store"]["default_backend"] == "fast"
    gh.harness.update_config({"default-store": "s3"})
    assert gh.conf()["glance_store"]["default_backend"] == "s3"


def relate_backend(gh: GlanceHarness, bag: dict[str, str]) -> int:
    rel = gh.harness.add_relation("storage-backend", "glance-backend")
    gh.harness.add_relation_unit(rel, "glance-backend/0")
    gh.harness.update_relation_data(rel, "glance-backend/0", bag)
    return rel


def test_storage_backend_subordinate_configuration_is_merged(gh: GlanceHarness) -> None:
    ready(gh)
    sub = {"glance-api": {"/etc/glance/glance-api.conf": {"sections": {
        "DEFAULT": [["workers", "99"]],
        "glance_store": [["default_backend", "other"], ["store_extra", "1"]],
        "vendor_store": [["vendor_opt", "first"], ["vendor_url", "http://x:1/$y"],
                         ["vendor_opt", "a,b"]],
    }}}}
    relate_backend(gh, {"subordinate_configuration": json.dumps(sub)})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["workers"] != "99"  # DEFAULT is skipped, as the classic template
    # the classic template's later [glance_store] wins in oslo.config: the subordinate's
    assert conf["glance_store"]["default_backend"] == "other"
    assert conf["glance_store"]["store_extra"] == "1"
    assert dict(conf["vendor_store"]) == {"vendor_opt": "a,b", "vendor_url": "http://x:1/$y"}
    assert gh.conf_path.read_text().count("[glance_store]") == 1


@pytest.mark.parametrize("raw", ["not json", json.dumps({"nova": {}}), json.dumps(
    {"glance-api": {"/etc/glance/glance-api.conf": {"sections": {"s": [["k", "a\nb"]]}}}})])
def test_unusable_subordinate_configuration_is_ignored(gh: GlanceHarness, raw: str) -> None:
    ready(gh)
    before = gh.conf_path.read_text()
    relate_backend(gh, {"subordinate_configuration": raw})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf_path.read_text() == before


def test_storage_backend_cinder_flag_enables_the_cinder_store(gh: GlanceHarness) -> None:
    ready(gh)
    rel = relate_backend(gh, {"cinder-backend": "False"})
    assert "cinder" not in gh.conf()["DEFAULT"]["enabled_backends"]
    gh.harness.update_relation_data(rel, "glance-backend/0", {"cinder-backend": "True"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["DEFAULT"]["enabled_backends"] == "local:file, cinder:cinder"


@pytest.mark.parametrize("sections", ['"not a mapping"', '{"s": "not a list"}'])
def test_subordinate_sections_of_the_wrong_shape_are_ignored(
    gh: GlanceHarness, sections: str
) -> None:
    ready(gh)
    before = gh.conf_path.read_text()
    raw = '{"glance-api": {"/etc/glance/glance-api.conf": {"sections": ' + sections + "}}}"
    relate_backend(gh, {"subordinate_configuration": raw})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf_path.read_text() == before

"""Ceph store: broker request, response matching, ceph.conf/keyring, last good pool, removal."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import ops
import pytest

from tests.unit.conftest import GlanceHarness

CEPH_KEY = "AQCAmWZmAAAAABAAtKDpE7vGO/vagROqzRDK2Q=="


def ceph_files(gh: GlanceHarness) -> tuple:
    return gh.root / "etc/ceph/ceph.conf", gh.root / "etc/ceph/ceph.client.glance.keyring"


def ceph_conf(gh: GlanceHarness) -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(ceph_files(gh)[0].read_text())
    return {name: dict(parser[name]) for name in parser.sections()}


# ---- request ------------------------------------------------------------------------------
def test_only_application_name_until_a_mon_has_a_key(gh: GlanceHarness) -> None:
    rel = gh.add_fixture("ceph_ceph-mon", override={"key": "", "auth": ""})
    assert gh.harness.get_relation_data(rel, "glance/0") == {"application-name": "glance"}
    gh.harness.update_relation_data(rel, "ceph-mon/1", {"key": CEPH_KEY})
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag["unit-name"] == "glance/0"
    assert "broker_req" in bag


def test_broker_request_field_by_field(gh: GlanceHarness) -> None:
    rel = gh.relate_ceph(answer=False)
    request = gh.sent_broker_request(rel)
    assert list(request) == ["api-version", "ops", "request-id"]
    assert request["api-version"] == 1
    assert len(request["ops"]) == 1
    op = request["ops"][0]
    assert op["op"] == "create-pool"
    assert op["name"] == "glance"
    assert op["replicas"] == 3
    assert op["weight"] == 5
    assert op["app-name"] == "rbd"
    assert op["group"] == "images"
    assert op["rbd-mirroring-mode"] == "pool"
    for key in ("pg_num", "crush-profile", "max-bytes", "max-objects", "group-namespace",
                "compression-algorithm", "compression-mode"):
        assert op[key] is None, key
    ops_json = json.dumps(request["ops"], sort_keys=True).encode()
    assert request["request-id"] == hashlib.sha1(ops_json, usedforsecurity=False).hexdigest()


def test_unchanged_request_is_not_resent(gh: GlanceHarness) -> None:
    rel = gh.relate_ceph(answer=False)
    before = gh.harness.get_relation_data(rel, "glance/0")["broker_req"]
    gh.event()
    gh.harness.update_config({"debug": True})
    gh.harness.update_relation_data(rel, "ceph-mon/2", {"auth": "cephx"})
    assert gh.harness.get_relation_data(rel, "glance/0")["broker_req"] == before


def test_new_request_when_pool_options_change(gh: GlanceHarness) -> None:
    rel = gh.relate_ceph(answer=False)
    first = gh.sent_broker_request(rel)
    gh.harness.update_config({"ceph-osd-replication-count": 2, "ceph-pool-weight": 20})
    second = gh.sent_broker_request(rel)
    assert second["request-id"] != first["request-id"]
    assert (second["ops"][0]["replicas"], second["ops"][0]["weight"]) == (2, 20)
    gh.harness.update_config({"ceph-osd-replication-count": 3, "ceph-pool-weight": 5})
    assert gh.sent_broker_request(rel) == first


def test_restricted_pools_add_key_permissions(gh: GlanceHarness) -> None:
    gh.harness.update_config({"restrict-ceph-pools": True})
    rel = gh.relate_ceph(answer=False)
    request = gh.sent_broker_request(rel)
    assert request["ops"][1] == {
        "op": "add-permissions-to-key", "group": "images", "namespace": None, "name": "glance",
        "group-permission": "rwx", "object-prefix-permissions": {"class-read": ["rbd_children"]},
    }
    assert request["request-id"] == "03e1a923b4a3991b706430b338a54a479098ed08"


# ---- response -----------------------------------------------------------------------------
def test_waits_for_the_broker_and_serves_local_meanwhile(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.relate_ceph(answer=False)
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    assert gh.conf()["DEFAULT"]["enabled_backends"] == "local:file"
    assert not gh.conf().has_section("ceph")
    assert not any(path.exists() for path in ceph_files(gh))
    assert "glance-api" in gh.services.running


def test_answer_to_our_request_enables_rbd(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    restarts = gh.services.count("restart")
    gh.answer_broker(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file, ceph:rbd"
    assert conf["glance_store"]["default_backend"] == "ceph"
    assert dict(conf["ceph"]) == {
        "rbd_store_pool": "glance", "rbd_store_user": "glance",
        "rbd_store_ceph_conf": "/etc/ceph/ceph.conf", "rbd_store_chunk_size": "8",
    }
    assert conf["DEFAULT"]["show_image_direct_url"] == "true"
    assert conf["DEFAULT"]["show_multiple_locations"] == "true"
    assert gh.services.count("restart") == restarts + 1


def test_ceph_conf_and_keyring_content_and_modes(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.relate_ceph()
    conf_path, keyring_path = ceph_files(gh)
    assert ceph_conf(gh) == {"global": {
        "auth_supported": "cephx",
        "keyring": "/etc/ceph/$cluster.$name.keyring",
        "mon host": "10.5.0.51 10.5.0.52 10.5.0.53",
    }}
    assert keyring_path.read_text() == f"[client.glance]\n\tkey = {CEPH_KEY}\n"
    assert keyring_path.stat().st_mode & 0o777 == 0o640
    assert conf_path.stat().st_mode & 0o777 == 0o644


def test_key_is_never_logged(gh: GlanceHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gh.relate_core()
    gh.relate_ceph()
    assert ceph_files(gh)[1].exists()
    assert CEPH_KEY not in caplog.text


def test_response_to_another_request_is_ignored(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    gh.answer_broker(rel, request_id="0" * 40)
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    assert not gh.conf().has_section("ceph")


def test_legacy_broker_rsp_counts_only_without_request_id(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    request_id = gh.sent_broker_request(rel)["request-id"]
    legacy = json.dumps({"exit-code": 0, "request-id": request_id})
    gh.harness.update_relation_data(rel, "ceph-mon/0", {"broker_rsp": legacy})
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    gh.harness.update_relation_data(rel, "ceph-mon/0", {"broker_rsp": '{"exit-code": 0}'})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf().has_section("ceph")


def test_broker_failure_blocks_with_its_message(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    gh.answer_broker(rel, exit_code=1, stderr="Error EINVAL:\npool size 3 > 1 osds\x1b[0m")
    assert gh.status() == ops.BlockedStatus(
        "Ceph broker request failed: Error EINVAL: pool size 3 > 1 osds [0m"
    )
    assert gh.conf()["DEFAULT"]["enabled_backends"] == "local:file"
    assert "glance-api" in gh.services.running


def test_broker_failure_message_is_truncated(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    gh.answer_broker(rel, exit_code=1, stderr="x" * 500)
    message = gh.status().message
    assert message == "Ceph broker request failed: " + "x" * 97 + "..."
    gh.answer_broker(rel, exit_code=22)
    assert gh.status().message == "Ceph broker request failed: exit code 22"


def test_success_from_any_mon_wins_over_a_stale_failure(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph(answer=False)
    gh.answer_broker(rel, exit_code=1, stderr="old leader failed", unit="ceph-mon/1")
    gh.answer_broker(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_no_key_yet_is_incomplete_storage_backend(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.add_fixture("ceph_ceph-mon", override={"key": ""})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    assert gh.conf()["DEFAULT"]["enabled_backends"] == "local:file"


def test_garbled_key_is_not_written(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.add_fixture("ceph_ceph-mon", override={"key": "AQ==\n[client.admin]"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    assert not ceph_files(gh)[1].exists()


def test_broker_pending_is_appended_to_other_relation_messages(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router", override={"password": ""})
    gh.add_fixture("identity-service_keystone")
    gh.relate_ceph(answer=False)
    assert gh.status() == ops.WaitingStatus(
        "Incomplete relations: database, Ceph broker request incomplete"
    )
    assert not gh.conf_path.exists()


# ---- ceph.conf details --------------------------------------------------------------------
def test_mon_hosts_sorted_ipv6_bracketed_and_rbd_features(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph()
    gh.harness.update_relation_data(rel, "ceph-mon/1", {
        "ceph-public-address": "2001:db8::2", "rbd-features": "61",
    })
    gh.harness.update_relation_data(rel, "ceph-mon/2", {"ceph-public-address": "not/an/address"})
    conf = ceph_conf(gh)["global"]
    assert conf["mon host"] == "10.5.0.51 [2001:db8::2]"
    assert conf["rbd default features"] == "61"


def test_erasure_coded_pool_uses_metadata_pool_and_default_data_pool(gh: GlanceHarness) -> None:
    gh.harness.update_config({"pool-type": "erasure-coded"})
    gh.relate_core()
    rel = gh.relate_ceph()
    ops_sent = gh.sent_broker_request(rel)["ops"]
    assert [op["op"] for op in ops_sent] == [
        "create-pool", "create-erasure-profile", "create-pool"
    ]
    assert gh.conf()["ceph"]["rbd_store_pool"] == "glance-metadata"
    assert ceph_conf(gh)["client"] == {"rbd default data pool": "glance"}


def test_rados_connect_timeout_when_set(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.relate_ceph()
    assert not gh.conf().has_option("ceph", "rados_connect_timeout")
    gh.harness.update_config({"rados-connect-timeout": 30})
    assert gh.conf()["ceph"]["rados_connect_timeout"] == "30"


def test_locations_hidden_when_expose_is_off(gh: GlanceHarness) -> None:
    gh.harness.update_config({"expose-image-locations": False})
    gh.relate_core()
    gh.relate_ceph()
    assert gh.conf()["DEFAULT"]["show_image_direct_url"] == "false"


# ---- last good pool while a new request is pending ----------------------------------------
def test_pool_change_keeps_the_old_pool_until_answered(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph()
    before = gh.conf_path.read_bytes()
    restarts = gh.services.count("restart")
    gh.harness.update_config({"rbd-pool-name": "images"})
    assert gh.sent_broker_request(rel)["ops"][0]["name"] == "images"
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    assert gh.conf_path.read_bytes() == before
    assert gh.services.count("restart") == restarts
    gh.answer_broker(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["ceph"]["rbd_store_pool"] == "images"
    assert gh.services.count("restart") == restarts + 1


def test_failed_new_request_keeps_the_old_pool_and_blocks(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph()
    gh.harness.update_config({"rbd-pool-name": "images"})
    gh.answer_broker(rel, exit_code=1, stderr="pool images: quota")
    assert gh.status() == ops.BlockedStatus("Ceph broker request failed: pool images: quota")
    assert gh.conf()["ceph"]["rbd_store_pool"] == "glance"


def test_last_good_pool_is_forgotten_with_the_relation(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.relate_ceph()
    gh.harness.remove_relation(rel)
    rel = gh.relate_ceph(answer=False)
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")
    assert not gh.conf().has_section("ceph")


# ---- packages -----------------------------------------------------------------------------
def test_ceph_packages_installed_once_when_related(gh: GlanceHarness) -> None:
    gh.relate_core()
    assert gh.workload.package_installs == []
    gh.relate_ceph()
    assert gh.workload.package_installs == [("ceph-common", "python3-rbd", "python3-rados")]


def test_ceph_package_failure_blocks_and_retries(gh: GlanceHarness) -> None:
    from charmlibs import apt

    gh.relate_core()
    gh.workload.package_error = apt.PackageError("E: Unable to locate package ceph-common")
    gh.relate_ceph(answer=False)
    assert gh.status() == ops.BlockedStatus("Installing ceph-common failed; will retry")
    gh.workload.package_error = None
    gh.event()
    assert gh.status() == ops.WaitingStatus("Ceph broker request incomplete")


# ---- removal ------------------------------------------------------------------------------
def test_removing_ceph_removes_its_config_and_restarts_once(gh: GlanceHarness) -> None:
    """Regression: the classic charm left ceph.conf, the keyring and [ceph] behind."""
    gh.relate_core()
    rel = gh.relate_ceph()
    assert all(path.exists() for path in ceph_files(gh))
    restarts = gh.services.count("restart")
    gh.harness.remove_relation(rel)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert not any(path.exists() for path in ceph_files(gh))
    conf = gh.conf()
    assert not conf.has_section("ceph")
    assert conf["DEFAULT"]["enabled_backends"] == "local:file"
    assert conf["glance_store"]["default_backend"] == "local"
    assert conf["DEFAULT"]["show_image_direct_url"] == "false"
    assert "ceph" not in gh.conf_path.read_text()
    assert gh.services.count("restart") == restarts + 1


def test_stale_classic_ceph_files_are_removed(gh: GlanceHarness) -> None:
    """An upgraded classic unit may carry ceph files with no ceph relation: they go."""
    conf_path, keyring_path = ceph_files(gh)
    conf_path.parent.mkdir(parents=True)
    conf_path.write_text("[global]\nmon host = 10.0.0.1\n")
    keyring_path.write_text("[client.glance]\n\tkey = old\n")
    gh.relate_core()
    assert not conf_path.exists()
    assert not keyring_path.exists()


# ---- workload edges -----------------------------------------------------------------------
def test_real_apt_install_and_dpkg_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from charmlibs import apt

    from glance_charm.workload import glance
    calls: list[tuple[list[str], bool]] = []
    monkeypatch.setattr(apt, "add_package", lambda pkgs, update_cache: calls.append(
        (pkgs, update_cache)))
    workload = glance.GlanceWorkload()
    workload.install_packages(("ceph-common", "python3-rbd"))
    assert calls == [(["ceph-common", "python3-rbd"], True)]
    root = tmp_path / "root"
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text("Package: ceph-common\nStatus: install ok installed\nVersion: 17.2.7\n\n"
                      "Package: python3-rbd\nStatus: install ok installed\nVersion: 17.2.7\n")
    workload.paths = glance.GlancePaths(root)
    assert workload.packages_installed(("ceph-common", "python3-rbd"))
    assert not workload.packages_installed(("ceph-common", "python3-rados"))


def test_invalid_pool_options_name_the_option() -> None:
    from glance_charm.domain.config import GlanceConfig
    from glance_charm.domain.exceptions import InvalidConfigError
    from glance_charm.domain.stores import ceph_request

    config = GlanceConfig.from_mapping({}).model_copy(update={"ceph_osd_replication_count": 0})
    with pytest.raises(InvalidConfigError, match="replicas"):
        ceph_request(config, "glance")

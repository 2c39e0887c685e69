"""Charm lifecycle: status, rendering, restarts, db_sync, image-service publishing."""

from __future__ import annotations

import ops
import pytest

from tests.unit.conftest import GlanceHarness


def relate_all(gh: GlanceHarness) -> tuple[int, int]:
    db = gh.add_fixture("shared-db_mysql-router")
    ks = gh.add_fixture("identity-service_keystone")
    return db, ks


def test_no_relations_blocked_naming_both(gh: GlanceHarness) -> None:
    gh.event()
    assert gh.status() == ops.BlockedStatus("Missing relations: database, identity")
    assert not gh.conf_path.exists()
    assert [call for call in gh.services.calls if call[1] == "glance-api"] == []


def test_missing_and_incomplete_together(gh: GlanceHarness) -> None:
    rel = gh.harness.add_relation("shared-db", "mysql-router")
    gh.harness.add_relation_unit(rel, "mysql-router/0")
    assert gh.status() == ops.BlockedStatus(
        "Missing relations: identity; incomplete relations: database"
    )


def test_incomplete_only_is_waiting(gh: GlanceHarness) -> None:
    gh.add_fixture("identity-service_keystone", override={"service_password": ""})
    gh.add_fixture("shared-db_mysql-router", override={"password": ""})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database, identity")
    assert not gh.conf_path.exists()


def test_complete_is_active_and_renders(gh: GlanceHarness) -> None:
    relate_all(gh)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["DEFAULT"]["enabled_backends"] == "local:file"
    assert conf["glance_store"]["default_backend"] == "local"
    assert conf["local"]["filesystem_store_datadir"] == "/var/lib/glance/images/"
    assert conf["database"]["connection"] == (
        "mysql+pymysql://glance:ps79JWXDmmgPW4Ro51g9BBV4yaFFqDBD@127.0.0.1/glance"
    )
    auth = conf["keystone_authtoken"]
    assert auth["auth_type"] == "password"
    assert auth["www_authenticate_uri"] == "http://10.5.0.10:5000/v3"
    assert auth["auth_url"] == "http://10.5.0.10:35357/v3"
    assert auth["project_domain_name"] == "service_domain"
    assert auth["user_domain_name"] == "service_domain"
    assert auth["project_name"] == "services"
    assert auth["username"] == "glance"
    assert auth["password"].startswith("skdHjx9cN3Tuez4n")
    assert auth["region_name"] == "RegionOne"
    assert conf["paste_deploy"]["flavor"] == "keystone"
    assert conf["DEFAULT"]["show_image_direct_url"] == "false"
    assert "show_multiple_locations" not in conf["DEFAULT"]  # the default is never written
    assert conf["image_format"]["disk_formats"].split(",")[0] == "ami"
    assert not conf.has_option("image_format", "container_formats")
    assert conf["DEFAULT"]["image_size_cap"] == str(1024**4)
    assert conf["oslo_concurrency"]["lock_path"] == "/var/lib/glance/lock"
    assert (gh.root / "var/lib/glance/images").is_dir()
    assert gh.conf_path.stat().st_mode & 0o777 == 0o640
    assert gh.services.count("restart") == 1
    assert gh.workload.db_syncs == 1


def test_noop_events_write_and_restart_nothing(gh: GlanceHarness) -> None:
    relate_all(gh)
    mtime = gh.conf_path.stat().st_mtime_ns
    calls = list(gh.services.calls)
    gh.event()
    gh.harness.update_config({})
    gh.harness.charm.on.config_changed.emit()
    assert gh.conf_path.stat().st_mtime_ns == mtime
    assert gh.services.calls == calls
    assert gh.workload.db_syncs == 1
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_credentials_change_restarts_exactly_once(gh: GlanceHarness) -> None:
    _, ks = relate_all(gh)
    before = gh.services.count("restart")
    gh.harness.update_relation_data(ks, "keystone/0", {"service_password": "n3w-pa$$word"})
    assert gh.services.count("restart") == before + 1
    # oslo.config expands $name: a literal dollar is written doubled.
    assert gh.conf()["keystone_authtoken"]["password"] == "n3w-pa$$$$word"
    gh.event()
    assert gh.services.count("restart") == before + 1


OSLO_INIPARSER = "/usr/lib/python3/dist-packages/oslo_config/iniparser.py"


@pytest.mark.parametrize("value", [
    "plain", "'quoted'", '"x"', '"', "'", "''", '""', '"""', "a'", "'a", "a\"b\"", " x ",
    " 'a' ", "$HOME", "'$x'", "p@ss/w:rd",
])
def test_oslo_escape_reads_back_exactly_with_oslo_iniparser(value: str) -> None:
    """oslo.config strips blanks and one pair of matching quotes: escaped values survive."""
    import importlib.util
    from pathlib import Path

    from glance_charm.workload import rendering
    if not Path(OSLO_INIPARSER).exists():
        pytest.skip("oslo.config (installed with glance-api) is not on this machine")
    spec = importlib.util.spec_from_file_location("oslo_iniparser", OSLO_INIPARSER)
    assert spec is not None and spec.loader is not None
    iniparser = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(iniparser)
    read: dict[str, str] = {}

    class Parser(iniparser.BaseParser):  # type: ignore[name-defined]
        def assignment(self, key: str, lines: list[str]) -> None:
            read[key] = "\n".join(lines)

        def new_section(self, section: str) -> None:
            pass

    Parser().parse([f"password = {rendering.oslo_escape(value)}"])
    assert read["password"].replace("$$", "$") == value  # oslo's `$$` -> `$` comes after


def test_config_change_restarts_once(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.harness.update_config({"debug": True})
    assert gh.conf()["DEFAULT"]["debug"] == "true"
    assert gh.services.count("restart") == 2


def test_stopped_service_is_started_without_rewrite(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.services.running.clear()
    gh.event()
    assert gh.services.count("start") == 1
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_restart_owed_after_crash_is_paid_next_hook(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.workload.mark_restart_needed()  # a hook died between writing and restarting
    gh.event()
    assert gh.services.count("restart") == 2
    assert not gh.workload.restart_needed()


def test_service_failure_blocks(gh: GlanceHarness) -> None:
    gh.services.fail_on.add("restart")
    relate_all(gh)
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus)
    assert "glance-api failed to start" in status.message


def test_install_failure_blocks_then_retries(gh: GlanceHarness) -> None:
    from glance_charm.domain.exceptions import WorkloadError

    gh.workload.version = None
    gh.workload.install_error = WorkloadError("Package installation failed; will retry")
    gh.harness.charm.on.install.emit()
    assert gh.status() == ops.BlockedStatus("Package installation failed; will retry")
    gh.workload.install_error = None
    gh.event()
    assert gh.workload.installs == ["distro", "distro"]
    assert gh.workload.version is not None


def test_installed_is_not_reinstalled(gh: GlanceHarness) -> None:
    gh.harness.charm.on.install.emit()
    gh.harness.charm.on.install.emit()
    assert gh.workload.installs == []


def test_db_sync_once_and_recorded(gh: GlanceHarness) -> None:
    relate_all(gh)
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    record = peer.data[gh.harness.model.app]["db-initialised"]
    assert '"version": "2:25.1.0-2+deb12u5"' in record
    gh.harness.update_config({"debug": True})
    assert gh.workload.db_syncs == 1


def test_db_sync_again_for_new_package_version(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.workload.version = "2:28.0.1-0ubuntu1"
    gh.event()
    assert gh.workload.db_syncs == 2


def test_non_leader_waits_for_leader_db_sync(gh: GlanceHarness) -> None:
    gh.harness.set_leader(False)
    relate_all(gh)
    assert gh.status() == ops.WaitingStatus("Waiting for database initialisation by leader")
    assert gh.workload.db_syncs == 0
    assert "glance-api" not in gh.services.running
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    gh.harness.update_relation_data(peer.id, "glance", {
        "db-initialised": '{"database": "shared-db:127.0.0.1/glance", "version": "2:25.1.0"}'
    })
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.workload.db_syncs == 0


def test_new_leader_does_not_rerun_db_sync(gh: GlanceHarness) -> None:
    relate_all(gh)
    gh.harness.set_leader(False)
    gh.harness.set_leader(True)
    assert gh.workload.db_syncs == 1


def test_image_service_published_only_when_ready(gh: GlanceHarness) -> None:
    rel = gh.add_fixture("image-service_nova-cloud-controller")
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag.get("glance-api-server") is None
    assert bag["glance-api-ready"] == "no"
    relate_all(gh)
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag["glance-api-server"] == "http://10.5.0.100:9292"
    assert bag["glance-api-ready"] == "yes"
    db = gh.harness.model.get_relation("shared-db")
    assert db is not None
    gh.harness.remove_relation(db.id)  # glance-api keeps serving its last good config,
    bag = gh.harness.get_relation_data(rel, "glance/0")  # so nova keeps the URL (issue 13.6)
    assert bag["glance-api-server"] == "http://10.5.0.100:9292"
    gh.services.running.discard("glance-api")  # ... until glance-api really stops
    gh.services.fail_on.add("start")
    gh.event()
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag.get("glance-api-server") is None
    assert bag["glance-api-ready"] == "no"


def test_removing_database_keeps_last_good_config(gh: GlanceHarness) -> None:
    db, _ = relate_all(gh)
    before = gh.conf_path.read_bytes()
    gh.harness.remove_relation(db)
    assert gh.status() == ops.BlockedStatus("Missing relations: database")
    assert gh.conf_path.read_bytes() == before
    assert gh.services.count("restart") == 1


def test_workers_follow_multiplier(gh: GlanceHarness) -> None:
    import os

    relate_all(gh)
    gh.harness.update_config({"worker-multiplier": 0.0})
    assert gh.conf()["DEFAULT"]["workers"] == "1"
    gh.harness.update_config({"worker-multiplier": 1.5})
    assert gh.conf()["DEFAULT"]["workers"] == str(max(1, int((os.cpu_count() or 1) * 1.5)))


@pytest.mark.parametrize(("option", "value", "section", "key", "expected"), [
    ("container-formats", "bare,ovf", "image_format", "container_formats", "bare,ovf"),
    ("disk-formats", "raw, qcow2", "image_format", "disk_formats", "raw,qcow2"),
    ("image-size-cap", "512M", "DEFAULT", "image_size_cap", str(512 * 1024**2)),
    ("filesystem-store-datadir", "/srv/images", "local", "filesystem_store_datadir",
     "/srv/images/"),
    ("prefer-ipv6", True, "DEFAULT", "bind_host", "::"),
    ("hashing-algorithm", "sha256", "DEFAULT", "hashing_algorithm", "sha256"),
])
def test_options_render(gh: GlanceHarness, option: str, value: object, section: str,
                        key: str, expected: str) -> None:
    relate_all(gh)
    gh.harness.update_config({option: value})  # type: ignore[dict-item]
    assert gh.conf()[section][key] == expected


def test_unobserved_hook_keeps_status(gh: GlanceHarness) -> None:
    gh.harness.model.unit.status = ops.MaintenanceStatus("busy")
    gh.harness.evaluate_status()
    assert gh.harness.model.unit.status == ops.MaintenanceStatus("busy")

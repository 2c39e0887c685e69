"""The charm's own code configuring real mariadb + keystone + glance-api on this machine."""

from __future__ import annotations

import configparser
import logging
from pathlib import Path

import ops
import pytest

from tests.functional.driver import GLANCE_CONF, GlanceStack, round_trip


def restarts(caplog: pytest.LogCaptureFixture) -> int:
    return sum("restarting glance-api" in record.getMessage() for record in caplog.records)


def conf() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(GLANCE_CONF.read_text())
    return parser


def test_unit_active_and_endpoint_registered(stack: GlanceStack) -> None:
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    assert stack.keystone is not None
    assert stack.keystone.catalog_url("image", "public") == "http://127.0.0.1:9292"
    mode = GLANCE_CONF.stat().st_mode & 0o777
    assert mode == 0o640


def test_image_round_trip_through_catalog(stack: GlanceStack, tmp_path: Path) -> None:
    result = round_trip(stack.image_client(), tmp_path, size_mib=64)
    print(f"\nround trip: upload {result['upload_mib_s']:.0f} MiB/s, download "
          f"{result['download_mib_s']:.0f} MiB/s, cp {result['cp_mib_s']:.0f} MiB/s "
          f"(upload/cp {result['upload_mib_s'] / result['cp_mib_s']:.2f}, download/cp "
          f"{result['download_mib_s'] / result['cp_mib_s']:.2f})")
    assert result["sha256_equal"]
    assert result["listed"]
    assert result["deleted"]
    assert result["stores"] == "local"


def test_noop_hooks_do_not_restart(stack: GlanceStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pids = stack.glance_pids()
    assert stack.harness is not None
    stack.harness.charm.on.update_status.emit()
    stack.harness.charm.on.config_changed.emit()
    assert restarts(caplog) == 0
    assert stack.glance_pids() == pids


def test_config_change_restarts_once_and_keeps_answering(
    stack: GlanceStack, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    before = stack.glance_pids()
    assert stack.harness is not None
    stack.harness.update_config({"debug": True})
    assert restarts(caplog) == 1
    assert conf()["DEFAULT"]["debug"] == "true"
    stack.wait_healthy()
    assert stack.glance_pids().isdisjoint(before)
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    assert round_trip(stack.image_client(), tmp_path, size_mib=4)["sha256_equal"]
    stack.harness.update_config({"debug": False})
    assert restarts(caplog) == 2


def test_database_removed_keeps_last_good_config_and_recovers(
    stack: GlanceStack, tmp_path: Path
) -> None:
    stack.wait_healthy()
    before = GLANCE_CONF.read_bytes()
    stack.remove("shared-db")
    assert stack.status() == ops.BlockedStatus("Missing relations: database")
    assert GLANCE_CONF.read_bytes() == before
    assert stack.charm.workload.healthy(9292)  # still serving with the last good config
    stack.relate_database()
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    stack.wait_healthy()
    assert round_trip(stack.image_client(), tmp_path, size_mib=4)["sha256_equal"]

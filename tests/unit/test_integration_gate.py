"""The integration tier skips, with a clear reason, unless a Juju controller is reachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import conftest as gate

ROOT = Path(__file__).resolve().parents[2]


def _fake_juju(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    juju = bin_dir / "juju"
    juju.write_text(f"#!/bin/sh\n{script}\n")
    juju.chmod(0o755)


@pytest.fixture
def path_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds only an empty bin dir (where a fake juju may be put)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_no_juju_cli(path_only: Path) -> None:
    assert gate.controller_unavailable_reason() == (
        "no Juju controller: the `juju` CLI is not on PATH"
    )


def test_controllers_command_fails(path_only: Path) -> None:
    _fake_juju(path_only, 'echo "ERROR No controllers registered." >&2; exit 1')
    reason = gate.controller_unavailable_reason()
    assert reason == (
        "no Juju controller: `juju controllers` exited 1: ERROR No controllers registered."
    )


def test_controllers_prints_no_json(path_only: Path) -> None:
    _fake_juju(path_only, "echo not json")
    assert "printed no JSON" in str(gate.controller_unavailable_reason())


def test_no_controller_registered(path_only: Path) -> None:
    _fake_juju(path_only, "echo '{\"controllers\": {}}'")
    assert "none is registered" in str(gate.controller_unavailable_reason())


def test_no_current_controller(path_only: Path) -> None:
    _fake_juju(path_only, 'echo \'{"controllers": {"lxd": {}}}\'')
    assert "none is current" in str(gate.controller_unavailable_reason())


def test_reachable_controller(path_only: Path) -> None:
    _fake_juju(
        path_only,
        'test "$1 $2 $3" = "controllers --format json" || exit 3\n'
        'echo \'{"controllers": {"lxd": {}}, "current-controller": "lxd"}\'',
    )
    assert gate.controller_unavailable_reason() is None


def test_controllers_command_hangs(path_only: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "CONTROLLER_TIMEOUT", 0.2)
    _fake_juju(path_only, "exec /bin/sleep 5")
    assert "timed out" in str(gate.controller_unavailable_reason())


def test_integration_tier_skips_here_without_juju(tmp_path: Path) -> None:
    """Runs the tier as `tox -e integration` does, with no juju on PATH: all skipped, exit 0."""
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    env["PYTHONPATH"] = f"{ROOT / 'src'}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "tests/run_pytest.py", "tests/integration", "-rs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the `juju` CLI is not on PATH" in result.stdout
    assert " passed" not in result.stdout and " skipped" in result.stdout

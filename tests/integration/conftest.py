"""Integration tier gate and fixtures: skip without a reachable Juju controller; pack; model.

Every test under tests/integration is skipped, with the reason, when the `juju` CLI is not on
PATH or `juju controllers --format json` fails or names no current controller. Nothing is
packed or deployed in that case.

Environment knobs:
    ``GLANCE_CHARM``: deploy this .charm instead of packing one with tools/pack.py.
    ``GLANCE_IT_MODEL``: use this existing model instead of a temporary one (kept).
    ``GLANCE_IT_KEEP_MODEL``: keep the temporary model after the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CONTROLLER_TIMEOUT = 30


def _controllers_json(juju: str) -> tuple[dict | None, str]:
    """Run `juju controllers --format json`: (parsed output, or None and why not)."""
    try:
        result = subprocess.run(
            [juju, "controllers", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=CONTROLLER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`juju controllers` failed ({exc})"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        suffix = f": {detail[-1]}" if detail else ""
        return None, f"`juju controllers` exited {result.returncode}{suffix}"
    try:
        return json.loads(result.stdout or "{}"), ""
    except json.JSONDecodeError:
        return None, "`juju controllers --format json` printed no JSON"


def controller_unavailable_reason() -> str | None:
    """Say why no Juju controller can be used, or None when one is reachable.

    Returns:
        A sentence for the skip message, or None.
    """
    juju = shutil.which("juju")
    if juju is None:
        return "no Juju controller: the `juju` CLI is not on PATH"
    data, why = _controllers_json(juju)
    if data is not None and not data.get("controllers"):
        why = "none is registered (`juju bootstrap` or `juju register`)"
    elif data is not None and not data.get("current-controller"):
        why = "none is current (`juju switch <controller>`)"
    elif data is not None:
        return None
    return f"no Juju controller: {why}"


def _in_this_tier(item: pytest.Item) -> bool:
    return Path(str(item.fspath)).resolve().is_relative_to(HERE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs a Juju controller (jubilant)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _in_this_tier(item)]
    if not ours:
        return
    reason = controller_unavailable_reason()
    for item in ours:
        item.add_marker(pytest.mark.integration)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def charm_path() -> Path:
    """The .charm to deploy: $GLANCE_CHARM, else packed now with tools/pack.py."""
    given = os.environ.get("GLANCE_CHARM")
    if given:
        path = Path(given).resolve()
        if not path.is_file():
            pytest.fail(f"GLANCE_CHARM={given} is not a file")
        return path
    from tools import pack

    (charm,) = pack.pack(ROOT)
    return charm


@pytest.fixture(scope="module")
def juju() -> Iterator[object]:
    """A jubilant.Juju on a fresh temporary model (or on $GLANCE_IT_MODEL)."""
    import jubilant

    existing = os.environ.get("GLANCE_IT_MODEL")
    if existing:
        model = jubilant.Juju(model=existing)
        model.wait_timeout = 60 * 60
        yield model
        return
    with jubilant.temp_model(keep=bool(os.environ.get("GLANCE_IT_KEEP_MODEL"))) as model:
        model.wait_timeout = 60 * 60
        yield model
        if os.environ.get("GLANCE_IT_DEBUG_LOG"):
            print(model.debug_log(limit=1000))

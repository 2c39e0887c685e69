"""Functional tier: one real stack per session, in the tier's own sandbox (needs root).

The whole pytest run re-executes itself inside `tests/functional/sandbox.py` (private mount,
network and pid namespaces) before anything starts, so the tier never sees, binds, stops or
rewrites what runs on the machine (`make local`'s stack included), and leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional import sandbox
from tests.functional.driver import GlanceStack


def pytest_configure(config: pytest.Config) -> None:
    """Re-run this pytest inside a fresh sandbox unless it already runs in one."""
    if sandbox.inside() or os.geteuid() != 0 or os.environ.get("GLANCE_FUNCTIONAL_NO_REEXEC"):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    script = Path(sandbox.__file__).resolve()
    os.execv(sys.executable, [sys.executable, str(script), "--", sys.executable,  # noqa: S606
                              *sys.orig_argv[1:]])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.functional)


@pytest.fixture(scope="session")
def stack() -> Iterator[GlanceStack]:
    if os.geteuid() != 0:
        pytest.fail("the functional tier installs packages and starts services: run as root")
    if not sandbox.inside():
        pytest.fail("the functional tier runs only in its sandbox (tests/functional/sandbox.py)")
    glance_stack = GlanceStack()
    try:
        glance_stack.start()
        glance_stack.relate_database()
        glance_stack.relate_identity()
        glance_stack.wait_healthy()
        yield glance_stack
    finally:
        glance_stack.stop()

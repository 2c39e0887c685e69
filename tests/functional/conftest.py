"""Functional tier: one real stack per session (needs root; installs what it needs with apt)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.functional.driver import GlanceStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.functional)


@pytest.fixture(scope="session")
def stack() -> Iterator[GlanceStack]:
    if os.geteuid() != 0:
        pytest.fail("the functional tier installs packages and starts services: run as root")
    glance_stack = GlanceStack()
    try:
        glance_stack.start()
        glance_stack.relate_database()
        glance_stack.relate_identity()
        glance_stack.wait_healthy()
        yield glance_stack
    finally:
        glance_stack.stop()

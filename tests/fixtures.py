"""Load relation data exactly as the real counterpart charms send it (../shared/fixtures)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_CANDIDATES = [
    Path(os.environ.get("GLANCE_FIXTURES", "")),
    Path(__file__).resolve().parent / "data" / "relations",
]


def fixture_dir() -> Path:
    """The directory holding the counterpart fixtures (vendored copy under tests/data)."""
    for candidate in _CANDIDATES:
        if str(candidate) and (candidate / "identity-service_keystone.json").exists():
            return candidate
    raise FileNotFoundError("relation fixtures not found")


def load(name: str) -> dict[str, Any]:
    """Load one fixture by file stem, e.g. `identity-service_keystone`."""
    return json.loads((fixture_dir() / f"{name}.json").read_text())

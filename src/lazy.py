"""Import a module on first attribute access (stdlib importlib.util.LazyLoader).

A hook that finds nothing to do (update-status in a steady unit) must not pay for pydantic,
jinja2 and the relation adapters (~110 ms together, issue 7); hooks that reconcile load them
when they first touch them. The name is looked up (find_spec) at once, so a missing module
still fails at import time.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """Return module `name`, loaded when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

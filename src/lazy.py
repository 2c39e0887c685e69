"""Import a module on first attribute access.

A hook that finds nothing to do (update-status in a steady unit) must not pay for pydantic,
jinja2 and the relation adapters (~110 ms together, issue 7); hooks that reconcile load them
when they first touch them. The proxy looks nothing up until then (not even the module's
spec: `importlib.util.LazyLoader` would search the path for each, ~0.3 ms a module), and
always reads through to the real module, so a test that patches the module is seen.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands for module `name` until an attribute is read, then reads it from the module."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__dict__["_lazy_target"]), attr)


def lazy_import(name: str) -> ModuleType:
    """Return a stand-in for module `name`, imported when one of its attributes is first read."""
    return LazyModule(name)

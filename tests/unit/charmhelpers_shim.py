"""Import charmhelpers (a test-only reference) on a non-Ubuntu host without it running apt.

charmhelpers picks its platform from /etc/os-release and raises on Debian; its
contrib modules ``apt-get install`` python3-netifaces / python3-psutil when those are
missing. This shim, used only by tests:

* tells ``charmhelpers.osplatform`` the platform is Ubuntu;
* stubs ``netifaces`` and ``psutil`` in ``sys.modules`` when they are not installed
  (tests patch the charmhelpers functions that would use them);
* replaces every charmhelpers apt/package entry point with one that raises, and
  refuses any subprocess while charmhelpers modules are being imported;
* offers ``patch_hookenv`` to feed charm config / unit name to charmhelpers without
  Juju tools.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

_APT_ENTRY_POINTS = (
    "apt_install",
    "apt_update",
    "apt_upgrade",
    "apt_purge",
    "apt_autoremove",
    "apt_mark",
    "apt_hold",
    "apt_unhold",
    "add_source",
    "import_key",
    "install",
    "update",
    "upgrade",
    "purge",
    "_fetch_update",
    "_run_apt_command",
    "_run_with_retries",
)


class AptBlockedError(RuntimeError):
    """charmhelpers tried to install or change packages during tests."""


def _refuse_apt(*args: Any, **kwargs: Any) -> None:
    raise AptBlockedError(f"charmhelpers tried to run apt in tests: {args} {kwargs}")


class _RefusingPopen:
    def __init__(self, args: Any, *_: Any, **__: Any) -> None:
        raise AptBlockedError(f"subprocess {args!r} refused while importing charmhelpers")


def _empty_apt_config(args: Any, *rest: Any, **kwargs: Any) -> str:
    # charmhelpers.fetch.ubuntu_apt_pkg runs `apt-config dump` at import: answer
    # with an empty dump instead of running it; anything else is refused.
    if list(args) == ["apt-config", "dump"]:
        return ""
    raise AptBlockedError(f"subprocess {args!r} refused while importing charmhelpers")


@contextmanager
def _no_subprocess() -> Iterator[None]:
    popen, check_output = subprocess.Popen, subprocess.check_output
    subprocess.Popen = _RefusingPopen  # type: ignore[assignment,misc]
    subprocess.check_output = _empty_apt_config  # type: ignore[assignment]
    try:
        yield
    finally:
        subprocess.Popen = popen  # type: ignore[misc]
        subprocess.check_output = check_output


def _stub_missing(name: str, **attrs: Any) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        module.__dict__["__charmhelpers_shim_stub__"] = True
        sys.modules[name] = module


def _stub_platform_dependencies() -> None:
    def no_interfaces() -> list[str]:
        return []

    def no_addresses(_iface: str) -> dict[int, Any]:
        return {}

    _stub_missing(
        "netifaces",
        AF_INET=2,
        AF_INET6=10,
        AF_LINK=17,
        interfaces=no_interfaces,
        ifaddresses=no_addresses,
    )
    _stub_missing("psutil")
    try:
        importlib.import_module("distutils.version")
    except ImportError:  # Python >= 3.12
        version = types.ModuleType("distutils.version")
        version.__dict__["LooseVersion"] = importlib.import_module("looseversion").LooseVersion
        sys.modules.setdefault("distutils", types.ModuleType("distutils"))
        sys.modules["distutils.version"] = version


def _block_apt_everywhere() -> None:
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "charmhelpers" or name.startswith("charmhelpers.")):
            continue
        for attr in _APT_ENTRY_POINTS:
            if callable(getattr(module, attr, None)):
                setattr(module, attr, _refuse_apt)


_MODULES = (
    "charmhelpers.core.hookenv",
    "charmhelpers.contrib.storage.linux.ceph",
    "charmhelpers.contrib.openstack.context",
    "charmhelpers.contrib.openstack.ha.utils",
    "charmhelpers.contrib.hahelpers.cluster",
)
_loaded: dict[str, types.ModuleType] = {}


def load_charmhelpers() -> dict[str, types.ModuleType]:
    """Import the charmhelpers modules the tests compare against.

    Returns:
        Module name -> module, for the names in ``_MODULES``.

    Raises:
        AptBlockedError: charmhelpers tried to run apt or any other command on import.
    """
    if _loaded:
        return _loaded
    import charmhelpers.osplatform

    def ubuntu() -> str:
        return "ubuntu"

    charmhelpers.osplatform.get_platform = ubuntu
    _stub_platform_dependencies()
    with _no_subprocess(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # fetch binds apt_* at import; block them before anything re-exports them.
        importlib.import_module("charmhelpers.fetch")
        _block_apt_everywhere()
        for name in _MODULES:
            _loaded[name] = importlib.import_module(name)
    _block_apt_everywhere()
    return _loaded


def patch_hookenv(
    monkeypatch: pytest.MonkeyPatch, config: Mapping[str, Any], unit: str = "glance/0"
) -> None:
    """Serve ``config`` as charm config and ``unit`` as the local unit to charmhelpers.

    Also silences ``log`` and ``status_set`` so nothing shells out to Juju tools.

    Args:
        monkeypatch: pytest's monkeypatch fixture (undoes everything after the test).
        config: charm config, classic option names.
        unit: local unit name (``JUJU_UNIT_NAME``).
    """
    modules = load_charmhelpers()
    values = dict(config)

    def fake_config(scope: str | None = None) -> Any:
        return values if scope is None else values.get(scope)

    def quiet(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setenv("JUJU_UNIT_NAME", unit)
    for module in modules.values():
        for attr in ("config", "config_get"):
            if hasattr(module, attr):
                monkeypatch.setattr(module, attr, fake_config)
        for attr in ("log", "status_set", "juju_log"):
            if hasattr(module, attr):
                monkeypatch.setattr(module, attr, quiet)

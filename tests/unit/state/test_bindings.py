"""Network spaces: where haproxy and glance-api listen.

haproxy listens on the public/internal/admin bindings, glance-api on the cluster binding,
unless a VIP (or DNS HA) fronts the units or the address is unknown.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ops
import pytest

from glance_charm.workload.haproxy_config import HaproxyConfig, render
from tests.unit.conftest import FakeServices, GlanceHarness, make_haproxy

UNIT_ADDRESS = "10.5.0.100"  # the Harness network of every endpoint (conftest)


def spaces(gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str | None],
           ) -> None:
    """Answer network-get for the extra-bindings (Harness cannot give them a network)."""
    real_get_binding = gh.harness.model.get_binding

    def get_binding(name: Any) -> Any:
        if name in extra:
            value = extra[name]
            if value is None:
                raise ops.ModelError(f"no binding {name}")
            address = ipaddress.ip_address(value)
            return SimpleNamespace(network=SimpleNamespace(
                ingress_address=address, bind_address=address, ingress_addresses=[address],
                interfaces=[]))
        return real_get_binding(name)

    monkeypatch.setattr(gh.harness.model, "get_binding", get_binding)


def frontend_binds(gh: GlanceHarness) -> list[str]:
    text = (gh.root / "etc/haproxy/haproxy.cfg").read_text()
    return [line.strip() for line in text.splitlines() if line.strip().startswith("bind ")]


def glance_bind_host(gh: GlanceHarness) -> str:
    return str(gh.conf()["DEFAULT"]["bind_host"])


def test_haproxy_binds_each_space_once(gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
                                       ) -> None:
    spaces(gh, monkeypatch, {"public": "192.168.10.5", "internal": "10.20.0.5",
                             "admin": "10.20.0.5"})
    gh.relate_core()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert frontend_binds(gh) == ["bind 192.168.10.5:9292", "bind 10.20.0.5:9292"]
    assert glance_bind_host(gh) == UNIT_ADDRESS  # the cluster binding: where peers connect
    assert gh.workload.health_host == UNIT_ADDRESS


def test_vip_or_unknown_binding_listens_everywhere(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spaces(gh, monkeypatch, {"public": "192.168.10.5", "internal": "10.20.0.5",
                             "admin": None})
    gh.relate_core()
    assert frontend_binds(gh) == ["bind 0.0.0.0:9292"]  # admin's address is unknown


def test_vip_listens_everywhere(gh: GlanceHarness) -> None:
    gh.relate_core()
    assert frontend_binds(gh) == [f"bind {UNIT_ADDRESS}:9292"]
    gh.harness.update_config({"vip": "10.5.100.1"})  # hacluster moves it onto any unit
    assert frontend_binds(gh) == ["bind 0.0.0.0:9292"]
    gh.harness.update_config({"vip": ""})
    assert frontend_binds(gh) == [f"bind {UNIT_ADDRESS}:9292"]


def test_prefer_ipv6_with_ipv4_bindings_binds_any(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.harness.update_config({"prefer-ipv6": True})
    assert frontend_binds(gh) == ["bind [::]:9292 v4v6"]
    assert glance_bind_host(gh) == "::"
    assert gh.workload.health_host == "::1"


def test_ipv6_spaces(gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    spaces(gh, monkeypatch, {"public": "fd00::5", "internal": "FD00:0::6", "admin": "fd00::6"})
    gh.relate_core()
    gh.harness.update_config({"prefer-ipv6": True})
    assert frontend_binds(gh) == ["bind [fd00::5]:9292", "bind [fd00::6]:9292"]


def test_rendered_binds_pass_haproxy_check(tmp_path: Path) -> None:
    cfg = HaproxyConfig.from_options([("glance/0", "127.0.0.1")],
                                     bind_addresses=("127.0.0.1", "::1", "127.0.0.1"))
    assert cfg.binds == ("127.0.0.1:9292", "[::1]:9292")
    assert render(cfg).count(b"\n    bind ") == 2
    make_haproxy(tmp_path, FakeServices()).check(render(cfg))  # the real haproxy -c
    with pytest.raises(ValueError, match="bind_addresses"):
        HaproxyConfig.from_options([], bind_addresses=("10.0.0.1\nlisten x",))

"""keystonemiddleware's token cache: the unit's own memcached, as the classic charm runs it.

Contract: openstack/charm-glance hooks/glance_utils.py (determine_packages with charmhelpers
contrib/openstack/utils.py token_cache_pkgs: memcached; MEMCACHED_CONF registered with
MemcacheContext), charmhelpers contrib/openstack/context.py MemcacheContext (::1, or
127.0.0.1 when IPv6 is disabled, port 11211, memcache_url `inet6:[::1]:11211`) and
contrib/openstack/templates/memcached.conf and section-keystone-authtoken-v3only
(`memcached_servers = {{ memcache_url }}`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ops
import pytest

from glance_charm.domain import distro
from glance_charm.workload import memcached
from tests.unit.conftest import GlanceHarness


def authtoken(gh: GlanceHarness) -> dict[str, str]:
    return dict(gh.conf()["keystone_authtoken"])


def memcached_conf(gh: GlanceHarness) -> list[str]:
    return (gh.root / "etc/memcached.conf").read_text().splitlines()


@pytest.mark.parametrize(("disabled", "listen", "url"), [
    (False, "::1", "inet6:[::1]:11211"),
    (True, "127.0.0.1", "127.0.0.1:11211"),
])
def test_memcached_on_loopback_and_in_keystone_authtoken(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch, disabled: bool, listen: str, url: str,
) -> None:
    """glance-api's workers share the unit's memcached for validated tokens."""
    monkeypatch.setattr("glance_charm.reconcile.reconciler.ipv6_disabled", lambda: disabled)
    gh.relate_core()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert authtoken(gh)["memcached_servers"] == url
    conf = memcached_conf(gh)
    assert f"-l {listen}" in conf and "-p 11211" in conf and "-u memcache" in conf
    assert "memcached" in gh.services.running
    restarts = gh.services.count("restart", "memcached")
    gh.event()  # nothing changed: memcached is left alone
    gh.harness.update_config({"debug": True})
    assert gh.services.count("restart", "memcached") == restarts


def test_memcached_installed_when_missing(gh: GlanceHarness) -> None:
    """A unit whose glance came without memcached (an older charm) gets it on the next hook."""
    gh.workload.packages.difference_update(distro.MEMCACHED_PACKAGES)
    gh.relate_core()
    assert distro.MEMCACHED_PACKAGES in gh.workload.package_installs
    assert authtoken(gh)["memcached_servers"].endswith(":11211")


def test_memcached_that_cannot_start_is_left_out(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No memcached_servers pointing at a cache that is not there; glance still serves."""
    from glance_charm.workload.service import ServiceError

    def refusing(real: Callable[[str], None]) -> Callable[[str], None]:
        def action(name: str) -> None:
            if name == "memcached":
                raise ServiceError("memcached failed to start")
            real(name)
        return action

    monkeypatch.setattr(gh.services, "restart", refusing(gh.services.restart))
    monkeypatch.setattr(gh.services, "start", refusing(gh.services.start))
    gh.relate_core()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert "memcached_servers" not in authtoken(gh)
    assert "memcached" not in gh.services.running


def test_a_dead_memcached_is_started_again(gh: GlanceHarness) -> None:
    gh.relate_core()
    gh.services.running.discard("memcached")
    starts = gh.services.count("start", "memcached")
    gh.harness.update_config({"debug": True})
    assert gh.services.count("start", "memcached") == starts + 1
    assert "memcached" in gh.services.running


def test_ipv6_disabled_reads_the_sysctl(tmp_path: Path) -> None:
    flag = tmp_path / "disable_ipv6"
    flag.write_text("1\n")
    assert memcached.ipv6_disabled(flag)
    flag.write_text("0\n")
    assert not memcached.ipv6_disabled(flag)
    assert memcached.ipv6_disabled(tmp_path / "missing")

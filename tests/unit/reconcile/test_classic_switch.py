"""upgrade-charm from a classic TLS unit: apache2's site leaves 9282 before glance-api starts.

Issue 13 item 8. Follows charmhelpers contrib/openstack/context.py (ApacheSSLContext: the
classic charm's site `openstack_https_frontend`) and contrib/hahelpers/cluster.py
(determine_apache_port: apache2 on 9282, where this charm binds glance-api). The charm, its
reconcile and the real ClassicFrontend run under the harness's temporary root; services are
recorded (FakeServices); `a2dissite` is Debian's when installed, else the stand-in from
tests/unit/workload/test_classic_frontend.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import ops
import pytest

from glance_charm.domain import distro
from tests.unit.conftest import GlanceHarness
from tests.unit.workload.test_classic_frontend import FAKE_A2DISSITE, SITE, layout


@pytest.fixture
def a2dissite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which(distro.A2DISSITE) is not None:
        return
    bindir = tmp_path / "a2bin"
    bindir.mkdir()
    (bindir / distro.A2DISSITE).write_text(FAKE_A2DISSITE)
    (bindir / distro.A2DISSITE).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


def test_upgrade_charm_disables_classic_site_before_glance_api_starts(
        gh: GlanceHarness, a2dissite: None) -> None:
    gh.relate_core()  # the relations are in place when the switch's upgrade-charm runs
    conf = layout(gh.root, {"openstack_https_frontend": SITE.format(ns="glance")},
                  ["openstack_https_frontend"])
    services = gh.services
    services.running.add("apache2")
    services.calls.clear()
    services.running.discard("glance-api")
    gh.harness.charm.on.upgrade_charm.emit()
    assert not (conf / "sites-enabled/openstack_https_frontend.conf").exists()
    assert "apache2" not in services.running and "apache2" in services.boot_disabled
    glance_calls = [i for i, (action, name) in enumerate(services.calls)
                    if name == "glance-api" and action in ("start", "restart")]
    assert glance_calls, services.calls
    assert services.calls.index(("stop", "apache2")) < glance_calls[0]
    assert isinstance(gh.status(), ops.ActiveStatus), gh.status()


def test_site_that_cannot_be_disabled_blocks_and_is_retried(
        gh: GlanceHarness, a2dissite: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    conf = layout(gh.root, {"openstack_https_frontend": SITE.format(ns="glance")},
                  ["openstack_https_frontend"])
    failing = tmp_path / "failbin"
    failing.mkdir()
    (failing / distro.A2DISSITE).write_text("#!/bin/sh\nexit 1\n")
    (failing / distro.A2DISSITE).chmod(0o755)
    saved = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{failing}:{saved}")
    gh.relate_core()
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus) and "apache2" in status.message, status
    assert (conf / "sites-enabled/openstack_https_frontend.conf").is_symlink()
    monkeypatch.setenv("PATH", saved)
    gh.harness.charm.on.config_changed.emit()
    assert not (conf / "sites-enabled/openstack_https_frontend.conf").exists()
    assert isinstance(gh.status(), ops.ActiveStatus), gh.status()

"""The release profile: which release-dependent options glance-api.conf gets, per release.

Upstream facts (read from the PyPI sources of glance 30.0.0 / 31.0.0 and oslo.policy
4.5.1 / 4.6.0; see ReleaseProfile's docstring in src/glance_charm/domain/distro.py):
`[oslo_policy] enforce_scope` is deprecated for removal from oslo.policy 4.5 (Epoxy),
`delayed_delete` since 2024.1 Caracal (glance/scrubber.py), `show_multiple_locations` since
Newton but still read by glance 31's api/v2/images.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from glance_charm.domain import distro
from tests.unit.conftest import GlanceHarness

# (package version, release, enforce_new_defaults, enforce_scope written, delayed_delete written)
RELEASES = [
    ("2:25.1.0-2+deb12u5", "zed", "false", "false", True),  # Debian 12
    ("2:27.0.0-0ubuntu1~cloud0", "bobcat", "false", "false", True),
    ("2:28.0.1-0ubuntu1", "caracal", "true", "true", False),  # Ubuntu 24.04
    ("2:29.0.0-0ubuntu1~cloud0", "dalmatian", "true", "true", False),
    ("2:30.0.0-2", "epoxy", "true", None, False),  # Debian 13
    ("2:31.0.0-0ubuntu1~cloud0", "flamingo", "true", None, False),
]


@pytest.mark.parametrize(("version", "release", "new_defaults", "scope", "delayed"), RELEASES)
def test_rendered_conf_per_release(gh: GlanceHarness, version: str, release: str,
                                   new_defaults: str, scope: str | None, delayed: bool) -> None:
    assert distro.release_for_version(version) == release
    gh.workload.version = version
    gh.relate_core()
    conf = gh.conf()
    assert conf["oslo_policy"]["enforce_new_defaults"] == new_defaults
    assert conf["oslo_policy"].get("enforce_scope") == scope
    assert ("delayed_delete" in conf["DEFAULT"]) is delayed
    if delayed:
        assert conf["DEFAULT"]["delayed_delete"] == "false"
    # Glance's default (false) is never written: the option is deprecated for removal.
    assert "show_multiple_locations" not in conf["DEFAULT"]
    assert conf["DEFAULT"]["show_image_direct_url"] == "false"


@pytest.mark.parametrize("version", [row[0] for row in RELEASES])
def test_ceph_still_gets_multiple_locations_on_every_release(gh: GlanceHarness,
                                                             version: str) -> None:
    """Ceph copy-on-write needs the locations; glance 31 still gates them on this option."""
    gh.workload.version = version
    gh.relate_core()
    gh.relate_ceph()
    conf = gh.conf()
    assert conf["glance_store"]["default_backend"] == "ceph"
    assert conf["DEFAULT"]["show_multiple_locations"] == "true"
    assert conf["DEFAULT"]["show_image_direct_url"] == "true"


def test_unknown_release_gets_the_oldest_profile() -> None:
    """A version the charm cannot place keeps the explicit pre-Caracal statements."""
    profile = distro.release_profile(distro.release_for_version("garbage"))
    assert profile.release == "unknown"
    assert dataclasses.replace(profile, release="zed") == distro.release_profile("zed")
    assert profile.enforce_scope is False
    assert profile.write_delayed_delete

"""Everything that depends on the distribution: packages, services, archives, paths."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

GLANCE_PACKAGES = ("glance-api", "python3-pymysql", "haproxy")
CEPH_PACKAGES = ("ceph-common", "python3-rbd", "python3-rados")
HAPROXY_PACKAGES = ("haproxy",)
GLANCE_SERVICE = "glance-api"
HAPROXY_SERVICE = "haproxy"
GLANCE_USER = "glance"
GLANCE_GROUP = "glance"

CLOUD_ARCHIVE_URI = "http://ubuntu-cloud.archive.canonical.com/ubuntu"
CLOUD_ARCHIVE_KEYRING_PACKAGE = "ubuntu-cloud-keyring"
_CLOUD_ORIGIN = re.compile(
    r"^cloud:(?P<series>[a-z]+)-(?P<release>[a-z]+)(?:/(?P<pocket>updates|proposed|staging))?$"
)


@dataclass(frozen=True)
class Archive:
    """An apt source line and the keyring package it needs (if any)."""

    line: str
    keyring_package: str | None = None


def archive_for_origin(origin: str) -> Archive | None:
    """Translate `openstack-origin` into an apt source; None for `distro`.

    Raises:
        ValueError: not one of distro, cloud:<series>-<release>[/pocket], deb ...
    """
    origin = origin.strip()
    if origin == "distro":
        return None
    match = _CLOUD_ORIGIN.match(origin)
    if match:
        pocket = match["pocket"] or "updates"
        suite = f"{match['series']}-{pocket}/{match['release']}"
        return Archive(f"deb {CLOUD_ARCHIVE_URI} {suite} main", CLOUD_ARCHIVE_KEYRING_PACKAGE)
    if re.match(r"^deb(-src)? (\[[^\]]*\] )?https?://\S+ \S+( \S+)*$", origin):
        return Archive(origin)
    raise ValueError("unknown origin")


def has_systemd() -> bool:
    """Whether systemd runs this machine (the Ubuntu target) or not (containers, this CI)."""
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


# Glance releases by the upstream major version of the glance package.
_RELEASES = {25: "zed", 26: "antelope", 27: "bobcat", 28: "caracal", 29: "dalmatian",
             30: "epoxy", 31: "flamingo"}


def release_for_version(version: str) -> str:
    """Map a glance package version (e.g. `2:25.1.0-2`, `2:28.0.1-0ubuntu1`) to its release."""
    upstream = version.split(":", 1)[-1]
    try:
        major = int(upstream.split(".", 1)[0])
    except ValueError:
        return "unknown"
    return _RELEASES.get(major, "unknown")


@dataclass(frozen=True)
class ReleaseProfile:
    """Options whose right value differs between the glance releases the charm meets.

    Debian 12 ships Zed (25); Ubuntu 24.04 ships Caracal (28) and the Cloud Archive later
    releases. This is the only place such differences live.
    """

    release: str
    # Caracal moved RBAC to the new defaults with scope checks; Glance's own defaults are
    # kept, but the charm states them so an upgrade does not silently change policy.
    enforce_new_defaults: bool
    enforce_scope: bool


def release_profile(release: str) -> ReleaseProfile:
    """Return the option profile for a glance release name."""
    new_rbac = release not in ("zed", "antelope", "bobcat", "unknown")
    return ReleaseProfile(release, enforce_new_defaults=new_rbac, enforce_scope=new_rbac)

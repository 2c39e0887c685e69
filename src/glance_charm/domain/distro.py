"""Everything that depends on the distribution: packages, services, archives, paths."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

# keystonemiddleware's token cache on the unit, installed with glance as the classic charm
# does (hooks/glance_utils.py determine_packages: charmhelpers token_cache_pkgs);
# python3-memcache is the client keystonemiddleware's memcache pool imports.
MEMCACHED_PACKAGES = ("memcached", "python3-memcache")
GLANCE_PACKAGES = ("glance-api", "python3-pymysql", "haproxy", *MEMCACHED_PACKAGES)
CEPH_PACKAGES = ("ceph-common", "python3-rbd", "python3-rados")
HAPROXY_PACKAGES = ("haproxy",)
# hooks/glance_utils.py determine_packages: qemu-img for the image_conversion plugin
IMAGE_CONVERSION_PACKAGES = ("qemu-utils",)
# hooks/glance_utils.py PY3_PACKAGES: boto3 for the S3 store; cinderclient, os-brick and
# rootwrap for the cinder store
S3_PACKAGES = ("python3-boto3",)
CINDER_PACKAGES = ("python3-cinderclient", "python3-os-brick", "python3-oslo.rootwrap")
# With cos-agent: haproxy logs to /dev/log in its chroot; the haproxy package's rsyslog drop-in
# (/etc/rsyslog.d/49-haproxy.conf) makes that socket and writes /var/log/haproxy.log, which
# the COS agent tails (it reads /var/log/**/*log). Ubuntu server images ship rsyslog.
LOG_PACKAGES = ("rsyslog",)
GLANCE_SERVICE = "glance-api"
HAPROXY_SERVICE = "haproxy"
MEMCACHED_SERVICE = "memcached"
GLANCE_USER = "glance"
GLANCE_GROUP = "glance"

# The packaged api-paste.ini's healthcheck filter answers 503 while this file exists
# (oslo.middleware disable_by_file): haproxy then takes the unit out of rotation.
HEALTHCHECK_DISABLE = "/etc/glance/healthcheck_disable"

# dpkg's database of installed packages: read directly, so a steady hook runs no dpkg process.
CEPH_CONF = "/etc/ceph/ceph.conf"
SWIFT_CONF = "/etc/glance/glance-swift.conf"  # the swift store's reference file
DPKG_STATUS = "/var/lib/dpkg/status"
# Without systemd, `service NAME status` (the sysvinit scripts) answers from these pidfiles.
PIDFILES = {GLANCE_SERVICE: "/run/glance/glance-api.pid", HAPROXY_SERVICE: "/run/haproxy.pid",
            MEMCACHED_SERVICE: "/run/memcached/memcached.pid"}
# With systemd (cgroup v2, the Ubuntu target) a unit runs while its cgroup holds a process.
SYSTEMD_CGROUP = "/sys/fs/cgroup/system.slice/{name}.service/cgroup.procs"
# Where the other init systems keep a service's boot configuration (charmhelpers
# core/host.py service_pause/service_resume look at the same two places).
INIT_D_DIR = "/etc/init.d"  # SysV scripts: `update-rc.d NAME disable|enable`
UPSTART_DIR = "/etc/init"  # upstart jobs: NAME.override holding "manual" keeps it down
# The classic charm's TLS frontend (charmhelpers contrib/openstack/context.py ApacheSSLContext,
# site template templates/openstack_https_frontend.conf): apache2 on 9282 in front of glance-api,
# its certificates under /etc/apache2/ssl/<service_namespace>/ (namespace "glance").
APACHE_SERVICE = "apache2"
APACHE_CONFDIR = "/etc/apache2"  # a2dissite reads APACHE_CONFDIR / APACHE_STATE_DIRECTORY
APACHE_STATE_DIR = "/var/lib/apache2"
A2DISSITE = "a2dissite"
CLASSIC_HTTPS_SITE = "openstack_https_frontend"
CLASSIC_HTTPS_SSL_DIR = "/etc/apache2/ssl/glance"
# The package `juju status` shows the version of (the classic charm's VERSION_PACKAGE).
VERSION_PACKAGE = "glance-common"

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


def dpkg_versions(packages: tuple[str, ...], status_file: str = DPKG_STATUS,
                  ) -> dict[str, str | None]:
    """Installed version of each package (None when not installed), from dpkg's status file.

    What `dpkg-query -W -f='${Status} ${Version}'` answers, without a process: a stanza
    counts when its Status is "install ok installed" (or "hold ok installed").
    """
    found: dict[str, str | None] = dict.fromkeys(packages)
    try:
        with open(status_file, "rb") as handle:
            data = b"\n" + handle.read()
    except OSError:
        return found
    for package in packages:
        needle = f"\nPackage: {package}\n".encode()
        index = data.find(needle)
        while index >= 0 and found[package] is None:
            end = data.find(b"\n\n", index + 1)
            stanza = data[index + 1:end if end >= 0 else len(data)].decode("utf-8", "replace")
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(": ")
                if sep and not key.startswith(" "):
                    fields[key] = value.strip()
            if fields.get("Status", "").endswith(" ok installed") and fields.get("Version"):
                found[package] = fields["Version"]
            index = data.find(needle, index + 1)
    return found


def service_running(name: str, systemd: bool, root: str = "/") -> bool | None:
    """Whether a service runs, read from the cgroup or pidfile; None when that cannot tell.

    None sends the caller to `systemctl is-active` / `service NAME status`. A missing
    cgroup (systemd removes it when the unit stops) or pidfile (what the sysvinit script's
    `status` reads) means stopped.
    """
    if systemd:
        path = os.path.join(root, SYSTEMD_CGROUP.format(name=name).lstrip("/"))
        # cgroup v2, unified layout (the Ubuntu target); else ask systemctl
        usable = os.path.isdir(os.path.join(root, "sys/fs/cgroup/system.slice"))
    else:
        pidfile = PIDFILES.get(name, "")
        path = os.path.join(root, pidfile.lstrip("/"))
        usable = bool(pidfile)
    if not usable:
        return None
    try:
        with open(path, encoding="ascii") as handle:
            words = handle.read().split()
    except FileNotFoundError:
        return False
    except (OSError, ValueError):  # unreadable, or not ASCII
        return None
    if systemd:
        return bool(words)
    return any(word.isdigit() and os.path.exists(f"/proc/{word}") for word in words)


def upstream_version(version: str) -> str:
    """The upstream part of a Debian version: `2:25.1.0-2+deb12u5` -> `25.1.0`.

    As charmhelpers fetch/ubuntu_apt_pkg.py upstream_version (the classic charm's
    application version), character for character, so `juju status` reads the same after
    a switch from the classic charm: the part after the last `:`, up to the first `-`.
    """
    return version.rsplit(":", maxsplit=1)[-1].split("-", maxsplit=1)[0]


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


# Releases in order, oldest first (the values of _RELEASES).
_ORDER = tuple(_RELEASES[major] for major in sorted(_RELEASES))


def _since(release: str, first: str) -> bool:
    """Whether a known `release` is `first` or later (an unknown release counts as older)."""
    return release in _ORDER and _ORDER.index(release) >= _ORDER.index(first)


@dataclass(frozen=True)
class ReleaseProfile:
    """Options whose right value, or whose presence, differs between glance releases.

    Debian 12 ships Zed (25), Debian 13 Epoxy (30); Ubuntu 24.04 ships Caracal (28) and the
    Cloud Archive later releases. This is the only place such differences live. Facts read
    from upstream sources (PyPI sdists/wheels of glance 30.0.0, 31.0.0, oslo.policy 4.5.1,
    4.6.0):

    - `[oslo_policy] enforce_scope`: oslo.policy 4.5 (Epoxy) marks it deprecated for removal
      ("will be removed in the 2025.2 cycle"), default True; setting it makes every
      glance-api start log the deprecation. Written (as each release's own default, stated
      so an upgrade does not silently change the policy model) up to Dalmatian only.
    - `[oslo_policy] enforce_new_defaults`: not deprecated in 4.6; written on every release
      (false Zed-Bobcat, true from Caracal: glance's enable-enforce-scope-and-new-defaults
      release note).
    - `delayed_delete` (the scrubber): glance/scrubber.py marks it deprecated for removal
      since 2024.1 (Caracal), default False, which is what the charm wants; written before
      Caracal only.
    - `show_multiple_locations`: deprecated for removal since Newton, default False, still
      gating location display in glance 31's api/v2/images.py; written only when the charm
      must expose locations (ceph copy-on-write), on every release.
    """

    release: str
    enforce_new_defaults: bool
    # None: not written (the release deprecated the option and its default is right).
    enforce_scope: bool | None
    write_delayed_delete: bool


def release_profile(release: str) -> ReleaseProfile:
    """Return the option profile for a glance release name ("unknown" counts as older)."""
    new_rbac = _since(release, "caracal")
    return ReleaseProfile(
        release,
        enforce_new_defaults=new_rbac,
        enforce_scope=None if _since(release, "epoxy") else new_rbac,
        write_delayed_delete=not _since(release, "caracal"),
    )

"""security-checklist: the OpenStack security guide's Image service checks, pass/fail each."""

from __future__ import annotations

import configparser
import grp
import pwd
from pathlib import Path
from typing import Protocol

Result = tuple[bool, str]


class Paths(Protocol):
    """Where the files to check live (GlancePaths)."""

    def __call__(self, absolute: str) -> Path:
        """Map an absolute system path under the workload root."""
        ...


CONFIG_FILES = ("/etc/glance/glance-api.conf", "/etc/glance/glance-swift.conf")
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"


def _existing(paths: Paths) -> list[Path]:
    found = [paths(name) for name in CONFIG_FILES if paths(name).exists()]
    ceph = paths("/etc/ceph")
    if ceph.is_dir():
        found.extend(sorted(ceph.glob("ceph.client.*.keyring")))
    return found


def check_ownership(paths: Paths, group: str) -> Result:
    """Check-Image-01: config files and keyrings belong to root and the glance group."""
    wrong = []
    for path in _existing(paths):
        stat = path.stat()
        owner, owner_group = pwd.getpwuid(stat.st_uid).pw_name, grp.getgrgid(stat.st_gid).gr_name
        if (owner, owner_group) != ("root", group):
            wrong.append(f"{path.name} is {owner}:{owner_group}")
    return (not wrong, "; ".join(wrong))


def check_permissions(paths: Paths, group: str) -> Result:
    """Check-Image-02: no config file or keyring is writable by its group or readable by all."""
    del group
    wrong = [f"{path.name} is {oct(path.stat().st_mode & 0o777)}"
             for path in _existing(paths) if path.stat().st_mode & 0o027]
    return (not wrong, "; ".join(wrong))


def _api_conf(paths: Paths) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(paths(CONFIG_FILES[0]).read_text())
    except (OSError, configparser.Error):
        return None
    return parser


def check_keystone_auth(paths: Paths, group: str) -> Result:
    """Check-Image-03: glance authenticates requests with keystone."""
    del group
    conf = _api_conf(paths)
    if conf is None:
        return False, "glance-api.conf missing or unreadable"
    flavor = conf.get("paste_deploy", "flavor", fallback="")
    return flavor == "keystone", f"[paste_deploy] flavor is {flavor!r}"


def check_keystone_tls(paths: Paths, group: str) -> Result:
    """Check-Image-04: glance talks to keystone over TLS."""
    del group
    conf = _api_conf(paths)
    if conf is None:
        return False, "glance-api.conf missing or unreadable"
    urls = [conf.get("keystone_authtoken", key, fallback="")
            for key in ("www_authenticate_uri", "auth_url")]
    plain = [url for url in urls if not url.startswith("https://")]
    return not plain, f"keystone URLs without TLS: {', '.join(plain)}"


def check_api_tls(paths: Paths, group: str) -> Result:
    """The API endpoint terminates TLS (haproxy frontend with a certificate)."""
    del group
    try:
        text = paths(HAPROXY_CFG).read_text()
    except OSError:
        return False, "no TLS-terminating frontend (haproxy.cfg absent)"
    ok = any(line.strip().startswith("bind") and " ssl " in f"{line} " for line in
             text.splitlines())
    return ok, "the glance API is served over plain HTTP"


def check_locations_hidden(paths: Paths, group: str) -> Result:
    """Image locations are not shown unless the store is ceph (no credentials leak)."""
    del group
    conf = _api_conf(paths)
    if conf is None:
        return False, "glance-api.conf missing or unreadable"
    shown = conf.getboolean("DEFAULT", "show_multiple_locations", fallback=False)
    default = conf.get("glance_store", "default_backend", fallback="")
    return (not shown or default == "ceph",
            f"image locations exposed with default store {default!r}")


CHECKS = {
    "config_ownership": check_ownership,
    "config_permissions": check_permissions,
    "keystone_auth": check_keystone_auth,
    "keystone_tls": check_keystone_tls,
    "api_tls": check_api_tls,
    "image_locations_hidden": check_locations_hidden,
}


def run_checks(paths: Paths, group: str) -> dict[str, Result]:
    """Run every check; a check that cannot run counts as failed, with the reason."""
    results: dict[str, Result] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check(paths, group)
        except (OSError, KeyError) as err:
            results[name] = (False, f"could not check: {type(err).__name__}")
    return results

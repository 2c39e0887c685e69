"""The unit's local memcached: keystonemiddleware's token cache, as the classic charm runs it.

The classic charm (openstack/charm-glance hooks/glance_utils.py, charmhelpers
contrib/openstack/context.py `MemcacheContext` and templates/memcached.conf) installs
memcached on every unit, listening on the loopback only (::1, or 127.0.0.1 when IPv6 is
disabled), and points `[keystone_authtoken] memcached_servers` at it: validated tokens are
cached across glance-api workers instead of in each process (keystonemiddleware warns that
its in-process cache is deprecated) and keystone sees one validation per token and TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glance_charm.domain import distro
from glance_charm.workload import files
from glance_charm.workload.service import ServiceManager

PORT = 11211
CONF = "/etc/memcached.conf"
IPV6_DISABLED = "/proc/sys/net/ipv6/conf/all/disable_ipv6"

TEMPLATE = """\
# memcached configuration, managed by the glance charm (keystone token cache)
-d
logfile /var/log/memcached.log
-m 64
-p {port}
-u memcache
-l {listen}
"""


def ipv6_disabled(flag: Path = Path(IPV6_DISABLED)) -> bool:
    """Whether IPv6 is off on this machine (charmhelpers is_ipv6_disabled; no file: off)."""
    try:
        return flag.read_text().strip() == "1"
    except OSError:
        return True


def server_url(ipv6: bool) -> str:
    """The `memcached_servers` value for the local memcached (charmhelpers memcache_url)."""
    return f"inet6:[::1]:{PORT}" if ipv6 else f"127.0.0.1:{PORT}"


@dataclass
class MemcachedWorkload:
    """memcached.conf on the loopback, and the service running with it."""

    paths: files.RootedPaths
    services: ServiceManager

    @property
    def conf(self) -> Path:
        """/etc/memcached.conf."""
        return self.paths(CONF)

    def render(self, ipv6: bool) -> files.FileSpec:
        """memcached.conf listening on the loopback of the address family in use."""
        content = TEMPLATE.format(port=PORT, listen="::1" if ipv6 else "127.0.0.1")
        return files.FileSpec(self.conf, content.encode(), mode=0o644)

    def ensure(self, ipv6: bool) -> str:
        """Write the config, (re)start memcached when it changed or is down; return its URL.

        Raises:
            ServiceError: memcached could not be (re)started.
        """
        changed = files.write(self.render(ipv6))
        if changed:
            self.services.restart(distro.MEMCACHED_SERVICE)
        elif not self.services.is_running(distro.MEMCACHED_SERVICE):
            self.services.start(distro.MEMCACHED_SERVICE)
        return server_url(ipv6)

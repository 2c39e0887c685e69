"""NRPE checks for the nrpe subordinate: check files, nagios service exports, `monitors` data.

The file formats are charmhelpers' `contrib/charmsupport/nrpe.py` (the classic glance charm's
`update_nrpe_config`): one `/etc/nagios/nrpe.d/check_<shortname>.cfg` per check holding a
`command[check_<shortname>]=<plugin command>` line, a nagios `define service` per check under
`/var/lib/nagios/export` when that directory exists, and the `monitors` YAML the principal
sends on the nrpe-external-master relation.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glance_charm.workload import files
from glance_charm.workload.service import ServiceManager

SHORTNAME = re.compile(r"^[A-Za-z0-9-_.@]+$")  # charmhelpers Check.shortname_re
PLUGIN_DIRS = ("/usr/lib/nagios/plugins", "/usr/local/lib/nagios/plugins")
NRPE_CONFDIR = "/etc/nagios/nrpe.d"
NAGIOS_EXPORTDIR = "/var/lib/nagios/export"
NRPE_SERVICE = "nagios-nrpe-server"
MARKER = "# Managed by the glance charm (nrpe-external-master)\n"

SERVICE_TEMPLATE = """
#---------------------------------------------------
# This file is Juju managed
#---------------------------------------------------
define service {{
    use                             active-service
    host_name                       {hostname}
    service_description             {hostname}[{shortname}] {description}
    check_command                   check_nrpe!{command}
    servicegroups                   {servicegroups}

}}
"""


@dataclass(frozen=True)
class Check:
    """One NRPE check: its nagios short name, description and plugin argv."""

    shortname: str
    description: str
    argv: tuple[str, ...]

    def __post_init__(self) -> None:
        """Refuse a short name nagios or the nrpe charm cannot carry."""
        if not SHORTNAME.match(self.shortname):
            raise ValueError(f"shortname must match {SHORTNAME.pattern}")
        if not self.argv:
            raise ValueError("a check needs a plugin command")

    @property
    def command(self) -> str:
        """The nrpe command name (`check_<shortname>`)."""
        return f"check_{self.shortname}"

    def command_line(self, plugin_dir: str) -> str:
        """The plugin's absolute path and shell-quoted arguments (charmhelpers `_locate_cmd`)."""
        plugin = self.argv[0]
        if not plugin.startswith("/"):
            plugin = f"{plugin_dir.rstrip('/')}/{plugin}"
        return " ".join([plugin, *(shlex.quote(arg) for arg in self.argv[1:])])


def check_file(check: Check, servicegroups: str, command_line: str) -> bytes:
    """The bytes of `check_<shortname>.cfg` as charmhelpers `Check.write` lays them out."""
    lines = [MARKER, f"# check {check.shortname}\n"]
    if servicegroups:
        lines += [
            "# The following header was added automatically by juju\n",
            "# Modifying it will affect nagios monitoring and alerting\n",
            f"# servicegroups: {servicegroups}\n",
        ]
    lines.append(f"command[{check.command}]={command_line}\n")
    return "".join(lines).encode()


def service_file(check: Check, hostname: str, servicegroups: str) -> bytes:
    """The nagios `define service` export for a check (charmhelpers `write_service_config`)."""
    return SERVICE_TEMPLATE.format(
        hostname=hostname, shortname=check.shortname, description=check.description,
        command=check.command, servicegroups=servicegroups,
    ).encode()


def monitors(checks: Iterable[Check]) -> dict[str, object]:
    """The `monitors` relation value (a mapping; the relation adapter dumps it as YAML)."""
    return {"monitors": {"remote": {"nrpe": {
        check.shortname: {"command": check.command} for check in checks
    }}}}


@dataclass
class NrpeWorkload:
    """Writes the check files and restarts nagios-nrpe-server when any of them changed.

    Args:
        paths: maps absolute paths under a root tests may move.
        services: service control for nagios-nrpe-server.
    """

    paths: files.RootedPaths = field(default_factory=files.RootedPaths)
    services: ServiceManager = field(default_factory=ServiceManager)

    def available(self) -> bool:
        """Whether the nrpe subordinate has installed nrpe (its conf dir exists)."""
        return self.paths(NRPE_CONFDIR).is_dir()

    def plugin_dir(self, plugin: str) -> str:
        """The first nagios plugin directory holding plugin (else the packaged one)."""
        for directory in PLUGIN_DIRS:
            if self.paths(f"{directory}/{plugin}").exists():
                return directory
        return PLUGIN_DIRS[0]

    def command_line(self, check: Check) -> str:
        """The `command[...]=` value for a check on this machine."""
        return check.command_line(self.plugin_dir(check.argv[0]))

    def _owned(self, directory: Path, pattern: str) -> list[Path]:
        """Files in directory matching pattern that this charm wrote (they carry MARKER)."""
        owned = []
        for path in sorted(directory.glob(pattern)):
            try:
                content = path.read_bytes()
            except OSError:
                continue
            if MARKER.encode() in content:
                owned.append(path)
        return owned

    def ensure(self, checks: Sequence[Check], hostname: str, servicegroups: str,
               restart: bool = True) -> bool:
        """Write every check (and its nagios export), remove the charm's others.

        Args:
            checks: the checks wanted now (empty: remove all of the charm's checks).
            hostname: the nagios host name (from the subordinate, or context-unit).
            servicegroups: nagios service groups of every check.
            restart: restart nagios-nrpe-server when something changed (classic: not on
                update-status, so that nagios does not see every check fail at once).

        Returns:
            Whether any file changed.
        """
        confdir = self.paths(NRPE_CONFDIR)
        if not confdir.is_dir():
            return False
        exportdir = self.paths(NAGIOS_EXPORTDIR)
        wanted: set[Path] = set()
        changed = False
        for check in checks:
            specs = [files.FileSpec(
                path=confdir / f"{check.command}.cfg",
                content=check_file(check, servicegroups, self.command_line(check)), mode=0o644,
            )]
            if exportdir.is_dir():
                specs.append(files.FileSpec(
                    path=exportdir / f"service__{hostname}_{check.command}.cfg",
                    content=MARKER.encode() + service_file(check, hostname, servicegroups),
                    mode=0o644,
                ))
            for spec in specs:
                wanted.add(spec.path)
                changed |= files.write(spec)
        stale = self._owned(confdir, "check_*.cfg")
        if exportdir.is_dir():
            stale += self._owned(exportdir, "service__*.cfg")
        for path in stale:
            if path not in wanted:
                changed |= files.remove(path)
        if changed and restart:
            self.services.restart(NRPE_SERVICE)
        return changed


def _loopback_if_any(address: str | None, ipv6: bool) -> str:
    """Where a local check connects: the listen address, or loopback when it is every one."""
    if address is None or address in ("0.0.0.0", "::"):  # noqa: S104 (a comparison)
        return "::1" if ipv6 else "127.0.0.1"
    return address


def glance_checks(unit: str, *, backend: tuple[str | None, int],
                  frontend: tuple[str | None, int], tls: bool, ipv6: bool) -> tuple[Check, ...]:
    """The checks of a glance unit: glance-api and haproxy processes, then their HTTP.

    The classic charm checks the services of its restart map (glance-api, haproxy) with
    `check_systemd.py` (shipped by the nrpe charm) on systemd hosts; `check_procs` from
    Debian/Ubuntu's monitoring-plugins-basic checks the same processes on any init.

    Args:
        unit: the nagios unit name in descriptions (`[<host context>:]glance/0`).
        backend: glance-api's listen address (None: every address) and port.
        frontend: haproxy's first frontend address (None: every address) and port.
        tls: haproxy terminates TLS (the frontend check then speaks HTTPS).
        ipv6: prefer-ipv6 (loopback is then ::1).
    """
    backend_host = _loopback_if_any(backend[0], ipv6)
    frontend_host = _loopback_if_any(frontend[0], ipv6)
    frontend_http = ["check_http", "-I", frontend_host, "-p", str(frontend[1]),
                     "-u", "/healthcheck", "-e", "200"]
    if tls:
        frontend_http.append("--ssl")
    return (
        Check("glance-api", f"process check {{{unit}}}",
              ("check_procs", "-c", "1:", "-C", "glance-api")),
        Check("haproxy", f"process check {{{unit}}}",
              ("check_procs", "-c", "1:", "-C", "haproxy")),
        Check("glance-api_http", f"glance-api healthcheck {{{unit}}}",
              ("check_http", "-I", backend_host, "-p", str(backend[1]),
               "-u", "/healthcheck", "-e", "200")),
        Check("haproxy_http", f"glance through haproxy {{{unit}}}", tuple(frontend_http)),
    )

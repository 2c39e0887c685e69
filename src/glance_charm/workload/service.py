"""Start, stop, restart and query system services with systemd or SysV `service`."""

from __future__ import annotations

import logging
import os
import subprocess

from glance_charm.domain.distro import has_systemd, service_running

logger = logging.getLogger(__name__)


# Variables of the charm's own Python that must not reach system tools: dispatch puts the
# charm's `lib/` and `venv/` on PYTHONPATH, and `/usr/bin/glance-manage` (the system
# Python) would then import the charm's pinned copies of PyYAML, jinja2 or cryptography
# instead of the distribution's.
_PYTHON_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
               "PYENV_VERSION")


def system_env() -> dict[str, str]:
    """The environment for system tools: this one without the charm's Python settings."""
    return {key: value for key, value in os.environ.items() if key not in _PYTHON_ENV}


class ServiceError(Exception):
    """A service command failed."""


class ServiceManager:
    """Drive services through systemctl where systemd runs, else `service NAME ACTION`."""

    def __init__(self, systemd: bool | None = None, root: str = "/") -> None:
        self.systemd = has_systemd() if systemd is None else systemd
        self.root = root  # where the cgroup and pidfile paths are looked up (tests move it)

    def _command(self, action: str, name: str) -> list[str]:
        if self.systemd:
            return ["systemctl", action, name]
        return ["service", name, action]

    def _run(self, action: str, name: str) -> None:
        cmd = self._command(action, name)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                                env=system_env())
        if result.returncode != 0:
            logger.error("%s failed (%s): %s", " ".join(cmd), result.returncode,
                         result.stderr.strip()[-500:])
            raise ServiceError(f"{action} {name} failed")

    def start(self, name: str) -> None:
        """Start a service."""
        self._run("start", name)

    def stop(self, name: str) -> None:
        """Stop a service."""
        self._run("stop", name)

    def restart(self, name: str) -> None:
        """Restart a service."""
        logger.info("restarting %s", name)
        self._run("restart", name)

    def reload(self, name: str) -> None:
        """Reload a service's configuration without dropping connections."""
        self._run("reload", name)

    def is_running(self, name: str) -> bool:
        """Whether the service runs now: its cgroup or pidfile, else ask systemctl/service."""
        known = service_running(name, self.systemd, self.root)
        if known is not None:
            return known
        cmd = ["systemctl", "is-active", "--quiet", name] if self.systemd else [
            "service", name, "status"
        ]
        result = subprocess.run(cmd, capture_output=True, timeout=60, check=False,
                                env=system_env())
        return result.returncode == 0

    def enable(self, name: str) -> None:
        """Start at boot (systemd only; SysV links are the package's)."""
        if self.systemd:
            self._run("enable", name)

"""Start, stop, restart and query system services with systemd or SysV `service`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from glance_charm.domain.distro import (
    INIT_D_DIR,
    PIDFILES,
    SYSTEMD_CGROUP,
    UPSTART_DIR,
    has_systemd,
    service_running,
)

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


# A process: its pid and its start time (field 22 of /proc/PID/stat), so a pid the kernel
# hands to a new process later is not taken for the old one.
Process = tuple[int, int]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name; None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # the name, in parentheses, may hold spaces


def alive(processes: set[Process]) -> set[Process]:
    """Those of the processes that still run (zombies, being dead, do not)."""
    left = set()
    for pid, started in processes:
        fields = _stat(pid)
        if fields and fields[0] != "Z" and int(fields[19]) == started:
            left.add((pid, started))
    return left


def process_group(leader: int) -> set[Process]:
    """The processes of the group `leader` leads, the leader included.

    glance-api's master makes itself a process group leader (glance/common/wsgi.py
    PosixServer) and forks its workers into that group.
    """
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            if int(entry) == leader or int(fields[2]) == leader:
                found.add((int(entry), int(fields[19])))
    return found


class ServiceManager:
    """Drive services through systemctl where systemd runs, else `service NAME ACTION`.

    This is the one place that tells systemd from upstart and SysV init and knows their
    commands: running services (start/stop/restart), and whether they start at boot
    (disable_boot/enable_boot, for pause and resume).
    """

    # How long a restart waits for an old process to end after SIGTERM, then after
    # SIGKILL: Debian's init script gives its master the same (--retry=TERM/30/KILL/5).
    term_timeout = 30.0
    kill_timeout = 5.0

    def __init__(self, systemd: bool | None = None, root: str = "/") -> None:
        self.systemd = has_systemd() if systemd is None else systemd
        self.root = root  # where the cgroup, pidfile and init paths are looked up (tests move it)

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
        """Restart a service; make sure none of its old processes outlives the restart.

        Debian's /etc/init.d/glance-api stops only the pid in its pidfile
        (start-stop-daemon --retry=TERM/30/KILL/5 --pidfile) and removes the pidfile even
        when that pid survived: a master killed by that SIGKILL leaves its workers
        serving the old configuration on the inherited socket, and a master that survived
        is no longer seen by `status`. So the processes are read before the restart; any
        still running after it get SIGTERM, then SIGKILL, and the service is restarted once
        more (its new master could not bind the port they held).

        Raises:
            ServiceError: the command failed, or old processes survived SIGKILL.
        """
        logger.info("restarting %s", name)
        old = self.processes(name)
        self._run("restart", name)
        left = alive(old)
        if not left:
            return
        logger.warning("%s: old processes %s still run after the restart; killing them",
                       name, sorted(pid for pid, _ in left))
        self.terminate(left)
        left = alive(old)
        if left:
            logger.error("%s: old processes %s survived SIGKILL", name,
                         sorted(pid for pid, _ in left))
            raise ServiceError(f"{name}: old processes survived the restart")
        self._run("restart", name)

    def terminate(self, processes: set[Process]) -> None:
        """SIGTERM the processes, SIGKILL those still running after `term_timeout`."""
        for sig, timeout in ((signal.SIGTERM, self.term_timeout),
                             (signal.SIGKILL, self.kill_timeout)):
            for pid, _ in alive(processes):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
            deadline = time.monotonic() + timeout
            while alive(processes) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not alive(processes):
                return

    def processes(self, name: str) -> set[Process]:
        """The service's processes now: its cgroup (systemd), else its pidfile's group."""
        if self.systemd:
            path = Path(self.root, SYSTEMD_CGROUP.format(name=name).lstrip("/"))
            try:
                pids = {int(word) for word in path.read_text(encoding="ascii").split()}
            except (OSError, ValueError):
                return set()
            return {(pid, int(fields[19])) for pid in pids if (fields := _stat(pid))}
        return self._pidfile_group(name)

    def _pidfile_group(self, name: str) -> set[Process]:
        """The process group led by the pid in the service's pidfile (SysV init)."""
        pidfile = PIDFILES.get(name)
        if pidfile is None:
            return set()
        try:
            leader = int(Path(self.root, pidfile.lstrip("/")).read_text(encoding="ascii"))
        except (OSError, ValueError):
            return set()
        try:  # a stale pidfile's pid may belong to another program by now: not ours
            argv = Path(f"/proc/{leader}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return set()
        if not any(os.path.basename(arg.decode(errors="replace")) == name for arg in argv):
            return set()
        return process_group(leader)

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

    def _init_path(self, directory: str, filename: str) -> Path:
        return Path(self.root, directory.lstrip("/"), filename)

    def _check_call(self, cmd: list[str]) -> None:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                                env=system_env())
        if result.returncode != 0:
            logger.error("%s failed (%s): %s", " ".join(cmd), result.returncode,
                         result.stderr.strip()[-500:])
            raise ServiceError(f"{' '.join(cmd)} failed")

    def disable_boot(self, name: str) -> None:
        """Keep the service from starting at boot, as charmhelpers service_pause does.

        systemd: `systemctl disable` then `systemctl mask` (nothing can start it);
        upstart: NAME.override with "manual"; SysV: `update-rc.d NAME disable`.

        Raises:
            ServiceError: a command failed, or no init system knows the service.
        """
        if self.systemd:
            self._run("disable", name)
            self._run("mask", name)
        elif self._init_path(UPSTART_DIR, f"{name}.conf").exists():
            override = self._init_path(UPSTART_DIR, f"{name}.override")
            override.write_text("manual\n", encoding="ascii")
            override.chmod(0o644)
        elif self._init_path(INIT_D_DIR, name).exists():
            self._check_call(["update-rc.d", name, "disable"])
        else:
            raise ServiceError(f"no systemd, upstart or SysV init configuration for {name}")

    def enable_boot(self, name: str) -> None:
        """Start the service at boot again, as charmhelpers service_resume does.

        systemd: `systemctl unmask` then `systemctl enable`; upstart: remove the override;
        SysV: `update-rc.d NAME enable`.

        Raises:
            ServiceError: a command failed, or no init system knows the service.
        """
        if self.systemd:
            self._run("unmask", name)
            self._run("enable", name)
        elif self._init_path(UPSTART_DIR, f"{name}.conf").exists():
            self._init_path(UPSTART_DIR, f"{name}.override").unlink(missing_ok=True)
        elif self._init_path(INIT_D_DIR, name).exists():
            self._check_call(["update-rc.d", name, "enable"])
        else:
            raise ServiceError(f"no systemd, upstart or SysV init configuration for {name}")

    def pause(self, name: str) -> None:
        """Stop the service and keep it from starting at boot (charmhelpers service_pause)."""
        if self.is_running(name):
            self.stop(name)
        self.disable_boot(name)

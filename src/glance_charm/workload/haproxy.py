"""haproxy in front of glance-api: rendered file checked by `haproxy -c`, start and reload.

The typed config and its rendering (pydantic, jinja2) live in haproxy_config, which the
reconciler builds: this module never imports it, so a hook that only checks that haproxy
runs needs neither.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from glance_charm.domain import distro
from glance_charm.domain.exceptions import BlockedError, WorkloadError
from glance_charm.workload import files
from glance_charm.workload.service import ServiceError, ServiceManager


class RenderableConfig(Protocol):
    """What configure() needs of a haproxy config (haproxy_config.RenderableConfig is one)."""

    @property
    def stats_socket(self) -> str:
        """The stats socket haproxy.cfg configures."""

    @property
    def backends(self) -> Sequence[object]:
        """One entry per glance-api server."""

    def render(self) -> bytes:
        """haproxy.cfg's bytes."""

logger = logging.getLogger(__name__)

BACKEND_NAME = "glance_api"
HAPROXY_BIN = "/usr/sbin/haproxy"
CONFIG_PATH = "/etc/haproxy/haproxy.cfg"
STATS_SOCKET = "/run/haproxy/admin.sock"
REJECTED_MESSAGE = "haproxy rejected the generated configuration"
CHECK_TIMEOUT = 60
CHECK_INTERVAL = 2.0  # seconds between health checks: haproxy.cfg's "inter 2000"

DEFAULT_CLIENT_TIMEOUT = 90000
DEFAULT_SERVER_TIMEOUT = 90000
DEFAULT_QUEUE_TIMEOUT = 9000
DEFAULT_CONNECT_TIMEOUT = 9000

@dataclass
class HaproxyPaths(files.RootedPaths):
    """Where haproxy's files live, under a root that tests may move."""

    @property
    def config(self) -> Path:
        """haproxy.cfg."""
        return self(CONFIG_PATH)

    @property
    def reload_marker(self) -> Path:
        """Exists while a written haproxy.cfg has not yet been loaded by haproxy."""
        return self("/var/lib/charm/glance/haproxy-reload-pending")


@dataclass
class HaproxyWorkload:
    """Write haproxy.cfg (only after `haproxy -c` accepts it) and keep haproxy running."""

    paths: HaproxyPaths = field(default_factory=HaproxyPaths)
    services: ServiceManager = field(default_factory=ServiceManager)
    haproxy_bin: str = HAPROXY_BIN
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644  # no secrets inside: the TLS key lives in its own file
    service: str = distro.HAPROXY_SERVICE
    stats_socket: str = STATS_SOCKET  # the configured one, remembered by configure()

    def spec(self, cfg: RenderableConfig) -> files.FileSpec:
        """The file haproxy.cfg should be for this config (nothing is written)."""
        return files.FileSpec(self.paths.config, cfg.render(), self.mode, self.owner, self.group)

    def check(self, content: bytes) -> None:
        """Validate candidate bytes with `haproxy -c -f <temp file>`; the temp file is removed.

        Raises:
            BlockedError: haproxy rejected the configuration.
            WorkloadError: the haproxy binary is missing or did not answer.
        """
        directory = self.paths.config.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".haproxy.cfg.check-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            result = subprocess.run(
                [self.haproxy_bin, "-c", "-f", tmp],
                capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False,
            )
        except FileNotFoundError as err:
            raise WorkloadError("haproxy is not installed") from err
        except subprocess.TimeoutExpired as err:
            raise WorkloadError("haproxy -c did not finish; will retry") from err
        finally:
            Path(tmp).unlink(missing_ok=True)
        if result.returncode != 0:
            logger.error("haproxy -c failed (%s): %s", result.returncode,
                         (result.stderr or result.stdout).strip()[-2000:])
            raise BlockedError(REJECTED_MESSAGE)

    def configure(self, cfg: RenderableConfig) -> bool:
        """Render; if the bytes differ, check them with haproxy and write atomically.

        A failing check raises before anything is written, so the running haproxy and
        its file stay as they were.

        Args:
            cfg: the config.

        Returns:
            Whether haproxy.cfg changed.

        Raises:
            BlockedError: haproxy rejected the configuration (old file kept).
            WorkloadError: the haproxy binary is missing.
        """
        self.stats_socket = cfg.stats_socket
        spec = self.spec(cfg)
        if files.is_current(spec):
            return False
        self.check(spec.content)
        self.mark_reload_needed()
        files.write(spec)
        logger.info("wrote %s (%d backends)", spec.path, len(cfg.backends))
        return True

    def mark_reload_needed(self) -> None:
        """Remember that haproxy must reload (a file it reads is about to change)."""
        marker = self.paths.reload_marker
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker.touch()

    def wait_server_up(self, server: str, timeout: float = 60.0) -> bool:
        """Wait until haproxy's health checks have a server back in rotation.

        A glance-api that answers /healthcheck again gets traffic only after haproxy's
        checks see it (rise 2, inter 2 s: up to 4 s later, when a long restart had it
        marked DOWN). Every unit's haproxy checks on its own phase, so one more interval
        after this one shows it UP lets the others catch up.

        Args:
            server: the server's name in haproxy.cfg (``glance-0`` for unit glance/0).
            timeout: seconds to wait at most.

        Returns:
            Whether haproxy showed the server UP; False when it did not in time, does not
            list it, or its stats socket cannot be read.
        """
        return self._wait_for_server(server, timeout, lambda row: row.get("status") == "UP")

    def wait_server_drained(self, server: str, timeout: float = 60.0) -> bool:
        """Wait until haproxy has a failing server out of rotation with no request left.

        After glance-api's /healthcheck starts failing, haproxy marks the server DOWN
        after ``fall 3`` checks (about 6 s), sends it nothing new, and lets the requests
        it has finish. One more check interval lets the other units' haproxies (each on
        its own phase) catch up.

        Args:
            server: the server's name in haproxy.cfg (``glance-0`` for unit glance/0).
            timeout: seconds to wait at most.

        Returns:
            Whether haproxy showed the server out of rotation and idle; False when it did
            not in time, does not list it, or its stats socket cannot be read.
        """
        return self._wait_for_server(
            server, timeout,
            lambda row: not row.get("status", "").startswith("UP")
            and row.get("scur") in ("0", ""),
        )

    def _wait_for_server(self, server: str, timeout: float,
                         done: Callable[[dict[str, str]], bool]) -> bool:
        """Poll the stats socket until `done(server's row)`, then one more check interval.

        False at the timeout, or at once when the socket cannot be read or does not list
        the server.
        """
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                row = next((r for r in stats(self.stats_socket)
                            if r.get("pxname") == BACKEND_NAME and r.get("svname") == server),
                           None)
            except OSError:
                return False
            if row is None:
                return False
            if done(row):
                time.sleep(CHECK_INTERVAL)  # the other units' haproxies check on own phases
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(CHECK_INTERVAL / 4)

    def reload_needed(self) -> bool:
        """Whether a written haproxy.cfg still waits for haproxy to load it."""
        return self.paths.reload_marker.exists()

    def ensure_running(self, changed: bool) -> bool:
        """Start haproxy when stopped; reload (never restart) it when its file changed.

        A reload still owed by an earlier hook (written, then the hook died) is done too.

        Args:
            changed: what configure() returned.

        Returns:
            Whether haproxy was started or reloaded.

        Raises:
            WorkloadError: the service command failed.
        """
        marker = self.paths.reload_marker
        try:
            if not self.services.is_running(self.service):
                self.services.start(self.service)
            elif changed or marker.exists():
                self.services.reload(self.service)
            else:
                return False
        except ServiceError as err:
            raise WorkloadError("haproxy failed to start or reload; see its log") from err
        marker.unlink(missing_ok=True)
        return True

    def is_running(self) -> bool:
        """Whether haproxy runs."""
        return self.services.is_running(self.service)

    def stop(self) -> None:
        """Stop haproxy (pause action)."""
        self.services.stop(self.service)


def server_name(unit: str) -> str:
    """A unit's server name in haproxy.cfg: the unit name with a dash, e.g. ``glance-0``."""
    return unit.replace("/", "-")


def stats(stats_socket: str | Path, timeout: float = 2.0) -> list[dict[str, str]]:
    """Read ``show stat`` from the admin socket: one row per frontend, backend and server.

    Args:
        stats_socket: path of the unix stats socket.
        timeout: socket timeout in seconds.

    Returns:
        Rows keyed by haproxy's CSV column names (``pxname``, ``svname``, ``status``,
        ``wretr``, ``wredis``, ...).

    Raises:
        OSError: the socket cannot be reached.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).decode().lstrip("# ").splitlines()
    return list(csv.DictReader(line for line in lines if line.strip()))


def server_states(
    stats_socket: str | Path, backend: str = BACKEND_NAME, timeout: float = 2.0
) -> dict[str, str]:
    """Each backend server's status (``UP``, ``DOWN``, ...) from the admin socket.

    Args:
        stats_socket: path of the unix stats socket.
        backend: backend (proxy) name.
        timeout: socket timeout in seconds.

    Returns:
        Server name -> status.

    Raises:
        OSError: the socket cannot be reached.
    """
    return {
        row["svname"]: row["status"]
        for row in stats(stats_socket, timeout)
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    }

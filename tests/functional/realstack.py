"""Real counterpart services for the functional test tier.

This module plays the charms on the other side of glance's relations with real software running
on the test machine (Debian 12, root, no systemd):

* :class:`Mariadb` runs ``mariadbd`` on ``127.0.0.1:3306`` and answers the ``shared-db``
  relation the way ``mysql-router`` does (database, user and grants as ``mysql-innodb-cluster``
  or ``percona-cluster`` create them through charmhelpers).
* :class:`Keystone` runs keystone (Zed) under ``uwsgi_python3`` on ``127.0.0.1:5000``, bootstraps
  it like the classic keystone charm (``admin_domain``, ``service_domain``, ``services``
  projects, role ``Admin``) and answers the ``identity-service`` relation the way
  ``add_service_to_keystone`` does, including the endpoint registration.
* :class:`ImageClient` talks to glance's image API v2 through the keystone catalog, streaming
  image data so 64-512 MiB images do not need to fit in memory, and reports throughput.

Every process is started in its own session (process group), recorded in a module registry and
stopped by PID by :func:`teardown_all` (also registered with :mod:`atexit`). Nothing here depends
on more than the standard library: the OpenStack tools run under ``/usr/bin/python3`` with a
cleaned environment, and HTTP goes through :mod:`http.client` (no proxies, no keep-alive).

Secrets are never logged: passwords are passed on stdin or in the environment (never in argv),
and every error message is run through :func:`redact`.

Environment knobs:
    ``REALSTACK_BASE_DIR``: parent of the fresh per-run work directories
    (default ``/var/lib/glance-functional``).
    ``REALSTACK_KEEP_DATA``: if set to a non-empty value, work directories are kept at stop.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import logging
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.functional import sandbox

logger = logging.getLogger(__name__)

#: Packages the functional tier needs (see REAL-STACK.md).
DEFAULT_PACKAGES: tuple[str, ...] = (
    "mariadb-server",
    "python3-pymysql",
    "keystone",
    "glance-api",
    "python3-openstackclient",
    "python3-glanceclient",
    "curl",
    "haproxy",
    # the charm's token cache (keystonemiddleware memcached_servers), installed with glance
    "memcached",
    "python3-memcache",
)
BASE_DIR_ENV = "REALSTACK_BASE_DIR"
KEEP_DATA_ENV = "REALSTACK_KEEP_DATA"
DEFAULT_BASE_DIR = "/var/lib/glance-functional"
MIB = 1024 * 1024
CHUNK_SIZE = MIB
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_CLIENT = "/usr/bin/mariadb"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
KEYSTONE_MANAGE = "/usr/bin/keystone-manage"
KEYSTONE_WSGI = "/usr/bin/keystone-wsgi-public"
UWSGI = "/usr/bin/uwsgi_python3"

# Names used by the classic keystone charm (charm-keystone hooks/keystone_utils.py).
ADMIN_DOMAIN = "admin_domain"
ADMIN_PROJECT = "admin"
DEFAULT_DOMAIN = "default"
SERVICE_DOMAIN = "service_domain"
SERVICE_ROLE = "service"
MEMBER_ROLE = "member"
#: The subset of the keystone charm's ``valid_services`` that matters here: name -> (type, desc).
VALID_SERVICES: dict[str, tuple[str, str]] = {
    "glance": ("image", "Glance Image Service"),
    "keystone": ("identity", "Keystone Identity Service"),
    "swift": ("object-store", "Swift Object Storage Service"),
    "nova": ("compute", "Nova Compute Service"),
    "cinderv3": ("volumev3", "Cinder Volume Service v3"),
    "neutron": ("network", "Neutron Networking Service"),
    "placement": ("placement", "Nova Placement Service"),
}

# Environment variables that must not leak from the venv/pyenv test runner into the system
# tools (which run under /usr/bin/python3), nor OpenStack client settings into keystone-manage.
_PYTHON_ENV = frozenset(
    {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "PYENV_VERSION"}
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.%:-]{1,255}$")
_PASSWORD_CHARS = string.ascii_letters + string.digits
_SECRETS: set[str] = set()
_REGISTRY: list[ManagedProcess] = []
_CLEANUPS: list[Callable[[], None]] = []
_STATE: dict[str, bool] = {"apt_updated": False}


class RealStackError(RuntimeError):
    """A real counterpart service could not be set up or driven."""


class HttpError(RealStackError):
    """An HTTP request returned an unexpected status.

    Attributes:
        status: the HTTP status code.
        body: the (redacted, truncated) response body.
    """

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        """Build the error.

        Args:
            method: HTTP method of the failed request.
            url: URL of the failed request.
            status: HTTP status received.
            body: response body text (redacted and truncated here).
        """
        self.status = status
        self.body = redact(body)[:1000]
        super().__init__(f"{method} {url} -> HTTP {status}: {self.body}")


# --------------------------------------------------------------------------------------------
# Secrets and small helpers
# --------------------------------------------------------------------------------------------


def generate_password(length: int = 32) -> str:
    """Generate an alphanumeric password like charmhelpers' ``pwgen`` and remember it.

    Args:
        length: number of characters (mysql-router/percona use 32, keystone services 64).

    Returns:
        The password. It is registered for :func:`redact`.
    """
    password = "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(length))
    remember_secret(password)
    return password


def remember_secret(value: str) -> None:
    """Register a secret so that :func:`redact` masks it in any text.

    Args:
        value: the secret; empty strings are ignored.
    """
    if value:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Mask every known secret in a text.

    Args:
        text: any text (log output, error body...).

    Returns:
        The text with each registered secret replaced by ``***``.
    """
    for value in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def mask_secrets(data: Mapping[str, str]) -> dict[str, str]:
    """Copy relation data with passwords, keys and known secrets masked, for printing.

    Args:
        data: relation data.

    Returns:
        A copy safe to print or log.
    """
    hidden = ("password", "passwd", "secret", "key", "token")
    return {
        key: "***" if any(word in key.lower() for word in hidden) else redact(str(value))
        for key, value in data.items()
    }


def system_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build an environment for system tools (``/usr/bin/python3`` based, apt, mariadb).

    Python venv/pyenv variables and ``OS_*`` OpenStack client variables are dropped and PATH
    is reset to the system directories.

    Args:
        extra: variables to add.

    Returns:
        The environment mapping.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _PYTHON_ENV and not key.startswith("OS_")
    }
    env["PATH"] = SYSTEM_PATH
    env.setdefault("LANG", "C.UTF-8")
    env.update(extra or {})
    return env


def base_dir() -> Path:
    """Return the parent directory of the fresh per-run work directories.

    Returns:
        ``$REALSTACK_BASE_DIR`` or ``/var/lib/glance-functional``, created mode 0755.
    """
    path = Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def _keep_data() -> bool:
    return bool(os.environ.get(KEEP_DATA_ENV))


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise RealStackError(f"{what} needs root")


def _chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def release_workdir(workdir: Path | None, given: Path | None,
                    cleanup: bool | None) -> Path | None:
    """Remove a stopped service's work directory if asked; return what its workdir becomes.

    Args:
        workdir: the directory in use (None: never started).
        given: the directory the caller handed in (kept by default).
        cleanup: remove it; None: only a fresh one the object made, unless
            ``REALSTACK_KEEP_DATA`` is set.
    """
    if cleanup is None:
        cleanup = given is None and not _keep_data()
    if cleanup and workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
        return given
    return workdir


def log_tails(paths: Iterable[Path], lines: int) -> str:
    """The last lines of each non-empty log, redacted, under a ``--- name ---`` header."""
    parts = []
    for path in paths:
        text = _tail(path, lines)
        if text.strip():
            parts.append(f"--- {path.name} ---\n{text}")
    return "\n".join(parts)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 16384))
        text = handle.read().decode("utf-8", "replace")
    return redact("\n".join(text.splitlines()[-lines:]))


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 600.0,
    log_path: Path | None = None,
    pass_fds: Sequence[int] = (),
) -> str:
    """Run a command to completion, raising a redacted error on failure.

    Args:
        argv: the command (must not contain secrets).
        env: its environment (default :func:`system_env`).
        stdin: text fed on stdin (where secrets go).
        timeout: seconds before the command is killed.
        log_path: if given, stdout and stderr are appended to this file too.
        pass_fds: file descriptors the command inherits.

    Returns:
        The command's stdout.

    Raises:
        RealStackError: if the command fails or times out.
    """
    try:
        result = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else system_env(),
            timeout=timeout,
            check=False,
            pass_fds=tuple(pass_fds),
        )
    except subprocess.TimeoutExpired as exc:
        raise RealStackError(f"{argv[0]} timed out after {timeout:.0f}s") from exc
    if log_path is not None:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(redact(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n"))
    if result.returncode != 0:
        output = redact((result.stdout + result.stderr).strip())[-3000:]
        raise RealStackError(f"{' '.join(argv)} exited {result.returncode}: {output}")
    return result.stdout


def _wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if not alive():
            raise RealStackError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise RealStackError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------------------------


def missing_packages(packages: Iterable[str]) -> list[str]:
    """List the packages that are not installed (according to ``dpkg-query``).

    Args:
        packages: Debian package names.

    Returns:
        The names not in state ``installed``, in the given order.
    """
    wanted = list(dict.fromkeys(packages))
    if not wanted:
        return []
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *wanted],
        capture_output=True,
        text=True,
        env=system_env(),
        check=False,
    )
    installed = {
        name
        for name, _, status in (line.partition(" ") for line in result.stdout.splitlines())
        if status.strip() == "installed"
    }
    return [name for name in wanted if name not in installed]


@contextlib.contextmanager
def _services_not_started() -> Iterator[None]:
    """Install a ``policy-rc.d`` that forbids package scripts to start services.

    The file is removed afterwards only if this context created it.

    Yields:
        Nothing.
    """
    created = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text("#!/bin/sh\n# realstack: no service starts\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
        created = True
    try:
        yield
    finally:
        if created:
            POLICY_RC_D.unlink(missing_ok=True)


def install_packages(extra: Sequence[str] = ()) -> float:
    """Install the functional tier's packages idempotently with apt.

    Returns immediately when every package is installed already. Otherwise runs
    ``apt-get update`` (once per process) and ``apt-get install -y --no-install-recommends``
    non-interactively, with a temporary ``policy-rc.d`` that exits 101 so that no postinst starts
    a service (there is no systemd here).

    Args:
        extra: packages wanted besides :data:`DEFAULT_PACKAGES` (e.g. swift).

    Returns:
        Seconds spent.

    Raises:
        RealStackError: if apt fails or packages are still missing afterwards.
    """
    started = time.monotonic()
    missing = missing_packages([*DEFAULT_PACKAGES, *extra])
    if not missing:
        return time.monotonic() - started
    _require_root("install_packages")
    env = system_env({"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "l"})
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    logger.info("apt installing %s", " ".join(missing))
    # In the functional sandbox (no network, private apt lists) apt runs in the machine's
    # mount and network namespaces, as it would outside.
    with _services_not_started():
        if not _STATE["apt_updated"]:
            argv, fds = sandbox.host_argv(["apt-get", *lock, "update", "-q"])
            _run(argv, env=env, timeout=900, pass_fds=fds)
            _STATE["apt_updated"] = True
        argv, fds = sandbox.host_argv(
            [
                "apt-get",
                *lock,
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                *missing,
            ]
        )
        _run(argv, env=env, timeout=1800, pass_fds=fds)
    still_missing = missing_packages(missing)
    if still_missing:
        raise RealStackError(f"packages still missing after install: {still_missing}")
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------
# Process registry
# --------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """Tell whether a PID runs (zombies count as dead: no init may reap them here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class ManagedProcess:
    """A background process started (or adopted) by this module.

    Attributes:
        name: label used in logs.
        pid: the process id.
        log_path: file receiving its stdout and stderr, if any.
        popen: the Popen object when this module started it.
        own_group: whether ``pid`` leads its own process group (then the whole group is
            killed at stop, catching forked workers).
    """

    name: str
    pid: int
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    own_group: bool = True

    def alive(self) -> bool:
        """Tell whether the process is still running.

        Returns:
            True while it runs.
        """
        if self.popen is not None:
            return self.popen.poll() is None
        return _pid_alive(self.pid)

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop by PID: SIGTERM, then SIGKILL after ``timeout``; then sweep its process group.

        Args:
            timeout: seconds to wait for a clean exit.
        """
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            if not self._wait(timeout):
                logger.warning("%s (pid %d) ignored SIGTERM, killing", self.name, self.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self._wait(10.0)
        if self.own_group:
            _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(ValueError):
            _REGISTRY.remove(self)

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the process log, redacted.

        Args:
            lines: number of lines.

        Returns:
            The text (empty if there is no log).
        """
        return _tail(self.log_path, lines)


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start a background process in its own session and register it for teardown.

    Args:
        name: label for logs.
        argv: the command (must not contain secrets).
        log_path: file receiving stdout and stderr (appended).
        env: environment (default :func:`system_env`).
        cwd: working directory.

    Returns:
        The registered process.
    """
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else system_env(),
            cwd=cwd,
            start_new_session=True,
        )
    proc = ManagedProcess(name=name, pid=popen.pid, log_path=log_path, popen=popen)
    _REGISTRY.append(proc)
    logger.info("started %s (pid %d)", name, popen.pid)
    return proc


def register_pid(name: str, pid: int, *, own_group: bool = False) -> ManagedProcess:
    """Adopt a process started elsewhere (e.g. glance-api) so teardown stops it by PID.

    Args:
        name: label for logs.
        pid: its process id.
        own_group: True if it leads its own process group (the group is then swept too).

    Returns:
        The registered process.
    """
    proc = ManagedProcess(name=name, pid=pid, own_group=own_group)
    _REGISTRY.append(proc)
    return proc


def register_cleanup(callback: Callable[[], None]) -> None:
    """Register a callback run by :func:`teardown_all` (last registered runs first).

    Args:
        callback: a function without arguments; exceptions are logged, not raised.
    """
    if callback not in _CLEANUPS:
        _CLEANUPS.append(callback)


def _unregister_cleanup(callback: Callable[[], None]) -> None:
    with contextlib.suppress(ValueError):
        _CLEANUPS.remove(callback)


def running_processes() -> list[ManagedProcess]:
    """List the registered processes that still run.

    Returns:
        The processes, in start order.
    """
    return [proc for proc in _REGISTRY if proc.alive()]


def teardown_all(timeout: float = 30.0) -> None:
    """Stop everything this module started: service objects first, then any stray process.

    Safe to call several times; also registered with :mod:`atexit`.

    Args:
        timeout: seconds each process gets to exit on SIGTERM.
    """
    while _CLEANUPS:
        callback = _CLEANUPS.pop()
        try:
            callback()
        except Exception:
            logger.exception("teardown callback %r failed", callback)
    while _REGISTRY:
        proc = _REGISTRY[-1]
        try:
            proc.stop(timeout)
        except Exception:
            logger.exception("could not stop %s (pid %d)", proc.name, proc.pid)
            with contextlib.suppress(ValueError):
                _REGISTRY.remove(proc)


atexit.register(teardown_all)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    """A buffered HTTP response.

    Attributes:
        status: HTTP status code.
        headers: response headers, names lower-cased.
        body: raw body.
    """

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON.

        Returns:
            The decoded value, or None for an empty body.
        """
        return json.loads(self.body) if self.body else None


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout, blocksize=CHUNK_SIZE)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return conn, path


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Poll until check() is true; return the seconds it took.

    Raises:
        AssertionError: check() stayed false for `timeout` seconds.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    expect: Iterable[int] = (200, 201, 202, 204),
    timeout: float = 60.0,
) -> HttpResponse:
    """Send one HTTP request on a fresh connection (no keep-alive, no proxy).

    Args:
        method: HTTP method.
        url: absolute URL.
        json_body: value sent as JSON, if not None.
        headers: extra request headers.
        expect: accepted status codes; anything else raises.
        timeout: socket timeout in seconds.

    Returns:
        The buffered response.

    Raises:
        HttpError: on an unexpected status.
    """
    conn, path = _connection(url, timeout)
    send_headers = {"Accept": "application/json", "Connection": "close", **(headers or {})}
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        send_headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=send_headers)
        resp = conn.getresponse()
        response = HttpResponse(
            resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        )
    finally:
        conn.close()
    if response.status not in set(expect):
        raise HttpError(method, url, response.status, response.body.decode("utf-8", "replace"))
    return response


# --------------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------------


def _sql_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"unsafe SQL name: {value!r}")
    return value


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class DatabaseCredentials:
    """A database and the user granted on it.

    Attributes:
        database: database name.
        user: user name.
        password: the user's password (not shown in repr).
        host_pattern: the host part of the MySQL account.
    """

    database: str
    user: str
    password: str = field(repr=False)
    host_pattern: str


class Mariadb:
    """A private ``mariadbd`` on ``127.0.0.1:3306`` playing mysql-router for ``shared-db``.

    The server runs with ``--no-defaults`` from a fresh work directory (data dir, socket, pid file
    and logs inside it), so tests never depend on the machine's ``/var/lib/mysql``. Root access is
    through the unix socket (``unix_socket`` authentication, as root).
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 3306,
        wait_timeout: int = 3600,
        extra_args: Sequence[str] = (),
    ) -> None:
        """Describe the server; nothing starts until :meth:`start`.

        Args:
            workdir: directory for data, socket and logs. Default: a fresh directory under
                :func:`base_dir`, removed at stop unless ``REALSTACK_KEEP_DATA`` is set. A given
                directory is reused (and never removed), an initialised data dir included.
            host: bind address; also what is sent as ``db_host`` (mysql-router sends 127.0.0.1).
            port: TCP port. Keep 3306: the glance charm never renders the port in its URL.
            wait_timeout: server ``wait_timeout``, also sent on the relation (router default).
            extra_args: extra ``mariadbd`` options.
        """
        self.host = host
        self.port = port
        self.wait_timeout = wait_timeout
        self.extra_args = tuple(extra_args)
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = self._given_workdir
        self.process: ManagedProcess | None = None
        self.timings: dict[str, float] = {}
        self._credentials: dict[str, DatabaseCredentials] = {}
        self._last_database: str | None = None

    # paths -----------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.workdir is None:
            raise RealStackError("Mariadb is not started")
        return self.workdir / name

    @property
    def datadir(self) -> Path:
        """The MariaDB data directory."""
        return self._path("data")

    @property
    def socket_path(self) -> Path:
        """The server's unix socket."""
        return self._path("mysqld.sock")

    @property
    def error_log(self) -> Path:
        """The server's error log."""
        return self._path("error.log")

    # lifecycle -------------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Tell whether the server started by this object runs.

        Returns:
            True while it runs.
        """
        return self.process is not None and self.process.alive()

    def _prepare_dirs(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="mariadb-", dir=base_dir()))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o750)
        _chown(self.workdir, "mysql")
        run_dir = Path("/run/mysqld")
        run_dir.mkdir(parents=True, exist_ok=True)
        _chown(run_dir, "mysql")

    def _tmpdir(self) -> Path:
        """The server's own tmpdir, not the shards' shared /tmp.

        Parallel shards' servers can have the same pid in their own pid namespaces, and so
        the same temporary-table names (`#sql-temptable-<pid>-...`): one bootstrap removed
        the other's (seen on Epoxy).
        """
        path = self._path("tmp")
        path.mkdir(mode=0o700, exist_ok=True)
        _chown(path, "mysql")
        return path

    def _install_db(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        started = time.monotonic()
        _run(
            [
                MARIADB_INSTALL_DB,
                "--no-defaults",
                "--user=mysql",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=16M",
                f"--tmpdir={self._tmpdir()}",
            ],
            timeout=300,
            log_path=self._path("install-db.log"),
        )
        self.timings["install_db"] = time.monotonic() - started

    def _argv(self) -> list[str]:
        return [
            MARIADBD,
            "--no-defaults",
            "--user=mysql",
            f"--datadir={self.datadir}",
            f"--socket={self.socket_path}",
            f"--pid-file={self._path('mysqld.pid')}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self._tmpdir()}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            "--skip-name-resolve",
            "--max-connections=500",
            f"--wait-timeout={self.wait_timeout}",
            "--innodb-log-file-size=16M",
            "--innodb-buffer-pool-size=128M",
            # test-only durability trade-off: keystone/glance db_sync run much faster
            "--innodb-flush-log-at-trx-commit=2",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            *self.extra_args,
        ]

    def _ready(self) -> bool:
        if not _port_in_use(self.host, self.port):
            return False
        try:
            return self.sql("SELECT 1").strip() == "1"
        except RealStackError:
            return False

    def start(self, timeout: float = 60.0) -> float:
        """Initialise the data dir if needed, start ``mariadbd`` and wait until it answers.

        Idempotent: returns 0.0 if this object's server already runs.

        Args:
            timeout: seconds to wait for the server to accept connections.

        Returns:
            Seconds spent (also in ``timings['start']``).

        Raises:
            RealStackError: if the port is taken by another server or the start fails.
        """
        if self.is_running():
            return 0.0
        _require_root("Mariadb.start")
        started = time.monotonic()
        if _port_in_use(self.host, self.port):
            raise RealStackError(
                f"{self.host}:{self.port} is already in use by another server"
                " (a leftover of an earlier run? see `pgrep -a mariadbd`)"
            )
        self._prepare_dirs()
        self._install_db()
        self.process = start_process(
            "mariadbd", self._argv(), log_path=self._path("mariadbd.out"), cwd=self.workdir
        )
        register_cleanup(self.stop)
        try:
            _wait_until(self._ready, timeout=timeout, what="mariadbd", alive=self.process.alive)
        except RealStackError as exc:
            raise RealStackError(f"{exc}\n{_tail(self.error_log)}") from exc
        self.timings["start"] = time.monotonic() - started
        return self.timings["start"]

    def stop(self, *, cleanup: bool | None = None, timeout: float = 60.0) -> None:
        """Stop the server by PID and optionally remove its work directory.

        Args:
            cleanup: remove the work directory. Default: only a fresh one this object created,
                unless ``REALSTACK_KEEP_DATA`` is set.
            timeout: seconds for a clean shutdown before SIGKILL.
        """
        _unregister_cleanup(self.stop)
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None
        self.workdir = release_workdir(self.workdir, self._given_workdir, cleanup)

    # SQL -------------------------------------------------------------------------------------
    def sql(self, statements: str, *, database: str | None = None, timeout: float = 60.0) -> str:
        """Run SQL as root through the unix socket (statements go on stdin, never argv).

        Args:
            statements: one or more SQL statements.
            database: default database.
            timeout: seconds before giving up.

        Returns:
            The client's batch output (tab separated, no column names).
        """
        argv = [
            MARIADB_CLIENT,
            "--no-defaults",
            "--protocol=SOCKET",
            f"--socket={self.socket_path}",
            "--user=root",
            "--batch",
            "--skip-column-names",
        ]
        if database:
            argv.append(f"--database={_sql_name(database)}")
        return _run(argv, stdin=statements, timeout=timeout)

    def create_database(
        self,
        name: str,
        user: str,
        password: str | None = None,
        host_pattern: str = "127.0.0.1",
    ) -> DatabaseCredentials:
        """Create a database and a user with all privileges on it, as the MySQL charms do.

        Equivalent to charmhelpers ``MySQL8Helper.configure_db`` used by mysql-innodb-cluster
        for mysql-router (``CREATE DATABASE `db` CHARACTER SET UTF8``, ``CREATE USER``, ``GRANT
        ALL PRIVILEGES ON `db`.*``, ``FLUSH PRIVILEGES``) and to percona-cluster's ``GRANT ...
        IDENTIFIED BY``. Idempotent; a new password is applied to an existing user.

        Args:
            name: database name.
            user: user name.
            password: the password; default: the one already issued for this database, else a
                new 32-character one (charmhelpers ``pwgen(length=32)``).
            host_pattern: account host. ``127.0.0.1`` matches glance connecting to the local
                router address (the server runs with ``skip-name-resolve``); ``%`` allows all.

        Returns:
            The credentials.
        """
        known = self._credentials.get(name)
        if password is None:
            password = known.password if known and known.user == user else generate_password(32)
        remember_secret(password)
        if not _HOST_RE.match(host_pattern):
            raise ValueError(f"unsafe host pattern: {host_pattern!r}")
        account = f"{_sql_string(_sql_name(user))}@{_sql_string(host_pattern)}"
        secret = _sql_string(password)
        self.sql(
            f"CREATE DATABASE IF NOT EXISTS `{_sql_name(name)}` CHARACTER SET UTF8;\n"
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {secret};\n"
            f"ALTER USER {account} IDENTIFIED BY {secret};\n"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO {account};\n"
            "FLUSH PRIVILEGES;\n"
        )
        creds = DatabaseCredentials(name, user, password, host_pattern)
        self._credentials[name] = creds
        self._last_database = name
        return creds

    def credentials(self, database: str | None = None) -> DatabaseCredentials:
        """Return the credentials issued for a database.

        Args:
            database: database name; default: the last one created.

        Returns:
            The credentials.

        Raises:
            KeyError: if no such database was created by this object.
        """
        name = database or self._last_database
        if name is None or name not in self._credentials:
            raise KeyError(f"no database created for {name!r}")
        return self._credentials[name]

    def connection_url(self, database: str | None = None) -> str:
        """Return the SQLAlchemy URL the glance charm would render for a database.

        Args:
            database: database name; default: the last one created.

        Returns:
            ``mysql+pymysql://user:password@host/database`` (contains the password).
        """
        creds = self.credentials(database)
        return f"mysql+pymysql://{creds.user}:{creds.password}@{self.host}/{creds.database}"

    def shared_db_relation_data(
        self, unit_name: str, database: str | None = None
    ) -> dict[str, str]:
        """Return the unit data mysql-router sends on ``shared-db`` (non-prefixed form).

        Juju's own keys (private-address, ingress-address, egress-subnets) are not included.

        Args:
            unit_name: the requiring unit (mysql-router lists only its principal unit).
            database: which database's credentials; default: the last one created.

        Returns:
            ``db_host``, ``db_port``, ``password``, ``allowed_units``, ``wait_timeout``.
        """
        creds = self.credentials(database)
        return {
            "db_host": self.host,
            "db_port": str(self.port),
            "password": creds.password,
            "allowed_units": unit_name,
            "wait_timeout": str(self.wait_timeout),
        }

    def handle_shared_db_request(
        self, settings: Mapping[str, str], unit_name: str, host_pattern: str = "127.0.0.1"
    ) -> dict[str, str]:
        """Answer a requirer's ``shared-db`` data (``database``, ``username``, ``hostname``).

        Args:
            settings: what the requiring unit sent.
            unit_name: the requiring unit.
            host_pattern: account host; the requirer's ``hostname`` is not used because it
                connects through the (played) local router on 127.0.0.1.

        Returns:
            The relation data to hand back, see :meth:`shared_db_relation_data`.
        """
        self.create_database(settings["database"], settings["username"], None, host_pattern)
        return self.shared_db_relation_data(unit_name, settings["database"])


# --------------------------------------------------------------------------------------------
# Keystone
# --------------------------------------------------------------------------------------------


@dataclass
class TokenInfo:
    """A keystone token and its decoded body.

    Attributes:
        token: the X-Subject-Token value.
        body: the ``token`` object of the response (roles, project, user, catalog...).
    """

    token: str = field(repr=False)
    body: dict[str, Any] = field(repr=False)

    @property
    def catalog(self) -> list[dict[str, Any]]:
        """The service catalog carried by the token."""
        return list(self.body.get("catalog", []))


@dataclass
class ServiceUser:
    """A service account as created by the keystone charm for a related service.

    Attributes:
        service: service name (also the user name).
        service_type: catalog type (e.g. image).
        password: the password (not shown in repr).
        user_id: id of the user in ``service_domain``.
        project: project name (``services``).
        project_id: id of the project in ``service_domain``.
        domain: ``service_domain``.
        domain_id: its id.
    """

    service: str
    service_type: str
    password: str = field(repr=False)
    user_id: str
    project: str
    project_id: str
    domain: str
    domain_id: str


_KEYSTONE_CONF = """\
# written by tests/functional/realstack.py
[DEFAULT]
debug = false
use_stderr = false

[database]
connection = {connection}
connection_recycle_time = 3600

[token]
provider = fernet
expiration = 7200

[fernet_tokens]
key_repository = {workdir}/fernet-keys/
max_active_keys = 3

[fernet_receipts]
key_repository = {workdir}/fernet-keys/

[credential]
key_repository = {workdir}/credential-keys/

[cache]
# In-process cache: without it every authenticated call costs ~200 SQL queries (~250 ms here).
# Only consistent with a single uwsgi process (keystone invalidates its own process's cache).
enabled = {cache}
backend = dogpile.cache.memory
expiration_time = 600

[identity]
default_domain_id = default
{hash_rounds}
"""


class Keystone:
    """Keystone (Zed) under uwsgi on ``127.0.0.1:5000``, set up like the classic keystone charm.

    Layout created by :meth:`start`, mirroring charm-keystone ``bootstrap_keystone`` and
    ``ensure_initial_admin``:

    * ``keystone-manage bootstrap``: user ``admin`` and project ``admin`` in domain ``default``,
      role ``Admin`` (the charm's ``admin-role``; bootstrap also makes member and reader),
      service ``keystone`` with public/internal/admin endpoints ``http://127.0.0.1:5000/v3`` in
      RegionOne. This account drives the API below (the charm uses its own
      ``_charm-keystone-admin`` user the same way).
    * domains ``admin_domain`` and ``service_domain``; project ``admin`` in ``admin_domain``;
      project ``services`` in ``service_domain`` and ``default``; role ``service``; user
      ``admin`` in ``admin_domain`` (same password) with ``member`` and ``Admin`` on its project
      and ``Admin`` on the domain. Its ids are the ``admin_*_id`` relation values.

    Zed has a single keystone port, so ``auth_port`` is 5000 on the relation, where the classic
    charm sends its admin port 35357.

    Test-only tuning (see :meth:`__init__`): one uwsgi process with threads and keystone's
    in-process memory cache (without a cache every authenticated call costs ~200 SQL queries,
    ~250 ms here), and bcrypt at 4 rounds. Each request gets ``Connection: close`` because
    uwsgi's http-socket silently drops kept-alive connections.
    """

    admin_username = "admin"
    admin_role = "Admin"
    api_version = "3"

    def __init__(
        self,
        mariadb: Mariadb,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 5000,
        region: str = "RegionOne",
        admin_password: str | None = None,
        service_tenant: str = "services",
        processes: int = 1,
        threads: int = 4,
        password_hash_rounds: int | None = 4,
    ) -> None:
        """Describe the service; nothing runs until :meth:`start`.

        Args:
            mariadb: a started :class:`Mariadb` for keystone's database.
            workdir: directory for keystone.conf, key repositories and logs. Default: a fresh
                directory under :func:`base_dir`, removed at stop unless ``REALSTACK_KEEP_DATA``.
            host: address keystone listens on and advertises.
            port: its port.
            region: region of keystone's own endpoints.
            admin_password: password of both admin users; default: generated (64 chars).
            service_tenant: the charm's ``service-tenant`` option.
            processes: uwsgi worker processes. With more than one, keystone's in-process
                cache is disabled (it would serve stale assignments across workers).
            threads: threads per uwsgi process.
            password_hash_rounds: bcrypt rounds; 4 (the minimum) makes each password check
                take milliseconds instead of ~0.35 s at keystone's default 12. None: default.
        """
        self.mariadb = mariadb
        self.host = host
        self.port = port
        self.region = region
        self.service_tenant = service_tenant
        self.processes = processes
        self.threads = threads
        self.password_hash_rounds = password_hash_rounds
        self.admin_password = admin_password or generate_password(64)
        remember_secret(self.admin_password)
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = self._given_workdir
        self.process: ManagedProcess | None = None
        self.timings: dict[str, float] = {}
        self.ids: dict[str, str] = {}
        self.service_users: dict[str, ServiceUser] = {}
        self._admin_token: tuple[str, float] | None = None

    # basics ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Keystone's v3 URL, e.g. ``http://127.0.0.1:5000/v3``."""
        return f"http://{self.host}:{self.port}/v3"

    def _path(self, name: str) -> Path:
        if self.workdir is None:
            raise RealStackError("Keystone is not started")
        return self.workdir / name

    @property
    def config_file(self) -> Path:
        """The private keystone.conf."""
        return self._path("keystone.conf")

    def is_running(self) -> bool:
        """Tell whether this object's uwsgi runs.

        Returns:
            True while it runs.
        """
        return self.process is not None and self.process.alive()

    # setup -----------------------------------------------------------------------------------
    def _timed(self, key: str, func: Callable[[], object]) -> None:
        started = time.monotonic()
        func()
        self.timings[key] = time.monotonic() - started

    def _manage(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        _run(
            [KEYSTONE_MANAGE, "--config-file", str(self.config_file), *args],
            env=system_env(env),
            timeout=300,
            log_path=self._path("keystone-manage.log"),
        )

    def _write_config(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="keystone-", dir=base_dir()))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o750)
        _chown(self.workdir, "keystone")
        creds = self.mariadb.create_database("keystone", "keystone")
        connection = (
            f"mysql+pymysql://{creds.user}:{creds.password}@{self.mariadb.host}:"
            f"{self.mariadb.port}/{creds.database}"
        )
        conf = self.config_file
        rounds = self.password_hash_rounds
        conf.write_text(
            _KEYSTONE_CONF.format(
                connection=connection,
                workdir=self.workdir,
                cache="true" if self.processes == 1 else "false",
                hash_rounds=f"password_hash_rounds = {rounds}" if rounds else "",
            )
        )
        conf.chmod(0o640)
        os.chown(conf, 0, pwd.getpwnam("keystone").pw_gid)

    def _bootstrap(self) -> None:
        marker = self._path(".bootstrapped")
        if marker.exists():
            return
        owner = ("--keystone-user", "keystone", "--keystone-group", "keystone")
        # The key repositories do not touch the database: set them up while db_sync runs.
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            futures = [
                pool.submit(self._timed, "db_sync", lambda: self._manage("db_sync")),
                pool.submit(
                    self._timed, "fernet_setup", lambda: self._manage("fernet_setup", *owner)
                ),
                pool.submit(
                    self._timed,
                    "credential_setup",
                    lambda: self._manage("credential_setup", *owner),
                ),
            ]
            for future in futures:
                future.result()
        self.timings["db_sync_and_keys"] = time.monotonic() - started
        env = {"OS_BOOTSTRAP_PASSWORD": self.admin_password}
        argv = [
            "bootstrap",
            "--bootstrap-username",
            self.admin_username,
            "--bootstrap-project-name",
            ADMIN_PROJECT,
            "--bootstrap-role-name",
            self.admin_role,
            "--bootstrap-service-name",
            "keystone",
            "--bootstrap-region-id",
            self.region,
            "--bootstrap-admin-url",
            self.url,
            "--bootstrap-public-url",
            self.url,
            "--bootstrap-internal-url",
            self.url,
        ]
        self._timed("bootstrap", lambda: self._manage(*argv, env=env))
        marker.touch()

    def _uwsgi_argv(self) -> list[str]:
        return [
            UWSGI,
            "--http-socket",
            f"{self.host}:{self.port}",
            "--wsgi-file",
            KEYSTONE_WSGI,
            # uwsgi's http-socket drops kept-alive connections silently: tell clients.
            "--add-header",
            "Connection: close",
            "--master",
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
            "--die-on-term",
            "--need-app",
            "--lazy-apps",
            "--no-orphans",
            "--buffer-size",
            "65535",
            "--uid",
            "keystone",
            "--gid",
            "keystone",
            "--chdir",
            str(self.workdir),
        ]

    def _ready(self) -> bool:
        try:
            return http_request("GET", self.url, timeout=2.0).status == 200
        except (OSError, http.client.HTTPException, HttpError):
            return False

    def start(self, timeout: float = 60.0) -> float:
        """Create the database, configure, bootstrap and run keystone, then seed it.

        Idempotent: returns 0.0 if this object's keystone already runs.

        Args:
            timeout: seconds to wait for the API to answer.

        Returns:
            Seconds spent (also ``timings['total']``; the steps are in ``timings`` too).

        Raises:
            RealStackError: if a step fails.
        """
        if self.is_running():
            return 0.0
        _require_root("Keystone.start")
        if not self.mariadb.is_running():
            raise RealStackError("Keystone needs a running Mariadb")
        started = time.monotonic()
        if _port_in_use(self.host, self.port):
            raise RealStackError(
                f"{self.host}:{self.port} is already in use"
                " (a leftover of an earlier run? see `pgrep -a uwsgi`)"
            )
        self._timed("config", self._write_config)
        self._bootstrap()
        env = system_env({"OS_KEYSTONE_CONFIG_DIR": str(self.workdir)})
        ready_started = time.monotonic()
        self.process = start_process(
            "keystone-uwsgi", self._uwsgi_argv(), log_path=self._path("keystone.log"), env=env
        )
        register_cleanup(self.stop)
        try:
            _wait_until(self._ready, timeout=timeout, what="keystone", alive=self.process.alive)
        except RealStackError as exc:
            raise RealStackError(f"{exc}\n{self.process.log_tail()}") from exc
        self.timings["uwsgi_ready"] = time.monotonic() - ready_started
        self._timed("initial_admin", self._ensure_initial_admin)
        self.timings["total"] = time.monotonic() - started
        return self.timings["total"]

    def stop(self, *, cleanup: bool | None = None, timeout: float = 30.0) -> None:
        """Stop uwsgi (master and workers) by PID and optionally remove the work directory.

        Args:
            cleanup: remove the work directory. Default: only a fresh one this object created,
                unless ``REALSTACK_KEEP_DATA`` is set.
            timeout: seconds for a clean exit before SIGKILL.
        """
        _unregister_cleanup(self.stop)
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None
        self._admin_token = None
        self.workdir = release_workdir(self.workdir, self._given_workdir, cleanup)

    # tokens ----------------------------------------------------------------------------------
    def authenticate(
        self,
        username: str,
        password: str,
        *,
        project: str | None,
        user_domain: str = DEFAULT_DOMAIN,
        project_domain: str | None = None,
    ) -> TokenInfo:
        """Get a token with the password method (``POST /v3/auth/tokens``).

        Args:
            username: user name.
            password: its password.
            project: project name to scope to, or None for an unscoped token.
            user_domain: the user's domain name.
            project_domain: the project's domain name (default: the user's).

        Returns:
            The token and its body (with the catalog when project scoped).
        """
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": username,
                        "domain": {"name": user_domain},
                        "password": password,
                    },
                },
            },
        }
        if project is not None:
            auth["scope"] = {
                "project": {"name": project, "domain": {"name": project_domain or user_domain}}
            }
        resp = http_request("POST", f"{self.url}/auth/tokens", json_body={"auth": auth})
        token = resp.headers["x-subject-token"]
        remember_secret(token)
        return TokenInfo(token=token, body=resp.json()["token"])

    def _api_token(self) -> str:
        if self._admin_token is None or time.monotonic() - self._admin_token[1] > 1800:
            info = self.authenticate(
                self.admin_username, self.admin_password, project=ADMIN_PROJECT
            )
            self._admin_token = (info.token, time.monotonic())
        return self._admin_token[0]

    def token(self, *, domain: str = ADMIN_DOMAIN) -> str:
        """Return a token for the cloud admin, scoped to its ``admin`` project.

        Args:
            domain: ``admin_domain`` (the charm's cloud admin, whose ids the relation carries)
                or ``default`` (the bootstrap admin).

        Returns:
            The token.
        """
        return self.authenticate(
            self.admin_username, self.admin_password, project=ADMIN_PROJECT, user_domain=domain
        ).token

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: Iterable[int] = (200, 201, 204),
    ) -> Any:
        """Call the identity API as the bootstrap admin.

        Args:
            method: HTTP method.
            path: path below ``/v3`` (e.g. ``/projects?name=x``).
            body: JSON body.
            expect: accepted status codes.

        Returns:
            The decoded JSON body (None if empty).
        """
        return http_request(
            method,
            f"{self.url}{path}",
            json_body=body,
            headers={"X-Auth-Token": self._api_token()},
            expect=expect,
        ).json()

    # CRUD helpers (idempotent, like the charm's manager) -----------------------------------
    @staticmethod
    def _query(**params: str) -> str:
        return "?" + urllib.parse.urlencode(params)

    def _find(self, collection: str, **params: str) -> dict[str, Any] | None:
        items = self.api("GET", f"/{collection}{self._query(**params)}")[collection]
        return items[0] if items else None

    def ensure_domain(self, name: str) -> str:
        """Create a domain unless it exists.

        Args:
            name: domain name.

        Returns:
            Its id.
        """
        found = self._find("domains", name=name)
        if found:
            return str(found["id"])
        body = {"domain": {"name": name, "description": "Created by Juju"}}
        return str(self.api("POST", "/domains", body)["domain"]["id"])

    def ensure_project(self, name: str, domain_id: str) -> str:
        """Create a project in a domain unless it exists.

        Args:
            name: project name.
            domain_id: its domain's id.

        Returns:
            Its id.
        """
        found = self._find("projects", name=name, domain_id=domain_id)
        if found:
            return str(found["id"])
        body = {
            "project": {"name": name, "domain_id": domain_id, "description": "Created by Juju"}
        }
        return str(self.api("POST", "/projects", body)["project"]["id"])

    def ensure_role(self, name: str) -> str:
        """Create a global role unless one exists with that name (compared case-insensitively).

        Args:
            name: role name.

        Returns:
            Its id.
        """
        for role in self.api("GET", "/roles")["roles"]:
            if role["name"].lower() == name.lower() and not role.get("domain_id"):
                return str(role["id"])
        return str(self.api("POST", "/roles", {"role": {"name": name}})["role"]["id"])

    def ensure_user(
        self, name: str, password: str, domain_id: str, project_id: str | None = None
    ) -> str:
        """Create a user, or reset its password if it exists.

        The PCI-DSS ``ignore_change_password_upon_first_use`` and ``ignore_password_expiry``
        options are set, as the charm does for service accounts.

        Args:
            name: user name.
            password: password to set.
            domain_id: the user's domain id.
            project_id: default project id.

        Returns:
            Its id.
        """
        options = {"ignore_change_password_upon_first_use": True, "ignore_password_expiry": True}
        found = self._find("users", name=name, domain_id=domain_id)
        if found:
            user_id = str(found["id"])
            self.api(
                "PATCH", f"/users/{user_id}", {"user": {"password": password, "options": options}}
            )
            return user_id
        user: dict[str, Any] = {
            "name": name,
            "password": password,
            "domain_id": domain_id,
            "email": "juju@localhost",
            "enabled": True,
            "options": options,
        }
        if project_id:
            user["default_project_id"] = project_id
        return str(self.api("POST", "/users", {"user": user})["user"]["id"])

    def grant(
        self, role_id: str, user_id: str, *, project_id: str = "", domain_id: str = ""
    ) -> None:
        """Grant a role to a user on a project or a domain (idempotent PUT).

        Args:
            role_id: role id.
            user_id: user id.
            project_id: target project id (or give ``domain_id``).
            domain_id: target domain id.
        """
        target = f"/projects/{project_id}" if project_id else f"/domains/{domain_id}"
        self.api("PUT", f"{target}/users/{user_id}/roles/{role_id}")

    def _ensure_initial_admin(self) -> None:
        ids = self.ids
        ids["default_domain_id"] = self.ensure_domain(DEFAULT_DOMAIN)
        ids["admin_domain_id"] = self.ensure_domain(ADMIN_DOMAIN)
        ids["service_domain_id"] = self.ensure_domain(SERVICE_DOMAIN)
        ids["admin_project_id"] = self.ensure_project(ADMIN_PROJECT, ids["admin_domain_id"])
        ids["service_tenant_id"] = self.ensure_project(
            self.service_tenant, ids["service_domain_id"]
        )
        ids["default_service_tenant_id"] = self.ensure_project(
            self.service_tenant, ids["default_domain_id"]
        )
        ids["service_role_id"] = self.ensure_role(SERVICE_ROLE)
        ids["member_role_id"] = self.ensure_role(MEMBER_ROLE)
        ids["admin_role_id"] = self.ensure_role(self.admin_role)
        ids["admin_user_id"] = self.ensure_user(
            self.admin_username,
            self.admin_password,
            ids["admin_domain_id"],
            ids["admin_project_id"],
        )
        for role in ("member_role_id", "admin_role_id"):
            self.grant(ids[role], ids["admin_user_id"], project_id=ids["admin_project_id"])
        self.grant(ids["admin_role_id"], ids["admin_user_id"], domain_id=ids["admin_domain_id"])

    # identity-service --------------------------------------------------------------------------
    def create_service_user(
        self, service: str = "glance", *, password: str | None = None
    ) -> ServiceUser:
        """Create a service's account as charm-keystone ``create_service_credentials`` does.

        The user (named after the service) is created in ``default`` and in ``service_domain``
        with the same password and the ``Admin`` role on the ``services`` project of each; the
        ``service`` role is granted on ``service_domain``/``services``. Re-running keeps the
        password issued before unless a new one is given.

        Args:
            service: service name, e.g. glance.
            password: password; default: the previous one or a new 64-character one.

        Returns:
            The service account (ids read back from keystone).
        """
        known = self.service_users.get(service)
        password = password or (known.password if known else generate_password(64))
        remember_secret(password)
        ids = self.ids
        admin_role = ids["admin_role_id"]
        default_user_id = self.ensure_user(
            service, password, ids["default_domain_id"], ids["default_service_tenant_id"]
        )
        self.grant(admin_role, default_user_id, project_id=ids["default_service_tenant_id"])
        user_id = self.ensure_user(
            service, password, ids["service_domain_id"], ids["service_tenant_id"]
        )
        self.grant(admin_role, user_id, project_id=ids["service_tenant_id"])
        self.grant(ids["service_role_id"], user_id, project_id=ids["service_tenant_id"])
        user = ServiceUser(
            service=service,
            service_type=VALID_SERVICES.get(service, (service, ""))[0],
            password=password,
            user_id=user_id,
            project=self.service_tenant,
            project_id=ids["service_tenant_id"],
            domain=SERVICE_DOMAIN,
            domain_id=ids["service_domain_id"],
        )
        self.service_users[service] = user
        return user

    def identity_relation_data(self, service: str = "glance") -> dict[str, str]:
        """Return the unit data charm-keystone sends on ``identity-service``.

        Exactly the keys of ``add_service_to_keystone`` that survive ``__null__`` filtering and
        empty values (``created_roles`` is empty without requested roles, so Juju drops it).
        ``auth_port`` is 5000: Zed keystone has one port (the classic charm sends 35357).

        Args:
            service: a service whose account :meth:`create_service_user` made.

        Returns:
            The relation data (contains the service password).
        """
        user = self.service_users[service]
        port = str(self.port)
        return {
            "admin_domain_id": self.ids["admin_domain_id"],
            "admin_project_id": self.ids["admin_project_id"],
            "admin_role": self.admin_role,
            "admin_user_id": self.ids["admin_user_id"],
            "api_version": self.api_version,
            "auth_host": self.host,
            "auth_port": port,
            "auth_protocol": "http",
            "internal_host": self.host,
            "internal_port": port,
            "internal_protocol": "http",
            "service_domain": user.domain,
            "service_domain_id": user.domain_id,
            "service_host": self.host,
            "service_password": user.password,
            "service_port": port,
            "service_protocol": "http",
            "service_tenant": user.project,
            "service_tenant_id": user.project_id,
            "service_type": user.service_type,
            "service_user_id": user.user_id,
            "service_username": user.service,
        }

    def ensure_region(self, region: str) -> None:
        """Create a region unless it exists.

        Args:
            region: region id.
        """
        try:
            self.api("GET", f"/regions/{urllib.parse.quote(region)}")
        except HttpError as exc:
            if exc.status != 404:
                raise
            self.api("POST", "/regions", {"region": {"id": region}})

    def ensure_service(self, service: str, service_type: str) -> str:
        """Create a catalog service entry unless one with that name exists.

        Args:
            service: service name.
            service_type: catalog type.

        Returns:
            The service id.
        """
        for entry in self.api("GET", "/services")["services"]:
            if entry["name"] == service:
                return str(entry["id"])
        desc = VALID_SERVICES.get(service, (service_type, f"{service} service"))[1]
        body = {
            "service": {
                "name": service,
                "type": service_type,
                "description": desc,
                "enabled": True,
            }
        }
        return str(self.api("POST", "/services", body)["service"]["id"])

    def register_endpoints(
        self,
        service: str,
        service_type: str,
        region: str,
        public_url: str,
        admin_url: str,
        internal_url: str,
    ) -> dict[str, str]:
        """Register a service and its three endpoints as charm-keystone ``add_endpoint`` does.

        Idempotent: an existing endpoint (same service, interface and region) whose URL differs
        is updated in place; a matching one is left alone.

        Args:
            service: service name (e.g. glance).
            service_type: catalog type (e.g. image).
            region: region id (created if missing).
            public_url: public endpoint URL.
            admin_url: admin endpoint URL.
            internal_url: internal endpoint URL.

        Returns:
            ``service_id`` and the endpoint id of each interface (``public``, ``admin``,
            ``internal``).
        """
        self.ensure_region(region)
        service_id = self.ensure_service(service, service_type)
        existing = self.api("GET", f"/endpoints{self._query(service_id=service_id)}")["endpoints"]
        result = {"service_id": service_id}
        wanted = {"public": public_url, "admin": admin_url, "internal": internal_url}
        for interface, url in wanted.items():
            match = next(
                (
                    ep
                    for ep in existing
                    if ep["interface"] == interface and ep.get("region_id") == region
                ),
                None,
            )
            if match is None:
                body = {
                    "endpoint": {
                        "service_id": service_id,
                        "interface": interface,
                        "url": url,
                        "region_id": region,
                        "enabled": True,
                    }
                }
                result[interface] = str(self.api("POST", "/endpoints", body)["endpoint"]["id"])
                continue
            if match["url"] != url:
                self.api("PATCH", f"/endpoints/{match['id']}", {"endpoint": {"url": url}})
            result[interface] = str(match["id"])
        return result

    def add_service(self, settings: Mapping[str, str]) -> dict[str, str]:
        """Answer a requirer's ``identity-service`` data like ``add_service_to_keystone``.

        Args:
            settings: ``service``, ``region``, ``public_url``, ``admin_url``, ``internal_url``
                as sent by the glance charm.

        Returns:
            The relation data to hand back, see :meth:`identity_relation_data`.
        """
        service = settings["service"]
        service_type = VALID_SERVICES.get(service, (service, ""))[0]
        self.register_endpoints(
            service,
            service_type,
            settings["region"],
            settings["public_url"],
            settings["admin_url"],
            settings["internal_url"],
        )
        self.create_service_user(service)
        return self.identity_relation_data(service)

    # catalog -----------------------------------------------------------------------------------
    def service_token(self, service: str = "glance") -> TokenInfo:
        """Get a token as a service account (``service_domain``/``services``).

        Args:
            service: a service whose account :meth:`create_service_user` made.

        Returns:
            The token and its body.
        """
        user = self.service_users[service]
        return self.authenticate(
            user.service, user.password, project=user.project, user_domain=user.domain
        )

    def catalog(self, *, as_service: str | None = "glance") -> list[dict[str, Any]]:
        """Read the service catalog from a freshly issued token.

        Args:
            as_service: authenticate as this service's account if it exists; otherwise (or if
                None) as the cloud admin of ``admin_domain``.

        Returns:
            The catalog entries.
        """
        if as_service and as_service in self.service_users:
            return self.service_token(as_service).catalog
        return self.authenticate(
            self.admin_username,
            self.admin_password,
            project=ADMIN_PROJECT,
            user_domain=ADMIN_DOMAIN,
        ).catalog

    def catalog_url(
        self,
        service_type: str = "image",
        interface: str = "public",
        *,
        region: str | None = None,
        as_service: str | None = "glance",
    ) -> str:
        """Find an endpoint URL in the catalog of a real token (nothing is hard-coded).

        Args:
            service_type: catalog type.
            interface: public, internal or admin.
            region: region id; default: any.
            as_service: see :meth:`catalog`.

        Returns:
            The URL.

        Raises:
            LookupError: if the catalog has no such endpoint.
        """
        return find_endpoint(self.catalog(as_service=as_service), service_type, interface, region)


def find_endpoint(
    catalog: Iterable[Mapping[str, Any]],
    service_type: str,
    interface: str = "public",
    region: str | None = None,
) -> str:
    """Pick an endpoint URL out of a keystone v3 token catalog.

    Args:
        catalog: the token's ``catalog``.
        service_type: catalog type.
        interface: public, internal or admin.
        region: region id; default: any.

    Returns:
        The URL.

    Raises:
        LookupError: if the catalog has no such endpoint.
    """
    for entry in catalog:
        if entry.get("type") != service_type:
            continue
        for endpoint in entry.get("endpoints", []):
            if endpoint.get("interface") != interface:
                continue
            if region is None or endpoint.get("region_id") == region:
                return str(endpoint["url"])
    raise LookupError(f"no {interface} endpoint of type {service_type!r} in the catalog")


# --------------------------------------------------------------------------------------------
# Image API client
# --------------------------------------------------------------------------------------------


@dataclass
class Transfer:
    """The outcome of an image upload or download.

    Attributes:
        bytes: bytes moved.
        seconds: wall time from the request start to the complete response.
        sha256: hex digest of the data when requested, else None.
        status: HTTP status.
        headers: response headers (lower-cased names).
    """

    bytes: int
    seconds: float
    sha256: str | None = None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def mib_per_s(self) -> float:
        """Throughput in MiB/s."""
        return self.bytes / MIB / self.seconds if self.seconds > 0 else float("inf")


def sha256_file(path: str | Path, chunk_size: int = CHUNK_SIZE) -> str:
    """Hash a file in chunks.

    Args:
        path: the file.
        chunk_size: read size.

    Returns:
        The hex sha256 digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def make_random_file(path: str | Path, size_mib: int, *, seed: int = 0) -> str:
    """Write a file of pseudo-random bytes chunk by chunk (fast, deterministic per seed).

    Args:
        path: destination.
        size_mib: size in MiB.
        seed: random seed.

    Returns:
        The hex sha256 digest of the content.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for _ in range(size_mib):
            chunk = rng.randbytes(MIB)
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def _file_chunks(path: Path, chunk_size: int, digest: Any) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            if digest is not None:
                digest.update(chunk)
            yield chunk


class ImageClient:
    """A minimal glance image API v2 client that finds glance through the keystone catalog."""

    def __init__(
        self,
        keystone: Keystone,
        *,
        username: str | None = None,
        password: str | None = None,
        project: str = ADMIN_PROJECT,
        user_domain: str = ADMIN_DOMAIN,
        project_domain: str | None = None,
        interface: str = "public",
        region: str | None = None,
        endpoint: str | None = None,
        timeout: float = 900.0,
    ) -> None:
        """Set up the client; the first request authenticates.

        Args:
            keystone: the running keystone.
            username: user; default: the cloud admin (``admin_domain``/``admin``).
            password: its password; default: keystone's admin password.
            project: project to scope to.
            user_domain: the user's domain name.
            project_domain: the project's domain name (default: the user's).
            interface: catalog interface to use.
            region: catalog region; default: any.
            endpoint: use this image URL instead of the catalog.
            timeout: socket timeout for each request, in seconds.
        """
        self.keystone = keystone
        self.username = username or keystone.admin_username
        self._password = password or keystone.admin_password
        self.project = project
        self.user_domain = user_domain
        self.project_domain = project_domain
        self.interface = interface
        self.region = region
        self.timeout = timeout
        self._endpoint = endpoint
        self._token: tuple[str, float] | None = None

    @classmethod
    def as_service(cls, keystone: Keystone, service: str = "glance", **kwargs: Any) -> ImageClient:
        """Build a client authenticating as a service account.

        Args:
            keystone: the running keystone.
            service: a service whose account exists.
            **kwargs: other :class:`ImageClient` arguments.

        Returns:
            The client.
        """
        user = keystone.service_users[service]
        return cls(
            keystone,
            username=user.service,
            password=user.password,
            project=user.project,
            user_domain=user.domain,
            **kwargs,
        )

    def _auth(self) -> str:
        if self._token is None or time.monotonic() - self._token[1] > 1800:
            info = self.keystone.authenticate(
                self.username,
                self._password,
                project=self.project,
                user_domain=self.user_domain,
                project_domain=self.project_domain,
            )
            if self._endpoint is None:
                self._endpoint = find_endpoint(info.catalog, "image", self.interface, self.region)
            self._token = (info.token, time.monotonic())
        return self._token[0]

    @property
    def endpoint(self) -> str:
        """The image API base URL (from the catalog unless given)."""
        self._auth()
        assert self._endpoint is not None
        return self._endpoint

    def _url(self, path: str) -> str:
        base = self.endpoint.rstrip("/")
        base = base.removesuffix("/v2")
        return f"{base}{path}"

    def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> HttpResponse:
        headers = {"X-Auth-Token": self._auth(), **kwargs.pop("headers", {})}
        return http_request(
            method,
            self._url(path),
            json_body=body,
            headers=headers,
            timeout=self.timeout,
            **kwargs,
        )

    def create_image(
        self,
        name: str,
        *,
        disk_format: str = "raw",
        container_format: str = "bare",
        visibility: str = "private",
        **properties: Any,
    ) -> dict[str, Any]:
        """Create an image record (``POST /v2/images``), status ``queued``.

        Args:
            name: image name.
            disk_format: disk format.
            container_format: container format.
            visibility: private, shared, community or public.
            **properties: extra image properties.

        Returns:
            The image as returned by glance.
        """
        body = {
            "name": name,
            "disk_format": disk_format,
            "container_format": container_format,
            "visibility": visibility,
            **properties,
        }
        return dict(self._call("POST", "/v2/images", body, expect=(201,)).json())

    def get_image(self, image_id: str) -> dict[str, Any]:
        """Show an image.

        Args:
            image_id: image id.

        Returns:
            The image.
        """
        return dict(self._call("GET", f"/v2/images/{image_id}").json())

    def list_images(self, **filters: str) -> list[dict[str, Any]]:
        """List images, following pagination.

        Args:
            **filters: query filters (e.g. ``name``, ``status``).

        Returns:
            All images visible to the user.
        """
        images: list[dict[str, Any]] = []
        query = f"?{urllib.parse.urlencode(filters)}" if filters else ""
        path: str | None = f"/v2/images{query}"
        while path:
            page = self._call("GET", path).json()
            images.extend(page.get("images", []))
            path = page.get("next")
        return images

    def delete_image(self, image_id: str, *, missing_ok: bool = False) -> None:
        """Delete an image.

        Args:
            image_id: image id.
            missing_ok: do not fail if it does not exist.
        """
        expect = (204, 404) if missing_ok else (204,)
        self._call("DELETE", f"/v2/images/{image_id}", expect=expect)

    def stores(self) -> list[dict[str, Any]]:
        """List the enabled stores (``GET /v2/info/stores``, multi-store only).

        Returns:
            The stores, or an empty list when multi-store is not configured.
        """
        resp = self._call("GET", "/v2/info/stores", expect=(200, 404, 410))
        return list(resp.json().get("stores", [])) if resp.status == 200 else []

    def wait_for_status(
        self,
        image_id: str,
        status: str = "active",
        *,
        timeout: float = 120.0,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Poll an image until it reaches a status.

        Args:
            image_id: image id.
            status: wanted status.
            timeout: seconds.
            interval: seconds between polls.

        Returns:
            The image once in that status.

        Raises:
            RealStackError: if it ends ``killed``/``deleted`` instead, or on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            image = self.get_image(image_id)
            current = image.get("status")
            if current == status:
                return image
            if current in ("killed", "deleted"):
                raise RealStackError(f"image {image_id} is {current}, wanted {status}")
            if time.monotonic() > deadline:
                raise RealStackError(f"image {image_id} still {current} after {timeout:.0f}s")
            time.sleep(interval)

    def upload(
        self,
        image_id: str,
        path: str | Path,
        *,
        store: str | None = None,
        chunked: bool = True,
        sha256: bool = False,
        chunk_size: int = CHUNK_SIZE,
    ) -> Transfer:
        """Upload image data from a file, streaming (``PUT /v2/images/{id}/file``).

        Args:
            image_id: a queued image.
            path: the file to send.
            store: target store id, sent as ``X-Image-Meta-Store`` (multi-store).
            chunked: use ``Transfer-Encoding: chunked`` like glanceclient; else Content-Length.
            sha256: hash the data while sending it.
            chunk_size: read/send size.

        Returns:
            Bytes, seconds, throughput (and sha256 if asked).

        Raises:
            HttpError: if glance does not answer 204.
        """
        source = Path(path)
        size = source.stat().st_size
        headers = {
            "X-Auth-Token": self._auth(),
            "Content-Type": "application/octet-stream",
            "Connection": "close",
        }
        if store:
            headers["X-Image-Meta-Store"] = store
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(size)
        digest = hashlib.sha256() if sha256 else None
        url = self._url(f"/v2/images/{image_id}/file")
        conn, request_path = _connection(url, self.timeout)
        started = time.monotonic()
        try:
            conn.request(
                "PUT",
                request_path,
                body=_file_chunks(source, chunk_size, digest),
                headers=headers,
                encode_chunked=chunked,
            )
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        seconds = time.monotonic() - started
        if resp.status != 204:
            raise HttpError("PUT", url, resp.status, body.decode("utf-8", "replace"))
        return Transfer(
            size,
            seconds,
            digest.hexdigest() if digest else None,
            resp.status,
            {k.lower(): v for k, v in resp.getheaders()},
        )

    def download(
        self,
        image_id: str,
        path: str | Path,
        *,
        sha256: bool = True,
        chunk_size: int = CHUNK_SIZE,
    ) -> Transfer:
        """Download image data to a file, streaming (``GET /v2/images/{id}/file``).

        Args:
            image_id: an active image.
            path: destination file (overwritten).
            sha256: hash the data while receiving it.
            chunk_size: receive buffer size.

        Returns:
            Bytes, seconds, throughput, sha256 and the response headers (``content-md5`` is
            glance's md5 checksum).

        Raises:
            HttpError: if glance does not answer 200.
            RealStackError: if fewer bytes than ``Content-Length`` arrive.
        """
        url = self._url(f"/v2/images/{image_id}/file")
        headers = {"X-Auth-Token": self._auth(), "Connection": "close"}
        digest = hashlib.sha256() if sha256 else None
        buffer = memoryview(bytearray(chunk_size))
        total = 0
        conn, request_path = _connection(url, self.timeout)
        started = time.monotonic()
        try:
            conn.request("GET", request_path, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise HttpError("GET", url, resp.status, resp.read().decode("utf-8", "replace"))
            with open(path, "wb") as out:
                while count := resp.readinto(buffer):
                    out.write(buffer[:count])
                    if digest is not None:
                        digest.update(buffer[:count])
                    total += count
        finally:
            conn.close()
        seconds = time.monotonic() - started
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        expected = resp_headers.get("content-length")
        if expected is not None and int(expected) != total:
            raise RealStackError(f"download of {image_id}: got {total} of {expected} bytes")
        return Transfer(
            total, seconds, digest.hexdigest() if digest else None, resp.status, resp_headers
        )

"""A real single-replica Swift with Keystone auth, and swift-proxy played on `object-store`.

:class:`SwiftStack` runs Debian's swift 2.30 account, container and object servers and the
proxy on 127.0.0.1 from a fresh work directory: rings (one replica, one directory device, no
mount check), server configs, device and recon cache all live there (``swift_dir`` points the
servers at the rings). Only ``/etc/swift/swift.conf`` (hash prefix/suffix and storage policies)
is read from its fixed place by every server; the package's file is used as is, and written
(then removed at stop) only if it is missing.

The proxy authenticates with Keystone like charm-swift-proxy with ``auth-type=keystone``
(``authtoken`` + ``keystoneauth`` with ``operator_roles = Member,Admin``, delayed auth
decision, ``account_autocreate``). The identity side is done as the keystone charm does it
for swift-proxy's ``identity-service`` data: service user ``swift`` in ``service_domain``/
``services``, and the ``object-store`` endpoints (public/internal
``http://127.0.0.1:8080/v1/AUTH_$(tenant_id)s``, admin ``http://127.0.0.1:8080``).

On glance's ``object-store`` relation the proxy unit sends ``swift-url`` (plus Juju's own
address keys); glance uses the catalog, not that URL. There is no memcached on this machine,
so the proxy pipeline has no ``cache`` filter (authtoken then caches tokens in-process).
Servers run with ``-v`` (there is no ``/dev/log``: logs go to each server's output file).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import pwd
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.functional import realstack

logger = logging.getLogger(__name__)

SWIFT_PACKAGES: tuple[str, ...] = (
    "swift",
    "swift-proxy",
    "swift-object",
    "swift-container",
    "swift-account",
    "python3-swiftclient",
)
SWIFT_CONF = Path("/etc/swift/swift.conf")
RING_BUILDER = "/usr/bin/swift-ring-builder"
# swift-ring-builder <kind>.builder create <part_power> 1 0; add r1z1-<ip>:<port>/d1 100;
# rebalance -- for every kind, in one interpreter (argv: workdir ip part_power kind=port...).
_RING_SCRIPT = """
import sys
from swift.common.ring import RingBuilder
workdir, ip, part_power = sys.argv[1], sys.argv[2], int(sys.argv[3])
for spec in sys.argv[4:]:
    kind, port = spec.split("=")
    builder = RingBuilder(part_power, 1, 0)
    builder.add_dev({"region": 1, "zone": 1, "ip": ip, "port": int(port), "replication_ip": ip,
                     "replication_port": int(port), "device": "d1", "weight": 100.0, "meta": ""})
    builder.rebalance()
    builder.save(f"{workdir}/{kind}.builder")
    builder.get_ring().save(f"{workdir}/{kind}.ring.gz")
    print(kind, builder.parts, "partitions,", builder.replicas, "replica,", builder.devs)
"""
SERVERS = ("account", "container", "object")
OPERATOR_ROLES = "Member,Admin"  # charm-swift-proxy's `operator-roles` default

_SWIFT_CONF = """\
# written by tests/functional/swiftstack.py (no swift.conf was installed); removed at stop
[swift-hash]
swift_hash_path_suffix = {suffix}
swift_hash_path_prefix = {prefix}

[storage-policy:0]
name = Policy-0
default = yes
"""

_STORAGE_SERVER_CONF = """\
# written by tests/functional/swiftstack.py
[DEFAULT]
bind_ip = {host}
bind_port = {port}
workers = 0
user = swift
swift_dir = {workdir}
devices = {workdir}/devices
mount_check = false
log_name = {kind}-server
log_level = INFO

[pipeline:main]
pipeline = healthcheck recon {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:recon]
use = egg:swift#recon
recon_cache_path = {workdir}/cache
"""

_PROXY_CONF = """\
# written by tests/functional/swiftstack.py, after charm-swift-proxy's proxy-server.conf
[DEFAULT]
bind_ip = {host}
bind_port = {port}
workers = {workers}
user = swift
swift_dir = {workdir}
log_name = proxy-server
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk slo dlo \
authtoken keystoneauth copy container-quotas account-quotas symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true
node_timeout = 60
recoverable_node_timeout = 30

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:copy]
use = egg:swift#copy

[filter:container-quotas]
use = egg:swift#container_quotas

[filter:account-quotas]
use = egg:swift#account_quotas

[filter:symlink]
use = egg:swift#symlink

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = {operator_roles}

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = {keystone_url}
auth_url = {keystone_url}
auth_type = password
username = {username}
password = {password}
project_domain_name = {domain}
user_domain_name = {domain}
project_name = {project}
delay_auth_decision = true
"""


class SwiftError(realstack.RealStackError):
    """The test Swift could not be set up or answered unexpectedly."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, names in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in (*dirs, *names):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


class SwiftStack:
    """Account/container/object servers and a keystone-authenticated proxy on 127.0.0.1."""

    def __init__(
        self,
        keystone: realstack.Keystone,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        proxy_port: int = 8080,
        ports: dict[str, int] | None = None,
        part_power: int = 8,
        proxy_workers: int = 1,
    ) -> None:
        """Describe the cluster; nothing runs until :meth:`start`.

        Args:
            keystone: the running keystone the proxy validates tokens with.
            workdir: directory for rings, configs, device and logs; default: a fresh one under
                :func:`realstack.base_dir`, removed at stop unless ``REALSTACK_KEEP_DATA``.
            host: bind address of every server (and the ring's device address).
            proxy_port: the proxy's port (swift-proxy's `bind-port` default 8080).
            ports: account/container/object server ports (defaults 6202/6201/6200).
            part_power: ring partition power (small: one device).
            proxy_workers: proxy worker processes (0: serve in the parent process).
        """
        self.keystone = keystone
        self.host = host
        self.proxy_port = proxy_port
        self.ports = {"account": 6202, "container": 6201, "object": 6200, **(ports or {})}
        self.part_power = part_power
        self.proxy_workers = proxy_workers
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = self._given_workdir
        self.processes: dict[str, realstack.ManagedProcess] = {}
        self.timings: dict[str, float] = {}
        self.endpoints: dict[str, str] = {}
        self._wrote_swift_conf = False

    # basics ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The proxy's base URL (what swift-proxy sends as ``swift-url``)."""
        return f"http://{self.host}:{self.proxy_port}"

    def _path(self, name: str) -> Path:
        if self.workdir is None:
            raise SwiftError("swift is not started")
        return self.workdir / name

    def is_running(self) -> bool:
        """Whether all four servers run."""
        return len(self.processes) == 4 and all(p.alive() for p in self.processes.values())

    def relation_data(self) -> dict[str, str]:
        """What a swift-proxy unit has in its `object-store` bag (with Juju's own keys)."""
        return {
            "swift-url": self.url,
            "private-address": self.host,
            "ingress-address": self.host,
            "egress-subnets": f"{self.host}/32",
        }

    def relate(self, harness: Any, endpoint: str = "object-store", app: str = "swift-proxy"
               ) -> int:
        """Relate glance's `object-store` to a swift-proxy unit (joined, then its data).

        Args:
            harness: the glance charm's ops.testing Harness.
            endpoint: glance's endpoint.
            app: the swift-proxy application name.

        Returns:
            The relation id.
        """
        rel = int(harness.add_relation(endpoint, app))
        harness.add_relation_unit(rel, f"{app}/0")
        harness.update_relation_data(rel, f"{app}/0", self.relation_data())
        return rel

    # setup -----------------------------------------------------------------------------------
    def _check_ports(self) -> None:
        wanted = [self.proxy_port, *self.ports.values()]
        busy = [port for port in wanted if not _port_free(self.host, port)]
        if busy:
            raise SwiftError(
                f"swift ports {busy} on {self.host} are in use (see `ss -ltnp`; a leftover "
                "swift server? `pgrep -a swift`)"
            )

    def _build_rings(self) -> None:
        """One ring per server kind: one replica, one directory device on ``host``.

        Built with swift's own ``RingBuilder`` (what ``swift-ring-builder create/add/
        rebalance`` run) in one ``/usr/bin/python3`` process instead of nine CLI calls.
        """
        started = time.monotonic()
        specs = [f"{kind}={self.ports[kind]}" for kind in SERVERS]
        argv = ["/usr/bin/python3", "-c", _RING_SCRIPT, str(self.workdir), self.host,
                str(self.part_power), *specs]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                                env=realstack.system_env())
        self._path("log/rings.log").write_text(result.stdout + result.stderr)
        missing = [kind for kind in SERVERS if not self._path(f"{kind}.ring.gz").exists()]
        if result.returncode != 0 or missing:
            raise SwiftError(f"building the rings failed (missing: {missing}): "
                             f"{(result.stdout + result.stderr)[-1500:]}")
        self.timings["rings_s"] = time.monotonic() - started

    def _ensure_swift_conf(self) -> None:
        if SWIFT_CONF.exists():
            return
        SWIFT_CONF.parent.mkdir(parents=True, exist_ok=True)
        SWIFT_CONF.write_text(
            _SWIFT_CONF.format(suffix=secrets.token_hex(8), prefix=secrets.token_hex(8))
        )
        SWIFT_CONF.chmod(0o644)
        self._wrote_swift_conf = True

    def _register_in_keystone(self) -> realstack.ServiceUser:
        """What the keystone charm does for swift-proxy's identity-service data."""
        started = time.monotonic()
        user = self.keystone.create_service_user("swift")
        public = f"{self.url}/v1/AUTH_$(tenant_id)s"
        self.endpoints = self.keystone.register_endpoints(
            "swift", "object-store", self.keystone.region, public, self.url, public
        )
        self.timings["keystone_s"] = time.monotonic() - started
        return user

    def _write_configs(self, user: realstack.ServiceUser) -> None:
        for kind in SERVERS:
            self._path(f"{kind}-server.conf").write_text(
                _STORAGE_SERVER_CONF.format(
                    host=self.host, port=self.ports[kind], workdir=self.workdir, kind=kind
                )
            )
        proxy = self._path("proxy-server.conf")
        proxy.write_text(
            _PROXY_CONF.format(
                host=self.host,
                port=self.proxy_port,
                workers=self.proxy_workers,
                workdir=self.workdir,
                operator_roles=OPERATOR_ROLES,
                keystone_url=self.keystone.url,
                username=user.service,
                password=user.password,
                domain=user.domain,
                project=user.project,
            )
        )
        proxy.chmod(0o640)

    def _healthy(self, port: int) -> bool:
        try:
            resp = realstack.http_request(
                "GET", f"http://{self.host}:{port}/healthcheck", timeout=2.0, expect=(200,)
            )
        except (OSError, http.client.HTTPException, realstack.HttpError):
            return False
        return resp.body.strip() == b"OK"

    def start(self, timeout: float = 60.0) -> float:
        """Build rings and configs, register swift in keystone, start the servers.

        Idempotent: returns 0.0 while this object's servers run.

        Args:
            timeout: seconds for every server to answer ``/healthcheck``.

        Returns:
            Seconds spent (also ``timings['swift_up_s']``).
        """
        if self.is_running():
            return 0.0
        started = time.monotonic()
        if not Path(RING_BUILDER).exists():
            raise SwiftError(f"swift is not installed: install {' '.join(SWIFT_PACKAGES)}")
        self._check_ports()
        realstack.register_cleanup(self.stop)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="swift-", dir=realstack.base_dir()))
        for sub in ("devices/d1", "cache", "log"):
            self._path(sub).mkdir(parents=True, exist_ok=True)
        self._ensure_swift_conf()
        self._build_rings()
        self._write_configs(self._register_in_keystone())
        _chown_tree(self.workdir, "swift")
        self.workdir.chmod(0o750)
        for kind in (*SERVERS, "proxy"):
            name = f"swift-{kind}-server"
            self.processes[name] = realstack.start_process(
                name,
                [f"/usr/bin/{name}", str(self._path(f"{kind}-server.conf")), "-v"],
                log_path=self._path(f"log/{kind}-server.log"),
                cwd=self.workdir,
            )
        ports = {**{f"swift-{k}-server": p for k, p in self.ports.items()},
                 "swift-proxy-server": self.proxy_port}
        deadline = time.monotonic() + timeout
        for name, port in ports.items():
            while not self._healthy(port):
                dead = [n for n, p in self.processes.items() if not p.alive()]
                if dead or time.monotonic() > deadline:
                    why = f"{', '.join(dead)} exited" if dead else f"not after {timeout:.0f}s"
                    raise SwiftError(f"{name} /healthcheck: {why}\n{self.diagnostics()}")
                time.sleep(0.1)
        self.timings["swift_up_s"] = time.monotonic() - started
        return self.timings["swift_up_s"]

    def stop(self, *, cleanup: bool | None = None) -> None:
        """Stop the servers by PID (proxy first) and optionally remove the work directory.

        Safe to call more than once. A swift.conf this object wrote is removed.

        Args:
            cleanup: remove the work directory; default: only a fresh one this object made,
                unless ``REALSTACK_KEEP_DATA`` is set.
        """
        for name in ("swift-proxy-server", *(f"swift-{k}-server" for k in SERVERS)):
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.stop(20.0)
        if self._wrote_swift_conf:
            SWIFT_CONF.unlink(missing_ok=True)
            self._wrote_swift_conf = False
        self.workdir = realstack.release_workdir(self.workdir, self._given_workdir, cleanup)

    def diagnostics(self, lines: int = 25) -> str:
        """Tails of the server logs, redacted, for failure messages.

        Args:
            lines: lines per log.

        Returns:
            The text.
        """
        if self.workdir is None:
            return "(swift not started)"
        return realstack.log_tails(sorted(self._path("log").glob("*.log")), lines)

    # the Swift API, as a given keystone user ---------------------------------------------------
    def storage(self, service: str = "glance") -> tuple[str, str]:
        """Token and storage URL of a service account, from a real token's catalog.

        Args:
            service: a service whose account keystone has (glance's store uses its own).

        Returns:
            (token, storage URL ``.../v1/AUTH_<project id>``).
        """
        info = self.keystone.service_token(service)
        return info.token, realstack.find_endpoint(info.catalog, "object-store", "public")

    def list_objects(self, container: str, service: str = "glance") -> list[dict[str, Any]]:
        """List a container's objects (``GET <storage>/<container>?format=json``).

        Args:
            container: container name.
            service: whose account.

        Returns:
            The objects (name, bytes, hash...); empty if the container does not exist.
        """
        token, storage = self.storage(service)
        resp = realstack.http_request(
            "GET",
            f"{storage}/{urllib.parse.quote(container)}?format=json",
            headers={"X-Auth-Token": token},
            expect=(200, 204, 404),
        )
        return list(resp.json() or []) if resp.status == 200 else []

    def head_object(self, container: str, name: str, service: str = "glance"
                    ) -> dict[str, str] | None:
        """HEAD an object.

        Args:
            container: container name.
            name: object name.
            service: whose account.

        Returns:
            Its headers (lower-case names), or None when it does not exist.
        """
        token, storage = self.storage(service)
        url = f"{storage}/{urllib.parse.quote(container)}/{urllib.parse.quote(name)}"
        resp = realstack.http_request("HEAD", url, headers={"X-Auth-Token": token},
                                      expect=(200, 204, 404))
        return resp.headers if resp.status != 404 else None

    def object_sha256(self, container: str, name: str, service: str = "glance"
                      ) -> tuple[int, str]:
        """GET an object straight from the proxy (a DLO/SLO manifest yields all its segments).

        Args:
            container: container name.
            name: object name.
            service: whose account.

        Returns:
            (bytes received, hex sha256 of them).
        """
        token, storage = self.storage(service)
        parts = urllib.parse.urlsplit(
            f"{storage}/{urllib.parse.quote(container)}/{urllib.parse.quote(name)}"
        )
        conn = http.client.HTTPConnection(parts.hostname or self.host, parts.port, timeout=120)
        digest = hashlib.sha256()
        total = 0
        try:
            conn.request("GET", parts.path, headers={"X-Auth-Token": token,
                                                     "Connection": "close"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise realstack.HttpError("GET", parts.path, resp.status,
                                          resp.read().decode("utf-8", "replace"))
            while chunk := resp.read(realstack.CHUNK_SIZE):
                digest.update(chunk)
                total += len(chunk)
        finally:
            conn.close()
        return total, digest.hexdigest()

    def stat_account(self, service: str = "glance") -> dict[str, str]:
        """HEAD the account (proves the proxy accepts the token and keystoneauth the roles).

        Args:
            service: whose account.

        Returns:
            The account headers.
        """
        token, storage = self.storage(service)
        return realstack.http_request(
            "HEAD", storage, headers={"X-Auth-Token": token}, expect=(200, 204)
        ).headers

    def swiftclient_stat(self, container: str, service: str = "glance") -> str:
        """``swift stat <container>`` with python3-swiftclient (keystone v3 password auth).

        The password goes through the environment (``OS_PASSWORD``), never argv.

        Args:
            container: container name.
            service: whose account.

        Returns:
            The CLI output.
        """
        user = self.keystone.service_users[service]
        env = realstack.system_env({
            "OS_AUTH_URL": self.keystone.url,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": user.service,
            "OS_PASSWORD": user.password,
            "OS_PROJECT_NAME": user.project,
            "OS_USER_DOMAIN_NAME": user.domain,
            "OS_PROJECT_DOMAIN_NAME": user.domain,
        })
        argv: Sequence[str] = ["/usr/bin/swift", "stat", container]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60,
                                check=False)
        if result.returncode != 0:
            raise SwiftError(f"swift stat {container} exited {result.returncode}: "
                             f"{realstack.redact(result.stderr)[-1000:]}")
        return result.stdout

"""glance-api workload: packages, rendered configuration, database migration, service."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from glance_charm.domain import distro
from glance_charm.domain.exceptions import WorkloadError
from glance_charm.domain.policy import PACKAGE_FILES, location_policy
from glance_charm.workload import files
from glance_charm.workload.rendering import render_template
from glance_charm.workload.service import ServiceError, ServiceManager, system_env

if TYPE_CHECKING:
    from glance_charm.domain.context import WorkloadContext

logger = logging.getLogger(__name__)

DB_CA_PATH = "/etc/glance/db-client.ca"
RABBIT_CA_PATH = "/etc/glance/rabbit-client-ca.pem"
# Interoperable image import: glance's own defaults (Zed to Caracal), stated so the
# image-conversion and inject_image_metadata plugins always have glance-direct to run on.
IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")
# audit-middleware: the classic charm's paste pipeline and CADF map (GLANCE_API_PASTE,
# GLANCE_AUDIT_MAP in openstack/charm-glance hooks/glance_utils.py)
PASTE_PATH = "/etc/glance/api-paste.ini"
AUDIT_MAP_PATH = "/etc/glance/api_audit_map.conf"


def _apt() -> ModuleType:
    """charmlibs.apt, imported only by the hooks that install or upgrade packages."""
    from charmlibs import apt

    return apt


def self_reference_url(ctx: WorkloadContext) -> str | None:
    """How other units' glance-api reach this one directly (None: no own address).

    glance-direct stages the data on the unit that got the upload (local staging); with
    `worker_self_reference_url` set, the unit that gets the import request proxies it to
    that one (glance's distributed import), so imports work behind the VIP.
    """
    if ctx.bind_host is None:
        return None
    host = f"[{ctx.bind_host}]" if ":" in ctx.bind_host else ctx.bind_host
    return f"http://{host}:{ctx.bind_port}"


def merge_sections(
    conf: str, sections: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
) -> str:
    """Merge storage-backend subordinate sections into rendered glance-api.conf text.

    The classic charm appends them as sections of their own after its own (templates/
    parts/section-storage); oslo.config reads a repeated section as one and the later value
    of a key wins, so the subordinate's value wins. The same result is written here with
    each section and key once: a key the file already has in that section gets the
    subordinate's value (logged), other keys are added at the section's end, sections the
    file lacks are appended; of a key given twice the last value counts.
    """
    if not sections:
        return conf
    lines = conf.splitlines(keepends=True)
    for section, pairs in sections:
        wanted = dict(pairs)  # the last value of a repeated key, as oslo.config reads it
        header = f"[{section}]\n"
        if header not in lines:
            if lines and lines[-1].strip():
                lines.append("\n")
            lines.append(header)
        start = lines.index(header) + 1
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")),
                   len(lines))
        while end > start and not lines[end - 1].strip():
            end -= 1
        for index in range(start, end):
            key = lines[index].split("=", 1)[0].strip()
            if "=" in lines[index] and key in wanted:
                logger.warning("storage-backend: [%s] %s set by the subordinate", section, key)
                lines[index] = f"{key} = {wanted.pop(key)}\n"
        lines[end:end] = [f"{key} = {value}\n" for key, value in wanted.items()]
    return "".join(lines)


@dataclass
class GlancePaths(files.RootedPaths):
    """Where glance's files live, under a root that tests may move."""

    @property
    def api_conf(self) -> Path:
        """glance-api.conf."""
        return self("/etc/glance/glance-api.conf")

    @property
    def paste(self) -> Path:
        """The paste pipeline with the keystonemiddleware audit filter (audit-middleware)."""
        return self(PASTE_PATH)

    @property
    def audit_map(self) -> Path:
        """Keystonemiddleware's CADF map of glance's API paths (audit-middleware)."""
        return self(AUDIT_MAP_PATH)

    @property
    def policy(self) -> Path:
        """policy.yaml: restrict-image-location-operations' rules."""
        return self("/etc/glance/policy.yaml")

    @property
    def policy_d(self) -> Path:
        """policy.d: the policyd-override files (oslo.policy reads them after policy.yaml)."""
        return self("/etc/glance/policy.d")

    @property
    def db_ca(self) -> Path:
        """CA the database provider sent, for TLS to MySQL."""
        return self(DB_CA_PATH)

    @property
    def rabbit_ca(self) -> Path:
        """CA the RabbitMQ provider sent, for TLS to the broker."""
        return self(RABBIT_CA_PATH)

    @property
    def ceph_conf(self) -> Path:
        """ceph.conf for the rbd store."""
        return self(distro.CEPH_CONF)

    def ceph_keyring(self, user: str) -> Path:
        """Keyring of cephx client `client.<user>`."""
        return self(f"/etc/ceph/ceph.client.{user}.keyring")

    @property
    def swift_conf(self) -> Path:
        """Swift reference file: the credentials of the swift store."""
        return self(distro.SWIFT_CONF)

    @property
    def restart_marker(self) -> Path:
        """Exists while written config has not yet been picked up by a restart."""
        return self("/var/lib/charm/glance/restart-pending")

    @property
    def healthcheck_disable(self) -> Path:
        """While it exists, /healthcheck answers 503 (every haproxy drains this unit)."""
        return self(distro.HEALTHCHECK_DISABLE)


@dataclass
class GlanceWorkload:
    """Install, configure and run glance-api. Takes a WorkloadContext, never `ops`."""

    paths: GlancePaths = field(default_factory=GlancePaths)
    services: ServiceManager = field(default_factory=ServiceManager)
    user: str = distro.GLANCE_USER
    group: str = distro.GLANCE_GROUP
    config_owner: str = "root"
    # where /healthcheck is polled: glance-api's bind address (set when configured)
    health_host: str = "127.0.0.1"

    # ---- packages -------------------------------------------------------------------------
    def installed_version(self, package: str = "glance-api") -> str | None:
        """Installed version of a package (glance-api), None when it is not installed."""
        return distro.dpkg_versions((package,), str(self.paths(distro.DPKG_STATUS)))[package]

    def workload_version(self) -> str | None:
        """The version `juju status` shows: glance-common's upstream version (`25.1.0`).

        The classic charm's (hooks/glance_utils.py VERSION_PACKAGE, charmhelpers
        os_application_version_set); glance-api's when glance-common is not installed
        (both come from the one source package).
        """
        version = (self.installed_version(distro.VERSION_PACKAGE)
                   or self.installed_version(distro.GLANCE_SERVICE))
        return distro.upstream_version(version) if version else None

    def package_stamp(self) -> int | None:
        """When dpkg's database last changed (ns); None without one. One stat, no process."""
        try:
            return self.paths(distro.DPKG_STATUS).stat().st_mtime_ns
        except OSError:
            return None

    def packages_installed(self, packages: tuple[str, ...]) -> bool:
        """Whether every one of the packages is installed."""
        return all(self.installed_version(package) is not None for package in packages)

    def install_packages(self, packages: tuple[str, ...]) -> None:
        """Install packages from the archives already configured (e.g. the Ceph clients)."""
        apt = _apt()

        try:
            self._apt_install(packages)
        except (apt.Error, subprocess.CalledProcessError, OSError) as err:
            logger.error("installing %s failed: %s", " ".join(packages), err)
            raise WorkloadError(f"Installing {packages[0]} failed; will retry") from err

    def install(self, origin: str) -> None:
        """Add the archive `openstack-origin` names (if any) and install glance-api."""
        apt = _apt()

        try:
            self._add_archive(origin)
            apt.add_package(list(distro.GLANCE_PACKAGES), update_cache=True)
        except (apt.Error, subprocess.CalledProcessError, ValueError, OSError) as err:
            logger.error("package installation failed: %s", err)
            raise WorkloadError("Package installation failed; will retry") from err

    def upgrade(self, origin: str) -> None:
        """Switch to the archive `origin` names and upgrade glance's packages to its release."""
        apt = _apt()

        try:
            self._add_archive(origin)
            apt.update()
            for package in distro.GLANCE_PACKAGES:
                apt.DebianPackage.from_apt_cache(package).ensure(apt.PackageState.Latest)
        except (apt.Error, subprocess.CalledProcessError, ValueError, OSError) as err:
            logger.error("package upgrade failed: %s", err)
            raise WorkloadError("Package upgrade failed; will retry") from err

    def _add_archive(self, origin: str) -> None:
        apt = _apt()

        archive = distro.archive_for_origin(origin)
        if archive is None:
            return
        if archive.keyring_package:
            apt.add_package(archive.keyring_package, update_cache=True)
        apt.RepositoryMapping().add(
            apt.DebianRepository.from_repo_line(archive.line, write_file=False)
        )

    def _apt_install(self, packages: tuple[str, ...]) -> None:
        apt = _apt()

        apt.add_package(list(packages), update_cache=True)

    # ---- configuration --------------------------------------------------------------------
    def render(self, ctx: WorkloadContext, version: str | None) -> list[files.FileSpec]:
        """Render every glance file for this context (nothing is written here)."""
        profile = distro.release_profile(distro.release_for_version(version or ""))
        ca_path = DB_CA_PATH if ctx.database.ssl_ca else None
        conf = render_template(
            "glance-api.conf.j2",
            ctx=ctx,
            profile=profile,
            bind_host=ctx.bind_host or self._any_address(ctx),
            database_url=ctx.database.connection_url(ca_path),
            # classic ExternalS3Context: never with S3 (its locations hold the S3 keys)
            expose_locations=(ctx.config.expose_image_locations and ctx.default_store == "ceph"
                              and "s3" not in ctx.store_names),
            lock_path="/var/lib/glance/lock",
            staging_dir="/var/lib/glance/staging/",
            tasks_dir="/var/lib/glance/tasks_work_dir/",
            rabbit_ca_path=RABBIT_CA_PATH,
            paste_path=PASTE_PATH,
            import_methods=IMPORT_METHODS,
            self_reference_url=self_reference_url(ctx),
        )
        conf = merge_sections(conf, ctx.subordinate_sections)
        specs = [self._spec(self.paths.api_conf, conf.encode())]
        specs.append(self._spec(
            self.paths.policy,
            location_policy(ctx.config.restrict_image_location_operations).encode(),
        ))
        for name, text in ctx.policy_overrides or ():
            specs.append(self._spec(self.paths.policy_d / name, text.encode()))
        if ctx.config.audit_middleware:
            paste = render_template("api-paste.ini.j2", audit_map_path=AUDIT_MAP_PATH,
                                    healthcheck_disable=distro.HEALTHCHECK_DISABLE)
            specs.append(self._spec(self.paths.paste, paste.encode(), 0o644))
            specs.append(self._spec(
                self.paths.audit_map, render_template("api_audit_map.conf.j2").encode(), 0o644
            ))
        if ctx.database.ssl_ca:
            specs.append(self._spec(self.paths.db_ca, ctx.database.ssl_ca.encode(), 0o644))
        if ctx.messaging is not None and ctx.messaging.ssl_ca:
            specs.append(self._spec(self.paths.rabbit_ca, ctx.messaging.ssl_ca.encode(), 0o644))
        return specs + self.render_store_files(ctx)

    @staticmethod
    def _any_address(ctx: WorkloadContext) -> str:
        return "::" if ctx.config.prefer_ipv6 else "0.0.0.0"  # noqa: S104

    def render_store_files(self, ctx: WorkloadContext) -> list[files.FileSpec]:
        """Files of the optional stores: Ceph's (rbd enabled) and Swift's (swift enabled)."""
        specs = []
        if ctx.ceph is not None and "ceph" in ctx.store_names:
            values = {"ceph": ctx.ceph, "unit_name": ctx.unit_name}
            specs.append(self._spec(
                self.paths.ceph_conf, render_template("ceph.conf.j2", **values).encode(), 0o644
            ))
            specs.append(self._spec(
                self.paths.ceph_keyring(ctx.ceph.user),
                render_template("ceph.keyring.j2", **values).encode(),
            ))
        if "swift" in ctx.store_names:
            specs.append(self._spec(
                self.paths.swift_conf, render_template("glance-swift.conf.j2", ctx=ctx).encode()
            ))
        return specs

    def _spec(self, path: Path, content: bytes, mode: int = 0o640) -> files.FileSpec:
        return files.FileSpec(path, content, mode, self.config_owner, self.group)

    def managed_paths(self, ctx: WorkloadContext) -> list[Path]:
        """Every file this workload may write (so obsolete ones can be removed)."""
        return [
            self.paths.api_conf, self.paths.db_ca, self.paths.rabbit_ca, self.paths.paste,
            self.paths.audit_map, self.paths.ceph_conf,
            self.paths.ceph_keyring(ctx.app_name), self.paths.swift_conf, self.paths.policy,
            *self.policy_d_files(),
        ]

    def policy_d_files(self) -> list[Path]:
        """Files in policy.d the charm manages: all but the package's (and temp files).

        As charmhelpers `clean_policyd_dir_for`, overrides the zip no longer holds (or all
        of them, once use-policyd-override is off) are removed.
        """
        if not self.paths.policy_d.is_dir():
            return []
        return sorted(path for path in self.paths.policy_d.iterdir()
                      if path.is_file() and path.name not in PACKAGE_FILES
                      and not path.name.startswith("."))

    def ensure_dirs(self, ctx: WorkloadContext) -> None:
        """Create the store and working directories, owned by glance."""
        for absolute in (
            ctx.config.filesystem_store_datadir, "/var/lib/glance/lock",
            "/var/lib/glance/staging/", "/var/lib/glance/tasks_work_dir/",
        ):
            files.ensure_dir(self.paths(absolute), 0o750, self.user, self.group)

    def configure(self, ctx: WorkloadContext, version: str | None) -> bool:
        """Write changed files, remove obsolete ones; return whether glance-api must restart.

        Everything is rendered before the first write, so a rendering error writes nothing.
        A marker is set before writing and cleared after the restart, so a hook that dies
        in between still restarts glance-api next time.
        """
        specs = self.render(ctx, version)
        self.health_host = ctx.bind_host or ("::1" if ctx.config.prefer_ipv6 else "127.0.0.1")
        self.ensure_dirs(ctx)
        wanted = {spec.path for spec in specs}
        pending = [spec for spec in specs if not files.is_current(spec)]
        obsolete = [p for p in self.managed_paths(ctx) if p not in wanted and p.exists()]
        restart = any(self.needs_restart(path) for path in [s.path for s in pending] + obsolete)
        if restart:
            self.mark_restart_needed()
        for spec in pending:
            files.write(spec)
            logger.info("wrote %s", spec.path)
        for path in obsolete:
            files.remove(path)
            logger.info("removed %s", path)
        return restart

    def needs_restart(self, path: Path) -> bool:
        """Whether glance-api must restart to see a change of this file.

        librados reads ceph.conf and the keyring on every connection the rbd store opens,
        so monitors coming and going or a new key take effect without a restart. policy.yaml
        and policy.d restart glance-api, as the classic charm's restart map and policyd
        restart_handler do: oslo.policy re-reads a changed file, but glance's Enforcer
        merges it into the rules it has (glance/api/policy.py, `overwrite=False`), so a rule
        removed from the file (restrict-image-location-operations turned off, an override
        dropped) would stay enforced until a restart (seen on Epoxy, tests/functional/
        test_stores_real.py).
        """
        return path.parent != self.paths.ceph_conf.parent

    def mark_restart_needed(self) -> None:
        """Remember that glance-api must restart to pick up new files."""
        marker = self.paths.restart_marker
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker.touch()

    def restart_needed(self) -> bool:
        """Whether written config still waits for a restart."""
        return self.paths.restart_marker.exists()

    def set_draining(self, draining: bool) -> None:
        """Fail (or stop failing) /healthcheck so load balancers send no new requests."""
        flag = self.paths.healthcheck_disable
        if draining:
            flag.parent.mkdir(parents=True, exist_ok=True)
            flag.touch(mode=0o644)
        else:
            flag.unlink(missing_ok=True)

    def draining(self) -> bool:
        """Whether /healthcheck is failed on purpose (a drain not yet ended)."""
        return self.paths.healthcheck_disable.exists()

    def requests_running(self, port: int) -> int:
        """Established TCP connections to glance-api's port: the requests it is running.

        Every unit's haproxy closes its server connection after each response (``option
        http-server-close``), so this counts what all of them (and any direct client) have
        in flight, which no single haproxy's stats socket shows.
        """
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                local, state = fields[1], fields[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # ESTABLISHED
                    count += 1
        return count

    def wait_idle(self, port: int, timeout: float = 600.0) -> bool:
        """Wait until glance-api runs no request (uploads sent by any unit's haproxy).

        Two quiet reads 0.5 s apart: a health check's connection lasts milliseconds.

        Args:
            port: glance-api's bind port.
            timeout: seconds to wait at most (a long upload holds the lock that long).

        Returns:
            Whether it went idle before the timeout.
        """
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            quiet = quiet + 1 if self.requests_running(port) == 0 else 0
            if quiet >= 2:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    # ---- database -------------------------------------------------------------------------
    def db_sync(self) -> None:
        """Run `glance-manage db_sync` as the glance user (migrations are idempotent)."""
        cmd = ["runuser", "-u", self.user, "--", "glance-manage", "--config-file",
               "/etc/glance/glance-api.conf", "db_sync"]
        logger.info("running glance-manage db_sync")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False,
                                env=system_env())
        if result.returncode != 0:
            # glance-manage errors can quote the connection URL: log only the exit code.
            logger.error("glance-manage db_sync failed with exit code %s", result.returncode)
            raise WorkloadError("Database migration (glance-manage db_sync) failed; will retry")

    # ---- service --------------------------------------------------------------------------
    def ensure_running(self, restart: bool) -> bool:
        """Restart when config changed (or a restart is still owed), start when stopped.

        Returns whether the service was (re)started.
        """
        try:
            if restart or (self.restart_needed() and not self.services.is_running(
                    distro.GLANCE_SERVICE)):
                self.services.restart(distro.GLANCE_SERVICE)
                self.paths.restart_marker.unlink(missing_ok=True)
                return True
            if not self.services.is_running(distro.GLANCE_SERVICE):
                self.services.start(distro.GLANCE_SERVICE)
                return True
        except ServiceError as err:
            raise WorkloadError("glance-api failed to start; see its log") from err
        return False

    def wait_healthy(self, port: int, timeout: float = 120.0) -> bool:
        """Poll /healthcheck until the API answers (after a restart); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy(port):
                return True
            time.sleep(1.0)
        return False

    def stop(self) -> None:
        """Stop glance-api."""
        self.services.stop(distro.GLANCE_SERVICE)

    def pause(self) -> None:
        """Stop glance-api and keep it from starting at boot (until resume)."""
        self.services.pause(distro.GLANCE_SERVICE)

    def resume(self) -> None:
        """Let glance-api start at boot again; the reconcile that follows starts it."""
        self.services.enable_boot(distro.GLANCE_SERVICE)

    def is_running(self) -> bool:
        """Whether glance-api runs."""
        return self.services.is_running(distro.GLANCE_SERVICE)

    def healthy(self, port: int, timeout: float = 2.0) -> bool:
        """Whether the API answers /healthcheck on its bind address (loopback by default)."""
        import urllib.error  # http.client and email: ~10 ms, only for hooks that poll
        import urllib.request

        host = f"[{self.health_host}]" if ":" in self.health_host else self.health_host
        try:
            with urllib.request.urlopen(
                f"http://{host}:{port}/healthcheck", timeout=timeout
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

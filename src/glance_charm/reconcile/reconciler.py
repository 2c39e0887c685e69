"""One reconcile of the unit: install -> frontend -> publish -> context -> apply -> ready.

Every hook that reconciles and the openstack-upgrade action run `Reconciler.run`; its
errors (GlanceCharmError) are what collect-status turns into the unit's status.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import ops

from glance_charm.domain import distro, observability
from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.exceptions import (
    BlockedError,
    GlanceCharmError,
    RelationNotReadyError,
    WaitingError,
    WorkloadError,
)
from glance_charm.domain.ports import BACKEND_PORT, FRONTEND_PORT, METRICS_ADDRESS, METRICS_PORT
from glance_charm.domain.stores import CephPool, ceph_request
from glance_charm.reconcile.frontend import Frontend
from glance_charm.reconcile.rolling_restart import rolling_restart
from glance_charm.relations import (
    amqp,
    ceph,
    cos_agent,
    ha,
    identity,
    image_service,
    mysql_client,
    nrpe,
    peers,
    shared_db,
)
from glance_charm.state.context import (
    GlanceContext,
    Remembered,
    cinder_enabled,
    lacks_shared_store,
    store_relations,
)
from glance_charm.state.network import (
    address_in_network,
    bind_address,
    dns_ha_hostnames,
    endpoint_urls,
    frontend_addresses,
    listen_address,
)
from glance_charm.workload.classic_frontend import ClassicFrontend
from glance_charm.workload.glance import GlanceWorkload
from glance_charm.workload.haproxy import HaproxyWorkload
from glance_charm.workload.memcached import MemcachedWorkload, ipv6_disabled
from glance_charm.workload.nrpe import NrpeWorkload, glance_checks, monitors
from glance_charm.workload.service import ServiceError
from glance_charm.workload.tls import TLSWorkload

logger = logging.getLogger(__name__)

DB_NOT_GRANTED = "Waiting for the database to grant this unit access (allowed_units)"


class Reconciler:
    """Drives the workload towards config + relations.

    Args:
        charm: the charm (model, unit, app, config).
        stored: the charm's StoredState, which this class reads and records into.
        workload: glance-api.
        haproxy: haproxy.
        tls: builds the TLS workload when first needed.
    """

    def __init__(self, charm: ops.CharmBase, stored: Any, workload: GlanceWorkload,
                 haproxy: HaproxyWorkload, tls: Callable[[], TLSWorkload]) -> None:
        self._charm = charm
        self._stored = stored
        self._workload = workload
        self._haproxy = haproxy
        self.frontend = Frontend(charm, stored, haproxy, tls)
        self.nrpe = NrpeWorkload(paths=workload.paths, services=workload.services)
        self.classic_frontend = ClassicFrontend(paths=workload.paths, services=workload.services)
        self.memcached = MemcachedWorkload(paths=workload.paths, services=workload.services)
        self.applied = False  # the last run wrote and applied a complete context

    # ---- the one path ---------------------------------------------------------------------
    def run(self, upgrade_now: bool = False) -> str | None:
        """Reconcile once; return the version upgraded to (None: no upgrade ran).

        Args:
            upgrade_now: upgrade to `openstack-origin` even when action-managed-upgrade
                is true (the openstack-upgrade action).

        Raises:
            GlanceCharmError: what keeps the unit from being active (collect-status shows
                it); the last good configuration keeps running.
        """
        self.applied = False
        config = self.config()
        version = self._ensure_installed(config)
        self._retire_classic_frontend()
        upgraded: str | None = None
        if self.origin_changed(config) and (upgrade_now or not config.action_managed_upgrade):
            version = upgraded = self._upgrade(config)
        frontend_problem: GlanceCharmError | None = None
        try:  # before publishing: the endpoints' scheme is what haproxy now serves
            self.frontend.configure(config)
        except GlanceCharmError as err:  # the requests go out all the same
            frontend_problem = err
        self._publish_requests(config)
        if frontend_problem is not None:
            raise frontend_problem
        nrpe_problem = self._configure_nrpe(config)
        cos_problem = self._configure_cos()
        self._ensure_store_packages()
        self._ensure_feature_packages(config)
        memcache_url = self._ensure_token_cache()
        try:
            ctx = GlanceContext.from_charm(self._charm, config, self.remembered(),
                                           tls=self._stored.tls_active)
        except (RelationNotReadyError, BlockedError, WaitingError):
            self._withdraw_ready_unless_serving()
            raise
        ctx = ctx.model_copy(update={"memcache_url": memcache_url})
        self._stored.token_cache = memcache_url is not None  # update-status watches it
        self._apply(ctx, version, restart=upgraded is not None)
        self._remember_ceph_pool(ctx)
        self._publish_ready(ctx)
        self.applied = True
        self._check_ha(config)
        ctx.check_storage()
        if self.frontend.problem is not None:  # served meanwhile: plain HTTP or the last cert
            raise self.frontend.problem
        if nrpe_problem is not None:
            raise nrpe_problem
        if cos_problem is not None:
            raise cos_problem
        return upgraded

    def config(self) -> GlanceConfig:
        """The charm's config, validated (InvalidConfigError names each bad option)."""
        return GlanceConfig.from_mapping(self._charm.config)

    def set_progress(self, status: ops.StatusBase) -> None:
        """Show progress within a hook; collect-status then sets the final status again."""
        self._stored.last_status = None
        self._charm.unit.status = status

    # ---- install and upgrade --------------------------------------------------------------
    def _ensure_installed(self, config: GlanceConfig) -> str:
        version = self._workload.installed_version()
        if version is None:
            self.set_progress(ops.MaintenanceStatus("Installing packages"))
            self._workload.install(config.openstack_origin)
            version = self._workload.installed_version()
            if version is None:
                raise WorkloadError("glance-api is not installed after apt; will retry")
            self._stored.origin = config.openstack_origin
        elif self._stored.origin is None:  # installed before the charm recorded its origin
            self._stored.origin = config.openstack_origin
        return version

    def origin_changed(self, config: GlanceConfig) -> bool:
        """Whether `openstack-origin` differs from the one the packages came from."""
        return bool(self._stored.origin) and self._stored.origin != config.openstack_origin

    def _upgrade(self, config: GlanceConfig) -> str:
        """Move the packages to the release `openstack-origin` names; return the new version."""
        self.set_progress(ops.MaintenanceStatus(f"Upgrading to {config.openstack_origin}"))
        logger.info("upgrading from %s to %s", self._stored.origin, config.openstack_origin)
        self._workload.upgrade(config.openstack_origin)
        self._stored.origin = config.openstack_origin
        version = self._workload.installed_version()
        if version is None:
            raise WorkloadError("glance-api is not installed after the upgrade; will retry")
        return version

    def _ensure_store_packages(self) -> None:
        """Install the Ceph client libraries once the ceph relation appears."""
        if self._charm.model.get_relation(ceph.ENDPOINT) is None:
            return
        if not self._workload.packages_installed(distro.CEPH_PACKAGES):
            self.set_progress(ops.MaintenanceStatus("Installing Ceph packages"))
            self._workload.install_packages(distro.CEPH_PACKAGES)

    def _ensure_feature_packages(self, config: GlanceConfig) -> None:
        """Install what an enabled option or store needs (qemu-utils, boto3, cinder)."""
        wanted: tuple[str, ...] = ()
        if config.image_conversion:
            wanted += distro.IMAGE_CONVERSION_PACKAGES
        if config.s3_enabled:
            wanted += distro.S3_PACKAGES
        if cinder_enabled(self._charm):
            wanted += distro.CINDER_PACKAGES
        if wanted and not self._workload.packages_installed(wanted):
            self.set_progress(ops.MaintenanceStatus("Installing packages"))
            self._workload.install_packages(wanted)

    def _ensure_token_cache(self) -> str | None:
        """The local memcached for keystone tokens: installed, configured, running.

        As the classic charm (charmhelpers token_cache_pkgs + MemcacheContext): memcached on
        the loopback, its URL for `[keystone_authtoken] memcached_servers`. When it cannot
        run, glance goes on without it (keystonemiddleware's in-process cache) rather than
        pointing every worker at a cache that is not there.

        Raises:
            WorkloadError: apt failed to install it (retried on the next hook).
        """
        if not self._workload.packages_installed(distro.MEMCACHED_PACKAGES):
            self.set_progress(ops.MaintenanceStatus("Installing packages"))
            self._workload.install_packages(distro.MEMCACHED_PACKAGES)
        try:
            return self.memcached.ensure(ipv6=not ipv6_disabled())
        except ServiceError as err:
            logger.warning("memcached is not running (%s): no shared token cache", err)
            return None

    # ---- publish --------------------------------------------------------------------------
    def _publish_requests(self, config: GlanceConfig) -> None:
        """Tell providers what glance wants; needs only config, so it never waits."""
        charm = self._charm
        model, unit, app, leader = charm.model, charm.unit, charm.app, charm.unit.is_leader()
        if relation := model.get_relation(shared_db.ENDPOINT):
            # percona-cluster's access-network: the address there, or it ignores the request
            hostname = address_in_network(
                charm, shared_db.access_network(relation), shared_db.ENDPOINT,
                bind_address(charm, shared_db.ENDPOINT),
            ) or ""
            shared_db.publish_request(
                relation, unit, config.database, config.database_user, hostname
            )
        if leader and (relation := model.get_relation(mysql_client.ENDPOINT)):
            mysql_client.publish_request(relation, app, config.database)
        if relation := model.get_relation(amqp.ENDPOINT):
            amqp.publish_request(relation, unit, app if leader else None,
                                 config.rabbit_user, config.rabbit_vhost)
        if relation := model.get_relation(peers.ENDPOINT):
            peers.publish_address(relation, unit, bind_address(charm, peers.ENDPOINT))
        if relation := model.get_relation(ceph.ENDPOINT):
            ceph.publish_request(relation, unit, app.name, ceph_request(config, app.name))
        if (relation := model.get_relation(ha.ENDPOINT)) and config.dns_ha:
            if hostnames := dns_ha_hostnames(charm, config):
                ha.publish(relation, unit, ha.desired_dns_ha_data(relation, unit, hostnames))
        elif relation and config.vip:
            data = ha.desired_data(relation, unit, config.vip, config.vip_iface,
                                   config.vip_cidr, nic_for=ha.local_nic_for)
            ha.publish(relation, unit, data)
        if relation := model.get_relation(identity.ENDPOINT):
            # Keystone registers whatever URLs it sees: none while a scaled-out (or VIP)
            # glance has only local disk, whose images would 404/503 on the other units.
            identity.publish_endpoints(
                relation, unit, app if leader else None, config.region,
                None if lacks_shared_store(charm, config)
                else endpoint_urls(charm, config, scheme=self.frontend.scheme),
            )

    def _configure_nrpe(self, config: GlanceConfig) -> GlanceCharmError | None:
        """Write the NRPE checks and send `monitors` (classic `update_nrpe_config`).

        Needs only config and the subordinate's data, so the checks are in place (and
        report CRITICAL) while glance still waits for its relations. Without the relation
        the charm's check files are removed. Returns the problem to show once the rest of
        the reconcile is done (bad data from the subordinate, nrpe failing to restart).
        """
        charm = self._charm
        relation = charm.model.get_relation(nrpe.ENDPOINT)
        if relation is None:
            self.nrpe.ensure((), "", "", restart=False)
            return None
        try:
            hostname = nrpe.nagios_hostname(relation, config.nagios_context, charm.unit)
            unit_name = nrpe.nagios_unit_name(relation, charm.unit)
        except nrpe.InvalidNrpeDataError as err:
            return BlockedError(str(err))
        frontends = frontend_addresses(charm, config)
        checks = glance_checks(
            unit_name, backend=(listen_address(charm, peers.ENDPOINT, config), BACKEND_PORT),
            frontend=(frontends[0] if frontends else None, FRONTEND_PORT),
            tls=bool(self._stored.tls_active), ipv6=config.prefer_ipv6,
        )
        try:  # classic: no nrpe restart on update-status (nagios would see every check flap)
            self.nrpe.ensure(checks, hostname,
                             config.nagios_servicegroups or config.nagios_context,
                             restart=os.environ.get("JUJU_HOOK_NAME") != "update-status")
        except ServiceError as err:
            return WorkloadError(f"nagios-nrpe-server restart failed: {err}")
        nrpe.publish(relation, charm.unit, monitors(checks))
        return None

    def _configure_cos(self) -> GlanceCharmError | None:
        """Give the COS agent its scrape job, alert rules and dashboard (`cos-agent`).

        Like the nrpe checks it needs nothing but the relation, so a glance still waiting
        for its relations is watched (its alerts fire). haproxy's exporter frontend is in
        haproxy.cfg by now (the frontend step renders it while the relation exists). The
        agent tails /var/log itself: glance-api's log file is there, and haproxy's reaches
        /var/log/haproxy.log through rsyslog and the haproxy package's rsyslog drop-in
        (a socket in haproxy's chroot), so rsyslog is installed with the relation.

        Returns:
            The problem to show once the rest of the reconcile is done, else None.
        """
        charm = self._charm
        relation = charm.model.get_relation(cos_agent.ENDPOINT)
        if relation is None:
            return None
        if not self._workload.packages_installed(distro.LOG_PACKAGES):
            self.set_progress(ops.MaintenanceStatus("Installing packages"))
            self._workload.install_packages(distro.LOG_PACKAGES)
        root = charm.charm_dir / "src"
        topology = observability.Topology(
            model=charm.model.name, model_uuid=charm.model.uuid, application=charm.app.name,
            unit=charm.unit.name, charm_name=charm.meta.name,
        )
        try:
            data = observability.provider_data(
                topology=topology, targets=[f"{METRICS_ADDRESS}:{METRICS_PORT}"],
                metrics_rules_dir=root / "prometheus_alert_rules",
                log_rules_dir=root / "loki_alert_rules",
                dashboards_dir=root / "grafana_dashboards",
            )
        except observability.RulesError as err:
            logger.error("cos-agent: the charm's rules or dashboards are unreadable: %s", err)
            return BlockedError("cos-agent: the charm's alert rules or dashboards are unreadable")
        cos_agent.publish(relation, charm.unit, data)
        return None

    def _retire_classic_frontend(self) -> None:
        """After a switch from the classic charm: its apache2 site off 9282 before glance-api.

        Raises:
            WorkloadError: the site could not be disabled (glance-api is not restarted onto
                the port apache2 may still hold; the next hook retries).
        """
        try:
            self.classic_frontend.retire()
        except ServiceError as err:
            raise WorkloadError(f"classic apache2 frontend still enabled: {err}") from None

    def withdraw_image_service(self) -> None:
        """Tell nova glance is not serving (`glance-api-ready: no`, no URL): e.g. paused."""
        self._publish_ready(None)

    def _withdraw_ready_unless_serving(self) -> None:
        """Withdraw `glance-api-server` only when glance-api does not serve at all.

        nova-cloud-controller and nova-compute read nothing but `glance-api-server`
        (openstack/charm-nova-cloud-controller hooks/nova_cc_context.py ImageServiceContext,
        openstack/charm-nova-compute hooks/nova_compute_context.py): withdrawing it on a
        transient problem (a keystone bag briefly incomplete, a new peer) rewrites nova's
        config on every compute node. While glance-api runs its last good config the URL
        stays, as the classic charm's image_service_joined leaves it.
        """
        if self._workload.is_running() and self._workload.paths.api_conf.exists():
            return
        self._publish_ready(None)

    def _publish_ready(self, ctx: GlanceContext | None) -> None:
        relations = self._charm.model.relations.get(image_service.ENDPOINT, [])
        if relations:
            url = ctx.endpoints.internal if ctx and ctx.endpoints else None
            image_service.publish(relations, self._charm.unit, url)

    # ---- checks ---------------------------------------------------------------------------
    def _check_ha(self, config: GlanceConfig) -> None:
        """Raise what keeps a scaled-out or VIP-fronted deployment from being complete."""
        model = self._charm.model
        relation = model.get_relation(ha.ENDPOINT)
        if problem := ha.dns_ha_problem(config.dns_ha, (
            config.os_public_hostname, config.os_internal_hostname, config.os_admin_hostname,
        )):
            raise BlockedError(problem)
        if problem := ha.missing_vip_problem(relation is not None, config.vip, config.dns_ha):
            raise BlockedError(problem)
        peer = model.get_relation(peers.ENDPOINT)
        units = max(len(peer.units) + 1 if peer else 1, self._charm.app.planned_units())
        if problem := ha.peer_units_without_vip_problem(units, config.vip, config.dns_ha):
            raise BlockedError(problem)
        if (config.vip or config.dns_ha) and relation is None:
            raise RelationNotReadyError(missing={"ha"}, incomplete=set())
        if (config.vip or config.dns_ha) and not ha.is_clustered(relation):
            raise WaitingError("Waiting for hacluster to report clustered")

    # ---- what earlier hooks recorded ------------------------------------------------------
    def remembered(self) -> Remembered:
        """The stores in use and the last confirmed ceph pool, from StoredState."""
        record = dict(self._stored.ceph_pool)
        pool = None
        if record:
            pool = (int(record["relation"]),
                    CephPool(pool=record["pool"], data_pool=record.get("data_pool")))
        in_use = {str(name): int(rel_id)
                  for name, rel_id in dict(self._stored.stores_in_use).items()}
        return Remembered(stores_in_use=in_use, ceph_pool=pool)

    def _remember_ceph_pool(self, ctx: GlanceContext) -> None:
        relation = self._charm.model.get_relation(ceph.ENDPOINT)
        if relation is None:
            self._stored.ceph_pool = {}
        elif ctx.ceph is not None and ctx.ceph.confirmed:
            self._stored.ceph_pool = {
                "relation": relation.id, "pool": ctx.ceph.pool.pool,
                "data_pool": ctx.ceph.pool.data_pool,
            }

    # ---- apply ----------------------------------------------------------------------------
    def _apply(self, ctx: GlanceContext, version: str, restart: bool = False) -> None:
        changed = self._workload.configure(ctx, version)
        self._stored.stores_in_use = {
            name: rel_id for name, rel_id in store_relations(self._charm).items()
            if name in ctx.store_names
        }
        self._ensure_db_synced(ctx, version)
        if self._stored.paused:  # written config waits (restart marker) until resume
            return
        if restart:
            self._workload.mark_restart_needed()
        rolling_restart(self._charm, self._workload, self._haproxy, ctx.bind_port,
                        changed or restart)

    def _ensure_db_synced(self, ctx: GlanceContext, version: str) -> None:
        relation = self._charm.model.get_relation(peers.ENDPOINT)
        if relation is None:
            raise WaitingError("Waiting for peer relation")
        database = f"{ctx.database.endpoint}:{ctx.database.host}/{ctx.database.name}"
        app = self._charm.app
        record = peers.db_sync_record(relation, app)
        if self._charm.unit.is_leader():
            if record != {"database": database, "version": version}:
                if not ctx.database.granted:  # classic db_changed: only when allowed
                    raise WaitingError(DB_NOT_GRANTED)
                self._workload.db_sync()
                peers.record_db_sync(relation, app, version, database)
        elif record is None or record.get("database") != database:
            raise WaitingError("Waiting for database initialisation by leader")

#!/usr/bin/env python3
"""GlanceCharm: observes Juju events and reconciles the unit towards its config + relations."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import ops

import distro
from exceptions import (
    BlockedError,
    GlanceCharmError,
    RelationNotReadyError,
    WaitingError,
    WorkloadError,
)
from glance import GlanceWorkload
from relations import amqp, ceph, identity, image_service, mysql_client, peers, shared_db

if TYPE_CHECKING:
    from config import GlanceConfig
    from state import GlanceContext
    from stores import CephPool

logger = logging.getLogger(__name__)

READY_MESSAGE = "Unit is ready"
RELATION_ENDPOINTS = (
    "shared-db", "database", "db", "identity-service", "image-service", "cluster", "amqp",
    "object-store", "ceph", "ha", "certificates", "cinder-volume-service", "storage-backend",
)


class GlanceCharm(ops.CharmBase):
    """Machine charm for OpenStack Glance."""

    workload_factory = GlanceWorkload
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework) -> None:
        super().__init__(framework)
        self._stored.set_default(ceph_pool={})
        self.workload = self.workload_factory()
        self._problem: GlanceCharmError | None = None
        self._reconciled = False
        observe = self.framework.observe
        for event in (
            self.on.install, self.on.upgrade_charm, self.on.config_changed,
            self.on.update_status, self.on.leader_elected, self.on.secret_changed,
        ):
            observe(event, self._on_event)
        for name in RELATION_ENDPOINTS:
            for kind in ("relation_created", "relation_joined", "relation_changed",
                         "relation_departed",
                         "relation_broken"):
                observe(getattr(self.on[name], kind), self._on_event)
        observe(self.on.collect_unit_status, self._on_collect_status)

    # ---- events ---------------------------------------------------------------------------
    def _on_event(self, event: ops.EventBase) -> None:
        self._reconciled = True
        self._problem = None
        try:
            self._reconcile()
        except GlanceCharmError as err:
            self._problem = err

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        """The one place that turns the outcome of the hook into a unit status."""
        problem = self._problem
        if problem is None and not self._reconciled:
            # A hook we do not observe (e.g. a storage or action hook): keep the last status.
            event.add_status(self.unit.status)
            return
        if problem is None:
            event.add_status(ops.ActiveStatus(READY_MESSAGE))
        elif isinstance(problem, RelationNotReadyError):
            status_cls = ops.BlockedStatus if problem.blocked else ops.WaitingStatus
            event.add_status(status_cls(problem.message))
        elif isinstance(problem, WaitingError):
            event.add_status(ops.WaitingStatus(str(problem)))
        else:  # InvalidConfigError, BlockedError, WorkloadError
            event.add_status(ops.BlockedStatus(str(problem)))

    # ---- reconcile ------------------------------------------------------------------------
    def _reconcile(self) -> None:
        from config import GlanceConfig

        config = GlanceConfig.from_mapping(self.config)
        version = self._ensure_installed(config)
        self._publish_requests(config)
        self._ensure_store_packages()
        from state import GlanceContext

        try:
            ctx = GlanceContext.from_charm(self, config)
        except (RelationNotReadyError, BlockedError, WaitingError):
            self._publish_ready(None)
            raise
        self._apply(ctx, version)
        self._remember_ceph_pool(ctx)
        self._publish_ready(ctx)
        ctx.check_storage()

    def _ensure_installed(self, config: GlanceConfig) -> str:
        version = self.workload.installed_version()
        if version is None:
            self.unit.status = ops.MaintenanceStatus("Installing packages")
            self.workload.install(config.openstack_origin)
            version = self.workload.installed_version()
            if version is None:
                raise WorkloadError("glance-api is not installed after apt; will retry")
        return version

    def _publish_requests(self, config: GlanceConfig) -> None:
        """Tell providers what glance wants; needs only config, so it never waits."""
        if relation := self.model.get_relation(shared_db.ENDPOINT):
            hostname = self._bind_address(shared_db.ENDPOINT) or ""
            shared_db.publish_request(
                relation, self.unit, config.database, config.database_user, hostname
            )
        if self.unit.is_leader() and (relation := self.model.get_relation(mysql_client.ENDPOINT)):
            mysql_client.publish_request(relation, self.app, config.database)
        if relation := self.model.get_relation(amqp.ENDPOINT):
            amqp.publish_request(
                relation, self.unit, self.app if self.unit.is_leader() else None,
                config.rabbit_user, config.rabbit_vhost,
            )
        if relation := self.model.get_relation(peers.ENDPOINT):
            peers.publish_address(relation, self.unit, self._bind_address(peers.ENDPOINT))
        if relation := self.model.get_relation(ceph.ENDPOINT):
            from stores import ceph_request

            ceph.publish_request(
                relation, self.unit, self.app.name, ceph_request(config, self.app.name)
            )
        if relation := self.model.get_relation(identity.ENDPOINT):
            from state import endpoint_urls

            identity.publish_endpoints(
                relation, self.unit, self.app if self.unit.is_leader() else None,
                config.region, endpoint_urls(self, config),
            )

    def _ensure_store_packages(self) -> None:
        """Install the Ceph client libraries once the ceph relation appears."""
        if self.model.get_relation(ceph.ENDPOINT) is None:
            return
        if not self.workload.packages_installed(distro.CEPH_PACKAGES):
            self.unit.status = ops.MaintenanceStatus("Installing Ceph packages")
            self.workload.install_packages(distro.CEPH_PACKAGES)

    def last_good_ceph_pool(self, relation_id: int) -> CephPool | None:
        """The pools ceph-mon last confirmed on this relation (kept while a new request waits)."""
        from stores import CephPool

        record = dict(self._stored.ceph_pool)
        if record.get("relation") != relation_id:
            return None
        return CephPool(pool=record["pool"], data_pool=record.get("data_pool"))

    def _remember_ceph_pool(self, ctx: GlanceContext) -> None:
        relation = self.model.get_relation(ceph.ENDPOINT)
        if relation is None:
            self._stored.ceph_pool = {}
        elif ctx.ceph is not None and ctx.ceph.confirmed:
            self._stored.ceph_pool = {
                "relation": relation.id, "pool": ctx.ceph.pool.pool,
                "data_pool": ctx.ceph.pool.data_pool,
            }

    def _apply(self, ctx: GlanceContext, version: str) -> None:
        changed = self.workload.configure(ctx, version)
        self._ensure_db_synced(ctx, version)
        self.workload.ensure_running(restart=changed)

    def _ensure_db_synced(self, ctx: GlanceContext, version: str) -> None:
        relation = self.model.get_relation(peers.ENDPOINT)
        if relation is None:
            raise WaitingError("Waiting for peer relation")
        database = f"{ctx.database.endpoint}:{ctx.database.host}/{ctx.database.name}"
        record = peers.db_sync_record(relation, self.app)
        if self.unit.is_leader():
            if record != {"database": database, "version": version}:
                self.workload.db_sync()
                peers.record_db_sync(relation, self.app, version, database)
        elif record is None or record.get("database") != database:
            raise WaitingError("Waiting for database initialisation by leader")

    def _publish_ready(self, ctx: GlanceContext | None) -> None:
        relations = self.model.relations.get(image_service.ENDPOINT, [])
        if relations:
            image_service.publish(relations, self.unit, ctx.endpoints.internal if ctx else None)

    def _bind_address(self, endpoint: str) -> str | None:
        try:
            binding = self.model.get_binding(endpoint)
            if binding is not None and binding.network.bind_address is not None:
                return str(binding.network.bind_address)
        except ops.ModelError:
            logger.warning("no bind address for %s", endpoint)
        return None


if __name__ == "__main__":  # pragma: nocover
    ops.main(GlanceCharm)

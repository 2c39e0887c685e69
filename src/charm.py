#!/usr/bin/env python3
"""GlanceCharm: observes Juju events and reconciles the unit towards its config + relations."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import ops

import distro
from exceptions import (
    BlockedError,
    GlanceCharmError,
    InvalidConfigError,
    RelationNotReadyError,
    WaitingError,
    WorkloadError,
)
from glance import GlanceWorkload
from haproxy import HaproxyWorkload, server_name
from lazy import lazy_import
from service import ServiceError

if TYPE_CHECKING:
    from charmlibs.interfaces.tls_certificates import TLSCertificatesRequiresV4

    import tls as tlsmod
    from config import GlanceConfig
    from relations import (
        amqp,
        ceph,
        certificates,
        ha,
        identity,
        image_service,
        mysql_client,
        peers,
        shared_db,
    )
    from state import GlanceContext
    from stores import CephPool
else:  # loaded by the hooks that reconcile; a steady update-status never touches them
    tlsmod = lazy_import("tls")
    amqp, ceph, certificates, ha, identity, image_service, mysql_client, peers, shared_db = (
        lazy_import(f"relations.{name}") for name in (
            "amqp", "ceph", "certificates", "ha", "identity", "image_service", "mysql_client",
            "peers", "shared_db",
        )
    )

logger = logging.getLogger(__name__)


def _not_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


# ops logs two DEBUG lines on the root logger in every hook ("ops ... up and running",
# "Emitting Juju event ..."), each a juju-log round-trip to the agent. A filter on the root
# logger drops only records logged on it directly: the charm's and the libraries' own
# loggers (DEBUG included) are untouched.
logging.getLogger().addFilter(_not_debug)

READY_MESSAGE = "Unit is ready"
PAUSED_MESSAGE = "Paused. Use 'resume' action to resume normal service."
CERTIFICATES = "certificates"  # relations.certificates.ENDPOINT, without loading it
# Bindings whose addresses the charm publishes or binds to: Juju runs config-changed when
# one of them changes, so config-changed compares them with the last reconciled ones.
WATCHED_BINDINGS = ("cluster", "shared-db", "public", "internal", "admin")
RELATION_ENDPOINTS = (
    "shared-db", "database", "db", "identity-service", "image-service", "cluster", "amqp",
    "object-store", "ceph", "ha", "certificates", "cinder-volume-service", "storage-backend",
)


class GlanceCharm(ops.CharmBase):
    """Machine charm for OpenStack Glance."""

    workload_factory: Callable[[], GlanceWorkload] = GlanceWorkload
    haproxy_factory: Callable[[], HaproxyWorkload] = HaproxyWorkload
    tls_factory: Callable[[], tlsmod.TLSWorkload] | None = None  # None: tlsmod.TLSWorkload
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework) -> None:
        super().__init__(framework)
        self._stored.set_default(ceph_pool={}, paused=False, origin=None, tls_active=False,
                                 tls_source="", tls_request="", stores_in_use={},
                                 last_status=None, fingerprint="", leader=None)
        self.workload = self.workload_factory()
        self.haproxy = self.haproxy_factory()
        self._problem: GlanceCharmError | None = None
        self._tls_problem: GlanceCharmError | None = None
        self._reconciled = False
        # The TLS library (and cryptography, ~0.1 s) only in hooks where the relation
        # exists, or is being broken (the library then removes the key's secret). Built
        # before observing, so its handlers run before _reconcile reads the certificate.
        self._certificates: TLSCertificatesRequiresV4 | None = None
        if (self.model.relations.get(CERTIFICATES)
                or os.environ.get("JUJU_RELATION") == CERTIFICATES):
            self._certificates = certificates.requirer(self, self._wanted_certificate)
        observe = self.framework.observe
        for event in (
            self.on.install, self.on.upgrade_charm, self.on.leader_elected,
            self.on.secret_changed,
        ):
            observe(event, self._on_event)
        observe(self.on.update_status, self._on_update_status)
        observe(self.on.config_changed, self._on_config_changed)
        for name in RELATION_ENDPOINTS:
            for kind in ("relation_created", "relation_joined", "relation_changed",
                         "relation_departed",
                         "relation_broken"):
                observe(getattr(self.on[name], kind), self._on_event)
        observe(self.on.collect_unit_status, self._on_collect_status)
        observe(self.on.pause_action, self._on_pause)
        observe(self.on.resume_action, self._on_resume)
        observe(self.on.openstack_upgrade_action, self._on_openstack_upgrade)
        observe(self.on.security_checklist_action, self._on_security_checklist)

    @cached_property
    def tls(self) -> tlsmod.TLSWorkload:
        """TLS files for haproxy (built when a hook first needs them)."""
        factory = type(self).tls_factory or tlsmod.TLSWorkload
        return factory()

    # ---- events ---------------------------------------------------------------------------
    def _on_event(self, event: ops.EventBase) -> None:
        self._reconciled = True
        self._problem = None
        try:
            self._reconcile()
        except GlanceCharmError as err:
            self._problem = err
        # What config-changed compares with: only a complete, active reconcile counts.
        self._stored.fingerprint = "" if self._problem or self._stored.paused else (
            self._fingerprint()
        )
        self._stored.leader = self.unit.is_leader()

    def _on_update_status(self, event: ops.UpdateStatusEvent) -> None:
        """Reconcile only when something is owed: a steady unit runs no tool and no render.

        Steady: the last hook left the unit active with the same leadership, glance-api
        and haproxy run, and no restart or reload is pending. Otherwise (a failed restart,
        a service that died, a status still waiting on time) it reconciles as every other
        hook does.
        """
        if self._stored.paused or self._steady():
            return
        self._on_event(event)

    def _on_config_changed(self, event: ops.ConfigChangedEvent) -> None:
        """Reconcile unless config and addresses are what the last active reconcile saw.

        Juju runs config-changed after an option or a binding address changed (and at
        start and after upgrade-charm, which reconcile themselves); relation data and
        leadership have their own hooks.
        """
        if self._steady() and self._stored.fingerprint == self._fingerprint():
            return
        self._on_event(event)

    def _steady(self) -> bool:
        last = self._stored.last_status
        return (
            last is not None and list(last) == ["active", READY_MESSAGE]
            and not self._stored.paused
            and self._stored.leader == self.unit.is_leader()  # ops asks is-leader anyway
            and not self.workload.restart_needed() and not self.haproxy.reload_needed()
            and not self.workload.draining()
            and self.workload.is_running() and self.haproxy.is_running()
        )

    def _fingerprint(self) -> str:
        """Digest of the config and the watched bindings' addresses (no secret in clear)."""
        addresses: dict[str, list[str] | None] = {}
        for name in WATCHED_BINDINGS:
            try:
                binding = self.model.get_binding(name)
                network = binding.network if binding is not None else None
            except (ops.ModelError, KeyError):  # not a binding this Juju knows
                network = None
            addresses[name] = None if network is None else [
                str(network.bind_address), *(str(a) for a in network.ingress_addresses)
            ]
        state = {"config": dict(self.config), "addresses": addresses}
        import hashlib

        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()

    def _set_progress(self, status: ops.StatusBase) -> None:
        """Show progress within a hook; collect-status then sets the final status again."""
        self._stored.last_status = None
        self.unit.status = status

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        """The one place that turns the outcome of the hook into a unit status.

        A hook that reconciled nothing (a steady update-status, an action) leaves the
        status as it is, and so does one whose outcome equals the status already set:
        status-set is not called again (one hook-tool call less per hook).
        """
        status = self._outcome_status()
        if status is None:
            return
        current = [status.name, status.message]
        if self._stored.last_status is not None and list(self._stored.last_status) == current:
            return
        self._stored.last_status = current
        event.add_status(status)

    def _outcome_status(self) -> ops.StatusBase | None:
        problem = self._problem
        if self._stored.paused:
            return ops.MaintenanceStatus(PAUSED_MESSAGE)
        if problem is None and not self._reconciled:
            return None
        if problem is None:
            return ops.ActiveStatus(READY_MESSAGE)
        if isinstance(problem, RelationNotReadyError):
            status_cls = ops.BlockedStatus if problem.blocked else ops.WaitingStatus
            return status_cls(problem.message)
        if isinstance(problem, WaitingError):
            return ops.WaitingStatus(str(problem))
        return ops.BlockedStatus(str(problem))  # InvalidConfigError, BlockedError, ...

    # ---- reconcile ------------------------------------------------------------------------
    def _reconcile(self) -> None:
        from config import GlanceConfig

        config = GlanceConfig.from_mapping(self.config)
        version = self._ensure_installed(config)
        upgraded = False
        if self._origin_changed(config) and not config.action_managed_upgrade:
            version, upgraded = self._upgrade(config), True
        frontend_problem: GlanceCharmError | None = None
        try:  # before publishing: the endpoints' scheme is what haproxy now serves
            self._configure_frontend(config)
        except GlanceCharmError as err:  # the requests go out all the same
            frontend_problem = err
        self._publish_requests(config)
        if frontend_problem is not None:
            raise frontend_problem
        self._ensure_store_packages()
        from state import GlanceContext

        try:
            ctx = GlanceContext.from_charm(self, config, tls=self._stored.tls_active)
        except (RelationNotReadyError, BlockedError, WaitingError):
            self._publish_ready(None)
            raise
        self._apply(ctx, version, restart=upgraded)
        self._remember_ceph_pool(ctx)
        self._publish_ready(ctx)
        self._check_ha(config)
        ctx.check_storage()
        if self._tls_problem is not None:  # served meanwhile: plain HTTP or the last cert
            raise self._tls_problem

    def _ensure_installed(self, config: GlanceConfig) -> str:
        version = self.workload.installed_version()
        if version is None:
            self._set_progress(ops.MaintenanceStatus("Installing packages"))
            self.workload.install(config.openstack_origin)
            version = self.workload.installed_version()
            if version is None:
                raise WorkloadError("glance-api is not installed after apt; will retry")
            self._stored.origin = config.openstack_origin
        elif self._stored.origin is None:  # installed before the charm recorded its origin
            self._stored.origin = config.openstack_origin
        return version

    def _origin_changed(self, config: GlanceConfig) -> bool:
        return bool(self._stored.origin) and self._stored.origin != config.openstack_origin

    def _upgrade(self, config: GlanceConfig) -> str:
        """Move the packages to the release `openstack-origin` names; return the new version."""
        self._set_progress(ops.MaintenanceStatus(f"Upgrading to {config.openstack_origin}"))
        logger.info("upgrading from %s to %s", self._stored.origin, config.openstack_origin)
        self.workload.upgrade(config.openstack_origin)
        self._stored.origin = config.openstack_origin
        version = self.workload.installed_version()
        if version is None:
            raise WorkloadError("glance-api is not installed after the upgrade; will retry")
        return version

    def _publish_requests(self, config: GlanceConfig) -> None:
        """Tell providers what glance wants; needs only config, so it never waits."""
        if relation := self.model.get_relation(shared_db.ENDPOINT):
            hostname = self.bind_address(shared_db.ENDPOINT) or ""
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
            peers.publish_address(relation, self.unit, self.bind_address(peers.ENDPOINT))
        if relation := self.model.get_relation(ceph.ENDPOINT):
            from stores import ceph_request

            ceph.publish_request(
                relation, self.unit, self.app.name, ceph_request(config, self.app.name)
            )
        if (relation := self.model.get_relation(ha.ENDPOINT)) and config.vip:
            data = ha.desired_data(relation, self.unit, config.vip, config.vip_iface,
                                   config.vip_cidr, nic_for=ha.local_nic_for)
            ha.publish(relation, self.unit, data)
        if relation := self.model.get_relation(identity.ENDPOINT):
            from state import endpoint_urls

            identity.publish_endpoints(
                relation, self.unit, self.app if self.unit.is_leader() else None,
                config.region, endpoint_urls(self, config, scheme=self.endpoint_scheme),
            )

    @property
    def endpoint_scheme(self) -> str:
        """``https`` once haproxy's config terminates TLS, else ``http``."""
        return "https" if self._stored.tls_active else "http"

    # ---- TLS ------------------------------------------------------------------------------
    def _configure_frontend(self, config: GlanceConfig) -> None:
        """TLS files, then haproxy (which loads them), then remove files no longer used.

        TLS comes from the certificates relation once it issued this unit's certificate,
        else from ssl_cert/ssl_key(/ssl_ca). While the relation's certificate for a new
        request is pending, the certificate it issued before stays in use.

        Raises:
            InvalidConfigError: unusable ssl_* material (haproxy and its files unchanged).
            BlockedError: haproxy rejected its config, or the relation's certificate is
                unusable.
        """
        material, keep = self._tls_material(config)
        if material is not None:
            try:
                self.tls.write(material, self.haproxy.mark_reload_needed)
            except tlsmod.MaterialError as err:
                logger.error("TLS material from %s rejected: %s", material.source, err)
                if material.source == "config":
                    raise InvalidConfigError(list(err.parts)) from None
                raise BlockedError("Unusable certificate from the certificates relation") \
                    from None
        tls_pem = str(self.tls.paths.pem) if material is not None or keep else None
        self._configure_haproxy(config, tls_pem)
        self._stored.tls_active = tls_pem is not None
        if material is not None:
            self._stored.tls_source = material.source
        elif not keep:
            self._stored.tls_source = ""
            self.tls.remove()  # haproxy no longer reads them

    def _tls_material(self, config: GlanceConfig) -> tuple[tlsmod.TLSMaterial | None, bool]:
        """What to serve: (new material or None, whether to keep the PEM in place).

        Sets `_tls_problem` (reported at the end of the hook) while the relation's
        certificate is pending or was refused.
        """
        self._tls_problem = None
        related = self.model.get_relation(CERTIFICATES) is not None
        if related:
            issued = self._relation_certificate(config)
            if issued is not None:
                return issued, False
        try:
            configured = tlsmod.TLSMaterial.from_config(config)
        except tlsmod.MaterialError as err:
            logger.error("ssl_* options rejected: %s", err)
            raise InvalidConfigError(list(err.parts)) from None
        if configured is not None:
            return configured, False
        keep = related and self._stored.tls_source == "relation" and self.tls.has_pem()
        return None, keep

    def _relation_certificate(self, config: GlanceConfig) -> tlsmod.TLSMaterial | None:
        """The certificate issued for the current request; re-request when it changed."""
        if self._certificates is None:  # a charm object that outlives hooks (Harness)
            self._certificates = certificates.requirer(self, self._wanted_certificate)
        request = self._certificate_request(config)
        if request is not None and request.key() != self._stored.tls_request:
            self._certificates.sync()  # new addresses or names: a new CSR
        issued = certificates.assigned(self._certificates, request) if request else None
        if issued is None:
            denied = certificates.denial(self._certificates, request) if request else None
            self._tls_problem = (
                BlockedError(f"TLS certificate request refused ({denied})") if denied
                else WaitingError(certificates.WAITING_MESSAGE)
            )
        return issued

    def _certificate_request(self, config: GlanceConfig) -> tlsmod.CertRequest | None:
        from state import BINDINGS, binding_network

        addresses = [binding_network(self, name)[0] for name in BINDINGS]
        return tlsmod.CertRequest.build(config, addresses)

    def _wanted_certificate(self) -> tlsmod.CertRequest | None:
        """The request the library sends (it calls this whenever it builds requests)."""
        from config import GlanceConfig

        try:
            request = self._certificate_request(GlanceConfig.from_mapping(self.config))
        except GlanceCharmError:  # invalid config: keep asking for what was asked before
            if not self._stored.tls_request:
                return None
            common_name, sans_dns, sans_ip = json.loads(self._stored.tls_request)
            return tlsmod.CertRequest(common_name, tuple(sans_dns), tuple(sans_ip))
        self._stored.tls_request = request.key() if request is not None else ""
        return request

    def _configure_haproxy(self, config: GlanceConfig, tls_pem: str | None) -> None:
        """Haproxy on every unit: frontend 9292, one backend per unit's glance-api (9282).

        It needs only config and peers, so it runs before the context is complete (the
        VIP hacluster manages points at haproxy, whatever glance's own state).
        """
        from haproxy_config import HaproxyConfig

        relation = self.model.get_relation(peers.ENDPOINT)
        backends = peers.peer_addresses(
            relation, self.unit, self.bind_address(peers.ENDPOINT)
        )
        cfg = HaproxyConfig.from_options(
            backends,
            bind_addresses=self._frontend_addresses(config),
            client_timeout=config.haproxy_client_timeout,
            server_timeout=config.haproxy_server_timeout,
            queue_timeout=config.haproxy_queue_timeout,
            connect_timeout=config.haproxy_connect_timeout,
            ipv6=config.prefer_ipv6,
            tls_pem=tls_pem,
        )
        changed = self.haproxy.configure(cfg)
        if not self._stored.paused:
            self.haproxy.ensure_running(changed)

    def _frontend_addresses(self, config: GlanceConfig) -> tuple[str, ...]:
        """Where haproxy listens: the public, internal and admin bindings' addresses.

        Empty (every address) when a VIP or DNS HA fronts the units, as the classic charm
        does: the VIP moves onto whichever unit hacluster picks, so haproxy must accept it
        without a restart; also when a binding's address is unknown.
        """
        from state import BINDINGS

        if config.vip or config.dns_ha:
            return ()
        addresses = [self.listen_address(name, config) for name in BINDINGS]
        if any(address is None for address in addresses):
            return ()
        return tuple(dict.fromkeys(address for address in addresses if address))

    def listen_address(self, endpoint: str, config: GlanceConfig) -> str | None:
        """The binding's address to listen on; None (every address) when unusable.

        Unusable: unknown, or of the other family than `prefer-ipv6` asks for (the classic
        charm then binds ``::``).
        """
        address = self.bind_address(endpoint)
        if address is None or (":" in address) != config.prefer_ipv6:
            return None
        return address

    def _check_ha(self, config: GlanceConfig) -> None:
        """Raise what keeps a scaled-out or VIP-fronted deployment from being complete."""
        relation = self.model.get_relation(ha.ENDPOINT)
        if problem := ha.missing_vip_problem(relation is not None, config.vip):
            raise BlockedError(problem)
        peer = self.model.get_relation(peers.ENDPOINT)
        units = max(len(peer.units) + 1 if peer else 1, self.app.planned_units())
        if problem := ha.peer_units_without_vip_problem(units, config.vip, config.dns_ha):
            raise BlockedError(problem)
        if config.vip and relation is None:
            raise RelationNotReadyError(missing={"ha"}, incomplete=set())
        if config.vip and not ha.is_clustered(relation):
            raise WaitingError("Waiting for hacluster to report clustered")

    def _ensure_store_packages(self) -> None:
        """Install the Ceph client libraries once the ceph relation appears."""
        if self.model.get_relation(ceph.ENDPOINT) is None:
            return
        if not self.workload.packages_installed(distro.CEPH_PACKAGES):
            self._set_progress(ops.MaintenanceStatus("Installing Ceph packages"))
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

    def stores_in_use(self) -> dict[str, int]:
        """Store name -> relation id of the related stores (ceph, swift) in the written config."""
        recorded = dict(self._stored.stores_in_use)
        return {str(name): int(rel_id) for name, rel_id in recorded.items()}

    def _remember_stores(self, ctx: GlanceContext) -> None:
        from state import store_relations

        self._stored.stores_in_use = {
            name: rel_id for name, rel_id in store_relations(self).items()
            if name in ctx.store_names
        }

    def _apply(self, ctx: GlanceContext, version: str, restart: bool = False) -> None:
        changed = self.workload.configure(ctx, version)
        self._remember_stores(ctx)
        self._ensure_db_synced(ctx, version)
        if self._stored.paused:  # written config waits (restart marker) until resume
            return
        if restart:
            self.workload.mark_restart_needed()
        self._rolling_restart(ctx, changed or restart)

    def _rolling_restart(self, ctx: GlanceContext, changed: bool) -> None:
        """Restart glance-api for new config, one unit at a time when there are several.

        A unit that needs a restart asks the leader for the lock in its peer bag; the
        leader grants one unit at a time in the app bag; the holder drains (fails its
        /healthcheck until every haproxy has it out of rotation and its requests are
        done, uploads included), restarts, waits until
        its API answers /healthcheck and haproxy has it back in rotation (a restart longer
        than haproxy's fall window marks it DOWN; it is UP again only after 2 good checks),
        and reports done, which lets the leader grant the next. The classic charm restarts
        every unit at once.
        """
        self.workload.set_draining(False)  # a drain a dead hook left behind ends here
        peer = self.model.get_relation(peers.ENDPOINT)
        if peer is None or not peer.units:  # alone: nothing to coordinate
            self.workload.ensure_running(restart=changed or self.workload.restart_needed())
            return
        if self.workload.restart_needed():
            peers.request_restart(peer, self.unit, os.urandom(6).hex())
        self._grant_restart_lock(peer)
        token = peers.restart_request(peer, self.unit)
        grant = peers.restart_grant(peer, self.app)
        if token and grant == (self.unit.name, token):
            server = server_name(self.unit.name)
            self.workload.set_draining(True)  # every haproxy stops sending new requests
            if not self.haproxy.wait_server_drained(server):
                logger.warning("haproxy does not show %s drained; restarting anyway", server)
            # its own haproxy shows only its own requests: behind a VIP held by another
            # unit it has none, while that unit's haproxy still has uploads running here
            if not self.workload.wait_idle(ctx.bind_port):
                logger.warning("glance-api still runs requests; restarting anyway")
            self.workload.ensure_running(restart=True)
            self.workload.set_draining(False)
            if not self.workload.wait_healthy(ctx.bind_port):
                raise WorkloadError("glance-api did not answer /healthcheck after restart")
            if not self.haproxy.wait_server_up(server):
                logger.warning("haproxy does not show %s UP; releasing the lock anyway", server)
            peers.finish_restart(peer, self.unit, token)
            self._grant_restart_lock(peer)
        elif token:
            self.workload.ensure_running(restart=False)  # keep serving the old config
            raise WaitingError("Waiting for the rolling restart lock")
        else:
            self.workload.ensure_running(restart=False)

    def _grant_restart_lock(self, peer: ops.Relation) -> None:
        if self.unit.is_leader():
            peers.set_restart_grant(
                peer, self.app, peers.next_restart_grant(peer, self.app, self.unit)
            )

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
            url = ctx.endpoints.internal if ctx and ctx.endpoints else None
            image_service.publish(relations, self.unit, url)

    # ---- actions --------------------------------------------------------------------------
    def _on_pause(self, event: ops.ActionEvent) -> None:
        """Stop glance-api and keep it stopped across hooks until resume."""
        self._stored.paused = True
        try:
            self.workload.stop()
            self.haproxy.stop()
        except ServiceError:
            event.fail("stopping glance-api failed; see the unit log")
            return
        event.set_results({"outcome": "paused"})

    def _on_resume(self, event: ops.ActionEvent) -> None:
        """Start the services again and reconcile."""
        self._stored.paused = False
        self._on_event(event)
        if self._problem is not None:
            event.fail(f"resumed, but: {self._problem}")
            return
        event.set_results({"outcome": "resumed"})

    def _on_openstack_upgrade(self, event: ops.ActionEvent) -> None:
        """Upgrade to `openstack-origin` now (the path when action-managed-upgrade is true)."""
        from config import GlanceConfig

        try:
            config = GlanceConfig.from_mapping(self.config)
        except GlanceCharmError as err:
            event.fail(str(err))
            return
        if not config.action_managed_upgrade:
            event.fail("action-managed-upgrade is false: changing openstack-origin upgrades")
            return
        if not self._origin_changed(config):
            event.set_results({"outcome": "no upgrade available"})
            return
        self._reconciled, self._problem = True, None
        try:
            version = self._upgrade(config)
            from state import GlanceContext

            self._publish_requests(config)
            ctx = GlanceContext.from_charm(self, config, tls=self._stored.tls_active)
            self._apply(ctx, version, restart=True)
            self._publish_ready(ctx)
        except GlanceCharmError as err:
            self._problem = err
            event.fail(f"upgrade incomplete: {err}")
            return
        event.set_results({"outcome": f"upgraded to {config.openstack_origin}",
                           "version": version})

    def _on_security_checklist(self, event: ops.ActionEvent) -> None:
        """Report the OpenStack security guide's glance checks, pass/fail each."""
        from checklist import run_checks

        results = run_checks(self.workload.paths, self.workload.group)
        event.set_results({name.replace("_", "-"): "PASS" if ok else f"FAIL: {why}"
                           for name, (ok, why) in results.items()})
        failed = [name for name, (ok, _) in results.items() if not ok]
        if failed:
            event.fail(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}")

    def bind_address(self, endpoint: str) -> str | None:
        """The address this unit binds for an endpoint (network-get), None if unknown."""
        try:
            binding = self.model.get_binding(endpoint)
            if binding is not None and binding.network.bind_address is not None:
                return str(binding.network.bind_address)
        except ops.ModelError:
            logger.warning("no bind address for %s", endpoint)
        return None


def use_libyaml() -> None:
    """Have ops parse metadata/config/actions.yaml with libyaml (~17 ms less per hook).

    ops reads the three files with `yaml.safe_load`, PyYAML's pure-Python parser, in every
    hook; PyYAML's wheel also ships the same safe loader in C (`CSafeLoader`).
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        yaml.safe_load = functools.partial(yaml.load, Loader=loader)


if __name__ == "__main__":  # pragma: nocover
    use_libyaml()
    ops.main(GlanceCharm)

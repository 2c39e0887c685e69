"""GlanceContext: everything the workload needs, built once per hook from config + relations."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import ops

from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.context import WorkloadContext
from glance_charm.domain.exceptions import BlockedError, RelationNotReadyError
from glance_charm.domain.models import DatabaseInfo, IdentityCredentials, MessagingInfo
from glance_charm.domain.policy import (
    NOT_ATTACHED,
    STATUS_PREFIX,
    PolicyZipError,
    parse_policy_zip,
)
from glance_charm.domain.stores import (
    CephPool,
    CephSettings,
    StorageIssue,
    StoreSelection,
    ceph_request,
    ceph_store,
    check_ha_storage,
    check_stores_kept,
    cinder_stores,
    local_store,
    pick_default_store,
    s3_store,
    select_ceph,
    swift_store,
    wanted_ceph_pool,
)
from glance_charm.relations import (
    amqp,
    ceph,
    ha,
    identity,
    mysql_client,
    mysql_legacy,
    object_store,
    peers,
    shared_db,
    storage_backend,
)
from glance_charm.state.network import endpoint_urls, listen_address

logger = logging.getLogger(__name__)

DATABASE_ENDPOINTS = (shared_db.ENDPOINT, mysql_client.ENDPOINT, mysql_legacy.ENDPOINT)


@dataclass(frozen=True)
class Remembered:
    """What earlier hooks recorded (StoredState), read by the caller and passed in.

    Attributes:
        stores_in_use: store name -> relation id of the related stores the written
            config uses.
        ceph_pool: the pools ceph-mon last confirmed, and on which relation.
    """

    stores_in_use: dict[str, int] = field(default_factory=dict)
    ceph_pool: tuple[int, CephPool] | None = None

    def last_good_ceph_pool(self, relation_id: int) -> CephPool | None:
        """The pools ceph-mon last confirmed on this relation (kept while a new one waits)."""
        if self.ceph_pool is None or self.ceph_pool[0] != relation_id:
            return None
        return self.ceph_pool[1]


class GlanceContext(WorkloadContext):
    """The workload's context, read from the charm's model."""

    @classmethod
    def from_charm(
        cls, charm: ops.CharmBase, config: GlanceConfig, remembered: Remembered,
        tls: bool = False,
    ) -> GlanceContext:
        """Read relations; raise RelationNotReadyError/BlockedError when not usable yet.

        `tls` says whether haproxy terminates TLS (the endpoints are then https).

        A store that is related but not ready does not stop the others: the context holds
        the ready stores and `storage_issue`, reported after the config is applied. Nothing
        is applied (the last good config keeps running) when a required relation is not
        ready, when a store the written config uses is not usable any more (its relation
        still there), when HA would run on local disk only, or when `default-store` is not
        ready.
        """
        missing: set[str] = set()
        incomplete: set[str] = set()
        database = read_database(charm, config)
        if database is None:
            if active_database_endpoints(charm):
                incomplete.add("database")
            else:
                missing.add("database")
        credentials = read_identity(charm)
        if credentials is None:
            (incomplete if charm.model.get_relation(identity.ENDPOINT) else missing).add(
                "identity"
            )
        messaging = read_messaging(charm, config)
        if messaging is None and charm.model.get_relation(amqp.ENDPOINT):
            incomplete.add("messaging")  # optional, but once related it must be complete
        selection = read_stores(charm, config, remembered, credentials)
        if missing or incomplete:
            if selection.issue is not None:
                raise selection.issue.error(missing, incomplete)
            raise RelationNotReadyError(missing, incomplete)
        assert database is not None and credentials is not None
        check_stores_kept(selection, remembered.stores_in_use, store_relations(charm))
        policy_overrides = read_policy_overrides(charm, config)
        check_ha_storage(scaled_out(charm), selection)
        stores = selection.stores
        return cls(
            config=config,
            app_name=charm.app.name,
            unit_name=charm.unit.name,
            is_leader=charm.unit.is_leader(),
            database=database,
            identity=credentials.model_copy(update={"region": config.region}),
            endpoints=endpoint_urls(charm, config, scheme="https" if tls else "http"),
            stores=stores,
            default_store=pick_default_store(config, stores),
            workers=worker_count(config.worker_multiplier),
            ceph=selection.ceph,
            storage_issue=selection.issue,
            messaging=messaging,
            tls=tls,
            bind_host=listen_address(charm, peers.ENDPOINT, config),
            policy_overrides=policy_overrides,
            subordinate_sections=read_subordinate_sections(charm),
        )


POLICYD_RESOURCE = "policyd-override"


def read_policy_overrides(
    charm: ops.CharmBase, config: GlanceConfig
) -> tuple[tuple[str, str], ...] | None:
    """The policy.d files of the attached `policyd-override` zip (None: option off).

    Raises:
        BlockedError: the option is on and the resource is missing or not a valid zip
            of policy files (nothing is written; the last good overrides stay).
    """
    if not config.use_policyd_override:
        return None
    try:
        path = charm.model.resources.fetch(POLICYD_RESOURCE)
        data = path.read_bytes()
    except (ops.ModelError, NameError, OSError):
        raise BlockedError(f"{STATUS_PREFIX}: {NOT_ATTACHED}") from None
    try:
        return parse_policy_zip(data)
    except PolicyZipError as err:
        logger.error("policyd-override: %s", err)
        raise BlockedError(f"{STATUS_PREFIX}: {err}") from None


def read_stores(
    charm: ops.CharmBase, config: GlanceConfig, remembered: Remembered,
    credentials: IdentityCredentials | None = None,
) -> StoreSelection:
    """The stores ready now (local, ceph, swift, s3, cinder in that order); what others lack."""
    stores = [local_store(config)]
    settings: CephSettings | None = None
    issue: StorageIssue | None = None
    if relation := charm.model.get_relation(ceph.ENDPOINT):
        app_name = charm.app.name
        data = ceph.read(relation, charm.unit.name, ceph_request(config, app_name).request_id)
        settings, issue = select_ceph(
            data, wanted_ceph_pool(config, app_name),
            remembered.last_good_ceph_pool(relation.id), app_name,
        )
        if settings is not None:
            stores.append(ceph_store(config, settings))
    if relation := charm.model.get_relation(object_store.ENDPOINT):
        if object_store.is_ready(relation):
            stores.append(swift_store(config))
        else:
            issue = StorageIssue(incomplete=True).merge(issue)
    if s3 := s3_store(config):
        stores.append(s3)
    if cinder_enabled(charm):
        stores.extend(cinder_stores(config, credentials))
    return StoreSelection(stores=tuple(stores), ceph=settings, issue=issue)


def cinder_enabled(charm: ops.CharmBase) -> bool:
    """cinder-volume-service related, or a storage-backend unit sent `cinder-backend` true.

    hooks/glance_contexts.py CinderStoreContext.
    """
    if charm.model.get_relation(storage_backend.CINDER_ENDPOINT) is not None:
        return True
    return any(storage_backend.cinder_backend(relation)
               for relation in charm.model.relations.get(storage_backend.ENDPOINT, []))


def read_subordinate_sections(charm: ops.CharmBase) -> storage_backend.Sections:
    """What the glance-backend subordinates ask to add to glance-api.conf."""
    sections: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for relation in charm.model.relations.get(storage_backend.ENDPOINT, []):
        sections.extend(storage_backend.subordinate_sections(relation))
    return tuple(sections)


def store_relations(charm: ops.CharmBase) -> dict[str, int]:
    """Relation id of each related optional store: `ceph`, `swift` and `cinder`."""
    found = {}
    for name, endpoint in (("ceph", ceph.ENDPOINT), ("swift", object_store.ENDPOINT),
                           ("cinder", storage_backend.CINDER_ENDPOINT)):
        if relation := charm.model.get_relation(endpoint):
            found[name] = relation.id
    return found


def scaled_out(charm: ops.CharmBase) -> bool:
    """Whether glance runs as more than one unit or under hacluster (needs shared storage)."""
    peer = charm.model.get_relation(peers.ENDPOINT)
    return bool(peer and peer.units) or charm.model.get_relation(ha.ENDPOINT) is not None


def lacks_shared_store(charm: ops.CharmBase, config: GlanceConfig | None = None) -> bool:
    """Scaled out or under hacluster with neither ceph nor swift related (Blocked: local disk).

    Images uploaded through a VIP would land on one unit's disk and 404 on the others.
    """
    return (scaled_out(charm) and not store_relations(charm)
            and not (config is not None and config.s3_enabled))


def active_database_endpoints(charm: ops.CharmBase) -> list[str]:
    """Names of the database endpoints that have a relation."""
    return [name for name in DATABASE_ENDPOINTS if charm.model.relations.get(name)]


def read_database(charm: ops.CharmBase, config: GlanceConfig) -> DatabaseInfo | None:
    """Read the one related database endpoint; Blocked when more than one is related."""
    related = active_database_endpoints(charm)
    if len(related) > 1:
        raise BlockedError(f"Multiple database relations: {', '.join(sorted(related))}")
    if not related:
        return None
    relation = charm.model.relations[related[0]][0]
    if related[0] == shared_db.ENDPOINT:
        return shared_db.read(relation, charm.unit.name, config.database_user, config.database)
    if related[0] == mysql_client.ENDPOINT:
        return mysql_client.read(charm.model, relation, config.database)
    return mysql_legacy.read(relation)


def read_messaging(charm: ops.CharmBase, config: GlanceConfig) -> MessagingInfo | None:
    """Read the RabbitMQ connection from the optional amqp relation."""
    relation = charm.model.get_relation(amqp.ENDPOINT)
    return amqp.read(relation, config.rabbit_user, config.rabbit_vhost) if relation else None


# charmhelpers contrib/openstack/context.py DEFAULT_MULTIPLIER, MAX_DEFAULT_WORKERS
DEFAULT_WORKER_MULTIPLIER = 2.0
MAX_DEFAULT_WORKERS = 4


def read_identity(charm: ops.CharmBase) -> IdentityCredentials | None:
    """Read glance's service credentials from the identity-service relation."""
    relation = charm.model.get_relation(identity.ENDPOINT)
    return identity.read(charm.model, relation) if relation else None


def worker_count(multiplier: float | None, cpus: int | None = None) -> int:
    """glance-api workers as the classic charm sizes them.

    openstack/charm-glance charmhelpers/contrib/openstack/context.py `_calculate_workers`
    (WorkerConfigContext): cpus x multiplier (2 when unset), at least 1, and with
    `worker-multiplier` unset at most MAX_DEFAULT_WORKERS (4, LP#1665270) so a large host
    or a container that sees every host CPU does not start hundreds of workers.
    """
    cpus = cpus or os.cpu_count() or 1
    count = max(1, int(cpus * (DEFAULT_WORKER_MULTIPLIER if multiplier is None else multiplier)))
    return min(count, MAX_DEFAULT_WORKERS) if multiplier is None else count

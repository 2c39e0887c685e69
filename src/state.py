"""GlanceContext: everything the workload needs, built once per hook from config + relations."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from config import GlanceConfig
from exceptions import BlockedError, RelationNotReadyError
from haproxy import BACKEND_PORT
from models import DatabaseInfo, Endpoints, IdentityCredentials, MessagingInfo, url_host
from relations import (
    amqp,
    ceph,
    ha,
    identity,
    mysql_client,
    mysql_legacy,
    object_store,
    peers,
    shared_db,
)
from stores import (
    CephSettings,
    StorageIssue,
    StoreConfig,
    StoreSelection,
    ceph_request,
    ceph_store,
    check_ha_storage,
    check_stores_kept,
    local_store,
    pick_default_store,
    select_ceph,
    swift_store,
    wanted_ceph_pool,
)

if TYPE_CHECKING:
    from charm import GlanceCharm

__all__ = ["GlanceConfig", "GlanceContext", "StoreConfig"]

logger = logging.getLogger(__name__)

API_PORT = 9292  # haproxy's frontend: the port in every endpoint URL
DATABASE_ENDPOINTS = (shared_db.ENDPOINT, mysql_client.ENDPOINT, mysql_legacy.ENDPOINT)
BINDINGS = ("public", "internal", "admin")


class GlanceContext(BaseModel):
    """The only input of the workload layer."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    config: GlanceConfig
    app_name: str
    unit_name: str
    is_leader: bool
    database: DatabaseInfo
    identity: IdentityCredentials
    endpoints: Endpoints | None
    stores: tuple[StoreConfig, ...]
    default_store: str
    workers: int
    bind_port: int = BACKEND_PORT
    # glance-api listens on the cluster binding's address, where the haproxy of every unit
    # reaches it; None (every address) when the binding has none.
    bind_host: str | None = None
    ceph: CephSettings | None = None
    storage_issue: StorageIssue | None = None
    messaging: MessagingInfo | None = None
    tls: bool = False  # haproxy terminates TLS: glance-api trusts X-Forwarded-Proto

    @property
    def enabled_backends(self) -> str:
        """The `enabled_backends` value: every ready store."""
        return ", ".join(f"{store.name}:{store.type}" for store in self.stores)

    @property
    def store_names(self) -> set[str]:
        """Names of the enabled stores."""
        return {store.name for store in self.stores}

    def check_storage(self) -> None:
        """Raise what a related store still lacks (its config is not in use until then).

        Raises:
            StorageNotReadyError: Waiting (incomplete, broker pending) or Blocked (failed).
        """
        if self.storage_issue is not None:
            raise self.storage_issue.error()

    @classmethod
    def from_charm(
        cls, charm: GlanceCharm, config: GlanceConfig, tls: bool = False
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
        selection = read_stores(charm, config)
        if missing or incomplete:
            if selection.issue is not None:
                raise selection.issue.error(missing, incomplete)
            raise RelationNotReadyError(missing, incomplete)
        assert database is not None and credentials is not None
        check_stores_kept(selection, charm.stores_in_use(), store_relations(charm))
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
            bind_host=charm.listen_address(peers.ENDPOINT, config),
        )


def read_stores(charm: GlanceCharm, config: GlanceConfig) -> StoreSelection:
    """The stores ready now (local, ceph, swift in that order) and what the others lack."""
    stores = [local_store(config)]
    settings: CephSettings | None = None
    issue: StorageIssue | None = None
    if relation := charm.model.get_relation(ceph.ENDPOINT):
        app_name = charm.app.name
        data = ceph.read(relation, charm.unit.name, ceph_request(config, app_name).request_id)
        settings, issue = select_ceph(
            data, wanted_ceph_pool(config, app_name),
            charm.last_good_ceph_pool(relation.id), app_name,
        )
        if settings is not None:
            stores.append(ceph_store(config, settings))
    if relation := charm.model.get_relation(object_store.ENDPOINT):
        if object_store.is_ready(relation):
            stores.append(swift_store(config))
        else:
            issue = StorageIssue(incomplete=True).merge(issue)
    return StoreSelection(stores=tuple(stores), ceph=settings, issue=issue)


def store_relations(charm: GlanceCharm) -> dict[str, int]:
    """Relation id of each related optional store: `ceph` and `swift`."""
    found = {}
    for name, endpoint in (("ceph", ceph.ENDPOINT), ("swift", object_store.ENDPOINT)):
        if relation := charm.model.get_relation(endpoint):
            found[name] = relation.id
    return found


def scaled_out(charm: GlanceCharm) -> bool:
    """Whether glance runs as more than one unit or under hacluster (needs shared storage)."""
    peer = charm.model.get_relation(peers.ENDPOINT)
    return bool(peer and peer.units) or charm.model.get_relation(ha.ENDPOINT) is not None


def active_database_endpoints(charm: GlanceCharm) -> list[str]:
    """Names of the database endpoints that have a relation."""
    return [name for name in DATABASE_ENDPOINTS if charm.model.relations.get(name)]


def read_database(charm: GlanceCharm, config: GlanceConfig) -> DatabaseInfo | None:
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


def read_messaging(charm: GlanceCharm, config: GlanceConfig) -> MessagingInfo | None:
    """Read the RabbitMQ connection from the optional amqp relation."""
    relation = charm.model.get_relation(amqp.ENDPOINT)
    return amqp.read(relation, config.rabbit_user, config.rabbit_vhost) if relation else None


def read_identity(charm: GlanceCharm) -> IdentityCredentials | None:
    """Read glance's service credentials from the identity-service relation."""
    relation = charm.model.get_relation(identity.ENDPOINT)
    return identity.read(charm.model, relation) if relation else None


def worker_count(multiplier: float | None, cpus: int | None = None) -> int:
    """Workers as the classic charms size them: cpus x multiplier (2 when unset), at least 1."""
    cpus = cpus or os.cpu_count() or 1
    if multiplier is None:
        multiplier = 2.0
    return max(1, int(cpus * multiplier))


def binding_network(charm: GlanceCharm, binding: str) -> tuple[str | None, list[str]]:
    """Ingress address and subnets of an extra-binding (fallback: identity-service's)."""
    for name in (binding, identity.ENDPOINT):
        try:
            bound = charm.model.get_binding(name)
            if bound is not None and bound.network.ingress_address is not None:
                subnets = [str(i.subnet) for i in getattr(bound.network, "interfaces", [])
                           if getattr(i, "subnet", None)]
                return str(bound.network.ingress_address), subnets
        except Exception as err:  # network-get fails for bindings Juju does not know
            logger.debug("no address for binding %s: %s", name, type(err).__name__)
    return None, []


def endpoint_urls(
    charm: GlanceCharm, config: GlanceConfig, scheme: str = "http"
) -> Endpoints | None:
    """Public/internal/admin URLs on port 9292, or None while they must not be published.

    `scheme` is ``https`` when haproxy terminates TLS.

    The host is `os-*-hostname`, else the VIP once hacluster reports clustered (never the
    unit address before that: LP#1544959), else the binding's address.
    """
    clustered = ha.is_clustered(charm.model.get_relation(ha.ENDPOINT))
    urls = {}
    for name in BINDINGS:
        address, subnets = binding_network(charm, name)
        network = getattr(config, f"os_{name}_network")
        host = ha.endpoint_host(
            override=getattr(config, f"os_{name}_hostname"), vips=config.vip,
            clustered=clustered, networks=[n for n in (network, *subnets) if n],
            unit_address=address or charm.unit.name.replace("/", "-"),
        )
        if host is None:
            return None
        urls[name] = f"{scheme}://{url_host(host)}:{API_PORT}"
    return Endpoints(**urls)

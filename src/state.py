"""GlanceContext: everything the workload needs, built once per hook from config + relations."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from config import GlanceConfig
from exceptions import BlockedError, RelationNotReadyError
from models import DatabaseInfo, Endpoints, IdentityCredentials, url_host
from relations import identity, mysql_client, mysql_legacy, shared_db

if TYPE_CHECKING:
    from charm import GlanceCharm

__all__ = ["GlanceConfig", "GlanceContext", "StoreConfig"]

logger = logging.getLogger(__name__)

API_PORT = 9292
DATABASE_ENDPOINTS = (shared_db.ENDPOINT, mysql_client.ENDPOINT, mysql_legacy.ENDPOINT)
BINDINGS = ("public", "internal", "admin")


class StoreConfig(BaseModel):
    """One glance_store backend: `<name>:<type>` in enabled_backends and its section."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    options: tuple[tuple[str, str], ...]


class GlanceContext(BaseModel):
    """The only input of the workload layer."""

    model_config = ConfigDict(frozen=True)

    config: GlanceConfig
    app_name: str
    unit_name: str
    is_leader: bool
    database: DatabaseInfo
    identity: IdentityCredentials
    endpoints: Endpoints
    stores: tuple[StoreConfig, ...]
    default_store: str
    workers: int
    bind_port: int = API_PORT

    @property
    def enabled_backends(self) -> str:
        """The `enabled_backends` value: every ready store."""
        return ", ".join(f"{store.name}:{store.type}" for store in self.stores)

    @classmethod
    def from_charm(cls, charm: GlanceCharm, config: GlanceConfig) -> GlanceContext:
        """Read relations; raise RelationNotReadyError/BlockedError when not usable yet."""
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
        if missing or incomplete:
            raise RelationNotReadyError(missing, incomplete)
        assert database is not None and credentials is not None
        stores = (local_store(config),)
        return cls(
            config=config,
            app_name=charm.app.name,
            unit_name=charm.unit.name,
            is_leader=charm.unit.is_leader(),
            database=database,
            identity=credentials.model_copy(update={"region": config.region}),
            endpoints=endpoint_urls(charm, config),
            stores=stores,
            default_store=pick_default_store(config, stores),
            workers=worker_count(config.worker_multiplier),
        )


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


def read_identity(charm: GlanceCharm) -> IdentityCredentials | None:
    """Read glance's service credentials from the identity-service relation."""
    relation = charm.model.get_relation(identity.ENDPOINT)
    return identity.read(charm.model, relation) if relation else None


def local_store(config: GlanceConfig) -> StoreConfig:
    """The local file store, always enabled."""
    return StoreConfig(
        name="local", type="file",
        options=(("filesystem_store_datadir", config.filesystem_store_datadir),),
    )


def pick_default_store(config: GlanceConfig, stores: tuple[StoreConfig, ...]) -> str:
    """Default by precedence ceph > swift > local, unless `default-store` pins a ready one."""
    ready = {store.name for store in stores}
    if config.default_store is not None:
        if config.default_store not in ready:
            raise BlockedError(
                f"default-store: {config.default_store} is not related/ready "
                f"(ready: {', '.join(sorted(ready))})"
            )
        return config.default_store
    for name in ("ceph", "swift", "local"):
        if name in ready:
            return name
    return "local"


def worker_count(multiplier: float | None, cpus: int | None = None) -> int:
    """Workers as the classic charms size them: cpus x multiplier (2 when unset), at least 1."""
    cpus = cpus or os.cpu_count() or 1
    if multiplier is None:
        multiplier = 2.0
    return max(1, int(cpus * multiplier))


def binding_address(charm: GlanceCharm, binding: str) -> str | None:
    """Ingress address of an extra-binding, falling back to the identity-service binding."""
    for name in (binding, identity.ENDPOINT):
        try:
            bound = charm.model.get_binding(name)
            if bound is not None and bound.network.ingress_address is not None:
                return str(bound.network.ingress_address)
        except Exception as err:  # network-get fails for bindings Juju does not know
            logger.debug("no address for binding %s: %s", name, type(err).__name__)
    return None


def endpoint_urls(charm: GlanceCharm, config: GlanceConfig) -> Endpoints:
    """Public/internal/admin URLs: os-*-hostname, else the binding's address, port 9292."""
    hosts = {}
    for name in BINDINGS:
        override = getattr(config, f"os_{name}_hostname")
        address = override or binding_address(charm, name)
        hosts[name] = url_host(address or charm.unit.name.replace("/", "-"))
    return Endpoints(**{name: f"http://{host}:{API_PORT}" for name, host in hosts.items()})

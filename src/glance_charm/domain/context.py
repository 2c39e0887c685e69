"""The frozen context the workload renders from (built per hook by `state.context`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.models import DatabaseInfo, Endpoints, IdentityCredentials, MessagingInfo
from glance_charm.domain.ports import BACKEND_PORT
from glance_charm.domain.stores import CephSettings, StorageIssue, StoreConfig


class WorkloadContext(BaseModel):
    """The only input of the workload layer: frozen, built by state.context.GlanceContext."""

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
    # use-policyd-override: the files the policyd-override zip puts in policy.d (None: off)
    policy_overrides: tuple[tuple[str, str], ...] | None = None
    # storage-backend subordinates: (section, ((key, value), ...)) merged into the conf
    subordinate_sections: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    # [keystone_authtoken] memcached_servers: the unit's local memcached when it runs
    memcache_url: str | None = None

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

"""glance_store backends: which stores are ready, their config sections, and the default one.

Pure functions over typed relation data (no `ops`): `state.py` reads the relations and
hands the results here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from glance_charm.domain import distro
from glance_charm.domain.ceph_broker import (
    BrokerRequest,
    BrokerResponse,
    CephPoolOptions,
    build_broker_request,
)
from glance_charm.domain.exceptions import BlockedError, InvalidConfigError, RelationNotReadyError

if TYPE_CHECKING:
    from glance_charm.domain.config import GlanceConfig
    from glance_charm.domain.models import IdentityCredentials

# /etc/ceph/ceph.conf is a plain file the charm manages (the classic charm wrote
# /var/lib/charm/glance/ceph.conf and installed it as the ceph.conf alternative; glance
# is the only Ceph client on its machine, so the indirection buys nothing).
SWIFT_REFERENCE = "swift"
SWIFT_CONTAINER = "glance"
SWIFT_LARGE_OBJECT_SIZE_MB = 5120
SWIFT_LARGE_OBJECT_CHUNK_MB = 200
RBD_CHUNK_SIZE_MB = 8
STDERR_LIMIT = 100
# hooks/glance_contexts.py MultiBackendContext: ceph, then swift, s3, cinder, local.
PRECEDENCE = ("ceph", "swift", "s3", "cinder", "local")
SHARED_STORES = ("ceph", "swift", "s3", "cinder")
CINDER_DEFAULT_TYPE = "cinder"
STORAGE_GROUP = "storage-backend"
BROKER_PENDING = "Ceph broker request incomplete"
HA_NEEDS_SHARED_STORE = (
    "HA requires ceph or swift storage: relate glance to ceph-mon or swift-proxy"
)


class CephClientData(BaseModel):
    """What ceph-mon handed over: credentials, monitors and the answer to our request.

    Attributes:
        auth: the auth scheme (`cephx`).
        key: the cephx key of `client.<application-name>` (never logged).
        mon_hosts: monitor addresses, sorted, IPv6 in brackets.
        rbd_features: `rbd default features` the cluster supports, when sent.
        response: ceph-mon's answer to the request we sent (None: not answered yet).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    auth: str
    key: SecretStr
    mon_hosts: tuple[str, ...]
    rbd_features: int | None = None
    response: BrokerResponse | None = None


class StoreConfig(BaseModel):
    """One glance_store backend: `<name>:<type>` in enabled_backends and its section.

    Credentials are SecretStr (never in a repr or log); the template writes their value.
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str
    type: str
    options: tuple[tuple[str, str | SecretStr], ...]

    @property
    def kind(self) -> str:
        """What `default-store` calls it: the name, `cinder` for every cinder backend."""
        return "cinder" if self.type == "cinder" else self.name


class CephPool(BaseModel):
    """The pools glance uses: `rbd_store_pool`, and the EC data pool behind it (if any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: str
    data_pool: str | None = None


class CephSettings(BaseModel):
    """What /etc/ceph/ceph.conf and the keyring hold, and which pool glance uses.

    Attributes:
        user: cephx client name (`client.<user>`), the application name.
        auth: the auth scheme ceph-mon sent.
        key: the cephx key (never logged).
        mon_hosts: monitor addresses.
        rbd_features: `rbd default features`, when ceph-mon sent it.
        pool: the pools glance uses.
        confirmed: whether ceph-mon answered the current request for `pool` with success
            (False: the last good pool kept while a newer request is pending or failed).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    user: str
    auth: str
    key: SecretStr
    mon_hosts: tuple[str, ...]
    rbd_features: int | None = None
    pool: CephPool
    confirmed: bool = True

    @property
    def keyring_path(self) -> str:
        """Where the keyring goes (ceph's default `/etc/ceph/$cluster.$name.keyring`)."""
        return f"/etc/ceph/ceph.client.{self.user}.keyring"


class StorageNotReadyError(RelationNotReadyError):
    """Missing/incomplete relations plus store notes, joined as the classic charm does."""

    def __init__(
        self, missing: set[str], incomplete: set[str],
        notes: Iterable[str] = (), blocking: bool = False,
    ) -> None:
        self.notes = tuple(notes)
        self.blocking = blocking
        super().__init__(missing, incomplete)

    @property
    def blocked(self) -> bool:
        """Blocked when a relation is missing or a store needs the operator."""
        return bool(self.missing) or self.blocking

    @property
    def message(self) -> str:
        """`<relations message>, <note>, ...` (e.g. `..., Ceph broker request incomplete`)."""
        return ", ".join(part for part in (super().message, *self.notes) if part)


class StorageIssue(BaseModel):
    """Why a related store is not (fully) in use; the other stores keep serving."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incomplete: bool = False
    waiting: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    def merge(self, other: StorageIssue | None) -> StorageIssue:
        """Both issues in one."""
        if other is None:
            return self
        return StorageIssue(
            incomplete=self.incomplete or other.incomplete,
            waiting=self.waiting + other.waiting,
            blocked=self.blocked + other.blocked,
        )

    def error(
        self, missing: set[str] | None = None, incomplete: set[str] | None = None
    ) -> StorageNotReadyError:
        """The error to report, together with other missing/incomplete relation groups."""
        groups = set(incomplete or ()) | ({STORAGE_GROUP} if self.incomplete else set())
        return StorageNotReadyError(
            set(missing or ()), groups, (*self.blocked, *self.waiting), bool(self.blocked)
        )


class StoreSelection(BaseModel):
    """The stores to enable now, the Ceph files' content, and what is still pending."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stores: tuple[StoreConfig, ...]
    ceph: CephSettings | None = None
    issue: StorageIssue | None = None

    @property
    def names(self) -> set[str]:
        """Names of the enabled stores."""
        return {store.name for store in self.stores}


def local_store(config: GlanceConfig) -> StoreConfig:
    """The local file store, always enabled."""
    return StoreConfig(
        name="local", type="file",
        options=(("filesystem_store_datadir", config.filesystem_store_datadir),),
    )


def swift_store(config: GlanceConfig) -> StoreConfig:
    """The swift store: credentials live in the reference file, not in glance-api.conf."""
    return StoreConfig(name="swift", type="swift", options=(
        ("default_swift_reference", SWIFT_REFERENCE),
        ("swift_store_config_file", distro.SWIFT_CONF),
        ("swift_store_container", SWIFT_CONTAINER),
        ("swift_store_create_container_on_put", "true"),
        ("swift_store_large_object_size", str(SWIFT_LARGE_OBJECT_SIZE_MB)),
        ("swift_store_large_object_chunk_size", str(SWIFT_LARGE_OBJECT_CHUNK_MB)),
        ("swift_store_endpoint_type",
         "internalURL" if config.use_internal_endpoints else "publicURL"),
        ("swift_store_auth_insecure", "false"),
    ))


def ceph_store(config: GlanceConfig, ceph: CephSettings) -> StoreConfig:
    """The rbd store section for the pool glance uses."""
    options = [
        ("rbd_store_pool", ceph.pool.pool),
        ("rbd_store_user", ceph.user),
        ("rbd_store_ceph_conf", distro.CEPH_CONF),
        ("rbd_store_chunk_size", str(RBD_CHUNK_SIZE_MB)),
    ]
    if config.rados_connect_timeout is not None:
        options.append(("rados_connect_timeout", str(config.rados_connect_timeout)))
    return StoreConfig(name="ceph", type="rbd", options=tuple(options))


def s3_store(config: GlanceConfig) -> StoreConfig | None:
    """The S3 store (classic ExternalS3Context): None unless all four options are set."""
    if not config.s3_enabled:
        return None
    assert config.s3_store_access_key is not None and config.s3_store_secret_key is not None
    return StoreConfig(name="s3", type="s3", options=(
        ("s3_store_host", str(config.s3_store_host)),
        ("s3_store_access_key", config.s3_store_access_key),
        ("s3_store_secret_key", config.s3_store_secret_key),
        ("s3_store_bucket", str(config.s3_store_bucket)),
    ))


def cinder_stores(
    config: GlanceConfig, identity: IdentityCredentials | None
) -> tuple[StoreConfig, ...]:
    """The cinder backends, as hooks/glance_contexts.py MultiBackendContext renders them.

    Without `cinder-volume-types`: one backend `cinder` (retries, timeout); with them:
    one per volume type with `cinder_volume_type` and glance's own Keystone credentials
    (the classic charm's admin_user/admin_password/admin_tenant_name and auth_url, plus
    the user and project domain, which a Keystone v3 service user needs). With
    `use-internal-endpoints`, `cinder_catalog_info` points at the internal volumev3 URL
    (charmhelpers VolumeAPIContext from Pike on).
    """
    common: list[tuple[str, str | SecretStr]] = [
        ("cinder_http_retries", str(config.cinder_http_retries)),
        ("cinder_state_transition_timeout", str(config.cinder_state_transition_timeout)),
    ]
    if config.use_internal_endpoints:
        common.append(("cinder_catalog_info", "volumev3:cinderv3:internalURL"))
    if not config.cinder_volume_types:
        return (StoreConfig(name=CINDER_DEFAULT_TYPE, type="cinder", options=tuple(common)),)
    stores = []
    for volume_type in config.cinder_volume_types:
        options: list[tuple[str, str | SecretStr]] = [("cinder_volume_type", volume_type)]
        options += common
        if identity is not None:
            options += [
                ("cinder_store_user_name", identity.username),
                ("cinder_store_password", identity.password),
                ("cinder_store_project_name", identity.project_name),
                ("cinder_store_auth_address", identity.auth_url),
                ("cinder_store_user_domain_name", identity.user_domain_name),
                ("cinder_store_project_domain_name", identity.project_domain_name),
            ]
        stores.append(StoreConfig(name=volume_type, type="cinder", options=tuple(options)))
    return tuple(stores)


def ceph_pool_options(config: GlanceConfig, app_name: str) -> CephPoolOptions:
    """The broker request's options from the (validated) charm config."""
    try:
        return CephPoolOptions.from_config(config.model_dump(by_alias=True), app_name)
    except ValidationError as err:
        fields = [str(problem["loc"][0]) for problem in err.errors() if problem["loc"]]
        raise InvalidConfigError(fields or ["ceph"]) from None


def ceph_request(config: GlanceConfig, app_name: str) -> BrokerRequest:
    """The broker request glance sends: deterministic, so unchanged config re-sends it as is."""
    return build_broker_request(ceph_pool_options(config, app_name))


def wanted_ceph_pool(config: GlanceConfig, app_name: str) -> CephPool:
    """The pools the current request creates: RBD metadata pool + EC data pool, or one pool."""
    options = ceph_pool_options(config, app_name)
    if options.pool_type == "erasure-coded":
        return CephPool(
            pool=options.resolved_metadata_pool_name, data_pool=options.resolved_pool_name
        )
    return CephPool(pool=options.resolved_pool_name)


def select_ceph(
    data: CephClientData | None, wanted: CephPool, last_good: CephPool | None, user: str
) -> tuple[CephSettings | None, StorageIssue | None]:
    """Use the wanted pool once ceph-mon confirmed it, else keep the last good one (if any).

    Args:
        data: what ceph-mon sent (None: no key or monitors yet).
        wanted: the pools the current broker request asks for.
        last_good: the pools used before, which ceph-mon confirmed earlier.
        user: the cephx client name.

    Returns:
        The Ceph settings to render (None: no rbd store now) and what is still pending.
    """
    if data is None:
        return None, StorageIssue(incomplete=True)
    response = data.response
    issue: StorageIssue | None = None
    pool: CephPool | None
    if response is not None and response.succeeded:
        pool, confirmed = wanted, True
    else:
        pool, confirmed = last_good, False
        if response is None:
            issue = StorageIssue(waiting=(BROKER_PENDING,))
        else:
            issue = StorageIssue(
                blocked=(f"Ceph broker request failed: {failure_message(response)}",)
            )
    if pool is None:
        return None, issue
    settings = CephSettings(
        user=user, auth=data.auth, key=data.key, mon_hosts=data.mon_hosts,
        rbd_features=data.rbd_features, pool=pool, confirmed=confirmed,
    )
    return settings, issue


def failure_message(response: BrokerResponse) -> str:
    """The broker's error for a status message: one printable line, at most 100 chars."""
    text = " ".join("".join(c if c.isprintable() else " " for c in response.stderr or "").split())
    if not text:
        return f"exit code {response.exit_code}"
    return text if len(text) <= STDERR_LIMIT else text[: STDERR_LIMIT - 3] + "..."


def pick_default_store(config: GlanceConfig, stores: tuple[StoreConfig, ...]) -> str:
    """Default by precedence ceph > swift > s3 > cinder > local, or the pinned ready one.

    `default-store` may pin a ready store; cinder means its first backend (the first of
    cinder-volume-types).
    """
    first: dict[str, str] = {}
    for store in stores:
        first.setdefault(store.kind, store.name)
    if config.default_store is not None:
        if config.default_store not in first:
            raise BlockedError(
                f"default-store: {config.default_store} is not related/ready "
                f"(ready: {', '.join(sorted(first))})"
            )
        return first[config.default_store]
    for kind in PRECEDENCE:
        if kind in first:
            return first[kind]
    return "local"


def check_stores_kept(
    selection: StoreSelection, in_use: Mapping[str, int], related: Mapping[str, int]
) -> None:
    """Keep the last good config while a store it enables turns unusable.

    A store in the written config whose relation is still there (same relation id) is not
    dropped because its data went missing or bad (a garbled key, every unit departed): the
    written files stay, glance keeps using it, and its storage issue is reported. A store
    not in use yet that is not ready does not hold anything back; a store whose relation
    is gone is dropped.

    Args:
        selection: the stores ready now.
        in_use: store name -> relation id, of the stores in the written config.
        related: store name -> relation id, of the related stores now.

    Raises:
        StorageNotReadyError: a store in use is not ready any more.
    """
    still_related = {name for name, rel_id in in_use.items() if related.get(name) == rel_id}
    if still_related - selection.names and selection.issue is not None:
        raise selection.issue.error()


def check_ha_storage(clustered: bool, selection: StoreSelection) -> None:
    """Refuse HA on local disk only: images would exist on one unit and not the others.

    Raises:
        StorageNotReadyError: a shared store is related but not ready yet.
        BlockedError: no shared store is related at all.
    """
    if not clustered or {store.kind for store in selection.stores} & set(SHARED_STORES):
        return
    if selection.issue is not None:
        raise selection.issue.error()
    raise BlockedError(HA_NEEDS_SHARED_STORE)

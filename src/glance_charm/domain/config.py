"""GlanceConfig: the charm's config options, validated (dashed names as the classic charm)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from glance_charm.domain.config_flags import (
    ConfigFlagsError,
    check_flags,
    owned_keys,
    parse_config_flags,
)
from glance_charm.domain.distro import archive_for_origin
from glance_charm.domain.exceptions import BlockedError, InvalidConfigError
from glance_charm.domain.models import is_hostname, wrap_secrets

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
_NAGIOS_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
_FORMAT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SIZE = re.compile(r"^\s*(?P<num>\d+)\s*(?P<unit>[KMGTPE]?)B?\s*$", re.IGNORECASE)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
OWNED_FLAGS = "api-config-flags sets options the charm owns"
# hooks/glance_utils.py check_optional_config_and_relations: 'Invalid external S3 config: ...'
S3_INCOMPLETE = "Invalid external S3 config: missing"
# store (section) names of glance-api.conf a cinder volume type may not take
RESERVED_STORE_NAMES = frozenset({
    "local", "ceph", "swift", "s3", "DEFAULT", "glance_store", "database", "image_format",
    "keystone_authtoken", "paste_deploy", "oslo_policy", "os_glance_staging_store",
    "os_glance_tasks_store",
})
MAX_IMAGE_SIZE = 9223372036854775808  # glance's own bound for image_size_cap (8 EiB)


def parse_size(value: str) -> int:
    """Parse `1TB`, `512M` or `1048576` (powers of 1024) into bytes."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError("expected bytes or a number with a K/M/G/T/P/E suffix")
    size = int(match["num"]) * 1024 ** _UNITS[match["unit"].upper()]
    if not 0 < size <= MAX_IMAGE_SIZE:
        raise ValueError("must be between 1 byte and 8EB")
    return size


def _decode_pem(value: str) -> str:
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ValueError("must be base64-encoded PEM") from err
    if "-----BEGIN " not in text:
        raise ValueError("must be base64-encoded PEM")
    return text


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    bad = [item for item in items if not _FORMAT.match(item)]
    if bad:
        raise ValueError("items must be lowercase format names")
    return items


class GlanceConfig(BaseModel):
    """Validated charm config; attribute names are the options with `_` for `-`."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    openstack_origin: str = Field("distro", alias="openstack-origin")
    action_managed_upgrade: bool = Field(False, alias="action-managed-upgrade")
    debug: bool = False
    # oslo.log removed `verbose` (Newton): the classic charm still writes it and glance-api
    # ignores it. Accepted so bundles keep working; it changes nothing (documented).
    verbose: bool = False
    use_syslog: bool = Field(False, alias="use-syslog")
    audit_middleware: bool = Field(False, alias="audit-middleware")
    api_config_flags: tuple[tuple[str, str], ...] = Field((), alias="api-config-flags")
    use_policyd_override: bool = Field(False, alias="use-policyd-override")
    image_conversion: bool = Field(False, alias="image-conversion")
    s3_store_host: str | None = Field(
        None, alias="s3-store-host", pattern=r"^https?://[^\s/?#@]+(?:/[^\s?#]*)?$"
    )
    s3_store_access_key: SecretStr | None = Field(None, alias="s3-store-access-key")
    s3_store_secret_key: SecretStr | None = Field(None, alias="s3-store-secret-key")
    s3_store_bucket: str | None = Field(
        None, alias="s3-store-bucket", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    cinder_volume_types: tuple[str, ...] = Field((), alias="cinder-volume-types")
    cinder_http_retries: int = Field(3, alias="cinder-http-retries", ge=0, le=100)
    cinder_state_transition_timeout: int = Field(
        300, alias="cinder-state-transition-timeout", ge=1, le=86400
    )
    custom_import_properties: str | None = Field(None, alias="custom-import-properties")
    restrict_image_location_operations: bool = Field(
        False, alias="restrict-image-location-operations"
    )
    region: str = Field("RegionOne", pattern=r"^[A-Za-z0-9_.-]{1,255}$")
    worker_multiplier: float | None = Field(None, alias="worker-multiplier", ge=0, le=64)
    hashing_algorithm: Literal["sha256", "sha384", "sha512", "sha3_256", "sha3_384",
                               "sha3_512"] = Field("sha512", alias="hashing-algorithm")
    database: str = Field("glance", min_length=1, max_length=64)
    database_user: str = Field("glance", alias="database-user", min_length=1, max_length=32)
    filesystem_store_datadir: str = Field(
        "/var/lib/glance/images/", alias="filesystem-store-datadir"
    )
    default_store: Literal["local", "swift", "ceph", "s3", "cinder"] | None = Field(
        None, alias="default-store"
    )
    use_internal_endpoints: bool = Field(False, alias="use-internal-endpoints")
    disk_formats: tuple[str, ...] = Field(
        ("ami", "ari", "aki", "vhd", "vmdk", "raw", "qcow2", "vdi", "iso", "root-tar"),
        alias="disk-formats",
    )
    container_formats: tuple[str, ...] = Field((), alias="container-formats")
    image_size_cap: int = Field(1024**4, alias="image-size-cap")
    expose_image_locations: bool = Field(True, alias="expose-image-locations")

    ceph_osd_replication_count: int = Field(3, alias="ceph-osd-replication-count", ge=1, le=10)
    ceph_pool_weight: int = Field(5, alias="ceph-pool-weight", ge=0, le=100)
    restrict_ceph_pools: bool = Field(False, alias="restrict-ceph-pools")
    rbd_pool_name: str | None = Field(
        None, alias="rbd-pool-name", pattern=r"^[A-Za-z0-9_.-]{1,100}$"
    )
    pool_type: Literal["replicated", "erasure-coded"] = Field("replicated", alias="pool-type")
    rados_connect_timeout: int | None = Field(None, alias="rados-connect-timeout", ge=0)
    ec_profile_name: str | None = Field(
        None, alias="ec-profile-name", pattern=r"^[A-Za-z0-9_.-]{1,100}$"
    )
    ec_rbd_metadata_pool: str | None = Field(
        None, alias="ec-rbd-metadata-pool", pattern=r"^[A-Za-z0-9_.-]{1,100}$"
    )
    ec_profile_k: int = Field(1, alias="ec-profile-k", ge=1)
    ec_profile_m: int = Field(2, alias="ec-profile-m", ge=1)
    ec_profile_locality: int | None = Field(None, alias="ec-profile-locality", ge=1)
    ec_profile_crush_locality: str | None = Field(None, alias="ec-profile-crush-locality")
    ec_profile_durability_estimator: int | None = Field(
        None, alias="ec-profile-durability-estimator", ge=1
    )
    ec_profile_helper_chunks: int | None = Field(None, alias="ec-profile-helper-chunks", ge=1)
    ec_profile_scalar_mds: Literal["jerasure", "isa", "shec"] | None = Field(
        None, alias="ec-profile-scalar-mds"
    )
    ec_profile_plugin: Literal["jerasure", "lrc", "isa", "shec", "clay"] = Field(
        "jerasure", alias="ec-profile-plugin"
    )
    ec_profile_technique: str | None = Field(None, alias="ec-profile-technique")
    ec_profile_device_class: str | None = Field(None, alias="ec-profile-device-class")
    bluestore_compression_algorithm: Literal["lz4", "snappy", "zlib", "zstd"] | None = Field(
        None, alias="bluestore-compression-algorithm"
    )
    bluestore_compression_mode: Literal["none", "passive", "aggressive", "force"] | None = (
        Field(None, alias="bluestore-compression-mode")
    )
    bluestore_compression_required_ratio: float | None = Field(
        None, alias="bluestore-compression-required-ratio", gt=0, le=1
    )
    bluestore_compression_min_blob_size: int | None = Field(
        None, alias="bluestore-compression-min-blob-size", ge=0
    )
    bluestore_compression_min_blob_size_hdd: int | None = Field(
        None, alias="bluestore-compression-min-blob-size-hdd", ge=0
    )
    bluestore_compression_min_blob_size_ssd: int | None = Field(
        None, alias="bluestore-compression-min-blob-size-ssd", ge=0
    )
    bluestore_compression_max_blob_size: int | None = Field(
        None, alias="bluestore-compression-max-blob-size", ge=0
    )
    bluestore_compression_max_blob_size_hdd: int | None = Field(
        None, alias="bluestore-compression-max-blob-size-hdd", ge=0
    )
    bluestore_compression_max_blob_size_ssd: int | None = Field(
        None, alias="bluestore-compression-max-blob-size-ssd", ge=0
    )

    rabbit_user: str = Field("glance", alias="rabbit-user", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    rabbit_vhost: str = Field(
        "openstack", alias="rabbit-vhost", pattern=r"^[A-Za-z0-9_./-]{1,64}$"
    )

    dns_ha: bool = Field(False, alias="dns-ha")
    vip: tuple[str, ...] = ()
    vip_iface: str = Field("eth0", pattern=r"^[A-Za-z0-9_.:@-]{1,15}$")
    vip_cidr: int = Field(24, ge=1, le=128)
    ha_bindiface: str = Field("eth0", alias="ha-bindiface", pattern=r"^[A-Za-z0-9_.:@-]{1,15}$")
    ha_mcastport: int = Field(5444, alias="ha-mcastport", ge=1, le=65535)
    haproxy_server_timeout: int | None = Field(None, alias="haproxy-server-timeout", ge=1)
    haproxy_client_timeout: int | None = Field(None, alias="haproxy-client-timeout", ge=1)
    haproxy_queue_timeout: int | None = Field(None, alias="haproxy-queue-timeout", ge=1)
    haproxy_connect_timeout: int | None = Field(None, alias="haproxy-connect-timeout", ge=1)

    ssl_cert: str | None = None
    ssl_key: SecretStr | None = None  # the TLS private key: never in repr() or errors
    ssl_ca: str | None = None

    os_public_hostname: str | None = Field(None, alias="os-public-hostname")
    os_internal_hostname: str | None = Field(None, alias="os-internal-hostname")
    os_admin_hostname: str | None = Field(None, alias="os-admin-hostname")
    os_public_network: str | None = Field(None, alias="os-public-network")
    os_internal_network: str | None = Field(None, alias="os-internal-network")
    os_admin_network: str | None = Field(None, alias="os-admin-network")
    prefer_ipv6: bool = Field(False, alias="prefer-ipv6")
    # nrpe-external-master: part of the nagios host name and of file names, so no spaces,
    # slashes or characters nagios refuses in object names.
    nagios_context: str = Field("juju", alias="nagios_context", pattern=_NAGIOS_NAME)
    nagios_servicegroups: str = Field("", alias="nagios_servicegroups")

    @field_validator("nagios_servicegroups")
    @classmethod
    def _servicegroups(cls, value: str) -> str:
        groups = [group.strip() for group in value.split(",") if group.strip()]
        if any(not re.match(_NAGIOS_NAME, group) for group in groups):
            raise ValueError("must be a comma-separated list of nagios service group names")
        return ",".join(groups)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """Juju hands unset string options over as '' (or absent): treat both as unset."""
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return wrap_secrets(cls, data)  # ssl_key: never an error's input

    @field_validator("api_config_flags", mode="before")
    @classmethod
    def _config_flags(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return check_flags(parse_config_flags(value))
        except ConfigFlagsError as err:
            raise ValueError(str(err)) from None

    @field_validator("s3_store_access_key", "s3_store_secret_key")
    @classmethod
    def _s3_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if text != text.strip() or any(ord(c) < 33 or ord(c) == 127 for c in text):
                raise ValueError("no blanks or control characters")
        return value

    @field_validator("cinder_volume_types", mode="before")
    @classmethod
    def _volume_types(cls, value: Any) -> Any:
        """Comma-separated cinder volume types: each becomes a store (section) name."""
        if not isinstance(value, str):
            return value
        types = tuple(item.strip() for item in value.split(","))
        if any(not re.match(r"^[A-Za-z0-9_-]{1,64}$", item) for item in types):
            raise ValueError("volume type names: letters, digits, _ and - only")
        if set(types) & RESERVED_STORE_NAMES or len(set(types)) != len(types):
            raise ValueError("duplicate, or the name of another store")
        return types

    @property
    def s3_missing(self) -> list[str]:
        """The S3 options still unset when some are set (all four or none)."""
        values = {"s3-store-host": self.s3_store_host,
                  "s3-store-access-key": self.s3_store_access_key,
                  "s3-store-secret-key": self.s3_store_secret_key,
                  "s3-store-bucket": self.s3_store_bucket}
        if not any(values.values()):
            return []
        return [name for name, value in values.items() if not value]

    @property
    def s3_enabled(self) -> bool:
        """Whether the S3 store is configured (all four options set)."""
        return self.s3_store_host is not None and not self.s3_missing

    @field_validator("custom_import_properties")
    @classmethod
    def _import_properties(cls, value: str | None) -> str | None:
        """Comma-separated key:value pairs (classic validate_custom_import_properties)."""
        if value is None:
            return value
        if any(":" not in prop for prop in value.split(",")):
            raise ValueError("every property needs key:value")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be one line")
        return value

    @property
    def image_import_plugins(self) -> tuple[str, ...]:
        """The import plugins to enable (classic GlanceImageImportContext order)."""
        plugins = ("image_conversion",) if self.image_conversion else ()
        return plugins + (("inject_image_metadata",) if self.custom_import_properties else ())

    @field_validator("openstack_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        archive_for_origin(value)  # raises ValueError for an unknown form
        return value.strip()

    @field_validator("database", "database_user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("letters, digits and _ only")
        return value

    @field_validator("filesystem_store_datadir")
    @classmethod
    def _datadir(cls, value: str) -> str:
        parts = value.split("/")
        if not value.startswith("/") or ".." in parts or value.strip("/") == "":
            raise ValueError("must be an absolute directory path other than /")
        if any(ord(c) < 32 for c in value) or " " in value:
            raise ValueError("must not contain spaces or control characters")
        return value.rstrip("/") + "/"

    @field_validator("disk_formats", "container_formats", mode="before")
    @classmethod
    def _formats(cls, value: Any) -> Any:
        return _csv(value) if isinstance(value, str) else value

    @field_validator("disk_formats")
    @classmethod
    def _some_disk_format(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one disk format is needed")
        return value

    @field_validator("image_size_cap", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("vip", mode="before")
    @classmethod
    def _vips(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        vips = tuple(value.split())
        for vip in vips:
            ipaddress.ip_address(vip)  # ValueError names the option
        if len(set(vips)) != len(vips):
            raise ValueError("duplicate addresses")
        return vips

    @field_validator("os_public_hostname", "os_internal_hostname", "os_admin_hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and not is_hostname(value.strip()):
            raise ValueError("not a valid host name")
        return value.strip() if value else value

    @field_validator("os_public_network", "os_internal_network", "os_admin_network")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_network(value.strip(), strict=False)
        return value

    @field_validator("ssl_cert", "ssl_key", "ssl_ca")
    @classmethod
    def _pem(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        if value is not None:
            _decode_pem(_text(value).strip())
        return value

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> GlanceConfig:
        if bool(self.ssl_cert) != bool(self.ssl_key):
            raise ValueError("ssl_cert and ssl_key must be set together")
        return self

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> GlanceConfig:
        """Validate raw config; raise InvalidConfigError naming every bad option.

        Raises:
            InvalidConfigError: options with invalid values, each named.
            BlockedError: `api-config-flags` sets [DEFAULT] options the charm renders itself,
                or only some of the four s3-store-* options are set.
        """
        try:
            config = cls.model_validate(dict(raw))
        except ValidationError as err:
            raise InvalidConfigError(_bad_options(err)) from None
        if owned := owned_keys(key for key, _ in config.api_config_flags):
            raise BlockedError(f"{OWNED_FLAGS}: {', '.join(owned)}")
        if missing := config.s3_missing:
            raise BlockedError(f"{S3_INCOMPLETE} {', '.join(missing)}")
        return config

    def pem(self, option: Literal["ssl_cert", "ssl_key", "ssl_ca"]) -> str | None:
        """Decoded PEM text of one of the ssl_* options."""
        value = getattr(self, option)
        return _decode_pem(_text(value).strip()) if value else None


def _text(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _bad_options(err: ValidationError) -> list[str]:
    names = []
    for problem in err.errors():
        if problem["loc"]:
            names.append(_option_name(str(problem["loc"][0])))
        elif "ssl_cert and ssl_key" in problem["msg"]:
            names.extend(["ssl_cert", "ssl_key"])
    return names


def _option_name(field: str) -> str:
    info = GlanceConfig.model_fields.get(field)
    if info is not None and info.alias:
        return info.alias
    return field

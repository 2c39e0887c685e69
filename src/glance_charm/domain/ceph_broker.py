"""The Ceph broker request glance sends to ceph-mon, and the response it reads back.

The request reproduces the classic charm's ``glance_utils.get_ceph_request()``
built with its bundled charmhelpers ``CephBrokerRq``: same ops, same key order,
and the same deterministic ``request-id`` (sha1 of the ops serialised with sorted
keys), so a unit upgraded from the classic charm re-sends an identical request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

API_VERSION = 1
IMAGES_GROUP = "images"
RBD_APP_NAME = "rbd"
# Metadata sizing of an erasure-coded setup: ~1% of the data weight (classic charm).
METADATA_WEIGHT_FRACTION = 0.01

BrokerOp = dict[str, Any]


class CephPoolOptions(BaseModel):
    """Charm config that shapes the broker request (classic option names in the docs).

    Attributes:
        app_name: the application name; the cephx key is named after it and it is the
            default for the pool, metadata pool and EC profile names.
        pool_name: ``rbd-pool-name``; empty means ``app_name``.
        replicas: ``ceph-osd-replication-count``.
        weight: ``ceph-pool-weight`` (percent of the cluster's data).
        restrict_ceph_pools: ``restrict-ceph-pools``.
        pool_type: ``pool-type``.
        ec_profile_name: ``ec-profile-name``; empty means ``<app_name>-profile``.
        ec_rbd_metadata_pool: ``ec-rbd-metadata-pool``; empty means ``<app_name>-metadata``.
        ec_profile_k: ``ec-profile-k``.
        ec_profile_m: ``ec-profile-m``.
        ec_profile_locality: ``ec-profile-locality`` (lrc).
        ec_profile_crush_locality: ``ec-profile-crush-locality`` (lrc).
        ec_profile_durability_estimator: ``ec-profile-durability-estimator`` (shec).
        ec_profile_helper_chunks: ``ec-profile-helper-chunks`` (clay).
        ec_profile_scalar_mds: ``ec-profile-scalar-mds`` (clay).
        ec_profile_plugin: ``ec-profile-plugin``.
        ec_profile_technique: ``ec-profile-technique``.
        ec_profile_device_class: ``ec-profile-device-class``.
        compression_algorithm: ``bluestore-compression-algorithm``.
        compression_mode: ``bluestore-compression-mode``.
        compression_required_ratio: ``bluestore-compression-required-ratio``.
        compression_min_blob_size: ``bluestore-compression-min-blob-size``.
        compression_min_blob_size_hdd: ``bluestore-compression-min-blob-size-hdd``.
        compression_min_blob_size_ssd: ``bluestore-compression-min-blob-size-ssd``.
        compression_max_blob_size: ``bluestore-compression-max-blob-size``.
        compression_max_blob_size_hdd: ``bluestore-compression-max-blob-size-hdd``.
        compression_max_blob_size_ssd: ``bluestore-compression-max-blob-size-ssd``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_name: str = Field(default="glance", min_length=1)
    pool_name: str | None = None
    replicas: int = Field(default=3, ge=1)
    weight: int = Field(default=5, ge=0)
    restrict_ceph_pools: bool = False
    pool_type: Literal["replicated", "erasure-coded"] = "replicated"
    ec_profile_name: str | None = None
    ec_rbd_metadata_pool: str | None = None
    ec_profile_k: int = 1
    ec_profile_m: int = 2
    ec_profile_locality: int | None = None
    ec_profile_crush_locality: str | None = None
    ec_profile_durability_estimator: int | None = None
    ec_profile_helper_chunks: int | None = None
    ec_profile_scalar_mds: str | None = None
    ec_profile_plugin: str = "jerasure"
    ec_profile_technique: str | None = None
    ec_profile_device_class: str | None = None
    compression_algorithm: Literal["lz4", "snappy", "zlib", "zstd"] | None = None
    compression_mode: Literal["none", "passive", "aggressive", "force"] | None = None
    compression_required_ratio: float | None = None
    compression_min_blob_size: int | None = None
    compression_min_blob_size_hdd: int | None = None
    compression_min_blob_size_ssd: int | None = None
    compression_max_blob_size: int | None = None
    compression_max_blob_size_hdd: int | None = None
    compression_max_blob_size_ssd: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], app_name: str) -> CephPoolOptions:
        """Build the options from charm config keyed by the classic option names.

        Args:
            config: charm config (e.g. ``self.config``); unset options may be absent or None.
            app_name: the application name.

        Returns:
            The validated options.

        Raises:
            pydantic.ValidationError: an option holds an invalid value.
        """
        values: dict[str, Any] = {"app_name": app_name}
        for field, option in _CONFIG_OPTIONS.items():
            if config.get(option) is not None:
                values[field] = config[option]
        return cls.model_validate(values)

    @property
    def resolved_pool_name(self) -> str:
        """Name of the pool glance stores images in."""
        return self.pool_name or self.app_name

    @property
    def resolved_metadata_pool_name(self) -> str:
        """Name of the replicated pool holding RBD metadata of an erasure-coded setup."""
        return self.ec_rbd_metadata_pool or f"{self.app_name}-metadata"

    @property
    def resolved_profile_name(self) -> str:
        """Name of the erasure-code profile."""
        return self.ec_profile_name or f"{self.app_name}-profile"

    def compression_fields(self) -> dict[str, Any]:
        """BlueStore compression settings keyed as the broker op expects them."""
        return {
            "compression-algorithm": self.compression_algorithm,
            "compression-mode": self.compression_mode,
            "compression-required-ratio": self.compression_required_ratio,
            "compression-min-blob-size": self.compression_min_blob_size,
            "compression-min-blob-size-hdd": self.compression_min_blob_size_hdd,
            "compression-min-blob-size-ssd": self.compression_min_blob_size_ssd,
            "compression-max-blob-size": self.compression_max_blob_size,
            "compression-max-blob-size-hdd": self.compression_max_blob_size_hdd,
            "compression-max-blob-size-ssd": self.compression_max_blob_size_ssd,
        }


_CONFIG_OPTIONS: dict[str, str] = {
    "pool_name": "rbd-pool-name",
    "replicas": "ceph-osd-replication-count",
    "weight": "ceph-pool-weight",
    "restrict_ceph_pools": "restrict-ceph-pools",
    "pool_type": "pool-type",
    "ec_profile_name": "ec-profile-name",
    "ec_rbd_metadata_pool": "ec-rbd-metadata-pool",
    "ec_profile_k": "ec-profile-k",
    "ec_profile_m": "ec-profile-m",
    "ec_profile_locality": "ec-profile-locality",
    "ec_profile_crush_locality": "ec-profile-crush-locality",
    "ec_profile_durability_estimator": "ec-profile-durability-estimator",
    "ec_profile_helper_chunks": "ec-profile-helper-chunks",
    "ec_profile_scalar_mds": "ec-profile-scalar-mds",
    "ec_profile_plugin": "ec-profile-plugin",
    "ec_profile_technique": "ec-profile-technique",
    "ec_profile_device_class": "ec-profile-device-class",
    "compression_algorithm": "bluestore-compression-algorithm",
    "compression_mode": "bluestore-compression-mode",
    "compression_required_ratio": "bluestore-compression-required-ratio",
    "compression_min_blob_size": "bluestore-compression-min-blob-size",
    "compression_min_blob_size_hdd": "bluestore-compression-min-blob-size-hdd",
    "compression_min_blob_size_ssd": "bluestore-compression-min-blob-size-ssd",
    "compression_max_blob_size": "bluestore-compression-max-blob-size",
    "compression_max_blob_size_hdd": "bluestore-compression-max-blob-size-hdd",
    "compression_max_blob_size_ssd": "bluestore-compression-max-blob-size-ssd",
}


class BrokerRequest(BaseModel):
    """A broker request: the ops in order and their deterministic id.

    Attributes:
        ops: the broker operations, as sent on the wire (key order preserved).
        request_id: sha1 of ``json.dumps(ops, sort_keys=True)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ops: list[BrokerOp]
    request_id: str

    @model_validator(mode="after")
    def _id_matches_ops(self) -> BrokerRequest:
        if self.request_id != ops_request_id(self.ops):
            raise ValueError("request_id must be the sha1 of the ops")
        return self

    @classmethod
    def from_ops(cls, ops: list[BrokerOp]) -> BrokerRequest:
        """Wrap ops, computing their request id.

        Args:
            ops: broker operations.

        Returns:
            The request.
        """
        return cls(ops=ops, request_id=ops_request_id(ops))

    def to_json(self) -> str:
        """The ``broker_req`` relation value, byte-identical to the classic charm's."""
        return json.dumps(
            {"api-version": API_VERSION, "ops": self.ops, "request-id": self.request_id}
        )


def ops_request_id(ops: list[BrokerOp]) -> str:
    """Return the deterministic request id of a list of broker ops.

    Args:
        ops: broker operations.

    Returns:
        Hex sha1 of the ops serialised with sorted keys.
    """
    return hashlib.sha1(
        json.dumps(ops, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()


# The classic metadata pool of an erasure-coded setup is created without compression.
NO_COMPRESSION: Mapping[str, Any] = dict.fromkeys(CephPoolOptions().compression_fields())


def _pool_common_fields(weight: float, compression: Mapping[str, Any]) -> BrokerOp:
    """Fields shared by replicated and erasure create-pool ops, in wire order."""
    return {
        "app-name": RBD_APP_NAME,
        **compression,
        "group": IMAGES_GROUP,
        "max-bytes": None,
        "max-objects": None,
        "group-namespace": None,
        "rbd-mirroring-mode": "pool",
        "weight": weight,
    }


def _replicated_pool_op(
    name: str, replicas: int, weight: float, compression: Mapping[str, Any] = NO_COMPRESSION
) -> BrokerOp:
    op: BrokerOp = {
        "op": "create-pool",
        "name": name,
        "replicas": replicas,
        "pg_num": None,
        "crush-profile": None,
    }
    op.update(_pool_common_fields(weight, compression))
    return op


def _erasure_pool_op(
    name: str, profile: str, weight: float, compression: Mapping[str, Any]
) -> BrokerOp:
    op: BrokerOp = {
        "op": "create-pool",
        "name": name,
        "pool-type": "erasure",
        "erasure-profile": profile,
        "allow-ec-overwrites": True,
    }
    op.update(_pool_common_fields(weight, compression))
    return op


def _erasure_profile_op(opts: CephPoolOptions) -> BrokerOp:
    return {
        "op": "create-erasure-profile",
        "name": opts.resolved_profile_name,
        "k": opts.ec_profile_k,
        "m": opts.ec_profile_m,
        "l": opts.ec_profile_locality,
        "c": opts.ec_profile_durability_estimator,
        "d": opts.ec_profile_helper_chunks,
        "erasure-type": opts.ec_profile_plugin,
        "erasure-technique": opts.ec_profile_technique,
        "failure-domain": None,
        "device-class": opts.ec_profile_device_class,
        "scalar-mds": opts.ec_profile_scalar_mds,
        "crush-locality": opts.ec_profile_crush_locality,
    }


def _permissions_op(key_name: str) -> BrokerOp:
    return {
        "op": "add-permissions-to-key",
        "group": IMAGES_GROUP,
        "namespace": None,
        "name": key_name,
        "group-permission": "rwx",
        "object-prefix-permissions": {"class-read": ["rbd_children"]},
    }


def build_ops(opts: CephPoolOptions) -> list[BrokerOp]:
    """Return the broker ops for the options, in the classic charm's order.

    Args:
        opts: pool options.

    Returns:
        The list of ops (an op equal to an earlier one is not repeated, as in
        charmhelpers' ``CephBrokerRq.add_op``).
    """
    candidates: list[BrokerOp] = []
    if opts.pool_type == "erasure-coded":
        metadata_weight = opts.weight * METADATA_WEIGHT_FRACTION
        data_weight = opts.weight - metadata_weight
        candidates.append(
            _replicated_pool_op(opts.resolved_metadata_pool_name, opts.replicas, metadata_weight)
        )
        candidates.append(_erasure_profile_op(opts))
        candidates.append(
            _erasure_pool_op(
                opts.resolved_pool_name,
                opts.resolved_profile_name,
                data_weight,
                opts.compression_fields(),
            )
        )
    else:
        candidates.append(
            _replicated_pool_op(
                opts.resolved_pool_name, opts.replicas, opts.weight, opts.compression_fields()
            )
        )
    if opts.restrict_ceph_pools:
        candidates.append(_permissions_op(opts.app_name))

    ops: list[BrokerOp] = []
    for op in candidates:
        if op not in ops:
            ops.append(op)
    return ops


def build_broker_request(opts: CephPoolOptions) -> BrokerRequest:
    """Build glance's Ceph broker request.

    Args:
        opts: pool options.

    Returns:
        The request with its deterministic id.
    """
    return BrokerRequest.from_ops(build_ops(opts))


class BrokerResponse(BaseModel):
    """A ceph-mon broker response (``broker-rsp-<unit>`` or legacy ``broker_rsp``).

    Attributes:
        exit_code: 0 on success.
        request_id: id of the request answered; legacy responses may have none.
        stderr: error text on failure.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    exit_code: StrictInt = Field(validation_alias="exit-code")
    request_id: StrictStr | None = Field(default=None, validation_alias="request-id")
    stderr: str | None = None

    @field_validator("stderr", mode="before")
    @classmethod
    def _stderr_as_text(cls, value: object) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    @property
    def succeeded(self) -> bool:
        """Whether ceph-mon processed the request without error."""
        return self.exit_code == 0


def parse_broker_response(raw: str | None, request_id: str | None) -> BrokerResponse | None:
    """Parse a broker response, keeping it only if it answers ``request_id``.

    Never raises: absent, empty, non-JSON, non-object or ill-typed data (``exit-code``
    must be a JSON integer, ``request-id`` a string) all give None.

    Args:
        raw: the relation value.
        request_id: id of the request sent; pass None when reading the legacy
            ``broker_rsp`` key, which counts only when it carries no request id.

    Returns:
        The response, or None when there is no valid response to that request.
    """
    if not raw or not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            return None
        response = BrokerResponse.model_validate(data)
    except (ValueError, TypeError, RecursionError, ValidationError):
        return None
    return response if response.request_id == request_id else None


def select_broker_response(
    unit_raw: str | None, legacy_raw: str | None, request_id: str
) -> BrokerResponse | None:
    """Pick the response answering ``request_id`` from one ceph-mon unit's data.

    As charmhelpers' ``is_request_complete_for_rid``: the unit-targeted
    ``broker-rsp-<unit>`` key wins whenever it is set; only without it does a legacy
    ``broker_rsp`` count, and only one carrying no request id.

    Args:
        unit_raw: value of ``broker-rsp-<unit>`` (e.g. ``broker-rsp-glance-0``).
        legacy_raw: value of ``broker_rsp``.
        request_id: id of the request sent.

    Returns:
        The matching response, or None.
    """
    if unit_raw:
        return parse_broker_response(unit_raw, request_id)
    return parse_broker_response(legacy_raw, None)

"""ceph_broker builds exactly the broker request the classic glance charm sends."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from glance_charm.domain.ceph_broker import (
    BrokerRequest,
    BrokerResponse,
    CephPoolOptions,
    build_broker_request,
    build_ops,
    ops_request_id,
    parse_broker_response,
    select_broker_response,
)
from tests.unit import charmhelpers_shim

REPO_ROOT = Path(__file__).resolve().parents[3]

CLASSIC_REPO = Path("/work/.mirror/openstack+charm-glance/repo")

# Config as the classic charm's config.yaml defaults it.
CLASSIC_DEFAULTS: dict[str, Any] = {
    "ceph-osd-replication-count": 3,
    "ceph-pool-weight": 5,
    "restrict-ceph-pools": False,
    "rbd-pool-name": None,
    "pool-type": "replicated",
    "ec-profile-name": None,
    "ec-rbd-metadata-pool": None,
    "ec-profile-k": 1,
    "ec-profile-m": 2,
    "ec-profile-locality": None,
    "ec-profile-crush-locality": None,
    "ec-profile-durability-estimator": None,
    "ec-profile-helper-chunks": None,
    "ec-profile-scalar-mds": None,
    "ec-profile-plugin": "jerasure",
    "ec-profile-technique": None,
    "ec-profile-device-class": None,
    "bluestore-compression-algorithm": None,
    "bluestore-compression-mode": None,
    "bluestore-compression-required-ratio": None,
    "bluestore-compression-min-blob-size": None,
    "bluestore-compression-min-blob-size-hdd": None,
    "bluestore-compression-min-blob-size-ssd": None,
    "bluestore-compression-max-blob-size": None,
    "bluestore-compression-max-blob-size-hdd": None,
    "bluestore-compression-max-blob-size-ssd": None,
}

COMPRESSION = {
    "bluestore-compression-algorithm": "zstd",
    "bluestore-compression-mode": "aggressive",
    "bluestore-compression-required-ratio": 0.875,
    "bluestore-compression-min-blob-size": 8192,
    "bluestore-compression-min-blob-size-hdd": 131072,
    "bluestore-compression-min-blob-size-ssd": 8192,
    "bluestore-compression-max-blob-size": 65536,
    "bluestore-compression-max-blob-size-hdd": 524288,
    "bluestore-compression-max-blob-size-ssd": 65536,
}

# (case id, application name, config overrides)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("defaults", "glance", {}),
    ("restricted", "glance", {"restrict-ceph-pools": True}),
    ("pool-name", "glance", {"rbd-pool-name": "images"}),
    ("empty-pool-name", "glance", {"rbd-pool-name": ""}),
    ("other-app", "glance-ha", {"restrict-ceph-pools": True}),
    ("replicas-weight", "glance", {"ceph-osd-replication-count": 2, "ceph-pool-weight": 40}),
    ("weight-zero", "glance", {"ceph-pool-weight": 0}),
    ("compression", "glance", COMPRESSION),
    ("compression-partial", "glance", {"bluestore-compression-mode": "passive"}),
    (
        "compression-restricted-named",
        "glance",
        {**COMPRESSION, "restrict-ceph-pools": True, "rbd-pool-name": "img"},
    ),
    ("ec-defaults", "glance", {"pool-type": "erasure-coded"}),
    ("ec-restricted", "glance", {"pool-type": "erasure-coded", "restrict-ceph-pools": True}),
    ("ec-weight-3", "glance", {"pool-type": "erasure-coded", "ceph-pool-weight": 3}),
    ("ec-weight-7", "glance", {"pool-type": "erasure-coded", "ceph-pool-weight": 7}),
    ("ec-weight-33", "glance", {"pool-type": "erasure-coded", "ceph-pool-weight": 33}),
    ("ec-weight-100", "glance", {"pool-type": "erasure-coded", "ceph-pool-weight": 100}),
    (
        "ec-named",
        "glance",
        {
            "pool-type": "erasure-coded",
            "rbd-pool-name": "images",
            "ec-profile-name": "imgprofile",
            "ec-rbd-metadata-pool": "images-meta",
            "ec-profile-k": 4,
            "ec-profile-m": 2,
            "ec-profile-technique": "reed_sol_van",
            "ec-profile-device-class": "ssd",
            "ceph-osd-replication-count": 2,
        },
    ),
    (
        "ec-lrc",
        "glance",
        {
            "pool-type": "erasure-coded",
            "ec-profile-plugin": "lrc",
            "ec-profile-k": 4,
            "ec-profile-m": 2,
            "ec-profile-locality": 3,
            "ec-profile-crush-locality": "rack",
        },
    ),
    (
        "ec-shec",
        "glance",
        {
            "pool-type": "erasure-coded",
            "ec-profile-plugin": "shec",
            "ec-profile-durability-estimator": 2,
        },
    ),
    (
        "ec-clay-compression-restricted",
        "glance-ec",
        {
            **COMPRESSION,
            "pool-type": "erasure-coded",
            "ec-profile-plugin": "clay",
            "ec-profile-helper-chunks": 3,
            "ec-profile-scalar-mds": "isa",
            "restrict-ceph-pools": True,
        },
    ),
]
CASE_IDS = [case[0] for case in CASES]


def classic_get_ceph_request(ch: dict[str, Any]) -> Any:
    """The classic charm's ``glance_utils.get_ceph_request()``, statement for statement.

    Uses charmhelpers' own ``CephBrokerRq`` and ``CephBlueStoreCompressionContext``;
    config and the unit name come from ``charmhelpers_shim.patch_hookenv``.
    """
    hookenv = ch["charmhelpers.core.hookenv"]
    ceph = ch["charmhelpers.contrib.storage.linux.ceph"]
    context = ch["charmhelpers.contrib.openstack.context"]
    config = hookenv.config

    service = hookenv.service_name()
    if config("rbd-pool-name"):
        pool_name = config("rbd-pool-name")
    else:
        pool_name = service

    rq = ceph.CephBrokerRq()
    weight = config("ceph-pool-weight")
    replicas = config("ceph-osd-replication-count")
    bluestore_compression = context.CephBlueStoreCompressionContext()

    if config("pool-type") == "erasure-coded":
        plugin = config("ec-profile-plugin")
        technique = config("ec-profile-technique")
        device_class = config("ec-profile-device-class")
        metadata_pool_name = config("ec-rbd-metadata-pool") or f"{service}-metadata"
        bdm_k = config("ec-profile-k")
        bdm_m = config("ec-profile-m")
        bdm_l = config("ec-profile-locality")
        crush_locality = config("ec-profile-crush-locality")
        bdm_c = config("ec-profile-durability-estimator")
        bdm_d = config("ec-profile-helper-chunks")
        scalar_mds = config("ec-profile-scalar-mds")
        profile_name = config("ec-profile-name") or f"{service}-profile"
        metadata_weight = weight * 0.01
        weight = weight - metadata_weight
        rq.add_op_create_pool(
            name=metadata_pool_name,
            replica_count=replicas,
            weight=metadata_weight,
            group="images",
            app_name="rbd",
        )
        rq.add_op_create_erasure_profile(
            name=profile_name,
            k=bdm_k,
            m=bdm_m,
            lrc_locality=bdm_l,
            lrc_crush_locality=crush_locality,
            shec_durability_estimator=bdm_c,
            clay_helper_chunks=bdm_d,
            clay_scalar_mds=scalar_mds,
            device_class=device_class,
            erasure_type=plugin,
            erasure_technique=technique,
        )
        kwargs = {
            "name": pool_name,
            "erasure_profile": profile_name,
            "weight": weight,
            "group": "images",
            "app_name": "rbd",
            "allow_ec_overwrites": True,
        }
        kwargs.update(bluestore_compression.get_kwargs())
        rq.add_op_create_erasure_pool(**kwargs)
    else:
        kwargs = {
            "name": pool_name,
            "replica_count": replicas,
            "weight": weight,
            "group": "images",
            "app_name": "rbd",
        }
        kwargs.update(bluestore_compression.get_kwargs())
        rq.add_op_create_replicated_pool(**kwargs)

    if config("restrict-ceph-pools"):
        rq.add_op_request_access_to_group(
            name="images",
            object_prefix_permissions={"class-read": ["rbd_children"]},
            permission="rwx",
        )
    return rq


def classic_requests(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Build every case's classic CephBrokerRq with whichever charmhelpers is importable."""
    ch = charmhelpers_shim.load_charmhelpers()
    requests = {}
    for case_id, app, overrides in CASES:
        with monkeypatch.context() as patch:
            charmhelpers_shim.patch_hookenv(
                patch, {**CLASSIC_DEFAULTS, **overrides}, unit=f"{app}/0"
            )
            requests[case_id] = classic_get_ceph_request(ch)
    return requests


def ours(app: str, overrides: dict[str, Any]) -> BrokerRequest:
    options = CephPoolOptions.from_config({**CLASSIC_DEFAULTS, **overrides}, app_name=app)
    return build_broker_request(options)


def sha1_of_ops(ops: list[dict[str, Any]]) -> str:
    encoded = json.dumps(ops, sort_keys=True).encode()
    return hashlib.sha1(encoded, usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def charmhelpers_requests() -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return classic_requests(monkeypatch)


@pytest.mark.parametrize(("case_id", "app", "overrides"), CASES, ids=CASE_IDS)
def test_ops_equal_charmhelpers(
    charmhelpers_requests: dict[str, Any], case_id: str, app: str, overrides: dict[str, Any]
) -> None:
    expected = charmhelpers_requests[case_id]
    request = ours(app, overrides)

    assert len(request.ops) == len(expected.ops)
    for mine, theirs in zip(request.ops, expected.ops, strict=True):
        assert list(mine) == list(theirs)  # same keys, same wire order
        for key in theirs:
            assert mine[key] == theirs[key], key
            assert type(mine[key]) is type(theirs[key]), key  # 5 is not 5.0 on the wire
    assert json.dumps(request.ops) == json.dumps(expected.ops)


@pytest.mark.parametrize(("case_id", "app", "overrides"), CASES, ids=CASE_IDS)
def test_request_id_and_wire_json(
    charmhelpers_requests: dict[str, Any], case_id: str, app: str, overrides: dict[str, Any]
) -> None:
    expected = charmhelpers_requests[case_id]
    request = ours(app, overrides)
    expected_id = sha1_of_ops(expected.ops)

    assert request.request_id == expected_id == ops_request_id(request.ops)
    # charmhelpers serialises with its own request-id (uuid1 on PyPI): use the sha1 one.
    expected.request_id = expected_id
    assert request.to_json() == expected.request
    assert json.loads(request.to_json())["api-version"] == expected.api_version == 1


def test_interfaces_md_default_request_is_byte_identical() -> None:
    expected = (
        '{"api-version": 1, "ops": [{"op": "create-pool", "name": "glance", "replicas": 3, '
        '"pg_num": null, "crush-profile": null, "app-name": "rbd", '
        '"compression-algorithm": null, "compression-mode": null, '
        '"compression-required-ratio": null, "compression-min-blob-size": null, '
        '"compression-min-blob-size-hdd": null, "compression-min-blob-size-ssd": null, '
        '"compression-max-blob-size": null, "compression-max-blob-size-hdd": null, '
        '"compression-max-blob-size-ssd": null, "group": "images", "max-bytes": null, '
        '"max-objects": null, "group-namespace": null, "rbd-mirroring-mode": "pool", '
        '"weight": 5}], "request-id": "305c61d7aa20a2ab733fa6efceecb6c7e0d99b2d"}'
    )
    assert build_broker_request(CephPoolOptions()).to_json() == expected
    assert ours("glance", {}).to_json() == expected


def test_interfaces_md_request_ids() -> None:
    assert (
        build_broker_request(CephPoolOptions(pool_name="glance")).request_id
        == "305c61d7aa20a2ab733fa6efceecb6c7e0d99b2d"
    )
    restricted = build_broker_request(CephPoolOptions(restrict_ceph_pools=True))
    assert restricted.request_id == "03e1a923b4a3991b706430b338a54a479098ed08"
    assert restricted.ops[-1] == {
        "op": "add-permissions-to-key",
        "group": "images",
        "namespace": None,
        "name": "glance",
        "group-permission": "rwx",
        "object-prefix-permissions": {"class-read": ["rbd_children"]},
    }


def test_request_id_follows_every_value() -> None:
    base = build_broker_request(CephPoolOptions())
    assert build_broker_request(CephPoolOptions(weight=6)).request_id != base.request_id
    assert build_broker_request(CephPoolOptions(pool_name="x")).request_id != base.request_id


def test_from_config_matches_keyword_construction() -> None:
    config = {**CLASSIC_DEFAULTS, **COMPRESSION, "pool-type": "erasure-coded", "ec-profile-k": 3}
    assert CephPoolOptions.from_config(config, "glance") == CephPoolOptions(
        pool_type="erasure-coded",
        ec_profile_k=3,
        compression_algorithm="zstd",
        compression_mode="aggressive",
        compression_required_ratio=0.875,
        compression_min_blob_size=8192,
        compression_min_blob_size_hdd=131072,
        compression_min_blob_size_ssd=8192,
        compression_max_blob_size=65536,
        compression_max_blob_size_hdd=524288,
        compression_max_blob_size_ssd=65536,
    )
    # Unset options keep the classic defaults.
    assert CephPoolOptions.from_config({}, "glance") == CephPoolOptions()


@pytest.mark.parametrize(
    "bad",
    [
        {"pool-type": "mirrored"},
        {"bluestore-compression-algorithm": "gzip"},
        {"bluestore-compression-mode": "always"},
        {"ceph-osd-replication-count": 0},
        {"ceph-pool-weight": -1},
    ],
)
def test_invalid_options_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CephPoolOptions.from_config({**CLASSIC_DEFAULTS, **bad}, "glance")


@pytest.mark.parametrize(
    "bad",
    [{"bluestore-compression-algorithm": "gzip"}, {"bluestore-compression-mode": "always"}],
)
def test_invalid_compression_also_rejected_by_charmhelpers(
    monkeypatch: pytest.MonkeyPatch, bad: dict[str, Any]
) -> None:
    ch = charmhelpers_shim.load_charmhelpers()
    charmhelpers_shim.patch_hookenv(monkeypatch, {**CLASSIC_DEFAULTS, **bad})
    with pytest.raises(ValueError):
        classic_get_ceph_request(ch)


def test_build_ops_never_repeats_an_op() -> None:
    ops = build_ops(CephPoolOptions(pool_type="erasure-coded", restrict_ceph_pools=True))
    assert [op["op"] for op in ops] == [
        "create-pool",
        "create-erasure-profile",
        "create-pool",
        "add-permissions-to-key",
    ]
    assert [op.get("pool-type") for op in ops] == [None, None, "erasure", None]
    assert [op.get("weight") for op in ops] == [0.05, None, 4.95, None]


# --- the classic charm's own bundled charmhelpers (deterministic request-id) ---------


def _bundled_charmhelpers(tmp_path: Path) -> Path:
    git = shutil.which("git")
    if git is None or not CLASSIC_REPO.is_dir():
        pytest.skip("classic charm mirror not available")
    archive = subprocess.run(
        [git, "--git-dir", str(CLASSIC_REPO), "archive", "HEAD", "charmhelpers"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


_BUNDLED_SCRIPT = """
import json, sys
import pytest
import charmhelpers
from tests.unit.domain import test_ceph_broker as t
assert charmhelpers.__file__.startswith(sys.argv[1]), charmhelpers.__file__
with pytest.MonkeyPatch.context() as mp:
    requests = t.classic_requests(mp)
print(json.dumps({case: rq.request for case, rq in requests.items()}))
"""


def test_byte_identical_to_classic_bundled_charmhelpers(tmp_path: Path) -> None:
    """The classic charm's charmhelpers (sha1 request-id) sends exactly our JSON."""
    root = _bundled_charmhelpers(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(REPO_ROOT), str(REPO_ROOT / "src")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", _BUNDLED_SCRIPT, str(root)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    classic = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(classic) == set(CASE_IDS)
    for case_id, app, overrides in CASES:
        assert ours(app, overrides).to_json() == classic[case_id], case_id
    assert json.loads(classic["defaults"])["request-id"] == (
        "305c61d7aa20a2ab733fa6efceecb6c7e0d99b2d"
    )
    assert json.loads(classic["restricted"])["request-id"] == (
        "03e1a923b4a3991b706430b338a54a479098ed08"
    )


# --- broker responses --------------------------------------------------------------

RID = "305c61d7aa20a2ab733fa6efceecb6c7e0d99b2d"


def test_response_success_for_our_request() -> None:
    response = parse_broker_response(json.dumps({"exit-code": 0, "request-id": RID}), RID)
    assert response == BrokerResponse(exit_code=0, request_id=RID)
    assert response is not None and response.succeeded


def test_response_failure_carries_stderr() -> None:
    raw = json.dumps({"exit-code": 1, "request-id": RID, "stderr": "pool quota exceeded"})
    response = parse_broker_response(raw, RID)
    assert response is not None
    assert not response.succeeded
    assert response.stderr == "pool quota exceeded"


def test_response_for_another_request_is_ignored() -> None:
    assert parse_broker_response(json.dumps({"exit-code": 0, "request-id": "old"}), RID) is None


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "not json",
        "{",
        "[]",
        "null",
        "42",
        '"text"',
        json.dumps({"request-id": RID}),
        json.dumps({"exit-code": "0", "request-id": RID}),
        json.dumps({"exit-code": True, "request-id": RID}),
        json.dumps({"exit-code": 0.0, "request-id": RID}),
        json.dumps({"exit-code": None, "request-id": RID}),
        json.dumps({"exit-code": 0, "request-id": 5}),
        "[" * 100000,
    ],
)
def test_bad_responses_give_none(raw: str | None) -> None:
    assert parse_broker_response(raw, RID) is None


def test_non_text_stderr_is_kept_as_text() -> None:
    raw = json.dumps({"exit-code": 1, "request-id": RID, "stderr": ["a", 1]})
    response = parse_broker_response(raw, RID)
    assert response is not None and response.stderr == '["a", 1]'


def test_legacy_response_counts_only_without_request_id() -> None:
    legacy_ok = json.dumps({"exit-code": 0})
    assert parse_broker_response(legacy_ok, None) == BrokerResponse(exit_code=0)
    assert parse_broker_response(json.dumps({"exit-code": 0, "request-id": RID}), None) is None


def test_select_prefers_unit_key_like_charmhelpers() -> None:
    ours_ok = json.dumps({"exit-code": 0, "request-id": RID})
    legacy_ok = json.dumps({"exit-code": 0})
    selected = select_broker_response(ours_ok, legacy_ok, RID)
    assert selected is not None and selected.request_id == RID
    # A unit key answering another request hides the legacy key.
    assert (
        select_broker_response(json.dumps({"exit-code": 0, "request-id": "x"}), legacy_ok, RID)
        is None
    )
    legacy = select_broker_response(None, legacy_ok, RID)
    assert legacy is not None and legacy.succeeded
    assert select_broker_response("", json.dumps({"exit-code": 0, "request-id": RID}), RID) is None
    assert select_broker_response(None, None, RID) is None


def test_shim_blocks_apt() -> None:
    charmhelpers_shim.load_charmhelpers()
    import charmhelpers.contrib.network.ip as ch_ip
    import charmhelpers.fetch as ch_fetch

    with pytest.raises(charmhelpers_shim.AptBlockedError):
        ch_fetch.apt_install(["python3-netifaces"], fatal=True)
    with pytest.raises(charmhelpers_shim.AptBlockedError):
        ch_ip.apt_update(fatal=True)


def test_request_id_cannot_disagree_with_ops() -> None:
    ops = build_ops(CephPoolOptions())
    with pytest.raises(ValueError, match="sha1"):
        BrokerRequest(ops=ops, request_id="0" * 40)
    assert BrokerRequest(ops=ops, request_id=ops_request_id(ops)) == BrokerRequest.from_ops(ops)

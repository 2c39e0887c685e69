"""Every constrained option: a bad value blocks naming it, writes and restarts nothing."""

from __future__ import annotations

import base64

import ops
import pytest

from glance_charm.domain.config import GlanceConfig, parse_size
from glance_charm.domain.exceptions import InvalidConfigError
from tests.unit.conftest import GlanceHarness

PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()

BAD_VALUES = [
    ("openstack-origin", "cloud:nonsense"),
    ("openstack-origin", "http://example.com"),
    ("region", "Region One"),
    ("worker-multiplier", -1.0),
    ("hashing-algorithm", "md5"),
    ("hashing-algorithm", "SHA256"),
    ("database", "glance;drop"),
    ("database-user", "x" * 33),
    ("filesystem-store-datadir", "relative/dir"),
    ("filesystem-store-datadir", "/"),
    ("filesystem-store-datadir", "/var/../etc"),
    ("default-store", "gcs"),
    ("disk-formats", "RAW!"),
    ("disk-formats", ","),
    ("container-formats", "bare;ovf"),
    ("image-size-cap", "ten gigs"),
    ("image-size-cap", "9EB"),
    ("ceph-osd-replication-count", 0),
    ("ceph-pool-weight", 101),
    ("rbd-pool-name", "bad name"),
    ("pool-type", "mirrored"),
    ("ec-profile-k", 0),
    ("ec-profile-m", 0),
    ("ec-profile-plugin", "magic"),
    ("bluestore-compression-mode", "sometimes"),
    ("bluestore-compression-algorithm", "rar"),
    ("bluestore-compression-required-ratio", 1.5),
    ("rabbit-user", "bad user"),
    ("rabbit-vhost", "bad vhost"),
    ("vip", "10.0.0.300"),
    ("vip", "10.0.0.1 10.0.0.1"),
    ("vip_cidr", 0),
    ("vip_iface", "way-too-long-interface-name"),
    ("haproxy-server-timeout", 0),
    ("haproxy-client-timeout", -5),
    ("haproxy-queue-timeout", 0),
    ("haproxy-connect-timeout", 0),
    ("ssl_ca", "not base64!"),
    ("os-public-hostname", "bad_host name"),
    ("os-internal-hostname", "-leading.dash"),
    ("os-admin-hostname", "a" * 300),
    ("os-public-network", "10.0.0.0/33"),
    ("ha-mcastport", 70000),
    ("rados-connect-timeout", -1),
]


def relate_all(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")


@pytest.mark.parametrize(("option", "value"), BAD_VALUES)
def test_bad_value_blocks_naming_option(gh: GlanceHarness, option: str, value: object) -> None:
    relate_all(gh)
    before = gh.conf_path.read_bytes()
    calls = list(gh.services.calls)
    gh.harness.update_config({option: value})  # type: ignore[dict-item]
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus)
    assert status.message == f"Invalid config: {option}"
    assert gh.conf_path.read_bytes() == before
    assert gh.services.calls == calls
    gh.harness.update_config(unset=[option])
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.services.calls == calls  # back to the same config: no restart


def test_bad_config_before_relations_writes_nothing(gh: GlanceHarness) -> None:
    gh.harness.update_config({"region": "bad region"})
    relate_all(gh)
    assert gh.status() == ops.BlockedStatus("Invalid config: region")
    assert not gh.conf_path.exists()
    assert gh.workload.db_syncs == 0


def test_every_bad_option_is_named() -> None:
    with pytest.raises(InvalidConfigError) as err:
        GlanceConfig.from_mapping({"region": "a b", "vip": "x", "ceph-pool-weight": 500})
    assert str(err.value) == "Invalid config: ceph-pool-weight, region, vip"


def test_cert_without_key_names_both() -> None:
    with pytest.raises(InvalidConfigError) as err:
        GlanceConfig.from_mapping({"ssl_cert": PEM})
    assert err.value.options == ["ssl_cert", "ssl_key"]


def test_blank_strings_are_unset() -> None:
    config = GlanceConfig.from_mapping({"vip": " ", "default-store": "", "rbd-pool-name": ""})
    assert config.vip == ()
    assert config.default_store is None
    assert config.rbd_pool_name is None


@pytest.mark.parametrize(("origin", "ok"), [
    ("distro", True), ("cloud:noble-epoxy", True), ("cloud:noble-epoxy/proposed", True),
    ("deb http://example.com/ubuntu noble main", True), ("ppa:openstack/glance", False),
    ("cloud:", False), ("caracal", False),
])
def test_origin_forms(origin: str, ok: bool) -> None:
    if ok:
        assert GlanceConfig.from_mapping({"openstack-origin": origin}).openstack_origin == origin
    else:
        with pytest.raises(InvalidConfigError):
            GlanceConfig.from_mapping({"openstack-origin": origin})


@pytest.mark.parametrize(("text", "size"), [
    ("1TB", 1024**4), ("512M", 512 * 1024**2), ("1048576", 1048576), ("8EB", 8 * 1024**6),
    ("2 gb", 2 * 1024**3),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size

"""Drop-in replacement check: our metadata/config/actions keep the classic charm's names.

`juju refresh glance --switch ./glance_*.charm` on a deployed classic glance only works if this
charm declares every endpoint the application is related on (same interface and role) and
gives every shared config option the same type. The classic names below were extracted once
from openstack/charm-glance (metadata.yaml, config.yaml, actions.yaml at commit b73b374e52ec);
only names, interfaces, scopes, types and defaults are kept here, not its text.

What this charm does not implement is listed, with the reason, in NOT_SUPPORTED_* below and in
docs/switch-from-classic.md; the tests keep both lists honest (nothing listed as unsupported may
exist in our files, and the doc names every entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SWITCH_DOC = ROOT / "docs" / "switch-from-classic.md"

# --- classic charm-glance names (metadata.yaml) -------------------------------------------
#: endpoint -> (role, interface, scope); scope None means global.
CLASSIC_ENDPOINTS: dict[str, tuple[str, str, str | None]] = {
    "nrpe-external-master": ("provides", "nrpe-external-master", "container"),
    "image-service": ("provides", "glance", None),
    "shared-db": ("requires", "mysql-shared", None),
    "amqp": ("requires", "rabbitmq", None),
    "object-store": ("requires", "swift-proxy", None),
    "identity-service": ("requires", "keystone", None),
    "ceph": ("requires", "ceph-client", None),
    "ha": ("requires", "hacluster", "container"),
    "cinder-volume-service": ("requires", "cinder", None),
    "storage-backend": ("requires", "glance-backend", "container"),
    "certificates": ("requires", "tls-certificates", None),
    "cluster": ("peers", "glance-ha", None),
}
CLASSIC_EXTRA_BINDINGS = ("public", "admin", "internal")
CLASSIC_RESOURCES = ("policyd-override",)

# --- classic config.yaml: option -> (type, default) ---------------------------------------
CLASSIC_OPTIONS: dict[str, tuple[str, Any]] = {
    "debug": ("boolean", False),
    "verbose": ("boolean", False),
    "use-syslog": ("boolean", False),
    "audit-middleware": ("boolean", False),
    "openstack-origin": ("string", "caracal"),
    "action-managed-upgrade": ("boolean", False),
    "harden": ("string", None),
    "database-user": ("string", "glance"),
    "database": ("string", "glance"),
    "api-config-flags": ("string", None),
    "registry-config-flags": ("string", None),
    "region": ("string", "RegionOne"),
    "use-internal-endpoints": ("boolean", False),
    "ceph-osd-replication-count": ("int", 3),
    "ceph-pool-weight": ("int", 5),
    "restrict-ceph-pools": ("boolean", False),
    "rbd-pool-name": ("string", None),
    "pool-type": ("string", "replicated"),
    "rados-connect-timeout": ("int", 1200),
    "ec-profile-name": ("string", None),
    "ec-rbd-metadata-pool": ("string", None),
    "ec-profile-k": ("int", 1),
    "ec-profile-m": ("int", 2),
    "ec-profile-locality": ("int", None),
    "ec-profile-crush-locality": ("string", None),
    "ec-profile-durability-estimator": ("int", None),
    "ec-profile-helper-chunks": ("int", None),
    "ec-profile-scalar-mds": ("string", None),
    "ec-profile-plugin": ("string", "jerasure"),
    "ec-profile-technique": ("string", None),
    "ec-profile-device-class": ("string", None),
    "cinder-volume-types": ("string", None),
    "cinder-http-retries": ("int", 3),
    "cinder-state-transition-timeout": ("int", 300),
    "worker-multiplier": ("float", None),
    "expose-image-locations": ("boolean", True),
    "restrict-image-location-operations": ("boolean", False),
    "rabbit-user": ("string", "glance"),
    "rabbit-vhost": ("string", "openstack"),
    "container-formats": ("string", None),
    "disk-formats": ("string", "ami,ari,aki,vhd,vmdk,raw,qcow2,vdi,iso,root-tar"),
    "image-size-cap": ("string", "1TB"),
    "dns-ha": ("boolean", False),
    "vip": ("string", None),
    "vip_iface": ("string", "eth0"),
    "vip_cidr": ("int", 24),
    "ha-bindiface": ("string", "eth0"),
    "ha-mcastport": ("int", 5444),
    "haproxy-server-timeout": ("int", None),
    "haproxy-client-timeout": ("int", None),
    "haproxy-queue-timeout": ("int", None),
    "haproxy-connect-timeout": ("int", None),
    "ssl_cert": ("string", None),
    "ssl_key": ("string", None),
    "ssl_ca": ("string", None),
    "os-admin-network": ("string", None),
    "os-internal-network": ("string", None),
    "os-public-network": ("string", None),
    "os-public-hostname": ("string", None),
    "os-internal-hostname": ("string", None),
    "os-admin-hostname": ("string", None),
    "prefer-ipv6": ("boolean", False),
    "nagios_context": ("string", "juju"),
    "nagios_servicegroups": ("string", ""),
    "filesystem-store-datadir": ("string", "/var/lib/glance/images/"),
    "use-policyd-override": ("boolean", False),
    "bluestore-compression-algorithm": ("string", None),
    "bluestore-compression-mode": ("string", None),
    "bluestore-compression-required-ratio": ("float", None),
    "bluestore-compression-min-blob-size": ("int", None),
    "bluestore-compression-min-blob-size-hdd": ("int", None),
    "bluestore-compression-min-blob-size-ssd": ("int", None),
    "bluestore-compression-max-blob-size": ("int", None),
    "bluestore-compression-max-blob-size-hdd": ("int", None),
    "bluestore-compression-max-blob-size-ssd": ("int", None),
    "image-conversion": ("boolean", False),
    "custom-import-properties": ("string", None),
    "s3-store-host": ("string", None),
    "s3-store-access-key": ("string", None),
    "s3-store-secret-key": ("string", None),
    "s3-store-bucket": ("string", None),
}

# --- classic actions.yaml -----------------------------------------------------------------
CLASSIC_ACTIONS = ("openstack-upgrade", "pause", "resume", "security-checklist")

# --- what this charm does not implement (also in docs/switch-from-classic.md) --------------
NOT_SUPPORTED_ENDPOINTS: dict[str, str] = {}
NOT_SUPPORTED_RESOURCES: dict[str, str] = {}
NOT_SUPPORTED_OPTIONS: dict[str, str] = {
    "harden": "charmhelpers host-wide hardening (sysctl, PAM, sshd) is not glance's to own",
    "registry-config-flags": "glance-registry was removed upstream (Stein); nothing to configure",
}
#: Options whose default differs from the classic charm on purpose.
DEFAULT_DIFFERENCES: dict[str, str] = {
    "openstack-origin": "`distro` (Caracal on ubuntu@24.04, the only base) instead of the "
    "literal `caracal`; same packages on noble",
    "rados-connect-timeout": "unset (glance_store's own default) instead of 1200; the classic "
    "charm only renders it when several stores are enabled",
}


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name} is not a mapping"
    return data


@pytest.fixture(scope="module")
def metadata() -> dict[str, Any]:
    return _load("metadata.yaml")


@pytest.fixture(scope="module")
def options() -> dict[str, dict[str, Any]]:
    return _load("config.yaml")["options"]


@pytest.fixture(scope="module")
def actions() -> dict[str, Any]:
    return _load("actions.yaml")


def _endpoints(metadata: dict[str, Any]) -> dict[str, tuple[str, str, str | None]]:
    found = {}
    for role in ("provides", "requires", "peers"):
        for name, spec in (metadata.get(role) or {}).items():
            found[name] = (role, spec["interface"], spec.get("scope"))
    return found


@pytest.mark.parametrize("endpoint", sorted(CLASSIC_ENDPOINTS))
def test_classic_endpoint_kept(metadata: dict[str, Any], endpoint: str) -> None:
    ours = _endpoints(metadata)
    if endpoint in NOT_SUPPORTED_ENDPOINTS:
        assert endpoint not in ours, f"{endpoint} is implemented: drop it from NOT_SUPPORTED"
        return
    role, interface, scope = CLASSIC_ENDPOINTS[endpoint]
    assert endpoint in ours, f"classic endpoint {endpoint} missing from metadata.yaml"
    assert ours[endpoint][:2] == (role, interface)
    assert ours[endpoint][2] == scope, f"{endpoint}: scope {ours[endpoint][2]} != {scope}"


def test_peer_relation_is_cluster_glance_ha(metadata: dict[str, Any]) -> None:
    assert metadata["peers"] == {"cluster": {"interface": "glance-ha"}}


def test_amqp_stays_optional(metadata: dict[str, Any]) -> None:
    assert metadata["requires"]["amqp"].get("optional") is True


def test_extra_bindings_kept(metadata: dict[str, Any]) -> None:
    assert set(CLASSIC_EXTRA_BINDINGS) <= set(metadata.get("extra-bindings") or {})


@pytest.mark.parametrize("resource", CLASSIC_RESOURCES)
def test_classic_resources(metadata: dict[str, Any], resource: str) -> None:
    ours = metadata.get("resources") or {}
    if resource in NOT_SUPPORTED_RESOURCES:
        assert resource not in ours, f"{resource} is implemented: drop it from NOT_SUPPORTED"
    else:
        assert resource in ours


@pytest.mark.parametrize("option", sorted(CLASSIC_OPTIONS))
def test_classic_option_kept_or_listed(options: dict[str, dict[str, Any]], option: str) -> None:
    classic_type, _ = CLASSIC_OPTIONS[option]
    if option in NOT_SUPPORTED_OPTIONS:
        assert option not in options, f"{option} is implemented: drop it from NOT_SUPPORTED"
        return
    assert option in options, (
        f"classic option {option} is neither in config.yaml nor in NOT_SUPPORTED_OPTIONS"
    )
    assert options[option]["type"] == classic_type, f"{option}: type changed"


@pytest.mark.parametrize("option", sorted(set(CLASSIC_OPTIONS) - set(NOT_SUPPORTED_OPTIONS)))
def test_classic_default_kept(options: dict[str, dict[str, Any]], option: str) -> None:
    assert option in options
    _, classic_default = CLASSIC_OPTIONS[option]
    ours = options[option].get("default")
    if option in DEFAULT_DIFFERENCES:
        assert ours != classic_default, f"{option}: same default now, drop the documented diff"
    else:
        assert ours == classic_default, f"{option}: {ours!r} != classic {classic_default!r}"


def test_not_supported_lists_only_classic_names() -> None:
    assert set(NOT_SUPPORTED_OPTIONS) <= set(CLASSIC_OPTIONS)
    assert set(DEFAULT_DIFFERENCES) <= set(CLASSIC_OPTIONS)
    assert set(NOT_SUPPORTED_ENDPOINTS) <= set(CLASSIC_ENDPOINTS)
    assert set(NOT_SUPPORTED_RESOURCES) <= set(CLASSIC_RESOURCES)


def test_classic_actions_kept(actions: dict[str, Any]) -> None:
    assert set(CLASSIC_ACTIONS) <= set(actions)


def test_switch_doc_lists_every_unsupported_name() -> None:
    doc = SWITCH_DOC.read_text(encoding="utf-8")
    assert "juju refresh glance --switch" in doc
    names = [
        *NOT_SUPPORTED_OPTIONS,
        *NOT_SUPPORTED_ENDPOINTS,
        *NOT_SUPPORTED_RESOURCES,
        *DEFAULT_DIFFERENCES,
    ]
    missing = [name for name in names if f"`{name}`" not in doc]
    assert not missing, f"docs/switch-from-classic.md does not mention: {missing}"

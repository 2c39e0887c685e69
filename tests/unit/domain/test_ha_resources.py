"""ha_resources sends hacluster exactly what charmhelpers generate_ha_relation_data does."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from glance_charm.domain.ha_resources import (
    HaResources,
    build_dns_ha_resources,
    build_ha_resources,
    vip_resource_name,
    vip_resource_names,
)
from tests.unit import charmhelpers_shim

REPO_ROOT = Path(__file__).resolve().parents[3]
CLASSIC_REPO = Path("/work/.mirror/openstack+charm-glance/repo")

Nic = tuple[str | None, str | None]


@dataclass(frozen=True)
class Case:
    """One configuration: charm config, detected NICs, and extra deletions."""

    vip: str | None
    nics: dict[str, Nic] = field(default_factory=dict)
    vip_iface: str | None = "eth0"
    vip_cidr: int | None = 24
    service: str = "glance"
    delete_resources: tuple[str, ...] = ()

    def config(self) -> dict[str, Any]:
        return {
            "vip": self.vip,
            "vip_iface": self.vip_iface,
            "vip_cidr": self.vip_cidr,
            "dns-ha": False,
            "ha-bindiface": "eth0",
            "ha-mcastport": 5444,
            "os-admin-hostname": None,
            "os-internal-hostname": None,
            "os-public-hostname": None,
            "os-access-hostname": None,
        }

    def nic_for(self, vip: str) -> Nic | None:
        return self.nics.get(vip)


V4 = "10.5.100.1"
V4B = "10.6.100.1"
V4C = "10.5.100.2"
V6 = "2001:db8::100"
V6B = "fd00:1::100"

CASES: dict[str, Case] = {
    "ipv4-detected": Case(V4, {V4: ("eth0", "255.255.0.0")}),
    "ipv4-fallback": Case(V4),
    "ipv4-fallback-custom": Case(V4, vip_iface="ens3", vip_cidr=16),
    "ipv4-iface-only-detected": Case(V4, {V4: ("bond0", None)}),
    "ipv4-netmask-only-detected": Case(V4, {V4: (None, "255.255.0.0")}),
    "ipv4-fallback-no-cidr": Case(V4, vip_cidr=None),
    "ipv4-undetectable": Case(V4, vip_iface=None, vip_cidr=None),
    "multi-ipv4-two-nics": Case(
        f"{V4} {V4B}", {V4: ("eth0", "255.255.0.0"), V4B: ("eth1", "255.255.0.0")}
    ),
    "multi-ipv4-one-nic": Case(
        f"{V4} {V4C} 10.5.100.3",
        {
            V4: ("eth0", "255.255.0.0"),
            V4C: ("eth0", "255.255.0.0"),
            "10.5.100.3": ("eth0", "255.255.0.0"),
        },
    ),
    "multi-mixed-fallback": Case(f"{V4}   {V4B}\n", {V4: ("eth0", "255.255.0.0")}),
    "multi-one-undetectable": Case(f"{V4} {V4B}", {V4: ("eth0", "255.255.0.0")}, vip_iface=None),
    "duplicate-vip": Case(f"{V4} {V4}", {V4: ("eth0", "255.255.0.0")}),
    "ipv6-detected": Case(V6, {V6: ("eth0", "64")}),
    "ipv6-fallback": Case(V6, vip_cidr=64),
    "multi-ipv6": Case(f"{V6} {V6B}", {V6: ("eth0", "64"), V6B: ("eth1", "48")}),
    "dual-stack-one-nic": Case(f"{V4} {V6}", {V4: ("eth0", "255.255.0.0"), V6: ("eth0", "64")}),
    "dual-stack-fallback": Case(f"{V6} {V4}"),
    "other-service": Case(f"{V4} {V6}", {V4: ("eth0", "255.255.0.0")}, service="glance-ha"),
    "delete-old-vips": Case(
        V4B, {V4B: ("eth0", "255.255.0.0")}, delete_resources=(vip_resource_name("glance", V4),)
    ),
    "delete-only": Case(V4, vip_iface=None, delete_resources=("res_glance_old_vip",)),
}


def charmhelpers_relation_data(monkeypatch: pytest.MonkeyPatch, case: Case) -> dict[str, str]:
    """Return generate_ha_relation_data for a case, called as the classic charm does."""
    ch = charmhelpers_shim.load_charmhelpers()
    ha_utils = ch["charmhelpers.contrib.openstack.ha.utils"]
    charmhelpers_shim.patch_hookenv(monkeypatch, case.config(), unit=f"{case.service}/0")

    def iface_for(address: str) -> str | None:
        return (case.nic_for(address) or (None, None))[0]

    def netmask_for(address: str) -> str | None:
        return (case.nic_for(address) or (None, None))[1]

    monkeypatch.setattr(ha_utils, "get_iface_for_address", iface_for)
    monkeypatch.setattr(ha_utils, "get_netmask_for_address", netmask_for)
    extra = {"delete_resources": list(case.delete_resources)} if case.delete_resources else None
    return dict(ha_utils.generate_ha_relation_data(case.service, extra_settings=extra))


def ours(case: Case) -> dict[str, str]:
    return build_ha_resources(
        service=case.service,
        vips=(case.vip or "").split(),
        vip_iface=case.vip_iface,
        vip_cidr=case.vip_cidr,
        nic_for=case.nic_for,
        delete_resources=case.delete_resources,
    ).to_relation_data()


@pytest.mark.parametrize("case_id", list(CASES))
def test_equals_charmhelpers(monkeypatch: pytest.MonkeyPatch, case_id: str) -> None:
    case = CASES[case_id]
    expected = charmhelpers_relation_data(monkeypatch, case)
    actual = ours(case)

    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key] == value, key  # byte-identical compact JSON
        assert json.loads(actual[key]) == json.loads(value), key


def test_interfaces_md_example() -> None:
    data = build_ha_resources(
        vips=["10.5.100.1"], nic_for=lambda vip: ("eth0", "255.255.255.0")
    ).to_relation_data()
    assert data == {
        "json_resources": (
            '{"res_glance_242d562_vip":"ocf:heartbeat:IPaddr2","res_glance_haproxy":"lsb:haproxy"}'
        ),
        "json_resource_params": (
            '{"res_glance_242d562_vip":"params ip=\\"10.5.100.1\\" op monitor '
            'timeout=\\"20s\\" interval=\\"10s\\" depth=\\"0\\"",'
            '"res_glance_haproxy":"meta migration-threshold=\\"INFINITY\\" '
            'failure-timeout=\\"5s\\" op monitor interval=\\"5s\\""}'
        ),
        "json_init_services": '{"res_glance_haproxy":"haproxy"}',
        "json_clones": '{"cl_glance_haproxy":"res_glance_haproxy"}',
        "json_groups": '{"grp_glance_vips":"res_glance_242d562_vip"}',
        "json_delete_resources": '["res_glance_eth0_vip"]',
    }


def test_fallback_adds_netmask_and_nic() -> None:
    resources = build_ha_resources(vips=[V4], vip_iface="eth0", vip_cidr=24)
    assert resources.resource_params[vip_resource_name("glance", V4)] == (
        'params ip="10.5.100.1" cidr_netmask="24" nic="eth0" '
        'op monitor timeout="20s" interval="10s" depth="0"'
    )


def test_ipv6_uses_ipv6addr() -> None:
    resources = build_ha_resources(vips=[V6], nic_for=lambda vip: ("eth0", "64"))
    name = vip_resource_name("glance", V6)
    assert resources.resources[name] == "ocf:heartbeat:IPv6addr"
    assert resources.resource_params[name].startswith(f'params ipv6addr="{V6}" op monitor')


def test_no_vip_is_refused_like_charmhelpers(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="at least one VIP"):
        build_ha_resources(vips=[])
    cluster = charmhelpers_shim.load_charmhelpers()["charmhelpers.contrib.hahelpers.cluster"]
    with pytest.raises(cluster.HAIncorrectConfig):
        charmhelpers_relation_data(monkeypatch, Case(None))


@pytest.mark.parametrize("vip", ["not-an-ip", "10.5.100", "10.5.100.1/24", "fe80::1%eth0"])
def test_invalid_vip_is_refused(vip: str) -> None:
    with pytest.raises(ValueError, match="VIP"):
        build_ha_resources(vips=[V4, vip])


def test_model_round_trip_and_empty_fields_left_out() -> None:
    resources = build_ha_resources(vips=[V4], vip_iface=None)
    assert isinstance(resources, HaResources)
    assert resources.groups == {}
    assert resources.delete_resources == []
    assert set(resources.to_relation_data()) == {
        "json_resources",
        "json_resource_params",
        "json_init_services",
        "json_clones",
    }


def test_vip_resource_names() -> None:
    assert vip_resource_names("glance", ["10.5.100.1"]) == ["res_glance_242d562_vip"]
    assert vip_resource_names("glance", [V4, V6, V4]) == [
        vip_resource_name("glance", V4),
        vip_resource_name("glance", V6),
    ]
    assert vip_resource_names("glance", []) == []


def test_old_minus_new_names_feed_delete_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = [V4, V6], [V6, V4B]
    stale = [
        n for n in vip_resource_names("glance", old) if n not in vip_resource_names("glance", new)
    ]
    assert stale == [vip_resource_name("glance", V4)]
    case = Case(" ".join(new), vip_iface="eth0", delete_resources=tuple(stale))
    data = ours(case)
    assert json.loads(data["json_delete_resources"]) == [
        vip_resource_name("glance", V4),
        "res_glance_eth0_vip",
        "res_glance_eth0_vip_ip",
    ]
    assert data == charmhelpers_relation_data(monkeypatch, case)


# --- the classic charm's own bundled charmhelpers ----------------------------------

_BUNDLED_SCRIPT = """
import json, sys
import pytest
import charmhelpers
from tests.unit.domain import test_ha_resources as t
assert charmhelpers.__file__.startswith(sys.argv[1]), charmhelpers.__file__
out = {}
for case_id, case in t.CASES.items():
    with pytest.MonkeyPatch.context() as mp:
        out[case_id] = t.charmhelpers_relation_data(mp, case)
print(json.dumps(out))
"""


def test_identical_to_classic_bundled_charmhelpers(tmp_path: Path) -> None:
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
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT), str(REPO_ROOT / "src")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", _BUNDLED_SCRIPT, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    classic = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(classic) == set(CASES)
    for case_id, case in CASES.items():
        assert ours(case) == classic[case_id], case_id


# --- DNS HA (charmhelpers update_hacluster_dns_ha) ---------------------------------

DNS_CASES: dict[str, dict[str, tuple[str, str]]] = {
    "public-only": {"public": ("glance.example.com", "10.5.0.10")},
    "all-three": {
        "admin": ("glance-admin.example.com", "10.7.0.10"),
        "internal": ("glance-int.example.com", "10.6.0.10"),
        "public": ("glance.example.com", "10.5.0.10"),
    },
    "internal-and-admin": {
        "internal": ("glance-int.example.com", "10.6.0.10"),
        "admin": ("glance-admin.example.com", "10.6.0.10"),
    },
    "ipv6-address": {"public": ("glance.example.com", "2001:db8::10")},
}


def charmhelpers_dns_ha_data(
    monkeypatch: pytest.MonkeyPatch,
    hostnames: dict[str, tuple[str, str]],
    delete_resources: tuple[str, ...] = (),
) -> dict[str, str]:
    """generate_ha_relation_data('glance') with dns-ha set, as the classic charm calls it.

    Follows charmhelpers contrib/openstack/ha/utils.py generate_ha_relation_data and
    update_hacluster_dns_ha; resolve_address(endpoint_type, override=False) answers the
    unit's address for each endpoint type (charmhelpers names internal "int").
    """
    ch = charmhelpers_shim.load_charmhelpers()
    ha_utils = ch["charmhelpers.contrib.openstack.ha.utils"]
    config = Case(None).config()
    config["dns-ha"] = True
    for name, (fqdn, _) in hostnames.items():
        config[f"os-{name}-hostname"] = fqdn
    charmhelpers_shim.patch_hookenv(monkeypatch, config)
    addresses = {
        {"internal": "int"}.get(name, name): address for name, (_, address) in hostnames.items()
    }

    def resolve_address(endpoint_type: str, override: bool = True) -> str:
        assert override is False
        return addresses[endpoint_type]

    monkeypatch.setattr(ha_utils, "resolve_address", resolve_address)
    monkeypatch.setattr(ha_utils, "lsb_release", lambda: {"DISTRIB_RELEASE": "22.04"})
    extra = {"delete_resources": list(delete_resources)} if delete_resources else None
    return dict(ha_utils.generate_ha_relation_data("glance", extra_settings=extra))


@pytest.mark.parametrize("case_id", list(DNS_CASES))
def test_dns_ha_equals_charmhelpers(monkeypatch: pytest.MonkeyPatch, case_id: str) -> None:
    """ocf:maas:dns resources + grp_glance_hostnames, byte-identical to charmhelpers."""
    hostnames = DNS_CASES[case_id]
    expected = charmhelpers_dns_ha_data(monkeypatch, hostnames)
    actual = build_dns_ha_resources(hostnames=hostnames).to_relation_data()
    assert actual == expected
    groups = json.loads(actual["json_groups"])
    assert list(groups) == ["grp_glance_hostnames"]
    assert "json_delete_resources" not in actual  # no VIP handling in the dns-ha path


def test_dns_ha_resources_in_detail() -> None:
    resources = build_dns_ha_resources(hostnames=DNS_CASES["all-three"])
    assert resources.resources == {
        "res_glance_haproxy": "lsb:haproxy",
        "res_glance_admin_hostname": "ocf:maas:dns",
        "res_glance_int_hostname": "ocf:maas:dns",
        "res_glance_public_hostname": "ocf:maas:dns",
    }
    assert resources.resource_params["res_glance_int_hostname"] == (
        'params fqdn="glance-int.example.com" ip_address="10.6.0.10"'
    )
    # charmhelpers order: admin, internal, public
    assert resources.groups == {
        "grp_glance_hostnames": (
            "res_glance_admin_hostname res_glance_int_hostname res_glance_public_hostname"
        )
    }
    assert resources.clones == {"cl_glance_haproxy": "res_glance_haproxy"}


def test_dns_ha_with_deletions_equals_charmhelpers(monkeypatch: pytest.MonkeyPatch) -> None:
    old = (vip_resource_name("glance", V4),)
    hostnames = DNS_CASES["public-only"]
    actual = build_dns_ha_resources(hostnames=hostnames, delete_resources=old)
    assert actual.to_relation_data() == charmhelpers_dns_ha_data(monkeypatch, hostnames, old)
    assert actual.delete_resources == list(old)


def test_dns_ha_without_hostname_is_refused_like_charmhelpers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="os-\\*-hostname"):
        build_dns_ha_resources(hostnames={})
    with pytest.raises(ValueError, match="unknown endpoint types"):
        build_dns_ha_resources(hostnames={"access": ("a.example.com", "10.5.0.1")})
    ha_utils = charmhelpers_shim.load_charmhelpers()["charmhelpers.contrib.openstack.ha.utils"]
    with pytest.raises(ha_utils.DNSHAException):
        charmhelpers_dns_ha_data(monkeypatch, {})

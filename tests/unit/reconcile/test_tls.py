"""TLS at haproxy: ssl_* config and the certificates relation, with real keys and certificates.

The certificates are generated here (cryptography for the config path, the TLS library's own
helpers to play the provider), so the real `haproxy -c` (when installed) loads them too.
"""

from __future__ import annotations

import base64
import json
import logging
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import ops
import ops.testing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from charm import GlanceCharm
from glance_charm.domain.tls_material import CertRequest, MaterialError, TLSMaterial
from glance_charm.workload.haproxy import HAPROXY_BIN
from tests.unit.conftest import GlanceHarness, use_test_workloads

UNIT_ADDRESS = "10.5.0.100"
PEM = "etc/haproxy/glance.pem"
CA = "usr/local/share/ca-certificates/glance-charm-ca.crt"
PROVIDER = "self-signed-certificates"
REPO = Path(__file__).resolve().parents[3]


# ---- material -----------------------------------------------------------------------------
def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_cert(common_name: str, key: ec.EllipticCurvePrivateKey,
              issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
              ca: bool = False) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(common_name)]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Material:
    """A test CA, and a server certificate + key it signed."""

    def __init__(self, name: str = "glance.example.com") -> None:
        self.ca_key = new_key()
        self.ca = make_cert("Test CA", self.ca_key, ca=True)
        self.key = new_key()
        self.cert = make_cert(name, self.key, issuer=(self.ca, self.ca_key))
        self.ca_pem, self.key_pem, self.cert_pem = (
            cert_pem(self.ca), key_pem(self.key), cert_pem(self.cert))

    def config(self, ca: bool = True) -> dict[str, Any]:
        options = {"ssl_cert": b64(self.cert_pem), "ssl_key": b64(self.key_pem)}
        if ca:
            options["ssl_ca"] = b64(self.ca_pem)
        return options

    def key_lines(self) -> list[str]:
        return [line for line in self.key_pem.splitlines() if "-----" not in line]


UNSET_TLS = {"ssl_cert": "", "ssl_key": "", "ssl_ca": ""}
GARBAGE = "-----BEGIN {kind}-----\nMIIBnotDER\n-----END {kind}-----\n"


# ---- reading what the charm did -----------------------------------------------------------
def haproxy_cfg(gh: GlanceHarness) -> str:
    return (gh.root / "etc/haproxy/haproxy.cfg").read_text()


def identity_urls(gh: GlanceHarness) -> set[str]:
    relation = gh.harness.model.get_relation("identity-service")
    assert relation is not None
    bag = gh.harness.get_relation_data(relation.id, "glance/0")
    urls = {bag[key] for key in ("public_url", "internal_url", "admin_url")}
    app = json.loads(gh.harness.get_relation_data(relation.id, "glance")["service-endpoints"])
    return urls | {app[0][key] for key in ("public_url", "internal_url", "admin_url")}


def image_url(gh: GlanceHarness, rel: int) -> str:
    return gh.harness.get_relation_data(rel, "glance/0")["glance-api-server"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def related(gh: GlanceHarness) -> int:
    """Database, keystone and nova-cloud-controller (image-service); returns the latter."""
    gh.relate_core()
    return gh.add_fixture("image-service_nova-cloud-controller")


def assert_https(gh: GlanceHarness, image: int, host: str = UNIT_ADDRESS) -> None:
    pem = gh.root / PEM
    listen = "0.0.0.0" if host != UNIT_ADDRESS else UNIT_ADDRESS  # noqa: S104 - VIP: any
    assert f"bind {listen}:9292 ssl crt {pem}\n" in haproxy_cfg(gh)
    assert "http-request set-header X-Forwarded-Proto https" in haproxy_cfg(gh)
    assert identity_urls(gh) == {f"https://{host}:9292"}
    assert image_url(gh, image) == f"https://{host}:9292"
    assert gh.conf()["oslo_middleware"]["enable_proxy_headers_parsing"] == "true"


def assert_http(gh: GlanceHarness, image: int) -> None:
    assert "ssl crt" not in haproxy_cfg(gh)
    assert identity_urls(gh) == {f"http://{UNIT_ADDRESS}:9292"}
    assert image_url(gh, image) == f"http://{UNIT_ADDRESS}:9292"
    assert not gh.conf().has_section("oslo_middleware")
    assert not (gh.root / PEM).exists()
    assert not (gh.root / CA).exists()


def haproxy_accepts(gh: GlanceHarness) -> None:
    """The real haproxy loads the written config and its PEM (when installed)."""
    if not Path(HAPROXY_BIN).exists():
        pytest.skip("haproxy is not installed")
    result = subprocess.run([HAPROXY_BIN, "-c", "-f", str(gh.root / "etc/haproxy/haproxy.cfg")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# ---- ssl_* config -------------------------------------------------------------------------
def test_config_tls_serves_https_everywhere(gh: GlanceHarness) -> None:
    image = related(gh)
    assert_http(gh, image)
    reloads = gh.services.count("reload", "haproxy")
    tls = Material()
    gh.harness.update_config(tls.config())
    pem = gh.root / PEM
    assert pem.read_text() == tls.cert_pem + tls.ca_pem + tls.key_pem
    assert mode(pem) == 0o600
    assert (gh.root / CA).read_text() == tls.ca_pem and mode(gh.root / CA) == 0o644
    assert gh.charm.tls.ca_refreshes == 1  # type: ignore[attr-defined]
    assert_https(gh, image)
    assert gh.services.count("reload", "haproxy") == reloads + 1
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    haproxy_accepts(gh)
    gh.event()  # nothing changed: nothing written, nothing reloaded
    assert gh.services.count("reload", "haproxy") == reloads + 1
    assert gh.charm.tls.ca_refreshes == 1  # type: ignore[attr-defined]


def test_config_without_ca_serves_the_certificate_alone(gh: GlanceHarness) -> None:
    image = related(gh)
    tls = Material()
    gh.harness.update_config(tls.config(ca=False))
    assert (gh.root / PEM).read_text() == tls.cert_pem + tls.key_pem
    assert not (gh.root / CA).exists()
    assert_https(gh, image)
    haproxy_accepts(gh)


def test_removing_the_options_reverts_to_http_and_removes_files(gh: GlanceHarness) -> None:
    image = related(gh)
    gh.harness.update_config(Material().config())
    restarts = gh.services.count("restart")
    gh.harness.update_config(UNSET_TLS)
    assert_http(gh, image)
    assert gh.charm.tls.ca_refreshes == 2  # type: ignore[attr-defined]
    assert gh.services.count("restart") == restarts + 1  # proxy headers parsing off
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_new_certificate_reloads_haproxy_with_the_same_config(gh: GlanceHarness) -> None:
    image = related(gh)
    first = Material()
    gh.harness.update_config(first.config())
    cfg, reloads = haproxy_cfg(gh), gh.services.count("reload", "haproxy")
    second = Material()
    gh.harness.update_config(second.config())
    assert haproxy_cfg(gh) == cfg
    assert gh.services.count("reload", "haproxy") == reloads + 1
    assert (gh.root / PEM).read_text() == second.cert_pem + second.ca_pem + second.key_pem
    assert_https(gh, image)


def test_reload_owed_by_a_dead_hook_is_done_next_time(gh: GlanceHarness,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    related(gh)
    gh.harness.update_config(Material().config())
    reloads = gh.services.count("reload", "haproxy")
    monkeypatch.setattr(gh.charm.haproxy, "ensure_running", lambda changed: False)
    gh.harness.update_config(Material().config())  # PEM replaced, the hook "dies" before reload
    monkeypatch.undo()
    gh.event()
    assert gh.services.count("reload", "haproxy") == reloads + 1


@pytest.mark.parametrize(("change", "options"), [
    ("key of another certificate", ["ssl_cert", "ssl_key"]),
    ("not a certificate", ["ssl_cert"]),
    ("encrypted key", ["ssl_key"]),
    ("no key", ["ssl_key"]),
    ("CA without a certificate", ["ssl_ca"]),
    ("garbage certificate", ["ssl_cert"]),
    ("garbage key", ["ssl_key"]),
    ("garbage CA", ["ssl_ca", "ssl_cert"]),
])
def test_unusable_material_blocks_and_keeps_the_last_good(gh: GlanceHarness, change: str,
                                                          options: list[str]) -> None:
    image = related(gh)
    good = Material()
    gh.harness.update_config(good.config())
    pem = (gh.root / PEM).read_bytes()
    cfg = haproxy_cfg(gh)
    bad = good.config()
    if change == "key of another certificate":
        bad["ssl_key"] = b64(key_pem(new_key()))
    elif change == "not a certificate":
        bad["ssl_cert"] = b64(good.key_pem)
    elif change == "encrypted key":
        bad["ssl_key"] = b64(good.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")).decode())
    elif change == "no key":
        bad["ssl_key"] = b64(good.cert_pem)
    elif change == "CA without a certificate":
        bad["ssl_ca"] = b64(good.key_pem)
    elif change == "garbage certificate":
        bad["ssl_cert"] = b64(GARBAGE.format(kind="CERTIFICATE"))
    elif change == "garbage key":
        bad["ssl_key"] = b64(GARBAGE.format(kind="PRIVATE KEY"))
    else:
        bad["ssl_ca"] = b64(GARBAGE.format(kind="CERTIFICATE"))
    gh.harness.update_config(bad)
    assert gh.status() == ops.BlockedStatus(f"Invalid config: {', '.join(options)}")
    assert (gh.root / PEM).read_bytes() == pem and haproxy_cfg(gh) == cfg
    assert identity_urls(gh) == {f"https://{UNIT_ADDRESS}:9292"}
    assert image_url(gh, image) == f"https://{UNIT_ADDRESS}:9292"


def test_unusable_material_from_the_start_stays_on_http(gh: GlanceHarness) -> None:
    image = related(gh)
    tls = Material()
    gh.harness.update_config({**tls.config(), "ssl_key": b64(key_pem(new_key()))})
    assert gh.status() == ops.BlockedStatus("Invalid config: ssl_cert, ssl_key")
    assert_http(gh, image)


def test_tls_with_vip_uses_https_vip_endpoints(gh: GlanceHarness) -> None:
    gh.harness.update_config({"vip": "10.5.100.1", **Material().config()})
    image = related(gh)
    gh.add_fixture("object-store_swift-proxy")  # HA needs shared storage
    gh.add_fixture("ha_hacluster")
    assert_https(gh, image, host="10.5.100.1")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_upgrade_action_keeps_https(gh: GlanceHarness) -> None:
    image = related(gh)
    gh.harness.update_config({**Material().config(), "action-managed-upgrade": True})
    gh.harness.update_config({"openstack-origin": "cloud:jammy-antelope"})
    gh.harness.run_action("openstack-upgrade")
    assert_https(gh, image)


# ---- material, unit level -----------------------------------------------------------------
def test_material_repr_hides_the_key() -> None:
    tls = Material()
    material = TLSMaterial.build("config", tls.cert_pem, [tls.ca_pem], tls.ca_pem, tls.key_pem)
    assert tls.key_lines()[0] not in repr(material)
    assert material.combined_pem().decode() == tls.cert_pem + tls.ca_pem + tls.key_pem


def test_chain_in_ssl_cert_and_duplicate_ca_are_served_once() -> None:
    from glance_charm.domain.config import GlanceConfig

    tls = Material()
    config = GlanceConfig.from_mapping({
        "ssl_cert": b64(tls.cert_pem + "\n" + tls.ca_pem.replace("\n", "\r\n")),
        "ssl_key": b64(tls.key_pem), "ssl_ca": b64(tls.ca_pem),
    })
    material = TLSMaterial.from_config(config)
    assert material is not None
    assert material.chain == (tls.ca_pem,)
    material.check()


def test_material_error_names_no_material() -> None:
    tls = Material()
    material = TLSMaterial.build("config", tls.cert_pem, [], None, key_pem(new_key()))
    with pytest.raises(MaterialError) as err:
        material.check()
    assert tls.key_lines()[0] not in str(err.value)
    assert err.value.parts == ("ssl_cert", "ssl_key")


def test_certificate_request_names() -> None:
    from glance_charm.domain.config import GlanceConfig

    config = GlanceConfig.from_mapping({
        "os-public-hostname": "images.example.com", "os-internal-hostname": "glance.internal",
        "os-admin-hostname": "IMAGES.example.com", "vip": "10.5.100.1 fd00::1",
    })
    request = CertRequest.build(config, ["10.5.0.100", "10.6.0.100", None])
    assert request == CertRequest(
        "images.example.com", ("images.example.com", "glance.internal"),
        ("10.5.0.100", "10.6.0.100", "10.5.100.1", "fd00::1"),
    )
    plain = CertRequest.build(GlanceConfig.from_mapping({}), ["10.5.0.100"] * 3)
    assert plain == CertRequest("10.5.0.100", (), ("10.5.0.100",))
    long_name = "a" * 60 + ".example.com"
    named = CertRequest.build(GlanceConfig.from_mapping({"os-public-hostname": long_name}),
                              [UNIT_ADDRESS, None, None])
    assert named == CertRequest(UNIT_ADDRESS, (long_name,), (UNIT_ADDRESS,))  # CN <= 64
    nothing = CertRequest.build(GlanceConfig.from_mapping({}), ["glance-0", None, None])
    assert nothing is None  # a unit name stand-in is no address


# ---- the certificates relation ------------------------------------------------------------
class Provider:
    """Plays self-signed-certificates with the TLS library's own helpers."""

    def __init__(self, gh: GlanceHarness, rel: int) -> None:
        from charmlibs.interfaces.tls_certificates import (
            Certificate,
            CertificateRequestAttributes,
            PrivateKey,
        )

        self.gh, self.rel = gh, rel
        self.ca_key = PrivateKey.generate(key_size=2048)
        self.ca = Certificate.generate_self_signed_ca(
            CertificateRequestAttributes(common_name="provider CA"), self.ca_key,
            timedelta(days=365))

    def csrs(self) -> list[str]:
        bag = self.gh.harness.get_relation_data(self.rel, "glance/0")
        return [item["certificate_signing_request"]
                for item in json.loads(bag.get("certificate_signing_requests", "[]"))]

    def csr(self) -> x509.CertificateSigningRequest:
        (only,) = self.csrs()
        return x509.load_pem_x509_csr(only.encode())

    def issue(self) -> str:
        """Sign every CSR the unit sent; publish them all; return the last certificate."""
        from charmlibs.interfaces.tls_certificates import Certificate, CertificateSigningRequest

        issued: list[dict[str, str | list[str]]] = []
        for csr in self.csrs():
            cert = Certificate.generate(CertificateSigningRequest.from_string(csr), self.ca,
                                        self.ca_key, timedelta(days=30))
            issued.append({"certificate_signing_request": csr, "certificate": str(cert),
                           "ca": str(self.ca), "chain": [str(cert), str(self.ca)]})
        self.gh.harness.update_relation_data(self.rel, PROVIDER,
                                             {"certificates": json.dumps(issued)})
        last = issued[-1]["certificate"]
        assert isinstance(last, str)
        return last

    def refuse(self) -> None:
        (csr,) = self.csrs()
        error = {"code": 102, "name": "IP_NOT_ALLOWED", "message": "no IP SANs here"}
        self.gh.harness.update_relation_data(self.rel, PROVIDER, {
            "request_errors": json.dumps([{"csr": csr, "error": error}])})


def relate_provider(gh: GlanceHarness) -> Provider:
    rel = gh.harness.add_relation("certificates", PROVIDER)
    gh.harness.add_relation_unit(rel, f"{PROVIDER}/0")
    return Provider(gh, rel)


def san_values(csr: x509.CertificateSigningRequest) -> tuple[set[str], set[str]]:
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(sans.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)})


def common_name(csr: x509.CertificateSigningRequest) -> str:
    return str(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def served_certificate(gh: GlanceHarness) -> str:
    return next(block for block in _blocks((gh.root / PEM).read_text()))


def _blocks(text: str) -> list[str]:
    from glance_charm.domain.tls_material import pem_blocks

    return [block for _, block in pem_blocks(text)]


def test_relation_requests_a_certificate_and_waits(gh: GlanceHarness) -> None:
    image = related(gh)
    provider = relate_provider(gh)
    csr = provider.csr()
    assert common_name(csr) == UNIT_ADDRESS
    assert san_values(csr) == (set(), {UNIT_ADDRESS})
    assert gh.status() == ops.WaitingStatus("Waiting for TLS certificate")
    assert_http(gh, image)  # plain HTTP meanwhile


def test_relation_certificate_is_served(gh: GlanceHarness) -> None:
    image = related(gh)
    provider = relate_provider(gh)
    cert = provider.issue()
    pem = (gh.root / PEM).read_text()
    blocks = _blocks(pem)
    assert blocks[0] == _blocks(cert)[0]
    assert blocks[1] == _blocks(str(provider.ca))[0]  # the chain without the leaf again
    assert "PRIVATE KEY" in blocks[2] and len(blocks) == 3
    assert mode(gh.root / PEM) == 0o600
    assert (gh.root / CA).read_text() == _blocks(str(provider.ca))[0]
    assert_https(gh, image)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    haproxy_accepts(gh)
    # The key is the one whose CSR the provider signed, kept in a unit-owned secret.
    key = serialization.load_pem_private_key(blocks[2].encode(), password=None)
    leaf = x509.load_pem_x509_certificate(blocks[0].encode())
    assert key.public_key() == leaf.public_key()


def test_sans_follow_hostnames_and_vip(gh: GlanceHarness) -> None:
    gh.harness.update_config({"os-public-hostname": "images.example.com",
                              "os-internal-hostname": "glance.internal", "vip": "10.5.100.1"})
    related(gh)
    gh.add_fixture("ha_hacluster")
    csr = relate_provider(gh).csr()
    assert common_name(csr) == "images.example.com"
    assert san_values(csr) == ({"images.example.com", "glance.internal"},
                               {UNIT_ADDRESS, "10.5.100.1"})


def test_changed_names_request_again_and_keep_the_old_certificate(gh: GlanceHarness) -> None:
    image = related(gh)
    provider = relate_provider(gh)
    first = provider.issue()
    gh.harness.update_config({"os-public-hostname": "images.example.com"})
    csr = provider.csr()  # the old CSR withdrawn, one new one
    assert common_name(csr) == "images.example.com"
    assert served_certificate(gh) == _blocks(first)[0]  # still the old one, still https
    assert identity_urls(gh) == {"https://images.example.com:9292", f"https://{UNIT_ADDRESS}:9292"}
    assert image_url(gh, image) == f"https://{UNIT_ADDRESS}:9292"
    assert gh.status() == ops.WaitingStatus("Waiting for TLS certificate")
    second = provider.issue()
    assert served_certificate(gh) == _blocks(second)[0]
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_relation_wins_over_config_once_issued(gh: GlanceHarness) -> None:
    image = related(gh)
    configured = Material()
    gh.harness.update_config(configured.config())
    provider = relate_provider(gh)
    assert served_certificate(gh) == configured.cert_pem  # config meanwhile
    assert gh.status() == ops.WaitingStatus("Waiting for TLS certificate")
    cert = provider.issue()
    assert served_certificate(gh) == _blocks(cert)[0]
    assert_https(gh, image)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    gh.harness.remove_relation(provider.rel)  # back to the configured certificate
    assert served_certificate(gh) == configured.cert_pem
    assert_https(gh, image)
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_relation_removed_reverts_to_http(gh: GlanceHarness) -> None:
    image = related(gh)
    provider = relate_provider(gh)
    provider.issue()
    gh.harness.remove_relation(provider.rel)
    assert_http(gh, image)
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_refused_request_blocks(gh: GlanceHarness) -> None:
    image = related(gh)
    provider = relate_provider(gh)
    provider.refuse()
    assert gh.status() == ops.BlockedStatus("TLS certificate request refused (IP_NOT_ALLOWED)")
    assert_http(gh, image)


@pytest.fixture
def born_related(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 request: pytest.FixtureRequest) -> Iterator[ops.testing.Harness[GlanceCharm]]:
    """A charm object built in a hook where the certificates relation exists (as in Juju)."""
    use_test_workloads(tmp_path / "root", monkeypatch)
    harness = ops.testing.Harness(GlanceCharm)
    harness.add_network(UNIT_ADDRESS)
    harness.add_relation("certificates", PROVIDER)
    harness.update_config(getattr(request, "param", {}))
    harness.begin()
    yield harness
    harness.cleanup()


def sent_csrs(harness: ops.testing.Harness[GlanceCharm]) -> list[Any]:
    relation = harness.model.relations["certificates"][0]
    raw = harness.get_relation_data(relation.id, "glance/0").get("certificate_signing_requests")
    return json.loads(raw or "[]")


def test_requirer_is_built_in_init_when_related(
    born_related: ops.testing.Harness[GlanceCharm],
) -> None:
    assert born_related.charm.reconciler.frontend.certificates is not None
    born_related.charm.on.config_changed.emit()  # the library requests on its refresh events
    assert len(sent_csrs(born_related)) == 1


@pytest.mark.parametrize("born_related", [{"region": "bad region"}], indirect=True)
def test_invalid_config_before_any_request_requests_nothing(
    born_related: ops.testing.Harness[GlanceCharm],
) -> None:
    born_related.charm.on.config_changed.emit()
    assert sent_csrs(born_related) == []


def test_no_relation_no_requirer_no_cryptography(gh: GlanceHarness) -> None:
    related(gh)
    assert gh.charm.reconciler.frontend.certificates is None
    probe = ("import sys; sys.path[:0] = ['src']; import charm; "
             "import glance_charm.reconcile.reconciler; "
             "heavy = ('cryptography', 'charmlibs.interfaces'); "
             "print(sorted(m for m in sys.modules if m.startswith(heavy)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_private_key_is_never_logged(gh: GlanceHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    statuses: list[str] = []
    image = related(gh)
    configured = Material()
    gh.harness.update_config(configured.config())
    statuses.append(gh.status().message)
    gh.harness.update_config({"ssl_key": b64(key_pem(new_key()))})  # rejected
    statuses.append(gh.status().message)
    gh.harness.update_config(configured.config())
    provider = relate_provider(gh)
    statuses.append(gh.status().message)
    provider.issue()
    statuses.append(gh.status().message)
    assert_https(gh, image)
    relation_key = _blocks((gh.root / PEM).read_text())[2]
    secrets = configured.key_lines() + [
        line for line in relation_key.splitlines() if "-----" not in line]
    text = caplog.text + "\n".join(statuses)
    assert caplog.records
    assert not [line for line in secrets if line in text]
    for relation in gh.harness.model.relations["certificates"]:
        bag = json.dumps(dict(gh.harness.get_relation_data(relation.id, "glance/0")))
        assert not [line for line in secrets if line in bag]


def test_invalid_config_keeps_the_request_in_place(gh: GlanceHarness) -> None:
    related(gh)
    provider = relate_provider(gh)
    sent = provider.csrs()
    gh.harness.update_config({"region": "bad region"})  # the library's refresh runs too
    assert gh.status() == ops.BlockedStatus("Invalid config: region")
    assert provider.csrs() == sent
    gh.harness.update_config({"region": "RegionTwo"})
    assert provider.csrs() == sent


def test_unusable_relation_certificate_blocks(gh: GlanceHarness,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    image = related(gh)
    provider = relate_provider(gh)

    def reject(material: TLSMaterial) -> None:
        raise MaterialError("the private key does not match the certificate", ["ssl_key"])

    monkeypatch.setattr(TLSMaterial, "check", reject)
    provider.issue()
    assert gh.status() == ops.BlockedStatus(
        "Unusable certificate from the certificates relation")
    assert_http(gh, image)


@pytest.mark.parametrize("outcome", ["fails", "missing", "works"])
def test_ca_store_refresh_failure_is_logged(outcome: str, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from glance_charm.workload import tls
    calls: list[list[str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if outcome == "missing":
            raise FileNotFoundError(cmd[0])
        return subprocess.CompletedProcess(cmd, 1 if outcome == "fails" else 0, "", "")

    monkeypatch.setattr(tls.subprocess, "run", run)
    tls.TLSWorkload().refresh_ca_store()
    assert calls == [["update-ca-certificates"]]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert bool(errors) == (outcome != "works")


def test_requirer_is_built_for_the_broken_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               request: pytest.FixtureRequest) -> None:
    """relation-broken: the relation is gone from the model, the library still cleans up."""
    monkeypatch.setenv("JUJU_RELATION", "certificates")
    harness = ops.testing.Harness(GlanceCharm)
    request.addfinalizer(harness.cleanup)
    harness.begin()
    assert harness.charm.reconciler.frontend.certificates is not None


# ---- the classic OpenStack format (openstack/charm-vault) --------------------------------
# Follows charmhelpers contrib/openstack/cert_utils.py (CertRequest.get_request,
# process_certificates, _manage_ca_certs -> install_ca_cert) and openstack/charm-vault
# src/reactive/vault_handlers.py; fixtures tests/data/relations/certificates_vault-classic*.json.
VAULT = "certificates_vault-classic"


def vault_bag(name: str = VAULT) -> dict[str, str]:
    from tests.fixtures import load

    return dict(load(name)["remote_units_data"]["vault/0"])


@pytest.mark.parametrize("fixture", [VAULT, "certificates_vault-classic-single"])
def test_vault_classic_certificate_is_served_and_its_ca_trusted(gh: GlanceHarness,
                                                               fixture: str) -> None:
    """Vault's answer: haproxy serves leaf+chain+key, https endpoints, CA in the trust store."""
    image = related(gh)
    rel = gh.add_fixture(fixture)
    sent = gh.harness.get_relation_data(rel, "glance/0")
    assert sent["unit_name"] == "glance_0"
    assert json.loads(sent["cert_requests"]) == {UNIT_ADDRESS: {"sans": [UNIT_ADDRESS]}}
    bag = vault_bag(fixture)
    cert = bag.get("glance_0.server.cert") or json.loads(
        bag["glance_0.processed_requests"])[UNIT_ADDRESS]["cert"]
    blocks = _blocks((gh.root / PEM).read_text())
    assert blocks[0] == _blocks(cert)[0]
    assert blocks[1] == _blocks(bag["chain"])[0]  # the intermediate vault signs with
    assert "PRIVATE KEY" in blocks[-1]
    assert (gh.root / CA).read_text() == _blocks(bag["ca"])[0]
    assert_https(gh, image)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    haproxy_accepts(gh)
    gh.harness.remove_relation(rel)  # the CA leaves the trust store with the relation
    assert_http(gh, image)


def test_vault_classic_pending_answer_waits_on_http(gh: GlanceHarness) -> None:
    image = related(gh)
    bag = {k: v for k, v in vault_bag().items() if k in ("private-address", "ingress-address")}
    rel = gh.harness.add_relation("certificates", "vault")
    gh.harness.add_relation_unit(rel, "vault/0")
    gh.harness.update_relation_data(rel, "vault/0", bag)
    assert "cert_requests" in gh.harness.get_relation_data(rel, "glance/0")
    assert gh.status() == ops.WaitingStatus("Waiting for TLS certificate")
    assert_http(gh, image)


@pytest.mark.parametrize("bad", ["json", "other-cn", "key"])
def test_vault_classic_bad_answer_blocks_and_keeps_the_last_good(gh: GlanceHarness,
                                                                bad: str) -> None:
    image = related(gh)
    rel = gh.add_fixture(VAULT)
    good = served_certificate(gh)
    entry = json.loads(vault_bag()["glance_0.processed_requests"])[UNIT_ADDRESS]
    other = vault_bag("certificates_vault-classic-single")
    answers = {
        "json": "{not json",
        "other-cn": json.dumps({"glance.example.com": entry}),
        "key": json.dumps({UNIT_ADDRESS: {"cert": entry["cert"],
                                          "key": other["glance_0.server.key"]}}),
    }
    gh.harness.update_relation_data(rel, "vault/0",
                                    {"glance_0.processed_requests": answers[bad]})
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus) and "certificates relation" in status.message
    assert served_certificate(gh) == good  # last good TLS config kept
    assert_https(gh, image)

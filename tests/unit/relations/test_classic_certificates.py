"""`certificates` in the classic OpenStack format, as openstack/charm-vault answers it.

Issue 13 item 1 (the adapter). The request follows charmhelpers
contrib/openstack/cert_utils.py (CertRequest.get_request; compared with charmhelpers' own
code below); the answers follow openstack/charm-vault src/reactive/vault_handlers.py
(publish_ca_info: `ca` = vault_pki.get_ca(), `chain` = vault_pki.get_chain(); create_certs)
through the tls-certificates interface layer's provides.py (set_server_multicerts:
``<unit_name>.processed_requests``; set_server_cert: ``<unit_name>.server.cert/.key``).
The fixtures tests/data/relations/certificates_vault-classic*.json hold a leaf issued by an
intermediate under a test root, as vault's charm-pki-local would.
"""

from __future__ import annotations

import importlib
import json

import ops
import pytest

from glance_charm.domain.tls_material import CertRequest, MaterialError
from glance_charm.relations import classic_certificates as classic
from tests.fixtures import load
from tests.unit import charmhelpers_shim
from tests.unit.conftest import GlanceHarness

REQUEST = CertRequest("10.5.0.100", (), ("10.5.0.100",))


def relate(gh: GlanceHarness, name: str,
           override: dict[str, str] | None = None) -> ops.Relation:
    rel_id = gh.add_fixture(name, override=override)
    relation = gh.harness.model.get_relation("certificates", rel_id)
    assert relation is not None
    return relation


def test_request_matches_charmhelpers_cert_request(monkeypatch: pytest.MonkeyPatch) -> None:
    charmhelpers_shim.load_charmhelpers()
    cert_utils = importlib.import_module("charmhelpers.contrib.openstack.cert_utils")
    monkeypatch.setenv("JUJU_UNIT_NAME", "glance/0")
    request = CertRequest("glance.example.com", ("glance.example.com",), ("10.5.0.100",
                                                                          "10.5.0.10"))
    expected = cert_utils.CertRequest()
    expected.add_entry(None, "glance.example.com",
                       ["10.5.0.100", "10.5.0.10", "glance.example.com"])
    assert classic.request_data("glance/0", request) == expected.get_request()


@pytest.mark.parametrize("fixture", ["certificates_vault-classic",
                                     "certificates_vault-classic-single"])
def test_vault_answer_gives_cert_key_chain_and_ca(gh: GlanceHarness, fixture: str) -> None:
    relation = relate(gh, fixture)
    bag = load(fixture)["remote_units_data"]["vault/0"]
    assert classic.speaks_classic(relation, "glance/0")
    material = classic.answer(relation, "glance/0", REQUEST)
    assert material is not None and material.source == "relation"
    material.check()  # key matches the certificate, everything parses
    assert material.ca is not None and material.ca.strip() == bag["ca"].strip()
    assert [c.strip() for c in material.chain] == [bag["chain"].strip(), bag["ca"].strip()]


def test_answer_for_another_unit_is_pending(gh: GlanceHarness) -> None:
    relation = relate(gh, "certificates_vault-classic")
    assert classic.answer(relation, "glance/1", REQUEST) is None


def test_v4_provider_is_not_classic(gh: GlanceHarness) -> None:
    rel_id = gh.harness.add_relation("certificates", "self-signed-certificates")
    gh.harness.add_relation_unit(rel_id, "self-signed-certificates/0")
    gh.harness.update_relation_data(rel_id, "self-signed-certificates",
                                    {"certificates": "[]"})
    relation = gh.harness.model.get_relation("certificates", rel_id)
    assert relation is not None
    assert not classic.speaks_classic(relation, "glance/0")
    assert classic.answer(relation, "glance/0", REQUEST) is None


def test_unparseable_json_is_an_error(gh: GlanceHarness) -> None:
    relation = relate(gh, "certificates_vault-classic",
                      {"glance_0.processed_requests": "{not json"})
    with pytest.raises(classic.ClassicAnswerError, match="not JSON"):
        classic.answer(relation, "glance/0", REQUEST)


def test_answer_without_the_requested_cn_is_an_error(gh: GlanceHarness) -> None:
    relation = relate(gh, "certificates_vault-classic")
    with pytest.raises(classic.ClassicAnswerError, match="no certificate"):
        classic.answer(relation, "glance/0", CertRequest("glance.example.com"))


def test_certificate_for_another_cn_is_an_error(gh: GlanceHarness) -> None:
    bag = load("certificates_vault-classic")["remote_units_data"]["vault/0"]
    entry = json.loads(bag["glance_0.processed_requests"])["10.5.0.100"]
    relation = relate(gh, "certificates_vault-classic", {
        "glance_0.processed_requests": json.dumps({"glance.example.com": entry})})
    with pytest.raises(classic.ClassicAnswerError, match="another common name"):
        classic.answer(relation, "glance/0", CertRequest("glance.example.com"))


def test_key_not_matching_the_certificate_is_rejected(gh: GlanceHarness) -> None:
    multi = load("certificates_vault-classic")["remote_units_data"]["vault/0"]
    single = load("certificates_vault-classic-single")["remote_units_data"]["vault/0"]
    entry = json.loads(multi["glance_0.processed_requests"])["10.5.0.100"]
    relation = relate(gh, "certificates_vault-classic", {
        "glance_0.processed_requests": json.dumps(
            {"10.5.0.100": {"cert": entry["cert"], "key": single["glance_0.server.key"]}})})
    material = classic.answer(relation, "glance/0", REQUEST)
    assert material is not None
    with pytest.raises(MaterialError):
        material.check()

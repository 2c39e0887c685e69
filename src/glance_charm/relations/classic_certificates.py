"""`certificates` in the classic OpenStack format (openstack/charm-vault): all of its key names.

The requirer's unit bag holds `unit_name` (the unit name, ``/`` -> ``_``) and `cert_requests`
(JSON ``{cn: {"sans": [...]}}``), as charmhelpers contrib/openstack/cert_utils.py
(CertRequest.get_request) builds them. vault (src/reactive/vault_handlers.py, through the
tls-certificates interface layer's provides.py) answers in its unit bag:
``<unit_name>.processed_requests`` (JSON ``{cn: {"cert": PEM, "key": PEM}}``), or for the
single-certificate form ``<unit_name>.server.cert`` / ``<unit_name>.server.key``, plus `ca`
and `chain`. A tls-certificates v4 provider answers in its app bag instead and never writes
these unit keys, which is how the two are told apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import ops

from glance_charm.domain.tls_material import CertRequest, TLSMaterial

ENDPOINT = "certificates"
UNIT_NAME = "unit_name"
CERT_REQUESTS = "cert_requests"
PROCESSED_REQUESTS = "{scope}.processed_requests"
SERVER_CERT = "{scope}.server.cert"
SERVER_KEY = "{scope}.server.key"
CA = "ca"
CHAIN = "chain"
# the single-certificate request form (older requirers): vault answers it with .server.*
COMMON_NAME = "common_name"
SANS = "sans"


class ClassicAnswerError(ValueError):
    """The provider's classic answer cannot be used (the message never quotes material)."""


def scope(unit_name: str) -> str:
    """The name vault keys its answer by: ``glance/0`` -> ``glance_0``."""
    return unit_name.replace("/", "_")


def request_data(unit_name: str, request: CertRequest) -> dict[str, str]:
    """What this unit sends: one cert_requests entry for its common name (CH get_request)."""
    sans = sorted({*request.sans_dns, *request.sans_ip})
    return {
        UNIT_NAME: scope(unit_name),
        CERT_REQUESTS: json.dumps({request.common_name: {"sans": sans}}, sort_keys=True),
    }


def _answer_keys(unit_name: str) -> tuple[str, str, str]:
    name = scope(unit_name)
    return (PROCESSED_REQUESTS.format(scope=name), SERVER_CERT.format(scope=name),
            SERVER_KEY.format(scope=name))


def speaks_classic(relation: ops.Relation, unit_name: str) -> bool:
    """Whether a provider unit answers in the classic format (its `ca` or our answer keys)."""
    keys = (CA, *_answer_keys(unit_name))
    return any(
        any(relation.data[unit].get(key) for key in keys) for unit in relation.units
    )


def _from_bag(bag: Mapping[str, str], unit_name: str,
              request: CertRequest) -> TLSMaterial | None:
    processed_key, cert_key, key_key = _answer_keys(unit_name)
    raw = bag.get(processed_key)
    if raw:
        try:
            processed = json.loads(raw)
        except ValueError:
            raise ClassicAnswerError(f"{processed_key} is not JSON") from None
        if not isinstance(processed, dict):
            raise ClassicAnswerError(f"{processed_key} is not a JSON object")
        entry = processed.get(request.common_name)
        if entry is None:
            raise ClassicAnswerError(f"{processed_key} holds no certificate for the requested "
                                     "common name")
        if not isinstance(entry, dict) or not isinstance(entry.get("cert"), str) \
                or not isinstance(entry.get("key"), str):
            raise ClassicAnswerError(f"{processed_key} entry lacks cert/key")
        cert, key = entry["cert"], entry["key"]
    elif bag.get(cert_key) and bag.get(key_key):
        cert, key = bag[cert_key], bag[key_key]
    else:
        return None
    ca = bag.get(CA) or None
    material = TLSMaterial.build("relation", cert, [bag.get(CHAIN) or "", ca or ""], ca, key)
    _check_names(material, request)
    return material


def _check_names(material: TLSMaterial, request: CertRequest) -> None:
    """The certificate must name the requested common name (subject CN or a SAN)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        leaf = x509.load_pem_x509_certificate(material.certificate.encode())
    except ValueError:
        raise ClassicAnswerError("the certificate is not PEM") from None
    names = {str(attr.value).lower()
             for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        san: x509.SubjectAlternativeName | None = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names |= {name.lower() for name in san.get_values_for_type(x509.DNSName)}
        names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    if request.common_name.lower() not in names:
        raise ClassicAnswerError("the certificate is issued for another common name")


def answer(relation: ops.Relation, unit_name: str,
           request: CertRequest) -> TLSMaterial | None:
    """The certificate a classic provider issued for this unit's request (None: pending).

    Raises:
        ClassicAnswerError: unparsable answer, no entry for the requested common name, or
            a certificate that does not name it. (Key/certificate mismatch is found when
            the material is written: TLSMaterial.check.)
    """
    for unit in sorted(relation.units, key=lambda u: u.name):
        material = _from_bag(relation.data[unit], unit_name, request)
        if material is not None:
            return material
    return None

"""`certificates` (tls-certificates v4 via charmlibs): request and read this unit's certificate.

The library imports `cryptography`, so this module imports it only inside functions: the
charm builds a requirer only in hooks where the relation exists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import ops

from glance_charm.domain.tls_material import CertRequest, TLSMaterial

if TYPE_CHECKING:
    from charmlibs.interfaces.tls_certificates import (
        CertificateRequestAttributes,
        TLSCertificatesRequiresV4,
    )

logger = logging.getLogger(__name__)

ENDPOINT = "certificates"
WAITING_MESSAGE = "Waiting for TLS certificate"
_ERROR_NAME = re.compile(r"[^A-Za-z0-9_ -]")


def _library() -> ModuleType:
    """The TLS library (and cryptography, ~0.1 s): imported here only, when the relation exists."""
    from charmlibs.interfaces import tls_certificates

    return tls_certificates


def requirer(charm: ops.CharmBase,
             request: Callable[[], CertRequest | None]) -> TLSCertificatesRequiresV4:
    """The library's requirer (one certificate per unit, its key in a unit-owned secret).

    Args:
        charm: the charm (the requirer observes the relation's events on it).
        request: what to request now; the library calls it whenever it builds requests
            (relation events, leader-elected, config-changed, upgrade-charm, sync()).

    Returns:
        The requirer.
    """
    lib = _library()

    def requests(_capabilities: object) -> list[CertificateRequestAttributes]:
        wanted = request()
        return [attributes(wanted)] if wanted is not None else []

    return lib.TLSCertificatesRequiresV4(
        charm, ENDPOINT, certificate_requests=requests, mode=lib.Mode.UNIT,
        refresh_events=[charm.on.config_changed, charm.on.upgrade_charm],
    )


def attributes(request: CertRequest) -> CertificateRequestAttributes:
    """The library's form of a request."""
    return _library().CertificateRequestAttributes(
        common_name=request.common_name,
        sans_dns=frozenset(request.sans_dns) or None,
        sans_ip=frozenset(request.sans_ip) or None,
    )


def assigned(tls: TLSCertificatesRequiresV4, request: CertRequest) -> TLSMaterial | None:
    """The certificate issued for exactly this request, with this unit's key (else None)."""
    issued, key = tls.get_assigned_certificate(attributes(request))
    if issued is None or key is None or issued.revoked:
        return None
    return TLSMaterial.build(
        "relation", str(issued.certificate),
        [str(cert) for cert in issued.chain] or [str(issued.ca)],
        str(issued.ca), str(key),
    )


def denial(tls: TLSCertificatesRequiresV4, request: CertRequest) -> str | None:
    """The provider's error name when it refused this request (None: not refused)."""
    wanted = attributes(request)
    for error in tls.get_request_errors():
        csr = error.certificate_signing_request
        if _library().CertificateRequestAttributes.from_csr(csr, is_ca=False) == wanted:
            return _ERROR_NAME.sub("", str(error.error.name))[:40] or "refused"
    return None

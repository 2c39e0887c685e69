"""TLS material: the certificate to request and the key material to serve (no files).

`cryptography` is imported in one function (`TLSMaterial.check`), only to check material that is
about to be written: a hook whose files are already current does not load it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from glance_charm.domain.config import GlanceConfig

MAX_COMMON_NAME = 64  # X.509 ub-common-name

_BLOCK = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]+)-----\r?\n(?P<body>.*?)-----END (?P=kind)-----", re.S
)
_KEY_KINDS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")

Source = Literal["relation", "config"]


# ---- what to request ----------------------------------------------------------------------
@dataclass(frozen=True)
class CertRequest:
    """The certificate this unit asks the `certificates` provider for.

    Attributes:
        common_name: ``os-public-hostname``, else the unit's public address.
        sans_dns: every ``os-*-hostname``.
        sans_ip: the unit's public/internal/admin ingress addresses and the VIPs.
    """

    common_name: str
    sans_dns: tuple[str, ...] = ()
    sans_ip: tuple[str, ...] = ()

    @classmethod
    def build(cls, config: GlanceConfig, addresses: Sequence[str | None]) -> CertRequest | None:
        """The request for this config and these binding addresses (None: nothing to name).

        Args:
            config: validated charm config.
            addresses: ingress addresses of the public, internal and admin bindings (in
                that order; None where a binding has none).

        Returns:
            The request, or None when the unit has no name or address at all.
        """
        hostnames = _unique(
            name for name in (config.os_public_hostname, config.os_internal_hostname,
                              config.os_admin_hostname) if name
        )
        ips = _unique(_ip(value) for value in (*addresses, *config.vip) if value and _ip(value))
        public = config.os_public_hostname
        candidates = [public] if public else []
        candidates += [address for address in addresses if address and _ip(address)]
        candidates += list(ips) + list(hostnames)
        common_name = next((c for c in candidates if c and len(c) <= MAX_COMMON_NAME), None)
        if common_name is None:
            return None
        return cls(common_name=common_name, sans_dns=hostnames, sans_ip=ips)

    def key(self) -> str:
        """A stable text form, to notice when the request must be sent again."""
        return json.dumps([self.common_name, sorted(self.sans_dns), sorted(self.sans_ip)])


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip("[]")))
    except ValueError:
        return None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        if value and value.lower() not in {v.lower() for v in seen}:
            seen[value] = None
    return tuple(seen)


# ---- what to serve ------------------------------------------------------------------------
def pem_blocks(text: str) -> list[tuple[str, str]]:
    """The PEM blocks of a text as (kind, normalised block) pairs, in order."""
    blocks = []
    for match in _BLOCK.finditer(text):
        body = "\n".join(line.strip() for line in match["body"].strip().splitlines())
        kind = match["kind"]
        blocks.append((kind, f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"))
    return blocks


def _certificates(text: str) -> list[str]:
    return [block for kind, block in pem_blocks(text) if kind == "CERTIFICATE"]


class MaterialError(ValueError):
    """TLS material that cannot be served; the message never quotes the material."""

    def __init__(self, message: str, parts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.parts = tuple(parts)  # which of certificate/key/ca is at fault


@dataclass(frozen=True)
class TLSMaterial:
    """A certificate, its chain and key for haproxy, and the CA to trust.

    Attributes:
        source: ``relation`` (certificates relation) or ``config`` (ssl_* options).
        certificate: the leaf certificate (PEM).
        chain: intermediate certificates served after the leaf (PEM, leaf excluded).
        ca: the CA certificate(s), installed in the system trust store; None without one.
        key: the private key (PEM); never in repr().
    """

    source: Source
    certificate: str
    chain: tuple[str, ...]
    ca: str | None
    key: str = field(repr=False)

    @classmethod
    def from_config(cls, config: GlanceConfig) -> TLSMaterial | None:
        """The ssl_cert/ssl_key/ssl_ca options (None when ssl_cert and ssl_key are unset).

        ssl_cert may hold the leaf followed by its chain; ssl_ca is served after them when
        it is not already among them.

        Raises:
            MaterialError: no certificate, no single unencrypted key, or a CA that holds
                no certificate.
        """
        cert_text, key_text = config.pem("ssl_cert"), config.pem("ssl_key")
        if not cert_text or not key_text:
            return None
        certificates = _certificates(cert_text)
        if not certificates:
            raise MaterialError("ssl_cert holds no certificate", ["ssl_cert"])
        keys = [block for kind, block in pem_blocks(key_text) if kind in _KEY_KINDS]
        if len(keys) != 1 or "ENCRYPTED" in key_text:
            raise MaterialError("ssl_key must hold one unencrypted private key", ["ssl_key"])
        ca_text = config.pem("ssl_ca")
        ca_certificates = _certificates(ca_text) if ca_text else []
        if ca_text and not ca_certificates:
            raise MaterialError("ssl_ca holds no certificate", ["ssl_ca"])
        return cls.build("config", certificates[0], [*certificates[1:], *ca_certificates],
                         "".join(ca_certificates) or None, keys[0])

    @classmethod
    def build(cls, source: Source, certificate: str, chain: Iterable[str], ca: str | None,
              key: str) -> TLSMaterial:
        """Normalise PEM text; the chain drops the leaf and duplicates."""
        leaf = _certificates(certificate)[0] if _certificates(certificate) else certificate
        served = [leaf]
        for text in chain:
            for block in _certificates(text):
                if block not in served:
                    served.append(block)
        key_blocks = [block for kind, block in pem_blocks(key) if kind in _KEY_KINDS]
        return cls(source=source, certificate=leaf, chain=tuple(served[1:]),
                   ca="".join(_certificates(ca)) if ca else None,
                   key=key_blocks[0] if key_blocks else key)

    def combined_pem(self) -> bytes:
        """What haproxy's ``crt`` reads: leaf, chain, key."""
        return "".join((self.certificate, *self.chain, self.key)).encode()

    def check(self) -> None:
        """Parse everything and check that the key belongs to the certificate.

        Raises:
            MaterialError: unparsable certificate/chain/CA or key, or a key mismatch.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            leaf = x509.load_pem_x509_certificate(self.certificate.encode())
        except ValueError:
            raise MaterialError("the certificate does not parse", ["ssl_cert"]) from None
        try:
            for block in (*self.chain, *_certificates(self.ca or "")):
                x509.load_pem_x509_certificate(block.encode())
        except ValueError:
            parts = ["ssl_cert", "ssl_ca"] if self.ca else ["ssl_cert"]
            raise MaterialError("a chain or CA certificate does not parse", parts) from None
        try:
            key = serialization.load_pem_private_key(self.key.encode(), password=None)
        except (ValueError, TypeError):
            raise MaterialError("the private key does not parse", ["ssl_key"]) from None
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise MaterialError("the private key does not match the certificate",
                                ["ssl_cert", "ssl_key"])

"""haproxy's frontend: where TLS comes from, the certificate request, and haproxy.cfg."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ops

from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.exceptions import (
    BlockedError,
    GlanceCharmError,
    InvalidConfigError,
    WaitingError,
)
from glance_charm.domain.ports import METRICS_ADDRESS
from glance_charm.domain.tls_material import CertRequest, MaterialError, TLSMaterial
from glance_charm.relations import certificates, classic_certificates, cos_agent, peers
from glance_charm.state.network import (
    BINDINGS,
    bind_address,
    binding_network,
    frontend_addresses,
)
from glance_charm.workload.haproxy import HaproxyWorkload
from glance_charm.workload.haproxy_config import HaproxyConfig
from glance_charm.workload.tls import TLSWorkload

if TYPE_CHECKING:
    from charmlibs.interfaces.tls_certificates import TLSCertificatesRequiresV4

logger = logging.getLogger(__name__)


class Frontend:
    """TLS files, then haproxy (which loads them); the certificates requirer.

    Args:
        charm: the charm (model, unit, config).
        stored: the charm's StoredState (tls_active, tls_source, tls_request, paused).
        haproxy: the haproxy workload.
        tls: builds the TLS workload when a hook first needs it.
    """

    def __init__(self, charm: ops.CharmBase, stored: Any, haproxy: HaproxyWorkload,
                 tls: Callable[[], TLSWorkload]) -> None:
        self._charm = charm
        self._stored = stored
        self._haproxy = haproxy
        self._tls = tls
        self.certificates: TLSCertificatesRequiresV4 | None = None
        # Reported at the end of the hook: the relation's certificate is pending or was
        # refused (plain HTTP or the last certificate is served meanwhile).
        self.problem: GlanceCharmError | None = None

    @property
    def scheme(self) -> str:
        """``https`` once haproxy's config terminates TLS, else ``http``."""
        return "https" if self._stored.tls_active else "http"

    def ensure_requirer(self) -> TLSCertificatesRequiresV4:
        """The TLS library's requirer (built once; it observes the relation's events)."""
        if self.certificates is None:
            self.certificates = certificates.requirer(self._charm, self.wanted_certificate)
        return self.certificates

    def configure(self, config: GlanceConfig) -> None:
        """TLS files, then haproxy (which loads them), then remove files no longer used.

        TLS comes from the certificates relation once it issued this unit's certificate,
        else from ssl_cert/ssl_key(/ssl_ca). While the relation's certificate for a new
        request is pending, the certificate it issued before stays in use.

        Raises:
            InvalidConfigError: unusable ssl_* material (haproxy and its files unchanged).
            BlockedError: haproxy rejected its config, or the relation's certificate is
                unusable.
        """
        material, keep = self._material(config)
        tls = self._tls()
        if material is not None:
            try:
                tls.write(material, self._haproxy.mark_reload_needed)
            except MaterialError as err:
                logger.error("TLS material from %s rejected: %s", material.source, err)
                if material.source == "config":
                    raise InvalidConfigError(list(err.parts)) from None
                raise BlockedError("Unusable certificate from the certificates relation") \
                    from None
        tls_pem = str(tls.paths.pem) if material is not None or keep else None
        self._configure_haproxy(config, tls_pem)
        self._stored.tls_active = tls_pem is not None
        if material is not None:
            self._stored.tls_source = material.source
        elif not keep:
            self._stored.tls_source = ""
            tls.remove()  # haproxy no longer reads them

    def _material(self, config: GlanceConfig) -> tuple[TLSMaterial | None, bool]:
        """What to serve: (new material or None, whether to keep the PEM in place)."""
        self.problem = None
        related = self._charm.model.get_relation(certificates.ENDPOINT) is not None
        if related:
            issued = self._relation_certificate(config)
            if issued is not None:
                return issued, False
        try:
            configured = TLSMaterial.from_config(config)
        except MaterialError as err:
            logger.error("ssl_* options rejected: %s", err)
            raise InvalidConfigError(list(err.parts)) from None
        if configured is not None:
            return configured, False
        keep = related and self._stored.tls_source == "relation" and self._tls().has_pem()
        return None, keep

    def _relation_certificate(self, config: GlanceConfig) -> TLSMaterial | None:
        """The certificate issued for the current request; re-request when it changed.

        Both formats are requested (a provider ignores the other's keys); a provider unit
        that answers in the classic format (openstack/charm-vault) is read as such, any
        other through the tls-certificates v4 library.
        """
        request = self._request(config)
        relation = self._charm.model.get_relation(certificates.ENDPOINT)
        if relation is not None and request is not None:
            self._send_classic_request(relation, request)
            if classic_certificates.speaks_classic(relation, self._charm.unit.name):
                return self._classic_certificate(relation, request)
        requirer = self.ensure_requirer()
        if request is not None and request.key() != self._stored.tls_request:
            requirer.sync()  # new addresses or names: a new CSR
        issued = certificates.assigned(requirer, request) if request else None
        if issued is None:
            denied = certificates.denial(requirer, request) if request else None
            self.problem = (
                BlockedError(f"TLS certificate request refused ({denied})") if denied
                else WaitingError(certificates.WAITING_MESSAGE)
            )
        return issued

    def _send_classic_request(self, relation: ops.Relation, request: CertRequest) -> None:
        data = classic_certificates.request_data(self._charm.unit.name, request)
        bag = relation.data[self._charm.unit]
        for key, value in data.items():
            if bag.get(key) != value:
                bag[key] = value

    def _classic_certificate(self, relation: ops.Relation,
                             request: CertRequest) -> TLSMaterial | None:
        try:
            issued = classic_certificates.answer(relation, self._charm.unit.name, request)
        except classic_certificates.ClassicAnswerError as err:
            logger.error("certificates relation (classic format) rejected: %s", err)
            self.problem = BlockedError("Unusable certificate from the certificates relation")
            return None
        if issued is None:
            self.problem = WaitingError(certificates.WAITING_MESSAGE)
        return issued

    def _request(self, config: GlanceConfig) -> CertRequest | None:
        addresses = [binding_network(self._charm, name)[0] for name in BINDINGS]
        return CertRequest.build(config, addresses)

    def wanted_certificate(self) -> CertRequest | None:
        """The request the library sends (it calls this whenever it builds requests)."""
        try:
            request = self._request(GlanceConfig.from_mapping(self._charm.config))
        except GlanceCharmError:  # invalid config: keep asking for what was asked before
            if not self._stored.tls_request:
                return None
            common_name, sans_dns, sans_ip = json.loads(self._stored.tls_request)
            return CertRequest(common_name, tuple(sans_dns), tuple(sans_ip))
        self._stored.tls_request = request.key() if request is not None else ""
        return request

    def _configure_haproxy(self, config: GlanceConfig, tls_pem: str | None) -> None:
        """Haproxy on every unit: frontend 9292, one backend per unit's glance-api (9282).

        It needs only config and peers, so it runs before the context is complete (the
        VIP hacluster manages points at haproxy, whatever glance's own state).
        """
        relation = self._charm.model.get_relation(peers.ENDPOINT)
        backends = peers.peer_addresses(
            relation, self._charm.unit, bind_address(self._charm, peers.ENDPOINT)
        )
        cfg = HaproxyConfig.from_options(
            backends,
            bind_addresses=frontend_addresses(self._charm, config),
            client_timeout=config.haproxy_client_timeout,
            server_timeout=config.haproxy_server_timeout,
            queue_timeout=config.haproxy_queue_timeout,
            connect_timeout=config.haproxy_connect_timeout,
            ipv6=config.prefer_ipv6,
            tls_pem=tls_pem,
            # the exporter only while a COS agent is related to scrape it
            metrics_address=(METRICS_ADDRESS if self._charm.model.relations.get(cos_agent.ENDPOINT)
                             else None),
        )
        changed = self._haproxy.configure(cfg)
        if not self._stored.paused:
            self._haproxy.ensure_running(changed)

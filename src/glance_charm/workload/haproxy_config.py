"""haproxy.cfg's typed inputs (pydantic) and rendering; imported only by hooks that render it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from glance_charm.domain.models import url_host, valid_host
from glance_charm.domain.ports import BACKEND_PORT, FRONTEND_PORT, METRICS_PORT
from glance_charm.workload.haproxy import (
    BACKEND_NAME,
    DEFAULT_CLIENT_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_QUEUE_TIMEOUT,
    DEFAULT_SERVER_TIMEOUT,
    STATS_SOCKET,
    server_name,
)
from glance_charm.workload.rendering import render_template

_UNIT_NAME = re.compile(r"^(?P<app>[a-z][a-z0-9-]*)/(?P<number>[0-9]+)$")
_POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*$")


def _safe_path(value: str) -> str:
    if not _SAFE_PATH.match(value) or "/../" in f"{value}/":
        raise ValueError("must be an absolute path without spaces or special characters")
    return value


class Backend(BaseModel):
    """One glance-api unit behind haproxy.

    Attributes:
        unit: Juju unit name, e.g. ``glance/0``.
        address: IP address or host name glance-api listens on.
        port: glance-api's port.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    address: str
    port: int = Field(default=BACKEND_PORT, ge=1, le=65535)

    @field_validator("unit")
    @classmethod
    def _unit_name(cls, value: str) -> str:
        if not _UNIT_NAME.match(value):
            raise ValueError("not a unit name (app/N)")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return valid_host(value, normalize=True)

    @property
    def server_name(self) -> str:
        """Server name in haproxy.cfg: the unit name with a dash, e.g. ``glance-0``."""
        return server_name(self.unit)

    @property
    def endpoint(self) -> str:
        """``address:port`` with IPv6 addresses in brackets."""
        return f"{url_host(self.address)}:{self.port}"

    @property
    def sort_key(self) -> tuple[str, int]:
        """Application name, then unit number as a number (glance/10 after glance/9)."""
        match = _UNIT_NAME.match(self.unit)
        assert match is not None
        return match["app"], int(match["number"])


class HaproxyConfig(BaseModel):
    """Everything haproxy.cfg depends on.

    Attributes:
        backends: glance-api units, sorted by application then unit number.
        frontend_port: port clients use (glance's public port).
        bind_address: address the frontend binds; None for every address.
        bind_addresses: addresses the frontend binds, one ``bind`` line each (the charm:
            its public, internal and admin bindings' addresses); takes precedence over
            ``bind_address``; empty for ``bind_address`` or every address.
        ipv6: bind IPv6 and IPv4 (``[::]:port v4v6``) when binding every address.
        balance: load-balancing algorithm.
        client_timeout: ``timeout client`` in ms.
        server_timeout: ``timeout server`` in ms.
        queue_timeout: ``timeout queue`` in ms.
        connect_timeout: ``timeout connect`` in ms.
        tls_pem: combined certificate + key file for TLS termination; None for plain HTTP.
        stats_socket: admin unix socket (no TCP stats listener).
        user: user haproxy drops to (None keeps the starting user).
        group: group haproxy drops to.
        chroot: directory haproxy chroots into (None: no chroot).
        maxconn: global connection limit; None lets haproxy size it from its file
            descriptor limit. (The classic 20000 needs 40029 descriptors: where the hard
            limit is lower haproxy refuses to start, and `haproxy -c` does not notice.)
        metrics_address: loopback address of the Prometheus exporter frontend (haproxy's
            built-in exporter, for the COS agent on the machine); None: no exporter.
        metrics_port: the exporter's port.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backends: tuple[Backend, ...] = ()
    frontend_port: int = Field(default=FRONTEND_PORT, ge=1, le=65535)
    bind_address: str | None = None
    bind_addresses: tuple[str, ...] = ()
    ipv6: bool = False
    balance: Literal["leastconn", "roundrobin"] = "leastconn"
    client_timeout: int = Field(default=DEFAULT_CLIENT_TIMEOUT, ge=1)
    server_timeout: int = Field(default=DEFAULT_SERVER_TIMEOUT, ge=1)
    queue_timeout: int = Field(default=DEFAULT_QUEUE_TIMEOUT, ge=1)
    connect_timeout: int = Field(default=DEFAULT_CONNECT_TIMEOUT, ge=1)
    tls_pem: str | None = None
    stats_socket: str = STATS_SOCKET
    user: str | None = "haproxy"
    group: str | None = "haproxy"
    chroot: str | None = "/var/lib/haproxy"
    maxconn: int | None = Field(default=None, ge=1)
    metrics_address: str | None = None
    metrics_port: int = Field(default=METRICS_PORT, ge=1, le=65535)

    @field_validator("backends", mode="before")
    @classmethod
    def _backends_from_pairs(cls, value: Any) -> Any:
        """Accept ``(unit, address)`` pairs as peers.peer_addresses returns them."""
        if isinstance(value, (list, tuple)):
            return tuple(
                {"unit": item[0], "address": item[1]} if isinstance(item, (list, tuple)) else item
                for item in value
            )
        return value

    @field_validator("backends")
    @classmethod
    def _sorted_unique(cls, value: tuple[Backend, ...]) -> tuple[Backend, ...]:
        names = [backend.unit for backend in value]
        if len(set(names)) != len(names):
            raise ValueError("a unit is listed twice")
        return tuple(sorted(value, key=lambda backend: backend.sort_key))

    @field_validator("bind_address")
    @classmethod
    def _bind_address(cls, value: str | None) -> str | None:
        return None if value is None else valid_host(value, normalize=True)

    @field_validator("metrics_address")
    @classmethod
    def _loopback_only(cls, value: str | None) -> str | None:
        """The exporter answers anyone who reaches it: never off the machine."""
        if value is None:
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("the metrics frontend binds a loopback IP address") from None
        if not address.is_loopback:
            raise ValueError("the metrics frontend binds a loopback address only")
        return str(address)

    @field_validator("bind_addresses")
    @classmethod
    def _bind_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        normalized = [valid_host(address, normalize=True) for address in value]
        return tuple(dict.fromkeys(normalized))  # each address once, in the given order

    @field_validator("tls_pem", "stats_socket", "chroot")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _safe_path(value)

    @field_validator("user", "group")
    @classmethod
    def _posix_name(cls, value: str | None) -> str | None:
        if value is not None and not _POSIX_NAME.match(value):
            raise ValueError("not a user or group name")
        return value

    @model_validator(mode="before")
    @classmethod
    def _unset_timeouts_are_defaults(cls, data: Any) -> Any:
        """The haproxy-*-timeout options are unset (None) unless the user sets them."""
        if isinstance(data, dict):
            return {
                key: value for key, value in data.items()
                if not (key.endswith("_timeout") and value is None)
            }
        return data

    @classmethod
    def from_options(
        cls,
        backends: Sequence[tuple[str, str]] | Sequence[Backend],
        *,
        client_timeout: int | None = None,
        server_timeout: int | None = None,
        queue_timeout: int | None = None,
        connect_timeout: int | None = None,
        ipv6: bool = False,
        tls_pem: str | None = None,
        **extra: Any,
    ) -> HaproxyConfig:
        """Build from peer addresses and the charm's haproxy-*-timeout options.

        Args:
            backends: ``(unit name, address)`` pairs (every unit, this one included).
            client_timeout: option ``haproxy-client-timeout`` (None: 90000).
            server_timeout: option ``haproxy-server-timeout`` (None: 90000).
            queue_timeout: option ``haproxy-queue-timeout`` (None: 9000).
            connect_timeout: option ``haproxy-connect-timeout`` (None: 9000).
            ipv6: option ``prefer-ipv6``.
            tls_pem: combined PEM for TLS termination, when the charm has a certificate.
            **extra: any other HaproxyConfig field (tests move ports and paths).

        Returns:
            The validated config.
        """
        return cls.model_validate({
            "backends": backends,
            "client_timeout": client_timeout,
            "server_timeout": server_timeout,
            "queue_timeout": queue_timeout,
            "connect_timeout": connect_timeout,
            "ipv6": ipv6,
            "tls_pem": tls_pem,
            **extra,
        })

    @property
    def binds(self) -> tuple[str, ...]:
        """The frontend's ``bind`` arguments, one per line."""
        addresses = self.bind_addresses or (
            (self.bind_address,) if self.bind_address is not None else ()
        )
        if addresses:
            return tuple(f"{url_host(address)}:{self.frontend_port}" for address in addresses)
        if self.ipv6:
            return (f"[::]:{self.frontend_port} v4v6",)
        return (f"0.0.0.0:{self.frontend_port}",)

    def render(self) -> bytes:
        """haproxy.cfg's bytes for this config."""
        return render(self)

    @property
    def metrics_bind(self) -> str | None:
        """The exporter frontend's ``bind`` argument; None without one."""
        if self.metrics_address is None:
            return None
        return f"{url_host(self.metrics_address)}:{self.metrics_port}"

    @property
    def bind(self) -> str:
        """The first ``bind`` argument (the only one unless several addresses are bound)."""
        return self.binds[0]


def render(cfg: HaproxyConfig) -> bytes:
    """Render haproxy.cfg for a config.

    Args:
        cfg: the config.

    Returns:
        The file's bytes.
    """
    return render_template("haproxy.cfg.j2", cfg=cfg, backend_name=BACKEND_NAME).encode()

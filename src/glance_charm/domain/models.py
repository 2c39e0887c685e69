"""Typed values read from relations: the workload's vocabulary, free of `ops`."""

from __future__ import annotations

import ipaddress
import re
import typing
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_MYSQL_PORT = 3306

# One DNS label (RFC 1123): letters, digits, inner hyphens, 63 characters at most. Labels are
# matched one at a time: a single pattern for the whole name backtracks exponentially.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_hostname(value: str) -> bool:
    """Whether value is an RFC 1123 host name (253 characters at most, a final dot allowed)."""
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def valid_host(value: str, *, normalize: bool = False) -> str:
    """Return an IP address (v4 or v6) or RFC 1123 host name; raise ValueError otherwise.

    The one host check for everything the charm puts into a URL or a config file.

    Args:
        value: the host as a relation or an option gave it.
        normalize: for addresses peers publish (haproxy backends): drop surrounding blanks
            and IPv6 brackets and return IP addresses in canonical form. Without it the
            value must be exactly an address or a name and comes back unchanged, so what
            is written names the host the provider sent.

    Raises:
        ValueError: not an IP address nor a host name (brackets, ports, `:`, blanks,
            non-ASCII, an IPv6 zone, an all-numeric name such as `1.2.3`).
    """
    text = value
    if normalize:
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValueError("IPv6 zone not supported")
        return str(address) if normalize else text
    if is_hostname(text) and not text.replace(".", "").isdigit():
        return text
    raise ValueError("not an IP address or host name")


def url_host(host: str) -> str:
    """Return a host for a URL: IPv6 literals in brackets, everything else as is."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def _no_controls(value: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("contains control characters")
    return value


def wrap_secrets(model: type[BaseModel], data: Any) -> Any:
    """Turn the raw text of a model's SecretStr fields into SecretStr before validation.

    hide_input_in_errors keeps inputs out of str(ValidationError), but errors() still
    hands them back: wrapped first, a secret shows there as SecretStr('**********').
    """
    if not isinstance(data, Mapping):
        return data
    secret = {
        key for name, info in model.model_fields.items()
        if info.annotation is SecretStr or SecretStr in typing.get_args(info.annotation)
        for key in (name, info.alias) if key
    }
    return {
        key: SecretStr(value) if key in secret and isinstance(value, str) else value
        for key, value in data.items()
    }


def _nonempty_secret(value: SecretStr) -> SecretStr:
    """A password or key: not empty, no control characters."""
    if not value.get_secret_value():
        raise ValueError("empty")
    _no_controls(value.get_secret_value())
    return value


class Frozen(BaseModel):
    """Base for immutable models; no ValidationError of theirs quotes an input (secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _wrap_secrets(cls, data: Any) -> Any:
        return wrap_secrets(cls, data)


class DatabaseInfo(Frozen):
    """Where and as whom glance connects to MySQL."""

    endpoint: str = Field(description="relation the data came from")
    host: str = Field(min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str = Field(min_length=1, max_length=255)
    password: SecretStr
    name: str = Field(min_length=1, max_length=64)
    ssl_ca: str | None = None
    granted: bool = Field(default=True, description=(
        "the provider lists this unit in allowed_units (shared-db), or keeps no such list"
        " for the endpoint (database, db); the leader migrates only when granted"))

    _check_text = field_validator("host", "user", "name")(_no_controls)

    _password_ok = field_validator("password")(_nonempty_secret)

    @field_validator("host")
    @classmethod
    def _host_ok(cls, value: str) -> str:
        return valid_host(value)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        # SQLAlchemy does not unquote the database part of the URL: a name that needs
        # %-quoting would reach MySQL changed, so it must be usable as is.
        if quote(value, safe="") != value:
            raise ValueError("not usable in a URL as is")
        return value

    def connection_url(self, ssl_ca_path: str | None = None) -> str:
        """Return the SQLAlchemy URL for `[database] connection` (password included)."""
        user = quote(self.user, safe="")
        password = quote(self.password.get_secret_value(), safe="")
        netloc = url_host(self.host)
        if self.port is not None and self.port != DEFAULT_MYSQL_PORT:
            netloc = f"{netloc}:{self.port}"
        url = f"mysql+pymysql://{user}:{password}@{netloc}/{quote(self.name, safe='')}"
        if self.ssl_ca and ssl_ca_path:
            url += f"?ssl_ca={ssl_ca_path}"
        return url


class IdentityCredentials(Frozen):
    """Glance's service credentials and the Keystone URLs keystone handed over."""

    auth_url: str
    www_authenticate_uri: str
    username: str = Field(min_length=1)
    password: SecretStr
    project_name: str = Field(min_length=1)
    project_domain_name: str = Field(min_length=1)
    user_domain_name: str = Field(min_length=1)
    project_domain_id: str | None = None
    user_domain_id: str | None = None
    region: str | None = None

    _check_text = field_validator(
        "auth_url", "www_authenticate_uri", "username", "project_name",
        "project_domain_name", "user_domain_name",
    )(_no_controls)

    _password_ok = field_validator("password")(_nonempty_secret)


class Endpoints(Frozen):
    """The three Keystone endpoint URLs of this service."""

    public: str
    internal: str
    admin: str


class MessagingInfo(Frozen):
    """RabbitMQ hosts and credentials for notifications (oslo.messaging)."""

    hosts: tuple[str, ...] = Field(min_length=1)
    port: int = Field(5672, ge=1, le=65535)
    user: str = Field(min_length=1)
    password: SecretStr
    vhost: str = Field(min_length=1)
    ssl: bool = False
    ssl_ca: str | None = None

    @field_validator("hosts")
    @classmethod
    def _hosts_ok(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            valid_host(host)
        return value

    _password_ok = field_validator("password")(_nonempty_secret)

    def transport_url(self) -> str:
        """`rabbit://user:pw@h1:port,user:pw@h2:port/vhost`, every host listed."""
        user = quote(self.user, safe="")
        password = quote(self.password.get_secret_value(), safe="")
        hosts = ",".join(
            f"{user}:{password}@{url_host(host)}:{self.port}" for host in self.hosts
        )
        return f"rabbit://{hosts}/{quote(self.vhost, safe='')}"

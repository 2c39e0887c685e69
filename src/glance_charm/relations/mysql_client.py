"""`database` (mysql_client v0 wire format): request a database, read endpoints + credentials."""

from __future__ import annotations

import json

import ops
from pydantic import ValidationError

from glance_charm.domain.models import DatabaseInfo
from glance_charm.relations.common import clean, log_bad_key, update_bag

ENDPOINT = "database"
REQUESTED_SECRETS = json.dumps(["username", "password", "tls", "tls-ca", "uris"])


def publish_request(relation: ops.Relation, app: ops.Application, database: str) -> bool:
    """Leader only: ask for `database`, offering Juju secrets for the credentials."""
    return update_bag(
        relation.data[app], {"database": database, "requested-secrets": REQUESTED_SECRETS}
    )


def _credentials(model: ops.Model, bag: ops.RelationDataContent) -> tuple[str, str] | None:
    """Username and password, from the plain keys or from the `secret-user` secret."""
    user, password = clean(bag.get("username")), clean(bag.get("password"))
    if user and password:
        return user, password
    secret_id = clean(bag.get("secret-user"))
    if secret_id is None:
        return None
    try:
        content = model.get_secret(id=secret_id).get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError):
        log_bad_key(ENDPOINT, "secret-user", "secret not readable")
        return None
    user, password = clean(content.get("username")), clean(content.get("password"))
    return (user, password) if user and password else None


def _primary(raw: str) -> tuple[str, int | None] | None:
    """Split the first `host[:port]` of `endpoints`; an IPv6 address must be bracketed.

    `db1`, `db1:3306`, `10.0.0.5:3306`, `[fd00::1]:3306` and `[fd00::1]` parse; a bare
    `:`, an empty host or port, a non-numeric port and an unbracketed IPv6 address (its
    last group would read as the port) give None. The host itself is checked by
    DatabaseInfo.
    """
    first = raw.split(",", maxsplit=1)[0].strip()
    if first.startswith("["):
        host, bracket, rest = first[1:].partition("]")
        sep, port = rest[:1], rest[1:]
        if not bracket or rest[:1] not in ("", ":") or ":" not in host:
            log_bad_key(ENDPOINT, "endpoints", "not host:port")
            return None
    else:
        host, sep, port = first.partition(":")
    if not host or (sep and not (port.isascii() and port.isdigit())):
        log_bad_key(ENDPOINT, "endpoints", "not host:port")
        return None
    return host, int(port) if sep else None


def read(model: ops.Model, relation: ops.Relation, database: str) -> DatabaseInfo | None:
    """Return connection data once the provider app bag holds endpoints and credentials."""
    if relation.app is None:
        return None
    bag = relation.data[relation.app]
    endpoints = clean(bag.get("endpoints"))
    if endpoints is None:
        return None
    primary = _primary(endpoints)
    credentials = _credentials(model, bag)
    if primary is None or credentials is None:
        return None
    try:
        return DatabaseInfo(
            endpoint=ENDPOINT,
            host=primary[0],
            port=primary[1],
            user=credentials[0],
            password=credentials[1],  # type: ignore[arg-type]
            name=clean(bag.get("database")) or database,
        )
    except ValidationError as err:
        for problem in err.errors():
            log_bad_key(ENDPOINT, str(problem["loc"][0]), problem["msg"])
        return None

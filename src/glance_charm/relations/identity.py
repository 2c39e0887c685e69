"""`identity-service` (keystone): publish endpoints, read glance's service credentials."""

from __future__ import annotations

import json
from collections.abc import Mapping

import ops
from pydantic import ValidationError

from glance_charm.domain.models import Endpoints, IdentityCredentials, url_host, valid_host
from glance_charm.relations.common import clean, log_bad_key, update_bag

ENDPOINT = "identity-service"
SERVICE = "glance"
SERVICE_TYPE = "image"

# Classic keystone (unit bag, underscores): keys that must all be present.
CLASSIC_REQUIRED = (
    "auth_host", "auth_port", "auth_protocol", "service_host", "service_port",
    "service_protocol", "service_tenant", "service_username", "service_password",
)
CLASSIC_V3_REQUIRED = ("service_domain", "service_tenant_id", "service_domain_id")
# keystone-k8s (app bag, hyphens; password in the `service-credentials` secret).
K8S_REQUIRED = (
    "service-host", "service-port", "service-protocol", "service-project-name",
    "service-domain-name", "service-credentials",
)


def publish_endpoints(
    relation: ops.Relation, unit: ops.Unit, app: ops.Application | None,
    region: str, endpoints: Endpoints | None,
) -> bool:
    """Send the endpoint request; None sends nothing at all (e.g. before the VIP is up)."""
    urls = endpoints or Endpoints(public="", internal="", admin="")
    announce = endpoints is not None
    changed = update_bag(relation.data[unit], {
        "service": SERVICE if announce else None,
        "region": region if announce else None,
        "public_url": urls.public or None,
        "internal_url": urls.internal or None,
        "admin_url": urls.admin or None,
    })
    if app is not None:  # leader: the keystone-k8s form, in the app bag
        k8s_endpoints = None
        if endpoints is not None:
            k8s_endpoints = json.dumps([{
                "service_name": SERVICE, "type": SERVICE_TYPE,
                "description": "OpenStack Image Service",
                "internal_url": urls.internal, "public_url": urls.public,
                "admin_url": urls.admin,
            }], sort_keys=True)
        changed |= update_bag(relation.data[app], {
            "service-endpoints": k8s_endpoints, "region": region if announce else None,
        })
    return changed


def _url(protocol: str, host: str, port: str) -> str:
    """Keystone's `protocol://host:port/v3`; ValueError for anything that would not parse back.

    The port must be a plain decimal 1-65535 (no sign, no leading zero), the host an IP
    address or a host name.
    """
    if protocol not in ("http", "https"):
        raise ValueError("bad protocol")
    if not (port.isascii() and port.isdigit()) or str(int(port)) != port or not (
        1 <= int(port) <= 65535
    ):
        raise ValueError("bad port")
    return f"{protocol}://{url_host(valid_host(host))}:{port}/v3"


def _from_classic(bag: Mapping[str, str]) -> IdentityCredentials | None:
    if not all(clean(bag.get(key)) for key in CLASSIC_REQUIRED):
        return None
    api_version = clean(bag.get("api_version")) or "2.0"
    if api_version.lstrip("v") == "3" and not all(
        clean(bag.get(key)) for key in CLASSIC_V3_REQUIRED
    ):
        return None
    get = {key: clean(bag.get(key)) or "" for key in (*CLASSIC_REQUIRED, *CLASSIC_V3_REQUIRED)}
    domain = get["service_domain"] or "default"
    return IdentityCredentials(
        auth_url=_url(get["auth_protocol"], get["auth_host"], get["auth_port"]),
        www_authenticate_uri=_url(
            get["service_protocol"], get["service_host"], get["service_port"]
        ),
        username=get["service_username"],
        password=get["service_password"],  # type: ignore[arg-type]
        project_name=get["service_tenant"],
        project_domain_name=domain,
        user_domain_name=domain,
        project_domain_id=get["service_domain_id"] or None,
        user_domain_id=get["service_domain_id"] or None,
    )


def _from_k8s(model: ops.Model, bag: Mapping[str, str]) -> IdentityCredentials | None:
    if not all(clean(bag.get(key)) for key in K8S_REQUIRED):
        return None
    try:
        secret = model.get_secret(id=clean(bag.get("service-credentials")))
        content = secret.get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError):
        log_bad_key(ENDPOINT, "service-credentials", "secret not readable")
        return None
    username, password = clean(content.get("username")), clean(content.get("password"))
    if not username or not password:
        return None
    get = {key: clean(bag.get(key)) or "" for key in bag}
    auth_host = get.get("admin-host") or get.get("internal-host") or get["service-host"]
    auth_port = get.get("admin-port") or get.get("internal-port") or get["service-port"]
    auth_protocol = (
        get.get("admin-protocol") or get.get("internal-protocol") or get["service-protocol"]
    )
    domain = get["service-domain-name"]
    return IdentityCredentials(
        auth_url=_url(auth_protocol, auth_host, auth_port),
        www_authenticate_uri=_url(
            get["service-protocol"], get["service-host"], get["service-port"]
        ),
        username=username,
        password=password,  # type: ignore[arg-type]
        project_name=get["service-project-name"],
        project_domain_name=domain,
        user_domain_name=domain,
        project_domain_id=get.get("service-domain-id") or None,
        user_domain_id=get.get("service-domain-id") or None,
    )


def read(model: ops.Model, relation: ops.Relation) -> IdentityCredentials | None:
    """Return credentials from the first complete bag (classic unit bags, then k8s app bag)."""
    try:
        for unit in sorted(relation.units, key=lambda u: u.name):
            found = _from_classic(relation.data[unit])
            if found is not None:
                return found
        if relation.app is not None:
            return _from_k8s(model, relation.data[relation.app])
    except (ValidationError, ValueError) as err:
        log_bad_key(ENDPOINT, _first_bad_field(err), "invalid value")
    return None


def _first_bad_field(err: Exception) -> str:
    if isinstance(err, ValidationError) and err.errors():
        return str(err.errors()[0]["loc"][0])
    return "host/port/protocol"

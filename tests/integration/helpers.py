"""Deployment recipes and an image round trip through the deployed Keystone's catalog.

The image client is the functional tier's (:class:`tests.functional.realstack.ImageClient`,
plain urllib/http.client, streaming); :class:`RemoteKeystone` gives it the deployed keystone
charm's URL and admin credentials in place of a local keystone process.

Charm channels and unit counts can be changed with environment variables (defaults: the
OpenStack Caracal charms on ubuntu@24.04).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jubilant

from tests.functional import realstack

APP = "glance"
BASE = "ubuntu@24.04"
OPENSTACK_CHANNEL = os.environ.get("GLANCE_IT_OPENSTACK_CHANNEL", "2024.1/stable")
MYSQL_CHANNEL = os.environ.get("GLANCE_IT_MYSQL_CHANNEL", "8.0/stable")
CEPH_CHANNEL = os.environ.get("GLANCE_IT_CEPH_CHANNEL", "reef/stable")
RABBITMQ_CHANNEL = os.environ.get("GLANCE_IT_RABBITMQ_CHANNEL", "3.9/stable")
HACLUSTER_CHANNEL = os.environ.get("GLANCE_IT_HACLUSTER_CHANNEL", "2.4/stable")
NOVA = "nova-cloud-controller"
HACLUSTER = "haglance"
GRAFANA_AGENT = "grafana-agent"
GRAFANA_AGENT_CHANNEL = os.environ.get("GLANCE_IT_GRAFANA_AGENT_CHANNEL", "1/stable")
#: A free address on the model's network for the HA scenario's VIP (no default: it must not
#: collide with anything on the user's network).
VIP = os.environ.get("GLANCE_IT_VIP", "")
MYSQL_UNITS = int(os.environ.get("GLANCE_IT_MYSQL_UNITS", "3"))
SWIFT_DEVICE = os.environ.get("GLANCE_IT_SWIFT_DEVICE", "/srv/swift.img|2G")
OSD_STORAGE = os.environ.get("GLANCE_IT_OSD_STORAGE", "loop,4G")
IMAGE_MIB = int(os.environ.get("GLANCE_IT_IMAGE_MIB", "8"))
DEPLOY_TIMEOUT = float(os.environ.get("GLANCE_IT_TIMEOUT", str(60 * 60)))


@dataclass
class RemoteKeystone:
    """The deployed keystone as ImageClient needs it (url, admin credentials, authenticate).

    Attributes:
        host: keystone unit's public address.
        admin_password: the keystone charm's `admin-password`.
        port: keystone's public port.
    """

    host: str
    admin_password: str = field(repr=False)
    port: int = 5000
    admin_username: str = "admin"

    @property
    def url(self) -> str:
        """Keystone's v3 URL."""
        return f"http://{self.host}:{self.port}/v3"

    # The functional tier's password authentication only needs `self.url`.
    authenticate = realstack.Keystone.authenticate


def keystone_admin_password() -> str:
    """Password given to the keystone charm (`admin-password`), registered for redaction."""
    password = os.environ.get("GLANCE_IT_ADMIN_PASSWORD") or secrets.token_urlsafe(24)
    realstack.remember_secret(password)
    return password


def wait_active(juju: jubilant.Juju, *apps: str) -> jubilant.Status:
    """Wait until every given app (all if none) is active, failing fast on error status.

    Args:
        juju: the model.
        *apps: applications to wait for.

    Returns:
        The final status.
    """
    return juju.wait(
        lambda status: jubilant.all_active(status, *apps) and jubilant.all_agents_idle(status),
        error=jubilant.any_error,
        timeout=DEPLOY_TIMEOUT,
        delay=5,
    )


def deploy_core(juju: jubilant.Juju, charm: Path, admin_password: str, *, units: int = 1,
                config: dict[str, Any] | None = None, wait: bool = True) -> None:
    """Deploy glance with keystone, MySQL and nova-cloud-controller, as the seed's commands do.

    MySQL is an InnoDB cluster behind one mysql-router per consumer; nova-cloud-controller
    comes with what it needs to be active (its router, rabbitmq-server, placement) and is
    related to glance's image-service.

    Args:
        juju: the model.
        charm: the packed glance charm.
        admin_password: keystone's admin password.
        units: glance units.
        config: glance's config at deploy.
        wait: wait until every application is active.
    """
    juju.deploy("mysql-innodb-cluster", channel=MYSQL_CHANNEL, num_units=MYSQL_UNITS, base=BASE)
    juju.deploy(
        "keystone",
        channel=OPENSTACK_CHANNEL,
        base=BASE,
        config={"admin-password": admin_password, "openstack-origin": "distro"},
    )
    juju.deploy("rabbitmq-server", channel=RABBITMQ_CHANNEL, base=BASE)
    for app in ("placement", NOVA):
        juju.deploy(app, channel=OPENSTACK_CHANNEL, base=BASE,
                    config={"openstack-origin": "distro"})
    for router, consumer in (("keystone-mysql-router", "keystone"),
                             ("glance-mysql-router", APP),
                             ("placement-mysql-router", "placement"),
                             ("nova-mysql-router", NOVA)):
        juju.deploy("mysql-router", router, channel=MYSQL_CHANNEL, base=BASE)
        juju.integrate(f"{router}:db-router", "mysql-innodb-cluster:db-router")
        if consumer != APP:
            juju.integrate(f"{router}:shared-db", f"{consumer}:shared-db")
    juju.deploy(charm, APP, base=BASE, num_units=units, config=config)
    juju.integrate("glance-mysql-router:shared-db", f"{APP}:shared-db")
    for consumer in (APP, "placement", NOVA):
        juju.integrate(f"{consumer}:identity-service", "keystone:identity-service")
    juju.integrate(f"{NOVA}:amqp", "rabbitmq-server:amqp")
    juju.integrate(f"{NOVA}:placement", "placement:placement")
    juju.integrate(f"{NOVA}:image-service", f"{APP}:image-service")
    if wait:
        wait_active(juju)


def deploy_hacluster(juju: jubilant.Juju) -> None:
    """Add hacluster (subordinate `haglance`, 3 units via glance's 3) on glance's `ha` endpoint.

    Args:
        juju: the model, glance deployed with `vip` set.
    """
    juju.deploy("hacluster", HACLUSTER, channel=HACLUSTER_CHANNEL, base=BASE,
                config={"cluster_count": 3})
    juju.integrate(f"{APP}:ha", f"{HACLUSTER}:ha")


def deploy_grafana_agent(juju: jubilant.Juju) -> None:
    """Add the grafana-agent subordinate on glance's `cos-agent` endpoint.

    Without a COS to send to it stays blocked (its mandatory relation pairs); what it got
    from glance is read on its side of the relation.
    """
    juju.deploy("grafana-agent", GRAFANA_AGENT, channel=GRAFANA_AGENT_CHANNEL, base=BASE)
    juju.integrate(f"{APP}:cos-agent", f"{GRAFANA_AGENT}:cos-agent")


def _glance_sent(juju: jubilant.Juju, units: Iterable[str], endpoint: str,
                 key: str) -> dict[str, str]:
    """`key` from each glance unit's bag, as the given consumer units received it.

    Read from the consumer's side of `endpoint` (`juju show-unit`), i.e. what the
    counterpart really received, keyed by the glance unit that sent it.
    """
    sent: dict[str, str] = {}
    for unit in units:
        for relation in juju.show_unit(unit).relation_info:
            if relation.endpoint != endpoint:
                continue
            for remote, bag in relation.related_units.items():
                if remote.startswith(f"{APP}/"):
                    sent[remote] = bag.data.get(key, "")
    return sent


def cos_agent_data(juju: jubilant.Juju) -> dict[str, str]:
    """The `config` JSON each glance unit sent, as its grafana-agent subordinate received it."""
    agents = [name for unit in juju.status().apps[APP].units.values()
              for name in unit.subordinates if name.startswith(f"{GRAFANA_AGENT}/")]
    return _glance_sent(juju, agents, "cos-agent", "config")


def glance_api_servers(juju: jubilant.Juju) -> dict[str, str]:
    """What each glance unit sent nova-cloud-controller: `glance-api-server` per glance unit."""
    return _glance_sent(juju, juju.status().apps[NOVA].units, "image-service",
                        "glance-api-server")


def vip_holder(juju: jubilant.Juju, vip: str) -> str | None:
    """The glance unit whose interfaces hold `vip` (hacluster put it there), if any."""
    for unit in juju.status().apps[APP].units:
        task = juju.exec("ip", "-o", "addr", "show", unit=unit)
        if f" {vip}/" in task.stdout:
            return unit
    return None


def deploy_swift(juju: jubilant.Juju) -> None:
    """Add a one-node Swift (swift-proxy + swift-storage on a loop file) related to glance.

    Args:
        juju: the model with the core deployed.
    """
    juju.deploy(
        "swift-proxy",
        channel=OPENSTACK_CHANNEL,
        base=BASE,
        config={"zone-assignment": "manual", "replicas": 1, "openstack-origin": "distro"},
    )
    juju.deploy(
        "swift-storage",
        channel=OPENSTACK_CHANNEL,
        base=BASE,
        config={"zone": 1, "block-device": SWIFT_DEVICE, "openstack-origin": "distro"},
    )
    juju.integrate("swift-proxy:swift-storage", "swift-storage:swift-storage")
    juju.integrate("swift-proxy:identity-service", "keystone:identity-service")
    juju.integrate(f"{APP}:object-store", "swift-proxy:object-store")
    wait_active(juju)


def deploy_ceph(juju: jubilant.Juju) -> None:
    """Add a one-OSD Ceph (ceph-mon + ceph-osd on loop storage) related to glance.

    Args:
        juju: the model with the core deployed.
    """
    juju.deploy(
        "ceph-mon",
        channel=CEPH_CHANNEL,
        base=BASE,
        config={"monitor-count": 1, "expected-osd-count": 1},
    )
    juju.deploy("ceph-osd", channel=CEPH_CHANNEL, base=BASE, storage={"osd-devices": OSD_STORAGE})
    juju.integrate("ceph-osd:mon", "ceph-mon:osd")
    juju.config(APP, {"ceph-osd-replication-count": 1})
    juju.integrate(f"{APP}:ceph", "ceph-mon:client")
    wait_active(juju)


def keystone_address(juju: jubilant.Juju) -> str:
    """Public address of the keystone unit."""
    units = juju.status().apps["keystone"].units
    return next(iter(units.values())).public_address


def image_client(juju: jubilant.Juju, admin_password: str) -> realstack.ImageClient:
    """An ImageClient that finds glance in the deployed keystone's catalog.

    Args:
        juju: the model.
        admin_password: keystone's admin password.

    Returns:
        The client (cloud admin, project `admin` in `admin_domain`, public interface).
    """
    keystone: Any = RemoteKeystone(keystone_address(juju), admin_password)
    return realstack.ImageClient(keystone, timeout=300)


def round_trip(client: realstack.ImageClient, store: str) -> dict[str, Any]:
    """Upload an image to a store, read it back, compare, delete it.

    Args:
        client: the image client.
        store: glance store id (`local`, `swift` or `ceph`).

    Returns:
        The image as glance showed it while active.
    """
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "image.raw"
        digest = realstack.make_random_file(source, IMAGE_MIB, seed=len(store))
        image = client.create_image(f"it-{store}-{secrets.token_hex(3)}")
        try:
            client.upload(image["id"], source, store=store)
            active = client.wait_for_status(image["id"], timeout=300)
            back = client.download(image["id"], Path(tmp) / "back.raw")
            assert back.sha256 == digest, f"{store}: downloaded bytes differ"
            assert active.get("stores") == store, active.get("stores")
            assert active.get("size") == IMAGE_MIB * realstack.MIB
            return active
        finally:
            client.delete_image(image["id"], missing_ok=True)

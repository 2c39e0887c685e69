"""Drive the real charm code against real services: the functional tier and `make local`.

The charm runs through `ops.testing.Harness` with its production workload (GlanceWorkload on
`/`, the real ServiceManager, apt via charmlibs-apt, `glance-manage db_sync`): nothing of the
workload is replaced. This module plays Juju and the counterpart charms: it hands the charm the
relation data mariadb (as mysql-router) and keystone (as the keystone charm) really produce,
and registers the endpoints the charm publishes in keystone, as the keystone charm would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ops
import ops.testing

from charm import GlanceCharm
from tests.functional import realstack

if TYPE_CHECKING:
    from tests.functional.cephstack import CephMon
    from tests.functional.swiftstack import SwiftStack

logger = logging.getLogger(__name__)

UNIT_ADDRESS = "127.0.0.1"
GLANCE_CONF = Path("/etc/glance/glance-api.conf")
# The glance-api the init script starts (`--config-file=/etc/glance/glance-api.conf`), and
# nothing else: other tests run their own glance-api processes with other config files.
SERVICE_GLANCE = r"/usr/bin/glance-api --config-file=/etc/glance/glance-api\.conf"


def own_pids(pattern: str) -> set[int]:
    """PIDs whose command line matches `pattern` in this process's pid namespace.

    A functional sandbox's processes are visible from the machine (and a nested sandbox's from
    the tier), so `make local` and the tier only ever touch processes of their own namespace.
    """
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True,
                           check=False).stdout.split()
    mine = os.readlink("/proc/self/ns/pid")
    pids = set()
    for pid in found:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/pid") == mine:
                pids.add(int(pid))
    return pids


def stop_glance_service() -> None:
    """Stop haproxy, glance-api and memcached (the charm starts them through `service`)."""
    subprocess.run(["service", "memcached", "stop"], capture_output=True, check=False)
    subprocess.run(["service", "haproxy", "stop"], capture_output=True, check=False)
    subprocess.run(["service", "glance-api", "stop"], capture_output=True, check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not own_pids(SERVICE_GLANCE):
            return
        time.sleep(0.5)
    for pid in own_pids(SERVICE_GLANCE):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class GlanceStack:
    """mariadb + keystone played as charms, and the glance charm under test."""

    mariadb: realstack.Mariadb = field(default_factory=realstack.Mariadb)
    keystone: realstack.Keystone | None = None
    harness: ops.testing.Harness[GlanceCharm] | None = None
    relation_ids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    # ---- bring-up ------------------------------------------------------------------------
    def start(self) -> None:
        """Install packages once, start mariadb and keystone, start the charm (install hook)."""
        self.timings["apt_install_s"] = realstack.install_packages()
        stop_glance_service()  # a previous run's glance-api must not answer for this one
        busy = subprocess.run(["ss", "-Hltn", "sport = :9292"], capture_output=True, text=True,
                              check=False).stdout.strip()
        if busy:
            raise realstack.RealStackError(f"port 9292 is taken by another process: {busy}")
        self.timings["mariadb_start_s"] = self.mariadb.start()
        self.keystone = realstack.Keystone(self.mariadb)
        self.timings["keystone_start_s"] = self.keystone.start()
        realstack.register_cleanup(stop_glance_service)
        self.harness = ops.testing.Harness(GlanceCharm)
        self.harness.set_model_name("glance-functional")  # Juju always names the model
        self.harness.add_network(UNIT_ADDRESS)
        self.harness.set_leader(True)
        self.relation_ids["cluster"] = self.harness.add_relation("cluster", "glance")
        started = time.monotonic()
        self.harness.begin_with_initial_hooks()
        self.timings["charm_install_s"] = time.monotonic() - started

    @property
    def charm(self) -> GlanceCharm:
        """The charm instance under test."""
        assert self.harness is not None
        return self.harness.charm

    def status(self) -> ops.StatusBase:
        """Unit status as collect-status leaves it after the last hook."""
        assert self.harness is not None
        self.harness.evaluate_status()
        return self.harness.model.unit.status

    # ---- playing the counterpart charms ---------------------------------------------------
    def relate_database(self) -> int:
        """Relate shared-db; answer the charm's request as mysql-router does."""
        assert self.harness is not None
        rel = self.harness.add_relation("shared-db", "glance-mysql-router")
        self.harness.add_relation_unit(rel, "glance-mysql-router/0")
        request = self.harness.get_relation_data(rel, self.charm.unit.name)
        reply = self.mariadb.handle_shared_db_request(request, self.charm.unit.name)
        self.harness.update_relation_data(rel, "glance-mysql-router/0", reply)
        self.relation_ids["shared-db"] = rel
        return rel

    def relate_identity(self) -> int:
        """Relate identity-service; answer as the keystone charm does and register endpoints."""
        assert self.harness is not None and self.keystone is not None
        rel = self.harness.add_relation("identity-service", "keystone")
        self.harness.add_relation_unit(rel, "keystone/0")
        self.keystone.create_service_user("glance")
        self.harness.update_relation_data(
            rel, "keystone/0", self.keystone.identity_relation_data("glance")
        )
        self.relation_ids["identity-service"] = rel
        self.register_published_endpoints()
        return rel

    def register_published_endpoints(self) -> dict[str, str]:
        """Register in keystone exactly the URLs the charm published on identity-service."""
        assert self.harness is not None and self.keystone is not None
        bag = self.harness.get_relation_data(
            self.relation_ids["identity-service"], self.charm.unit.name
        )
        self.keystone.register_endpoints(
            bag["service"], "image", bag["region"], bag["public_url"], bag["admin_url"],
            bag["internal_url"],
        )
        return dict(bag)

    def relate_object_store(self, swift: SwiftStack) -> int:
        """Relate object-store; a swift-proxy unit joins and sends its `swift-url`."""
        assert self.harness is not None
        rel = swift.relate(self.harness)
        self.relation_ids["object-store"] = rel
        return rel

    def relate_ceph(self, mon: CephMon, *, answer: bool = True) -> int:
        """Relate ceph; ceph-mon hands over key + address and (if `answer`) runs the request."""
        assert self.harness is not None
        rel = mon.relate(self.harness, answer=answer)
        self.relation_ids["ceph"] = rel
        return rel

    def remove(self, endpoint: str) -> None:
        """Remove a relation the way `juju remove-relation` does (departed, then broken)."""
        assert self.harness is not None
        self.harness.remove_relation(self.relation_ids.pop(endpoint))

    def image_client(self) -> realstack.ImageClient:
        """A glance client that finds its endpoint through the keystone catalog."""
        assert self.keystone is not None
        return realstack.ImageClient(self.keystone)

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Wait until glance-api answers /healthcheck; return seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.charm.workload.healthy(9292):
                return time.monotonic() - started
            time.sleep(0.25)
        raise realstack.RealStackError("glance-api did not answer /healthcheck")

    def glance_pids(self) -> set[int]:
        """PIDs of the running glance-api processes (parent and workers)."""
        return own_pids(SERVICE_GLANCE)

    def started_glance_pids(self, timeout: float = 30.0) -> set[int]:
        """The glance-api PIDs once glance-api runs: after a start, they may take a moment.

        Debian's /etc/init.d/glance-api starts it with `start-stop-daemon --background
        --make-pidfile`, which returns once its child wrote the pidfile, before that child
        has exec'd glance-api: until then its command line is start-stop-daemon's (or, within
        the exec, empty), so no glance-api is seen yet.
        """
        realstack.wait_for("glance-api processes", lambda: bool(self.glance_pids()), timeout)
        return self.glance_pids()

    def stop(self) -> None:
        """Stop glance-api, keystone and mariadb; leave nothing running."""
        if self.harness is not None:
            self.harness.cleanup()
        stop_glance_service()
        realstack.teardown_all()


def round_trip(client: realstack.ImageClient, workdir: Path, size_mib: int = 64,
               store: str | None = None) -> dict[str, Any]:
    """Create, upload, download (sha256 equal), list and delete an image; return numbers."""
    source = workdir / f"upload-{size_mib}m.bin"
    expected = realstack.make_random_file(source, size_mib, seed=size_mib)
    copy_started = time.monotonic()
    subprocess.run(["cp", str(source), str(workdir / "copy.bin")], check=True)
    subprocess.run(["sync"], check=True)
    copy_s = time.monotonic() - copy_started
    image = client.create_image(f"functional-{size_mib}m")
    up = client.upload(image["id"], source, store=store)
    client.wait_for_status(image["id"], "active")
    target = workdir / "download.bin"
    down = client.download(image["id"], target)
    listed = [img["id"] for img in client.list_images()]
    stored = client.get_image(image["id"])
    client.delete_image(image["id"])
    gone = image["id"] not in [img["id"] for img in client.list_images()]
    for path in (source, target, workdir / "copy.bin"):
        path.unlink(missing_ok=True)
    mib = float(size_mib)
    return {
        "endpoint": client.endpoint,
        "image_id": image["id"],
        "sha256_equal": down.sha256 == expected,
        "listed": image["id"] in listed,
        "deleted": gone,
        "stores": stored.get("stores"),
        "upload_mib_s": mib / up.seconds,
        "download_mib_s": mib / down.seconds,
        "cp_mib_s": mib / copy_s,
    }

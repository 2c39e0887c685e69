"""Real stores behind the charm: Swift (object-store) and Ceph RBD (ceph), alone and together.

The session `stack` (mariadb + keystone + glance-api, database and identity related) gets a
real single-replica Swift with keystone auth and a real single-node Ceph (mon + mgr + memstore
OSD). swift-proxy and ceph-mon are played on the relations; ceph-mon executes the broker
request the charm sends. Every image goes through glance-api's own store code.

The tests run in file order (swift, ceph, all three) but each relates what it needs when run
alone. Timings are printed (run with `-s`); on failure the glance, swift and ceph log tails are
printed with the error.
"""

from __future__ import annotations

import configparser
import contextlib
import grp
import hashlib
import json
import logging
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ops
import pytest

from tests.functional import realstack
from tests.functional.cephstack import CEPH_PACKAGES, CephCluster, CephMon
from tests.functional.driver import GLANCE_CONF, GlanceStack
from tests.functional.swiftstack import SWIFT_PACKAGES, SwiftStack

GLANCE_LOG = Path("/var/log/glance/glance-api.log")
SWIFT_REFERENCE = Path("/etc/glance/glance-swift.conf")
CEPH_CONF = Path("/etc/ceph/ceph.conf")
CEPH_KEYRING = Path("/etc/ceph/ceph.client.glance.keyring")
ACTIVE = ops.ActiveStatus("Unit is ready")
SIZE_MIB = 64

# Other runs that drive the charm or glance-api against this machine's real / (a race with them
# explains files vanishing from /etc/ceph or glance-api restarting under a test).
CONCURRENT_RUNS = (
    r"bench/run_hooks\.py|bench/dataplane\.py|tests\.functional\.local|pytest.*functional"
)
REPORT: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def conf() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(GLANCE_CONF.read_text())
    return parser


def backends() -> set[str]:
    return {item.strip() for item in conf()["DEFAULT"]["enabled_backends"].split(",")}


def restarts(caplog: pytest.LogCaptureFixture) -> int:
    return sum("restarting glance-api" in record.getMessage() for record in caplog.records)


def owner(path: Path) -> tuple[int, str, str]:
    info = path.stat()
    return (
        info.st_mode & 0o777,
        pwd.getpwuid(info.st_uid).pw_name,
        grp.getgrgid(info.st_gid).gr_name,
    )


def default_store(client: realstack.ImageClient) -> str | None:
    return next((s["id"] for s in client.stores() if s.get("default")), None)


@contextlib.contextmanager
def explain(*sources: Any) -> Iterator[None]:
    """On failure, print glance's log tail and each source's diagnostics (pytest shows them)."""
    try:
        yield
    except BaseException:
        mine = ancestors()
        others = [line for line in leftovers(CONCURRENT_RUNS) if int(line.split()[0]) not in mine]
        if others:
            # They drive the charm or glance-api on this machine's real / too (shared files).
            print("\n===== other charm runs on this machine during the test =====")
            print("\n".join(others))
        print("\n===== glance-api.log (tail) =====")
        print(realstack._tail(GLANCE_LOG, 40))
        for source in sources:
            if source is not None:
                print(f"===== {type(source).__name__} =====")
                print(source.diagnostics())
        raise


class StoredImage:
    """An image uploaded to one store, kept until the test deletes it (so it can be inspected)."""

    def __init__(self, client: realstack.ImageClient, workdir: Path, size_mib: int,
                 store: str | None, seed: int, *, chunked: bool = True) -> None:
        self.client = client
        self.size_mib = size_mib
        source = workdir / f"{store or 'default'}-{seed}.bin"
        self.sha256 = realstack.make_random_file(source, size_mib, seed=seed)
        self.md5 = hashlib.md5(source.read_bytes(), usedforsecurity=False).hexdigest()
        image = client.create_image(f"stores-{store or 'default'}-{seed}")
        self.id: str = image["id"]
        self.up = client.upload(self.id, source, store=store, chunked=chunked)
        self.image = client.wait_for_status(self.id, "active")
        source.unlink()
        self.workdir = workdir

    def read_back(self) -> realstack.Transfer:
        target = self.workdir / f"{self.id}.out"
        try:
            return self.client.download(self.id, target)
        finally:
            target.unlink(missing_ok=True)

    def rates(self, down: realstack.Transfer) -> dict[str, float]:
        return {
            "upload_mib_s": round(self.size_mib / self.up.seconds, 1),
            "download_mib_s": round(self.size_mib / down.seconds, 1),
        }

    def delete(self) -> None:
        self.client.delete_image(self.id, missing_ok=True)


def ancestors() -> set[int]:
    """This process and its parents (their command lines may match CONCURRENT_RUNS)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def leftovers(pattern: str) -> list[str]:
    found = subprocess.run(["pgrep", "-a", "-f", pattern], capture_output=True, text=True,
                           check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[dict[str, Any]]:
    yield REPORT
    print("\n===== stores timings =====\n" + json.dumps(REPORT, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def swift(stack: GlanceStack) -> Iterator[SwiftStack]:
    REPORT["apt_swift_s"] = round(realstack.install_packages(extra=SWIFT_PACKAGES), 1)
    assert stack.keystone is not None
    cluster = SwiftStack(stack.keystone)
    try:
        with explain(cluster):
            REPORT["swift_up_s"] = round(cluster.start(), 1)
            REPORT["swift_timings"] = {k: round(v, 2) for k, v in cluster.timings.items()}
        yield cluster
    finally:
        if related(stack, "object-store"):
            stack.remove("object-store")
        workdir = str(cluster.workdir)
        cluster.stop()
        left = leftovers(workdir) + leftovers("swift-.*-server")
        assert not left, f"swift processes left running: {left}"


@pytest.fixture(scope="module")
def ceph(stack: GlanceStack) -> Iterator[CephCluster]:
    REPORT["apt_ceph_s"] = round(realstack.install_packages(extra=CEPH_PACKAGES), 1)
    cluster = CephCluster()
    try:
        with explain(cluster):
            REPORT["ceph_up_s"] = round(cluster.start(), 1)
            REPORT["ceph_timings"] = {k: round(v, 2) for k, v in cluster.timings.items()}
        yield cluster
    finally:
        if related(stack, "ceph"):
            stack.remove("ceph")
        workdir = str(cluster.workdir)
        cluster.stop()
        left = leftovers(workdir)
        assert not left, f"ceph daemons left running: {left}"
        assert not CEPH_CONF.exists() and not CEPH_KEYRING.exists()


@pytest.fixture(scope="module")
def mon(ceph: CephCluster) -> CephMon:
    return CephMon(ceph)


def related(stack: GlanceStack, endpoint: str) -> bool:
    """Whether the charm has the relation (also when a failed test left it without an id)."""
    assert stack.harness is not None
    relation = stack.harness.model.get_relation(endpoint)
    if relation is not None and endpoint not in stack.relation_ids:
        stack.relation_ids[endpoint] = relation.id
    return relation is not None


def ensure_swift(stack: GlanceStack, swift: SwiftStack) -> None:
    if not related(stack, "object-store"):
        stack.relate_object_store(swift)
        stack.wait_healthy()


def ensure_ceph(stack: GlanceStack, mon: CephMon) -> None:
    if not related(stack, "ceph"):
        stack.relate_ceph(mon)
    else:
        assert stack.harness is not None
        mon.sync(stack.harness, stack.relation_ids["ceph"])
    stack.wait_healthy()


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_swift_store(
    stack: GlanceStack, swift: SwiftStack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with explain(swift):
        assert not related(stack, "ceph") and not related(stack, "object-store")
        stack.relate_object_store(swift)
        assert stack.status() == ACTIVE
        assert restarts(caplog) == 1
        assert backends() == {"local:file", "swift:swift"}
        assert conf()["glance_store"]["default_backend"] == "swift"
        assert owner(SWIFT_REFERENCE) == (0o640, "root", "glance")
        reference = configparser.ConfigParser(interpolation=None)
        reference.read_string(SWIFT_REFERENCE.read_text())
        assert stack.keystone is not None
        assert reference["swift"]["auth_address"] == f"{stack.keystone.url}"
        assert reference["swift"]["user"] == "services:glance"
        stack.wait_healthy()
        client = stack.image_client()
        assert default_store(client) == "swift"

        image = StoredImage(client, tmp_path, SIZE_MIB, None, seed=11)
        assert image.image["stores"] == "swift"
        # glance_store writes a chunked upload (size unknown) as segments + a DLO manifest
        names = {obj["name"] for obj in swift.list_objects("glance")}
        assert image.id in names
        manifest = swift.head_object("glance", image.id)
        assert manifest is not None
        assert manifest["x-object-manifest"] == f"glance/{image.id}-"
        assert swift.object_sha256("glance", image.id) == (
            SIZE_MIB * realstack.MIB, image.sha256
        )
        assert image.md5 == image.image["checksum"]
        stat = dict(
            line.strip().split(": ", 1)
            for line in swift.swiftclient_stat("glance").splitlines()
            if ": " in line
        )
        assert stat["Container"] == "glance"
        assert stat["Bytes"] == str(SIZE_MIB * realstack.MIB)  # manifest 0 + segment
        down = image.read_back()
        assert down.sha256 == image.sha256
        REPORT["swift_round_trip_chunked"] = image.rates(down)
        image.delete()
        assert swift.head_object("glance", image.id) is None
        assert not [o for o in swift.list_objects("glance") if o["name"].startswith(image.id)]

        # with Content-Length glance_store knows the size: one plain object, etag = md5
        sized = StoredImage(client, tmp_path, SIZE_MIB, None, seed=12, chunked=False)
        headers = swift.head_object("glance", sized.id)
        assert headers is not None and "x-object-manifest" not in headers
        assert headers["etag"] == sized.md5
        assert int(headers["content-length"]) == SIZE_MIB * realstack.MIB
        down = sized.read_back()
        assert down.sha256 == sized.sha256
        REPORT["swift_round_trip_sized"] = sized.rates(down)
        sized.delete()


def test_ceph_store(
    stack: GlanceStack,
    ceph: CephCluster,
    mon: CephMon,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with explain(ceph):
        assert stack.harness is not None
        assert not related(stack, "ceph")
        swift_related = related(stack, "object-store")
        rel = stack.relate_ceph(mon, answer=False)
        # key and address handed over, request pending: nothing of ceph is written yet
        sent = stack.harness.get_relation_data(rel, stack.charm.unit.name)
        request = json.loads(sent["broker_req"])
        status = stack.status()
        assert isinstance(status, ops.WaitingStatus)
        assert "Ceph broker request incomplete" in status.message
        assert not CEPH_CONF.exists()
        assert "ceph:rbd" not in backends()
        ops_json = json.dumps(request["ops"], sort_keys=True).encode()
        assert request["request-id"] == hashlib.sha1(ops_json, usedforsecurity=False).hexdigest()
        pool_op = request["ops"][0]
        assert (pool_op["op"], pool_op["name"], pool_op["app-name"]) == (
            "create-pool", "glance", "rbd"
        )

        outcome = mon.sync(stack.harness, rel)
        assert outcome is not None and outcome.response["exit-code"] == 0, outcome
        REPORT["broker_actions"] = outcome.actions
        assert stack.status() == ACTIVE
        assert restarts(caplog) == 1
        detail = ceph.pool_detail("glance")
        assert (detail["size"], detail["pg_num"]) == (1, 2)
        assert "rbd" in ceph.ceph_json("osd", "pool", "application", "get", "glance")
        assert ceph.key_caps("glance")["osd"] == "allow rwx"
        expected = {"local:file", "ceph:rbd"} | ({"swift:swift"} if swift_related else set())
        assert backends() == expected
        assert conf()["glance_store"]["default_backend"] == "ceph"
        assert conf()["ceph"]["rbd_store_pool"] == "glance"
        assert "mon host = 127.0.0.1" in CEPH_CONF.read_text()
        assert owner(CEPH_KEYRING) == (0o640, "root", "glance")
        stack.wait_healthy()
        client = stack.image_client()
        assert default_store(client) == "ceph"

        image = StoredImage(client, tmp_path, SIZE_MIB, None, seed=22)
        assert image.image["stores"] == "ceph"
        assert image.id in ceph.rbd("ls", "glance").split()
        down = image.read_back()
        assert down.sha256 == image.sha256
        REPORT["ceph_round_trip_chunked"] = image.rates(down)
        image.delete()
        assert image.id not in ceph.rbd("ls", "glance").split()

        # with Content-Length the rbd image is created at its final size (no resize per chunk)
        sized = StoredImage(client, tmp_path, SIZE_MIB, None, seed=23, chunked=False)
        info = json.loads(ceph.rbd("info", f"glance/{sized.id}", "--format", "json"))
        assert info["size"] == SIZE_MIB * realstack.MIB
        down = sized.read_back()
        assert down.sha256 == sized.sha256
        REPORT["ceph_round_trip_sized"] = sized.rates(down)
        sized.delete()


def test_location_operations_restricted_to_admins(
    stack: GlanceStack, mon: CephMon, tmp_path: Path,
) -> None:
    """restrict-image-location-operations, as a project member and an admin see it.

    The classic charm (openstack/charm-glance hooks/glance_contexts.py GlancePolicyContext,
    templates/ussuri/policy.yaml) sets get_image_location, set_image_location and
    delete_image_location to ``role:admin``. Locations are only shown (and changed) with ceph
    as the default store (show_multiple_locations, for nova's copy-on-write clones). glance
    checks set_image_location on a location PATCH before it looks at the location itself:
    adding the image's own location again is refused as a duplicate when the policy allows
    the caller, and with 403 when it does not. Turning the option off must let members back
    in: glance's Enforcer keeps a rule removed from policy.yaml until glance-api restarts
    (Epoxy showed it), so the charm restarts glance-api on every policy.yaml change.
    """
    ensure_ceph(stack, mon)
    assert stack.harness is not None and stack.keystone is not None
    keystone = stack.keystone
    ids = keystone.ids
    password = realstack.generate_password()
    user_id = keystone.ensure_user("location-member", password, ids["admin_domain_id"],
                                   ids["admin_project_id"])
    keystone.grant(ids["member_role_id"], user_id, project_id=ids["admin_project_id"])
    member = realstack.ImageClient(keystone, username="location-member", password=password)
    admin = stack.image_client()
    image = StoredImage(member, tmp_path, 1, None, seed=31)

    def add_location_again(client: realstack.ImageClient) -> tuple[int, bytes]:
        patch = [{"op": "add", "path": "/locations/-",
                  "value": {"url": location, "metadata": {}}}]
        answer = client._call(
            "PATCH", f"/v2/images/{image.id}", body=patch, expect=range(100, 600),
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        return answer.status, answer.body[:300]

    try:
        (shown,) = member.get_image(image.id)["locations"]
        location = shown["url"]
        assert location.startswith("rbd://")
        allowed, body = add_location_again(member)  # the default: members may
        assert allowed != 403 and 400 <= allowed < 500, (allowed, body)

        stack.harness.update_config({"restrict-image-location-operations": True})
        try:
            assert stack.status() == ACTIVE
            stack.wait_healthy()
            policy = Path("/etc/glance/policy.yaml").read_text()
            assert '"set_image_location": "role:admin"' in policy
            refused = add_location_again(member)
            assert refused[0] == 403, refused
            by_admin = add_location_again(admin)
            assert by_admin[0] == allowed, by_admin  # admins still pass the policy
        finally:
            stack.harness.update_config(unset=["restrict-image-location-operations"])
            stack.wait_healthy()
        again = add_location_again(member)
        assert again[0] == allowed, (again, Path("/etc/glance/policy.yaml").read_text(),
                                     sorted(Path("/etc/glance").glob("policy.d/*")))
        assert [loc["url"] for loc in member.get_image(image.id)["locations"]] == [location]
    finally:
        image.delete()


def test_three_stores_then_ceph_removed(
    stack: GlanceStack,
    swift: SwiftStack,
    ceph: CephCluster,
    mon: CephMon,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with explain(swift, ceph):
        ensure_swift(stack, swift)
        ensure_ceph(stack, mon)
        assert stack.status() == ACTIVE
        assert backends() == {"local:file", "swift:swift", "ceph:rbd"}
        client = stack.image_client()
        assert {s["id"] for s in client.stores()} == {"local", "swift", "ceph"}
        assert default_store(client) == "ceph"

        images = {
            store: StoredImage(client, tmp_path, 16, store, seed=seed)
            for seed, store in enumerate(("local", "swift", "ceph"), start=30)
        }
        for store, image in images.items():
            assert image.image["stores"] == store
            assert image.read_back().sha256 == image.sha256, store
        assert images["ceph"].id in ceph.rbd("ls", "glance").split()
        assert images["swift"].id in {o["name"] for o in swift.list_objects("glance")}
        images.pop("ceph").delete()

        caplog.set_level(logging.INFO)
        caplog.clear()
        pids = stack.glance_pids()
        stack.remove("ceph")
        assert stack.status() == ACTIVE
        assert restarts(caplog) == 1
        assert stack.glance_pids().isdisjoint(pids)
        assert backends() == {"local:file", "swift:swift"}
        assert "ceph" not in conf()
        assert conf()["glance_store"]["default_backend"] == "swift"
        assert not CEPH_CONF.exists()
        assert not CEPH_KEYRING.exists()
        assert not [p.name for p in Path("/etc/ceph").glob("*") if p.name != "rbdmap"]
        stack.wait_healthy()
        assert default_store(client) == "swift"
        for store, image in images.items():
            assert image.read_back().sha256 == image.sha256, store
            image.delete()
        assert stack.harness is not None
        stack.harness.charm.on.update_status.emit()
        assert restarts(caplog) == 1  # nothing left over to apply

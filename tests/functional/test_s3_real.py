"""Issue 14 item 4 on the real stack: the S3 store against Ceph's radosgw, and the cinder store.

S3: the tier's real single-node Ceph (tests/functional/cephstack.py) gets a radosgw (Debian's
radosgw package, beast frontend on 127.0.0.1:7480) and an rgw user; the charm is given the
four s3-store-* options as openstack/charm-glance hooks/glance_contexts.py ExternalS3Context
and MultiBackendContext read them, and glance-api's own s3 driver (boto3) stores the image
in the bucket. The object is read back from radosgw directly, the image downloaded through
glance, then deleted from both. The secret key appears in no log the charm writes.

cinder: with cinder-volume-service related (CinderStoreContext), glance-api starts with the
cinder store and lists it in /v2/info/stores. No cinder-api/cinder-volume runs here, so no
volume is created: only the rendered store and glance-api starting with it are shown.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ops
import pytest

from tests.functional import realstack
from tests.functional.cephstack import CEPH_PACKAGES, CephCluster
from tests.functional.driver import GLANCE_CONF, GlanceStack

# radosgw for the store, boto3 for glance_store's s3 driver, cinder's client libraries for
# the cinder store: installed by the tier (the charm's own apt has no archive in the sandbox)
PACKAGES = (*CEPH_PACKAGES, "radosgw", "python3-boto3", "python3-cinderclient",
            "python3-os-brick", "python3-oslo.rootwrap")
RGW_PORT = 7480
RGW_URL = f"http://127.0.0.1:{RGW_PORT}"
RGW_NAME = "client.rgw.glance"
BUCKET = "glance-images"
SIZE_MIB = 32
ACTIVE = ops.ActiveStatus("Unit is ready")
S3_CLIENT = """
import hashlib, json, os, sys
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_URL"],
                  aws_access_key_id=os.environ["RGW_ACCESS"],
                  aws_secret_access_key=os.environ["RGW_SECRET"], region_name="us-east-1")
action, bucket = sys.argv[1], sys.argv[2]
if action == "create":
    s3.create_bucket(Bucket=bucket)
    print("{}")
elif action == "list":
    print(json.dumps({o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket).get(
        "Contents", [])}))
elif action == "sha256":
    body = s3.get_object(Bucket=bucket, Key=sys.argv[3])["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    print(json.dumps(digest.hexdigest()))
"""


class Radosgw:
    """One radosgw on the tier's ceph cluster, and an rgw user for glance."""

    def __init__(self, cluster: CephCluster) -> None:
        self.cluster = cluster
        self.process: realstack.ManagedProcess | None = None
        self.access = ""
        self.secret = ""

    def _admin(self, *args: str) -> str:
        argv = ["radosgw-admin", "-c", str(self.cluster.conf), "--name", "client.admin",
                "--keyring", str(self.cluster.admin_keyring), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env=realstack.system_env(), check=False)
        if done.returncode:
            raise realstack.RealStackError(
                f"radosgw-admin {args[0]} failed: {realstack.redact(done.stderr[-500:])}")
        return done.stdout

    def start(self, timeout: float = 90.0) -> float:
        started = time.monotonic()
        assert self.cluster.workdir is not None
        # one OSD: small pools, so rgw's ~7 pools fit under mon_max_pg_per_osd
        self.cluster.ceph("config", "set", "global", "osd_pool_default_pg_num", "8")
        self.cluster.ceph("config", "set", "global", "osd_pool_default_pgp_num", "8")
        keyring = self.cluster.workdir / "rgw.keyring"
        keyring.write_text(self.cluster.ceph("auth", "get-or-create", RGW_NAME,
                                             "mon", "allow rw", "osd", "allow rwx"))
        keyring.chmod(0o600)
        data = self.cluster.workdir / "rgw"
        data.mkdir(exist_ok=True)
        self.process = realstack.start_process("radosgw", [
            "radosgw", "-f", "-c", str(self.cluster.conf), "--name", RGW_NAME,
            "--keyring", str(keyring), "--rgw-data", str(data),
            "--rgw-frontends", f"beast endpoint=127.0.0.1:{RGW_PORT}",
        ], log_path=self.cluster.log_dir / "radosgw.out", cwd=self.cluster.workdir)
        while time.monotonic() - started < timeout:
            try:
                with urllib.request.urlopen(RGW_URL, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if not self.process.alive():
                raise realstack.RealStackError("radosgw exited:\n" + self.process.log_tail())
            time.sleep(0.5)
        else:
            raise realstack.RealStackError("radosgw did not answer:\n" + self.process.log_tail())
        user = json.loads(self._admin("user", "create", "--uid", "glance",
                                      "--display-name", "glance"))
        self.access = user["keys"][0]["access_key"]
        self.secret = user["keys"][0]["secret_key"]
        realstack.remember_secret(self.secret)
        return time.monotonic() - started

    def s3(self, *args: str) -> Any:
        """Run the boto3 client (system python) with the credentials in its environment."""
        env = realstack.system_env({"RGW_URL": RGW_URL, "RGW_ACCESS": self.access,
                                    "RGW_SECRET": self.secret})
        done = subprocess.run(["/usr/bin/python3", "-c", S3_CLIENT, *args], capture_output=True,
                              text=True, timeout=120, env=env, check=False)
        if done.returncode:
            raise realstack.RealStackError(realstack.redact(done.stderr[-800:]))
        return json.loads(done.stdout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(20.0)
            self.process = None


@pytest.fixture(scope="module")
def rgw(stack: GlanceStack) -> Iterator[Radosgw]:
    realstack.install_packages(extra=PACKAGES)
    cluster = CephCluster()
    gateway = Radosgw(cluster)
    try:
        print(f"\nceph up in {cluster.start():.1f} s, radosgw in {gateway.start():.1f} s")
        yield gateway
    except BaseException:
        print(cluster.diagnostics())
        raise
    finally:
        gateway.stop()
        cluster.stop()


def owner(path: Path) -> tuple[int, str, str]:
    info = path.stat()
    return (info.st_mode & 0o777, pwd.getpwuid(info.st_uid).pw_name,
            grp.getgrgid(info.st_gid).gr_name)


def test_s3_round_trip_through_radosgw(
    stack: GlanceStack, rgw: Radosgw, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert stack.harness is not None
    caplog.set_level(logging.DEBUG)
    rgw.s3("create", BUCKET)  # the classic charm does not create the bucket either
    stack.harness.update_config({"s3-store-host": RGW_URL, "s3-store-access-key": rgw.access,
                                 "s3-store-secret-key": rgw.secret, "s3-store-bucket": BUCKET})
    try:
        assert stack.status() == ACTIVE
        assert owner(GLANCE_CONF) == (0o640, "root", "glance")
        assert rgw.secret in GLANCE_CONF.read_text()
        assert rgw.secret not in caplog.text
        stack.wait_healthy()
        client = stack.image_client()
        stores = {s["id"]: s for s in client.stores()}
        assert "s3" in stores
        source = tmp_path / "s3.bin"
        expected = realstack.make_random_file(source, SIZE_MIB, seed=3)
        image = client.create_image("s3-round-trip")
        try:
            up = client.upload(image["id"], source, store="s3")
            stored = client.wait_for_status(image["id"], "active")
            assert stored["stores"] == "s3"
            objects = rgw.s3("list", BUCKET)
            assert objects == {image["id"]: SIZE_MIB * realstack.MIB}
            assert rgw.s3("sha256", BUCKET, image["id"]) == expected
            down = client.download(image["id"], tmp_path / "s3.out")
            assert down.sha256 == expected
            print(f"\ns3 via radosgw: upload {SIZE_MIB / up.seconds:.1f} MiB/s, "
                  f"download {SIZE_MIB / down.seconds:.1f} MiB/s, object {objects}")
        finally:
            client.delete_image(image["id"], missing_ok=True)
        assert rgw.s3("list", BUCKET) == {}
    finally:
        stack.harness.update_config(unset=["s3-store-host", "s3-store-access-key",
                                           "s3-store-secret-key", "s3-store-bucket"])
    assert stack.status() == ACTIVE
    assert rgw.secret not in GLANCE_CONF.read_text()
    assert rgw.secret not in caplog.text
    for path in (Path("/var/log/glance"),):
        for log in path.glob("*.log"):
            assert rgw.secret not in log.read_text(errors="replace"), log
    assert not [p for p in os.listdir("/proc") if p.isdigit()
                and rgw.secret in _cmdline(p)]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_cinder_store_listed_when_cinder_is_related(stack: GlanceStack) -> None:
    assert stack.harness is not None
    realstack.install_packages(extra=PACKAGES)
    rel = stack.harness.add_relation("cinder-volume-service", "cinder")
    stack.harness.add_relation_unit(rel, "cinder/0")
    try:
        assert stack.status() == ACTIVE
        assert "cinder:cinder" in GLANCE_CONF.read_text()
        stack.wait_healthy()
        stores = {s["id"] for s in stack.image_client().stores()}
        print(f"\nstores with cinder related: {sorted(stores)}")
        assert "cinder" in stores
    finally:
        stack.harness.remove_relation(rel)
    assert stack.status() == ACTIVE
    stack.wait_healthy()
    assert "cinder" not in {s["id"] for s in stack.image_client().stores()}

"""Issue 14 item 3 on the real stack: a qcow2 image imported through glance-direct is stored raw.

The charm is configured with `image-conversion` and `custom-import-properties` (as
openstack/charm-glance hooks/glance_contexts.py GlanceImageImportContext and templates/parts/
section-image-import render them) and glance-api runs the interoperable import for real:
the image data is staged (`PUT /v2/images/{id}/stage`), `glance-direct` imports it, the
image_conversion plugin runs qemu-img and inject_image_metadata adds the properties. The
stored image is read back and compared with qemu-img's own raw conversion of the upload.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import ops
import pytest

from tests.functional import realstack
from tests.functional.driver import GLANCE_CONF, GlanceStack

# qemu-utils: the charm installs it for image-conversion; installed here by the tier first,
# since the charm's own apt cannot reach the archive from inside the tier's sandbox.
PACKAGES = ("qemu-utils",)
PROPERTIES = "imported_by:glance-charm,note:a:b c"
RAW_MIB = 24


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _request(client: realstack.ImageClient, method: str, path: str, body: bytes,
             content_type: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - the tier's own glance endpoint
        client.endpoint.rstrip("/") + path, data=body, method=method,
        headers={"X-Auth-Token": client._auth(), "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return int(response.status)


@pytest.fixture
def import_config(stack: GlanceStack) -> Iterator[None]:
    assert stack.harness is not None
    realstack.install_packages(extra=PACKAGES)
    stack.harness.update_config({"image-conversion": True,
                                 "custom-import-properties": PROPERTIES})
    yield
    stack.harness.update_config(unset=["image-conversion", "custom-import-properties"])
    stack.wait_healthy()


def test_qcow2_imported_with_glance_direct_is_stored_raw(
    stack: GlanceStack, import_config: None, tmp_path: Path
) -> None:
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    text = GLANCE_CONF.read_text()
    assert "image_import_plugins = ['image_conversion', 'inject_image_metadata']" in text
    assert "output_format = raw" in text
    stack.wait_healthy()
    raw = tmp_path / "disk.raw"
    realstack.make_random_file(raw, RAW_MIB, seed=14)
    with raw.open("r+b") as handle:  # a sparse tail, as real disks have
        handle.truncate((RAW_MIB + 8) * realstack.MIB)
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True, capture_output=True)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output", "json", str(qcow2)],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["format"] == "qcow2"
    expected = tmp_path / "expected.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2),
                    str(expected)], check=True, capture_output=True)

    client = stack.image_client()
    image = client.create_image("import-qcow2", disk_format="qcow2")
    try:
        started = time.monotonic()
        assert _request(client, "PUT", f"/v2/images/{image['id']}/stage",
                        qcow2.read_bytes(), "application/octet-stream") == 204
        assert client.get_image(image["id"])["status"] == "uploading"
        body = json.dumps({"method": {"name": "glance-direct"}}).encode()
        assert _request(client, "POST", f"/v2/images/{image['id']}/import", body,
                        "application/json") == 202
        done = client.wait_for_status(image["id"], "active", timeout=180)
        seconds = time.monotonic() - started
        target = tmp_path / "download.raw"
        down = client.download(image["id"], target)
        print(f"\nimport: qcow2 {qcow2.stat().st_size} B -> {done['disk_format']} "
              f"{done['size']} B in {seconds:.1f} s (virtual {info['virtual-size']} B)")
        assert done["disk_format"] == "raw"
        assert done["size"] == info["virtual-size"] == expected.stat().st_size
        assert down.sha256 == _sha256(expected) == _sha256(raw)
        assert done["imported_by"] == "glance-charm"
        assert done["note"] == "a:b c"
    finally:
        client.delete_image(image["id"], missing_ok=True)

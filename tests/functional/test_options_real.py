"""Issue 14 items 1-2 on the real stack: what glance-api 25 does with the classic options.

* audit-middleware: keystonemiddleware's audit filter in the paste pipeline writes a CADF
  event per API call (charmhelpers KeystoneAuditMiddleware, openstack/charm-glance
  templates/yoga/api-paste.ini and api_audit_map.conf);
* use-policyd-override: a zip from the policyd-override resource denies listing images until
  it is turned off (charmhelpers contrib/openstack/policyd.py);
* api-config-flags: a flag in [DEFAULT] is enforced (charmhelpers OSConfigFlagContext);
* use-syslog: glance-api still starts and serves (charmhelpers SyslogContext), and the
  glance-api the charm's file configures logs to syslog: run once more in a namespace of
  its own with a private /dev whose /dev/log is a real rsyslogd's (the machine's /dev is
  never touched), its lines arrive under the ``glance-api`` tag.
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import ops

from tests.functional import realstack
from tests.functional.driver import GlanceStack

PACKAGES = ("rsyslog",)
# A namespace of its own (mount, net) with a private /dev: rsyslogd's /dev/log there, the
# machine's /dev untouched; then glance-api with the charm's config, as the service runs it.
SYSLOG_PROBE = r"""
set -eu
out="$1"
ip link set lo up
dev=$(mktemp -d /run/glance-syslog-dev.XXXX)
mount -t tmpfs -o mode=755 tmpfs "$dev"
for node in null zero full random urandom tty; do
    touch "$dev/$node"; mount --bind "/dev/$node" "$dev/$node"
done
mkdir "$dev/shm" "$dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$dev/shm"; mount --bind /dev/pts "$dev/pts"
ln -s /proc/self/fd "$dev/fd"
mount --move "$dev" /dev
printf 'module(load="imuxsock")\n*.* %s\n' "$out" > "$out.conf"
/usr/sbin/rsyslogd -n -f "$out.conf" -i "$out.pid" &
for _ in $(seq 100); do [ -S /dev/log ] && break; sleep 0.1; done
timeout -s TERM 12 runuser -u glance -- \
    /usr/bin/glance-api --config-file=/etc/glance/glance-api.conf || true
kill %1; wait || true
"""

GLANCE_LOG = Path("/var/log/glance/glance-api.log")
ACTIVE = ops.ActiveStatus("Unit is ready")


def _log_size() -> int:
    return GLANCE_LOG.stat().st_size if GLANCE_LOG.exists() else 0


def _log_since(offset: int) -> str:
    with GLANCE_LOG.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_audit_middleware_logs_a_cadf_event_per_call(stack: GlanceStack) -> None:
    assert stack.harness is not None
    stack.harness.update_config({"audit-middleware": True})
    try:
        assert stack.status() == ACTIVE
        stack.wait_healthy()
        offset = _log_size()
        client = stack.image_client()
        client.list_images()
        logged = _log_since(offset)
        assert "audit.http.request" in logged
        assert "http://schemas.dmtf.org/cloud/audit/1.0/event" in logged
        assert "service/storage/image" in logged  # the target type from the audit map
    finally:
        stack.harness.update_config(unset=["audit-middleware"])
    assert stack.status() == ACTIVE
    stack.wait_healthy()
    offset = _log_size()
    stack.image_client().list_images()
    assert "audit.http.request" not in _log_since(offset)


def test_policyd_override_denies_listing_until_turned_off(stack: GlanceStack) -> None:
    assert stack.harness is not None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("deny-list.yaml", '"get_images": "!"\n')
    stack.harness.add_resource("policyd-override", buffer.getvalue())
    stack.harness.update_config({"use-policyd-override": True})
    try:
        assert stack.status() == ACTIVE
        assert Path("/etc/glance/policy.d/deny-list.yaml").exists()
        stack.wait_healthy()
        client = stack.image_client()
        denied = client._call("GET", "/v2/images", expect=(403,))
        assert denied.status == 403
    finally:
        stack.harness.update_config(unset=["use-policyd-override"])
    assert stack.status() == ACTIVE
    assert not Path("/etc/glance/policy.d/deny-list.yaml").exists()
    stack.wait_healthy()
    assert isinstance(stack.image_client().list_images(), list)


def test_api_config_flag_is_enforced(stack: GlanceStack) -> None:
    assert stack.harness is not None
    stack.harness.update_config({"api-config-flags": "image_property_quota=2"})
    client = stack.image_client()
    try:
        assert stack.status() == ACTIVE
        stack.wait_healthy()
        refused = client._call("POST", "/v2/images", {
            "name": "quota", "disk_format": "raw", "container_format": "bare",
            "a": "1", "b": "2", "c": "3"}, expect=(413,))
        assert refused.status == 413
    finally:
        stack.harness.update_config(unset=["api-config-flags"])
    assert stack.status() == ACTIVE
    stack.wait_healthy()
    image = client.create_image("quota", a="1", b="2", c="3")
    client.delete_image(image["id"])


def syslog_lines(workdir: Path) -> list[str]:
    """Run glance-api with the charm's config beside a private rsyslogd; its syslog lines."""
    out = workdir / "syslog.out"
    out.unlink(missing_ok=True)
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "--propagation", "private",
         "bash", "-c", SYSLOG_PROBE, "probe", str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "rsyslogd" in out.read_text()  # rsyslogd ran and wrote
    return [line for line in out.read_text().splitlines() if " glance-api" in line]


def test_use_syslog_keeps_glance_serving_and_logs_reach_syslog(
        stack: GlanceStack, tmp_path: Path) -> None:
    assert stack.harness is not None
    realstack.install_packages(extra=PACKAGES)
    stack.harness.update_config({"use-syslog": True})
    try:
        assert stack.status() == ACTIVE
        stack.wait_healthy()
        assert isinstance(stack.image_client().list_images(), list)
        assert "use_syslog = true" in Path("/etc/glance/glance-api.conf").read_text()
        lines = syslog_lines(tmp_path)
        print(f"\nglance-api lines in syslog: {len(lines)}, e.g. {lines[:2]}")
        assert lines
    finally:
        stack.harness.update_config(unset=["use-syslog"])
    assert stack.status() == ACTIVE
    stack.wait_healthy()
    assert syslog_lines(tmp_path) == []  # off: the log file only


def test_charm_owned_flag_is_refused_and_glance_keeps_serving(
    stack: GlanceStack,
) -> None:
    assert stack.harness is not None
    pids = stack.glance_pids()
    stack.harness.update_config({"api-config-flags": "workers=64"})
    try:
        assert stack.status() == ops.BlockedStatus(
            "api-config-flags sets options the charm owns: workers")
        assert stack.glance_pids() == pids
        assert isinstance(stack.image_client().list_images(), list)
    finally:
        stack.harness.update_config(unset=["api-config-flags"])
    assert stack.status() == ACTIVE


def test_storage_backend_subordinate_configuration_takes_effect(stack: GlanceStack) -> None:
    """A glance-backend subordinate's [image_format] is merged in and enforced.

    charmhelpers SubordinateConfigContext(service=['glance-api'], config_file=
    /etc/glance/glance-api.conf): its value wins, as in the classic's repeated section;
    removing the relation restores the charm's own.
    """
    assert stack.harness is not None
    rel = stack.harness.add_relation("storage-backend", "glance-backend")
    stack.harness.add_relation_unit(rel, "glance-backend/0")
    sections = {"image_format": [["disk_formats", "raw,iso"]]}
    stack.harness.update_relation_data(rel, "glance-backend/0", {
        "subordinate_configuration": json.dumps(
            {"glance-api": {"/etc/glance/glance-api.conf": {"sections": sections}}})})
    client = stack.image_client()
    try:
        assert stack.status() == ACTIVE
        stack.wait_healthy()
        refused = client._call("POST", "/v2/images", {
            "name": "fmt", "disk_format": "qcow2", "container_format": "bare"},
            expect=(400,))
        assert refused.status == 400
    finally:
        stack.harness.remove_relation(rel)
    assert stack.status() == ACTIVE
    stack.wait_healthy()
    image = client.create_image("fmt", disk_format="qcow2")
    client.delete_image(image["id"])

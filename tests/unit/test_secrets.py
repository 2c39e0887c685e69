"""Secrets never leak: logs, juju-log, statuses, relation data, file modes, model reprs.

The secret values are the ones the counterpart fixtures carry (database passwords from
mysql-router, Charmed MySQL and its Juju secret, keystone's service password, the cephx
key) plus a TLS key set through config. A full lifecycle runs with every log record
captured (pytest's caplog at DEBUG and ops' own JujuLogHandler, i.e. what `juju-log`
would receive), every status the charm sets recorded, including those set mid-hook, and
then every sink is scanned for every secret. Failure paths that are most likely to quote
a secret are played on purpose: glance-manage failing with the connection URL on stderr,
a password with a control character, a rotated password, a service that fails to start.
"""

from __future__ import annotations

import base64
import grp
import json
import logging
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ops
import ops.log
import pytest

from glance_charm.domain.config import GlanceConfig
from glance_charm.domain.models import DatabaseInfo, IdentityCredentials
from glance_charm.relations import ceph as ceph_relation
from glance_charm.state.context import GlanceContext
from glance_charm.workload.glance import GlanceWorkload
from tests.fixtures import load
from tests.unit.conftest import GlanceHarness, RecordingWorkload


def _self_signed() -> tuple[str, str]:
    """A real key and certificate for glance (the charm may parse what config hands it)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "glance.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("glance.test")]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


TLS_KEY_PEM, TLS_CERT_PEM = _self_signed()
TLS_KEY = base64.b64encode(TLS_KEY_PEM.encode()).decode()
TLS_CERT = base64.b64encode(TLS_CERT_PEM.encode()).decode()
ROTATED_DB_PASSWORD = "r0tated-Db-Passw0rd-7QkLmN"
ROTATED_KEYSTONE_PASSWORD = "r0tated-Keystone-Passw0rd-Zx9"
SECRET_DB_PASSWORD = "fr0m-a-Juju-Secret-Qw8Er7Ty"
BAD_PASSWORD = "leaky-Secret-With-Newline-Pp4\n"


def _unit(fixture: str, key: str) -> str:
    units = load(fixture)["remote_units_data"]
    return str(next(bag[key] for bag in units.values() if key in bag))


SECRETS = {
    "shared-db password": _unit("shared-db_mysql-router", "password"),
    "mysql_client password": load("database_mysql_client")["remote_app_data"]["password"],
    "legacy db password": _unit("mysql-legacy_charmed-mysql", "password"),
    "legacy db root_password": _unit("mysql-legacy_charmed-mysql", "root_password"),
    "keystone service_password": _unit("identity-service_keystone", "service_password"),
    "cephx key": _unit("ceph_ceph-mon", "key"),
    "rabbitmq password": _unit("amqp_rabbitmq-server", "password"),
    "TLS key (base64)": TLS_KEY,
    "TLS key (PEM body)": TLS_KEY_PEM.splitlines()[1],
    "rotated db password": ROTATED_DB_PASSWORD,
    "rotated keystone password": ROTATED_KEYSTONE_PASSWORD,
    "password from a Juju secret": SECRET_DB_PASSWORD,
    "password with a control character": BAD_PASSWORD.strip(),
}


def leaks(text: str) -> list[str]:
    """Names of the secrets found in text (also URL-quoted and with `$$` escaping)."""
    from urllib.parse import quote

    found = []
    for label, value in SECRETS.items():
        forms = {value, quote(value, safe=""), value.replace("$", "$$")}
        if any(form in text for form in forms):
            found.append(label)
    return found


# ---- sinks --------------------------------------------------------------------------------
@dataclass
class JujuLogRecorder:
    """Stands in for the model backend: what ops' JujuLogHandler hands to juju-log."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def juju_log(self, level: str, message: str) -> None:
        self.lines.append((level, message))


@dataclass
class Sinks:
    juju_log: JujuLogRecorder
    statuses: list[tuple[str, str]]


@pytest.fixture
def sinks(gh: GlanceHarness, caplog: pytest.LogCaptureFixture) -> Iterator[Sinks]:
    caplog.set_level(logging.DEBUG)
    recorder = JujuLogRecorder()
    handler = ops.log.JujuLogHandler(recorder)  # type: ignore[arg-type]
    root = logging.getLogger()
    root.addHandler(handler)
    statuses: list[tuple[str, str]] = []
    backend = gh.harness._backend
    real_status_set = backend.status_set

    def status_set(status: Any, message: str = "", *, is_app: bool = False) -> Any:
        statuses.append((str(status), message))
        return real_status_set(status, message, is_app=is_app)

    backend.status_set = status_set  # type: ignore[method-assign]
    try:
        yield Sinks(recorder, statuses)
    finally:
        root.removeHandler(handler)


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


def charm_written_relation_data(gh: GlanceHarness) -> dict[str, dict[str, str]]:
    """Every bag this unit or (as leader) this app wrote, on every relation."""
    written: dict[str, dict[str, str]] = {}
    for name, relations in gh.harness.model.relations.items():
        for relation in relations:
            for owner in (gh.charm.unit.name, gh.charm.app.name):
                bag = gh.harness.get_relation_data(relation.id, owner)
                if bag:
                    written[f"{name}:{relation.id}:{owner}"] = dict(bag)
    return written


def assert_no_leaks(gh: GlanceHarness, caplog: pytest.LogCaptureFixture, sinks: Sinks) -> None:
    assert caplog.records, "nothing was logged: the capture is not working"
    assert sinks.juju_log.lines, "nothing reached juju-log: the capture is not working"
    for record in caplog.records:
        assert not leaks(record_text(record)), (leaks(record_text(record)), record.name)
    for level, line in sinks.juju_log.lines:
        assert not leaks(line), (leaks(line), level)
    for status, message in sinks.statuses:
        assert not leaks(message), (status, message)
    for owner, bag in charm_written_relation_data(gh).items():
        assert not leaks(json.dumps(bag)), (owner, leaks(json.dumps(bag)))


def walk_files(root: Path) -> Iterator[Path]:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


def assert_secret_files_private(gh: GlanceHarness) -> list[str]:
    """No file under the root that holds a secret is readable (or writable) by others."""
    holding = []
    for path in walk_files(gh.root):
        text = path.read_bytes().decode(errors="replace")
        if leaks(text):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o007 == 0, f"{path} holds {leaks(text)} with mode {oct(mode)}"
            holding.append(str(path.relative_to(gh.root)))
    return holding


# ---- file owners and modes ----------------------------------------------------------------
EXPECTED_MODES = {
    "etc/glance/glance-api.conf": 0o640,
    "etc/glance/glance-swift.conf": 0o640,
    "etc/glance/db-client.ca": 0o644,
    "etc/ceph/ceph.conf": 0o644,
    "etc/ceph/ceph.client.glance.keyring": 0o640,
    "etc/haproxy/haproxy.cfg": 0o644,  # no secret in it (checked by the scan)
}


def assert_owners_and_modes(gh: GlanceHarness) -> None:
    """Every file the charm writes: its mode, owner config_owner, group glance's group."""
    workload = gh.workload
    uid = pwd.getpwnam(workload.config_owner).pw_uid
    gid = grp.getgrnam(workload.group).gr_gid
    for path in walk_files(gh.root):
        rel = str(path.relative_to(gh.root))
        assert not path.name.startswith("."), f"stray temporary file {rel}"
        if rel.startswith("var/lib/charm/"):  # the charm's own markers (empty)
            assert path.stat().st_size == 0, rel
            continue
        info = path.stat()
        mode = stat.S_IMODE(info.st_mode)
        if rel in EXPECTED_MODES:
            assert mode == EXPECTED_MODES[rel], (rel, oct(mode))
            assert (info.st_uid, info.st_gid) == (uid, gid), rel
        else:  # a file this table does not know yet: at least private if secret, owned
            assert mode & 0o002 == 0, f"{rel} is world-writable"
            assert info.st_uid == uid, rel
            if leaks(path.read_bytes().decode(errors="replace")):
                assert mode & 0o007 == 0, f"{rel} holds a secret with mode {oct(mode)}"
    for folder in ("var/lib/glance/images", "var/lib/glance/lock", "var/lib/glance/staging",
                   "var/lib/glance/tasks_work_dir"):
        info = (gh.root / folder).stat()
        assert stat.S_IMODE(info.st_mode) == 0o750, folder
        assert (info.st_uid, info.st_gid) == (pwd.getpwnam(workload.user).pw_uid, gid)


# ---- the lifecycle ------------------------------------------------------------------------
def fail_db_sync_quoting_the_url(workload: RecordingWorkload,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The real GlanceWorkload.db_sync, with glance-manage failing and quoting its URL."""
    conf = workload.paths.api_conf.read_text()
    url = next(line for line in conf.splitlines() if line.startswith("connection = "))

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, stdout=url, stderr=f"OperationalError: {url}")

    monkeypatch.setattr("glance_charm.workload.glance.subprocess.run", run)
    monkeypatch.setattr(RecordingWorkload, "db_sync", GlanceWorkload.db_sync)


def test_full_lifecycle_leaks_no_secret(
    gh: GlanceHarness, sinks: Sinks, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = gh.harness
    statuses = []

    def step() -> None:
        statuses.append(gh.status())

    # install, TLS config, then every relation glance reads.
    gh.workload.version = None
    harness.charm.on.install.emit()
    harness.update_config({"ssl_key": TLS_KEY, "ssl_cert": TLS_CERT, "debug": True})
    step()
    db = gh.add_fixture("shared-db_mysql-router")
    ks = gh.add_fixture("identity-service_keystone")
    step()
    ceph = gh.relate_ceph(answer=True)
    gh.add_fixture("object-store_swift-proxy")
    gh.add_fixture("image-service_nova-cloud-controller")
    gh.add_fixture("amqp_rabbitmq-server")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert "ceph:rbd" in gh.conf()["DEFAULT"]["enabled_backends"]
    # rotation, garbage, invalid config, a lone TLS key, non-leader, failures.
    harness.update_relation_data(db, "glance-mysql-router/0", {"password": ROTATED_DB_PASSWORD})
    harness.update_relation_data(ks, "keystone/0", {"service_password": ROTATED_KEYSTONE_PASSWORD})
    step()
    harness.update_relation_data(db, "glance-mysql-router/0", {"password": BAD_PASSWORD})
    harness.update_relation_data(ks, "keystone/0", {"service_password": BAD_PASSWORD})
    step()
    harness.update_relation_data(db, "glance-mysql-router/0", {"password": ROTATED_DB_PASSWORD})
    harness.update_relation_data(ks, "keystone/0", {"service_password": ROTATED_KEYSTONE_PASSWORD})
    harness.update_config({"region": "bad region", "ssl_cert": ""})
    assert gh.status().message.startswith("Invalid config: ")
    harness.update_config({"region": "RegionOne", "ssl_cert": TLS_CERT})
    harness.update_relation_data(ceph, "ceph-mon/0", {"key": "AQ==\n[client.admin]"})
    step()
    gh.services.fail_on.add("restart")
    harness.update_relation_data(db, "glance-mysql-router/0", {"password": SECRETS[
        "shared-db password"]})
    step()
    gh.services.fail_on.clear()
    fail_db_sync_quoting_the_url(gh.workload, monkeypatch)
    peer = harness.model.get_relation("cluster")
    assert peer is not None
    harness.update_relation_data(peer.id, "glance", {"db-initialised": ""})
    gh.event()
    assert gh.status() == ops.BlockedStatus(
        "Database migration (glance-manage db_sync) failed; will retry")
    monkeypatch.undo()
    harness.set_leader(False)
    gh.event()
    step()
    harness.set_leader(True)
    # the other database endpoints, one at a time, the last one through a Juju secret.
    harness.remove_relation(db)
    legacy = gh.add_fixture("mysql-legacy_charmed-mysql")
    step()
    harness.remove_relation(legacy)
    client = gh.add_fixture("database_mysql_client_secrets")
    secret_id = harness.add_model_secret("mysql", {"username": "relation-9_abc",
                                                   "password": SECRET_DB_PASSWORD})
    harness.grant_secret(secret_id, "glance")
    harness.update_relation_data(client, "mysql", {"secret-user": secret_id})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert SECRET_DB_PASSWORD in gh.conf()["database"]["connection"]
    harness.remove_relation(client)
    client = gh.add_fixture("database_mysql_client")
    step()
    harness.remove_relation(ceph)
    step()

    assert len(sinks.statuses) > 10
    assert_no_leaks(gh, caplog, sinks)
    holding = assert_secret_files_private(gh)
    assert "etc/glance/glance-api.conf" in holding  # the scan does see the secrets
    assert "etc/glance/glance-swift.conf" in holding
    assert_owners_and_modes(gh)


def test_ceph_key_only_in_the_private_keyring(gh: GlanceHarness, sinks: Sinks,
                                             caplog: pytest.LogCaptureFixture) -> None:
    gh.relate_core()
    gh.relate_ceph(answer=True)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    holding = assert_secret_files_private(gh)
    assert "etc/ceph/ceph.client.glance.keyring" in holding
    assert "etc/ceph/ceph.conf" not in holding
    assert_owners_and_modes(gh)
    assert_no_leaks(gh, caplog, sinks)


def test_db_client_ca_is_public_but_holds_no_secret(gh: GlanceHarness) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("shared-db_mysql-router",
                   override={"ssl_ca": base64.b64encode(ca.encode()).decode()})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    path = gh.root / "etc/glance/db-client.ca"
    assert path.read_text() == ca and not leaks(ca)
    assert_secret_files_private(gh)
    assert_owners_and_modes(gh)


def test_secret_file_is_never_readable_by_others_while_written(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every write of a secret-holding file: the temp file is private before any byte."""
    from glance_charm.workload import files
    seen: list[tuple[str, int]] = []
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_IMODE(os.fstat(fd).st_mode)))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    gh.relate_core()
    gh.add_fixture("object-store_swift-proxy")
    gh.relate_ceph(answer=True)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert len(seen) >= 4
    for path, mode in seen:
        public = Path(path).name.startswith((".ceph.conf.", ".db-client.ca.", ".haproxy.cfg.",
                                                 ".memcached.conf."))
        assert mode & 0o007 == 0 or public, (path, oct(mode))
    assert any(".glance-api.conf." in path for path, _ in seen)
    assert any(".ceph.client.glance.keyring." in path for path, _ in seen)


def run_action(gh: GlanceHarness, name: str, params: dict[str, Any] | None = None) -> str:
    """Run an action; return everything it told the operator (results, logs, failure)."""
    from ops.testing import ActionFailed

    try:
        out = gh.harness.run_action(name, params or {})
    except ActionFailed as failed:
        output = failed.output
        return json.dumps({"failed": failed.message, "results": output.results,
                           "logs": output.logs})
    return json.dumps({"results": out.results, "logs": out.logs})


ACTIONS = ("security-checklist", "pause", "resume", "openstack-upgrade")


def test_action_outputs_leak_no_secret(gh: GlanceHarness, sinks: Sinks,
                                       caplog: pytest.LogCaptureFixture) -> None:
    import yaml

    declared = yaml.safe_load((Path(__file__).resolve().parents[2] / "actions.yaml").read_text())
    assert set(declared) == set(ACTIONS), "a new action: add it here"
    gh.harness.update_config({"ssl_key": TLS_KEY, "ssl_cert": TLS_CERT})
    gh.relate_core()
    gh.relate_ceph(answer=True)
    gh.add_fixture("object-store_swift-proxy")
    outputs = [run_action(gh, name) for name in ACTIONS]
    gh.harness.update_config({"action-managed-upgrade": True,
                              "openstack-origin": "cloud:jammy-antelope"})
    outputs.append(run_action(gh, "openstack-upgrade"))
    gh.services.fail_on.add("stop")
    outputs.append(run_action(gh, "pause"))
    gh.services.fail_on.clear()
    outputs.append(run_action(gh, "resume"))
    for output in outputs:
        assert not leaks(output), (leaks(output), output[:200])
    assert any("PASS" in output or "FAIL" in output for output in outputs)
    assert_no_leaks(gh, caplog, sinks)


# ---- model reprs --------------------------------------------------------------------------
def context(gh: GlanceHarness) -> GlanceContext:
    return GlanceContext.from_charm(gh.charm, GlanceConfig.from_mapping(gh.charm.config),
                                    gh.charm.reconciler.remembered())


def model_texts(model: Any) -> list[str]:
    return [repr(model), str(model), model.model_dump_json(), f"{model}", f"{model!r}"]


@pytest.fixture
def related(gh: GlanceHarness) -> GlanceHarness:
    gh.relate_core()
    gh.relate_ceph(answer=True)
    gh.add_fixture("object-store_swift-proxy")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    return gh


def test_context_models_hide_relation_secrets(related: GlanceHarness) -> None:
    ctx = context(related)
    assert isinstance(ctx.database, DatabaseInfo)
    assert isinstance(ctx.identity, IdentityCredentials)
    assert ctx.ceph is not None
    for model in (ctx, ctx.database, ctx.identity, ctx.ceph):
        for text in model_texts(model):
            found = [name for name in leaks(text) if not name.startswith("TLS")]
            assert not found, (type(model).__name__, found)
    # ... while the values themselves are there for the templates.
    assert ctx.database.password.get_secret_value() == SECRETS["shared-db password"]
    assert ctx.identity.password.get_secret_value() == SECRETS["keystone service_password"]
    assert ctx.ceph.key.get_secret_value() == SECRETS["cephx key"]


def test_ceph_relation_data_model_hides_the_key(related: GlanceHarness) -> None:
    relation = related.harness.model.get_relation("ceph")
    assert relation is not None
    data = ceph_relation.read(relation, "glance/0", "any-request-id")
    assert data is not None
    for text in model_texts(data):
        assert SECRETS["cephx key"] not in text


def test_exceptions_from_bad_models_do_not_quote_secrets() -> None:
    """A ValidationError's text (which pydantic fills with the input) hides SecretStr."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        DatabaseInfo(endpoint="shared-db", host="bad host/x", user="glance",
                     password=BAD_PASSWORD, name="glance")  # type: ignore[arg-type]
    assert not leaks(str(err.value)) and not leaks(repr(err.value.errors()))
    with pytest.raises(ValidationError) as err:
        IdentityCredentials(auth_url="x", www_authenticate_uri="y", username="",
                            password=BAD_PASSWORD, project_name="p",  # type: ignore[arg-type]
                            project_domain_name="d", user_domain_name="d")
    assert not leaks(str(err.value))


def test_context_and_config_hide_the_tls_key(gh: GlanceHarness) -> None:
    gh.harness.update_config({"ssl_key": TLS_KEY, "ssl_cert": TLS_CERT})
    gh.relate_core()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    ctx = context(gh)
    for model in (ctx, ctx.config):
        for text in model_texts(model):
            assert TLS_KEY not in text, type(model).__name__

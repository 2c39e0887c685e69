"""The three database endpoints, with every provider INTERFACES.md describes."""

from __future__ import annotations

import base64

import ops
import pytest

from tests.unit.conftest import GlanceHarness

CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


@pytest.fixture
def keystone(gh: GlanceHarness) -> GlanceHarness:
    gh.add_fixture("identity-service_keystone")
    return gh


def connection(gh: GlanceHarness) -> str:
    return str(gh.conf()["database"]["connection"])


# ---- shared-db -----------------------------------------------------------------------------
def test_shared_db_request_published(keystone: GlanceHarness) -> None:
    rel = keystone.harness.add_relation("shared-db", "mysql-router")
    bag = keystone.harness.get_relation_data(rel, "glance/0")
    assert bag == {"database": "glance", "username": "glance", "hostname": "10.5.0.100"}
    keystone.harness.update_config({"database": "images", "database-user": "img"})
    bag = keystone.harness.get_relation_data(rel, "glance/0")
    assert (bag["database"], bag["username"]) == ("images", "img")


def test_shared_db_lifecycle(keystone: GlanceHarness) -> None:
    gh = keystone
    rel = gh.harness.add_relation("shared-db", "mysql-router")
    gh.harness.add_relation_unit(rel, "mysql-router/0")
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")
    gh.harness.update_relation_data(rel, "mysql-router/0", {"db_host": "127.0.0.1"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")
    assert not gh.conf_path.exists()
    gh.harness.update_relation_data(rel, "mysql-router/0", {
        "password": "pw1", "allowed_units": "glance/0", "db_port": "3306"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert connection(gh) == "mysql+pymysql://glance:pw1@127.0.0.1/glance"
    gh.harness.update_relation_data(rel, "mysql-router/0", {"password": "pw2"})
    assert connection(gh) == "mysql+pymysql://glance:pw2@127.0.0.1/glance"
    assert gh.services.count("restart") == 2
    gh.harness.remove_relation_unit(rel, "mysql-router/0")
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")
    assert connection(gh).endswith("pw2@127.0.0.1/glance")  # last good config stays


def test_shared_db_percona_vip_without_port(keystone: GlanceHarness) -> None:
    rel = keystone.harness.add_relation("shared-db", "percona-cluster")
    keystone.harness.add_relation_unit(rel, "percona-cluster/0")
    keystone.harness.update_relation_data(rel, "percona-cluster/0", {
        "db_host": "10.5.100.10", "password": "p@ss/w:rd", "allowed_units": "glance/0 glance/1",
    })
    assert connection(keystone) == "mysql+pymysql://glance:p%40ss%2Fw%3Ard@10.5.100.10/glance"


def test_shared_db_charmed_mysql_app_bag(keystone: GlanceHarness) -> None:
    rel = keystone.harness.add_relation("shared-db", "mysql")
    keystone.harness.add_relation_unit(rel, "mysql/0")
    data = {"db_host": "10.5.0.42", "db_port": "3306", "password": "pw",
            "allowed_units": "glance/0"}
    keystone.harness.update_relation_data(rel, "mysql", data)
    assert connection(keystone) == "mysql+pymysql://glance:pw@10.5.0.42/glance"


def test_shared_db_unit_not_allowed_waits(keystone: GlanceHarness) -> None:
    keystone.add_fixture("shared-db_mysql-router", override={"allowed_units": "glance/1"})
    assert keystone.status() == ops.WaitingStatus("Incomplete relations: database")
    assert not keystone.conf_path.exists()


def test_shared_db_ipv6_host_and_custom_port(keystone: GlanceHarness) -> None:
    keystone.add_fixture("shared-db_mysql-router", override={"db_host": "fd00::5",
                                                            "db_port": "3307"})
    assert connection(keystone) == "mysql+pymysql://glance:ps79JWXDmmgPW4Ro51g9BBV4yaFFqDBD@[fd00::5]:3307/glance"


def test_shared_db_ssl_ca(keystone: GlanceHarness) -> None:
    keystone.add_fixture("shared-db_mysql-router",
                         override={"ssl_ca": base64.b64encode(CA.encode()).decode()})
    assert connection(keystone).endswith("/glance?ssl_ca=/etc/glance/db-client.ca")
    assert (keystone.root / "etc/glance/db-client.ca").read_text() == CA


@pytest.mark.parametrize("bad", [
    {"db_host": "host with space"}, {"db_host": "evil/path"}, {"db_port": "abc"},
    {"password": "line\nbreak"}, {"allowed_units": "[not json"},
])
def test_shared_db_garbage_is_incomplete_not_crash(keystone: GlanceHarness, bad: dict) -> None:
    keystone.add_fixture("shared-db_mysql-router", override=bad)
    status = keystone.status()
    assert isinstance(status, ops.WaitingStatus | ops.ActiveStatus)
    if isinstance(status, ops.WaitingStatus):
        assert not keystone.conf_path.exists()


# ---- database (mysql_client) ----------------------------------------------------------------
def test_mysql_client_request_is_v0(keystone: GlanceHarness) -> None:
    rel = keystone.harness.add_relation("database", "mysql")
    bag = keystone.harness.get_relation_data(rel, "glance")
    assert bag["database"] == "glance"
    assert "username" in bag["requested-secrets"]


def test_mysql_client_plain_credentials(keystone: GlanceHarness) -> None:
    keystone.add_fixture("database_mysql_client")
    assert connection(keystone) == (
        "mysql+pymysql://relation-12_3f6ab1c27d1e4a:Z1bmdPq8rT0xWvY5kLs2Hc9N@10.5.0.42/glance"
    )


def test_mysql_client_secret_credentials(keystone: GlanceHarness) -> None:
    gh = keystone
    rel = gh.harness.add_relation("database", "mysql")
    gh.harness.add_relation_unit(rel, "mysql/0")
    secret_id = gh.harness.add_model_secret("mysql", {"username": "relation-5_abc",
                                                     "password": "s3cret"})
    gh.harness.grant_secret(secret_id, "glance")
    gh.harness.update_relation_data(rel, "mysql", {
        "database": "glance", "endpoints": "10.5.0.42:3306", "secret-user": secret_id})
    assert connection(gh) == "mysql+pymysql://relation-5_abc:s3cret@10.5.0.42/glance"
    gh.harness.set_secret_content(secret_id, {"username": "relation-5_abc", "password": "rot"})
    gh.harness.trigger_secret_rotation  # noqa: B018 - API exists; content change is the event
    gh.harness.charm.on.secret_changed.emit(secret_id, None)
    assert connection(gh) == "mysql+pymysql://relation-5_abc:rot@10.5.0.42/glance"


def test_mysql_client_unreadable_secret_waits(keystone: GlanceHarness) -> None:
    rel = keystone.harness.add_relation("database", "mysql")
    keystone.harness.update_relation_data(rel, "mysql", {
        "endpoints": "10.5.0.42:3306", "secret-user": "secret://nope/cv1missing"})
    assert keystone.status() == ops.WaitingStatus("Incomplete relations: database")


def test_mysql_client_non_default_port(keystone: GlanceHarness) -> None:
    keystone.add_fixture("database_mysql_client", override={})
    rel = keystone.harness.model.get_relation("database")
    assert rel is not None
    keystone.harness.update_relation_data(rel.id, "mysql", {"endpoints": "10.5.0.42:6446"})
    assert "@10.5.0.42:6446/glance" in connection(keystone)


@pytest.mark.parametrize(("endpoints", "expected"), [
    ("db1", ("db1", None)), ("db1:3306,db2:3306", ("db1", 3306)),
    ("10.5.0.42:6446", ("10.5.0.42", 6446)), ("[fd00::1]:3307", ("fd00::1", 3307)),
    ("[fd00::1]", ("fd00::1", None)),
    (":", None), (":3306", None), ("db1:", None), ("db1:x", None), ("db1: 3306", None),
    ("db1:3306:1", None), ("fd00::1", None), ("[fd00::1", None), ("[fd00::1]x", None),
    ("[fd00::1]:", None), ("[db1]:3306", None),
])
def test_mysql_client_endpoint_parsing(endpoints: str, expected: object) -> None:
    from glance_charm.relations import mysql_client

    assert mysql_client._primary(endpoints) == expected


# ---- db (legacy mysql) ----------------------------------------------------------------------
def test_legacy_charmed_mysql(keystone: GlanceHarness) -> None:
    keystone.add_fixture("mysql-legacy_charmed-mysql")
    assert connection(keystone) == (
        "mysql+pymysql://relation-7:RNe0SfkhKht0od5A1Plq8WOC@10.5.0.42/database-7"
    )


def test_legacy_classic_mysql_without_port_or_root_password(keystone: GlanceHarness) -> None:
    rel = keystone.harness.add_relation("db", "mysql")
    keystone.harness.add_relation_unit(rel, "mysql/0")
    keystone.harness.update_relation_data(rel, "mysql/0", {
        "database": "glance", "user": "eiPh4", "password": "ahV3", "host": "10.5.0.9",
        "slave": "False"})
    assert connection(keystone) == "mysql+pymysql://eiPh4:ahV3@10.5.0.9/glance"
    keystone.harness.update_relation_data(rel, "mysql/0", {"password": ""})
    assert keystone.status() == ops.WaitingStatus("Incomplete relations: database")


def test_legacy_bad_port(keystone: GlanceHarness) -> None:
    keystone.add_fixture("mysql-legacy_charmed-mysql", override={"port": "x"})
    assert keystone.status() == ops.WaitingStatus("Incomplete relations: database")


# ---- more than one ----------------------------------------------------------------------------
def test_two_database_relations_block(keystone: GlanceHarness) -> None:
    keystone.add_fixture("shared-db_mysql-router")
    before = keystone.conf_path.read_bytes()
    keystone.add_fixture("database_mysql_client")
    assert keystone.status() == ops.BlockedStatus(
        "Multiple database relations: database, shared-db"
    )
    assert keystone.conf_path.read_bytes() == before


def test_switching_database_reruns_db_sync(keystone: GlanceHarness) -> None:
    rel = keystone.add_fixture("shared-db_mysql-router")
    keystone.harness.remove_relation(rel)
    keystone.add_fixture("database_mysql_client")
    assert keystone.workload.db_syncs == 2


# ---- ops-lib-mysql as the reference for the legacy interface ---------------------------------
def test_legacy_adapter_agrees_with_ops_lib_mysql() -> None:
    """Where ops-lib-mysql reports a database, the adapter reads the very same values."""
    from opslib.mysql import _MySQLConnectionDetails

    from glance_charm.relations import mysql_legacy
    from tests.fixtures import load

    harness: ops.testing.Harness[ops.CharmBase] = ops.testing.Harness(
        ops.CharmBase, meta="name: c\nrequires:\n  db:\n    interface: mysql\n")
    fixture = load("mysql-legacy_charmed-mysql")
    rel = harness.add_relation("db", "mysql")
    harness.add_relation_unit(rel, "mysql/0")
    harness.update_relation_data(rel, "mysql/0", fixture["remote_units_data"]["mysql/0"])
    harness.begin()
    relation = harness.model.get_relation("db")
    assert relation is not None
    reference = _MySQLConnectionDetails(relation, harness.model.get_unit("mysql/0"))
    ours = mysql_legacy.read(relation)
    assert reference.is_available and ours is not None
    assert (ours.host, ours.port or 3306, ours.user, ours.name) == (
        reference.host, reference.port, reference.user, reference.database)
    assert ours.password.get_secret_value() == reference.password
    # Where the library gives up or raises, the adapter still answers without raising:
    harness.update_relation_data(rel, "mysql/0", {"port": "x"})
    with pytest.raises(ValueError):
        _MySQLConnectionDetails(relation, harness.model.get_unit("mysql/0"))
    assert mysql_legacy.read(relation) is None
    harness.update_relation_data(rel, "mysql/0", {"port": "", "root_password": ""})
    assert not _MySQLConnectionDetails(relation, harness.model.get_unit("mysql/0")).is_available
    assert mysql_legacy.read(relation) is not None
    harness.cleanup()


# ---- the shared host check (models.valid_host) -------------------------------------------
@pytest.mark.parametrize("host", [
    "10.5.0.42", "fd00::1", "::ffff:10.0.0.1", "db1", "db-1.example.com", "Z9.maas.",
    "a" * 63, ".".join(["a" * 63] * 3) + "." + "a" * 61,
])
def test_valid_host_accepts_addresses_and_names(host: str) -> None:
    from glance_charm.domain.models import valid_host

    assert valid_host(host) == host


@pytest.mark.parametrize("host", [
    "", " db1", "db1:3306", "[fd00::1]", "[fd00::1", "1:2", "a b", "a/b", "a@b", "a?b",
    "a#b", "a%b", "-db", "db-", "a..b", ".", "1.2.3", "010.0.0.1", "fe80::1%eth0", "ü",
    "a" * 64, ".".join(["a" * 63] * 4), "db_1",
])
def test_valid_host_rejects_anything_else(host: str) -> None:
    from glance_charm.domain.models import valid_host

    with pytest.raises(ValueError):
        valid_host(host)


def test_valid_host_normalize_strips_brackets_and_blanks() -> None:
    from glance_charm.domain.models import valid_host

    assert valid_host(" [FD00::0001] ", normalize=True) == "fd00::1"
    assert valid_host(" juju-x-10.lxd ", normalize=True) == "juju-x-10.lxd"


def test_valid_host_does_not_backtrack_on_long_garbage() -> None:
    """The old one-pattern check took seconds at 25 characters, minutes at 30."""
    import time

    from glance_charm.domain.models import valid_host

    start = time.monotonic()
    for length in (30, 250, 100_000):
        with pytest.raises(ValueError):
            valid_host("a" * length + "!")
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("name", ["my db", "a%41", "a/b", "a?b", "ü"])
def test_database_name_that_needs_quoting_is_refused(name: str) -> None:
    from pydantic import ValidationError

    from glance_charm.domain.models import DatabaseInfo

    with pytest.raises(ValidationError):
        DatabaseInfo(endpoint="db", host="db1", user="glance",
                     password="pw", name=name)  # type: ignore[arg-type]

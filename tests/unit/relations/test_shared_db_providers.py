"""shared-db with the bags real providers leave behind: leader changes, grants, access-network."""

from __future__ import annotations

import ops
import pytest

from glance_charm.reconcile.reconciler import DB_NOT_GRANTED
from glance_charm.state import network
from tests.unit.conftest import GlanceHarness


def connection(gh: GlanceHarness) -> str:
    return str(gh.conf()["database"]["connection"])


def test_charmed_mysql_after_leader_change_uses_the_app_bag(gh: GlanceHarness) -> None:
    """A former leader's unit bag without this unit must not hide the app bag that grants it.

    Follows canonical/mysql-operator src/relations/shared_db.py: the leader writes
    `db_host`/`password`/`allowed_units` to the app bag and its own unit bag; a former
    leader's unit bag keeps what it wrote then, and the new leader's unit bag is synced
    only by a (deferred) leader-elected. Classic glance: openstack/charm-glance
    hooks/glance_relations.py db_changed checks `local_unit() in allowed_units.split()`.
    """
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("shared-db_charmed-mysql-stale-leader")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert connection(gh) == "mysql+pymysql://glance:Wq8dPz3LmN5vRt7YbC2xKf9H@10.5.0.43/glance"
    assert gh.workload.db_syncs == 1


def test_percona_after_leader_change_uses_the_bag_that_grants_this_unit(
    gh: GlanceHarness,
) -> None:
    """percona-cluster/0 (former leader) lists only glance/1; percona-cluster/1 grants glance/0.

    Follows openstack/charm-percona-cluster hooks/percona_hooks.py (shared_db_changed's
    peer_store_and_set on the leader; clear_and_populate_client_db_relations refreshes a
    non-leader's bag only in its own next hook).
    """
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("shared-db_percona-cluster-stale-leader")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert connection(gh) == "mysql+pymysql://glance:hF3kT9qWz2VxN8mLpR4sYc6B@10.5.100.10/glance"
    assert gh.workload.db_syncs == 1


def test_stale_bag_alone_is_not_used(gh: GlanceHarness) -> None:
    """Only the former leader's bag (not listing this unit): wait, write nothing.

    Follows openstack/charm-percona-cluster hooks/percona_hooks.py (allowed_units lists
    the units granted on the database, unit_sorted, space-separated).
    """
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("shared-db_percona-cluster-stale-leader", units=1)
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")
    assert not gh.conf_path.exists()
    assert gh.workload.db_syncs == 0


def test_leader_does_not_migrate_before_the_provider_grants_it(gh: GlanceHarness) -> None:
    """mysql-router sends db_host/password before the cluster lists its unit: no db_sync yet.

    Follows openstack/charm-glance hooks/glance_relations.py db_changed (the leader runs
    migrate_database only when `local_unit() in allowed_units.split()`, else logs
    "allowed_units either not presented, or local unit not in acl list") and
    openstack/charm-mysql-router src/lib/charm/openstack/mysql_router.py
    proxy_db_and_user_responses (allowed_units=None until granted).
    """
    gh.add_fixture("identity-service_keystone")
    rel = gh.add_fixture("shared-db_mysql-router-not-granted")
    assert gh.status() == ops.WaitingStatus(DB_NOT_GRANTED)
    assert gh.workload.db_syncs == 0
    assert gh.services.count("restart") == 0 and gh.services.count("start") == 0
    gh.harness.update_relation_data(rel, "glance-mysql-router/0", {"allowed_units": "glance/0"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.workload.db_syncs == 1


def test_non_leader_with_leaders_record_serves_without_a_grant_list(gh: GlanceHarness) -> None:
    """A non-leader never migrates: it follows the leader's record, granted or not.

    Follows openstack/charm-glance hooks/glance_relations.py db_changed (only
    is_elected_leader checks allowed_units; every unit writes glance-api.conf).
    """
    gh.add_fixture("identity-service_keystone")
    rel = gh.add_fixture("shared-db_mysql-router")
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    gh.harness.set_leader(False)
    gh.harness.update_relation_data(rel, "glance-mysql-router/0", {"allowed_units": ""})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.workload.db_syncs == 1


# ---- access-network (percona-cluster) -----------------------------------------------------
ACCESS_ADDRESS = "10.20.0.7"  # this unit's NIC on percona's access-network 10.20.0.0/24


def machine_nics(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    """The machine's NICs as `ip -j addr show` reports them (parsed by the real code)."""
    interfaces = [{"ifname": f"eth{index}", "addr_info": [
        {"family": "inet6" if ":" in address else "inet", "local": address, "prefixlen": 24}
    ]} for index, address in enumerate(addresses)]
    monkeypatch.setattr(network, "local_addresses",
                        lambda: network.nic_addresses(interfaces), raising=False)


def test_access_network_resends_hostname_inside_it(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Percona sends access-network: glance re-sends `hostname` with its address there.

    Follows openstack/charm-glance hooks/glance_relations.py db_joined (hostname =
    get_relation_ip('shared-db', cidr_network=access_network)), juju/charm-helpers
    charmhelpers/contrib/network/ip.py get_relation_ip / get_address_in_network, and
    openstack/charm-percona-cluster hooks/percona_hooks.py shared_db_changed (a hostname
    outside access-network is ignored).
    """
    machine_nics(monkeypatch, "10.5.0.100", ACCESS_ADDRESS, "fe80::1")
    gh.add_fixture("identity-service_keystone")
    rel = gh.add_fixture("shared-db_percona-cluster-access-network")
    bag = gh.harness.get_relation_data(rel, "glance/0")
    assert bag["hostname"] == ACCESS_ADDRESS
    assert (bag["database"], bag["username"]) == ("glance", "glance")
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")


def test_no_access_network_keeps_the_binding_address(
    gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without access-network (or with no NIC inside it) the shared-db binding's address.

    Follows juju/charm-helpers charmhelpers/contrib/network/ip.py get_relation_ip
    (network_get_primary_address, the fallback of get_address_in_network).
    """
    machine_nics(monkeypatch, "10.5.0.100")
    gh.add_fixture("identity-service_keystone")
    rel = gh.add_fixture("shared-db_percona-cluster-access-network")
    assert gh.harness.get_relation_data(rel, "glance/0")["hostname"] == "10.5.0.100"
    gh.harness.update_relation_data(rel, "percona-cluster/0", {"access-network": ""})
    assert gh.harness.get_relation_data(rel, "glance/0")["hostname"] == "10.5.0.100"

"""nrpe-external-master: check files, nagios exports and `monitors` as the nrpe charm reads them.

Contract: charmhelpers `contrib/charmsupport/nrpe.py` (`Check.write`, `write_service_config`,
`NRPE.write`, `get_nagios_hostname`, `get_nagios_unit_name`), used by the classic charm's
`hooks/glance_relations.py` `update_nrpe_config` (openstack/charm-glance), and the nrpe charm
that reads them (canonical/charm-nrpe `hooks/nrpe_helpers.py`: `PrincipalRelation.provide_data`
sends `nagios_hostname`/`nagios_host_context`, `get_monitors` reads the `monitors` YAML).
"""

from __future__ import annotations

import ops
import pytest
import yaml

from glance_charm.workload.nrpe import Check, NrpeWorkload, check_file
from tests.unit.conftest import FakeServices, GlanceHarness

CHECKS = {
    "glance-api": "/usr/lib/nagios/plugins/check_procs -c 1: -C glance-api",
    "haproxy": "/usr/lib/nagios/plugins/check_procs -c 1: -C haproxy",
    "glance-api_http": "/usr/lib/nagios/plugins/check_http -I 10.5.0.100 -p 9282"
                       " -u /healthcheck -e 200",
    "haproxy_http": "/usr/lib/nagios/plugins/check_http -I 10.5.0.100 -p 9292"
                    " -u /healthcheck -e 200",
}


def nrpe_dirs(gh: GlanceHarness, export: bool = True) -> None:
    """What installing nagios-nrpe-server (the nrpe subordinate) leaves on the machine."""
    (gh.root / "etc/nagios/nrpe.d").mkdir(parents=True, exist_ok=True)
    if export:
        (gh.root / "var/lib/nagios/export").mkdir(parents=True, exist_ok=True)


def relate_nrpe(gh: GlanceHarness, data: dict[str, str] | None = None) -> int:
    rel = gh.harness.add_relation("nrpe-external-master", "nrpe")
    gh.harness.add_relation_unit(rel, "nrpe/0")
    sent = {"nagios_hostname": "juju-glance-0", "nagios_host_context": "juju",
            "ingress-address": "10.5.0.100"} if data is None else data
    gh.harness.update_relation_data(rel, "nrpe/0", sent)
    return rel


def command_lines(gh: GlanceHarness) -> dict[str, str]:
    lines = {}
    for path in sorted((gh.root / "etc/nagios/nrpe.d").glob("check_*.cfg")):
        for line in path.read_text().splitlines():
            if line.startswith("command["):
                name, _, command = line.partition("]=")
                assert path.name == f"{name[len('command['):]}.cfg"
                lines[name[len("command[check_"):]] = command
    return lines


def test_checks_written_for_the_nrpe_subordinate(gh: GlanceHarness) -> None:
    nrpe_dirs(gh)
    gh.relate_core()
    rel = relate_nrpe(gh)
    assert command_lines(gh) == CHECKS
    for name in CHECKS:
        path = gh.root / f"etc/nagios/nrpe.d/check_{name}.cfg"
        assert path.stat().st_mode & 0o777 == 0o644
        export = gh.root / f"var/lib/nagios/export/service__juju-glance-0_check_{name}.cfg"
        text = export.read_text()
        assert "    host_name                       juju-glance-0\n" in text
        assert f"    check_command                   check_nrpe!check_{name}\n" in text
        assert "    servicegroups                   juju\n" in text  # nagios_context
    api = (gh.root / "var/lib/nagios/export/service__juju-glance-0_check_glance-api.cfg")
    assert "juju-glance-0[glance-api] process check {juju:glance/0}" in api.read_text()
    sent = gh.harness.get_relation_data(rel, gh.charm.unit.name)
    assert sent["primary"] == "True"
    assert yaml.safe_load(sent["monitors"]) == {"monitors": {"remote": {"nrpe": {
        name: {"command": f"check_{name}"} for name in CHECKS
    }}}}
    restarts = gh.services.count("restart", "nagios-nrpe-server")
    assert restarts >= 1
    gh.harness.charm.on.config_changed.emit()  # nothing changed: nrpe keeps running
    assert gh.services.count("restart", "nagios-nrpe-server") == restarts
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_checks_are_written_while_glance_still_waits(gh: GlanceHarness) -> None:
    """Classic config-changed writes them too: nagios shows glance down, not unmonitored."""
    nrpe_dirs(gh)
    relate_nrpe(gh)
    assert set(command_lines(gh)) == set(CHECKS)
    assert isinstance(gh.status(), ops.BlockedStatus)  # missing database, identity


def test_servicegroups_and_context(gh: GlanceHarness) -> None:
    nrpe_dirs(gh)
    gh.relate_core()
    relate_nrpe(gh, {"ingress-address": "10.5.0.100"})  # an nrpe that sent no host name
    export = gh.root / "var/lib/nagios/export"
    assert (export / "service__juju-glance-0_check_haproxy.cfg").exists()
    gh.harness.update_config({"nagios_context": "prod", "nagios_servicegroups": "glance, ops"})
    assert not list(export.glob("service__juju-glance-0_*"))  # the old host's exports go
    text = (export / "service__prod-glance-0_check_haproxy.cfg").read_text()
    assert "    servicegroups                   glance,ops\n" in text
    check = (gh.root / "etc/nagios/nrpe.d/check_haproxy.cfg").read_text()
    assert "# servicegroups: glance,ops\n" in check


@pytest.mark.parametrize(("option", "value"), [
    ("nagios_context", "my context"),
    ("nagios_context", "../etc"),
    ("nagios_servicegroups", "a,b c"),
    ("nagios_servicegroups", "ops;rm"),
])
def test_bad_nagios_option_blocks_naming_it(gh: GlanceHarness, option: str, value: str) -> None:
    nrpe_dirs(gh)
    gh.relate_core()
    relate_nrpe(gh)
    before = command_lines(gh)
    gh.harness.update_config({option: value})
    status = gh.status()
    assert isinstance(status, ops.BlockedStatus)
    assert option in status.message
    assert command_lines(gh) == before  # the last good checks stay


def test_bad_hostname_from_the_subordinate_blocks(gh: GlanceHarness) -> None:
    nrpe_dirs(gh)
    gh.relate_core()
    relate_nrpe(gh, {"nagios_hostname": "../../etc/cron.d/x"})
    assert gh.status() == ops.BlockedStatus("nrpe-external-master: invalid nagios_hostname")
    exports = sorted(p.name for p in (gh.root / "var/lib/nagios/export").iterdir())
    # what relation-created wrote (the default host name) stays; nothing lands elsewhere
    assert exports == sorted(f"service__juju-glance-0_check_{name}.cfg" for name in CHECKS)
    assert not (gh.root / "etc/cron.d").exists()
    assert command_lines(gh) == CHECKS


def test_relation_removed_removes_only_the_charms_checks(gh: GlanceHarness) -> None:
    nrpe_dirs(gh)
    gh.relate_core()
    rel = relate_nrpe(gh)
    other = gh.root / "etc/nagios/nrpe.d/check_disk_root.cfg"  # the nrpe charm's own
    other.write_text("command[check_disk_root]=/usr/lib/nagios/plugins/check_disk -p /\n")
    gh.harness.remove_relation(rel)
    assert command_lines(gh) == {"disk_root": "/usr/lib/nagios/plugins/check_disk -p /"}
    assert not list((gh.root / "var/lib/nagios/export").iterdir())
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_nothing_written_before_nrpe_is_installed(gh: GlanceHarness) -> None:
    """As charmhelpers NRPE.write: no nrpe.d, nothing to write (the next hook writes it)."""
    gh.relate_core()
    relate_nrpe(gh)
    assert not (gh.root / "etc/nagios").exists()
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_tls_frontend_check_speaks_https(tmp_path) -> None:
    from glance_charm.workload.nrpe import glance_checks

    checks = {c.shortname: c for c in glance_checks(
        "glance/0", backend=(None, 9282), frontend=("::", 9292), tls=True, ipv6=True)}
    assert checks["haproxy_http"].argv == (
        "check_http", "-I", "::1", "-p", "9292", "-u", "/healthcheck", "-e", "200", "--ssl")
    assert checks["glance-api_http"].argv[2] == "::1"


def test_plugin_found_in_local_dir_and_args_quoted(tmp_path) -> None:
    from glance_charm.workload.files import RootedPaths

    plugin = tmp_path / "usr/local/lib/nagios/plugins/check_x"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("")
    workload = NrpeWorkload(paths=RootedPaths(tmp_path), services=FakeServices())  # type: ignore[arg-type]
    check = Check("x", "d", ("check_x", "a b", "$(id)"))
    assert workload.command_line(check) == "/usr/local/lib/nagios/plugins/check_x 'a b' '$(id)'"


def test_no_restart_when_unchanged_or_asked_not_to(tmp_path) -> None:
    from glance_charm.workload.files import RootedPaths

    (tmp_path / "etc/nagios/nrpe.d").mkdir(parents=True)
    services = FakeServices()
    workload = NrpeWorkload(paths=RootedPaths(tmp_path), services=services)  # type: ignore[arg-type]
    check = Check("x", "d", ("check_x",))
    assert workload.ensure([check], "h", "g", restart=False)
    assert services.calls == []
    assert not workload.ensure([check], "h", "g")
    assert services.calls == []


@pytest.mark.parametrize("shortname", ["", "a b", "a/b"])
def test_bad_shortname_refused(shortname: str) -> None:
    with pytest.raises(ValueError, match="shortname"):
        Check(shortname, "d", ("check_x",))


def test_check_file_matches_charmhelpers_layout() -> None:
    """The bytes charmhelpers `Check.write` writes, after the charm's ownership marker."""
    check = Check("haproxy", "d", ("check_procs",))
    text = check_file(check, "ops", "/usr/lib/nagios/plugins/check_procs").decode()
    assert text.splitlines()[1:] == [
        "# check haproxy",
        "# The following header was added automatically by juju",
        "# Modifying it will affect nagios monitoring and alerting",
        "# servicegroups: ops",
        "command[check_haproxy]=/usr/lib/nagios/plugins/check_procs",
    ]

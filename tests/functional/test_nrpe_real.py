"""Issue 14 (nrpe-external-master) on the real stack: every rendered check runs, OK then CRITICAL.

The nrpe subordinate is played as it installs nrpe (Debian's nagios-nrpe-server, which
creates /etc/nagios/nrpe.d) and the plugins (monitoring-plugins-basic), then relates. Each
`command[...]=` line the charm wrote (charmhelpers contrib/charmsupport/nrpe.py format, as
the classic charm's update_nrpe_config) is executed as nrpe would: with glance-api running
all report OK (exit 0); with glance-api stopped the glance-api checks and the check
through haproxy report CRITICAL (exit 2) while haproxy's process check stays OK.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import ops
import pytest

from tests.functional import realstack
from tests.functional.driver import GlanceStack

PACKAGES = ("nagios-nrpe-server", "monitoring-plugins-basic")
NRPE_D = Path("/etc/nagios/nrpe.d")
OK, CRITICAL = 0, 2


def commands() -> dict[str, str]:
    """Map each check name to its command line, from the files the charm wrote."""
    found = {}
    for path in sorted(NRPE_D.glob("check_*.cfg")):
        for line in path.read_text().splitlines():
            if line.startswith("command["):
                name, _, command = line.partition("]=")
                found[name.removeprefix("command[")] = command
    return found


def run_all() -> dict[str, tuple[int, str]]:
    results = {}
    for name, command in commands().items():
        done = subprocess.run(shlex.split(command), capture_output=True, text=True,
                              timeout=30, check=False)
        results[name] = (done.returncode, done.stdout.strip().splitlines()[0]
                         if done.stdout.strip() else done.stderr.strip())
    return results


@pytest.fixture
def nrpe(stack: GlanceStack) -> Iterator[int]:
    assert stack.harness is not None
    realstack.install_packages(extra=PACKAGES)
    assert NRPE_D.is_dir()
    rel = stack.harness.add_relation("nrpe-external-master", "nrpe")
    stack.harness.add_relation_unit(rel, "nrpe/0")
    stack.harness.update_relation_data(rel, "nrpe/0", {"nagios_hostname": "juju-glance-0"})
    try:
        yield rel
    finally:
        if stack.harness.model.get_relation("nrpe-external-master") is not None:
            stack.harness.remove_relation(rel)
        subprocess.run(["service", "nagios-nrpe-server", "stop"], capture_output=True,
                       check=False)


def test_checks_ok_then_critical_with_glance_api_stopped(stack: GlanceStack, nrpe: int) -> None:
    assert stack.harness is not None
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    names = set(commands())
    assert names == {"check_glance-api", "check_haproxy", "check_glance-api_http",
                     "check_haproxy_http"}
    stack.wait_healthy()
    healthy = run_all()
    print(f"\nnrpe, glance-api running: {healthy}")
    assert {name: code for name, (code, _) in healthy.items()} == dict.fromkeys(names, OK)

    subprocess.run(["service", "glance-api", "stop"], check=True, capture_output=True)
    try:
        assert not stack.glance_pids()
        down = run_all()
        print(f"nrpe, glance-api stopped: {down}")
        assert {name: code for name, (code, _) in down.items()} == {
            "check_glance-api": CRITICAL, "check_glance-api_http": CRITICAL,
            "check_haproxy_http": CRITICAL, "check_haproxy": OK}
    finally:
        stack.harness.charm.on.update_status.emit()  # the charm starts glance-api again
    stack.wait_healthy()
    again = run_all()
    assert {name: code for name, (code, _) in again.items()} == dict.fromkeys(names, OK)
    stack.harness.remove_relation(nrpe)
    assert not list(NRPE_D.glob("check_*.cfg"))  # the charm's checks go with the relation

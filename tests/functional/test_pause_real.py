"""Issue 13 item 9 on the real stack: pause keeps Debian's glance-api and haproxy down.

SysV init here (no systemd): `pause` stops both services and runs the real `update-rc.d
NAME disable` (no S link left to start them at boot); a start after a "reboot" (the init
script run by hand, as the boot would) is undone by the `start` hook; `resume` restores the
links and glance-api answers again. Follows charmhelpers charmhelpers/core/host.py
service_pause / service_resume.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import ops

from tests.functional.driver import GlanceStack

SERVICES = ("glance-api", "haproxy")


def start_links(name: str) -> list[str]:
    return sorted(f"{d.name}/{link.name}" for d in Path("/etc").glob("rc?.d")
                  for link in d.iterdir() if link.name[3:] == name and link.name[0] == "S")


def test_pause_survives_a_reboot_and_resume_serves_again(stack: GlanceStack) -> None:
    assert stack.harness is not None
    assert stack.status() == ops.ActiveStatus("Unit is ready")
    links = {name: start_links(name) for name in SERVICES}
    assert all(links.values())
    try:
        stack.harness.run_action("pause")
        assert stack.glance_pids() == set()
        assert not stack.harness.charm.haproxy.is_running()
        assert {name: start_links(name) for name in SERVICES} == {n: [] for n in SERVICES}
        for name in SERVICES:  # what a boot with the old links (or an operator) would do
            subprocess.run(["service", name, "start"], check=True, capture_output=True)
        assert stack.started_glance_pids()
        stack.harness.charm.on.start.emit()
        assert stack.glance_pids() == set()
        assert not stack.harness.charm.haproxy.is_running()
        assert stack.status().name == "maintenance"
    finally:
        stack.harness.run_action("resume")
    assert {name: start_links(name) for name in SERVICES} == links
    assert stack.started_glance_pids()
    stack.wait_healthy()  # glance-api answers /healthcheck again
    assert stack.status() == ops.ActiveStatus("Unit is ready")

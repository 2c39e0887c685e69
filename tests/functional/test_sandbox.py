"""The tier's sandbox itself: the machine's services and the tier's stack never meet.

`test_foreign_services_and_the_sandboxed_stack_leave_each_other_alone` plays a machine that
already runs someone else's mariadb/keystone/haproxy/glance-api ports and /etc/glance
(`sandbox_probe`, in namespaces of its own: the real machine, where `make local` may serve,
is never touched), then runs `make local`'s whole stack in the tier's sandbox on it. The other
tests show that a sandbox leaves no process, mount or scratch directory, whether its command
fails or its launcher is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.functional import sandbox
from tests.functional.sandbox_probe import FOREIGN_PORTS

REPO = Path(__file__).resolve().parents[2]
SANDBOX = [sys.executable, str(REPO / "tests/functional/sandbox.py"), "--"]
MACHINE = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
           "--propagation", "private", "--"]


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment for a sandbox a test launches: scratch roots in the test's directory.

    The tier's other shards, and anyone else's sandboxes, come and go in the shared one.
    """
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
            "GLANCE_SANDBOX_SCRATCH": str(scratch)}


def test_foreign_services_and_the_sandboxed_stack_leave_each_other_alone(
    tmp_path: Path,
) -> None:
    probe = subprocess.run(
        [*MACHINE, sys.executable, "-m", "tests.functional.sandbox_probe", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=1200, check=False,
        env=_env(tmp_path),
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    # the tier, untouched by them: every port was free inside, /etc/glance was its own
    assert report["sandbox_exit"] == 0, report["sandbox_output"]
    assert report["round_trip_ok"], report["sandbox_output"]
    # they, untouched by the tier: same services answering, never connected to, same files
    tokens = {str(port): report["tokens"][str(port)] for port in FOREIGN_PORTS}
    assert report["answers_before"] == tokens
    assert report["answers_after"] == tokens
    assert report["connections_from_sandbox"] == {str(port): 0 for port in FOREIGN_PORTS}
    assert report["etc_glance_unchanged"]
    assert report["processes_before"] == []
    assert report["left"] == {"processes": [], "mounts": [], "scratch": []}


def _namespace_from(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"the sandboxed command never wrote {path}")


def _gone(namespace: str, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := sandbox.processes_in(namespace)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _scratch(tmp_path: Path) -> set[Path]:
    return set((tmp_path / "scratch").glob("*"))


def _mounts() -> set[str]:
    return set(Path("/proc/self/mountinfo").read_text().splitlines())


def test_a_failing_command_leaves_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ns"
    env = _env(tmp_path)
    scratch, mounts = _scratch(tmp_path), _mounts()
    script = (f"readlink /proc/self/ns/pid > {marker}; "
              "setsid sleep 600 & python3 -m http.server -b 127.0.0.1 9292 >/dev/null 2>&1 & "
              "sleep 1; test -d /etc/glance && ss -Hltn | grep -q ':9292' && exit 7")
    run = subprocess.run([*SANDBOX, "sh", "-c", script], capture_output=True, text=True,
                         timeout=120, check=False, env=env)
    assert run.returncode == 7, run.stderr  # the command's own failure, passed on
    namespace = _namespace_from(marker)
    assert _gone(namespace) == []
    assert _scratch(tmp_path) == scratch
    assert _mounts() == mounts


def test_a_killed_launcher_leaves_no_process_and_its_scratch_goes_next_time(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ns"
    env = _env(tmp_path)
    scratch = _scratch(tmp_path)
    launcher = subprocess.Popen(
        [*SANDBOX, "sh", "-c", f"readlink /proc/self/ns/pid > {marker}; setsid sleep 600 & "
         "sleep 600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    namespace = _namespace_from(marker)
    assert sandbox.processes_in(namespace)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    assert _gone(namespace) == []
    stale = _scratch(tmp_path) - scratch
    assert len(stale) == 1  # the killed launcher could not remove its scratch root
    run = subprocess.run([*SANDBOX, "true"], capture_output=True, text=True, timeout=120,
                         check=False, env=env)
    assert run.returncode == 0, run.stderr
    assert _scratch(tmp_path) == scratch

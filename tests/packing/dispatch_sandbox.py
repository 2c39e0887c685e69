"""Run the packed charm's own `dispatch` for a few hooks, in private namespaces.

    unshare --mount --net --pid --fork --kill-child --mount-proc --propagation private -- \
        python tests/packing/dispatch_sandbox.py CHARM_DIR PY312 WORKDIR HOOK...

Inside namespaces of its own (the caller makes them), every directory the charm writes or reads
as machine state (/etc/glance, /etc/haproxy, /var/lib/glance, /var/lib/charm, /run,
/var/lib/dpkg) is a scratch directory, and the Juju hook tools plus apt, dpkg, service,
glance-manage and haproxy are bench/hooktools.py's stand-ins (apt "installs" into the private
dpkg status), so nothing of the machine is touched. `python3` on PATH is the given Python 3.12:
dispatch links venv/bin/python to it as on an ubuntu@24.04 unit. Prints one JSON line: per hook
its exit code, the unit status after it, and the charm's stderr; plus the stand-in tool calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "bench")]
os.environ["BENCH_IN_NAMESPACE"] = "1"  # run_hooks' state: private pidfiles and dpkg status

import hooktools  # noqa: E402
import run_hooks  # noqa: E402


def private_dirs(workdir: Path) -> None:
    """Scratch directories over the machine's (a missing one is made as an empty mount point)."""
    for path in run_hooks.PRIVATE_DIRS:
        scratch = workdir / "private" / path.lstrip("/")
        scratch.mkdir(parents=True, exist_ok=True)
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "--bind", str(scratch), path], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def main(charm_dir: Path, python: str, workdir: Path, hooks: list[str]) -> int:
    """Run each hook's dispatch; print what happened as JSON."""
    private_dirs(workdir)
    bin_dir, py_dir = workdir / "bin", workdir / "python"
    hooktools.install_tools(str(bin_dir), "python")
    py_dir.mkdir(exist_ok=True)
    (py_dir / "python3").symlink_to(python)
    state_path, log_path = workdir / "state.json", workdir / "tools.log"
    state = run_hooks.empty_state(run_hooks.default_config(), run_hooks.charm_pidfiles(charm_dir))
    hooktools.write_dpkg_status(state)
    state_path.write_text(json.dumps(state))
    runs = []
    for number, hook in enumerate(hooks):
        env = {
            "PATH": f"{bin_dir}:{py_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                    "/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8",
            "JUJU_CHARM_DIR": str(charm_dir), "CHARM_DIR": str(charm_dir),
            "JUJU_UNIT_NAME": run_hooks.UNIT, "JUJU_MODEL_NAME": "packing",
            "JUJU_MODEL_UUID": run_hooks.MODEL_UUID, "JUJU_VERSION": "3.6.0",
            "JUJU_DISPATCH_PATH": f"hooks/{hook}", "JUJU_HOOK_NAME": hook,
            "JUJU_CONTEXT_ID": f"{run_hooks.UNIT}-{hook}-{number}", "JUJU_MACHINE_ID": "0",
            "JUJU_AVAILABILITY_ZONE": "", "JUJU_AGENT_SOCKET_NETWORK": "unix",
            "JUJU_AGENT_SOCKET_ADDRESS": "@/var/lib/juju/agents/unit-glance-0/agent.socket",
            "JUJU_API_ADDRESSES": "10.5.0.1:17070",
            "BENCH_STATE": str(state_path), "BENCH_TOOL_LOG": str(log_path),
        }
        proc = subprocess.run(["./dispatch"], cwd=charm_dir, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        unit = json.loads(state_path.read_text())["status"]["unit"]
        runs.append({"hook": hook, "rc": proc.returncode,
                     "status": f"{unit['status']}: {unit['message']}",
                     "stderr": proc.stderr[-3000:]})
    calls, _ = hooktools.read_log(str(log_path))
    venv_python = charm_dir / "venv" / "bin" / "python"
    print(json.dumps({"runs": runs, "calls": [[c["tool"], *c["args"]] for c in calls],
                      "venv_python": os.path.realpath(venv_python),
                      "packages": json.loads(state_path.read_text())["packages"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4:]))

"""A stand-in machine for the sandbox's own test: foreign services, then a sandboxed stack.

    unshare --mount --net --pid --fork --kill-child --mount-proc --propagation private -- \
        python -m tests.functional.sandbox_probe WORKDIR

Run as pid 1 of namespaces of its own (so it can hold ports and /etc/glance without touching
the real machine, where `make local` may be serving), it plays a machine that already runs
someone else's services: listeners on 3306, 5000, 9292 and 9282 that answer a token of their
own, and an /etc/glance whose files would break glance-api if it read them. Then it runs the
tier's sandbox with `make local`'s stack inside (`tests.functional.local up`, torn down at the
end: mariadb, keystone, the charm, glance-api and haproxy, a 64 MiB round trip) and prints, as
JSON, what each side saw: the sandboxed run's result, whether the listeners still answer with
their own tokens and were never connected to, whether /etc/glance is byte for byte what it
was, and what is left of the sandbox (processes, mounts, scratch directories).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.functional import sandbox

FOREIGN_PORTS = (3306, 5000, 9292, 9282)
FOREIGN_FILES = {
    "glance-api.conf": "[DEFAULT]\nbind_port = 1\n# someone else's glance\n",
    "glance-api-paste.ini": "this is not an ini file: a glance-api reading it cannot start\n",
    "policy.yaml": "'default': '!'\n",
}


class Listener:
    """A foreign TCP service: answers every connection with its token and counts them."""

    def __init__(self, port: int) -> None:
        self.token = f"foreign-{port}-{secrets.token_hex(8)}"
        self.accepted = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))  # noqa: S104 - a private network namespace
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            self.accepted += 1
            with conn:
                conn.sendall(self.token.encode() + b"\n")


def ask(port: int) -> str:
    """What the service on 127.0.0.1:`port` of this machine says first."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.makefile("rb").readline().decode().strip()


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under `path`, and the mode and owner of every entry."""
    found = {}
    for entry in sorted([path, *path.rglob("*")]):
        stat = entry.lstat()
        meta = f"{stat.st_mode:o} {stat.st_uid}:{stat.st_gid}"
        if entry.is_file():
            meta += " " + hashlib.sha256(entry.read_bytes()).hexdigest()
        found[str(entry.relative_to(path))] = meta
    return found


def foreign_etc_glance(workdir: Path) -> Path:
    """Mount a foreign /etc/glance over this machine's one."""
    foreign = workdir / "foreign-etc-glance"
    foreign.mkdir()
    for name, text in FOREIGN_FILES.items():
        (foreign / name).write_text(text)
    os.makedirs("/etc/glance", exist_ok=True)
    subprocess.run(["mount", "--bind", str(foreign), "/etc/glance"], check=True)
    return foreign


def traces() -> dict[str, list[str]]:
    """What a sandbox could leave on this machine: processes, mounts, scratch roots.

    Mounts and scratch roots of the tier's own sandbox (this machine runs inside it) are
    there before and after: the caller compares the two.
    """
    processes = [f"{p.name}: {(p / 'cmdline').read_bytes()[:80]!r}"
                 for p in Path("/proc").iterdir()
                 if p.name.isdigit() and int(p.name) != os.getpid()]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    scratch = [str(p) for p in sandbox.SCRATCH_PARENT.glob("*")] \
        if sandbox.SCRATCH_PARENT.is_dir() else []
    return {"processes": processes, "mounts": mounts, "scratch": scratch}


def left(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    """What `after` has that `before` had not."""
    return {key: sorted(set(after[key]) - set(before[key])) for key in after}


def main(workdir: Path) -> int:
    """Play the machine, run the sandboxed stack, report both sides as JSON on stdout."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    listeners = {port: Listener(port) for port in FOREIGN_PORTS}
    foreign_etc_glance(workdir)
    before = tree_digest(Path("/etc/glance"))
    answers_before = {port: ask(port) for port in FOREIGN_PORTS}
    accepted_before = {port: listeners[port].accepted for port in FOREIGN_PORTS}
    traces_before = traces()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "GLANCE_LOCAL_TEARDOWN": "1",
           "PYTHONPATH": f"{repo / 'src'}:{repo}"}
    run = subprocess.run(
        [sys.executable, str(repo / "tests/functional/sandbox.py"), "--", sys.executable, "-m",
         "tests.functional.local", "up"],
        capture_output=True, text=True, env=env, cwd=repo, timeout=900, check=False)
    report = {
        "sandbox_exit": run.returncode,
        "round_trip_ok": "Round trip of 64 MiB: OK" in run.stdout,
        "sandbox_output": (run.stdout + run.stderr)[-4000:],
        "tokens": {port: listener.token for port, listener in listeners.items()},
        "answers_before": answers_before,
        "answers_after": {port: ask(port) for port in FOREIGN_PORTS},
        "connections_from_sandbox": {
            port: listeners[port].accepted - accepted_before[port] - 1 for port in FOREIGN_PORTS
        },
        "etc_glance_unchanged": tree_digest(Path("/etc/glance")) == before,
        "left": left(traces_before, traces()),
        "processes_before": traces_before["processes"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

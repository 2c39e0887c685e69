"""`make local`: run the charm against a real local Glance stack and round-trip an image.

    python -m tests.functional.local up     # install, start, relate, round-trip, report
    python -m tests.functional.local down   # stop everything a previous `up` left running

`up` leaves mariadb, keystone and glance-api running so the endpoint can be used afterwards
(set GLANCE_LOCAL_TEARDOWN=1 to stop them at the end instead); `down` stops them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

STATE = Path("/var/lib/glance-functional/local-state.json")


def up() -> int:
    """Bring the stack up through the charm and prove an image round-trips."""
    from tests.functional import realstack
    from tests.functional.driver import GlanceStack, round_trip

    stack = GlanceStack()
    try:
        stack.start()
        stack.relate_database()
        stack.relate_identity()
        stack.wait_healthy()
        status = stack.status()
        client = stack.image_client()
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            result = round_trip(client, Path(tmp))
        report = {"unit_status": f"{status.name}: {status.message}", **result,
                  **{k: round(v, 2) for k, v in stack.timings.items()}}
        for key in ("upload_mib_s", "download_mib_s", "cp_mib_s"):
            report[key] = round(report[key], 1)
        print(json.dumps(report, indent=2))
        ok = status.name == "active" and result["sha256_equal"] and result["deleted"]
        print(f"\nGlance endpoint (from the keystone catalog): {result['endpoint']}")
        print(f"Round trip of 64 MiB: {'OK' if ok else 'FAILED'}")
        keep = not os.environ.get("GLANCE_LOCAL_TEARDOWN")
        if keep:
            _remember(stack)
            print("Services keep running; `make local-down` stops them.")
        return 0 if ok else 1
    except Exception as err:  # report and stop everything rather than leave half a stack
        print(f"local run failed: {realstack.redact(str(err))}", file=sys.stderr)
        keep = False
        return 1
    finally:
        if not keep:
            stack.stop()


def _remember(stack: object) -> None:
    """Record the PIDs `down` must stop, and detach them from this process's cleanup."""
    from tests.functional import realstack

    pids = {proc.name: proc.pid for proc in realstack.running_processes()}
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(pids))
    realstack._REGISTRY.clear()
    realstack._CLEANUPS.clear()
    del stack


def down() -> int:
    """Stop what `up` left running (by recorded PID) and glance-api."""
    from tests.functional.driver import own_pids, stop_glance_service

    stop_glance_service()
    if STATE.exists():
        for name, pid in json.loads(STATE.read_text()).items():
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            print(f"stopped {name} (pid {pid})")
        STATE.unlink()
    for pid in own_pids("uwsgi_python3.*keystone"):  # never a sandbox's (make test's) keystone
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit({"up": up, "down": down}[sys.argv[1] if len(sys.argv) > 1 else "up"]())

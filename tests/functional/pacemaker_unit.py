"""One glance unit inside a node's namespaces: the charm under ops.testing, driven over a pipe.

`python -m tests.functional.pacemaker_unit` runs inside a node (nsenter into its network,
mount, uts and pid namespaces) and holds one ``ops.testing.Harness`` of the charm with its
production workload: `service glance-api …`, `service haproxy …`, files under /etc/glance and
/etc/haproxy (the node's own), its address from the node's eth0. The test process plays the
Juju controller through :class:`UnitAgent`: one JSON request per line on the agent's stdin
(relation data with passwords goes there, never into argv or a log), one JSON reply per line
on its stdout. Everything else the agent prints goes to its log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]


# ---- inside the node -------------------------------------------------------------------------
class _Unit:
    """The Harness of one unit and the operations the controller asks for."""

    def __init__(self) -> None:
        self.harness: Any = None
        self.relations: dict[str, int] = {}

    def begin(self, unit: str, address: str, leader: bool, peers: list[str],
              config: dict[str, Any]) -> dict[str, Any]:
        import ops
        import ops.model
        import ops.testing

        from charm import GlanceCharm

        harness = ops.testing.Harness(
            GlanceCharm,
            meta=(REPO / "metadata.yaml").read_text(),
            actions=(REPO / "actions.yaml").read_text(),
            config=(REPO / "config.yaml").read_text(),
        )
        if unit != harness.model.unit.name:  # Harness always plays <app>/0 (as in
            harness._backend.unit_name = unit  # test_rolling_restart_real.unit_harness)
            harness._unit_name = unit
            harness._model = ops.model.Model(harness._meta, harness._backend)  # type: ignore[arg-type]
            harness._framework.model = harness._model
        harness.add_network(address)
        harness.set_leader(leader)
        harness.update_config(config)
        self.relations["cluster"] = harness.add_relation("cluster", unit.partition("/")[0])
        for peer in peers:
            harness.add_relation_unit(self.relations["cluster"], peer)
        self.harness = harness
        harness.begin_with_initial_hooks()
        return self.status()

    def status(self) -> dict[str, Any]:
        self.harness.evaluate_status()
        status = self.harness.model.unit.status
        return {"status": status.name, "message": status.message}

    def relate(self, endpoint: str, app: str, units: dict[str, dict[str, str]],
               app_data: dict[str, str] | None = None) -> dict[str, Any]:
        rel = self.harness.add_relation(endpoint, app)
        self.relations[endpoint] = rel
        if app_data:
            self.harness.update_relation_data(rel, app, app_data)
        for remote, data in units.items():
            self.harness.add_relation_unit(rel, remote)
            if data:
                self.harness.update_relation_data(rel, remote, data)
        return self.status()

    def update(self, endpoint: str, entity: str, data: dict[str, str]) -> dict[str, Any]:
        self.harness.update_relation_data(self.relations[endpoint], entity, data)
        return self.status()

    def remove(self, endpoint: str) -> dict[str, Any]:
        self.harness.remove_relation(self.relations.pop(endpoint))
        return self.status()

    def config(self, options: dict[str, Any]) -> dict[str, Any]:
        self.harness.update_config(options)
        return self.status()

    def hook(self, name: str) -> dict[str, Any]:
        getattr(self.harness.charm.on, name).emit()
        return self.status()

    def haproxy_servers(self) -> dict[str, str]:
        """This unit's haproxy: status of each glance-api server (stats socket)."""
        from glance_charm.workload.haproxy import BACKEND_NAME, STATS_SOCKET, stats

        try:
            rows = stats(Path(STATS_SOCKET))
        except OSError:
            return {}
        return {row["svname"]: row["status"] for row in rows
                if row.get("pxname") == BACKEND_NAME
                and row.get("svname") not in ("FRONTEND", "BACKEND")}

    def bag(self, endpoint: str, entity: str) -> dict[str, str]:
        if endpoint not in self.relations:
            return {}
        return dict(self.harness.get_relation_data(self.relations[endpoint], entity))


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer requests until stdin closes: {"op": name, "args": {...}} -> {"ok"|"error"}."""
    unit = _Unit()
    for line in requests:
        request = json.loads(line)
        try:
            reply: dict[str, Any] = {"ok": getattr(unit, request["op"])(**request["args"])}
        except Exception as err:
            logging.exception("request %s failed", request["op"])
            reply = {"error": f"{type(err).__name__}: {err}",
                     "trace": traceback.format_exc()[-3000:]}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    if unit.harness is not None:
        unit.harness.cleanup()


def main() -> None:
    """Serve on the original stdout; everything printed later goes to stderr (the log)."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(sys.stdin, replies)


# ---- the controller's side -------------------------------------------------------------------
class AgentError(RuntimeError):
    """The unit agent failed a request or died."""


class UnitAgent:
    """Talk to one unit agent running in a node (see the module docstring)."""

    def __init__(self, unit: str, process: subprocess.Popen[str], log_path: Path) -> None:
        self.unit = unit
        self.process = process
        self.log_path = log_path
        self._lock = threading.Lock()

    def call(self, op: str, **args: Any) -> Any:
        """One request; raise AgentError with the agent's traceback when it failed."""
        with self._lock:
            stdin, stdout = self.process.stdin, self.process.stdout
            assert stdin is not None and stdout is not None
            try:
                stdin.write(json.dumps({"op": op, "args": args}) + "\n")
                stdin.flush()
                line = stdout.readline()
            except OSError as err:
                raise AgentError(f"{self.unit}: agent gone ({err})") from err
        if not line:
            raise AgentError(f"{self.unit}: agent exited {self.process.poll()}; "
                             f"see {self.log_path}")
        reply = json.loads(line)
        if "error" in reply:
            raise AgentError(f"{self.unit} {op}: {reply['error']}\n{reply.get('trace', '')}")
        return reply["ok"]

    def stop(self) -> None:
        """Close its stdin (the Harness cleans up) and wait; kill if it hangs."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)


if __name__ == "__main__":
    main()

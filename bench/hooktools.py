"""Stand-in Juju hook tools (and workload tools) backed by a JSON state, logging every call.

A charm under benchmark runs its real `dispatch` with a bin directory first on PATH. That
directory holds one small executable per hook tool ops 3.9 may call (``relation-get``,
``status-set``, ``network-get``, ...) and per system tool the glance workload runs
(``service``, ``dpkg-query``, ``apt-get``, ``runuser``, ``glance-manage``, ``haproxy``, ...).
Every invocation is appended to a JSON-lines log (tool, args, hook, exit code), so a
benchmark can count hook-tool calls, service restarts and apt/dpkg processes per hook.

Two implementations, same semantics (:func:`handle`):

* ``daemon`` (default): each tool is a 10-line bash script that forwards argv (and stdin for
  ``--file -``) over loopback TCP to a :class:`ToolServer` thread inside the benchmark process,
  which holds the state in memory and writes it back to the JSON file after every change.
  No Python starts per call: ~1-3 ms per call here.
* ``python``: one Python script (``/usr/bin/python3 -IS``) symlinked under every tool name,
  which locks, loads and rewrites the JSON state file itself: ~15-25 ms per call here.

The per-call cost of the stand-in itself inflates every hook's time; :func:`measure_overhead`
reports it (``python bench/hooktools.py --overhead``). Nothing is subtracted from hook times.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

JUJU_TOOLS = (
    "action-fail", "action-get", "action-log", "action-set", "add-metric",
    "application-version-set", "close-port", "config-get", "credential-get", "goal-state",
    "is-leader", "juju-log", "juju-reboot", "leader-get", "leader-set", "network-get",
    "open-port", "opened-ports", "relation-get", "relation-ids", "relation-list",
    "relation-model-get", "relation-set", "resource-get", "secret-add", "secret-get",
    "secret-grant", "secret-ids", "secret-info-get", "secret-remove", "secret-revoke",
    "secret-set", "state-delete", "state-get", "state-set", "status-get", "status-set",
    "storage-add", "storage-get", "storage-list", "unit-get",
)
APT_TOOLS = ("apt", "apt-get", "apt-cache", "apt-key", "add-apt-repository", "dpkg", "dpkg-query")
WORKLOAD_TOOLS = (*APT_TOOLS, "service", "systemctl", "runuser", "glance-manage", "haproxy")
ALL_TOOLS = JUJU_TOOLS + WORKLOAD_TOOLS
STATUS_INSTALLED = "install ok installed"
# Versions the stand-in apt "installs" (Debian 12 bookworm, as on this machine).
CATALOG = {"glance-api": "2:25.1.0-2+deb12u5", "python3-pymysql": "1.0.2-2",
           "haproxy": "2.6.12-1+deb12u4", "ceph-common": "16.2.15+ds-0+deb12u1",
           "python3-rbd": "16.2.15+ds-0+deb12u1", "python3-rados": "16.2.15+ds-0+deb12u1"}

Result = tuple[int, str, str, bool]  # exit code, stdout, stderr, state changed


class ToolError(Exception):
    """A stand-in tool fails the way the real one would (non-zero exit, message on stderr)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---- small helpers --------------------------------------------------------------------------
def _out(value: object) -> str:
    return json.dumps(value) + "\n"


def _flag(args: list[str], *names: str) -> bool:
    """Remove boolean flags (any of `names`, also `--x=true`) from args; return whether set."""
    found = False
    for arg in list(args):
        name, _, value = arg.partition("=")
        if name in names:
            args.remove(arg)
            found = found or value.lower() not in ("false", "0")
    return found


def _option(args: list[str], *names: str) -> str | None:
    """Remove `--name value` / `--name=value` / `-r value` from args; return the value."""
    for index, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in names:
            if eq:
                del args[index]
                return value
            if index + 1 >= len(args):
                raise ToolError(f"flag needs an argument: {arg}", 2)
            value = args[index + 1]
            del args[index:index + 2]
            return value
    return None


def _positional(args: list[str]) -> list[str]:
    """Arguments left once flags are removed (`--` ends flags)."""
    if "--" in args:
        index = args.index("--")
        return [a for a in args[:index] if not a.startswith("-") or a == "-"] + args[index + 1:]
    return [a for a in args if not a.startswith("-") or a == "-"]


def _app_of(name: str) -> str:
    return name.split("/", 1)[0]


# ---- the Juju side ---------------------------------------------------------------------------
class Context:
    """What a tool learns from the hook's environment (Juju sets these for relation hooks)."""

    def __init__(self, relation_id: str = "", remote_unit: str = "", hook: str = "") -> None:
        self.relation_id = relation_id
        self.remote_unit = remote_unit
        self.hook = hook

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> Context:
        """Build from JUJU_RELATION_ID, JUJU_REMOTE_UNIT and JUJU_DISPATCH_PATH."""
        return cls(env.get("JUJU_RELATION_ID", ""), env.get("JUJU_REMOTE_UNIT", ""),
                   env.get("JUJU_DISPATCH_PATH", ""))


if TYPE_CHECKING:
    Tool = Callable[[dict, list[str], Context], Result]
    StdinTool = Callable[[dict, list[str], Context, str], Result]  # reads --file - from stdin


def _relation(state: dict, ref: str | None, ctx: Context) -> tuple[str, dict]:
    ref = ref or ctx.relation_id
    if not ref:
        raise ToolError("no relation id specified", 2)
    rel_id = ref.rpartition(":")[2]
    relation = state["relations"].get(rel_id)
    endpoint = ref.rpartition(":")[0]
    if relation is None or (endpoint and endpoint != relation["endpoint"]):
        raise ToolError(f'invalid value "{ref}" for option -r: relation not found')
    return rel_id, relation


def _bag(state: dict, relation: dict, member: str, *, write: bool) -> dict:
    """The databag of `member` (unit or app name), enforcing Juju's leader rule for app bags."""
    unit = state["unit"]
    app = _app_of(unit)
    if member == app and not state.get("leader"):
        peer = relation["remote_app"] == app
        if write or not peer:
            raise ToolError("permission denied")
    if write and member not in (unit, app):
        raise ToolError(f"cannot write the settings of {member}")
    return relation["data"].setdefault(member, {})


def relation_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`relation-get [--format=json] [-r ref] [--app] [key|-] [unit]`."""
    _option(args, "--format")
    is_app = _flag(args, "--app")
    _, relation = _relation(state, _option(args, "-r", "--relation"), ctx)
    rest = _positional(args)
    key = rest[0] if rest else "-"
    member = rest[1] if len(rest) > 1 else ctx.remote_unit
    if is_app and "/" in member:
        member = _app_of(member)
    if not member:
        raise ToolError("no unit id specified", 2)
    bag = _bag(state, relation, member, write=False)
    return 0, _out(dict(bag) if key == "-" else bag.get(key)), "", False


def relation_set(state: dict, args: list[str], ctx: Context, stdin: str) -> Result:
    """`relation-set [-r ref] [--app] (--file - | key=value ...)`; empty values delete keys."""
    is_app = _flag(args, "--app")
    _, relation = _relation(state, _option(args, "-r", "--relation"), ctx)
    source = _option(args, "--file")
    values: dict[str, str] = {}
    if source == "-":
        values.update(json.loads(stdin or "{}"))
    elif source:
        with open(source, encoding="utf-8") as handle:
            values.update(json.load(handle))
    for pair in _positional(args):
        key, _, value = pair.partition("=")
        values[key] = value
    member = _app_of(state["unit"]) if is_app else state["unit"]
    bag = _bag(state, relation, member, write=True)
    for key, value in values.items():
        if value == "":
            bag.pop(key, None)
        else:
            bag[key] = str(value)
    return 0, "", "", True


def relation_ids(state: dict, args: list[str], ctx: Context) -> Result:
    """`relation-ids [--format=json] endpoint`."""
    _option(args, "--format")
    endpoint = (_positional(args) or [""])[0]
    found = [f"{rel['endpoint']}:{rel_id}" for rel_id, rel in state["relations"].items()
             if rel["endpoint"] == endpoint and not rel.get("broken")]
    return 0, _out(found), "", False


def relation_list(state: dict, args: list[str], ctx: Context) -> Result:
    """`relation-list [--format=json] [--app] [-r ref]`: remote units (or the remote app)."""
    _option(args, "--format")
    is_app = _flag(args, "--app")
    _, relation = _relation(state, _option(args, "-r", "--relation"), ctx)
    if is_app:
        return 0, _out(relation["remote_app"]), "", False
    units = [u for u in relation["units"] if u != state["unit"]]
    return 0, _out(units), "", False


def config_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`config-get [--format=json] [--all] [key]` (unset options are absent, as in Juju)."""
    _option(args, "--format")
    _flag(args, "--all", "-a")
    keys = _positional(args)
    config = state["config"]
    return 0, _out(config.get(keys[0]) if keys else config), "", False


def status_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`status-get [--include-data] [--format=json] [--application=bool]`."""
    _option(args, "--format")
    _flag(args, "--include-data")
    is_app = _flag(args, "--application")
    if is_app:
        if not state.get("leader"):
            raise ToolError("finding application status: this unit is not the leader")
        app = state["status"]["app"]
        return 0, _out({"application-status": {**app, "status-data": {}}, "units": {}}), "", False
    return 0, _out({**state["status"]["unit"], "status-data": {}}), "", False


def status_set(state: dict, args: list[str], ctx: Context) -> Result:
    """`status-set [--application=bool] status [--] [message]`."""
    is_app = _flag(args, "--application")
    rest = _positional(args)
    if not rest:
        raise ToolError("invalid args, require <status> [message] [data]", 2)
    if is_app and not state.get("leader"):
        raise ToolError("setting application status: this unit is not the leader")
    target = state["status"]["app" if is_app else "unit"]
    target.update(status=rest[0], message=rest[1] if len(rest) > 1 else "")
    return 0, "", "", True


def network_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`network-get [--format=json] [-r id] binding` (or `--primary-address`, legacy)."""
    _option(args, "--format")
    _option(args, "-r", "--relation")
    primary = _flag(args, "--primary-address", "--ingress-address", "--bind-address")
    binding = (_positional(args) or [""])[0]
    networks = state["networks"]
    info = networks.get(binding, networks["default"])
    if primary:
        return 0, _out(info["ingress-addresses"][0]), "", False
    return 0, _out(info), "", False


def unit_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`unit-get [--format=json] private-address|public-address`."""
    _option(args, "--format")
    return 0, _out(state["networks"]["default"]["ingress-addresses"][0]), "", False


def simple_get(section: str) -> Tool:
    """A `X-get [--format=json] [key]` tool reading one section of the state."""

    def tool(state: dict, args: list[str], ctx: Context) -> Result:
        _option(args, "--format")
        keys = _positional(args)
        data = state.setdefault(section, {})
        return 0, _out(data.get(keys[0]) if keys else data), "", False

    return tool


def simple_set(section: str) -> StdinTool:
    """A `X-set [--file -] [key=value ...]` tool writing one section of the state."""

    def tool(state: dict, args: list[str], ctx: Context, stdin: str) -> Result:
        data = state.setdefault(section, {})
        if _option(args, "--file") == "-":
            data.update(json.loads(stdin or "{}"))
        for pair in _positional(args):
            key, _, value = pair.partition("=")
            data[key] = value
        return 0, "", "", True

    return tool


def state_delete(state: dict, args: list[str], ctx: Context) -> Result:
    """`state-delete key`."""
    for key in _positional(args):
        state.setdefault("state", {}).pop(key, None)
    return 0, "", "", True


def secret_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`secret-get --format=json [id] [--label l] [--refresh|--peek]`."""
    _option(args, "--format")
    label = _option(args, "--label")
    _flag(args, "--refresh", "--peek")
    rest = _positional(args)
    key = rest[0] if rest else label
    secrets = state.setdefault("secrets", {})
    if key not in secrets:
        raise ToolError(f'secret "{key}" not found')
    return 0, _out(secrets[key]), "", False


def opened_ports(state: dict, args: list[str], ctx: Context) -> Result:
    """`opened-ports [--endpoints] --format=json` -> ["9292/tcp"]."""
    return 0, _out(state.setdefault("ports", [])), "", False


def port_change(opening: bool) -> Tool:
    """`open-port`/`close-port [--endpoints e] proto|port[/proto]`."""

    def tool(state: dict, args: list[str], ctx: Context) -> Result:
        _option(args, "--endpoints")
        rest = _positional(args)
        spec = "/".join(rest) if rest else ""
        port = spec if "/" in spec else f"{spec}/tcp"
        ports = state.setdefault("ports", [])
        if opening and port not in ports:
            ports.append(port)
        if not opening and port in ports:
            ports.remove(port)
        return 0, "", "", True

    return tool


def goal_state(state: dict, args: list[str], ctx: Context) -> Result:
    """`goal-state --format=json`: every known unit active."""
    since = "2026-01-01T00:00:00Z"
    goal = {"status": "active", "since": since}
    units = {state["unit"]: goal}
    relations: dict[str, dict] = {}
    for rel in state["relations"].values():
        entry = relations.setdefault(rel["endpoint"], {})
        entry[rel["remote_app"]] = goal
        for unit in rel["units"]:
            entry[unit] = goal
    return 0, _out({"units": units, "relations": relations}), "", False


def no_output(state: dict, args: list[str], ctx: Context) -> Result:
    """Tools whose effect the benchmark does not need (juju-log, action-log, ...)."""
    return 0, "", "", False


def empty_json(value: object) -> Tool:
    """Tools that answer a fixed JSON value (storage-list, secret-ids, ...)."""

    def tool(state: dict, args: list[str], ctx: Context) -> Result:
        return 0, _out(value), "", False

    return tool


def failing(message: str) -> Tool:
    """Tools that fail outside a real controller (credential-get, resource-get, ...)."""

    def tool(state: dict, args: list[str], ctx: Context) -> Result:
        raise ToolError(message)

    return tool


def set_app_version(state: dict, args: list[str], ctx: Context) -> Result:
    """`application-version-set [--] version`."""
    state["app_version"] = (_positional(args) or [""])[0]
    return 0, "", "", True


def is_leader(state: dict, args: list[str], ctx: Context) -> Result:
    """`is-leader --format=json`."""
    return 0, _out(bool(state.get("leader"))), "", False


def action_fail(state: dict, args: list[str], ctx: Context) -> Result:
    """`action-fail [--] [message]`."""
    action = state.setdefault("action", {})
    action["failed"] = " ".join(_positional(args)) or "action failed"
    return 0, "", "", True


def relation_model_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`relation-model-get --format=json [-r id]`."""
    return 0, _out({"uuid": state["model"]["uuid"]}), "", False


# ---- the workload side -----------------------------------------------------------------------
def dpkg_query(state: dict, args: list[str], ctx: Context) -> Result:
    """`dpkg-query -W [-f=FORMAT|--showformat=FORMAT] package...` from state['packages']."""
    fmt = _option(args, "-f", "--showformat") or "${Package}\t${Version}\n"
    _flag(args, "-W", "--show")
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    out, err, code = [], [], 0
    for package in _positional(args):
        version = state["packages"].get(package)
        if version is None:
            err.append(f"dpkg-query: no packages found matching {package}\n")
            code = 1
            continue
        out.append(fmt.replace("${Status}", STATUS_INSTALLED).replace("${Version}", version)
                   .replace("${Package}", package).replace("${binary:Package}", package))
    return code, "".join(out), "".join(err), False


def dpkg(state: dict, args: list[str], ctx: Context) -> Result:
    """`dpkg -l [pkg...]` (exit 1 when a named package is missing) / `--print-architecture`."""
    if "--print-architecture" in args:
        return 0, "amd64\n", "", False
    wanted = _positional(args) or sorted(state["packages"])
    header = ("Desired=Unknown/Install/Remove/Purge/Hold\n| Status=Not/Inst/Conf-files\n"
              "|/ Err?=(none)/Reinst-required\n||/ Name  Version  Architecture  Description\n"
              "+++-====-=======-============-===========\n")
    rows = [f"ii  {name}  {state['packages'][name]}  amd64  stand-in\n"
            for name in wanted if name in state["packages"]]
    missing = [name for name in wanted if name not in state["packages"]]
    err = "".join(f"dpkg-query: no packages found matching {name}\n" for name in missing)
    return (1 if missing else 0), header + "".join(rows), err, False


def apt_cache(state: dict, args: list[str], ctx: Context) -> Result:
    """`apt-cache show PKG...`: every package is available at its CATALOG version."""
    words = _positional(args)
    if words[:1] != ["show"]:
        return 0, "", "", False
    records = [f"Package: {name}\nArchitecture: amd64\nVersion: {CATALOG.get(name, '1.0-1')}\n"
               for name in words[1:]]
    return 0, "\n".join(records), "", False


def apt_get(state: dict, args: list[str], ctx: Context) -> Result:
    """`apt-get [opts] install|update|...`: install marks packages installed, nothing else."""
    words = _positional(args)
    if words and words[0] == "install":
        for spec in words[1:]:
            name = spec.split("=", 1)[0]
            state["packages"].setdefault(name, CATALOG.get(name, "1.0-1"))
        write_dpkg_status(state)
        return 0, "", "", True
    return 0, "", "", False


def write_dpkg_status(state: dict) -> None:
    """Mirror state['packages'] into the dpkg status file the charm reads (if one is set).

    The charm reads /var/lib/dpkg/status itself instead of running dpkg-query; the benchmark
    mounts a scratch directory over /var/lib/dpkg and points state['dpkg_status'] at it.
    """
    path = state.get("dpkg_status")
    if not path:
        return
    stanzas = [f"Package: {name}\nStatus: install ok installed\nVersion: {version}\n"
               for name, version in sorted(state["packages"].items())]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(stanzas))


def _write_pidfile(state: dict, name: str, running: bool) -> None:
    """Keep the pidfile the sysvinit script would keep (state['pidfiles'], if set)."""
    path = state.get("pidfiles", {}).get(name)
    if not path:
        return
    if running:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="ascii") as handle:  # a live process: the benchmark
            handle.write(f"{state.get('service_pid', os.getpid())}\n")
    elif os.path.exists(path):
        os.unlink(path)


def _service_action(state: dict, name: str, action: str) -> Result:
    services = state.setdefault("services", {})
    if action in ("start", "restart", "reload", "force-reload", "try-restart"):
        services[name] = "running"
        _write_pidfile(state, name, True)
        return 0, "", "", True
    if action == "stop":
        services[name] = "stopped"
        _write_pidfile(state, name, False)
        return 0, "", "", True
    if action in ("status", "is-active"):
        return (0 if services.get(name) == "running" else 3), "", "", False
    return 0, "", "", False


def service(state: dict, args: list[str], ctx: Context) -> Result:
    """`service NAME ACTION` (SysV style)."""
    words = _positional(args)
    if len(words) < 2:
        raise ToolError("Usage: service < option > | --status-all | [ service_name ]", 1)
    return _service_action(state, words[0], words[1])


def systemctl(state: dict, args: list[str], ctx: Context) -> Result:
    """`systemctl [--quiet] ACTION NAME...`."""
    words = _positional(args)
    if not words:
        return 0, "", "", False
    if words[0] == "daemon-reload":
        return 0, "", "", False
    result: Result = (0, "", "", False)
    for name in words[1:]:
        result = _service_action(state, name.removesuffix(".service"), words[0])
    return result


def runuser(state: dict, args: list[str], ctx: Context) -> Result:
    """`runuser -u USER -- CMD ...`: runs the stand-in of CMD (logged separately)."""
    if "--" not in args:
        return 0, "", "", False
    command = args[args.index("--") + 1:]
    if not command:
        return 0, "", "", False
    return handle(state, os.path.basename(command[0]), command[1:], ctx)


def haproxy(state: dict, args: list[str], ctx: Context) -> Result:
    """`haproxy -c -f FILE` always validates."""
    return 0, "Configuration file is valid\n", "", False


TOOLS: dict[str, Callable[..., Result]] = {  # Tool, or StdinTool if in STDIN_TOOLS
    "relation-get": relation_get, "relation-set": relation_set, "relation-ids": relation_ids,
    "relation-list": relation_list, "relation-model-get": relation_model_get,
    "config-get": config_get, "is-leader": is_leader, "status-get": status_get,
    "status-set": status_set, "application-version-set": set_app_version,
    "juju-log": no_output, "network-get": network_get, "unit-get": unit_get,
    "action-get": simple_get("action_params"), "action-set": simple_set("action_results"),
    "action-log": no_output, "action-fail": action_fail,
    "leader-get": simple_get("leader_settings"), "leader-set": simple_set("leader_settings"),
    "state-get": simple_get("state"), "state-set": simple_set("state"),
    "state-delete": state_delete, "secret-get": secret_get,
    "secret-info-get": failing("secret not found"), "secret-ids": empty_json([]),
    "secret-add": failing("secrets are not supported by the stand-in"),
    "secret-set": no_output, "secret-grant": no_output, "secret-revoke": no_output,
    "secret-remove": no_output, "opened-ports": opened_ports, "open-port": port_change(True),
    "close-port": port_change(False), "storage-list": empty_json([]),
    "storage-get": empty_json({}), "storage-add": no_output, "goal-state": goal_state,
    "credential-get": failing("permission denied"), "resource-get": failing("no resource"),
    "juju-reboot": no_output, "add-metric": no_output,
    "dpkg-query": dpkg_query, "dpkg": dpkg, "apt-get": apt_get, "apt": apt_get,
    "apt-cache": apt_cache, "apt-key": no_output, "add-apt-repository": no_output,
    "service": service, "systemctl": systemctl, "runuser": runuser,
    "glance-manage": no_output, "haproxy": haproxy,
}
STDIN_TOOLS = frozenset({"relation-set", "state-set", "action-set", "leader-set"})


def handle(state: dict, tool: str, args: list[str], ctx: Context, stdin: str = "") -> Result:
    """Run one stand-in tool against the state; never raises for tool-level errors."""
    func = TOOLS.get(tool)
    if func is None:
        return 1, "", f"{tool}: not provided by the stand-in\n", False
    try:
        if tool in STDIN_TOOLS:
            return func(state, list(args), ctx, stdin)
        return func(state, list(args), ctx)
    except ToolError as err:
        return err.code, "", f"ERROR {err}\n", False
    except (ValueError, KeyError, IndexError, OSError) as err:
        return 2, "", f"ERROR stand-in {tool}: {type(err).__name__}: {err}\n", False


def log_entry(tool: str, args: list[str], ctx: Context, code: int, seconds: float) -> str:
    """One JSON line for the invocation log."""
    entry = {"t": round(time.time(), 6), "tool": tool, "args": args, "hook": ctx.hook,
             "rc": code, "ms": round(seconds * 1000, 3)}
    return json.dumps(entry) + "\n"


def append_log(path: str, line: str) -> None:
    """Append one line atomically (O_APPEND) so concurrent writers never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# ---- mode "python": one script, state file locked per call -------------------------------------
def cli_tool(argv: list[str] | None = None) -> int:
    """Entry point of the Python stand-in: tool name from argv[0], state from $BENCH_STATE."""
    import fcntl

    argv = list(sys.argv if argv is None else argv)
    started = time.perf_counter()
    tool = os.path.basename(argv[0])
    ctx = Context.from_env(os.environ)
    state_path = os.environ["BENCH_STATE"]
    stdin = sys.stdin.read() if tool in STDIN_TOOLS and "-" in argv else ""
    with open(state_path, "r+", encoding="utf-8") as handle_:
        fcntl.flock(handle_, fcntl.LOCK_EX)
        state = json.load(handle_)
        code, out, err, changed = handle(state, tool, argv[1:], ctx, stdin)
        if changed:
            handle_.seek(0)
            handle_.truncate()
            json.dump(state, handle_, indent=1, sort_keys=True)
    append_log(os.environ["BENCH_TOOL_LOG"],
               log_entry(tool, argv[1:], ctx, code, time.perf_counter() - started))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


PYTHON_STUB = """#!/usr/bin/python3 -IS
import sys
sys.path.insert(0, {bench_dir!r})
from hooktools import cli_tool
sys.exit(cli_tool())
"""

# ---- mode "daemon": bash client, Python server thread ---------------------------------------
# Request: NUL-terminated fields relation-id, remote-unit, hook, tool, argc, args..., stdin
# length; then the stdin bytes. Reply: "<rc> <stdout length>\n" + stdout + stderr; then close.
BASH_CLIENT = r"""#!/bin/bash
# Stand-in hook tool generated by bench/hooktools.py: forwards the call to the bench server.
LC_ALL=C
exec 3<>/dev/tcp/127.0.0.1/{port} || exit 97
data=
if [[ " $* " == *" --file - "* ]]; then IFS= read -r -d '' data; fi
printf '%s\0' "${{JUJU_RELATION_ID-}}" "${{JUJU_REMOTE_UNIT-}}" "${{JUJU_DISPATCH_PATH-}}" \
  "${{0##*/}}" "$#" "$@" "${{#data}}" >&3
printf '%s' "$data" >&3
read -r rc len <&3
IFS= read -r -d '' body <&3
printf '%s' "${{body:0:len}}"
printf '%s' "${{body:len}}" >&2
exit "$rc"
"""


class ToolServer:
    """In-process server answering the bash stand-ins; state in memory, saved on change."""

    def __init__(self, state_path: str, log_path: str) -> None:
        import socket
        import threading

        self.state_path = state_path
        self.log_path = log_path
        with open(state_path, encoding="utf-8") as handle_:
            self.state: dict = json.load(handle_)
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="hooktools", daemon=True)
        self._stopping = False

    def start(self) -> ToolServer:
        """Start answering in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and save the state."""
        self._stopping = True
        self.sock.close()
        self.save()

    def save(self) -> None:
        """Write the in-memory state to the JSON file."""
        with self.lock:
            text = json.dumps(self.state, indent=1, sort_keys=True)
        tmp = f"{self.state_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle_:
            handle_.write(text)
        os.replace(tmp, self.state_path)

    def replace_state(self, state: dict) -> None:
        """Swap the whole state (between hooks) and save it."""
        with self.lock:
            self.state = state
        self.save()

    def _serve(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._answer(conn)
                except (OSError, ValueError) as err:
                    append_log(self.log_path, json.dumps({"server_error": str(err)}) + "\n")

    def _answer(self, conn: socket.socket) -> None:
        started = time.perf_counter()
        buffer = b""
        fields: list[bytes] = []
        needed: int | None = None  # fields expected: 5 fixed + argc + 1 (stdin length)
        while needed is None or len(fields) < needed:
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError("truncated request")
            buffer += chunk
            while b"\0" in buffer and (needed is None or len(fields) < needed):
                field, buffer = buffer.split(b"\0", 1)
                fields.append(field)
                if len(fields) == 5:
                    needed = 5 + int(fields[4]) + 1
        length = int(fields[-1])
        while len(buffer) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buffer += chunk
        relation_id, remote_unit, hook, tool = (f.decode() for f in fields[:4])
        args = [f.decode() for f in fields[5:-1]]
        ctx = Context(relation_id, remote_unit, hook)
        with self.lock:
            code, out, err, changed = handle(self.state, tool, args, ctx, buffer.decode())
        body = out.encode()
        conn.sendall(f"{code} {len(body)}\n".encode() + body + err.encode())
        if changed:
            self.save()
        append_log(self.log_path, log_entry(tool, args, ctx, code, time.perf_counter() - started))


# ---- installing the tools ----------------------------------------------------------------------
def install_tools(bin_dir: str, mode: str, port: int | None = None) -> None:
    """Write one executable per tool into bin_dir ("daemon" needs the server's port)."""
    os.makedirs(bin_dir, exist_ok=True)
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    if mode == "python":
        stub = os.path.join(bin_dir, "_hooktool.py")
        with open(stub, "w", encoding="utf-8") as handle_:
            handle_.write(PYTHON_STUB.format(bench_dir=bench_dir))
        os.chmod(stub, 0o755)  # noqa: S103 - an executable for the hook
        for name in ALL_TOOLS:
            path = os.path.join(bin_dir, name)
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink("_hooktool.py", path)
        return
    if mode != "daemon" or port is None:
        raise ValueError("mode must be 'python', or 'daemon' with a port")
    script = BASH_CLIENT.format(port=port)
    for name in ALL_TOOLS:
        path = os.path.join(bin_dir, name)
        if os.path.lexists(path):
            os.unlink(path)
        with open(path, "w", encoding="utf-8") as handle_:
            handle_.write(script)
        os.chmod(path, 0o755)  # noqa: S103 - an executable for the hook


def read_log(path: str, offset: int = 0) -> tuple[list[dict], int]:
    """Log entries written since byte `offset`, and the new offset."""
    try:
        with open(path, "rb") as handle_:
            handle_.seek(offset)
            data = handle_.read()
    except FileNotFoundError:
        return [], offset
    return [json.loads(line) for line in data.splitlines() if line.strip()], offset + len(data)


# ---- self-measurement ------------------------------------------------------------------------
def minimal_state() -> dict:
    """A tiny state for overhead measurement: one peer relation, leader, one config key."""
    net = {"bind-addresses": [{"mac-address": "", "interface-name": "eth0",
                               "addresses": [{"hostname": "", "value": "10.5.0.30",
                                              "cidr": "10.5.0.0/24"}]}],
           "egress-subnets": ["10.5.0.30/32"], "ingress-addresses": ["10.5.0.30"]}
    return {
        "model": {"name": "bench", "uuid": "00000000-0000-4000-8000-000000000000"},
        "unit": "glance/0", "leader": True, "config": {"debug": False},
        "relations": {"0": {"endpoint": "cluster", "remote_app": "glance",
                            "units": ["glance/1"],
                            "data": {"glance/1": {"private-address": "10.5.0.31"}}}},
        "networks": {"default": net}, "status": {"unit": {"status": "unknown", "message": ""},
                                                 "app": {"status": "unknown", "message": ""}},
        "packages": {"glance-api": "2:25.1.0-2"}, "services": {},
    }


def measure_overhead(runs: int = 200) -> dict[str, dict[str, float]]:
    """Per-call wall time (ms, min/median) of each stand-in mode vs spawning /bin/true.

    Calls are made the way ops makes them: subprocess.run with captured output.
    """
    import subprocess
    import tempfile

    def timed(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> dict[str, float]:
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, env=env, input=stdin,
                           encoding="utf-8")
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        return {"min_ms": samples[0], "median_ms": samples[len(samples) // 2]}

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hooktools-") as tmp:
        state_path = os.path.join(tmp, "state.json")
        log_path = os.path.join(tmp, "tools.log")
        with open(state_path, "w", encoding="utf-8") as handle_:
            json.dump(minimal_state(), handle_)
        base_env = {"PATH": "/usr/bin:/bin", "BENCH_STATE": state_path,
                    "BENCH_TOOL_LOG": log_path, "JUJU_DISPATCH_PATH": "hooks/update-status"}
        results["spawn /bin/true"] = timed(["/bin/true"], base_env)
        server = ToolServer(state_path, log_path).start()
        try:
            for mode in ("daemon", "python"):
                bin_dir = os.path.join(tmp, mode)
                install_tools(bin_dir, mode, server.port)
                env = {**base_env, "PATH": f"{bin_dir}:/usr/bin:/bin"}
                results[f"{mode}: is-leader"] = timed(
                    [f"{bin_dir}/is-leader", "--format=json"], env)
                results[f"{mode}: relation-get"] = timed(
                    [f"{bin_dir}/relation-get", "--format=json", "-r", "cluster:0", "-",
                     "glance/1"], env)
                results[f"{mode}: relation-set --file -"] = timed(
                    [f"{bin_dir}/relation-set", "-r", "cluster:0", "--file", "-"], env,
                    stdin='{"private-address": "10.5.0.30"}')
        finally:
            server.stop()
    return results


def main() -> int:
    """`python bench/hooktools.py --overhead [--runs N]`: print the stand-in's own cost."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead", action="store_true", help="measure per-call overhead")
    parser.add_argument("--runs", type=int, default=200)
    options = parser.parse_args()
    if not options.overhead:
        parser.print_help()
        return 0
    for name, numbers in measure_overhead(options.runs).items():
        print(f"{name:34s} min {numbers['min_ms']:6.2f} ms  median {numbers['median_ms']:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

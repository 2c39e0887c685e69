"""What any relay between client and glance-api costs: the charm's haproxy against the floor.

Issue 17 asks for 4 concurrent downloads through the charm's haproxy at >= 0.9 of direct.
bench/dataplane.py finds them CPU-bound on a 2-core machine where the clients, glance-api and
haproxy share the cores, so the ratio is about the CPU a GiB costs direct over what it costs
through haproxy. This bench asks whether haproxy's share is haproxy's doing or the price of
any user-space hop on loopback: the same response bodies, from one origin, go to curl

* direct from the origin;
* through haproxy, with the haproxy.cfg the charm renders (``HaproxyConfig.render()`` of the
  snapshot's charm, one backend: the origin), with and without ``option splice-response``
  (which the charm renders since bench/RESULTS.md §10);
* through ``socat`` (read/write relay, 256 KiB buffer), the plainest user-space TCP hop;
* through a splice relay (this file, ``os.splice`` socket -> pipe -> socket, 1 MiB pipe): the
  bytes never enter user space, the kernel floor of a hop.

The origin is a small HTTP server that sends the body with ``sendfile`` from a warm page
cache (it costs the same in every path). Reported: MiB/s best / median of the reps at 1 and 4
concurrent streams, each path / direct, and CPU seconds per GiB by party (origin, relay,
curl) from /proc (utime+stime, plus reaped children for socat's per-connection forks) and
the curl children's rusage. Everything runs in a private network namespace (``unshare
--net``, its own loopback); nothing outlives the run.

Usage: ``sudo python bench/relay_floor.py [--size-mib 1024] [--reps 5] [--json F]``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import run_hooks
from dataplane import concurrent_wall, load_average

MIB = 1024 * 1024
STREAMS = (1, 4)
ORIGIN_PORT, SOCAT_PORT, SPLICE_PORT = 8800, 8802, 8803
# haproxy binds with SO_REUSEPORT: each haproxy gets a port of its own
HAPROXY_PORTS = {False: 8801, True: 8804}  # splice-response off / on
PIPE_SIZE = MIB  # F_SETPIPE_SZ for the splice relay (the default pipe holds 64 KiB)
F_SETPIPE_SZ = 1031
HAPROXY_NAMES = {False: "haproxy, no splice-response", True: "haproxy, splice-response"}


# ---- the origin and the splice relay (run as child processes of this file) -----------------
def read_head(conn: socket.socket) -> bytes:
    """The request head (up to the blank line); b"" when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def origin(path: Path, port: int) -> None:
    """HTTP/1.1 server: /healthcheck answers 200 "OK"; anything else gets the file (sendfile)."""
    size = path.stat().st_size
    listener = socket.create_server(("127.0.0.1", port), backlog=64)

    def serve(conn: socket.socket) -> None:
        with conn:
            while head := read_head(conn):
                if head.split(b" ", 2)[1] == b"/healthcheck":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % size)
                with path.open("rb") as body:
                    sent = 0
                    while sent < size:
                        sent += os.sendfile(conn.fileno(), body.fileno(), sent, size - sent)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def splice_relay(port: int, upstream: int) -> None:
    """TCP relay whose bytes stay in the kernel: socket -> pipe -> socket with os.splice."""
    listener = socket.create_server(("127.0.0.1", port), backlog=64)

    def pump(src: socket.socket, dst: socket.socket) -> None:
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_SIZE)
            while (moved := os.splice(src.fileno(), write_end, PIPE_SIZE)) > 0:
                while moved:
                    moved -= os.splice(read_end, dst.fileno(), moved)
        except OSError:
            pass  # a peer went away: the other direction ends too
        finally:
            os.close(read_end)
            os.close(write_end)
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    continue

    def relay(client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", upstream))
        back = threading.Thread(target=pump, args=(server, client), daemon=True)
        back.start()
        pump(client, server)
        back.join()
        client.close()
        server.close()

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=relay, args=(conn,), daemon=True).start()


# ---- the measurement -----------------------------------------------------------------------
def process_cpu(pid: int) -> float:
    """CPU seconds of a process, its threads and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_of(parties: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each party (a pid) and the curl children spent inside the block."""
    before = {name: process_cpu(pid) for name, pid in parties.items()}
    curl_before = children_cpu()
    out: dict[str, float] = {}
    yield out
    for name, pid in parties.items():
        out[name] = process_cpu(pid) - before[name]
    out["curl"] = children_cpu() - curl_before


def download(port: int, streams: int) -> float:
    """Seconds for `streams` concurrent curl downloads of the body (discarded)."""
    curl = ["curl", "-sS", "--fail", "-o", "/dev/null", f"http://127.0.0.1:{port}/image"]
    return concurrent_wall([curl] * streams)


def wait_answers(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on :{port}")


def haproxy_config(work: Path, splice: bool) -> Path:
    """The charm's rendered haproxy.cfg with the origin as its one server (and splicing)."""
    from glance_charm.workload.haproxy_config import Backend, HaproxyConfig

    origin_server = Backend(unit="glance/0", address="127.0.0.1", port=ORIGIN_PORT)
    cfg = HaproxyConfig(backends=(origin_server,),
                        frontend_port=HAPROXY_PORTS[splice], bind_address="127.0.0.1",
                        user=None, group=None, chroot=None,
                        stats_socket=str(work / f"haproxy-{int(splice)}.sock"))
    text = cfg.render().decode()
    rendered = "    option splice-response\n" in text  # the charm splices since RESULTS.md §10
    if splice and not rendered:
        text = text.replace("    option httplog\n",
                            "    option httplog\n    option splice-response\n")
    elif rendered and not splice:
        text = text.replace("    option splice-response\n", "    no option splice-response\n")
    assert ("    option splice-response\n" in text) == splice
    path = work / f"haproxy-{int(splice)}.cfg"
    path.write_text(text.replace("log /dev/log", "log stdout"))
    return path


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def measure(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    body = work / "body.bin"
    with body.open("wb") as handle:
        block = os.urandom(MIB)
        for _ in range(options.size_mib):
            handle.write(block)
    subprocess.run(["cat", str(body)], check=True, stdout=subprocess.DEVNULL)  # page cache
    me = [sys.executable, os.path.abspath(__file__)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["origin"] = start([*me, "--serve-origin", str(body)])
        wait_answers(ORIGIN_PORT)
        for splice in (False, True):
            procs[HAPROXY_NAMES[splice]] = start(
                ["haproxy", "-db", "-f", str(haproxy_config(work, splice))])
        procs["socat"] = start(["socat", "-b", str(256 * 1024),
                                f"TCP-LISTEN:{SOCAT_PORT},bind=127.0.0.1,fork,reuseaddr",
                                f"TCP:127.0.0.1:{ORIGIN_PORT}"])
        procs["splice relay"] = start([*me, "--serve-splice"])
        paths: dict[str, tuple[int, str | None]] = {
            "direct": (ORIGIN_PORT, None),
            **{name: (HAPROXY_PORTS[splice], name) for splice, name in HAPROXY_NAMES.items()},
            "socat": (SOCAT_PORT, "socat"),
            "splice relay": (SPLICE_PORT, "splice relay"),
        }
        for port, _ in paths.values():
            wait_answers(port)
        seconds: dict[str, dict[int, list[float]]] = {p: {n: [] for n in STREAMS} for p in paths}
        cpu: dict[str, dict[int, list[dict[str, float]]]] = {
            p: {n: [] for n in STREAMS} for p in paths}
        for rep in range(options.reps):
            order = list(paths) if rep % 2 == 0 else list(paths)[::-1]
            for path in order:
                port, relay = paths[path]
                for streams in STREAMS:
                    parties = {"origin": procs["origin"].pid}
                    if relay:
                        parties["relay"] = procs[relay].pid
                    with cpu_of(parties) as used:
                        seconds[path][streams].append(download(port, streams))
                    cpu[path][streams].append(used)
            print(f"{time.strftime('%H:%M:%S')} rep {rep + 1}/{options.reps} done",
                  file=sys.stderr, flush=True)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return summarise(options, seconds, cpu)


def summarise(options: argparse.Namespace, seconds: dict[str, dict[int, list[float]]],
              cpu: dict[str, dict[int, list[dict[str, float]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"size_mib": options.size_mib, "reps": options.reps, "paths": {}}
    for path, by_streams in seconds.items():
        entry: dict[str, Any] = {}
        for streams, values in by_streams.items():
            rates = [options.size_mib * streams / s for s in values]
            gib = options.size_mib * streams / 1024
            per_gib = {party: round(statistics.median(u.get(party, 0.0) for u in
                                                      cpu[path][streams]) / gib, 3)
                       for party in ("origin", "relay", "curl")}
            entry[str(streams)] = {"mib_s": (max(rates), statistics.median(rates)),
                                   "cpu_s_per_gib": per_gib}
        out["paths"][path] = entry
    direct = out["paths"]["direct"]
    for entry in out["paths"].values():
        for count, cell in entry.items():
            ref = direct[count]["mib_s"]
            cell["vs_direct"] = tuple(round(a / b, 2) for a, b in zip(cell["mib_s"], ref,
                                                                       strict=True))
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"#### Relay floor: {result['size_mib']} MiB bodies, best / median of "
             f"{result['reps']} reps\n",
             "| path | streams | MiB/s | / direct | CPU s/GiB: origin / relay / curl |",
             "|---|---:|---:|---:|---|"]
    for path, entry in result["paths"].items():
        for streams, cell in entry.items():
            best, median = cell["mib_s"]
            c = cell["cpu_s_per_gib"]
            lines.append(f"| {path} | {streams} | {best:.0f} / {median:.0f} | "
                         f"{cell['vs_direct'][0]:.2f} / {cell['vs_direct'][1]:.2f} | "
                         f"{c['origin']:.2f} / {c['relay']:.2f} / {c['curl']:.2f} |")
    machine = result.get("machine", {})
    lines.append(f"\nMachine: {machine.get('nproc')} CPUs, {machine.get('date')}, load average "
                 f"before {machine.get('load_before')}, after {machine.get('load_after')}. "
                 f"Charm: {result.get('charm')}.")
    return "\n".join(lines)


def reexec_in_netns() -> None:
    """Re-run in a private network namespace with its loopback up (nothing else shared)."""
    if os.environ.get("RELAY_FLOOR_NETNS"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    os.environ["RELAY_FLOOR_NETNS"] = "1"
    unshare = shutil.which("unshare") or "unshare"
    os.execv(unshare, [unshare, "--net", "--", sys.executable,  # noqa: S606
                       os.path.abspath(__file__), *sys.argv[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--source", choices=("head", "worktree"), default="head",
                        help="the charm's haproxy.cfg from git HEAD (default) or the work tree")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve-origin", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-splice", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    serve: Callable[[], None] | None = None
    if options.serve_origin:
        serve = lambda: origin(options.serve_origin, ORIGIN_PORT)  # noqa: E731
    elif options.serve_splice:
        serve = lambda: splice_relay(SPLICE_PORT, ORIGIN_PORT)  # noqa: E731
    if serve is not None:
        serve()
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (a private network namespace)")
    reexec_in_netns()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="glance-relay-floor-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        charm = run_hooks.snapshot(work / "code", options.source, run_hooks.CHARM_FILES)
        sys.path.insert(0, str(work / "code/src"))
        result = measure(options, work)
    result["charm"] = charm
    result["machine"] = {"nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                         "load_before": load_before,
                         "load_after": load_average()}
    if options.json:
        options.json.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

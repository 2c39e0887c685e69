"""Data-plane throughput of the glance-api the charm configures, against this machine's ceilings.

Uses the functional driver (``tests/functional/driver.GlanceStack``): real mariadb + keystone,
the charm (through ``ops.testing.Harness`` with its production workload) writing
``/etc/glance/glance-api.conf`` and starting glance-api with the local file store, loopback.

Measured side by side in one run, for each tuning variant:

* single-stream upload of an N MiB image (``curl -T``, Content-Length) vs its ceiling: the time
  ``md5sum`` plus ``sha512sum`` take on the same file (glance hashes every byte with md5 for
  ``checksum`` and ``hashing_algorithm`` for ``os_hash_value``); target >= 0.8x;
* download (``curl -o /dev/null``) vs ``cat <stored file> > /dev/null``; target >= 0.8x;
* 4 concurrent uploads: aggregate MiB/s vs the single stream; target >= 1.6x.

Variants: the charm as is; ``worker-multiplier`` and ``hashing-algorithm`` set through the
charm's config; and an option the charm's template does not set
(``[local] filesystem_store_chunk_size``) applied by editing the rendered file and restarting
glance-api (nothing under src/ or templates/ is changed; the charm's file is restored at the end).

Safety on a shared machine: waits until ports 3306/5000/9292 are free and no glance-api or
keystone runs (it never stops what it did not start), and runs in the functional tier's sandbox
(tests/functional/sandbox.py: private mount, network and pid namespaces, its own loopback
ports, /etc/glance, /run and /var/lib/glance, so images land there, not in the machine's
store; nothing it starts outlives it). Needs root; about 20 s to start the stack.

Usage: ``sudo .venv/bin/python bench/dataplane.py [--size-mib 512] [--reps 3] [--smoke]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import configparser
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import run_hooks

PORTS = (3306, 5000, 9292, 9282)  # mariadb, keystone, haproxy frontend, glance-api backend
BACKEND_URL = "http://127.0.0.1:9282"  # glance-api itself, behind the charm's haproxy
BUSY_PROCESSES = ("/usr/bin/glance-api", "keystone-wsgi-public", "mariadbd",
                  "haproxy -f /etc/haproxy/haproxy.cfg")
SNAPSHOT_PATHS = (*run_hooks.CHARM_FILES, "tests")
GLANCE_CONF = Path("/etc/glance/glance-api.conf")
MIB = 1024 * 1024


# ---- waiting for a free machine -------------------------------------------------------------
def busy_reasons() -> list[str]:
    """Why the stack cannot start now: ports in use, or glance/keystone/mariadb running."""
    reasons = []
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True,
                               check=False).stdout
    for port in PORTS:
        if any(line.split()[3].endswith(f":{port}") for line in listening.splitlines()
               if len(line.split()) > 3):
            reasons.append(f"port {port} in use")
    for pattern in BUSY_PROCESSES:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True,
                               check=False).stdout.split()
        if found:
            reasons.append(f"{pattern} running (pids {' '.join(found)})")
    return reasons


def wait_for_free_machine(timeout: float, interval: float = 15.0) -> None:
    """Poll until nobody else's stack runs; never touch their processes."""
    deadline = time.monotonic() + timeout
    while reasons := busy_reasons():
        if time.monotonic() > deadline:
            raise SystemExit(f"machine still busy after {timeout:.0f} s: {'; '.join(reasons)}")
        print(f"waiting: {'; '.join(reasons)}", file=sys.stderr, flush=True)
        time.sleep(interval)


# ---- timing primitives ----------------------------------------------------------------------
def wall(cmd: list[str], **kwargs: Any) -> float:
    """Seconds a command takes (output discarded)."""
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def cat_seconds(path: Path) -> float:
    """`cat path > /dev/null` (page cache warm: read once before)."""
    subprocess.run(["cat", str(path)], check=True, stdout=subprocess.DEVNULL)
    return wall(["cat", str(path)])


@dataclass
class Api:
    """glance's image API over curl, with a keystone token kept in a 0600 header file."""

    endpoint: str
    header_file: Path

    def curl(self, *args: str) -> tuple[float, str]:
        """Run curl with the token header; return (seconds, http status)."""
        cmd = ["curl", "-sS", "--fail-with-body", "-H", f"@{self.header_file}",
               "-o", "/dev/null", "-w", "%{http_code}", *args]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"curl {args[:2]} failed ({proc.returncode}): "
                               f"{proc.stdout} {proc.stderr[-300:]}")
        return seconds, proc.stdout

    def upload(self, image_id: str, source: Path) -> float:
        """PUT the file as the image data (Content-Length, streamed by curl, no 100-continue)."""
        seconds, _ = self.curl("-T", str(source), "-X", "PUT", "-H", "Expect:", "-H",
                               "Content-Type: application/octet-stream",
                               f"{self.endpoint}/v2/images/{image_id}/file")
        return seconds

    def download(self, image_id: str) -> float:
        """GET the image data into /dev/null."""
        seconds, _ = self.curl(f"{self.endpoint}/v2/images/{image_id}/file")
        return seconds


# ---- one variant ----------------------------------------------------------------------------
@dataclass
class Variant:
    """A configuration to measure: how to apply it to the running stack."""

    name: str
    apply: Callable[[], None]
    note: str = ""
    endpoint: str | None = None  # None: the catalog's (haproxy); else e.g. the backend

def mib_s(size_mib: int, seconds: float) -> float:
    """Throughput."""
    return size_mib / seconds if seconds > 0 else float("inf")


def process_cpu() -> dict[int, tuple[str, float]]:
    """Map pid to (glance-api|haproxy, CPU seconds) for the processes of our mount namespace."""
    mine = os.readlink("/proc/self/ns/mnt")
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if os.readlink(entry / "ns" / "mnt") != mine:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = ("glance-api" if "/usr/bin/glance-api" in cmdline else
                "haproxy" if cmdline.startswith("/usr/sbin/haproxy") else None)
        if name:
            out[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine so far (/proc/stat): processes, softirq, steal, iowait."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, iowait, irq, softirq, steal = fields[:8]
    return {"processes": (user + nice + system) / tick, "softirq": (irq + softirq) / tick,
            "steal": steal / tick, "iowait": iowait / tick}


@dataclass
class CpuUse:
    """CPU seconds spent during one phase: glance-api per process, haproxy, our curl clients."""

    glance: dict[int, float]
    haproxy: float
    client: float
    seconds: float = 0.0
    machine: dict[str, float] | None = None  # busy/iowait CPU seconds of the whole machine

    def per_gib(self, gib: float) -> dict[str, float]:
        """CPU seconds per GiB moved, by party."""
        total_glance = sum(self.glance.values())
        return {"glance-api": round(total_glance / gib, 2),
                "haproxy": round(self.haproxy / gib, 2),
                "curl": round(self.client / gib, 2),
                "total": round((total_glance + self.haproxy + self.client) / gib, 2)}

    def cores(self) -> dict[str, float]:
        """Average cores in use during the phase: ours, other processes, irq, steal, iowait."""
        ours = sum(self.glance.values()) + self.haproxy + self.client
        machine = self.machine or dict.fromkeys(("processes", "softirq", "steal", "iowait"), 0.0)
        span = self.seconds or 1.0
        return {"ours": round(ours / span, 2),
                "others": round(max(0.0, machine["processes"] - ours) / span, 2),
                "softirq": round(machine["softirq"] / span, 2),
                "steal": round(machine["steal"] / span, 2),
                "iowait": round(machine["iowait"] / span, 2)}

    def worker_shares(self) -> list[float]:
        """Share of glance CPU per worker that did real work (>2%), largest first."""
        total = sum(self.glance.values()) or 1.0
        return sorted((round(v / total, 2) for v in self.glance.values() if v / total > 0.02),
                      reverse=True)


@contextlib.contextmanager
def cpu_use() -> Iterator[CpuUse]:
    """Measure the CPU glance-api, haproxy and the curl children use inside the block."""
    before = process_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = machine_cpu()
    started = time.perf_counter()
    use = CpuUse({}, 0.0, 0.0)
    yield use
    use.seconds = time.perf_counter() - started
    use.machine = {k: v - machine[k] for k, v in machine_cpu().items()}
    after = process_cpu()
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    for pid, (name, seconds) in after.items():
        delta = seconds - before.get(pid, (name, 0.0))[1]
        if name == "glance-api":
            use.glance[pid] = delta
        else:
            use.haproxy += delta
    use.client = (done.ru_utime - children.ru_utime) + (done.ru_stime - children.ru_stime)


class DataPlane:
    """The stack plus the measurements."""

    def __init__(self, stack: Any, work: Path, size_mib: int) -> None:
        self.stack = stack
        self.work = work
        self.size_mib = size_mib
        self.client = stack.image_client()
        self.source = work / f"image-{size_mib}m.bin"
        header = work / "token.hdr"
        header.touch(mode=0o600)
        header.write_text(f"X-Auth-Token: {stack.keystone.token()}\n")
        self.catalog_endpoint = self.client.endpoint.rstrip("/").removesuffix("/v2")
        self.api = Api(self.catalog_endpoint, header)

    def prepare_source(self) -> str:
        """Write the random test image; return its sha256."""
        from tests.functional import realstack

        return realstack.make_random_file(self.source, self.size_mib, seed=7)

    def new_image(self, name: str) -> str:
        """Create a queued image record."""
        return str(self.client.create_image(name)["id"])

    def stored_file(self, image_id: str) -> Path:
        """Where the local store keeps the image."""
        datadir = self.stack.charm.config.get("filesystem-store-datadir") or \
            "/var/lib/glance/images/"
        return Path(datadir) / image_id

    def measure(self, reps: int, concurrency: int, endpoint: str | None = None
                ) -> dict[str, Any]:
        """Ceiling, single upload, download, cat and concurrent uploads, `reps` times."""
        self.api.endpoint = endpoint or self.catalog_endpoint
        rows: dict[str, list[float]] = {key: [] for key in (
            "md5sum_s", "sha512sum_s", "ceiling_s", "upload_s", "download_s", "cat_stored_s",
            "concurrent_wall_s")}
        cpu: dict[str, list[CpuUse]] = {"upload": [], "download": [], "concurrent": []}
        cat_seconds(self.source)  # page cache warm for the hashing tools and curl
        for rep in range(reps):
            md5 = wall(["md5sum", str(self.source)])
            sha = wall(["sha512sum", str(self.source)])
            rows["md5sum_s"].append(md5)
            rows["sha512sum_s"].append(sha)
            rows["ceiling_s"].append(md5 + sha)
            image = self.new_image(f"bench-single-{rep}")
            with cpu_use() as use:
                rows["upload_s"].append(self.api.upload(image, self.source))
            cpu["upload"].append(use)
            self.client.wait_for_status(image, "active")
            with cpu_use() as use:
                rows["download_s"].append(self.api.download(image))
            cpu["download"].append(use)
            rows["cat_stored_s"].append(cat_seconds(self.stored_file(image)))
            self.client.delete_image(image)
            with cpu_use() as use:
                rows["concurrent_wall_s"].append(self.concurrent(concurrency, rep))
            cpu["concurrent"].append(use)
        return self.summarise(rows, cpu, concurrency)

    def concurrent(self, count: int, rep: int) -> float:
        """Upload `count` images at once; return wall time until the last finished."""
        images = [self.new_image(f"bench-concurrent-{rep}-{i}") for i in range(count)]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda image: self.api.upload(image, self.source), images))
        seconds = time.perf_counter() - started
        for image in images:
            self.client.wait_for_status(image, "active")
            self.client.delete_image(image)
        return seconds

    def summarise(self, rows: dict[str, list[float]], cpu: dict[str, list[CpuUse]],
                  concurrency: int) -> dict[str, Any]:
        """Best of the reps (least time: noise from other load only ever adds), and ratios."""
        best = {key: min(values) for key, values in rows.items()}
        size = self.size_mib
        upload = mib_s(size, best["upload_s"])
        aggregate = mib_s(size * concurrency, best["concurrent_wall_s"])
        gib = size / 1024
        return {
            "raw_s": {key: [round(v, 3) for v in values] for key, values in rows.items()},
            "md5sum_mib_s": mib_s(size, best["md5sum_s"]),
            "sha512sum_mib_s": mib_s(size, best["sha512sum_s"]),
            "ceiling_mib_s": mib_s(size, best["ceiling_s"]),
            "upload_mib_s": upload,
            "upload_vs_ceiling": best["ceiling_s"] / best["upload_s"],
            "download_mib_s": mib_s(size, best["download_s"]),
            "cat_stored_mib_s": mib_s(size, best["cat_stored_s"]),
            "download_vs_cat": best["cat_stored_s"] / best["download_s"],
            "concurrent_aggregate_mib_s": aggregate,
            "concurrent_vs_single": aggregate / upload,
            "cpu_s_per_gib": {
                phase: min((use.per_gib(gib * (concurrency if phase == "concurrent" else 1))
                            for use in uses), key=lambda d: d["total"])
                for phase, uses in cpu.items()},
            "concurrent_worker_shares": max((use.worker_shares() for use in cpu["concurrent"]),
                                            key=len, default=[]),
            "cores": {phase: max((use.cores() for use in uses), key=lambda d: d["ours"])
                      for phase, uses in cpu.items()},
            "workers": self.workers(),
        }

    def workers(self) -> str:
        """`workers` of the running config."""
        return read_option("DEFAULT", "workers") or "?"

    def verify_round_trip(self, expected_sha256: str) -> bool:
        """One download through the python client with sha256: the bytes are the same."""
        image = self.new_image("bench-verify")
        self.client.upload(image, self.source)
        self.client.wait_for_status(image, "active")
        got = self.client.download(image, "/dev/null", sha256=True)
        self.client.delete_image(image)
        return got.sha256 == expected_sha256


# ---- tuning ---------------------------------------------------------------------------------
def read_option(section: str, key: str) -> str | None:
    """A value of the rendered glance-api.conf."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(GLANCE_CONF.read_text())
    return parser.get(section, key, fallback=None)


def set_options(changes: dict[tuple[str, str], str | None]) -> None:
    """Edit the rendered glance-api.conf in place (owner/mode kept): add/replace/remove keys."""
    lines = GLANCE_CONF.read_text().splitlines()
    for (section, key), value in changes.items():
        start = lines.index(f"[{section}]")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
                   len(lines))
        found = [i for i in range(start + 1, end) if lines[i].split("=")[0].strip() == key]
        for i in reversed(found):
            del lines[i]
            end -= 1
        if value is not None:
            lines.insert(start + 1, f"{key} = {value}")
    GLANCE_CONF.write_text("\n".join(lines) + "\n")


def settle_healthy(timeout: float = 120.0, needed: int = 6) -> None:
    """Wait until glance-api (:9282) and haproxy (:9292) both answer /healthcheck repeatedly.

    `needed` answers in a row, a second apart: haproxy marks a restarted backend down a few
    health checks late, so one good answer right after a restart proves little.
    """
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < needed:
        if time.monotonic() > deadline:
            raise RuntimeError("glance-api/haproxy not healthy after restart")
        ok = all(_answers(f"http://127.0.0.1:{port}/healthcheck") for port in (9282, 9292))
        streak = streak + 1 if ok else 0
        time.sleep(1.0)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def restart_glance(stack: Any) -> None:
    """Restart glance-api through the same `service` command the charm uses; wait healthy."""
    subprocess.run(["service", "glance-api", "restart"], check=True, capture_output=True,
                   env=_system_env())
    settle_healthy()


def _system_env() -> dict[str, str]:
    from glance_charm.workload.service import system_env

    return system_env()


def charm_config(stack: Any, **values: float | str | None) -> Callable[[], None]:
    """A variant applied through the charm: update config (config-changed renders+restarts)."""
    def apply() -> None:
        update = {k.replace("_", "-"): v for k, v in values.items() if v is not None}
        unset = [k.replace("_", "-") for k, v in values.items() if v is None]
        stack.harness.update_config(update, unset=unset)
        settle_healthy()
    return apply


def template_options(stack: Any, changes: dict[tuple[str, str], str | None]
                     ) -> Callable[[], None]:
    """A variant the template would have to render: edit the file, restart glance-api."""
    def apply() -> None:
        set_options(changes)
        restart_glance(stack)
    return apply


HAPROXY_CFG = Path("/etc/haproxy/haproxy.cfg")


def both_then(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    """Apply `first`, then `second`."""
    def apply() -> None:
        first()
        second()
    return apply


def haproxy_lines(restore: Callable[[], None], section: str, lines: tuple[str, ...]
                  ) -> Callable[[], None]:
    """A haproxy.cfg lever the template does not render: add lines to a section, reload.

    The charm's own file first (restore: a config-changed re-renders it when it differs),
    then the lines after the section's header; haproxy reloads (`service haproxy reload`).
    """
    def apply() -> None:
        restore()
        text = HAPROXY_CFG.read_text()
        header = f"\n{section}\n" if section in ("global", "defaults") else f"\n{section} "
        at = text.index(header) + len(header)
        if section not in ("global", "defaults"):
            at = text.index("\n", at) + 1
        HAPROXY_CFG.write_text(text[:at] + "".join(f"    {line}\n" for line in lines)
                               + text[at:])
        subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], check=True,
                       capture_output=True, env=_system_env())
        subprocess.run(["service", "haproxy", "reload"], check=True, capture_output=True,
                       env=_system_env())
        settle_healthy()
    return apply


def variants(stack: Any, smoke: bool) -> list[Variant]:
    """What is tried, in order (each on top of a fresh charm render unless stated)."""
    cpus = os.cpu_count() or 1
    restore = charm_config(stack, worker_multiplier=None, hashing_algorithm=None)
    out = [Variant("charm default (worker-multiplier unset), through haproxy :9292", restore)]
    if smoke:
        return out
    out.append(Variant("charm default, direct to glance-api :9282 (no haproxy)", restore,
                       endpoint=BACKEND_URL))
    splice = ("option splice-request", "option splice-response")
    bufsize = ("tune.bufsize 65536", "tune.maxrewrite 1024")
    out += [
        Variant("haproxy: option splice-request/-response",
                haproxy_lines(restore, "defaults", splice)),
        Variant("haproxy: tune.bufsize 64 KiB", haproxy_lines(restore, "global", bufsize)),
        Variant("haproxy: splice + tune.bufsize 64 KiB", both_then(
            haproxy_lines(restore, "global", bufsize),
            haproxy_lines(lambda: None, "defaults", splice))),
    ]
    out += [
        Variant("worker-multiplier=0.5", charm_config(stack, worker_multiplier=0.5),
                f"{max(1, int(cpus * 0.5))} workers"),
        Variant("worker-multiplier=1", charm_config(stack, worker_multiplier=1.0),
                f"{cpus} workers"),
        Variant("worker-multiplier=4", charm_config(stack, worker_multiplier=4.0),
                f"{cpus * 4} workers"),
    ]

    def default_then(changes: dict[tuple[str, str], str | None]) -> Callable[[], None]:
        def apply() -> None:
            restore()
            template_options(stack, changes)()
        return apply

    chunk = ("local", "filesystem_store_chunk_size")
    hashing = ("DEFAULT", "hashing_algorithm")
    out += [
        Variant("template: filesystem_store_chunk_size=1 MiB", default_then({chunk: str(MIB)})),
        Variant("template: filesystem_store_chunk_size=4 MiB",
                default_then({chunk: str(4 * MIB)})),
        Variant("hashing-algorithm=sha256", charm_config(stack, hashing_algorithm="sha256")),
        Variant("hashing-algorithm=sha256 + template: chunk 1 MiB",
                default_then({hashing: "sha256", chunk: str(MIB)})),
    ]
    return out


# ---- main -----------------------------------------------------------------------------------
def hash_speeds() -> dict[str, float]:
    """In-process hashlib MiB/s of /usr/bin/python3 (glance's interpreter), 256 MiB each."""
    code = (
        "import hashlib,os,time,json\n"
        "b=os.urandom(64<<20);r={}\n"
        "for n in ('md5','sha256','sha512','sha1','blake2b'):\n"
        "  h=hashlib.new(n);t=time.perf_counter()\n"
        "  for _ in range(4):\n"
        "    for i in range(0,len(b),1<<16): h.update(b[i:i+(1<<16)])\n"
        "  r[n]=256/(time.perf_counter()-t)\n"
        "print(json.dumps(r))\n"
    )
    out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                         check=True, env=_system_env()).stdout
    return {k: round(v) for k, v in json.loads(out).items()}


def markdown(result: dict[str, Any]) -> str:
    """Tables for bench/RESULTS.md."""
    size = result["size_mib"]
    lines = [
        f"Charm and functional driver: {result.get('charm')}.",
        f"\n#### Data plane: {size} MiB image, local file store, loopback "
        f"(best of {result['reps']} reps; round trip sha256 equal: {result['verified']})\n",
        "| variant | workers | ceiling md5+sha512 MiB/s | upload MiB/s | upload / ceiling "
        "(>= 0.8) | cat stored MiB/s | download MiB/s | download / cat (>= 0.8) | "
        "4 concurrent MiB/s | concurrent / single (>= 1.6) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["variants"].items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} |")
            continue
        lines.append(
            f"| {name} | {r['workers']} | {r['ceiling_mib_s']:.0f} | {r['upload_mib_s']:.0f} | "
            f"{r['upload_vs_ceiling']:.2f} | {r['cat_stored_mib_s']:.0f} | "
            f"{r['download_mib_s']:.0f} | {r['download_vs_cat']:.2f} | "
            f"{r['concurrent_aggregate_mib_s']:.0f} | {r['concurrent_vs_single']:.2f} |")
    lines += ["\nCPU seconds per GiB moved (best rep), by process; glance workers' shares of "
              "glance CPU during the 4 concurrent uploads:\n",
              "| variant | upload: glance / haproxy / curl / total | download: glance / haproxy / "
              "curl / total | 4 concurrent: total | worker shares | cores busy in 4 concurrent: "
              "ours / other processes / irq / steal / iowait |",
              "|---|---|---|---|---|---|"]
    def parts(d: dict[str, float]) -> str:
        return f"{d['glance-api']} / {d['haproxy']} / {d['curl']} / {d['total']}"

    for name, r in result["variants"].items():
        if "cpu_s_per_gib" not in r:
            continue
        c = r["cpu_s_per_gib"]
        cores = r.get("cores", {}).get("concurrent", {})
        lines.append(f"| {name} | {parts(c['upload'])} | {parts(c['download'])} | "
                     f"{c['concurrent']['total']} | {r['concurrent_worker_shares']} | "
                     f"{cores.get('ours')} / {cores.get('others')} / {cores.get('softirq')} / "
                     f"{cores.get('steal')} / {cores.get('iowait')} |")
    first = next(iter(result["variants"].values()))
    if "md5sum_mib_s" in first:
        lines.append(f"\n`md5sum` {first['md5sum_mib_s']:.0f} MiB/s, `sha512sum` "
                     f"{first['sha512sum_mib_s']:.0f} MiB/s (coreutils, same file, same run); "
                     f"python hashlib in-process MiB/s: {result['hashlib_mib_s']}.")
    m = result["machine"]
    lines.append(f"\nMachine: {m['nproc']} CPUs, {m['uname']}; {m['date']}; load average "
                 f"before {m['load_before']}, after {m['load_after']}. Stack start "
                 f"{result['stack_start_s']:.1f} s.")
    return "\n".join(lines) + "\n"


def own_processes(pattern: str) -> list[int]:
    """PIDs matching pattern that live in this process's private mount namespace (ours)."""
    mine = os.readlink("/proc/self/ns/mnt")
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True,
                           check=False).stdout.split()
    pids = []
    for pid in found:
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") == mine and int(pid) != os.getpid():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


OWN_LEFTOVERS = ("haproxy -f /etc/haproxy/haproxy.cfg", "/usr/bin/glance-api", "mariadbd",
                 "keystone-wsgi-public")


def stop_own_leftovers(private_namespace: bool) -> list[int]:
    """SIGTERM what we started that is still running after the driver's stop().

    The driver does not stop the haproxy the charm starts; a failed start may leave more.
    Only processes in our private mount namespace are touched (never anyone else's).
    """
    if not private_namespace:
        return []
    pids = [pid for pattern in OWN_LEFTOVERS for pid in own_processes(pattern)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pids


def measure_variants(stack: Any, options: argparse.Namespace, result: dict[str, Any],
                     save: Callable[[], None]) -> None:
    """Apply and measure every variant; a failing one is recorded, the others still run."""
    with tempfile.TemporaryDirectory(prefix="glance-dataplane-", dir="/var/tmp") as tmp:
        plane = DataPlane(stack, Path(tmp), options.size_mib)
        digest = plane.prepare_source()
        result["verified"] = plane.verify_round_trip(digest)
        wanted = [word for word in options.variants.split(",") if word]
        for variant in variants(stack, options.smoke):
            if wanted and not any(word in variant.name for word in wanted):
                continue
            print(f"measuring: {variant.name}", file=sys.stderr, flush=True)
            try:
                variant.apply()
                numbers = plane.measure(options.reps, 4, variant.endpoint)
            except Exception as err:  # one failed variant must not lose the others
                numbers = {"error": f"{type(err).__name__}: {err}"}
            result["variants"][variant.name] = numbers
            print(json.dumps({k: v for k, v in numbers.items() if k != "raw_s"}, default=str),
                  file=sys.stderr, flush=True)
            save()
        try:
            charm_config(stack, worker_multiplier=None)()  # the charm's own file back
        except Exception as err:
            result["restore_error"] = f"{type(err).__name__}: {err}"


def run(options: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Start the stack from the snapshot, measure every variant, stop everything we started."""
    import platform

    from tests.functional.driver import GlanceStack

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result: dict[str, Any] = {"size_mib": options.size_mib, "reps": options.reps,
                              "variants": {}, "command": " ".join(sys.argv),
                              "charm": options.charm_label, "verified": None}
    stack = GlanceStack()
    started = time.monotonic()
    try:
        stack.start()
        stack.relate_database()
        stack.relate_identity()
        stack.wait_healthy()
        result["stack_start_s"] = time.monotonic() - started
        settle_healthy()
        measure_variants(stack, options, result, lambda: save(result))
        result["hashlib_mib_s"] = hash_speeds()
    finally:
        stack.stop()
        result["stopped_leftovers"] = stop_own_leftovers(not options.no_namespace)
    result["machine"] = {
        "nproc": os.cpu_count(), "uname": " ".join(platform.uname()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    return result


def main() -> int:
    """Parse options, wait for a free machine, measure, print markdown (+ JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="64 MiB, 1 rep, default only")
    parser.add_argument("--source", choices=("head", "worktree"), default="head",
                        help="charm and functional driver from git HEAD (default) or work tree")
    parser.add_argument("--wait", type=float, default=1800.0,
                        help="seconds to wait for other stacks to finish")
    parser.add_argument("--no-namespace", action="store_true",
                        help="use the machine's /etc/glance and /var/lib/glance for real")
    parser.add_argument("--variants", default="",
                        help="only variants whose name has one of these comma-separated words")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (starts mariadb, keystone and glance-api)")
    if options.smoke:
        options.size_mib, options.reps = 64, 1
    if not options.no_namespace:
        reexec_in_sandbox()
    with tempfile.TemporaryDirectory(prefix="glance-dataplane-ns-", dir="/var/tmp") as tmp:
        code = Path(tmp) / "code"
        options.charm_label = run_hooks.snapshot(code, options.source, SNAPSHOT_PATHS)
        sys.path[:0] = [str(code / "src"), str(code)]
        if not options.no_namespace:
            pristine = run_hooks.save_pristine(Path(tmp))
            # only the charm's dirs: the real stack needs the machine's /run and dpkg database
            run_hooks.Sandbox(Path(tmp) / "sandbox", pristine, run_hooks.CHARM_DIRS).reset()
        return finish(options)


def reexec_in_sandbox() -> None:
    """Re-run this benchmark in the functional tier's sandbox (tests/functional/sandbox.py).

    Private mount, network and pid namespaces: its mariadb, keystone, haproxy and glance-api
    get their own loopback ports, /etc/glance, /run and state directories, so it neither
    waits for nor touches a stack running on the machine (`make local`'s), and nothing it
    started outlives it. Returns when running inside.
    """
    if os.environ.get("GLANCE_SANDBOX"):  # sandbox.ENV_ROOT (not imported: the snapshot's
        return  # tests package is the one to import, later)
    repo = Path(__file__).resolve().parents[1]
    os.execv(sys.executable, [sys.executable, str(repo / "tests/functional/sandbox.py"),  # noqa: S606
                              "--", sys.executable, os.path.abspath(__file__), *sys.argv[1:]])


def finish(options: argparse.Namespace) -> int:
    """Wait, measure, report (the JSON file is rewritten after every variant)."""
    def save(result: dict[str, Any]) -> None:
        if options.json:
            options.json.write_text(json.dumps(result, indent=1, default=str))

    wait_for_free_machine(options.wait)
    result = run(options, save)
    save(result)
    text = markdown(result)
    print(text)
    if options.markdown:
        options.markdown.write_text(text)
    return 0 if all("error" not in v for v in result["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

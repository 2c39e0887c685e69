"""Data-plane throughput of the glance-api the charm configures, against this machine's ceilings.

Uses the functional driver (``tests/functional/driver.GlanceStack``): real mariadb + keystone,
the charm (through ``ops.testing.Harness`` with its production workload) writing
``/etc/glance/glance-api.conf`` and starting glance-api and haproxy, loopback; with the swift
store, the functional tier's real swift (``tests/functional/swiftstack.SwiftStack``: account,
container, object servers and a keystone-authenticated proxy) related on ``object-store``, so
glance has two stores, ``local`` (file) and ``swift``; with the ceph store, the functional
tier's real ceph (``tests/functional/cephstack``: mon, mgr and a memstore OSD, the broker
request answered as ceph-mon's leader does) related on ``ceph``, store ``ceph`` (rbd). Each
upload names its store (``X-Image-Meta-Store``).

One run measures, side by side, for each variant (a lever) and each cell (store x image size),
``--reps`` times, alternating which endpoint goes first:

* through the charm's haproxy (:9292, the catalog's endpoint) and direct to glance-api (:9282),
  each at 1 stream and 4 concurrent streams, upload (``curl -T``, Content-Length) and download
  (``curl -o /dev/null``) -- the ratio through haproxy / direct at the same stream count;
* the physical limit, once a rep: for upload the time ``md5sum`` plus ``sha512sum`` take on the
  source (glance hashes every byte with md5 and ``hashing_algorithm``), for download ``cat`` of
  the stored file(s) (the local store's file; swift's object ``.data`` files written by that
  upload; for ceph, ``rbd export`` of the image), at 1 and at 4 concurrent -- the ratio
  direct / limit;
* CPU seconds per GiB moved by process (glance-api, haproxy, swift servers, ceph daemons, the
  curl clients): /proc/<pid>/stat utime+stime before/after, and the children's rusage for curl.

Each throughput is reported as best and median of the reps (MiB/s); ratios are best/best and
median/median. Variants: the charm's default; haproxy levers the template does not render
(lines added to or replaced in the charm's haproxy.cfg, ``haproxy -c``, reload); glance levers
(charm config, or options the template does not set, edited into the rendered glance-api.conf
and glance-api restarted). Nothing under src/ or templates/ is changed; the charm's files are
restored at the end. A lever is compared with the default in the same run, and by its own
through-haproxy/direct ratio (a haproxy lever leaves direct unchanged: the direct column is
the control for load).

Safety on a shared machine: waits until ports 3306/5000/9292 are free and no glance-api or
keystone runs (it never stops what it did not start), and runs in the functional tier's sandbox
(tests/functional/sandbox.py: private mount, network and pid namespaces, its own loopback
ports, /etc/glance, /run and /var/lib/glance, so images land there, not in the machine's
store; nothing it starts outlives it). Needs root and, for the swift store, the packages of
``swiftstack.SWIFT_PACKAGES`` installed; about 20 s to start the stack, 10 s for swift.

Usage: ``sudo python bench/dataplane.py [--sizes 64,1024] [--stores local,swift,ceph] [--reps 3]
[--reps-large 3] [--variants WORDS] [--smoke]``.
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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
STREAMS = 4  # concurrent streams
ENDPOINTS = ("haproxy", "direct")
PHASES = ("up1", "down1", f"up{STREAMS}", f"down{STREAMS}")
PROCESSES = ("glance-api", "haproxy", "swift", "ceph", "curl")
STORES = ("local", "swift", "ceph")
# RAM for the bench's ceph OSD (memstore): 4 streams of the largest image stored at once,
# and the images of one phase are deleted before the next
CEPH_MEMSTORE_BYTES = 6 * 1024 * MIB
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
def concurrent_wall(commands: Sequence[list[str]]) -> float:
    """Seconds until the last of `commands`, started together, finished (output discarded)."""
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for cmd in commands]
    codes = [proc.wait() for proc in procs]
    if any(codes):
        raise RuntimeError(f"{commands[0][:2]}: exit codes {codes}")
    return time.perf_counter() - started


def hash_command(path: Path) -> list[str]:
    """md5sum then sha512sum of `path`, in one shell (the upload's physical limit)."""
    return ["sh", "-c", 'md5sum "$1" >/dev/null && sha512sum "$1" >/dev/null', "sh", str(path)]


def cat_command(paths: Sequence[Path]) -> list[str]:
    """`cat` of the stored file(s) (the download's physical limit)."""
    return ["cat", *map(str, paths)]


def rbd_export_command(ceph: Any, pool: str, image: str) -> list[str]:
    """`rbd export POOL/IMAGE -` as client.admin (the ceph store's download limit).

    librbd reading the whole image as glance's rbd driver does, minus glance: the rados
    reads from the OSD, without the HTTP hop and glance-api's Python loop.
    """
    # no admin socket: 4 concurrent exports would all try to bind client.admin's one path
    return ["rbd", "-c", str(ceph.conf), "--name", "client.admin", "--keyring",
            str(ceph.admin_keyring), "--admin-socket", "", "export", "--no-progress",
            f"{pool}/{image}", "-"]


@dataclass
class Api:
    """glance's image API over curl, with a keystone token kept in a 0600 header file."""

    endpoints: dict[str, str]  # "haproxy" / "direct" -> base URL
    header_file: Path
    chunked: bool = False  # Transfer-Encoding: chunked (as glanceclient), not Content-Length

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

    def upload(self, endpoint: str, image_id: str, source: Path, store: str) -> float:
        """PUT the file as the image data into `store` (no 100-continue).

        Content-Length by default (glance_store knows the size); chunked when asked, as
        glanceclient sends (the size is unknown to the store: swift segments it).
        """
        chunked = ("-H", "Transfer-Encoding: chunked") if self.chunked else ()
        seconds, _ = self.curl("-T", str(source), "-X", "PUT", "-H", "Expect:", "-H",
                               "Content-Type: application/octet-stream", *chunked,
                               "-H", f"X-Image-Meta-Store: {store}",
                               f"{self.endpoints[endpoint]}/v2/images/{image_id}/file")
        return seconds

    def download(self, endpoint: str, image_id: str) -> float:
        """GET the image data into /dev/null."""
        seconds, _ = self.curl(f"{self.endpoints[endpoint]}/v2/images/{image_id}/file")
        return seconds


# ---- one variant ----------------------------------------------------------------------------
Cell = tuple[str, int]  # (store, size MiB)


@dataclass
class Variant:
    """A configuration to measure: how to apply it to the running stack, and on which cells."""

    name: str
    apply: Callable[[], None]
    note: str = ""
    cells: Callable[[Cell], bool] = field(default=lambda cell: True)
    chunked: bool = False  # uploads with Transfer-Encoding: chunked
    baseline: str = "charm default"  # the variant it is compared with


def mib_s(size_mib: float, seconds: float) -> float:
    """Throughput."""
    return size_mib / seconds if seconds > 0 else float("inf")


def process_name(cmdline: str) -> str | None:
    """Which party a process is, by its command line (None: not one we account)."""
    if "/usr/bin/glance-api" in cmdline:
        return "glance-api"
    if cmdline.startswith("/usr/sbin/haproxy"):
        return "haproxy"
    if "/usr/bin/swift-" in cmdline and "-server" in cmdline:
        return "swift"
    if cmdline.startswith(("/usr/bin/ceph-osd", "/usr/bin/ceph-mon", "/usr/bin/ceph-mgr")):
        return "ceph"
    return None


def process_cpu() -> dict[int, tuple[str, float]]:
    """Map pid to (party, CPU seconds) for the processes of our mount namespace."""
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
        name = process_name(cmdline)
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
    """CPU seconds spent during one phase, by party, and the machine's."""

    by_party: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    machine: dict[str, float] | None = None  # busy/iowait CPU seconds of the whole machine

    def per_gib(self, gib: float) -> dict[str, float]:
        """CPU seconds per GiB moved, by party, and their total."""
        out = {name: self.by_party.get(name, 0.0) / gib for name in PROCESSES}
        out["total"] = sum(out.values())
        return out

    def others_cores(self) -> float:
        """Average cores other processes of the machine used during the phase."""
        if not self.machine or not self.seconds:
            return 0.0
        ours = sum(self.by_party.values())
        return max(0.0, self.machine["processes"] - ours) / self.seconds


@contextlib.contextmanager
def cpu_use() -> Iterator[CpuUse]:
    """Measure the CPU glance-api, haproxy, swift and the curl children use inside the block."""
    before = process_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = machine_cpu()
    started = time.perf_counter()
    use = CpuUse()
    yield use
    use.seconds = time.perf_counter() - started
    use.machine = {k: v - machine[k] for k, v in machine_cpu().items()}
    after = process_cpu()
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    for pid, (name, seconds) in after.items():
        delta = seconds - before.get(pid, (name, 0.0))[1]
        use.by_party[name] = use.by_party.get(name, 0.0) + delta
    use.by_party["curl"] = ((done.ru_utime - children.ru_utime)
                            + (done.ru_stime - children.ru_stime))


def best_median(values: Sequence[float]) -> tuple[float, float]:
    """(max, median): of throughputs, the best is the highest (load only ever lowers it)."""
    return max(values), statistics.median(values)


class DataPlane:
    """The stack plus the measurements."""

    def __init__(self, stack: Any, work: Path, swift: Any = None, ceph: Any = None) -> None:
        self.stack = stack
        self.work = work
        self.swift = swift
        self.ceph = ceph
        self.client = stack.image_client()
        header = work / "token.hdr"
        header.touch(mode=0o600)
        header.write_text(f"X-Auth-Token: {stack.keystone.token()}\n")
        catalog = self.client.endpoint.rstrip("/").removesuffix("/v2")
        self.api = Api({"haproxy": catalog, "direct": BACKEND_URL}, header)
        self.sources: dict[int, Path] = {}

    def prepare_source(self, size_mib: int) -> str:
        """Write the random test image of that size; return its sha256."""
        from tests.functional import realstack

        self.sources[size_mib] = self.work / f"image-{size_mib}m.bin"
        return realstack.make_random_file(self.sources[size_mib], size_mib, seed=7)

    def new_image(self, name: str) -> str:
        """Create a queued image record."""
        return str(self.client.create_image(name)["id"])

    def read_limit_commands(self, store: str, images: Sequence[str], since: float,
                            count: int) -> list[list[str]]:
        """Commands that read what the store holds of `images`, `count` at once.

        Files (local, swift): `cat` after a warm-up read (page cache warm, as the image glance
        just wrote), swift's files split between the streams. Ceph: `rbd export` per image
        (the memstore OSD keeps them in RAM).
        """
        if store == "ceph":
            pool = read_option("ceph", "rbd_store_pool") or "glance"
            return [rbd_export_command(self.ceph, pool, image) for image in images]
        stored = self.stored_files(store, images, since)
        for path in stored:
            subprocess.run(["cat", str(path)], check=True, stdout=subprocess.DEVNULL)
        parts = [stored[i::count] for i in range(count)]
        return [cat_command(part) for part in parts if part]

    def stored_files(self, store: str, images: Sequence[str], since: float) -> list[Path]:
        """Where the store keeps these images: the local file, or swift's .data files.

        Swift's object files are found by time: every ``.data`` file written since `since`
        (the phase uploads only these images; a segmented image has several, plus an empty
        manifest).
        """
        if store == "local":
            datadir = self.stack.charm.config.get("filesystem-store-datadir") or \
                "/var/lib/glance/images/"
            return [Path(datadir) / image for image in images]
        devices = self.swift.workdir / "devices"
        return sorted(path for path in devices.rglob("*.data")
                      if path.stat().st_mtime >= since - 1.0)

    def measure_cell(self, store: str, size_mib: int, reps: int) -> dict[str, Any]:
        """Every phase through haproxy and direct, plus the physical limits, `reps` times."""
        source = self.sources[size_mib]
        seconds: dict[str, dict[str, list[float]]] = {
            endpoint: {phase: [] for phase in PHASES} for endpoint in ENDPOINTS}
        limits: dict[str, list[float]] = {phase: [] for phase in PHASES}
        cpu: dict[str, dict[str, list[CpuUse]]] = {
            endpoint: {phase: [] for phase in PHASES} for endpoint in ENDPOINTS}
        subprocess.run(["cat", str(source)], check=True, stdout=subprocess.DEVNULL)  # warm
        for rep in range(reps):
            order = ENDPOINTS if rep % 2 == 0 else ENDPOINTS[::-1]
            for endpoint in order:
                first = endpoint == order[0]
                for streams in (1, STREAMS):
                    self.streams(store, source, endpoint, streams, rep, seconds[endpoint],
                                 cpu[endpoint], limits if first else None)
        return self.summarise(size_mib, seconds, limits, cpu)

    def streams(self, store: str, source: Path, endpoint: str, count: int, rep: int,
                seconds: dict[str, list[float]], cpu: dict[str, list[CpuUse]],
                limits: dict[str, list[float]] | None) -> None:
        """Upload `count` images at once, then download them at once; limits if asked."""
        images = [self.new_image(f"bench-{endpoint}-{count}-{rep}-{i}") for i in range(count)]
        since = time.time()
        with cpu_use() as use, concurrent.futures.ThreadPoolExecutor(count) as pool:
            started = time.perf_counter()
            list(pool.map(lambda image: self.api.upload(endpoint, image, source, store),
                          images))
            seconds[f"up{count}"].append(time.perf_counter() - started)
        cpu[f"up{count}"].append(use)
        for image in images:
            self.client.wait_for_status(image, "active")
        with cpu_use() as use, concurrent.futures.ThreadPoolExecutor(count) as pool:
            started = time.perf_counter()
            list(pool.map(lambda image: self.api.download(endpoint, image), images))
            seconds[f"down{count}"].append(time.perf_counter() - started)
        cpu[f"down{count}"].append(use)
        if limits is not None:
            limits[f"up{count}"].append(concurrent_wall([hash_command(source)] * count))
            limits[f"down{count}"].append(concurrent_wall(
                self.read_limit_commands(store, images, since, count)))
        for image in images:
            self.client.delete_image(image)

    def summarise(self, size_mib: int, seconds: dict[str, dict[str, list[float]]],
                  limits: dict[str, list[float]], cpu: dict[str, dict[str, list[CpuUse]]]
                  ) -> dict[str, Any]:
        """MiB/s best and median per endpoint and phase, ratios, CPU per GiB (median)."""
        def moved(phase: str) -> float:
            return size_mib * (1 if phase.endswith("1") else STREAMS)

        out: dict[str, Any] = {"raw_s": {**seconds, "limit": limits}}
        rate = {endpoint: {phase: [mib_s(moved(phase), s) for s in values]
                           for phase, values in phases.items()}
                for endpoint, phases in {**seconds, "limit": limits}.items()}
        out["mib_s"] = {endpoint: {phase: best_median(values) for phase, values in phases.items()
                                   if values}
                        for endpoint, phases in rate.items()}
        mib = out["mib_s"]
        out["haproxy_vs_direct"] = {
            phase: tuple(h / d for h, d in zip(mib["haproxy"][phase], mib["direct"][phase],
                                               strict=True))
            for phase in PHASES}
        out["direct_vs_limit"] = {
            phase: tuple(d / lim for d, lim in zip(mib["direct"][phase], mib["limit"][phase],
                                                   strict=True))
            for phase in PHASES if phase in mib["limit"]}
        out["cpu_s_per_gib"] = {
            endpoint: {phase: {name: round(statistics.median(
                use.per_gib(moved(phase) / 1024)[name] for use in uses), 2)
                for name in (*PROCESSES, "total")}
                for phase, uses in phases.items()}
            for endpoint, phases in cpu.items()}
        out["others_cores"] = round(max(use.others_cores() for phases in cpu.values()
                                        for uses in phases.values() for use in uses), 2)
        out["longest_request_s"] = round(max(max(v) for phases in seconds.values()
                                             for v in phases.values()), 1)
        return out

    def verify_round_trip(self, expected_sha256: str, size_mib: int, store: str) -> bool:
        """One upload + download through the python client with sha256: same bytes."""
        image = self.new_image("bench-verify")
        self.client.upload(image, self.sources[size_mib], store=store)
        self.client.wait_for_status(image, "active")
        got = self.client.download(image, "/dev/null", sha256=True)
        self.client.delete_image(image)
        return bool(got.sha256 == expected_sha256)


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


def haproxy_lines(restore: Callable[[], None], section: str, lines: tuple[str, ...],
                  replace: dict[str, str] | None = None) -> Callable[[], None]:
    """A haproxy.cfg lever the template does not render: add (or replace) lines, reload.

    The charm's own file first (restore: a config-changed re-renders it when it differs),
    then the lines after the section's header, and each `replace` key (a whole line, stripped)
    replaced by its value; haproxy checks the file and reloads (`service haproxy reload`).
    """
    def apply() -> None:
        restore()
        text = HAPROXY_CFG.read_text()
        for old, new in (replace or {}).items():
            found = [line for line in text.splitlines() if line.strip() == old]
            if len(found) != 1:
                raise RuntimeError(f"haproxy.cfg: {len(found)} lines {old!r}")
            text = text.replace(found[0], f"    {new}")
        if lines:
            header = f"\n{section}\n" if section in ("global", "defaults") else f"\n{section} "
            at = text.index(header) + len(header)
            if section not in ("global", "defaults"):
                at = text.index("\n", at) + 1
            text = text[:at] + "".join(f"    {line}\n" for line in lines) + text[at:]
        HAPROXY_CFG.write_text(text)
        subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], check=True,
                       capture_output=True, env=_system_env())
        subprocess.run(["service", "haproxy", "reload"], check=True, capture_output=True,
                       env=_system_env())
        settle_healthy()
    return apply


def haproxy_threads() -> int:
    """Threads of the running haproxy worker(s) of our namespace (the most of any process)."""
    threads = [len(list(Path(f"/proc/{pid}/task").iterdir()))
               for pid, (name, _) in process_cpu().items() if name == "haproxy"]
    return max(threads, default=0)


CHUNKED_BASELINE = "swift: chunked uploads (as glanceclient), charm default"


def variants(stack: Any, smoke: bool) -> list[Variant]:
    """What is tried, in order (each on top of a fresh charm render)."""
    from glance_charm.domain.stores import RBD_CHUNK_SIZE_MB  # the snapshot's charm

    cpus = os.cpu_count() or 1
    restore = charm_config(stack, worker_multiplier=None, hashing_algorithm=None)
    out = [Variant("charm default", restore)]
    if smoke:
        return out

    def local(cell: Cell) -> bool:
        return cell[0] == "local"

    def swift_large(cell: Cell) -> bool:
        return cell[0] == "swift" and cell[1] >= 1024

    def ceph(cell: Cell) -> bool:
        return cell[0] == "ceph"

    def default_then(changes: dict[tuple[str, str], str | None]) -> Callable[[], None]:
        def apply() -> None:
            restore()
            template_options(stack, changes)()
        return apply

    close = "option http-server-close"
    out += [
        Variant("haproxy: nbthread 2", haproxy_lines(restore, "global", ("nbthread 2",)),
                "haproxy 2.6 starts one thread per CPU it may run on unless told", local),
        Variant("haproxy: nbthread 1", haproxy_lines(restore, "global", ("nbthread 1",)),
                "", local),
        Variant("haproxy: http-reuse safe (no http-server-close)",
                haproxy_lines(restore, "backend", (), {close: "http-reuse safe"}),
                "server connections kept and reused", local),
        Variant("haproxy: http-reuse aggressive (no http-server-close)",
                haproxy_lines(restore, "backend", (), {close: "http-reuse aggressive"}),
                "", local),
        # kernel splicing: bodies move socket to socket in the kernel (pipes). The charm
        # splices responses (bench/RESULTS.md §10); these measure without it, and both ways
        Variant("haproxy: no option splice-response",
                haproxy_lines(restore, "defaults", (),
                              {"option splice-response": "no option splice-response"}),
                "response bodies copied through haproxy's buffers (before §10)", local),
        Variant("haproxy: option splice-auto",
                haproxy_lines(restore, "defaults", (),
                              {"option splice-response": "option splice-auto"}),
                "haproxy splices where it expects a gain, both ways", local),
    ]
    chunk = ("local", "filesystem_store_chunk_size")
    out += [
        Variant("glance: [local] filesystem_store_chunk_size 1 MiB",
                default_then({chunk: str(MIB)}), "glance_store default 64 KiB", local),
        Variant("glance: [local] filesystem_store_chunk_size 4 MiB",
                default_then({chunk: str(4 * MIB)}), "", local),
        Variant("glance: worker-multiplier 0.5", charm_config(stack, worker_multiplier=0.5),
                f"{max(1, int(cpus * 0.5))} workers (default: {min(4, cpus * 2)})", local),
        Variant("glance: worker-multiplier 1", charm_config(stack, worker_multiplier=1.0),
                f"{cpus} workers", local),
    ]
    segment = ("swift", "swift_store_large_object_chunk_size")
    large = ("swift", "swift_store_large_object_size")
    rbd_chunk = ("ceph", "rbd_store_chunk_size")
    out += [
        Variant(CHUNKED_BASELINE, restore,
                "size unknown to glance_store: segments of swift_store_large_object_chunk_size"
                " (charm: 200 MB)", swift_large, chunked=True),
        Variant("swift: chunked uploads, large_object_chunk_size 64 MB",
                default_then({segment: "64"}), "", swift_large, chunked=True,
                baseline=CHUNKED_BASELINE),
        Variant("swift: chunked uploads, large_object_chunk_size 1024 MB",
                default_then({segment: "1024"}), "", swift_large, chunked=True,
                baseline=CHUNKED_BASELINE),
        Variant("swift: large_object_size 512 MB (1 GiB as 200 MB segments, sized)",
                default_then({large: "512"}), "charm: 5120 MB (one object up to 5 GiB)",
                swift_large),
        # glance_store's rbd driver reads and writes the image `rbd_store_chunk_size` at a
        # time, one synchronous librbd call each, and makes it the rbd object size (order)
        Variant("ceph: rbd_store_chunk_size 4 MB", default_then({rbd_chunk: "4"}),
                f"charm (as the classic charm): {RBD_CHUNK_SIZE_MB} MB", ceph),
        Variant("ceph: rbd_store_chunk_size 32 MB", default_then({rbd_chunk: "32"}), "", ceph),
        Variant("charm default, again (drift control)", restore, "",
                lambda cell: local(cell) or ceph(cell)),
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


def _pair(values: Sequence[float] | None, digits: int = 0) -> str:
    """`best / median`."""
    if not values:
        return "-"
    return " / ".join(f"{v:.{digits}f}" for v in values)


def markdown(result: dict[str, Any]) -> str:
    """Tables for bench/RESULTS.md."""
    variants = result["variants"]
    lines = [f"Charm and functional driver: {result.get('charm')}. Command: "
             f"`{result.get('command')}`. Round trip sha256 equal (python client, "
             f"{min(result['sizes_mib'])} MiB): {result['verified']}."]
    lines += _default_tables(variants.get("charm default", {}))
    lines += _lever_table(variants)
    lines += ["", *_notes(variants)]
    lines.append(f"\npython hashlib in-process MiB/s: {result.get('hashlib_mib_s')}.")
    m = result.get("machine") or {"date": "(run not finished)"}
    lines.append(f"\nMachine: {m.get('nproc')} CPUs, {m.get('uname')}; started "
                 f"{result.get('started')}, ended {m['date']}; load average before "
                 f"{m.get('load_before')}, after {m.get('load_after')}. Stack start "
                 f"{result.get('stack_start_s', 0):.1f} s.")
    return "\n".join(lines) + "\n"


def _cpu(c: dict[str, float]) -> str:
    return " / ".join(f"{c.get(name, 0.0):.2f}" for name in (*PROCESSES, "total"))


def _default_tables(default: dict[str, Any]) -> list[str]:
    """The charm's default: ratios and limits, then CPU per GiB."""
    lines = [
        "\n#### The charm's default: through haproxy / direct to glance-api, direct / physical "
        f"limit ({STREAMS} streams: aggregate MiB/s; best / median of the reps)\n",
        "| store, size (reps) | phase | through haproxy MiB/s | direct MiB/s | haproxy / direct |"
        " limit MiB/s | direct / limit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cell, r in default.get("cells", {}).items():
        for phase in PHASES:
            mib = r["mib_s"]
            lines.append(
                f"| {cell} ({r['reps']}) | {phase} | {_pair(mib['haproxy'][phase])} | "
                f"{_pair(mib['direct'][phase])} | {_pair(r['haproxy_vs_direct'][phase], 2)} | "
                f"{_pair(mib['limit'].get(phase))} | "
                f"{_pair(r['direct_vs_limit'].get(phase), 2)} |")
    lines += [
        "\nCPU seconds per GiB moved (median of the reps), by process: glance-api / haproxy / "
        "swift servers / ceph daemons / curl / total; the charm's default:\n",
        "| store, size | phase | through haproxy | direct |", "|---|---|---|---|"]
    for cell, r in default.get("cells", {}).items():
        for phase in PHASES:
            c = r["cpu_s_per_gib"]
            lines.append(f"| {cell} | {phase} | {_cpu(c['haproxy'][phase])} | "
                         f"{_cpu(c['direct'][phase])} |")
    return lines


def _lever_row(name: str, entry: dict[str, Any], cell: str, r: dict[str, Any],
               base: dict[str, Any]) -> str:
    cols = []
    for phase in PHASES:
        median = r["mib_s"]["haproxy"][phase][1]
        ref = base.get(cell, {}).get("mib_s", {}).get("haproxy", {}).get(phase)
        times = f" (x{median / ref[1]:.2f})" if ref and name != entry["baseline"] else ""
        cols.append(f"{median:.0f}{times}, {r['haproxy_vs_direct'][phase][1]:.2f}")

    def party(phase: str) -> str:
        c = r["cpu_s_per_gib"]["haproxy"][phase]
        store = "".join(f" + {c[name]:.2f}" for name in ("swift", "ceph") if c.get(name))
        return f"{c['glance-api']:.2f} + {c['haproxy']:.2f}{store}"

    return (f"| {name} | {cell} ({r['reps']}) | " + " | ".join(cols) +
            f" | {party('up1')} | {party('down1')} | {entry.get('load_before')} |")


def _lever_table(variants: dict[str, Any]) -> list[str]:
    """Every variant's cells against its baseline's."""
    lines = [
        "\n#### Levers, each against its baseline in the same run\n",
        "Per phase: through-haproxy MiB/s median (x the baseline's median), then through "
        "haproxy / direct median (the lever's own); CPU s/GiB through haproxy, median: "
        "glance-api + haproxy (+ swift or ceph); load average before the variant.\n",
        "| variant | cell (reps) | " + " | ".join(PHASES) + " | CPU up1 | CPU down1 | load |",
        "|---|---|" + "---|" * len(PHASES) + "---|---|---|",
    ]
    for name, entry in variants.items():
        base = variants.get(entry.get("baseline", ""), {}).get("cells", {})
        lines += [_lever_row(name, entry, cell, r, base) for cell, r in entry["cells"].items()]
        if "error" in entry:
            lines.append(f"| {name} | error: {entry['error']} |")
    return lines


def _notes(variants: dict[str, Any]) -> list[str]:
    out = []
    for name, e in variants.items():
        cells = e["cells"].values()
        others = max((r["others_cores"] for r in cells), default=0)
        longest = max((r["longest_request_s"] for r in cells), default=0)
        out.append(f"- {name}: {e['note'] or '-'} (workers {e.get('workers')}, haproxy "
                   f"threads {e.get('haproxy_threads')}, other processes' cores at most "
                   f"{others}, longest request {longest} s)")
    return out


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


def measure_variants(stack: Any, swift: Any, ceph: Any, options: argparse.Namespace,
                     result: dict[str, Any], save: Callable[[], None]) -> None:
    """Apply and measure every variant on its cells; a failure is recorded, the rest run."""
    with tempfile.TemporaryDirectory(prefix="glance-dataplane-", dir="/var/tmp") as tmp:
        plane = DataPlane(stack, Path(tmp), swift, ceph)
        digests = {size: plane.prepare_source(size) for size in options.sizes}
        smallest = min(options.sizes)
        result["verified"] = {store: plane.verify_round_trip(digests[smallest], smallest, store)
                              for store in options.stores}
        wanted = [word for word in options.variants.split(",") if word]
        cells = [(store, size) for size in options.sizes for store in options.stores]
        for variant in variants(stack, options.smoke):
            if wanted and variant.name != "charm default" and not any(
                    word in variant.name for word in wanted):
                continue
            mine = [cell for cell in cells if variant.cells(cell)]
            if not mine:
                continue
            print(f"{time.strftime('%H:%M:%S')} measuring: {variant.name}", file=sys.stderr,
                  flush=True)
            entry: dict[str, Any] = {"note": variant.note, "baseline": variant.baseline,
                                     "cells": {}, "load_before": load_average()}
            result["variants"][variant.name] = entry
            try:
                variant.apply()
                entry["workers"] = read_option("DEFAULT", "workers") or "?"
                entry["haproxy_threads"] = haproxy_threads()
                plane.api.chunked = variant.chunked
                for store, size in mine:
                    reps = options.reps_large if size >= 1024 else options.reps
                    numbers = plane.measure_cell(store, size, reps)
                    numbers["reps"] = reps
                    entry["cells"][f"{store} {size} MiB"] = numbers
                    medians = {phase: (round(numbers["mib_s"]["haproxy"][phase][1]),
                                       round(numbers["haproxy_vs_direct"][phase][1], 2))
                               for phase in PHASES}
                    print(f"{time.strftime('%H:%M:%S')}  {store} {size} MiB, median MiB/s "
                          f"through haproxy and haproxy/direct: {medians}", file=sys.stderr,
                          flush=True)
                    save()
            except Exception as err:  # one failed variant must not lose the others
                entry["error"] = f"{type(err).__name__}: {err}"
                print(f"  error: {entry['error']}", file=sys.stderr, flush=True)
            finally:
                plane.api.chunked = False
            entry["load_after"] = load_average()
            save()
        try:
            charm_config(stack, worker_multiplier=None)()  # the charm's own files back
        except Exception as err:
            result["restore_error"] = f"{type(err).__name__}: {err}"


def load_average() -> str:
    """The machine's 1/5/15-minute load average."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def require_packages(store: str, packages: Sequence[str]) -> None:
    """Stop with what to install when the store's packages are missing (no network inside)."""
    from tests.functional import realstack

    missing = realstack.missing_packages(list(packages))
    if missing:
        raise SystemExit(f"the {store} store needs {' '.join(missing)} installed (apt-get"
                         " install on the machine; the sandbox has no network)")


def start_swift(stack: Any) -> Any:
    """The functional tier's real swift, related to glance on object-store (both stores)."""
    from tests.functional.swiftstack import SWIFT_PACKAGES, SwiftStack

    require_packages("swift", SWIFT_PACKAGES)
    swift = SwiftStack(stack.keystone)
    swift.start()
    stack.relate_object_store(swift)
    stack.wait_healthy()
    settle_healthy()
    return swift


def start_ceph(stack: Any) -> Any:
    """The functional tier's real ceph (memstore OSD), related to glance as ceph-mon relates.

    The charm sends its broker request, the functional CephMon answers it as ceph-mon's
    leader does (pool `glance`, key), and glance gets its `ceph` rbd store.
    """
    from tests.functional.cephstack import CEPH_PACKAGES, CephCluster, CephMon

    require_packages("ceph", CEPH_PACKAGES)
    ceph = CephCluster(memstore_bytes=CEPH_MEMSTORE_BYTES)
    ceph.start()
    stack.relate_ceph(CephMon(ceph))
    stack.wait_healthy()
    settle_healthy()
    return ceph


def run(options: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Start the stack (and swift) from the snapshot, measure, stop everything we started."""
    import platform

    from tests.functional.driver import GlanceStack

    load_before = load_average()
    result: dict[str, Any] = {"sizes_mib": options.sizes, "stores": options.stores,
                              "reps": options.reps, "reps_large": options.reps_large,
                              "variants": {}, "command": " ".join(sys.argv),
                              "charm": options.charm_label, "verified": None,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    stack = GlanceStack()
    swift = ceph = None
    started = time.monotonic()
    try:
        stack.start()
        stack.relate_database()
        stack.relate_identity()
        stack.wait_healthy()
        result["stack_start_s"] = time.monotonic() - started
        settle_healthy()
        if "swift" in options.stores:
            swift = start_swift(stack)
        if "ceph" in options.stores:
            ceph = start_ceph(stack)
        measure_variants(stack, swift, ceph, options, result, lambda: save(result))
        result["hashlib_mib_s"] = hash_speeds()
    finally:
        if swift is not None:
            swift.stop()
        if ceph is not None:
            with contextlib.suppress(Exception):
                stack.remove("ceph")  # the charm lets go of the cluster before it stops
            ceph.stop()
        stack.stop()
        result["stopped_leftovers"] = stop_own_leftovers(not options.no_namespace)
    result["machine"] = {
        "nproc": os.cpu_count(), "uname": " ".join(platform.uname()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_before": load_before,
        "load_after": load_average(),
    }
    return result


def main() -> int:
    """Parse options, wait for a free machine, measure, print markdown (+ JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,1024", help="image sizes in MiB, comma-separated")
    parser.add_argument("--stores", default="local,swift",
                        help=f"comma-separated, of {', '.join(STORES)}")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--reps-large", type=int, default=None,
                        help="reps for sizes >= 1024 MiB (default: 3)")
    parser.add_argument("--smoke", action="store_true",
                        help="64 MiB, 1 rep, local store, the charm's default only")
    parser.add_argument("--source", choices=("head", "worktree"), default="head",
                        help="charm and functional driver from git HEAD (default) or work tree")
    parser.add_argument("--wait", type=float, default=1800.0,
                        help="seconds to wait for other stacks to finish")
    parser.add_argument("--no-namespace", action="store_true",
                        help="use the machine's /etc/glance and /var/lib/glance for real")
    parser.add_argument("--variants", default="",
                        help="only variants whose name has one of these comma-separated words "
                             "(the charm's default always runs)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--from-json", type=Path,
                        help="only print the tables of a saved (possibly partial) --json file")
    options = parser.parse_args()
    if options.from_json:
        print(markdown(json.loads(options.from_json.read_text())))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (starts mariadb, keystone and glance-api)")
    if options.smoke:
        options.sizes, options.reps, options.stores = "64", 1, "local"
    options.sizes = [int(size) for size in str(options.sizes).split(",") if size]
    options.stores = [store for store in options.stores.split(",") if store]
    if not set(options.stores) <= set(STORES):
        parser.error(f"--stores: of {', '.join(STORES)}")
    if options.reps_large is None:
        options.reps_large = min(3, options.reps)
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

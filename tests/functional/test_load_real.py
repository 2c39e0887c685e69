"""Concurrent image traffic through the glance-api the charm configured (local file store).

Twenty clients, one :class:`realstack.ImageClient` each (the client caches its token and is not
meant to be shared between threads), each with its own image of distinct random content
(16-32 MiB). The run goes in phases so each direction has its own aggregate rate: all clients
create and upload at once, then all download at once (sha256 computed while receiving, the data
goes to /dev/null), then the listing is checked, then all delete at once. During each phase the
charm runs an update-status hook, as Juju would under load.

Asserted: no failed request, every downloaded sha256 equals the uploaded one, every image ends
`active` and is listed with its size, md5 `checksum` and `os_hash_value`, the store holds one
file of the right size per image and none after the deletes, glance-api's PIDs did not change
and the unit stays Active. The numbers (wall time, aggregate MiB/s, per-request p50/max
latency, failures) are reported in REPORT and printed with `-s`; none of them is asserted.
"""

from __future__ import annotations

import concurrent.futures
import configparser
import contextlib
import functools
import hashlib
import json
import os
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ops
import pytest

from tests.functional import realstack
from tests.functional.driver import GLANCE_CONF, GlanceStack

CLIENTS = 20
MIN_MIB, MAX_MIB = 16, 32
SEED_BASE = 6000
DISK_MARGIN_MIB = 512
REQUEST_TIMEOUT_S = 300.0  # socket timeout per request: a guard against hangs, not a target
GLANCE_LOG = Path("/var/log/glance/glance-api.log")
ACTIVE = ops.ActiveStatus("Unit is ready")
REPORT: dict[str, Any] = {}

T = TypeVar("T")


def size_of(index: int) -> int:
    """Distinct-ish sizes spread over MIN_MIB..MAX_MIB (477 MiB in all for 20 clients)."""
    return MIN_MIB + (index * 7) % (MAX_MIB - MIN_MIB + 1)


@dataclass
class Job:
    """One client's image: its source file, digests and what happened to it."""

    index: int
    client: realstack.ImageClient
    source: Path
    size_mib: int
    sha256: str = ""
    md5: str = ""
    digests: dict[str, str] | None = None  # os_hash_algo -> hex, for the algorithms we know
    image_id: str | None = None
    active: dict[str, Any] | None = None
    down_sha256: str | None = None
    deleted: bool = False
    failed: bool = False

    @property
    def size(self) -> int:
        return self.size_mib * realstack.MIB


class Recorder:
    """Per-request latencies and failures, appended from the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.failures: list[str] = []

    def call(self, job: Job, op: str, func: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            result = func()
        except Exception as err:
            with self.lock:
                self.failures.append(f"client {job.index} {op}: {realstack.redact(str(err))}")
            job.failed = True
            raise
        finally:
            elapsed = time.monotonic() - started
            with self.lock:
                self.latencies.setdefault(op, []).append(elapsed)
        return result

    def summary(self) -> dict[str, dict[str, float]]:
        out = {
            op: {"n": len(values), "p50_s": round(statistics.median(values), 3),
                 "max_s": round(max(values), 3)}
            for op, values in sorted(self.latencies.items())
        }
        every = [value for values in self.latencies.values() for value in values]
        if every:
            out["all_requests"] = {"n": len(every), "p50_s": round(statistics.median(every), 3),
                                   "max_s": round(max(every), 3)}
        return out


def conf() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(GLANCE_CONF.read_text())
    return parser


def free_mib(path: Path) -> tuple[int, float]:
    while not path.exists():
        path = path.parent
    return path.stat().st_dev, shutil.disk_usage(path).free / realstack.MIB


def check_disk(store_dir: Path, workdir: Path, total_mib: int) -> None:
    """Enough room for the stored images and the source files (both on / here, usually)."""
    store_dev, store_free = free_mib(store_dir)
    work_dev, work_free = free_mib(workdir)
    need_store = total_mib + DISK_MARGIN_MIB
    need_work = total_mib + DISK_MARGIN_MIB
    if store_dev == work_dev:
        need_store = need_work = 2 * total_mib + DISK_MARGIN_MIB
    REPORT["disk_free_mib"] = {"store": round(store_free), "workdir": round(work_free)}
    if store_free < need_store or work_free < need_work:
        pytest.fail(f"not enough disk: {store_dir} has {store_free:.0f} MiB free (needs "
                    f"{need_store}), {workdir} has {work_free:.0f} MiB free (needs {need_work})")


def prepare(job: Job) -> None:
    """Write the job's random file; also md5 and the os_hash algorithms glance may use."""
    job.sha256 = realstack.make_random_file(job.source, job.size_mib, seed=SEED_BASE + job.index)
    md5 = hashlib.md5(usedforsecurity=False)
    others = {name: hashlib.new(name) for name in ("sha512", "sha256")}
    with job.source.open("rb") as handle:
        while chunk := handle.read(realstack.CHUNK_SIZE):
            md5.update(chunk)
            for digest in others.values():
                digest.update(chunk)
    job.md5 = md5.hexdigest()
    job.digests = {name: digest.hexdigest() for name, digest in others.items()}


def log_size() -> int:
    return GLANCE_LOG.stat().st_size if GLANCE_LOG.exists() else 0


def log_since(offset: int) -> list[str]:
    if not GLANCE_LOG.exists():
        return []
    with GLANCE_LOG.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace").splitlines()


def status_text(status: ops.StatusBase) -> str:
    return f"{status.name}: {status.message}"


def run_phase(
    name: str, stack: GlanceStack, pool: concurrent.futures.ThreadPoolExecutor,
    jobs: list[Job], rec: Recorder, work: Callable[[Job], None],
) -> float:
    """Run `work` for every job that has not failed, all at once; return the phase wall time.

    While the clients run, the charm handles an update-status hook (in this thread: the
    Harness is not thread-safe); the unit must stay Active through it.
    """

    def guarded(job: Job) -> None:
        try:
            work(job)
        except Exception as err:
            if not job.failed:  # not a request Recorder.call already counted
                job.failed = True
                with rec.lock:
                    rec.failures.append(f"client {job.index} {name}: {err!r}")

    started = time.monotonic()
    futures = [pool.submit(guarded, job) for job in jobs if not job.failed]
    hook_started = time.monotonic()
    assert stack.harness is not None
    stack.harness.charm.on.update_status.emit()
    REPORT.setdefault("update_status_under_load_s", {})[name] = round(
        time.monotonic() - hook_started, 2)
    REPORT.setdefault("status_under_load", {})[name] = status_text(stack.status())
    concurrent.futures.wait(futures)
    return time.monotonic() - started


def do_upload(rec: Recorder, run: str, job: Job) -> None:
    image = rec.call(job, "create", lambda: job.client.create_image(f"load-{run}-{job.index}"))
    job.image_id = image["id"]
    rec.call(job, "upload", lambda: job.client.upload(image["id"], job.source))
    job.active = rec.call(job, "wait_active", lambda: job.client.wait_for_status(
        image["id"], "active", timeout=REQUEST_TIMEOUT_S))


def do_download(rec: Recorder, job: Job) -> None:
    image_id = job.image_id
    assert image_id is not None
    down = rec.call(job, "download", lambda: job.client.download(image_id, os.devnull))
    job.down_sha256 = down.sha256


def do_delete(rec: Recorder, job: Job) -> None:
    image_id = job.image_id
    assert image_id is not None
    rec.call(job, "delete", lambda: job.client.delete_image(image_id))
    job.deleted = True


def list_ids(rec: Recorder, job: Job) -> dict[str, dict[str, Any]]:
    return {image["id"]: image for image in rec.call(job, "list", job.client.list_images)}


def check_listed(job: Job, image: dict[str, Any] | None, stored_size: int | None) -> None:
    """The image glance lists: active, right size and checksums; its file in the store."""
    assert image is not None, f"client {job.index}: image not listed"
    assert image["status"] == "active"
    assert image["size"] == job.size
    if "checksum" in image:
        assert image["checksum"] == job.md5
    if image.get("os_hash_value") is not None:
        assert job.digests is not None
        assert image["os_hash_value"] == job.digests[image["os_hash_algo"]]
    assert stored_size == job.size, f"client {job.index}: store file size {stored_size}"


@contextlib.contextmanager
def glance_log_on_failure() -> Iterator[None]:
    try:
        yield
    except BaseException:
        print("\n===== glance-api.log (tail) =====")
        print(realstack.redact(realstack._tail(GLANCE_LOG, 40)))
        raise


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[dict[str, Any]]:
    yield REPORT
    print(f"\n===== load ({CLIENTS} concurrent clients) =====\n"
          + json.dumps(REPORT, indent=2, sort_keys=True))


@pytest.fixture
def jobs(stack: GlanceStack, tmp_path: Path) -> Iterator[list[Job]]:
    """One client (own token) and one source file per job; files and images removed after."""
    assert stack.keystone is not None
    made = [
        Job(i, realstack.ImageClient(stack.keystone, timeout=REQUEST_TIMEOUT_S),
            tmp_path / f"load-{i}.bin", size_of(i))
        for i in range(CLIENTS)
    ]
    yield made
    for job in made:
        job.source.unlink(missing_ok=True)
        if job.image_id is not None and not job.deleted:
            with contextlib.suppress(realstack.RealStackError, OSError):
                job.client.delete_image(job.image_id, missing_ok=True)


def test_concurrent_clients_round_trip(
    stack: GlanceStack, jobs: list[Job], tmp_path: Path
) -> None:
    assert stack.keystone is not None
    stack.wait_healthy()
    assert stack.status() == ACTIVE
    parsed = conf()
    store_dir = Path(parsed["local"]["filesystem_store_datadir"])
    REPORT["glance_workers"] = int(parsed["DEFAULT"]["workers"])
    total_mib = sum(job.size_mib for job in jobs)
    check_disk(store_dir, tmp_path, total_mib)
    catalog_url = stack.keystone.catalog_url("image", "public")
    run = uuid.uuid4().hex[:8]
    rec = Recorder()
    log_offset = log_size()
    pids = stack.glance_pids()
    REPORT["glance_api_processes"] = len(pids)

    with glance_log_on_failure(), concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        prep_started = time.monotonic()
        list(pool.map(prepare, jobs))  # outside the timed load
        REPORT["prepare_files_s"] = round(time.monotonic() - prep_started, 1)
        assert len({job.sha256 for job in jobs}) == CLIENTS, "contents are not distinct"
        for job in jobs:  # authenticate up front: one token and catalog lookup per client
            assert job.client.endpoint == catalog_url

        load_started = time.monotonic()
        up_s = run_phase("upload", stack, pool, jobs, rec, functools.partial(do_upload, rec, run))
        for job in jobs:
            job.source.unlink(missing_ok=True)
        down_s = run_phase("download", stack, pool, jobs, rec, functools.partial(do_download, rec))
        listed = list_ids(rec, jobs[0])
        stored = {job.image_id: (store_dir / job.image_id).stat().st_size
                  for job in jobs if job.image_id and (store_dir / job.image_id).exists()}
        delete_s = run_phase("delete", stack, pool, jobs, rec, functools.partial(do_delete, rec))
        listed_after = list_ids(rec, jobs[0])
        wall_s = time.monotonic() - load_started

        REPORT.update({
            "clients": CLIENTS,
            "image_mib": total_mib,
            "wall_s": round(wall_s, 1),
            "phase_s": {"upload": round(up_s, 1), "download": round(down_s, 1),
                        "delete": round(delete_s, 2)},
            "upload_mib_s": round(sum(j.size_mib for j in jobs if j.active) / up_s, 1),
            "download_mib_s": round(sum(j.size_mib for j in jobs if j.down_sha256) / down_s, 1),
            "latency": rec.summary(),
            "failures": len(rec.failures),
            "failure_samples": rec.failures[:5],
        })
        errors = [line for line in log_since(log_offset)
                  if " ERROR " in line or "Traceback" in line]
        REPORT["glance_log_errors"] = len(errors)
        REPORT["glance_log_error_samples"] = [realstack.redact(line)[:300] for line in errors[:3]]

        assert rec.failures == []
        for job in jobs:
            assert job.image_id is not None and job.active is not None
            assert job.down_sha256 == job.sha256, f"client {job.index}: data differs"
            check_listed(job, listed.get(job.image_id), stored.get(job.image_id))
            assert job.image_id not in listed_after, f"client {job.index}: still listed"
            assert not (store_dir / job.image_id).exists(), f"client {job.index}: file left"
            with pytest.raises(realstack.HttpError) as gone:
                job.client.get_image(job.image_id)
            assert gone.value.status == 404
        assert stack.glance_pids() == pids, "glance-api restarted under load"
        assert set(REPORT["status_under_load"].values()) == {status_text(ACTIVE)}
        assert stack.status() == ACTIVE

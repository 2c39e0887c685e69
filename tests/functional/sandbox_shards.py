"""Run the functional tier as parallel shards, each pytest in a sandbox of its own.

    python tests/functional/sandbox_shards.py [--shards N] [-- PYTEST_ARGS...]

Every pytest run of the tier re-executes itself in its own sandbox (conftest.py,
sandbox.py): its own loopback ports, /etc/glance, /run and state directories, so shards cannot
see each other and run side by side. Most of the tier waits (services starting, haproxy's
health checks, pacemaker failovers, rolling restarts), so two shards on two cores take about
the time of the longer one. Test files are spread over the shards longest first, by the
seconds each took here (WEIGHTS; a file not listed counts DEFAULT_WEIGHT). Each shard's output
is printed when it ends; the exit code is the first failing shard's (0 when all pass).

Arguments naming files or directories run them in one sandbox, unsharded.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: Seconds per file measured on a 2-core machine (make test, clean clones, 2026-12-06: the
#: module totals of the two shards' durations), to balance shards.
WEIGHTS = {
    "test_ha_pacemaker.py": 270, "test_rolling_restart_real.py": 230,
    "test_stores_real.py": 110, "test_options_real.py": 100, "test_haproxy_glance.py": 70,
    "test_sandbox.py": 60, "test_cos_real.py": 55, "test_glance_real.py": 45,
    "test_load_real.py": 30, "test_import_real.py": 30, "test_s3_real.py": 30,
    "test_pause_real.py": 20, "test_nrpe_real.py": 15, "test_token_cache_real.py": 15,
}
DEFAULT_WEIGHT = 60


def shards(files: list[Path], count: int) -> list[list[Path]]:
    """Spread files over `count` shards, longest first, each to the lightest shard."""
    loads = [0] * count
    groups: list[list[Path]] = [[] for _ in range(count)]
    for path in sorted(files, key=lambda p: (-WEIGHTS.get(p.name, DEFAULT_WEIGHT), p.name)):
        lightest = loads.index(min(loads))
        groups[lightest].append(path)
        loads[lightest] += WEIGHTS.get(path.name, DEFAULT_WEIGHT)
    return [sorted(group) for group in groups if group]


def main(argv: list[str]) -> int:
    """Run the shards; print each one's output; return the first failure's exit code."""
    count = 2
    if argv[:1] == ["--shards"]:
        count, argv = int(argv[1]), argv[2:]
    pytest_args = argv[1:] if argv[:1] == ["--"] else argv
    runner = [sys.executable, str(REPO / "tests/run_pytest.py")]
    if any(Path(arg).exists() for arg in pytest_args if not arg.startswith("-")):
        return subprocess.run([*runner, *pytest_args], cwd=REPO, check=False).returncode
    files = sorted(HERE.glob("test_*.py"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="glance-shards-") as tmp:
        running = []
        for index, group in enumerate(shards(files, count)):
            log = Path(tmp) / f"shard-{index}.log"
            names = " ".join(path.name for path in group)
            print(f"shard {index}: {names}", flush=True)
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [*runner, *(str(p.relative_to(REPO)) for p in group), *pytest_args],
                    cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            running.append((index, proc, log))
        codes = []
        for index, proc, log in running:
            code = proc.wait()
            codes.append(code)
            print(f"\n===== shard {index}: exit {code} after "
                  f"{time.monotonic() - started:.0f} s =====", flush=True)
            sys.stdout.write(log.read_text(errors="replace"))
            sys.stdout.flush()
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The functional tier's sandbox: private mount, network and pid namespaces it makes itself.

    python tests/functional/sandbox.py [--keep] -- CMD [ARG...]

runs CMD (as root) in a sandbox made for it and removed with it, so a stack started inside
(mariadb on 3306, keystone on 5000, the charm's haproxy on 9292 and glance-api on 9282) can
run while `make local`'s stack serves on the machine, in either order:

* network: a namespace of its own with only its own loopback (up), so every port is free
  inside and nothing inside is reachable from outside;
* pid: CMD's processes live in a pid namespace with its own /proc: `pgrep`/`pkill` inside see
  only the sandbox's processes. Its pid 1 is `init` below, which reaps orphans (what the init
  scripts daemonize) and, when CMD exits, stops everything left; the kernel kills whatever
  remains when pid 1 exits, and pid 1 dies with the launcher (`--kill-child`, parent-death
  signal), so no process outlives a run, however it ends;
* mount: the directories the charm and the stack write are bind mounts of scratch directories
  under ``/var/tmp/glance-sandbox/run-*`` (private propagation, so the machine never
  sees them): /etc/glance and /etc/haproxy seeded from what the packages ship (never from the
  machine's, possibly foreign, copies), empty state, log and run directories (/run included),
  and copies of the boot links and the CA store (the pause action and the certificates relation
  edit those); under them, /etc and /var/log are copy-on-write overlays, so a file written
  elsewhere there (the charm's /etc/memcached.conf) stays in the scratch root. The scratch
  root is removed when CMD ends (``--keep`` keeps it for debugging).

Packages: the launcher installs the tier's packages on the machine first (there is no network
inside). Inside, :func:`host_argv` runs a command (apt) in the machine's mount and network
namespaces through two namespace file descriptors the launcher passes down; the charm's own
`apt-get update` sees empty private sources and lists and changes nothing on the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ENV_ROOT = "GLANCE_SANDBOX"  # set inside a sandbox: its scratch root
ENV_HOST_FDS = "GLANCE_SANDBOX_HOST_FDS"  # "<net fd>,<mnt fd>": the machine's namespaces
# Where scratch roots go (GLANCE_SANDBOX_SCRATCH: a test's own, to see only its sandboxes').
SCRATCH_PARENT = Path(os.environ.get("GLANCE_SANDBOX_SCRATCH") or "/var/tmp/glance-sandbox")
SEED_CACHE = Path("/var/cache/glance-functional/seed")
APT_ARCHIVES = Path("/var/cache/apt/archives")

#: Private directories seeded from the files the packages ship (the .deb, plus the
#: configuration the package's postinst copies from /usr/share/<package>).
PACKAGE_SEEDED: dict[str, tuple[tuple[str, ...], str | None]] = {
    "/etc/glance": (("glance-common", "glance-api"), "/usr/share/glance-common"),
    "/etc/haproxy": (("haproxy",), None),
}
#: Private copies of the machine's directories (OS state the charm edits, not workload config).
COPIED = (
    "/etc/init.d", "/etc/rc0.d", "/etc/rc1.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d",
    "/etc/rc5.d", "/etc/rc6.d", "/etc/rcS.d", "/etc/ssl/certs",
    "/usr/local/share/ca-certificates",
)
#: Private empty directories (same owner and mode as the machine's).
EMPTY = (
    "/run", "/var/lib/glance", "/var/log/glance", "/var/lib/mysql", "/var/log/mysql",
    "/var/lib/haproxy", "/var/lib/glance-functional", "/var/lib/charm", "/var/lib/keystone",
    "/var/log/keystone", "/etc/ceph", "/var/lib/ceph", "/var/log/ceph", "/etc/swift",
    "/var/cache/swift", "/var/lib/swift", "/var/log/swift", "/srv/node",
    "/etc/apt/sources.list.d", "/var/lib/apt/lists", "/var/cache/apt",
)
#: Copy-on-write (overlayfs) views of whole trees, under the binds above: what the charm or a
#: service writes there outside the listed directories (the charm's /etc/memcached.conf,
#: written atomically by rename, which a bind-mounted file refuses; /var/log/memcached.log)
#: lands in the scratch root and the machine's files stay as they are.
OVERLAID = ("/etc", "/var/log")
#: Created on the machine (empty) when missing, so they can be mount points.
CREATED = ("/var/lib/glance-functional", "/var/lib/charm")
#: The namespaces, in unshare's words.
UNSHARE = ("unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
           "--propagation", "private")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_GRACE_S = 10.0


class SandboxError(RuntimeError):
    """The sandbox could not be made."""


def inside() -> bool:
    """Tell whether this process runs in a sandbox made by this module."""
    return bool(os.environ.get(ENV_ROOT))


def host_argv(argv: Sequence[str]) -> tuple[list[str], tuple[int, ...]]:
    """The command that runs `argv` in the machine's mount and network namespaces.

    Outside a sandbox that is `argv` itself. Returns the argv and the fds to pass to it.
    """
    fds = _host_fds()
    if not inside() or fds is None:
        return list(argv), ()
    net, mnt = fds
    return ["nsenter", f"--net=/proc/self/fd/{net}", f"--mount=/proc/self/fd/{mnt}", "--",
            *argv], fds


def _host_fds() -> tuple[int, int] | None:
    value = os.environ.get(ENV_HOST_FDS, "")
    try:
        net, mnt = (int(part) for part in value.split(","))
        os.fstat(net)
        os.fstat(mnt)
    except (ValueError, OSError):
        return None
    return net, mnt


def _open_host_fds() -> tuple[int, int]:
    """This process's namespaces, or the machine's ones it was handed (nested sandboxes)."""
    inherited = _host_fds()
    if inherited is not None:
        return inherited
    fds = (os.open("/proc/self/ns/net", os.O_RDONLY), os.open("/proc/self/ns/mnt", os.O_RDONLY))
    for fd in fds:
        os.set_inheritable(fd, True)
    return fds


def _system_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYENV_VERSION")}
    env["PATH"] = SYSTEM_PATH
    return env


def _run(argv: Sequence[str], *, cwd: Path | None = None) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd,
                            env=_system_env(), check=False)
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(argv)} exited {result.returncode}: "
                           f"{(result.stdout + result.stderr).strip()[-2000:]}")
    return result.stdout


# ---- seeding ------------------------------------------------------------------------------
def _versions(packages: Sequence[str]) -> list[tuple[str, str, str]]:
    out = _run(["dpkg-query", "-W", "-f=${Package} ${Version} ${Architecture}\n", *packages])
    found = [tuple(line.split()) for line in out.splitlines() if line.strip()]
    return [(name, version, arch) for name, version, arch in found]


def _deb(name: str, version: str, arch: str, downloads: Path) -> Path:
    """The .deb of an installed package: apt's cache, or downloaded into `downloads`."""
    filename = f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
    cached = APT_ARCHIVES / filename
    if cached.is_file():
        return cached
    argv, fds = host_argv(["apt-get", "download", "-q", f"{name}={version}"])
    result = subprocess.run(argv, capture_output=True, text=True, cwd=downloads,
                            env=_system_env(), pass_fds=fds, check=False)
    got = downloads / filename
    if result.returncode != 0 or not got.is_file():
        raise SandboxError(f"cannot get {filename}: {(result.stdout + result.stderr)[-1000:]}")
    return got


def package_seed(directory: str) -> Path:
    """A directory holding what the packages ship for `directory` (cached per version)."""
    packages, share = PACKAGE_SEEDED[directory]
    versions = _versions(packages)
    key = hashlib.sha256(json.dumps([directory, versions]).encode()).hexdigest()[:16]
    seed = SEED_CACHE / key
    if seed.is_dir():
        return seed
    SEED_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SEED_CACHE) as tmp:
        staging = Path(tmp) / "seed"
        staging.mkdir()
        for name, version, arch in versions:
            extracted = Path(tmp) / name
            _run(["dpkg-deb", "-x", str(_deb(name, version, arch, Path(tmp))), str(extracted)])
            shipped = extracted / directory.lstrip("/")
            if shipped.is_dir():
                _run(["cp", "-a", f"{shipped}/.", str(staging)])
        if share is not None and os.path.isdir(share):  # as the postinst: no overwrite
            _run(["cp", "-an", f"{share}/.", str(staging)])
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(staging, seed)
    if not seed.is_dir():
        raise SandboxError(f"could not seed {directory}")
    return seed


# ---- the scratch root ---------------------------------------------------------------------
def _same_owner_and_mode(path: Path, like: str) -> None:
    if os.path.isdir(like):
        stat = os.stat(like)
        os.chown(path, stat.st_uid, stat.st_gid)
        path.chmod(stat.st_mode & 0o7777)


def _remove_stale() -> None:
    """Scratch roots of launchers that are gone (killed before they could remove them).

    A launcher holds an flock on its root's ``lock`` for as long as it runs; pids say nothing
    here (a nested sandbox's launcher has a pid of another namespace).
    """
    if not SCRATCH_PARENT.is_dir():
        return
    for entry in SCRATCH_PARENT.iterdir():
        if (entry / "kept").exists():  # --keep: the user removes it
            continue
        try:
            fd = os.open(entry / "lock", os.O_RDONLY)
        except OSError:  # a root being made this instant, or not ours: only if it is old
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime > 3600:
                    shutil.rmtree(entry, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its launcher runs
        finally:
            os.close(fd)
        shutil.rmtree(entry, ignore_errors=True)


def _scratch_root() -> tuple[Path, int]:
    """A new scratch root, locked by this launcher until it exits."""
    SCRATCH_PARENT.mkdir(parents=True, exist_ok=True, mode=0o700)
    _remove_stale()
    root = Path(tempfile.mkdtemp(prefix="run-", dir=SCRATCH_PARENT))
    fd = os.open(root / "lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return root, fd


def prepare(root: Path) -> list[tuple[str, str]]:
    """Fill `root` with the private directories; return the (source, target) bind mounts."""
    mounts = []
    for target in CREATED:
        os.makedirs(target, exist_ok=True)
    seeds = {directory: package_seed(directory) for directory in PACKAGE_SEEDED}
    for target in (*PACKAGE_SEEDED, *COPIED, *EMPTY):
        if not os.path.isdir(target):
            continue
        source = root / "private" / target.lstrip("/")
        source.mkdir(parents=True)
        _same_owner_and_mode(source, target)
        if target in seeds:
            _run(["cp", "-a", f"{seeds[target]}/.", str(source)])
        elif target in COPIED:
            _run(["cp", "-a", f"{target}/.", str(source)])
        mounts.append((str(source), target))
    return mounts


def overlays(root: Path) -> list[tuple[str, str, str]]:
    """(lower, upper, work) of each OVERLAID tree, their upper and work dirs made in `root`."""
    found = []
    for lower in OVERLAID:
        upper = root / "overlay" / lower.strip("/") / "upper"
        work = root / "overlay" / lower.strip("/") / "work"
        upper.mkdir(parents=True)
        work.mkdir(parents=True)
        found.append((lower, str(upper), str(work)))
    return found


def _pid_namespace(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/pid")
    return None


def _init_pid(unshare_pid: int, timeout: float = 10.0) -> int | None:
    """The sandbox's pid 1, seen from here: unshare's child."""
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    mine = _pid_namespace(os.getpid())
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            for pid in children.read_text().split():
                if _pid_namespace(int(pid)) not in (None, mine):
                    return int(pid)
        time.sleep(0.02)
    return None


def processes_in(namespace: str) -> list[int]:
    """PIDs (as seen here) of the processes whose pid namespace is `namespace`."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _pid_namespace(int(entry.name)) == namespace]


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def launch(cmd: Sequence[str], *, keep: bool = False) -> int:
    """Run `cmd` in a fresh sandbox; return its exit code. Nothing of it is left afterwards."""
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (namespaces, bind mounts)")
    _install_packages()
    root, lock = _scratch_root()
    code = 1
    try:
        plan = {"mounts": prepare(root), "overlays": overlays(root), "cmd": list(cmd)}
        (root / "plan.json").write_text(json.dumps(plan))
        fds = _open_host_fds()
        env = {**os.environ, ENV_ROOT: str(root), ENV_HOST_FDS: f"{fds[0]},{fds[1]}"}
        argv = [*UNSHARE, "--", sys.executable, os.path.abspath(__file__), "--init", str(root)]
        proc = subprocess.Popen(argv, pass_fds=fds, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509 - single-threaded here
        init = _init_pid(proc.pid)
        namespace = _pid_namespace(init) if init is not None else None

        def forward(signum: int, _frame: object) -> None:
            if init is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init, signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            code = proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        left = processes_in(namespace) if namespace else []
        if left:  # cannot happen once pid 1 is gone; say so loudly if it ever does
            print(f"sandbox: processes left in {namespace}: {left}", file=sys.stderr)
            code = code or 1
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            (root / "kept").touch()
            print(f"sandbox: scratch root kept at {root}", file=sys.stderr)
        os.close(lock)
    return code


def _install_packages() -> None:
    """The tier's packages, on the machine, before the sandbox is made.

    So that the directories they create (/etc/ceph, /etc/swift, ...) exist to be made private;
    a package installed later from inside (through :func:`host_argv`) is installed right, but
    its directories are the machine's until the next sandbox.
    """
    sys.path[:0] = [str(Path(__file__).resolve().parents[2])]
    from tests.functional import cephstack, realstack, swiftstack

    realstack.install_packages([*cephstack.CEPH_PACKAGES, *swiftstack.SWIFT_PACKAGES])


# ---- inside: pid 1 --------------------------------------------------------------------------
def _mount(mounts: Sequence[Sequence[str]], overlaid: Sequence[Sequence[str]] = ()) -> None:
    for lower, upper, work in overlaid:  # first: the private directories bind on top
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={lower},upperdir={upper},workdir={work}", lower])
    for source, target in mounts:
        _run(["mount", "--bind", source, target])
    lock = Path("/run/lock")
    lock.mkdir(exist_ok=True)
    lock.chmod(0o1777)
    for archives in (Path("/var/cache/apt/archives/partial"), Path("/var/lib/apt/lists/partial")):
        if archives.parent.parent.is_dir():
            archives.mkdir(parents=True, exist_ok=True)
    _run(["ip", "link", "set", "lo", "up"])


def init(root: Path) -> int:
    """Pid 1 of the sandbox: mount, run the command, reap orphans, stop what is left."""
    plan = json.loads((root / "plan.json").read_text())
    _mount(plan["mounts"], plan.get("overlays", ()))
    fds = _host_fds() or ()
    child = subprocess.Popen(plan["cmd"], pass_fds=fds)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, forward)
    code = 1
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            break
    _stop_everyone()
    return code if code >= 0 else 128 - code


def _reap() -> bool:
    """Reap exited children; tell whether any child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _stop_everyone() -> None:
    """SIGTERM every process of the sandbox, SIGKILL what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, sig)  # from pid 1: every process of this pid namespace but itself
        deadline = time.monotonic() + STOP_GRACE_S
        while _reap() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not [p for p in Path("/proc").iterdir() if p.name.isdigit() and p.name != "1"]:
            return


def main(argv: Sequence[str]) -> int:
    """`[--keep] -- CMD...` launches; `--init ROOT` is the sandbox's pid 1."""
    args = list(argv)
    if args[:1] == ["--init"]:
        return init(Path(args[1]))
    keep = "--keep" in args[: args.index("--")] if "--" in args else False
    cmd = args[args.index("--") + 1:] if "--" in args else args
    if not cmd:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return launch(cmd, keep=keep)
    except SandboxError as err:
        print(f"sandbox: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

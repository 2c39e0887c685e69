"""`make test-epoxy`: the functional tier and `make local`'s round trip on Debian 13 (Epoxy).

    python tools/epoxy.py [--rebuild] [--shell] [--only functional|local] [-- PYTEST-ARGS...]

Debian 13 "trixie" ships OpenStack Epoxy (glance 2:30, keystone 27, haproxy 3.0, ceph 18,
Python 3.13), the release after Caracal that Ubuntu 24.04's Cloud Archive carries; Debian 12
(this machine) ships Zed. This runs the project's own test commands against Epoxy without
touching the machine:

1. a trixie root file system, built once with ``debootstrap --variant=minbase`` and cached
   under ``/var/cache/glance-charm-epoxy`` (``GLANCE_EPOXY_CACHE``); rebuilt when the base
   package list below changes or with ``--rebuild``;
2. a fresh copy of this checkout (tracked and untracked, not ignored, files) in it;
3. a private mount + pid namespace (``unshare``) in which /proc, /sys, /dev, a private /run,
   /tmp and /dev/shm are mounted into the root and the commands run under ``chroot``: every
   mount and process goes when the command ends, however it ends. The network namespace is
   the machine's so apt and pip reach the registries; the services themselves run in the
   functional tier's own sandbox (tests/functional/sandbox.py: private network, mount and pid
   namespaces), as on the machine, so nothing binds a port of the machine.

Inside, the commands are the README's: ``make functional`` (the tier installs trixie's
packages into the root with apt) and ``make local``'s round trip, run inside the tier's
sandbox (``tests/functional/sandbox.py -- ...``) so it cannot meet the machine's own stack.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GLANCE_EPOXY_CACHE", "/var/cache/glance-charm-epoxy"))
SUITE = "trixie"
MIRROR = os.environ.get("GLANCE_EPOXY_MIRROR", "http://deb.debian.org/debian")
#: What the root needs besides minbase to run the project's make targets (the functional
#: tier installs the OpenStack packages itself, as on the machine).
BASE_PACKAGES = (
    "ca-certificates", "curl", "git", "hostname", "iproute2", "make", "procps", "python3",
    "python3-pip", "python3-venv", "util-linux",
)
#: The pacemaker HA tier (three nodes, corosync/pacemaker) runs on the machine only: it is
#: about the charm's hacluster data and rolling restarts, not about glance's release.
EPOXY_PYTEST_ARGS = ("-m", "not ha_pacemaker")
WORKDIR = "/work/glance"  # the checkout's copy, inside the root
TOX_WORKDIR = "/var/cache/glance-epoxy-tox"  # tox envs kept in the root between runs
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READY = ".glance-epoxy-ready"


def _stamp() -> str:
    """What a cached root was built from; a different value rebuilds it."""
    return hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(BASE_PACKAGES)} 1".encode()).hexdigest()


def _log(message: str) -> None:
    print(f"[epoxy] {message}", file=sys.stderr, flush=True)


def enter_script(rootfs: Path, command: str, work: Path | None) -> str:
    """The shell script run in the private namespaces: mount into the root, chroot, run.

    Args:
        rootfs: the trixie root.
        command: shell command run in the root as root (cwd WORKDIR when `work` is given).
        work: the checkout's copy to bind at WORKDIR, or None.

    Returns:
        A POSIX shell script.
    """
    r = shlex.quote(str(rootfs))
    lines = [
        "set -eu",
        # private propagation: nothing mounted below leaks to the machine
        "mount --make-rprivate /",
        # the root a mount point of its own: inside, `unshare --propagation private` (the
        # tier's sandbox) remounts / and fails with EINVAL on a plain directory
        f"mount --bind {r} {r}",
        f"mount --rbind /dev {r}/dev",
        f"mount -t tmpfs -o mode=1777 shm {r}/dev/shm",  # noqa: S108 (inside the root)
        f"mount -t proc proc {r}/proc",
        f"mount --rbind /sys {r}/sys",
        f"mount -t tmpfs -o mode=755 run {r}/run",
        f"mount -t tmpfs -o mode=1777 tmp {r}/tmp",  # noqa: S108 (a fresh tmpfs)
        f"cp -L /etc/resolv.conf {r}/etc/resolv.conf",
    ]
    if work is not None:
        lines += [f"mkdir -p {r}{WORKDIR}", f"mount --bind {shlex.quote(str(work))} {r}{WORKDIR}"]
    cwd = WORKDIR if work is not None else "/"
    env = (f"env -i PATH={SYSTEM_PATH} HOME=/root LANG=C.UTF-8 TERM=dumb "
           f"DEBIAN_FRONTEND=noninteractive TOX_WORK_DIR={TOX_WORKDIR}")
    lines.append(f"exec chroot {r} {env} /bin/sh -c {shlex.quote(f'cd {cwd} && {command}')}")
    return "\n".join(lines) + "\n"


def run_inside(rootfs: Path, command: str, work: Path | None = None) -> int:
    """Run `command` in the root under private mount and pid namespaces; its exit code."""
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
            "/bin/sh", "-c", enter_script(rootfs, command, work)]
    return subprocess.run(argv, check=False).returncode


def ensure_rootfs(rebuild: bool = False) -> Path:
    """The cached trixie root, built when missing, stale or asked for."""
    rootfs = CACHE / "rootfs"
    ready = rootfs / READY
    if not rebuild and ready.exists() and ready.read_text().strip() == _stamp():
        _log(f"using the cached {SUITE} root at {rootfs}")
        return rootfs
    if shutil.which("debootstrap") is None:
        _log("installing debootstrap (apt)")
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        "debootstrap"], check=True, env={**os.environ,
                                                          "DEBIAN_FRONTEND": "noninteractive"})
    building = CACHE / "rootfs.tmp"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _log(f"debootstrap --variant=minbase {SUITE} (about 2 minutes)")
    subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(building), MIRROR],
                   check=True, stdout=subprocess.DEVNULL)
    _log(f"apt-get install {' '.join(BASE_PACKAGES)}")
    install = ("apt-get update -q && apt-get install -y -q --no-install-recommends "
               + " ".join(BASE_PACKAGES) + " && apt-get clean")
    if run_inside(building, install) != 0:
        raise SystemExit("[epoxy] installing the base packages in the root failed")
    (building / READY).write_text(_stamp() + "\n")
    building.rename(rootfs)
    _log(f"root built in {time.monotonic() - started:.0f}s")
    return rootfs


def trust_machine_cas(rootfs: Path) -> int:
    """Trust in the root what the machine trusts locally (/usr/local/share/ca-certificates).

    A machine behind a TLS-inspecting egress proxy reaches PyPI only with its local CAs;
    the root's pip needs them too. update-ca-certificates runs inside the root.
    """
    local = Path("/usr/local/share/ca-certificates")
    target = rootfs / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for cert in sorted(local.glob("**/*.crt")) if local.is_dir() else []:
        shutil.copy2(cert, target / cert.name)
    return run_inside(rootfs, "update-ca-certificates >/dev/null")


def checkout_files(root: Path) -> list[str]:
    """The checkout's files as git sees them: tracked plus untracked, not ignored."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name]


def copy_checkout(dest: Path, ref: str | None = None) -> Path:
    """A fresh copy of the checkout at `dest` (the root's tests write caches and builds).

    The working tree as it is, or the commit `ref` (``git archive``) when given.
    """
    shutil.rmtree(dest, ignore_errors=True)
    if ref is not None:
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest
    for name in checkout_files(ROOT):
        source = ROOT / name
        if not source.exists() or source.is_dir():  # deleted in the worktree, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return dest


def tier_packages(checkout: Path) -> list[str]:
    """Every package the functional tier installs: the strings of its `*PACKAGES` tuples.

    Read from tests/functional/*.py without importing them. Installed into the root before
    the tier runs (with the machine's network): inside its sandbox the tier reaches apt only
    through the machine's namespaces, which are the machine's root, not this one.
    """
    found: set[str] = set()
    for module in sorted((checkout / "tests" / "functional").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
                else None)
            value = getattr(node, "value", None)
            if (isinstance(target, ast.Name) and target.id.endswith("PACKAGES")
                    and isinstance(value, ast.Tuple)):
                found |= {elt.value for elt in value.elts
                          if isinstance(elt, ast.Constant) and isinstance(elt.value, str)}
    return sorted(found)


def install_command(packages: Sequence[str]) -> str:
    """apt-get install in the root, no service started by a postinst (policy-rc.d 101)."""
    policy = "/usr/sbin/policy-rc.d"
    return (f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod 755 {policy} && "
            "apt-get update -q && apt-get install -y -q --no-install-recommends "
            f"{' '.join(shlex.quote(p) for p in packages)}; rc=$?; rm -f {policy}; exit $rc")


def commands(only: str | None, pytest_args: Sequence[str]) -> list[tuple[str, str]]:
    """(name, shell command) of each step run in the root, in order."""
    extra = " ".join(shlex.quote(arg) for arg in (*EPOXY_PYTEST_ARGS, *pytest_args))
    tox = ".venv-tox/bin/tox"
    steps = [
        ("functional", f"make {tox} PYTHON=python3 && {tox} -e functional -- {extra}".rstrip()),
        # make local's own round trip, inside the tier's sandbox (no port of the machine);
        # the tox env is built first, with network, then used offline inside the sandbox.
        ("local", f"make {tox} PYTHON=python3 && {tox} -e local --notest && "
                  f"python3 tests/functional/sandbox.py -- {tox} -e local -- up"),
    ]
    return [(name, cmd) for name, cmd in steps if only in (None, name)]


def main(argv: Sequence[str]) -> int:
    """Build or reuse the root, copy the checkout, run the steps; 0 only if all pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached root")
    parser.add_argument("--shell", action="store_true", help="an interactive shell inside")
    parser.add_argument("--only", choices=("functional", "local"))
    parser.add_argument("--ref", help="test this commit (git archive) instead of the worktree")
    parser.add_argument("pytest_args", nargs="*", help="passed to the functional tier")
    options = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("[epoxy] needs root (debootstrap, namespaces, chroot)")
    rootfs = ensure_rootfs(options.rebuild)
    if trust_machine_cas(rootfs) != 0:
        _log("update-ca-certificates failed in the root")
        return 1
    work = copy_checkout(CACHE / "work", options.ref)
    packages = tier_packages(work)
    _log(f"the tier's packages, from trixie: {' '.join(packages)}")
    if run_inside(rootfs, install_command(packages)) != 0:
        _log("installing the tier's packages in the root failed")
        return 1
    if options.shell:
        return run_inside(rootfs, "exec /bin/bash -i", work)
    failed = []
    for name, command in commands(options.only, options.pytest_args):
        started = time.monotonic()
        _log(f"{name}: {command}")
        code = run_inside(rootfs, command, work)
        _log(f"{name}: exit {code} after {time.monotonic() - started:.0f}s")
        if code != 0:
            failed.append(name)
    if failed:
        _log(f"FAILED on {SUITE} (Epoxy): {', '.join(failed)}")
        return 1
    _log(f"passed on {SUITE} (Epoxy)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

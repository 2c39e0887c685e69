"""Atomic, owner- and mode-explicit file writes that touch disk only when bytes change."""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RootedPaths:
    """Paths of the real system mapped under a root that tests may move."""

    root: Path = Path("/")

    def __call__(self, absolute: str) -> Path:
        """Map an absolute path of the real system under root."""
        return self.root / absolute.lstrip("/")


@dataclass(frozen=True)
class FileSpec:
    """A file the charm owns: where, what bytes, and with which owner and mode."""

    path: Path
    content: bytes
    mode: int = 0o640
    owner: str = "root"
    group: str = "root"


def _ids(owner: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid


def is_current(spec: FileSpec) -> bool:
    """Whether the file already holds these bytes with this owner and mode."""
    try:
        stat = spec.path.stat()
        if (stat.st_mode & 0o7777, (stat.st_uid, stat.st_gid)) != (
            spec.mode, _ids(spec.owner, spec.group)
        ):
            return False
        return spec.path.read_bytes() == spec.content
    except FileNotFoundError:
        return False


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def sweep_temp_files(path: Path) -> None:
    """Remove the `.<name>.<random>` temp files an interrupted write of path left behind.

    A hook killed (SIGKILL, machine crash) between mkstemp and the rename leaves a full
    copy of the new file, secrets included; only one hook runs at a time, so any such
    file is stale.
    """
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(glob.escape(_temp_prefix(path)) + "*"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            stale.unlink()


def write(spec: FileSpec) -> bool:
    """Write atomically (temp file in the same dir, fsync, rename); return whether it changed.

    The temporary file gets its final owner and mode before any byte is written, so a
    secret is never readable by others, not even for an instant. Temp files an earlier,
    interrupted write left are removed first.
    """
    sweep_temp_files(spec.path)
    if is_current(spec):
        return False
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    uid, gid = _ids(spec.owner, spec.group)
    fd, tmp = tempfile.mkstemp(dir=spec.path.parent, prefix=_temp_prefix(spec.path))
    try:
        os.fchmod(fd, spec.mode)
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(spec.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, spec.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def remove(path: Path) -> bool:
    """Remove a file the charm wrote (and its stale temp files); return whether it existed."""
    sweep_temp_files(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def ensure_dir(path: Path, mode: int, owner: str, group: str) -> bool:
    """Create a directory (and parents) with owner and mode; return whether anything changed."""
    changed = False
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        changed = True
    uid, gid = _ids(owner, group)
    stat = path.stat()
    if stat.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    if (stat.st_uid, stat.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    return changed

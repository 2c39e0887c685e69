"""Atomic, owner- and mode-explicit file writes that touch disk only when bytes change."""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path


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


def write(spec: FileSpec) -> bool:
    """Write atomically (temp file in the same dir, fsync, rename); return whether it changed.

    The temporary file gets its final owner and mode before any byte is written, so a
    secret is never readable by others, not even for an instant.
    """
    if is_current(spec):
        return False
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    uid, gid = _ids(spec.owner, spec.group)
    fd, tmp = tempfile.mkstemp(dir=spec.path.parent, prefix=f".{spec.path.name}.")
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
    """Remove a file the charm wrote; return whether it existed."""
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

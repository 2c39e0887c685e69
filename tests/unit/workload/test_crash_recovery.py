"""A hook that dies while writing leaves old-or-new files, and the next hook converges.

The base state has every file the charm writes (glance-api.conf, glance-swift.conf,
ceph.conf, the keyring). One relation change then changes all four, and the hook is made
to die at a chosen point: files.write refusing the 2nd file, os.replace failing on the
2nd file (temp file written, not renamed), the 2nd temp file's write failing half-way, a
BaseException (what a SIGTERM handler or KeyboardInterrupt raises) instead of an
Exception, removing an obsolete file failing, the restart failing after the files are
written. A real SIGKILL between a temp file's write and its rename is played in a child
process. Afterwards:

* every file holds exactly its old bytes or its new bytes, with its mode;
* no temporary file is left beside them;
* the next hook (with nothing injected) writes the new bytes and pays the restart the dead
  hook owed exactly once; the hook after that restarts nothing.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ops
import pytest

from glance_charm.reconcile.reconciler import Reconciler
from glance_charm.workload import files
from tests.unit.conftest import GlanceHarness

FILES = (
    "etc/glance/glance-api.conf",
    "etc/glance/glance-swift.conf",
    "etc/ceph/ceph.conf",
    "etc/ceph/ceph.client.glance.keyring",
)
MARKER = "var/lib/charm/glance/restart-pending"
NEW_KEY = "AQBnZXdLZXlGb3JHbGFuY2VDcmFzaFRlc3QxMjM0NQ=="
NEW_PASSWORD = "n3w-Keystone-Passw0rd-after-crash"


class HookKilled(BaseException):
    """Not an Exception: what a signal handler or interpreter shutdown would raise."""


Snapshot = dict[str, tuple[bytes, int] | None]


def snapshot(root: Path) -> Snapshot:
    found: Snapshot = {}
    for rel in FILES:
        path = root / rel
        found[rel] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) if path.exists() \
            else None
    return found


def stray_files(root: Path) -> list[str]:
    """Temporary files files.write leaves if it dies between mkstemp and rename."""
    return sorted(
        str(path.relative_to(root)) for path in root.rglob(".*") if path.is_file()
    )


@pytest.fixture
def base(gh: GlanceHarness) -> dict[str, int]:
    """Core + swift + ceph: Active with all four files written."""
    db, ks = gh.relate_core()
    swift = gh.add_fixture("object-store_swift-proxy")
    ceph = gh.relate_ceph(answer=True)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert all(snapshot(gh.root).values())
    return {"db": db, "identity": ks, "swift": swift, "ceph": ceph}


def change_everything(gh: GlanceHarness, rels: dict[str, int]) -> None:
    """One hook's worth of change touching all four files (the last update fires it)."""
    with gh.harness.hooks_disabled():
        gh.harness.update_relation_data(rels["ceph"], "ceph-mon/0", {
            "key": NEW_KEY, "ceph-public-address": "10.5.0.61"})
    gh.harness.update_relation_data(rels["identity"], "keystone/0",
                                    {"service_password": NEW_PASSWORD})


def nth_call_raises(real: Callable[..., Any], n: int, error: BaseException,
                    calls: list[Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == n:
            raise error
        return real(*args, **kwargs)
    return wrapper


def inject_write(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[Any]:
    """The 2nd files.write that changes a file fails (unchanged files are not counted)."""
    calls: list[Any] = []
    failing = nth_call_raises(files.write, 2, error, calls)
    real = files.write

    def write(spec: files.FileSpec) -> bool:
        return real(spec) if files.is_current(spec) else failing(spec)

    monkeypatch.setattr(files, "write", write)
    return calls


def inject_replace(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr(files.os, "replace", nth_call_raises(os.replace, 2, error, calls))
    return calls


def inject_half_write(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[Any]:
    """The 2nd temp file gets half its bytes, then the write fails (disk full)."""
    calls: list[Any] = []
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, *args, **kwargs)
        calls.append(fd)
        if len(calls) != 2:
            return handle
        real_write = handle.write

        class Half:
            def __enter__(self) -> Half:
                return self

            def __exit__(self, *exc: object) -> None:
                handle.close()

            def write(self, data: bytes) -> int:
                real_write(data[: len(data) // 2])
                handle.flush()
                raise error

            def __getattr__(self, name: str) -> Any:
                return getattr(handle, name)

        return Half()

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    return calls


INJECTIONS = {
    "files.write raises on the 2nd file": (inject_write, OSError(28, "No space left")),
    "files.write killed on the 2nd file": (inject_write, HookKilled()),
    "os.replace fails on the 2nd file": (inject_replace, OSError(5, "I/O error")),
    "os.replace killed on the 2nd file": (inject_replace, HookKilled()),
    "2nd temp file half written": (inject_half_write, OSError(28, "No space left")),
    "2nd temp file half written, killed": (inject_half_write, HookKilled()),
}


@pytest.mark.parametrize("how", sorted(INJECTIONS))
def test_hook_dying_mid_write_leaves_old_or_new_and_converges(
    gh: GlanceHarness, base: dict[str, int], monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    inject, error = INJECTIONS[how]
    old = snapshot(gh.root)
    restarts = gh.services.count("restart")

    calls = inject(monkeypatch, error)
    with pytest.raises(type(error)):
        change_everything(gh, base)
    assert len(calls) >= 2, "the injection did not fire"
    monkeypatch.undo()
    mid = snapshot(gh.root)
    assert stray_files(gh.root) == []
    assert gh.services.count("restart") == restarts
    assert any(mid[rel] != old[rel] for rel in FILES), "the first file was not written"
    assert any(mid[rel] == old[rel] for rel in FILES), "nothing was left old"
    assert (gh.root / MARKER).exists(), "the restart the written file needs is not owed"

    # The next hook (any hook: Juju retries the failed one) converges.
    gh.event()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    new = snapshot(gh.root)
    for rel in FILES:
        assert mid[rel] in (old[rel], new[rel]), f"{rel} is neither old nor new"
        assert new[rel] != old[rel], f"{rel} did not get the new content"
    assert NEW_PASSWORD in gh.conf()["keystone_authtoken"]["password"]
    assert NEW_KEY in (gh.root / FILES[3]).read_text()
    assert gh.services.count("restart") == restarts + 1
    assert not (gh.root / MARKER).exists()
    gh.event()
    assert gh.services.count("restart") == restarts + 1
    assert snapshot(gh.root) == new
    assert stray_files(gh.root) == []


def test_reference_run_without_a_crash_restarts_once(gh: GlanceHarness,
                                                     base: dict[str, int]) -> None:
    """The same change without injection: the new bytes the crash tests converge to."""
    old = snapshot(gh.root)
    restarts = gh.services.count("restart")
    change_everything(gh, base)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    new = snapshot(gh.root)
    assert all(new[rel] != old[rel] for rel in FILES)
    assert gh.services.count("restart") == restarts + 1


def test_restart_failing_after_the_writes_is_retried_once(
    gh: GlanceHarness, base: dict[str, int],
) -> None:
    restarts = gh.services.count("restart")
    gh.services.fail_on.add("restart")
    change_everything(gh, base)
    assert gh.status() == ops.BlockedStatus("glance-api failed to start; see its log")
    assert (gh.root / MARKER).exists()
    written = snapshot(gh.root)
    gh.services.fail_on.clear()
    gh.event()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert snapshot(gh.root) == written
    # the failed attempt plus the one that worked
    assert gh.services.count("restart") == restarts + 2
    assert not (gh.root / MARKER).exists()
    gh.event()
    assert gh.services.count("restart") == restarts + 2


def test_hook_dying_after_the_writes_before_the_restart(
    gh: GlanceHarness, base: dict[str, int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed between the last write and the restart: the next hook restarts, once."""
    restarts = gh.services.count("restart")

    def killed(*args: Any) -> None:
        raise HookKilled

    monkeypatch.setattr(Reconciler, "_ensure_db_synced", killed)
    with pytest.raises(HookKilled):
        change_everything(gh, base)
    monkeypatch.undo()
    written = snapshot(gh.root)
    assert NEW_PASSWORD in gh.conf()["keystone_authtoken"]["password"]
    assert gh.services.count("restart") == restarts
    assert (gh.root / MARKER).exists()
    gh.event()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert snapshot(gh.root) == written
    assert gh.services.count("restart") == restarts + 1
    gh.event()
    assert gh.services.count("restart") == restarts + 1


def test_removal_failing_leaves_the_rest_and_converges(
    gh: GlanceHarness, base: dict[str, int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ceph and swift removed; deleting the 2nd obsolete file dies."""
    restarts = gh.services.count("restart")
    calls: list[Any] = []
    monkeypatch.setattr(files, "remove", nth_call_raises(files.remove, 2,
                                                         OSError(13, "Permission denied"),
                                                         calls))
    with gh.harness.hooks_disabled():  # ceph's hooks are not run; swift's departure is
        gh.harness.remove_relation(base["ceph"])
    with pytest.raises(OSError):  # the hook dies; Juju will run a hook again
        gh.harness.remove_relation(base["swift"])
    assert len(calls) == 2
    monkeypatch.undo()
    assert (gh.root / MARKER).exists()
    gh.event()
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["DEFAULT"]["enabled_backends"] == "local:file"
    for rel in FILES[1:]:
        assert not (gh.root / rel).exists(), rel
    assert gh.services.count("restart") == restarts + 1
    gh.event()
    assert gh.services.count("restart") == restarts + 1


def test_restart_owed_survives_a_failed_hook_and_is_paid_once(gh: GlanceHarness) -> None:
    """mark_restart_needed/restart_needed: the marker is the only memory across hooks."""
    gh.relate_core()
    workload = gh.workload
    assert not workload.restart_needed()
    workload.mark_restart_needed()  # what configure() does before its first write
    assert workload.restart_needed()
    restarts = gh.services.count("restart")
    gh.event()  # a later hook with nothing new to write
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.services.count("restart") == restarts + 1
    assert not workload.restart_needed()
    gh.event()
    assert gh.services.count("restart") == restarts + 1


# ---- a real SIGKILL between write and rename ----------------------------------------------
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from glance_charm.workload import files
    def die(*args):
        os.kill(os.getpid(), signal.SIGKILL)
    files.os.replace = die
    files.write(files.FileSpec(Path(sys.argv[2]), b"NEW " * 4096, 0o640,
                               sys.argv[3], sys.argv[4]))
""")


def kill_mid_write(path: Path, owner: str, group: str) -> None:
    src = Path(__file__).resolve().parents[3] / "src"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(path), owner, group],
        capture_output=True, timeout=60, check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def test_sigkill_mid_write_keeps_the_old_file_whole(gh: GlanceHarness) -> None:
    gh.relate_core()
    old = gh.conf_path.read_bytes()
    kill_mid_write(gh.conf_path, gh.workload.config_owner, gh.workload.group)
    assert gh.conf_path.read_bytes() == old
    leftovers = stray_files(gh.root)
    assert len(leftovers) == 1 and ".glance-api.conf." in leftovers[0]
    leftover = gh.root / leftovers[0]
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o640, "temp file readable by others"
    gh.harness.update_config({"debug": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["DEFAULT"]["debug"] == "true"


def test_sigkill_leftover_temp_file_is_swept_by_the_next_write(gh: GlanceHarness) -> None:
    gh.relate_core()
    kill_mid_write(gh.conf_path, gh.workload.config_owner, gh.workload.group)
    assert stray_files(gh.root)
    gh.harness.update_config({"debug": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert stray_files(gh.root) == []


def test_leftover_temp_files_are_swept_by_unchanged_writes_and_removals(tmp_path: Path) -> None:
    """Only the target's own `.<name>.*` temp files go; the sweep needs no content change."""
    import grp
    import pwd

    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    spec = files.FileSpec(tmp_path / "glance-api.conf", b"same", 0o640, owner, group)
    assert files.write(spec)
    keyring = tmp_path / "ceph.client.glance.keyring"
    keyring.write_text("key")
    stale = [tmp_path / ".glance-api.conf.abc123", tmp_path / ".ceph.client.glance.keyring.x9"]
    for path in stale:
        path.write_text("secret")
    unrelated = tmp_path / ".other.conf.abc123"
    unrelated.write_text("not ours")
    assert not files.write(spec)  # already current: nothing written, the leftover still goes
    assert not stale[0].exists()
    assert files.remove(keyring)
    assert not stale[1].exists()
    assert unrelated.exists()

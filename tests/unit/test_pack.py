"""tools/pack.py lays out the .charm as charmcraft's uv plugin does (fast: a stub venv, no uv).

The real build (uv from uv.lock for Python 3.12, the packed dispatch run, `charmcraft analyse`)
is tests/packing/test_pack.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tools import pack

ROOT = Path(__file__).resolve().parents[2]
#: charmcraft 4.5 dispatch.DISPATCH_SCRIPT_TEMPLATE for src/charm.py, byte for byte.
CHARMCRAFT_DISPATCH = """\
#!/bin/sh
dispatch_path="$(dirname $(realpath $0))"
venv_bin_path="${dispatch_path}/venv/bin"
python_path="${venv_bin_path}/python"
if [ ! -e "${python_path}" ]; then
    mkdir -p "${venv_bin_path}"
    ln -s $(which python3) "${python_path}"
fi

# Add charm lib and source directories to PYTHONPATH so the charm can import
# libraries and its own modules as expected.
export PYTHONPATH="${dispatch_path}/lib:${dispatch_path}/src"

# Add the charm's lib and usr/lib directories to LD_LIBRARY_PATH, allowing
# staged packages to be discovered by the dynamic linker.
""" + (
    'export LD_LIBRARY_PATH="${dispatch_path}/usr/lib:${dispatch_path}/lib:'
    '${dispatch_path}/usr/lib/$(uname -m)-linux-gnu"\n'
) + """
exec "${python_path}" "${dispatch_path}/src/charm.py"
"""
SITE = "lib/python3.12/site-packages"


def _stub_venv(path: Path) -> Path:
    site = path / SITE
    (site / "ops").mkdir(parents=True)
    (site / "ops" / "__init__.py").write_text("def main(charm): ...\n")
    (path / "bin").mkdir()
    (path / "bin" / "activate").write_text("VIRTUAL_ENV=/build/venv\nexport VIRTUAL_ENV\n")
    (path / "pyvenv.cfg").write_text("relocatable = true\n")
    return path


def _project_copy(tmp_path: Path, *, executable: bool = True,
                  part: dict | None = None) -> Path:
    """Copy of the repository's charm files, with a chosen charm part and entrypoint mode."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("src", "templates"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("metadata.yaml", "config.yaml", "actions.yaml", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, root / name)
    charmcraft = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())
    if part is not None:
        charmcraft["parts"]["charm"] = part
    (root / "charmcraft.yaml").write_text(yaml.safe_dump(charmcraft))
    entrypoint = root / "src" / "charm.py"
    mode = entrypoint.stat().st_mode
    entrypoint.chmod(mode | 0o111 if executable else mode & ~0o111)
    return root


@pytest.fixture(scope="module")
def packed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, zipfile.ZipFile]]:
    tmp = tmp_path_factory.mktemp("pack")
    venv = _stub_venv(tmp / "venv")
    root = _project_copy(tmp)
    (charm,) = pack.pack(root, tmp / "out", venv=venv)
    with zipfile.ZipFile(charm) as archive:
        yield charm, archive


def test_charm_named_like_charmcraft(packed: tuple[Path, zipfile.ZipFile]) -> None:
    charm, _ = packed
    assert charm.name == "glance_amd64.charm"


def test_archive_layout(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    names = set(archive.namelist())
    for required in ("dispatch", "manifest.yaml", "metadata.yaml", "config.yaml",
                     "actions.yaml", "src/charm.py", f"venv/{SITE}/ops/__init__.py",
                     "venv/bin/activate", "venv/pyvenv.cfg"):
        assert required in names
    for template in (ROOT / "templates").iterdir():
        assert f"templates/{template.name}" in names
    for module in (ROOT / "src").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names
    assert not [name for name in names if "/__pycache__/" in name and name.startswith("src/")]
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"dispatch", "manifest.yaml", "metadata.yaml", "config.yaml", "actions.yaml",
                   "src", "templates", "venv"}  # no hooks/: charmcraft's uv charms have none


def test_dispatch_is_charmcraft_s(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    assert archive.read("dispatch").decode() == CHARMCRAFT_DISPATCH
    assert pack.dispatch_text("src/charm.py") == CHARMCRAFT_DISPATCH
    mode = archive.getinfo("dispatch").external_attr >> 16
    assert stat.S_IMODE(mode) == 0o755


def test_entrypoint_mode_kept(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    assert (archive.getinfo("src/charm.py").external_attr >> 16) & 0o111


def test_project_yaml_copied_verbatim(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    for name in ("metadata.yaml", "config.yaml", "actions.yaml"):
        assert archive.read(name) == (ROOT / name).read_bytes()


def test_manifest(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    manifest = yaml.safe_load(archive.read("manifest.yaml"))
    assert list(manifest) == ["charmcraft-version", "charmcraft-started-at", "bases", "analysis"]
    assert manifest["bases"] == [
        {"name": "ubuntu", "channel": "24.04", "architectures": ["amd64"]}
    ]
    # charmcraft reads "${dispatch_path}/src/charm.py" literally: unknown, as for its own build
    assert manifest["analysis"] == {"attributes": [{"name": "language", "result": "unknown"},
                                                   {"name": "framework", "result": "unknown"}]}


def test_entrypoint_read_like_charmcraft(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    entry = tmp_path / "src" / "charm.py"
    entry.write_text("import ops\n")
    entry.chmod(0o755)
    (tmp_path / "venv" / "ops").mkdir(parents=True)
    (tmp_path / "dispatch").write_text("#!/bin/sh\nexec ./src/charm.py\n\n")
    assert pack.is_python_entrypoint(tmp_path) == entry
    assert pack.analysis_attributes(tmp_path)[1] == {"name": "framework", "result": "operator"}
    entry.chmod(0o644)
    assert pack.is_python_entrypoint(tmp_path) is None


def test_reproducible_timestamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert pack.started_at() == "1970-01-01T00:00:00.000000Z"


def test_uv_commands_are_the_plugin_s() -> None:
    venv, sync = pack.uv_commands(Path("/p/venv"), "/usr/bin/python3.12", "uv")
    assert venv == ["uv", "venv", "--relocatable", "--allow-existing", "--python",
                    "/usr/bin/python3.12", "/p/venv"]
    assert sync == ["uv", "sync", "--no-dev", "--no-editable", "--reinstall",
                    "--no-install-project"]
    assert pack.UV_ENV["UV_FROZEN"] == "true"


def test_load_project_reads_charmcraft_yaml() -> None:
    project = pack.load_project(ROOT)
    assert project.name == "glance"
    assert project.base == "ubuntu@24.04"
    assert project.platforms == ("amd64",)
    assert project.entrypoint == "src/charm.py"
    assert project.part == {"plugin": "uv", "source": ".", "build-snaps": ["astral-uv"]}
    assert project.extra_prime == ("templates",)
    assert project.python_version == "3.12"


def _fake_uv(tmp_path: Path) -> tuple[str, Path]:
    calls = tmp_path / "calls"
    script = tmp_path / "uv"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, pathlib, sys\n"
        f"pathlib.Path({str(calls)!r}).open('a').write(sys.argv[1] + ' ')\n"
        "venv = pathlib.Path(os.environ['UV_PROJECT_ENVIRONMENT'])\n"
        "if sys.argv[1] == 'venv':\n"
        "    (venv / 'bin').mkdir(parents=True)\n"
        "    (venv / 'bin' / 'python').symlink_to(sys.executable)\n"
        "    (venv / 'bin' / 'activate').write_text('VIRTUAL_ENV=/x\\n')\n"
        "    (venv / 'lib64').symlink_to('lib')\n"
        "else:\n"
        f"    (venv / {SITE!r} / 'ops').mkdir(parents=True)\n"
        "    (venv / 'bin' / 'ops-tool').write_text('')\n"
    )
    script.chmod(0o755)
    return str(script), calls


def test_venv_is_cached_by_lock_and_cleaned_as_charmcraft(tmp_path: Path) -> None:
    root = _project_copy(tmp_path)
    uv, calls = _fake_uv(tmp_path)
    project = pack.load_project(root)
    first = pack.build_venv(project, "amd64", tmp_path / "cache", python=sys.executable, uv=uv)
    second = pack.build_venv(project, "amd64", tmp_path / "cache", python=sys.executable, uv=uv)
    assert first == second
    assert calls.read_text() == "venv sync "
    assert (first / SITE / "ops").is_dir()
    assert sorted(p.name for p in (first / "bin").iterdir()) == ["activate"]
    assert "BASH_SOURCE" in (first / "bin" / "activate").read_text()
    assert not (first / "lib64").exists()
    (root / "uv.lock").write_text((root / "uv.lock").read_text() + "\n")
    third = pack.build_venv(pack.load_project(root), "amd64", tmp_path / "cache",
                            python=sys.executable, uv=uv)
    assert third != first and calls.read_text() == "venv sync venv sync "


def test_uv_failure_is_reported(tmp_path: Path) -> None:
    project = pack.load_project(_project_copy(tmp_path))
    failing = tmp_path / "uv"
    failing.write_text("#!/bin/sh\necho no such dist; exit 1\n")
    failing.chmod(0o755)
    with pytest.raises(pack.PackError, match="no such dist"):
        pack.build_venv(project, "amd64", tmp_path / "cache", python=sys.executable,
                        uv=str(failing))
    assert not list((tmp_path / "cache").iterdir())


def test_missing_python312_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLANCE_PY312", "/nonexistent/python3.12")
    with pytest.raises(pack.PackError, match=r"no Python 3\.12 .*/nonexistent/python3\.12"):
        pack.find_python312()


def test_problems_none_for_a_good_project(tmp_path: Path) -> None:
    assert pack.project_problems(pack.load_project(_project_copy(tmp_path))) == []


def test_problems_found(tmp_path: Path) -> None:
    root = _project_copy(tmp_path, executable=False,
                         part={"plugin": "charm", "source": ".", "prime": ["src/"]})
    (root / "uv.lock").unlink()
    problems = pack.project_problems(pack.load_project(root))
    assert len(problems) == 4
    assert "plugin: uv" in problems[0]
    assert "astral-uv" in problems[1]
    assert "uv.lock is missing" in problems[2]
    assert "src/charm.py is not executable" in problems[3]


def test_main_strict_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project_copy(tmp_path, part={"plugin": "uv", "source": "."})
    venv = _stub_venv(tmp_path / "v")
    args = ["--project-dir", str(root), "--venv", str(venv), "--output-dir", str(tmp_path / "o")]
    assert pack.main(args) == 0
    assert pack.main([*args, "--strict"]) == 2
    assert "WARNING: charmcraft.yaml" in capsys.readouterr().err
    assert (tmp_path / "o" / "glance_amd64.charm").is_file()


def test_main_reports_bad_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pack.main(["--project-dir", str(tmp_path)]) == 1
    assert "charmcraft.yaml" in capsys.readouterr().err


def test_repository_entrypoint_mode_matches_git() -> None:
    """Reports (does not fix) the entrypoint's mode: charmcraft packs it as it is."""
    executable = os.access(ROOT / "src" / "charm.py", os.X_OK)
    problems = pack.project_problems(pack.load_project(ROOT))
    assert any("not executable" in p for p in problems) is (not executable)

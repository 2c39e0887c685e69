"""tools/pack.py lays out the .charm as charmcraft does (fast: a stub venv, no pip download).

The real build (pip for Python 3.12, `charmcraft analyse`) is tests/packing/test_pack.py.
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
#: charmcraft 4.x const.DISPATCH_CONTENT for entrypoint src/charm.py, byte for byte.
CHARMCRAFT_DISPATCH = (
    "#!/bin/sh\n"
    "\n"
    'JUJU_DISPATCH_PATH="${JUJU_DISPATCH_PATH:-$0}" PYTHONPATH=lib:venv \\\n'
    "  exec ./src/charm.py\n"
)
GOOD_PRIME = ["src/", "templates/", "venv/", "dispatch", "hooks/"]


def _stub_venv(path: Path) -> Path:
    (path / "ops").mkdir(parents=True)
    (path / "ops" / "__init__.py").write_text("def main(charm): ...\n")
    (path / "ops" / "__pycache__").mkdir()
    (path / "ops" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    dist = path / "pydantic_core-2.50.5.dist-info"
    dist.mkdir()
    (dist / "WHEEL").write_text(
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp312-cp312-manylinux2014_x86_64\n"
    )
    return path


def _project_copy(tmp_path: Path, *, prime: list[str] | None = None, executable: bool,
                  binary_packages: list[str] | None = None) -> Path:
    """Copy of the repository's charm files, with chosen prime list, wheels and entrypoint."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("src", "templates"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("metadata.yaml", "config.yaml", "actions.yaml", "requirements.txt"):
        shutil.copy(ROOT / name, root / name)
    charmcraft = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())
    if prime is not None:
        charmcraft["parts"]["charm"]["prime"] = prime
    if binary_packages is not None:
        charmcraft["parts"]["charm"]["charm-binary-python-packages"] = binary_packages
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
    root = _project_copy(tmp, prime=GOOD_PRIME, executable=True)
    (charm,) = pack.pack(root, tmp / "out", venv=venv)
    with zipfile.ZipFile(charm) as archive:
        yield charm, archive


def test_charm_named_like_charmcraft(packed: tuple[Path, zipfile.ZipFile]) -> None:
    charm, _ = packed
    assert charm.name == "glance_amd64.charm"


def test_archive_layout(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    names = set(archive.namelist())
    for required in (
        "dispatch",
        "manifest.yaml",
        "metadata.yaml",
        "config.yaml",
        "actions.yaml",
        "hooks/install",
        "hooks/start",
        "hooks/upgrade-charm",
        "src/charm.py",
        "venv/ops/__init__.py",
    ):
        assert required in names
    for template in (ROOT / "templates").iterdir():
        assert f"templates/{template.name}" in names
    for module in (ROOT / "src").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    top = {name.split("/", 1)[0] for name in names}
    assert top == {
        "dispatch",
        "hooks",
        "manifest.yaml",
        "metadata.yaml",
        "config.yaml",
        "actions.yaml",
        "src",
        "templates",
        "venv",
    }


def test_dispatch_is_charmcraft_s(packed: tuple[Path, zipfile.ZipFile]) -> None:
    _, archive = packed
    assert archive.read("dispatch").decode() == CHARMCRAFT_DISPATCH
    assert pack.dispatch_text("src/charm.py") == CHARMCRAFT_DISPATCH
    mode = archive.getinfo("dispatch").external_attr >> 16
    assert stat.S_IMODE(mode) == 0o755
    for hook in pack.MANDATORY_HOOKS:
        assert archive.read(f"hooks/{hook}").decode() == CHARMCRAFT_DISPATCH


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
    assert manifest["analysis"] == {
        "attributes": [
            {"name": "language", "result": "python"},
            {"name": "framework", "result": "operator"},
        ]
    }


def test_non_executable_entrypoint_is_not_python(tmp_path: Path) -> None:
    root = _project_copy(tmp_path, prime=GOOD_PRIME, executable=False)
    (charm,) = pack.pack(root, tmp_path / "out", venv=_stub_venv(tmp_path / "venv"))
    with zipfile.ZipFile(charm) as archive:
        manifest = yaml.safe_load(archive.read("manifest.yaml"))
    assert manifest["analysis"]["attributes"][0] == {"name": "language", "result": "unknown"}


def test_reproducible_timestamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert pack.started_at() == "1970-01-01T00:00:00.000000Z"


def test_pip_targets_python_312_manylinux() -> None:
    project = pack.load_project(ROOT)
    argv = pack.pip_command(project, Path("/t"), "amd64", pip=["pip"])
    assert argv[:2] == ["pip", "install"]
    joined = " ".join(argv)
    for expected in (
        "--target /t",
        "--python-version 3.12",
        "--implementation cp",
        "--platform manylinux2014_x86_64",
        "--only-binary=:all:",
        f"-r {ROOT / 'requirements.txt'}",
    ):
        assert expected in joined


def test_load_project_reads_charmcraft_yaml() -> None:
    project = pack.load_project(ROOT)
    assert project.name == "glance"
    assert project.base == "ubuntu@24.04"
    assert project.platforms == ("amd64",)
    assert project.entrypoint == "src/charm.py"
    assert project.requirements == ("requirements.txt",)
    assert project.python_version == "3.12"


def test_venv_is_cached_by_requirements(tmp_path: Path) -> None:
    root = _project_copy(tmp_path, prime=GOOD_PRIME, executable=True)
    fake_pip = tmp_path / "fake_pip.py"
    calls = tmp_path / "calls"
    fake_pip.write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(calls)!r}).open('a').write('x')\n"
        "target = pathlib.Path(sys.argv[sys.argv.index('--target') + 1])\n"
        "(target / 'ops').mkdir(parents=True)\n"
        "(target / 'bin').mkdir()\n"
    )
    project = pack.load_project(root)
    pip = [sys.executable, str(fake_pip)]
    first = pack.build_venv(project, "amd64", tmp_path / "cache", pip=pip)
    second = pack.build_venv(project, "amd64", tmp_path / "cache", pip=pip)
    assert first == second
    assert calls.read_text() == "x"
    assert (first / "ops").is_dir() and not (first / "bin").exists()
    (root / "requirements.txt").write_text("ops==3.9.0\n")
    third = pack.build_venv(pack.load_project(root), "amd64", tmp_path / "cache", pip=pip)
    assert third != first and calls.read_text() == "xx"


def test_pip_failure_is_reported(tmp_path: Path) -> None:
    project = pack.load_project(_project_copy(tmp_path, prime=GOOD_PRIME, executable=True))
    pip = [sys.executable, "-c", "import sys; print('no such dist'); sys.exit(1)"]
    with pytest.raises(pack.PackError, match="no such dist"):
        pack.build_venv(project, "amd64", tmp_path / "cache", pip=pip)
    assert not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("prime", "path", "kept"),
    [
        ([], "venv", True),
        (["src/", "templates/"], "venv", False),
        (["src/", "templates/"], "src", True),
        (["src/", "venv/", "dispatch", "hooks/"], "dispatch", True),
        (["*"], "hooks", True),
        (["-tests"], "venv", True),
        (["-venv"], "venv", False),
    ],
)
def test_prime_keeps(prime: list[str], path: str, kept: bool) -> None:
    assert pack._prime_keeps(prime, path) is kept


def test_problems_none_for_a_good_project(tmp_path: Path) -> None:
    root = _project_copy(tmp_path, prime=GOOD_PRIME, executable=True)
    charmcraft = yaml.safe_load((root / "charmcraft.yaml").read_text())
    charmcraft["parts"]["charm"]["charm-binary-python-packages"] = ["pydantic-core"]
    (root / "charmcraft.yaml").write_text(yaml.safe_dump(charmcraft))
    assert pack.project_problems(pack.load_project(root), _stub_venv(tmp_path / "v")) == []


def test_problems_found(tmp_path: Path) -> None:
    root = _project_copy(tmp_path, prime=["src/", "templates/"], executable=False,
                         binary_packages=[])
    problems = pack.project_problems(pack.load_project(root), _stub_venv(tmp_path / "v"))
    assert len(problems) == 3
    assert "dispatch, hooks, venv would be left out" in problems[0]
    assert "src/charm.py is not executable" in problems[1]
    assert "charm-binary-python-packages: [pydantic-core]" in problems[2]


def test_compiled_distributions(tmp_path: Path) -> None:
    venv = _stub_venv(tmp_path / "v")
    pure = venv / "Jinja2-3.1.6.dist-info"
    pure.mkdir()
    (pure / "WHEEL").write_text("Root-Is-Purelib: true\n")
    assert pack.compiled_distributions(venv) == {"pydantic-core"}


def test_main_strict_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project_copy(tmp_path, prime=["src/", "templates/"], executable=True)
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

"""Packing tier: build the real .charm once (uv from uv.lock, Python 3.12) and share it."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import pack

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packing: builds the real .charm with uv (needs PyPI) and runs charmcraft"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.packing)


@pytest.fixture(scope="session")
def python312() -> str:
    """The Python 3.12 the charm is built for and run with; fails clearly when there is none."""
    try:
        return pack.find_python312()
    except pack.PackError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def charm_path(tmp_path_factory: pytest.TempPathFactory, python312: str) -> Path:
    """The packed charm, built as charmcraft's uv plugin does (venv cached under build/pack)."""
    out = tmp_path_factory.mktemp("charm")
    project = pack.load_project(ROOT)
    venv = pack.build_venv(project, "amd64", ROOT / "build" / "pack", python=python312)
    (charm,) = pack.pack(ROOT, out, venv=venv)
    return charm


@pytest.fixture(scope="session")
def charm_dir(charm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packed charm, unzipped (modes restored as Juju does)."""
    dest = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(charm_path) as archive:
        for info in archive.infolist():
            target = Path(archive.extract(info, dest))
            mode = info.external_attr >> 16
            if mode:
                target.chmod(mode & 0o7777)
    return dest


@pytest.fixture(scope="session")
def charm_zip(charm_path: Path) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(charm_path) as archive:
        yield archive

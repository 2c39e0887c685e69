#!/usr/bin/env python3
"""Scripted stand-in for `charmcraft pack`: builds the same .charm layout on a non-Ubuntu host.

`charmcraft pack` is what users run. It cannot build on this Debian host ("Ubuntu 24.04 builds
cannot be performed on this Debian 12 system"), so local checks build the archive with this
script instead. It follows what charmcraft 4.x does for a `charm`-plugin part (read from its
source: `charm_builder.py`, `services/package.py`, `utils/file.py`):

* prime: the entries of the part's `prime:` list (`src/`, `templates/`), then what the charm
  plugin adds: `dispatch` (charmcraft's exact text, mode 0755), `hooks/{install,start,
  upgrade-charm}` -> `../dispatch`, and `venv/` = the site-packages of the requirements;
* the project's `metadata.yaml`, `config.yaml` and `actions.yaml`, copied verbatim, and a
  `manifest.yaml` (charmcraft-version, charmcraft-started-at, bases, analysis attributes);
* a deflated zip named `<name>_<platform>.charm` whose members follow symlinks, as
  charmcraft's `build_zip` does.

File modes are kept as they are in the work tree, as charmcraft keeps them. The venv is built
for the target base's Python (3.12 on ubuntu@24.04) with `pip install --target --platform
--python-version --only-binary=:all:`, so compiled wheels (pydantic-core) are the target's, not
this host's. Unlike charmcraft it does not also put pip/setuptools/wheel in the venv.

Differences from charmcraft that matter for a real `charmcraft pack` are reported as problems
(see `project_problems`): a `prime:` list that leaves out what the charm plugin generates, a
non-executable entrypoint, a compiled dependency that the plugin would build from source.

Usage: `python tools/pack.py [--output-dir build] [--strict]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: charmcraft's DISPATCH_CONTENT (charmcraft/const.py, 3.x and 4.x), formatted with the
#: entrypoint path relative to the charm root.
DISPATCH_TEMPLATE = """#!/bin/sh

JUJU_DISPATCH_PATH="${{JUJU_DISPATCH_PATH:-$0}}" PYTHONPATH=lib:venv \\
  exec ./{entrypoint}
"""
#: Hooks the charm builder links to dispatch for Juju versions without dispatch support.
MANDATORY_HOOKS = ("install", "start", "upgrade-charm")
#: What the charm plugin generates in its install dir; a `prime:` list must keep them.
PLUGIN_OUTPUTS = ("dispatch", "hooks", "venv")
#: Python of each supported base (Ubuntu's python3).
BASE_PYTHON = {"ubuntu@22.04": "3.10", "ubuntu@24.04": "3.12"}
#: pip --platform tag for each Juju architecture.
ARCH_PLATFORM = {"amd64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
#: Layout version written as charmcraft-version: the charmcraft release whose behaviour this
#: script follows, with a local tag saying the archive came from this script.
CHARMCRAFT_VERSION = "4.5.0+tools.pack"
#: Dependencies whose source build needs a Rust toolchain.
RUST_DISTS = frozenset({"pydantic-core", "cryptography"})
SKIP_NAMES = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo")


class PackError(RuntimeError):
    """The charm could not be packed."""


@dataclasses.dataclass(frozen=True)
class Project:
    """What charmcraft.yaml and metadata.yaml say about the charm to pack.

    Attributes:
        root: project directory.
        name: charm name (metadata.yaml).
        base: run-on base, e.g. ``ubuntu@24.04``.
        platforms: platform labels (architectures), e.g. ``("amd64",)``.
        entrypoint: charm entrypoint relative to the root, e.g. ``src/charm.py``.
        requirements: requirements files relative to the root.
        binary_packages: ``charm-binary-python-packages``.
        prime: the part's ``prime:`` entries (empty: everything).
    """

    root: Path
    name: str
    base: str
    platforms: tuple[str, ...]
    entrypoint: str
    requirements: tuple[str, ...]
    binary_packages: tuple[str, ...]
    prime: tuple[str, ...]

    @property
    def python_version(self) -> str:
        """Python version of the base, e.g. ``3.12``."""
        try:
            return BASE_PYTHON[self.base]
        except KeyError:
            raise PackError(f"unsupported base {self.base!r}") from None

    def charm_name(self, platform: str) -> str:
        """File name charmcraft gives the packed charm, e.g. ``glance_amd64.charm``."""
        return f"{self.name}_{platform.replace(':', '-')}.charm"


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PackError(f"cannot read {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise PackError(f"{path.name} is not a mapping")
    return data


def load_project(root: Path) -> Project:
    """Read charmcraft.yaml and metadata.yaml.

    Args:
        root: project directory.

    Returns:
        The project description.

    Raises:
        PackError: if a file is missing or has no charm part.
    """
    charmcraft = _read_yaml(root / "charmcraft.yaml")
    metadata = _read_yaml(root / "metadata.yaml")
    parts = charmcraft.get("parts") or {}
    part = parts.get("charm")
    if not isinstance(part, dict) or part.get("plugin", "charm") != "charm":
        raise PackError("charmcraft.yaml has no `charm` part using the charm plugin")
    platforms = tuple(charmcraft.get("platforms") or {})
    if not platforms:
        raise PackError("charmcraft.yaml lists no platforms")
    return Project(
        root=root,
        name=str(charmcraft.get("name") or metadata.get("name") or ""),
        base=str(charmcraft.get("base", "")),
        platforms=platforms,
        entrypoint=str(part.get("charm-entrypoint", "src/charm.py")),
        requirements=tuple(part.get("charm-requirements") or ()),
        binary_packages=tuple(part.get("charm-binary-python-packages") or ()),
        prime=tuple(part.get("prime") or ()),
    )


# ------------------------------------------------------------------------------------------
# Checks of the project against what charmcraft pack needs
# ------------------------------------------------------------------------------------------


def _prime_keeps(prime: Sequence[str], path: str) -> bool:
    """Whether a craft-parts prime fileset keeps a top-level path (globs included)."""
    includes = [entry.lstrip("\\") for entry in prime if not entry.startswith("-")]
    excludes = [entry[1:].rstrip("/") for entry in prime if entry.startswith("-")]
    if any(Path(path).match(pattern) or pattern == path for pattern in excludes):
        return False
    if not includes:
        return True
    for include in includes:
        pattern = include.rstrip("/")
        if pattern in ("*", path) or Path(path).match(pattern):
            return True
    return False


def _requirement_names(project: Project) -> set[str]:
    names: set[str] = set()
    for req in project.requirements:
        for raw in (project.root / req).read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
                if match:
                    names.add(_canonical(match.group(0)))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def compiled_distributions(venv: Path) -> set[str]:
    """Names of the installed distributions that are not pure Python.

    Args:
        venv: a site-packages style directory.

    Returns:
        Canonical names (``pydantic-core``) of the wheels with ``Root-Is-Purelib: false``.
    """
    names: set[str] = set()
    for wheel in venv.glob("*.dist-info/WHEEL"):
        if "Root-Is-Purelib: false" in wheel.read_text(encoding="utf-8"):
            names.add(_canonical(wheel.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]))
    return names


def project_problems(project: Project, venv: Path | None = None) -> list[str]:
    """List what would make `charmcraft pack` produce a broken or unbuildable charm.

    Args:
        project: the project.
        venv: the built dependencies, to find compiled ones (default: assume pydantic-core).

    Returns:
        One sentence per problem; empty when none is found.
    """
    problems: list[str] = []
    dropped = [path for path in PLUGIN_OUTPUTS if not _prime_keeps(project.prime, path)]
    if dropped:
        problems.append(
            "charmcraft.yaml: the charm part's `prime:` list keeps only "
            f"{', '.join(project.prime)}, so the charm plugin's {', '.join(dropped)} would be "
            "left out of the packed charm (add them to `prime:` or drop the list)"
        )
    entrypoint = project.root / project.entrypoint
    if not entrypoint.is_file():
        problems.append(f"entrypoint {project.entrypoint} does not exist")
    elif not os.access(entrypoint, os.X_OK):
        problems.append(
            f"entrypoint {project.entrypoint} is not executable (dispatch runs it directly; "
            f"`git update-index --chmod=+x {project.entrypoint}`)"
        )
    binary = {_canonical(name) for name in project.binary_packages}
    rust = sorted(RUST_DISTS & (compiled_distributions(venv) if venv else {"pydantic-core"}))
    if "pydantic" not in _requirement_names(project):
        rust = [name for name in rust if name != "pydantic-core"]
    missing = [name for name in rust if name not in binary]
    if missing:
        problems.append(
            f"charmcraft.yaml: {', '.join(missing)} compile Rust code; the charm plugin installs "
            "requirements with `pip install --no-binary=:all:`, so without "
            f"`charm-binary-python-packages: [{', '.join(missing)}]` the build needs "
            "cargo/rustc (and libssl-dev for cryptography) as build-packages"
        )
    return problems


# ------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------


def dispatch_text(entrypoint: str) -> str:
    """Return the dispatch script charmcraft writes for an entrypoint.

    Args:
        entrypoint: path relative to the charm root, e.g. ``src/charm.py``.

    Returns:
        The script text.
    """
    return DISPATCH_TEMPLATE.format(entrypoint=entrypoint)


def pip_command(
    project: Project, target: Path, platform: str, pip: Sequence[str] | None = None
) -> list[str]:
    """Build the pip command that installs the requirements for the target Python.

    Args:
        project: the project.
        target: directory to install into (becomes ``venv/``).
        platform: the platform label (Juju architecture).
        pip: pip invocation; default ``[sys.executable, "-m", "pip"]``.

    Returns:
        The argv.
    """
    try:
        platform_tag = ARCH_PLATFORM[platform]
    except KeyError:
        raise PackError(f"unsupported platform {platform!r}") from None
    argv = [*(pip or [sys.executable, "-m", "pip"]), "install", "--quiet", "--no-compile"]
    argv += ["--disable-pip-version-check", "--target", str(target)]
    argv += ["--python-version", project.python_version, "--implementation", "cp"]
    argv += ["--platform", platform_tag, "--only-binary=:all:"]
    for req in project.requirements:
        argv += ["-r", str(project.root / req)]
    return argv


def venv_cache_key(project: Project, platform: str) -> str:
    """Hash of what the venv depends on (requirements text, Python, platform).

    Args:
        project: the project.
        platform: the platform label.

    Returns:
        A short hex digest.
    """
    digest = hashlib.sha256()
    digest.update(f"{project.python_version} {platform}\n".encode())
    for req in project.requirements:
        digest.update((project.root / req).read_bytes())
    return digest.hexdigest()[:16]


def build_venv(
    project: Project,
    platform: str,
    cache_dir: Path,
    *,
    pip: Sequence[str] | None = None,
) -> Path:
    """Install the requirements for the target into a cached directory.

    Like charmcraft's dependencies hash, an unchanged requirements set reuses the last build.

    Args:
        project: the project.
        platform: the platform label.
        cache_dir: where cached venvs live.
        pip: pip invocation (default: this interpreter's pip).

    Returns:
        The site-packages style directory.

    Raises:
        PackError: if pip fails.
    """
    final = cache_dir / f"venv-{platform}-{venv_cache_key(project, platform)}"
    if final.is_dir():
        return final
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    result = subprocess.run(
        pip_command(project, partial, platform, pip),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise PackError(f"pip install failed:\n{result.stdout}{result.stderr}")
    # charmcraft copies site-packages only: no console scripts.
    shutil.rmtree(partial / "bin", ignore_errors=True)
    partial.rename(final)
    return final


def _ignored(name: str) -> bool:
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


def _copy_tree(source: Path, dest: Path) -> None:
    """Copy a file or tree keeping modes, without bytecode caches."""
    if source.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        return
    shutil.copytree(
        source,
        dest,
        ignore=lambda _dir, names: [name for name in names if _ignored(name)],
        dirs_exist_ok=True,
    )


def _primed_sources(project: Project) -> list[Path]:
    """Project paths the prime list selects (everything charmcraft would copy if none)."""
    entries = [entry for entry in project.prime if not entry.startswith("-")]
    if not entries:
        raise PackError("charmcraft.yaml has no prime list; this script needs one")
    paths: list[Path] = []
    for raw in entries:
        entry = raw.lstrip("\\").rstrip("/")
        if entry in PLUGIN_OUTPUTS:
            continue
        matches = sorted(project.root.glob(entry)) if "*" in entry else [project.root / entry]
        paths += [path for path in matches if path.exists()]
    return paths


def is_python_entrypoint(prime_dir: Path) -> Path | None:
    """Return the entrypoint dispatch runs if it is an executable .py file (charmcraft's rule).

    Args:
        prime_dir: the charm's root.

    Returns:
        The entrypoint path, or None.
    """
    try:
        lines = [line for line in (prime_dir / "dispatch").read_text().splitlines() if line]
    except OSError:
        return None
    if not lines:
        return None
    entrypoint = prime_dir / lines[-1].split()[-1]
    if entrypoint.suffix == ".py" and os.access(entrypoint, os.X_OK):
        return entrypoint
    return None


def analysis_attributes(prime_dir: Path) -> list[dict[str, str]]:
    """Compute the manifest's analysis attributes like charmcraft's Language/Framework checks.

    Args:
        prime_dir: the charm's root.

    Returns:
        ``[{"name": "language", ...}, {"name": "framework", ...}]``.
    """
    entrypoint = is_python_entrypoint(prime_dir)
    language = "python" if entrypoint else "unknown"
    framework = "unknown"
    if entrypoint and (prime_dir / "venv" / "ops").is_dir():
        source = entrypoint.read_text(encoding="utf-8")
        if re.search(r"^\s*(import ops\b|from ops\b)", source, flags=re.MULTILINE):
            framework = "operator"
    return [
        {"name": "language", "result": language},
        {"name": "framework", "result": framework},
    ]


def started_at() -> str:
    """Build timestamp (SOURCE_DATE_EPOCH when set, for reproducible archives)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
        if epoch
        else datetime.datetime.now(tz=datetime.timezone.utc)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def manifest_text(project: Project, platform: str, prime_dir: Path) -> str:
    """Render manifest.yaml as charmcraft does (key order of its Manifest model).

    Args:
        project: the project.
        platform: the platform label (architecture).
        prime_dir: the staged charm, for the analysis attributes.

    Returns:
        The YAML text.
    """
    name, _, channel = project.base.partition("@")
    manifest = {
        "charmcraft-version": CHARMCRAFT_VERSION,
        "charmcraft-started-at": started_at(),
        "bases": [{"name": name, "channel": channel, "architectures": [platform]}],
        "analysis": {"attributes": analysis_attributes(prime_dir)},
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def stage(project: Project, platform: str, venv: Path, prime_dir: Path) -> None:
    """Lay out the charm's files in prime_dir as charmcraft's prime step does.

    Args:
        project: the project.
        platform: the platform label.
        venv: the installed requirements (becomes ``venv/``).
        prime_dir: destination (recreated).
    """
    shutil.rmtree(prime_dir, ignore_errors=True)
    prime_dir.mkdir(parents=True)
    for source in _primed_sources(project):
        _copy_tree(source, prime_dir / source.relative_to(project.root))
    dispatch = prime_dir / "dispatch"
    dispatch.write_text(dispatch_text(project.entrypoint), encoding="utf-8")
    dispatch.chmod(0o755)
    hooks = prime_dir / "hooks"
    hooks.mkdir()
    for hook in MANDATORY_HOOKS:
        (hooks / hook).symlink_to("../dispatch")
    _copy_tree(venv, prime_dir / "venv")
    for name in ("metadata.yaml", "config.yaml", "actions.yaml"):
        if (project.root / name).is_file():
            shutil.copyfile(project.root / name, prime_dir / name)
    (prime_dir / "manifest.yaml").write_text(
        manifest_text(project, platform, prime_dir), encoding="utf-8"
    )


def build_zip(zip_path: Path, prime_dir: Path) -> None:
    """Zip prime_dir like charmcraft's ``build_zip`` (deflated, symlinks followed).

    Args:
        zip_path: the .charm to write.
        prime_dir: the staged charm.
    """
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for dirpath, dirnames, filenames in os.walk(prime_dir, followlinks=True):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath, filename)
                archive.write(path, path.relative_to(prime_dir))


def pack(
    root: Path = PROJECT_ROOT,
    output_dir: Path | None = None,
    *,
    venv: Path | None = None,
    pip: Sequence[str] | None = None,
) -> list[Path]:
    """Build one .charm per platform.

    Args:
        root: project directory.
        output_dir: where the .charm files go (default ``<root>/build``); work files go in its
            ``pack/`` subdirectory.
        venv: use this directory as ``venv/`` instead of installing the requirements.
        pip: pip invocation for installing the requirements.

    Returns:
        The .charm paths.
    """
    project = load_project(root)
    output_dir = output_dir or root / "build"
    work = output_dir / "pack"
    charms: list[Path] = []
    for platform in project.platforms:
        site = venv or build_venv(project, platform, work, pip=pip)
        prime_dir = work / f"prime-{platform}"
        stage(project, platform, site, prime_dir)
        charm = output_dir / project.charm_name(platform)
        build_zip(charm, prime_dir)
        charms.append(charm)
    return charms


def _work_dir(root: Path, args: argparse.Namespace) -> Path:
    return (args.output_dir or root / "build") / "pack"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point.

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        The exit code: 0 packed, 1 failed, 2 packed but problems found with --strict.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--venv", type=Path, default=None, help="prebuilt venv/ to use")
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 if charmcraft pack would differ"
    )
    args = parser.parse_args(argv)
    root = args.project_dir.resolve()
    try:
        project = load_project(root)
        charms = pack(root, args.output_dir, venv=args.venv)
        venv = args.venv or build_venv(project, project.platforms[0], _work_dir(root, args))
        problems = project_problems(project, venv)
    except PackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    for charm in charms:
        print(f"Packed {charm} ({charm.stat().st_size // 1024} KiB)")
    return 2 if problems and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())

"""Scripted stand-in for `charmcraft pack`: builds the same .charm layout on a non-Ubuntu host.

`charmcraft pack` is what users run. It cannot build on this Debian host ("Ubuntu 24.04 builds
cannot be performed on this Debian 12 system"), so local checks build the archive with this
script instead. It follows what charmcraft 4.5 does for a `uv`-plugin part (read from its
source: `parts/plugins/_uv.py`, `utils/parts.py`, `dispatch.py`, craft-parts' `uv_plugin.py`):

* build: `uv venv --relocatable --allow-existing --python <python3.12> venv`, then
  `uv sync --no-dev --no-editable --reinstall --no-install-project` with ``UV_FROZEN=true``
  (exactly uv.lock's versions), ``UV_PROJECT_ENVIRONMENT=venv``, ``UV_COMPILE_BYTECODE=1``,
  ``UV_PYTHON_DOWNLOADS=never``; then the python symlinks and every other file in
  ``venv/bin`` but ``activate`` are removed, ``activate`` gets a portable VIRTUAL_ENV and a
  ``lib64`` symlink goes: the charm's deps are in ``venv/lib/python3.12/site-packages``;
* prime: ``src/`` and ``lib/`` (if any) as the uv plugin copies them, what other (dump) parts
  prime (``templates/``), ``venv/``, and ``dispatch`` (charmcraft's uv-era text: it links
  ``venv/bin/python`` to the unit's ``python3`` on first run); no ``hooks/``;
* the project's `metadata.yaml`, `config.yaml` and `actions.yaml`, copied verbatim, and a
  `manifest.yaml` (charmcraft-version, charmcraft-started-at, bases, analysis attributes);
* a deflated zip named `<name>_<platform>.charm` whose members follow symlinks, as
  charmcraft's `build_zip` does.

File modes are kept as they are in the work tree, as charmcraft keeps them. The venv is built
with a Python 3.12 interpreter (the target base's): /usr/bin/python3.12, a pyenv 3.12, or
``--python`` / ``GLANCE_PY312``; uv comes from PyPI (``tox -e pack`` installs the pinned one).
Only amd64 is built (uv installs the wheels of this machine's platform).

Differences from charmcraft that matter for a real `charmcraft pack` are reported as problems
(see `project_problems`): a charm part that is not the uv plugin on ``source: .`` with the
astral-uv build snap, a uv.lock missing or out of date with pyproject.toml, a non-executable
entrypoint.

Usage: `python tools/pack.py [--output-dir build] [--python PATH] [--strict]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: charmcraft's DISPATCH_SCRIPT_TEMPLATE (charmcraft/dispatch.py, 4.x: uv/poetry/python
#: plugins), formatted with the entrypoint path relative to the charm root.
DISPATCH_TEMPLATE = """\
#!/bin/sh
dispatch_path="$(dirname $(realpath $0))"
venv_bin_path="${{dispatch_path}}/venv/bin"
python_path="${{venv_bin_path}}/python"
if [ ! -e "${{python_path}}" ]; then
    mkdir -p "${{venv_bin_path}}"
    ln -s $(which python3) "${{python_path}}"
fi

# Add charm lib and source directories to PYTHONPATH so the charm can import
# libraries and its own modules as expected.
export PYTHONPATH="${{dispatch_path}}/lib:${{dispatch_path}}/src"

# Add the charm's lib and usr/lib directories to LD_LIBRARY_PATH, allowing
# staged packages to be discovered by the dynamic linker.
{ld_library_path}

exec "${{python_path}}" "${{dispatch_path}}/{entrypoint}"
"""
#: One line of the template (longer than this file's lines may be).
LD_LIBRARY_PATH_LINE = (
    'export LD_LIBRARY_PATH="${dispatch_path}/usr/lib:${dispatch_path}/lib:'
    '${dispatch_path}/usr/lib/$(uname -m)-linux-gnu"'
)
#: charmcraft's default entrypoint (the uv plugin has no charm-entrypoint key).
ENTRYPOINT = "src/charm.py"
#: What the uv plugin copies from the project next to venv/ (charmcraft get_charm_copy_commands).
PLUGIN_COPIES = ("src", "lib")
#: Python of each supported base (Ubuntu's python3).
BASE_PYTHON = {"ubuntu@22.04": "3.10", "ubuntu@24.04": "3.12"}
#: Platforms this script can build (uv installs this machine's wheels).
BUILDABLE = {"amd64": "x86_64"}
#: Layout version written as charmcraft-version: the charmcraft release whose behaviour this
#: script follows, with a local tag saying the archive came from this script.
CHARMCRAFT_VERSION = "4.5.0+tools.pack"
#: The environment craft-parts' uv plugin builds in (plus UV_PROJECT_ENVIRONMENT, UV_PYTHON).
UV_ENV = {"UV_FROZEN": "true", "UV_COMPILE_BYTECODE": "1", "UV_PYTHON_DOWNLOADS": "never",
          "UV_PYTHON_PREFERENCE": "only-system"}
SKIP_NAMES = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo")
PY312_CANDIDATES = ("/usr/bin/python3.12", "~/.pyenv/versions/3.12*/bin/python3.12")


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
        part: the ``charm`` part as written.
        extra_prime: what the other (dump) parts prime from the project, e.g. ``templates``.
    """

    root: Path
    name: str
    base: str
    platforms: tuple[str, ...]
    part: dict
    extra_prime: tuple[str, ...]
    entrypoint: str = ENTRYPOINT

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
    if not isinstance(part, dict):
        raise PackError("charmcraft.yaml has no `charm` part")
    platforms = tuple(charmcraft.get("platforms") or {})
    if not platforms:
        raise PackError("charmcraft.yaml lists no platforms")
    extra: list[str] = []
    for name, other in parts.items():
        if name == "charm" or not isinstance(other, dict):
            continue
        if other.get("plugin") != "dump" or other.get("source", ".") != ".":
            raise PackError(f"part {name!r}: only dump parts with `source: .` are supported")
        extra += [str(entry).rstrip("/") for entry in other.get("prime") or ()
                  if not str(entry).startswith("-")]
    return Project(
        root=root,
        name=str(charmcraft.get("name") or metadata.get("name") or ""),
        base=str(charmcraft.get("base", "")),
        platforms=platforms,
        part=part,
        extra_prime=tuple(extra),
    )


# ------------------------------------------------------------------------------------------
# Checks of the project against what charmcraft pack needs
# ------------------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_python312(explicit: str | None = None) -> str:
    """The Python 3.12 to build (and run) the charm's venv with.

    Args:
        explicit: a path given by the user (``--python``; else ``GLANCE_PY312``).

    Raises:
        PackError: with where it looked, when there is none.
    """
    given = explicit or os.environ.get("GLANCE_PY312")
    candidates = [given] if given else [
        found for pattern in PY312_CANDIDATES
        for found in sorted(glob.glob(os.path.expanduser(pattern)))]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise PackError(
        "no Python 3.12 (the ubuntu@24.04 charm's interpreter) found: looked for "
        f"{given or ' and '.join(PY312_CANDIDATES)}; install one (e.g. `pyenv install 3.12`) "
        "or pass --python / GLANCE_PY312")


def find_uv() -> str:
    """The uv executable: next to this interpreter (tox), else on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("uv")
    if not found:
        raise PackError("uv not found: `pip install uv` (tox -e pack installs the pinned one)")
    return found


def project_problems(project: Project, uv: str | None = None) -> list[str]:
    """List what would make `charmcraft pack` produce a broken or unbuildable charm.

    Args:
        project: the project.
        uv: uv executable to check that uv.lock is current (skipped when None).

    Returns:
        One sentence per problem; empty when none is found.
    """
    problems: list[str] = []
    part = project.part
    if part.get("plugin") != "uv" or part.get("source") != ".":
        problems.append("charmcraft.yaml: the charm part must use `plugin: uv` with `source: .`")
    if "astral-uv" not in (part.get("build-snaps") or ()):
        problems.append("charmcraft.yaml: the uv plugin needs `build-snaps: [astral-uv]`")
    if not (project.root / "uv.lock").is_file():
        problems.append("uv.lock is missing: run `uv lock` and commit it (the uv plugin builds "
                        "with UV_FROZEN=true)")
    elif uv is not None:
        check = subprocess.run([uv, "lock", "--check", "--offline", "--project",
                                str(project.root)], capture_output=True, text=True, check=False,
                               env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
        if check.returncode != 0:
            problems.append("uv.lock does not match pyproject.toml: run `uv lock` "
                            f"({(check.stdout + check.stderr).strip()[-300:]})")
    entrypoint = project.root / project.entrypoint
    if not entrypoint.is_file():
        problems.append(f"entrypoint {project.entrypoint} does not exist")
    elif not os.access(entrypoint, os.X_OK):
        problems.append(
            f"entrypoint {project.entrypoint} is not executable (dispatch runs it directly; "
            f"`git update-index --chmod=+x {project.entrypoint}`)"
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
    return DISPATCH_TEMPLATE.format(entrypoint=entrypoint, ld_library_path=LD_LIBRARY_PATH_LINE)


def uv_commands(venv: Path, python: str, uv: str = "uv") -> list[list[str]]:
    """The two commands the uv plugin builds venv/ with (run in the project directory)."""
    return [
        [uv, "venv", "--relocatable", "--allow-existing", "--python", python, str(venv)],
        [uv, "sync", "--no-dev", "--no-editable", "--reinstall", "--no-install-project"],
    ]


def venv_cache_key(project: Project, platform: str, python: str) -> str:
    """Hash of what the venv depends on (uv.lock, pyproject.toml, the Python, the platform).

    Args:
        project: the project.
        platform: the platform label.
        python: the interpreter path.

    Returns:
        A short hex digest.
    """
    digest = hashlib.sha256()
    digest.update(f"{project.python_version} {platform} {python}\n".encode())
    for name in ("uv.lock", "pyproject.toml"):
        path = project.root / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:16]


def cleanup_venv(venv: Path) -> None:
    """What charmcraft does to venv/ after the build (get_venv_cleanup_commands)."""
    bin_dir = venv / "bin"
    for entry in bin_dir.iterdir() if bin_dir.is_dir() else ():
        if entry.name == "activate":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    activate = bin_dir / "activate"
    if activate.is_file():
        portable = ('VIRTUAL_ENV="$( cd -- "$( dirname -- "${BASH_SOURCE[0]}" )/.." '
                    '&> /dev/null && pwd )"')
        text = re.sub(r"^VIRTUAL_ENV=.*$", lambda _m: portable, activate.read_text(),
                      flags=re.MULTILINE)
        activate.write_text(text)
    lib64 = venv / "lib64"
    if lib64.is_symlink():
        lib64.unlink()


def build_venv(
    project: Project,
    platform: str,
    cache_dir: Path,
    *,
    python: str | None = None,
    uv: str | None = None,
) -> Path:
    """Build venv/ with uv from uv.lock for the target Python, in a cached directory.

    Like charmcraft's dependencies hash, an unchanged lock reuses the last build.

    Args:
        project: the project.
        platform: the platform label.
        cache_dir: where cached venvs live.
        python: the Python 3.12 to build with (default: :func:`find_python312`).
        uv: the uv executable (default: :func:`find_uv`).

    Returns:
        The venv directory (``lib/python3.12/site-packages`` inside).

    Raises:
        PackError: if uv fails, or the platform cannot be built here.
    """
    if BUILDABLE.get(platform) != os.uname().machine:
        raise PackError(f"platform {platform!r} cannot be built on {os.uname().machine}")
    python = python or find_python312()
    uv = uv or find_uv()
    final = cache_dir / f"venv-{platform}-{venv_cache_key(project, platform, python)}"
    if final.is_dir():
        return final
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **UV_ENV, "UV_PROJECT_ENVIRONMENT": str(partial), "UV_PYTHON": python,
           "VIRTUAL_ENV": str(partial)}
    for argv in uv_commands(partial, python, uv):
        result = subprocess.run(argv, capture_output=True, text=True, cwd=project.root,
                                env=env, check=False)
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise PackError(f"{' '.join(argv[:2])} failed:\n{result.stdout}{result.stderr}")
    cleanup_venv(partial)
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
    """Project paths that end up beside venv/: the uv plugin's copies and the dump parts'."""
    paths = [project.root / name for name in PLUGIN_COPIES if (project.root / name).is_dir()]
    for entry in project.extra_prime:
        matches = sorted(project.root.glob(entry)) if "*" in entry else [project.root / entry]
        paths += [path for path in matches if path.exists() and path not in paths]
    return paths


def is_python_entrypoint(prime_dir: Path) -> Path | None:
    """The entrypoint charmcraft's linters read from dispatch's last line, if it is Python.

    Like charmcraft (linters.get_entrypoint_from_dispatch): the last non-empty line, split
    with shlex, last word, taken relative to the charm root; an executable ``.py`` counts.

    Args:
        prime_dir: the charm's root.

    Returns:
        The entrypoint path, or None.
    """
    try:
        lines = [line for line in (prime_dir / "dispatch").read_text().splitlines()
                 if line.strip()]
    except (OSError, UnicodeDecodeError):
        return None
    if not lines:
        return None
    entrypoint = prime_dir / shlex.split(lines[-1])[-1]
    if entrypoint.suffix == ".py" and os.access(entrypoint, os.X_OK):
        return entrypoint
    return None


def analysis_attributes(prime_dir: Path) -> list[dict[str, str]]:
    """Compute the manifest's analysis attributes like charmcraft's Language/Framework checks.

    With the uv-era dispatch the last line names ``"${dispatch_path}/src/charm.py"``, which
    charmcraft 4.5 resolves literally: both attributes are ``unknown`` in a charmcraft-built
    uv charm, and so they are here.

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
        venv: the built venv (becomes ``venv/``).
        prime_dir: destination (recreated).
    """
    shutil.rmtree(prime_dir, ignore_errors=True)
    prime_dir.mkdir(parents=True)
    for source in _primed_sources(project):
        _copy_tree(source, prime_dir / source.relative_to(project.root))
    _copy_venv(venv, prime_dir / "venv")
    dispatch = prime_dir / "dispatch"
    dispatch.write_text(dispatch_text(project.entrypoint), encoding="utf-8")
    dispatch.chmod(0o755)
    for name in ("metadata.yaml", "config.yaml", "actions.yaml"):
        if (project.root / name).is_file():
            shutil.copyfile(project.root / name, prime_dir / name)
    (prime_dir / "manifest.yaml").write_text(
        manifest_text(project, platform, prime_dir), encoding="utf-8"
    )


def _copy_venv(venv: Path, dest: Path) -> None:
    """Copy the venv as built (bytecode included: the uv plugin compiles it)."""
    shutil.copytree(venv, dest, symlinks=True)


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
    python: str | None = None,
) -> list[Path]:
    """Build one .charm per platform.

    Args:
        root: project directory.
        output_dir: where the .charm files go (default ``<root>/build``); work files go in its
            ``pack/`` subdirectory.
        venv: use this directory as ``venv/`` instead of building it with uv.
        python: the Python 3.12 to build the venv with.

    Returns:
        The .charm paths.
    """
    project = load_project(root)
    output_dir = output_dir or root / "build"
    work = output_dir / "pack"
    charms: list[Path] = []
    for platform in project.platforms:
        built = venv or build_venv(project, platform, work, python=python)
        prime_dir = work / f"prime-{platform}"
        stage(project, platform, built, prime_dir)
        charm = output_dir / project.charm_name(platform)
        build_zip(charm, prime_dir)
        charms.append(charm)
    return charms


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
    parser.add_argument("--python", default=None, help="the Python 3.12 to build with")
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 if charmcraft pack would differ"
    )
    args = parser.parse_args(argv)
    root = args.project_dir.resolve()
    try:
        project = load_project(root)
        charms = pack(root, args.output_dir, venv=args.venv, python=args.python)
        problems = project_problems(project, None if args.venv else find_uv())
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

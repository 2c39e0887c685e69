"""glance's policy files: `policyd-override` zips and `restrict-image-location-operations`.

The zip is checked as charmhelpers contrib/openstack/policyd.py checks it (the classic
charm's `maybe_do_policyd_overrides(..., 'glance')`): at least one .yaml/.yml file, no
name twice once the zip is flattened, each file one YAML mapping of str to str without
the always-blacklisted keys, templates refused (glance passes no template function);
each file is written as `<name>.yaml` with `yaml.dump` of what was read.
"""

from __future__ import annotations

import collections
import io
import os
import zipfile

import yaml

VALID_EXTS = (".yaml", ".yml", ".j2", ".tmpl", ".tpl")
TEMPLATE_EXTS = (".j2", ".tmpl", ".tpl")
BLACKLISTED_KEYS = ("admin_required", "cloud_admin")  # POLICYD_ALWAYS_BLACKLISTED_KEYS
# Debian's glance-common ships this (every rule commented out); it is the package's, not
# the charm's, so a zip may not replace it and cleaning policy.d leaves it.
PACKAGE_FILES = ("00_default_policy.yaml",)
MAX_ZIP_BYTES = 10 * 1024 * 1024
STATUS_PREFIX = "Invalid policyd-override resource"
NOT_ATTACHED = "not attached"
# openstack/charm-glance hooks/glance_contexts.py GlancePolicyContext, templates/ussuri/
# policy.yaml: the rules restrict-image-location-operations sets to role:admin.
LOCATION_RULES = ("get_image_location", "set_image_location", "delete_image_location")


class PolicyZipError(ValueError):
    """The resource is not a usable policy override zip (charmhelpers BadPolicy*)."""


def _printable(text: str, limit: int = 60) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _yaml_members(archive: zipfile.ZipFile) -> list[tuple[str, str, zipfile.ZipInfo]]:
    """(name without extension, extension, member) of every policy file.

    As charmhelpers `_yamlfiles` with has_subdirs=False: directories dropped, other
    extensions ignored.
    """
    found = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        name, ext = os.path.splitext(os.path.basename(info.filename))
        if ext.lower() in VALID_EXTS:
            found.append((name, ext.lower(), info))
    return found


def _read_policy(text: bytes, filename: str) -> dict[str, str]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PolicyZipError(f"{filename}: not valid YAML") from None
    if not isinstance(doc, dict):
        raise PolicyZipError(f"{filename}: doesn't look like a policy file")
    bad = sorted(set(doc) & set(BLACKLISTED_KEYS))
    if bad:
        raise PolicyZipError(f"{filename}: blacklisted keys {', '.join(bad)} present")
    if not all(isinstance(key, str) for key in doc):
        raise PolicyZipError(f"{filename}: keys in yaml aren't all strings")
    if not all(isinstance(value, str) for value in doc.values()):
        raise PolicyZipError(f"{filename}: values in yaml aren't all strings")
    return doc


def parse_policy_zip(data: bytes) -> tuple[tuple[str, str], ...]:
    """The policy.d files a `policyd-override` zip holds: (file name, YAML text), sorted.

    Raises:
        PolicyZipError: not a zip, no policy file, duplicates, a template, a file that is
            not a str->str mapping or sets a blacklisted key (message fit for a status).
    """
    if len(data) > MAX_ZIP_BYTES:
        raise PolicyZipError("larger than 10 MiB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise PolicyZipError("not a zip file") from None
    with archive:
        members = _yaml_members(archive)
        if not members:
            raise PolicyZipError(f"contains no yaml files with {', '.join(VALID_EXTS)} "
                                 "extensions")
        counts = collections.Counter(name for name, _, _ in members)
        if duplicates := sorted(name for name, count in counts.items() if count > 1):
            raise PolicyZipError(f"{_printable(', '.join(duplicates))} have duplicates "
                                 "in the zip file")
        files = []
        for name, ext, info in members:
            shown = _printable(info.filename)
            if (f"{name}.yaml" in PACKAGE_FILES or not name or name.startswith(".")
                    or not name.isprintable()):
                raise PolicyZipError(f"policy.d name {shown} is blacklisted")
            if ext in TEMPLATE_EXTS:
                raise PolicyZipError(f"template {shown} but no template function is available")
            try:
                raw = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError,
                    EOFError, ValueError):
                raise PolicyZipError(f"{shown}: cannot be read from the zip") from None
            doc = _read_policy(raw, shown)
            files.append((f"{name}.yaml", yaml.dump(doc)))
    return tuple(sorted(files))


def location_policy(restrict: bool) -> str:
    """/etc/glance/policy.yaml for restrict-image-location-operations.

    The classic charm writes the three rules as `role:admin` when true and as `""` (allow
    anyone) when false; an empty rule would loosen the defaults of Caracal and later
    (enforce_new_defaults), so false writes no rule and glance's own rules apply. The file
    is always written (it replaces the classic charm's `""` rules after a switch).
    """
    lines = ["# Managed by the glance charm; local changes are overwritten.",
             f"# restrict-image-location-operations={str(restrict).lower()}"]
    if restrict:
        lines += [f'"{rule}": "role:admin"' for rule in LOCATION_RULES]
    return "\n".join(lines) + "\n"

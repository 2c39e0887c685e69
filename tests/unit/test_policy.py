"""Policy: the policyd-override resource and restrict-image-location-operations (issue 14).

References: openstack/charm-glance charmhelpers/contrib/openstack/policyd.py (zip checks,
file names, cleaning policy.d), hooks/glance_relations.py (maybe_do_policyd_overrides for
'glance' with a glance-api restart), hooks/glance_contexts.py GlancePolicyContext and
templates/ussuri/policy.yaml (the location rules).
"""

from __future__ import annotations

import importlib
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import ops
import pytest
import yaml

from glance_charm.domain import policy
from tests.unit import charmhelpers_shim
from tests.unit.conftest import GlanceHarness

GOOD = {"overrides/image.yaml": '"get_images": "role:admin"\n"add_image": "role:admin"\n',
        "extra.yml": "delete_image: role:admin\n", "README.txt": "ignored"}


def make_zip(members: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def attach(gh: GlanceHarness, data: bytes) -> None:
    """`juju attach-resource`: new content, read afresh by the next hook.

    ops caches a fetched resource's path for the life of the model (one hook in Juju) and
    the Harness writes a resource's file only once; both are dropped as a new hook would.
    """
    cached = gh.harness.model.resources._paths.get("policyd-override")
    if cached is not None:
        cached.unlink()
    gh.harness.add_resource("policyd-override", data)
    gh.harness.model.resources._paths["policyd-override"] = None


def ready(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def policy_d(gh: GlanceHarness) -> dict[str, str]:
    directory = gh.root / "etc/glance/policy.d"
    if not directory.is_dir():
        return {}
    return {p.name: p.read_text() for p in directory.iterdir() if p.is_file()}


def test_zip_files_go_into_policy_d_and_restart_glance(gh: GlanceHarness) -> None:
    ready(gh)
    gh.harness.add_resource("policyd-override", make_zip(GOOD))
    restarts = gh.services.count("restart")
    gh.harness.update_config({"use-policyd-override": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    files = policy_d(gh)
    assert set(files) == {"image.yaml", "extra.yaml"}
    assert yaml.safe_load(files["image.yaml"]) == {"get_images": "role:admin",
                                                   "add_image": "role:admin"}
    path = gh.root / "etc/glance/policy.d/image.yaml"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert gh.services.count("restart") == restarts + 1


def test_files_match_what_charmhelpers_writes(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """process_policy_resource_file: same names, same yaml.dump bytes."""
    charmhelpers_shim.load_charmhelpers()
    policyd = importlib.import_module("charmhelpers.contrib.openstack.policyd")
    written: dict[str, bytes] = {}
    target = tmp_path / "policy.d"
    monkeypatch.setattr(policyd, "policyd_dir_for", lambda service: str(target))
    monkeypatch.setattr(policyd, "maybe_create_directory_for", lambda *a: None)
    monkeypatch.setattr(policyd.ch_host, "mkdir", lambda path, **kw: Path(path).mkdir())
    monkeypatch.setattr(policyd.ch_host, "write_file",
                        lambda path, content, *a, **kw: written.update({path: content}))
    monkeypatch.setattr(policyd.hookenv, "log", lambda *a, **kw: None)
    monkeypatch.setattr(policyd.hookenv, "charm_dir", lambda: str(tmp_path))
    resource = tmp_path / "policyd-override.zip"
    resource.write_bytes(make_zip(GOOD))
    assert policyd.process_policy_resource_file(str(resource), "glance")
    expected = {Path(path).name: content.decode() for path, content in written.items()}
    assert dict(policy.parse_policy_zip(resource.read_bytes())) == expected


@pytest.mark.parametrize("data, reason", [
    (b"not a zip", "not a zip file"),
    (make_zip({"a.txt": "x"}), "contains no yaml files with .yaml, .yml, .j2, .tmpl, .tpl "
     "extensions"),
    (make_zip({"a/x.yaml": "a: b", "b/x.yml": "c: d"}), "x have duplicates in the zip file"),
    (make_zip({"x.yaml": "- a\n- b\n"}), "x.yaml: doesn't look like a policy file"),
    (make_zip({"x.yaml": "admin_required: role:admin\n"}),
     "x.yaml: blacklisted keys admin_required present"),
    (make_zip({"x.yaml": "a: 1\n"}), "x.yaml: values in yaml aren't all strings"),
    (make_zip({"x.yaml": "1: a\n"}), "x.yaml: keys in yaml aren't all strings"),
    (make_zip({"x.yaml": "a: [\n"}), "x.yaml: not valid YAML"),
    (make_zip({"x.j2": "a: b\n"}), "template x.j2 but no template function is available"),
    (make_zip({"00_default_policy.yaml": "a: b\n"}),
     "policy.d name 00_default_policy.yaml is blacklisted"),
])
def test_bad_zip_blocks_and_keeps_the_last_good_overrides(
    gh: GlanceHarness, data: bytes, reason: str
) -> None:
    ready(gh)
    gh.harness.add_resource("policyd-override", make_zip(GOOD))
    gh.harness.update_config({"use-policyd-override": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    good = policy_d(gh)
    conf = gh.conf_path.read_bytes()
    restarts = gh.services.count("restart")
    attach(gh, data)
    gh.harness.charm.on.upgrade_charm.emit()  # Juju runs upgrade-charm on attach-resource
    assert gh.status() == ops.BlockedStatus(f"Invalid policyd-override resource: {reason}")
    assert policy_d(gh) == good
    assert gh.conf_path.read_bytes() == conf
    assert gh.services.count("restart") == restarts


def test_option_on_without_the_resource_blocks(gh: GlanceHarness) -> None:
    ready(gh)
    gh.harness.update_config({"use-policyd-override": True})
    assert gh.status() == ops.BlockedStatus(
        "Invalid policyd-override resource: not attached")


def test_turning_it_off_removes_the_overrides_but_not_the_package_file(
    gh: GlanceHarness,
) -> None:
    ready(gh)
    package_file = gh.root / "etc/glance/policy.d/00_default_policy.yaml"
    package_file.parent.mkdir(parents=True, exist_ok=True)
    package_file.write_text("#\n")
    stray = gh.root / "etc/glance/policy.d/left-by-classic.yaml"
    stray.write_text("a: b\n")
    gh.harness.add_resource("policyd-override", make_zip(GOOD))
    gh.harness.update_config({"use-policyd-override": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert set(policy_d(gh)) == {"00_default_policy.yaml", "image.yaml", "extra.yaml"}
    attach(gh, make_zip({"only.yaml": "a: b\n"}))
    gh.harness.charm.on.upgrade_charm.emit()
    assert set(policy_d(gh)) == {"00_default_policy.yaml", "only.yaml"}
    restarts = gh.services.count("restart")
    gh.harness.update_config({"use-policyd-override": False})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert set(policy_d(gh)) == {"00_default_policy.yaml"}
    assert gh.services.count("restart") == restarts + 1


def test_restrict_image_location_operations(gh: GlanceHarness) -> None:
    """GlancePolicyContext: the three *_image_location rules become role:admin.

    Each change restarts glance-api (the classic restart map lists policy.yaml): glance's
    Enforcer merges a re-read file into its rules (glance/api/policy.py overwrite=False),
    so turning the option off would otherwise keep role:admin until a restart.
    """
    ready(gh)
    path = gh.root / "etc/glance/policy.yaml"
    assert yaml.safe_load(path.read_text()) is None  # no rule: glance's own defaults
    restarts = gh.services.count("restart")
    gh.harness.update_config({"restrict-image-location-operations": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.services.count("restart") == restarts + 1
    assert yaml.safe_load(path.read_text()) == {
        "get_image_location": "role:admin", "set_image_location": "role:admin",
        "delete_image_location": "role:admin"}
    gh.harness.update_config({"restrict-image-location-operations": False})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert yaml.safe_load(path.read_text()) is None
    assert gh.services.count("restart") == restarts + 2


def test_classic_empty_location_rules_are_replaced_after_a_switch(gh: GlanceHarness) -> None:
    """The classic charm left `""` (allow anyone) rules in policy.yaml; they do not stay."""
    classic = gh.root / "etc/glance/policy.yaml"
    classic.parent.mkdir(parents=True, exist_ok=True)
    classic.write_text('"get_image_location": ""\n"set_image_location": ""\n')
    ready(gh)
    assert yaml.safe_load(classic.read_text()) is None


def test_oversized_and_unreadable_members_are_refused() -> None:
    with pytest.raises(policy.PolicyZipError, match="larger than 10 MiB"):
        policy.parse_policy_zip(b"0" * (policy.MAX_ZIP_BYTES + 1))
    data = bytearray(make_zip({"x.yaml": "a: b\n" * 50}))
    offset = data.index(b"a: b")
    data[offset:offset + 4] = b"XXXX"  # the member's CRC no longer matches
    with pytest.raises(policy.PolicyZipError, match=r"x\.yaml: cannot be read from the zip"):
        policy.parse_policy_zip(bytes(data))
    long_name = "d" * 80 + ".yaml"
    with pytest.raises(policy.PolicyZipError, match=r"\.\.\. have duplicates"):
        policy.parse_policy_zip(make_zip({f"a/{long_name}": "a: b", f"b/{long_name}": "a: b"}))

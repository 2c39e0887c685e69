"""Image import plugins: image-conversion and custom-import-properties (issue 14).

References: openstack/charm-glance hooks/glance_contexts.py GlanceImageImportContext
(plugin order, validate_custom_import_properties), templates/parts/section-image-import
([image_import_opts], [image_conversion] output_format raw, [inject_metadata_properties]),
hooks/glance_utils.py determine_packages (qemu-utils for image conversion).
"""

from __future__ import annotations

import ops
import pytest

from tests.unit.conftest import GlanceHarness


def ready(gh: GlanceHarness) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def test_no_plugins_by_default_but_glance_direct_enabled(gh: GlanceHarness) -> None:
    ready(gh)
    conf = gh.conf()
    assert not conf.has_section("image_import_opts")
    # a ListOpt with bounds=True (glance/common/config.py): brackets, as oslo.config needs
    assert conf["DEFAULT"]["enabled_import_methods"] == (
        "['glance-direct', 'web-download', 'copy-image']")
    assert conf["os_glance_staging_store"]["filesystem_store_datadir"]
    assert gh.workload.package_installs == []


def test_image_conversion_to_raw_installs_qemu_utils(gh: GlanceHarness) -> None:
    ready(gh)
    restarts = gh.services.count("restart")
    gh.harness.update_config({"image-conversion": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["image_import_opts"]["image_import_plugins"] == "['image_conversion']"
    assert conf["image_conversion"]["output_format"] == "raw"
    assert not conf.has_section("inject_metadata_properties")
    assert gh.workload.package_installs == [("qemu-utils",)]
    assert gh.services.count("restart") == restarts + 1
    gh.harness.update_config({"image-conversion": False})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert not gh.conf().has_section("image_conversion")


def test_qemu_utils_failing_to_install_blocks(gh: GlanceHarness) -> None:
    ready(gh)
    gh.workload.package_error = OSError("apt is broken")
    gh.harness.update_config({"image-conversion": True})
    assert gh.status() == ops.BlockedStatus("Installing qemu-utils failed; will retry")


def test_custom_import_properties(gh: GlanceHarness) -> None:
    ready(gh)
    props = "prop1:val1,prop2:val-2,prop3:val:with:colons,cost:$5"
    gh.harness.update_config({"custom-import-properties": props, "image-conversion": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    conf = gh.conf()
    assert conf["image_import_opts"]["image_import_plugins"] == (
        "['image_conversion', 'inject_image_metadata']")  # the classic's Python list repr
    inject = conf["inject_metadata_properties"]
    assert inject["inject"] == props.replace("$", "$$")  # oslo.config reads `$$` as `$`
    assert inject["ignore_user_roles"] == '""'  # every user, admins too (classic)


@pytest.mark.parametrize("props", ["novalue", "a:b,c", "a:b\nc:d"])
def test_bad_custom_import_properties_are_invalid(gh: GlanceHarness, props: str) -> None:
    ready(gh)
    before = gh.conf_path.read_bytes()
    gh.harness.update_config({"custom-import-properties": props})
    assert gh.status() == ops.BlockedStatus("Invalid config: custom-import-properties")
    assert gh.conf_path.read_bytes() == before


def test_worker_self_reference_url_for_distributed_import(gh: GlanceHarness) -> None:
    """glance-direct behind a VIP: the importing unit proxies to the staging one."""
    ready(gh)
    assert gh.conf()["DEFAULT"]["worker_self_reference_url"] == "http://10.5.0.100:9282"

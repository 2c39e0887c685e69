"""Classic logging, audit and free-form options (issue 14).

api-config-flags, use-syslog, verbose and audit-middleware, as openstack/charm-glance
renders them.
"""

from __future__ import annotations

import configparser
import importlib
from typing import Any

import ops
import pytest

from glance_charm.domain import config_flags
from glance_charm.domain.config import OWNED_FLAGS
from tests.unit import charmhelpers_shim
from tests.unit.conftest import GlanceHarness

CLASSIC = "openstack/charm-glance"
FLAG_SAMPLES = [
    "image_member_quota=256",
    "a=1, b=2",
    "key1=value1, key2=value3,value4,value5",
    " =a=b ,",
    "allowed_ports=80,443,  x_y = z ,",
    "key1: subkey1=value1, subkey2=value2",
    "{b: 2, a: 1}",
    "a=b=c",
    "a==b",
    "a, b",
    "noequals",
    "k: [1, 2]",
    "k: v\n",
    "x:",
]


def ready(gh: GlanceHarness, **config: Any) -> None:
    if config:
        gh.harness.update_config(config)
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone")
    assert gh.status() == ops.ActiveStatus("Unit is ready")


def _charmhelpers_parse(text: str) -> Any:
    charmhelpers_shim.load_charmhelpers()
    utils = importlib.import_module("charmhelpers.contrib.openstack.utils")
    context = importlib.import_module("charmhelpers.contrib.openstack.context")
    setattr(utils, "juju_log", lambda *_, **__: None)  # noqa: B010 - no Juju here
    try:
        return dict(utils.config_flags_parser(text))
    except (context.OSContextError, ValueError) as err:
        return type(err).__name__


@pytest.mark.parametrize("text", FLAG_SAMPLES)
def test_flags_parse_as_charmhelpers_config_flags_parser(text: str) -> None:
    """Same dict as charmhelpers contrib/openstack/utils.py config_flags_parser.

    The classic charm parses the option with it through
    OSConfigFlagContext(charm_flag='api-config-flags') in hooks/glance_utils.py.
    """
    expected = _charmhelpers_parse(text)
    try:
        ours: Any = config_flags.parse_config_flags(text)
    except config_flags.ConfigFlagsError:
        ours = "error"
    if isinstance(expected, str):
        assert ours == "error", (text, ours)
    else:
        assert ours == expected
        assert list(ours) == list(expected)  # same order in the file


def test_api_config_flags_go_into_default(gh: GlanceHarness) -> None:
    """templates/epoxy/glance-api.conf: `{{ key }} = {{ value }}` per flag in [DEFAULT]."""
    ready(gh, **{"api-config-flags": "image_member_quota=256, allowed_ports=80,443"})
    default = gh.conf()["DEFAULT"]
    assert default["image_member_quota"] == "256"
    assert default["allowed_ports"] == "80,443"


@pytest.mark.parametrize("flags, named", [
    ("workers=64", "workers"),
    ("bind_port=1, image_member_quota=3, Debug=true", "bind_port, Debug"),
    ("show-image-direct-url=true", "show-image-direct-url"),
])
def test_flags_for_charm_owned_options_block_and_keep_the_last_config(
    gh: GlanceHarness, flags: str, named: str
) -> None:
    ready(gh)
    before = gh.conf_path.read_bytes()
    restarts = gh.services.count("restart")
    gh.harness.update_config({"api-config-flags": flags})
    assert gh.status() == ops.BlockedStatus(f"{OWNED_FLAGS}: {named}")
    assert gh.conf_path.read_bytes() == before
    assert gh.services.count("restart") == restarts
    gh.harness.update_config({"api-config-flags": "image_member_quota=3"})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["DEFAULT"]["image_member_quota"] == "3"


@pytest.mark.parametrize("flags", ["a==b", "a=1 b=2=3", "k: [1, 2]", "x:", 'k: "a\\nb"',
                                   "bad key=1", "k: {a: 1}"])
def test_unparsable_or_multiline_flags_are_invalid_config(gh: GlanceHarness, flags: str) -> None:
    ready(gh)
    before = gh.conf_path.read_bytes()
    gh.harness.update_config({"api-config-flags": flags})
    assert gh.status() == ops.BlockedStatus("Invalid config: api-config-flags")
    assert gh.conf_path.read_bytes() == before


def test_every_default_key_the_template_writes_is_owned(gh: GlanceHarness) -> None:
    """A flag can never silently override what the charm renders in [DEFAULT]."""
    gh.add_fixture("amqp_rabbitmq-server")
    ready(gh, **{"use-syslog": True, "image-conversion": True,
                 "custom-import-properties": "a:b"} if _has("image-conversion") else {})
    keys = set(gh.conf()["DEFAULT"])
    assert keys <= config_flags.OWNED_DEFAULT_OPTIONS, keys - config_flags.OWNED_DEFAULT_OPTIONS


def _has(option: str) -> bool:
    import yaml

    from tests.unit.test_dropin import ROOT

    return option in yaml.safe_load((ROOT / "config.yaml").read_text())["options"]


def test_use_syslog(gh: GlanceHarness) -> None:
    """Charmhelpers SyslogContext -> `use_syslog = {{ use_syslog }}` (templates/epoxy)."""
    ready(gh)
    assert gh.conf()["DEFAULT"]["use_syslog"] == "false"
    restarts = gh.services.count("restart")
    gh.harness.update_config({"use-syslog": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.conf()["DEFAULT"]["use_syslog"] == "true"
    assert gh.services.count("restart") == restarts + 1


def test_verbose_is_accepted_and_changes_nothing(gh: GlanceHarness) -> None:
    """Verbose is accepted and writes nothing.

    hooks/glance_contexts.py LoggingConfigContext renders `verbose`, an option oslo.log
    removed: glance-api ignores it, so the charm accepts it and writes nothing.
    """
    ready(gh)
    files = {p: p.read_bytes() for p in gh.root.rglob("*") if p.is_file()}
    restarts = gh.services.count("restart")
    gh.harness.update_config({"verbose": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert {p: p.read_bytes() for p in gh.root.rglob("*") if p.is_file()
            and p.name != ".unit-state.db"} == {p: b for p, b in files.items()
                                                if p.name != ".unit-state.db"}
    assert gh.services.count("restart") == restarts


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_audit_middleware_adds_the_filter_map_and_notifications(gh: GlanceHarness) -> None:
    """The audit filter, its map and notifications, removed again when turned off.

    charmhelpers KeystoneAuditMiddleware with templates/yoga/api-paste.ini (audit in the
    keystone pipelines), section-filter-audit, yoga/api_audit_map.conf and
    section-audit-middleware-notifications.
    """
    ready(gh)
    paste = gh.root / "etc/glance/api-paste.ini"
    audit_map = gh.root / "etc/glance/api_audit_map.conf"
    assert not paste.exists() and "config_file" not in gh.conf()["paste_deploy"]
    restarts = gh.services.count("restart")
    gh.harness.update_config({"audit-middleware": True})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert gh.services.count("restart") == restarts + 1
    conf = gh.conf()
    assert conf["paste_deploy"]["config_file"] == "/etc/glance/api-paste.ini"
    assert conf["audit_middleware_notifications"]["driver"] == "log"
    pipeline = _ini(paste.read_text())
    assert pipeline["pipeline:glance-api-keystone"]["pipeline"].split() == [
        "cors", "healthcheck", "http_proxy_to_wsgi", "versionnegotiation", "osprofiler",
        "authtoken", "audit", "context", "rootapp"]
    assert "audit" not in pipeline["pipeline:glance-api"]["pipeline"].split()
    audit = pipeline["filter:audit"]
    assert audit["paste.filter_factory"] == "keystonemiddleware.audit:filter_factory"
    assert audit["audit_map_file"] == "/etc/glance/api_audit_map.conf"
    assert audit["service_name"] == "glance"
    assert pipeline["filter:healthcheck"]["disable_by_file_path"] == (
        "/etc/glance/healthcheck_disable")
    assert _ini(audit_map.read_text())["service_endpoints"]["image"] == "service/storage/image"
    assert oct(paste.stat().st_mode & 0o777) == "0o644"

    gh.harness.update_config({"audit-middleware": False})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert not paste.exists() and not audit_map.exists()
    assert "config_file" not in gh.conf()["paste_deploy"]
    assert not gh.conf().has_section("audit_middleware_notifications")

"""`api-config-flags`: charmhelpers' `config_flags_parser`, and which keys the charm owns."""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")

# [DEFAULT] options glance-api.conf.j2 writes from config or relations: a flag may not
# override them (the charm would stop saying what glance-api runs with).
OWNED_DEFAULT_OPTIONS = frozenset({
    "debug", "use_syslog", "bind_host", "bind_port", "workers", "hashing_algorithm",
    "backlog", "enabled_backends", "image_size_cap", "show_image_direct_url",
    "show_multiple_locations", "delayed_delete", "image_cache_dir",
    "db_enforce_mysql_charset", "transport_url", "enabled_import_methods",
    "node_staging_uri", "worker_self_reference_url",
})


class ConfigFlagsError(ValueError):
    """The flags cannot be parsed (charmhelpers raises OSContextError for these)."""


def parse_config_flags(text: str) -> dict[str, object]:
    """Parse `key=value, key2=v1,v2` exactly as charmhelpers `config_flags_parser` does.

    openstack/charm-glance charmhelpers/contrib/openstack/utils.py `config_flags_parser`:
    a colon before the first `=` makes the whole string inline YAML; otherwise each `=`
    splits a key from its value, a value runs to the last comma before the next key, and
    keys/values lose surrounding blanks and commas. `==` anywhere, or a later key with no
    comma before it, is an error.

    Raises:
        ConfigFlagsError: the string is not in one of those formats.
    """
    colon, equals = text.find(":"), text.find("=")
    if colon > 0 and (colon < equals or equals < 0):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigFlagsError("not valid inline YAML") from err
        if not isinstance(loaded, dict):  # charmhelpers `ordered` raises ValueError
            raise ConfigFlagsError("inline YAML must be a mapping")
        return {str(key): loaded[key] for key in sorted(loaded, key=str)}
    if "==" in text:
        raise ConfigFlagsError("not in the expected format (key=value)")
    strip = " ,"
    split = text.strip(" =").split("=")
    flags: dict[str, object] = {}
    for i in range(len(split) - 1):
        current, following = split[i], split[i + 1]
        vindex = following.rfind(",")
        value = following if i == len(split) - 2 or vindex < 0 else following[:vindex]
        if i == 0:
            key = current
        else:
            index = current.rfind(",")
            if index < 0:
                raise ConfigFlagsError(f"invalid value(s) at index {i}")
            key = current[index + 1:]
        flags[key.strip(strip)] = value.rstrip(strip)
    return flags


def render_value(value: object) -> str:
    """The text the classic template writes for a parsed value (`{{ value }}` in jinja2)."""
    return str(value)


def check_flags(flags: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """Keys and rendered values, refusing what glance-api.conf cannot hold as one line.

    Raises:
        ConfigFlagsError: a key that is no option name, a nested or empty value, or a value
            with a line break or control character (it would add lines to the file).
    """
    pairs = []
    for key, value in flags.items():
        if not _NAME.match(key):
            raise ConfigFlagsError("keys must be option names")
        if value is None or isinstance(value, dict | list):
            raise ConfigFlagsError("values must be single values")
        text = render_value(value)
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ConfigFlagsError("values must be one line")
        pairs.append((key, text))
    return tuple(pairs)


def owned_keys(keys: Iterable[str]) -> list[str]:
    """The keys (as given) that name an option the charm renders in [DEFAULT].

    oslo.config matches `-` and `_` alike in option names, so both spellings count.
    """
    return [key for key in keys if key.replace("-", "_").lower() in OWNED_DEFAULT_OPTIONS]

"""Templates: one jinja2 environment (jinja2 imported in `_environment` only), its filters."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def oslo_escape(value: object) -> str:
    """Escape a value for oslo.config so that it reads back exactly.

    oslo.config expands `$name` (write `$$` for a dollar). Its ini parser strips blanks
    around a value and then one pair of matching quotes (`'x'`, `"x"`, also a lone `"`):
    such values, and values with edge blanks, are wrapped in double quotes, which the
    parser then removes.
    """
    text = str(value).replace("$", "$$")
    if text != text.strip() or (text[:1] in ("'", '"') and text[:1] == text[-1:]):
        return f'"{text}"'
    return text


def oslo_bounded_list(values: object) -> str:
    """A list for an oslo.config ListOpt with bounds=True and quoted items.

    glance declares enabled_import_methods and image_import_plugins that way: the value
    must be in brackets (`['glance-direct', 'web-download']`, what the classic charm's
    `{{ image_import_plugins }}` of a Python list gives); a bare `a,b` fails on first use.
    """
    items = [str(value) for value in values] if isinstance(values, list | tuple) else []
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def reveal(value: object) -> object:
    """A SecretStr's value (credentials in a store section); anything else as it is."""
    getter = getattr(value, "get_secret_value", None)
    return getter() if callable(getter) else value


def swift_escape(value: object) -> str:
    """Escape a value for glance_store's swift reference file.

    glance_store reads it with Python's ConfigParser (`%` interpolation: write `%%`) and
    strips one pair of surrounding quotes, so values that start with a quote or have
    edge whitespace are quoted to come back unchanged.
    """
    text = str(value).replace("%", "%%")
    if text != text.strip() or text[:1] in "\"'":
        return f'"{text}"'
    return text


def render_template(name: str, **values: object) -> str:
    """Render templates/<name> (jinja2 imported here: hooks that render nothing skip it)."""
    return _environment().get_template(name).render(**values)


@functools.cache
def _environment() -> jinja2.Environment:
    """One environment per process; compiled templates cached as bytecode between hooks.

    jinja2's FileSystemBytecodeCache keeps them in a per-user temp directory it creates
    0700 (templates hold no secret: values are only filled in at render time).
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - ini files, not HTML
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
    )
    env.filters["oslo"] = oslo_escape
    env.filters["swift"] = swift_escape
    env.filters["reveal"] = reveal
    env.filters["oslo_bounded_list"] = oslo_bounded_list
    return env

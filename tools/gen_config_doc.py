#!/usr/bin/env python3
"""Generates the README's config table from config.yaml (and checks it is up to date).

The table goes between two marker lines in README.md::

    <!-- config-table:start -->
    <!-- config-table:end -->

`python tools/gen_config_doc.py` rewrites what is between them; `--check` exits 1 when the
README differs from what would be generated, and 2 when the markers are missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
EXIT_STALE = 1
EXIT_NO_MARKERS = 2


class MarkerError(ValueError):
    """The README lacks the config-table markers (or has them out of order)."""


def _cell(text: str) -> str:
    """Make text safe for one markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(option: Mapping[str, Any]) -> str:
    value = option.get("default")
    if value is None or value == "":
        return "(unset)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render_table(options: Mapping[str, Mapping[str, Any]]) -> str:
    """Render the config options as a markdown table, in config.yaml order.

    Args:
        options: the ``options`` mapping of config.yaml.

    Returns:
        The table, ending with a newline.
    """
    lines = ["| option | type | default | description |", "|---|---|---|---|"]
    for name, option in options.items():
        description = _cell(str(option.get("description", "")))
        lines.append(
            f"| `{name}` | {option.get('type', '')} | {_cell(_default(option))} | {description} |"
        )
    return "\n".join(lines) + "\n"


def load_options(config_path: Path) -> dict[str, dict[str, Any]]:
    """Read the options of a config.yaml.

    Args:
        config_path: the file.

    Returns:
        The ``options`` mapping.
    """
    data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    return dict(data.get("options") or {})


def replace_between_markers(readme: str, table: str) -> str:
    """Put the table between the markers, replacing what was there.

    Args:
        readme: README text.
        table: the generated table.

    Returns:
        The new README text.

    Raises:
        MarkerError: if a marker is missing, repeated or out of order.
    """
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise MarkerError(f"README must contain {START} and {END} once each")
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    if END in head:
        raise MarkerError(f"{END} comes before {START}")
    return f"{head}{START}\n\n{table}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point.

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        0 when written or up to date, 1 when --check finds it stale, 2 when markers are missing.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "config.yaml")
    parser.add_argument("--readme", type=Path, default=PROJECT_ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="fail if README is out of date")
    args = parser.parse_args(argv)

    readme = args.readme.read_text(encoding="utf-8")
    try:
        updated = replace_between_markers(readme, render_table(load_options(args.config)))
    except MarkerError as exc:
        print(f"error: {args.readme.name}: {exc}", file=sys.stderr)
        return EXIT_NO_MARKERS
    if updated == readme:
        return 0
    if args.check:
        print(
            f"error: the config table in {args.readme.name} is out of date; "
            "run `python tools/gen_config_doc.py`",
            file=sys.stderr,
        )
        return EXIT_STALE
    args.readme.write_text(updated, encoding="utf-8")
    print(f"updated the config table in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

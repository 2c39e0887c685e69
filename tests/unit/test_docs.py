"""The README's config table matches config.yaml (tools/gen_config_doc.py --check)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools import gen_config_doc

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
options:
  vip:
    type: string
    default:
    description: |
      Virtual IP address(es), space-separated.
      One per network | IPv4 or IPv6.
  debug:
    type: boolean
    default: false
    description: Log at debug level.
  image-size-cap:
    type: string
    default: 1TB
    description: Largest image.
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# charm\n\n## Config\n\n{gen_config_doc.START}\nold\n{gen_config_doc.END}\n\nafter\n"
    )
    return config, readme


def _run(config: Path, readme: Path, *extra: str) -> int:
    return gen_config_doc.main(["--config", str(config), "--readme", str(readme), *extra])


def test_repository_readme_config_table_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    code = gen_config_doc.main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_render_table_rows_in_config_order() -> None:
    table = gen_config_doc.render_table(
        {
            "vip": {"type": "string", "default": None, "description": "A | B\nC"},
            "debug": {"type": "boolean", "default": False, "description": "Log."},
            "cap": {"type": "string", "default": "1TB", "description": "Cap."},
        }
    )
    lines = table.splitlines()
    assert lines[0] == "| option | type | default | description |"
    assert lines[2] == "| `vip` | string | (unset) | A \\| B C |"
    assert lines[3] == "| `debug` | boolean | `false` | Log. |"
    assert lines[4] == "| `cap` | string | `1TB` | Cap. |"


def test_write_then_check(project: tuple[Path, Path]) -> None:
    config, readme = project
    assert _run(config, readme, "--check") == gen_config_doc.EXIT_STALE
    assert _run(config, readme) == 0
    text = readme.read_text()
    assert "| `image-size-cap` | string | `1TB` | Largest image. |" in text
    assert text.startswith("# charm\n") and text.endswith(f"{gen_config_doc.END}\n\nafter\n")
    assert _run(config, readme, "--check") == 0
    assert _run(config, readme) == 0
    assert readme.read_text() == text


def test_check_detects_config_change(project: tuple[Path, Path]) -> None:
    config, readme = project
    _run(config, readme)
    config.write_text(CONFIG.replace("default: 1TB", "default: 2TB"))
    assert _run(config, readme, "--check") == gen_config_doc.EXIT_STALE


@pytest.mark.parametrize(
    "body",
    [
        "no markers\n",
        f"{gen_config_doc.START}\nonly start\n",
        f"{gen_config_doc.END}\n{gen_config_doc.START}\n",
        f"{gen_config_doc.START}\n{gen_config_doc.END}\n{gen_config_doc.START}\n",
    ],
)
def test_missing_or_broken_markers_fail(project: tuple[Path, Path], body: str) -> None:
    config, readme = project
    readme.write_text(body)
    assert _run(config, readme, "--check") == gen_config_doc.EXIT_NO_MARKERS
    assert _run(config, readme) == gen_config_doc.EXIT_NO_MARKERS
    assert readme.read_text() == body


def test_every_option_of_the_repository_config_is_rendered() -> None:
    options = gen_config_doc.load_options(ROOT / "config.yaml")
    table = gen_config_doc.render_table(options)
    assert len(table.splitlines()) == len(options) + 2
    for name in options:
        assert f"| `{name}` |" in table

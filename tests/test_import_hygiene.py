"""The headless core never imports Textual or Rich: only compass_tui.tui does."""

import subprocess
import sys

CORE = [
    "compass_tui.engine",
    "compass_tui.models",
    "compass_tui.cli",
    "compass_tui.commands.investigate",
    "compass_tui.service",
    "compass_tui.telemetry.bundle",
    "compass_tui.sim",
]


def test_core_does_not_import_textual_or_rich():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"headless core imported: {out.stdout.strip()}"


def test_core_does_not_import_litellm_eagerly():
    code = "import sys\nimport compass_tui.engine, compass_tui.cli\nprint('litellm' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_preload_forks_before_anything_heavy_is_imported():
    # the child parses while the command imports numpy, DuckDB and pydantic: it must not wait for them
    code = ("import sys\nimport compass_tui.telemetry.preload, compass_tui.commands.investigate, compass_tui.commands.app\n"
            "print(sorted(m for m in ('numpy', 'duckdb', 'pydantic') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""`compass demo`: headless JSON when asked or piped, without ever loading Textual or Rich."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

from test_tui_support import write_bundle

SCRIPT = """
import sys
from pathlib import Path
import compass_tui.service as service
service.DEMO_BUNDLE = Path(sys.argv[1])
from compass_tui.cli import main
code = main(sys.argv[2:])
print("TUI_LOADED" if any(m.split(".")[0] in ("textual", "rich") for m in sys.modules) else "NO_TEXTUAL", file=sys.stderr)
sys.exit(code)
"""


def run_demo(demo: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(demo), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )


def pack(directory: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for f in sorted(directory.iterdir()):
            tar.add(f, arcname=f.name)
    return out


def test_demo_json_prints_the_report_without_textual(tmp_path):
    demo = pack(write_bundle(tmp_path / "b"), tmp_path / "demo.tar.gz")
    done = run_demo(demo, "--no-store", "demo", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["format"] == "compass-investigation/1"
    assert report["incident"]["service"] == "checkout"
    assert "NO_TEXTUAL" in done.stderr


def test_demo_piped_runs_headless(tmp_path):
    demo = pack(write_bundle(tmp_path / "b"), tmp_path / "demo.tar.gz")
    done = run_demo(demo, "--no-store", "demo", tmp_path=tmp_path)  # stdout is a pipe, not a TTY
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["investigation_id"].startswith("inv-")


def test_missing_demo_bundle_is_one_line(tmp_path):
    done = run_demo(tmp_path / "nope.tar.gz", "--no-store", "demo", "--json", tmp_path=tmp_path)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line != "NO_TEXTUAL"]
    assert lines == [f"compass demo: the demo bundle is missing: {tmp_path / 'nope.tar.gz'}"]
    assert "Traceback" not in done.stderr

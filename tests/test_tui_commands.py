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


def test_the_app_without_a_terminal_runs_headless_and_exits(tmp_path):
    bundle = write_bundle(tmp_path / "b")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    with open(tmp_path / "out", "w") as out:
        done = subprocess.run([sys.executable, "-m", "compass_tui.cli", "--bundle", str(bundle)],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True,
                              timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["compass: no terminal: running headless; the report goes to stdout"]
    report = json.loads((tmp_path / "out").read_text())
    assert report["incident"]["service"] == "checkout"
    # it let go of the memory: another process can record at once
    from compass_tui.store import Store

    with Store.open(tmp_path / "data" / "compass" / "compass.duckdb") as s:
        assert [h["investigation_id"] for h in s.history()] == [report["investigation_id"]]


def test_investigating_an_alert_with_no_reachable_source_exits_2_with_the_reason(tmp_path):
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout"},
                                             "startsAt": "2026-01-01T10:00:00Z"}]}))
    cfg = tmp_path / "config.toml"
    cfg.write_text('[mcp_servers.grafana]\ncommand = "mcp-grafana"\nenv = { GRAFANA_SERVICE_ACCOUNT_TOKEN = "${GRAFANA_TOKEN}" }\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "compass_tui.cli", "investigate", "--alert", str(alert), "--config", str(cfg),
                           "--no-store"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("compass: no data source reachable: grafana:") and "GRAFANA_TOKEN" in line
    assert "export GRAFANA_TOKEN" in line and done.stdout == ""

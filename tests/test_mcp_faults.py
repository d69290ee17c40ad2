"""A source that breaks mid-investigation, as a user meets it: `compass investigate --json`
run as a command, its config pointing at an MCP fault proxy (tests/mcp_fault_proxy.py) in
front of the real prometheus-mcp-server over a real Prometheus. After N answered calls the
server dies, hangs, answers garbage, answers errors, or answers huge results; whichever it
is, the command exits 0 with a valid report, the terminal gets one line and no traceback,
the report says which server failed, how and since when (never that the stack lacks a
metric), keeps what was found before, and the log file holds the details."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from compass_tui.config import McpServerConfig
from compass_tui.engine.request import parse_time
from compass_tui.telemetry.mcp_backend import McpBackend
from test_tui_app import wait_for_report

try:
    from tests.prometheus_server import PrometheusServer
    from tests.test_live_prometheus import prometheus_mcp_command
    from tests.test_mcp_backend import SERVER
except ImportError:  # pragma: no cover - run from inside tests/
    from prometheus_server import PrometheusServer  # type: ignore[no-redef]
    from test_live_prometheus import prometheus_mcp_command  # type: ignore[no-redef]
    from test_mcp_backend import SERVER  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PROXY = Path(__file__).resolve().parent / "mcp_fault_proxy.py"
TOOL_TIMEOUT_S = 8
CAP_BYTES = 1_000_000
"""mcp_max_result_bytes in the test config; the proxy's huge answers are half as big again."""

# mode -> (words the report and the one line use, what the log file must hold)
MODES = {
    "die": ("died", "fault proxy: the server exits"),
    "hang": ("stopped answering", "no answer within"),
    "garbage": ("answered garbage", "Failed to parse JSONRPC message"),
    "error": ("answered errors", "upstream Prometheus unavailable"),
    "huge": ("too big to read", "over the 1000000-byte cap"),
}
HUGE_CALLS = 5
"""Huge answers are a few bad queries, not a broken server: the proxy sends this many, then behaves."""


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    report: dict
    log: str
    calls: list[str]

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.proc.stderr.splitlines() if line.strip()]

    def degraded(self) -> dict[str, str]:
        return {d["signal"]: d["reason"] for d in self.report["degraded"]}

    def top(self) -> tuple[str, str, str]:
        h = self.report["hypotheses"][0]
        return h["fault"], h["service"], h["status"]


class Stack:
    """A simulated incident in a real Prometheus, and the means to investigate its alert
    through the fault proxy as a user would."""

    def __init__(self, bundle: Path, url: str, tmp: Path):
        self.bundle, self.url, self.tmp = bundle, url, tmp
        incident = json.loads((bundle / "incident.json").read_text())
        manifest = json.loads((bundle / "bundle.json").read_text())
        alert = incident["alerts"][0]
        self.baseline = parse_time(alert["startsAt"]) - parse_time(manifest["window"]["start"])
        self.alert = tmp / "alert.json"
        self.alert.write_text(json.dumps({"alerts": [alert]}))
        self.truth = json.loads((bundle / "truth.json").read_text())["culprit"]
        self.server = prometheus_mcp_command()

    def run(self, mode: str, after: int, count: int = 0) -> Run:
        name = f"{mode}-{after}"
        work = self.tmp / name
        work.mkdir()
        calls = work / "proxy.log"
        args = [str(PROXY), "--mode", mode, "--after", str(after), "--count", str(count), "--log", str(calls),
                "--huge-bytes", str(CAP_BYTES * 3 // 2), "--", *self.server]
        config = work / "config.toml"
        config.write_text(
            f"baseline_s = {self.baseline}\n"
            f"mcp_max_result_bytes = {CAP_BYTES}\n"
            "[mcp_servers.prometheus]\n"
            f"command = {json.dumps(sys.executable)}\n"
            f"args = {json.dumps(args)}\n"
            f'env = {{ PROMETHEUS_URL = "{self.url}" }}\n'
            f"cwd = {json.dumps(str(work))}\n"  # the server reads a .env from its working directory
            f"tool_timeout_sec = {TOOL_TIMEOUT_S}\n"
        )
        state = work / "state"
        env = {**os.environ, "XDG_STATE_HOME": str(state)}
        proc = subprocess.run(
            [sys.executable, "-m", "compass_tui.cli", "investigate", "--config", str(config), "--no-store",
             "--alert", str(self.alert), "--json"],
            capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
        )
        log_file = state / "compass" / "compass.log"
        report = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return Run(proc, report, log_file.read_text() if log_file.exists() else "",
                   calls.read_text().splitlines() if calls.exists() else [])


@pytest.fixture(scope="module")
def stack(sim_bundle_factory, tmp_path_factory):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    bundle = Path(sim_bundle_factory("cpu_saturation", 2, realism="off"))
    tmp = tmp_path_factory.mktemp("faults")
    with PrometheusServer((bundle / "metrics.om").read_text(), tmp / "prom") as url:
        st = Stack(bundle, url, tmp)
        st.reference = st.run("pass", 0)
        yield st


def assert_valid_report(rep: dict) -> None:
    """The compass-investigation/1 contract (spec/investigation-json.md)."""
    assert rep["format"] == "compass-investigation/1"
    assert {"investigation_id", "incident", "hypotheses", "timings", "cost", "degraded"} <= set(rep)
    assert {"title", "service", "started_at"} <= set(rep["incident"])
    assert [h["rank"] for h in rep["hypotheses"]] == list(range(1, len(rep["hypotheses"]) + 1))
    statuses = [h["status"] for h in rep["hypotheses"]]
    assert set(statuses) <= {"supported", "inconclusive", "disproven"}
    if "disproven" in statuses:
        assert all(s == "disproven" for s in statuses[statuses.index("disproven"):])
    for h in rep["hypotheses"]:
        assert {"rank", "fault", "service", "title", "confidence", "status", "evidence", "disproof"} <= set(h)
        for e in h["evidence"]:
            assert {"kind", "summary", "supports", "source", "query"} <= set(e)
    for d in rep["degraded"]:
        assert d["signal"] and d["reason"]


def assert_honest_failure(run: Run, reference: Run, mode: str) -> None:
    """What every failure must look like: exit 0, a valid report, one line on the terminal,
    the server named with how it failed, nothing blamed on the instrumentation, the log."""
    words, in_log = MODES[mode]
    assert run.proc.returncode == 0, run.proc.stderr
    assert_valid_report(run.report)
    # the terminal: one line, what failed and where the log is; no traceback anywhere
    assert "Traceback" not in run.proc.stderr and "Traceback" not in run.proc.stdout
    assert len(run.stderr_lines) == 1, run.proc.stderr
    line = run.stderr_lines[0]
    assert line.startswith("compass: the MCP server prometheus ") and words in line, line
    assert "the report keeps what was found before" in line and "compass.log" in line, line
    # the report: the server, how it failed, since when, what could not be checked
    degraded = run.degraded()
    source = degraded.get("source:prometheus", "")
    assert words in source and "what was found before is kept" in source, degraded
    assert " at " in source or " from " in source  # since when
    # anything the healthy run did not report is the failure's doing, and says so: no
    # "no CPU metric ... add cAdvisor scraping" for a metric the server could not return
    known = reference.degraded()
    for signal, reason in degraded.items():
        if known.get(signal) != reason:
            assert "MCP server prometheus" in reason, (signal, reason)
    # the details are in the log file
    assert in_log in run.log, run.log[-3000:]
    assert "prometheus" in run.log


@pytest.mark.live
def test_the_healthy_run_through_the_proxy_finds_the_culprit(stack):
    ref = stack.reference
    assert ref.proc.returncode == 0, ref.proc.stderr
    assert_valid_report(ref.report)
    assert ref.proc.stderr.strip() == ""
    assert ref.top()[:2] == (stack.truth["fault"], stack.truth["service"]), ref.report["hypotheses"][:3]
    assert not any(s.startswith("source:") for s in ref.degraded())
    # the faults below come after the metric lookups, in the middle of the signal queries
    assert len(ref.calls) > 110, len(ref.calls)


@pytest.mark.live
@pytest.mark.parametrize("mode", list(MODES))
def test_a_server_failing_midway_keeps_what_was_found(stack, mode):
    run = stack.run(mode, 100, count=HUGE_CALLS if mode == "huge" else 0)
    assert_honest_failure(run, stack.reference, mode)
    assert any(": passed" in c for c in run.calls) and any(f": {mode}" in c for c in run.calls)
    source = run.degraded()["source:prometheus"]
    assert "not checked: " in source and "queries could not run" in source
    # what was found before the failure is kept: the culprit still leads
    assert run.top() == stack.reference.top(), run.report["hypotheses"][:3]
    assert run.report["hypotheses"][0]["evidence"]


@pytest.mark.live
@pytest.mark.parametrize("mode", list(MODES))
def test_a_server_failing_during_discovery_is_not_blamed_on_the_instrumentation(stack, mode):
    # after 30 calls the metric names are listed and half the metrics looked up: what could
    # not be looked up is "not checked", not missing from the stack
    run = stack.run(mode, 30, count=HUGE_CALLS if mode == "huge" else 0)
    assert_honest_failure(run, stack.reference, mode)
    degraded = run.degraded()
    assert "metrics not looked up: " in degraded["source:prometheus"]
    if mode != "huge":  # a few huge answers cost a few metrics; a broken server, whole signals
        assert any(r.startswith("not checked: the MCP server prometheus") for r in degraded.values()), degraded
    assert not any("cAdvisor" in r or "instrument the services" in r or "export *_duration" in r for r in degraded.values())


@pytest.mark.live
async def test_the_app_shows_the_failure_in_one_line(stack, tmp_path, monkeypatch):
    from textual.widgets import Static

    from compass_tui.cli import build_parser
    from compass_tui.tui.app import build_app

    config = tmp_path / "config.toml"
    args = [str(PROXY), "--mode", "die", "--after", "100", "--", *stack.server]
    config.write_text(
        f"baseline_s = {stack.baseline}\n[mcp_servers.prometheus]\ncommand = {json.dumps(sys.executable)}\n"
        f'args = {json.dumps(args)}\nenv = {{ PROMETHEUS_URL = "{stack.url}" }}\ncwd = {json.dumps(str(tmp_path))}\n'
    )
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from compass_tui import logs

    logs.setup()  # as the command line does
    app = build_app(build_parser().parse_args(["--config", str(config), "--alert", str(stack.alert), "--no-store"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_report(pilot, 60)
        screen = app.investigation
        assert screen.report is not None
        shown = [n.message for n in app._notifications]
        failed = [m for m in shown if m.startswith("the MCP server prometheus died")]
        assert len(failed) == 1 and "compass.log" in failed[0] and "\n" not in failed[0], shown
        assert "Traceback" not in "\n".join(shown)
        await pilot.press("3")  # the health pane lists the degraded entry with the rest
        await pilot.pause()
        from rich.console import Console

        console = Console(width=400, record=True, file=io.StringIO())
        console.print(screen.query_one("#health-pane", Static).content)
        assert "source:prometheus" in console.export_text()
        assert screen.report.hypotheses[0].fault == stack.reference.top()[0]


@pytest.mark.parametrize("mode, kind, words", [
    ("die", "died", "died at"), ("hang", "hung", "stopped answering at"), ("garbage", "garbage", "not JSON-RPC"),
    ("error", "errors", "2 of 4 calls failed"), ("huge", "too_big", "over the 100000-byte cap"),
])
async def test_the_backend_names_each_failure(tmp_path, mode, kind, words):
    # the proxy in front of the test MCP server of test_mcp_backend: its first call (the
    # datasource listing) and one query pass, then the fault
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    cfg = McpServerConfig(command=sys.executable, tool_timeout_sec=2, args=[
        str(PROXY), "--mode", mode, "--after", "2", "--huge-bytes", "150000", "--", sys.executable, str(script), str(tmp_path / "m")])
    async with McpBackend({"m": cfg}, max_result_bytes=100_000) as b:
        assert (await b.query_range("up", 0, 60, 15)).status == "ok"
        assert b.source_failures() == []
        first = await b.query_range("up", 0, 60, 15)
        again = await b.query_range("up", 0, 60, 15)
        assert first.status == "error" and again.status == "error"
        failures = b.source_failures()
        assert [f.server for f in failures] == ["m"]
        f = failures[0]
        assert f.kind == kind and f.answered_before == 2 and f.failed_calls == 2, f
        line = f.headline()
        assert line.startswith("the MCP server m ") and words in line and "\n" not in line, line
        if kind in ("died", "hung", "garbage"):
            # sent no more work: the next call fails at once, saying why
            assert b.servers["m"].status in ("dead", "hung", "garbage")
            assert (await b.query_range("up", 0, 60, 15)).error.startswith("m: ")


def test_the_log_file_goes_under_the_xdg_state_dir(tmp_path, monkeypatch):
    import logging

    from compass_tui import logs

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = logs.setup()
    assert path == tmp_path / "state" / "compass" / "compass.log"
    try:
        raise ValueError("a library's own failure")
    except ValueError:
        logging.getLogger("mcp.client.stdio").exception("Failed to parse JSONRPC message from server")
    text = path.read_text()
    assert "Failed to parse JSONRPC message" in text and "Traceback" in text and "a library's own failure" in text
    # a state dir that cannot be written: nothing is logged, nothing is printed, nothing raises
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    assert logs.setup() is None and logs.where() == "no log file"
    logging.getLogger("mcp").error("dropped")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert logs.setup() == path

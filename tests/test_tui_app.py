"""The app as an engineer drives it: keys at 80x24 and 120x40, the memory on disk, the chat.

The app is built with the CLI's own factory. Most tests replace the engine at the
``investigate`` boundary with a scripted stream so hypotheses and timings are exact; the
bundle tests run the real engine and the real bundle backend.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from rich.console import Console
from test_tui_support import DEPLOY, POOL, alert_payload, parse, scripted, scripted_events, simulated_bundle, write_alert, write_bundle
from textual.widgets import Input, RichLog, Static, TabbedContent
from textual.worker import WorkerFailed

from compass_tui.tui.app import build_app
from compass_tui.tui.screens.help import HelpScreen
from compass_tui.tui.screens.verdict import ActualScreen, RejectScreen, ReplaceScreen
from compass_tui.tui.widgets.evidence import EvidencePane, SeriesChart
from compass_tui.tui.widgets.header import IncidentHeader
from compass_tui.tui.widgets.hypotheses import HypothesisList

SIZES = [(80, 24), (120, 40)]


def screen_text(app) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notices(app) -> str:
    """The notifications currently shown (toasts wrap, so read their messages)."""
    return "\n".join(n.message for n in app._notifications)


def widget_text(widget) -> str:
    """A widget's content as plain text (wide enough that nothing wraps)."""
    overrides_render = type(widget).render is not Static.render
    content = widget.content if isinstance(widget, Static) and not overrides_render else widget.render()
    if isinstance(content, str):
        return content
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


def feedback_rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT verdict, fault, service, reason, note, withdrawn_at IS NOT NULL FROM feedback "
                           "ORDER BY id").fetchall()
    finally:
        con.close()


async def wait_for_report(pilot, seconds: float) -> None:
    """Pause until the investigation on screen has its report, for at most ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        await pilot.pause(0.05)
        if pilot.app.investigation.report is not None:
            return


async def settle(pilot) -> None:
    try:
        await pilot.app.workers.wait_for_complete()
    except WorkerFailed:
        pass  # the app reports worker errors itself; the test checks what it shows
    await pilot.pause()
    await pilot.pause()


@pytest.fixture(scope="module")
def sim_bundle(tmp_path_factory) -> Path:
    return simulated_bundle(tmp_path_factory.mktemp("sim") / "pool")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle")


@pytest.mark.parametrize("size", SIZES)
async def test_triage_flow_writes_each_verdict_to_the_memory(tmp_path, bundle, size):
    db = tmp_path / "memory.duckdb"
    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = app.investigation
        # ranked: the supported cause first, the disproven one last, dimmed with why
        hyps = screen.query_one(HypothesisList)
        assert [h.id for h in hyps.ranked] == [POOL.id, "cpu_saturation@checkout", DEPLOY.id]
        text = screen_text(app)
        assert "db_connection_pool_exhaustion@payments" in text
        assert "87%" in text and "supported" in text
        assert "memory: seen 3 times, usually confirmed" in text
        header = widget_text(screen.query_one(IncidentHeader))
        assert "checkout 5xx above 5%" in header and "done" in header and "memory on" in header

        # Enter opens the evidence: the exact query, the source, and a chart
        await pilot.press("enter")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "evidence"
        evidence = screen.query_one(EvidencePane)
        assert evidence.has_focus
        shown = "\n".join(widget_text(w) for w in evidence.query(Static))
        assert 'max by (service) (hikaricp_connections_active{service="payments"})' in shown
        assert "bundle:test" in shown and "supports" in shown
        assert len(evidence.query(SeriesChart)) == 1

        # back to the list, confirm the first
        await pilot.press("escape", "c")
        await pilot.pause()
        assert screen.verdicts[POOL.id] == "confirmed"

        # reject the second with a reason
        await pilot.press("j", "x")
        await pilot.pause()
        assert isinstance(app.screen, RejectScreen)
        await pilot.press(*"cpu flat", "enter")
        await pilot.pause()
        assert screen.verdicts["cpu_saturation@checkout"] == "rejected: cpu flat"

        # it was actually something else, completed from the catalog, with a note
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ActualScreen)
        await pilot.press(*"db_sl")
        await pilot.pause()
        await pilot.press("tab")  # accept the completion, as in a shell
        await pilot.press(*"@pay")
        await pilot.pause()
        await pilot.press("right")  # the arrow accepts it too
        await pilot.press(*"-db", "enter")
        await pilot.pause()
        await pilot.press(*"vacuum", "enter")
        await pilot.pause()
        # one investigation, one answer: the correction asks before it replaces the confirmation
        assert isinstance(app.screen, ReplaceScreen)
        assert "db_connection_pool_exhaustion@payments" in screen_text(app)
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, (ActualScreen, ReplaceScreen))
        # the rows show what the memory holds now
        assert POOL.id not in screen.verdicts
        assert screen.verdicts["cpu_saturation@checkout"] == "rejected: cpu flat"
        assert "answer: db_slow_queries@payments-db" in screen_text(app)
        await pilot.press("q")
    assert feedback_rows(db) == [
        ("confirm", "db_connection_pool_exhaustion", "payments", None, None, True),
        ("reject", "cpu_saturation", "checkout", "cpu flat", None, False),
        ("actual", "db_slow_queries", "payments-db", None, "vacuum", False),
    ]


async def test_quitting_mid_correction_keeps_what_was_confirmed(tmp_path, bundle):
    db = tmp_path / "memory.duckdb"
    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c", "a")
        await pilot.press(*"memory_le")
        await pilot.pause()
        assert isinstance(app.screen, ActualScreen)
        app.exit()  # the engineer closes the terminal halfway through the correction
    assert feedback_rows(db) == [("confirm", "db_connection_pool_exhaustion", "payments", None, None, False)]


async def test_a_bad_cause_is_refused_with_a_one_line_reason(tmp_path, bundle):
    app = build_app(parse("--bundle", str(bundle), "--store", str(tmp_path / "m.duckdb")), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a", *"bogus@payments", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ActualScreen)
        hint = widget_text(app.screen.query_one(".prompt-hint", Static))
        assert "unknown fault 'bogus'" in hint


async def test_verdicts_wait_for_the_report(tmp_path, bundle):
    hold = asyncio.Event()
    db = tmp_path / "memory.duckdb"
    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted(hold=hold))
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(20):
            await pilot.pause()
            if app.investigation.hypotheses and app.investigation.store_state is not None:
                break
        screen = app.investigation
        assert screen.running and screen.hypotheses
        # ranked live, before any report: the update lifted the pool above the deploy
        ranked = screen.query_one(HypothesisList).ranked
        assert [h.id for h in ranked] == [POOL.id, "cpu_saturation@checkout", DEPLOY.id]
        assert ranked[-1].status == "disproven"
        await pilot.press("c")
        await pilot.pause()
        assert screen.verdicts == {}
        assert "still running" in notices(app)
        hold.set()
        await settle(pilot)
        assert "done" in widget_text(screen.query_one(IncidentHeader))


async def test_unreadable_memory_does_not_stop_the_investigation(tmp_path, bundle):
    db = tmp_path / "memory.duckdb"
    garbage = b"this is not a duckdb file\x00\x01" * 100
    db.write_bytes(garbage)
    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.investigation
        assert "memory unavailable:" in widget_text(screen.query_one(IncidentHeader))
        assert len(screen.query_one(HypothesisList).ranked) == 3
        await pilot.press("c")
        await pilot.pause()
        assert screen.verdicts[POOL.id] == "confirmed (not saved)"
        assert "Not saved: memory unavailable" in notices(app)
    assert db.read_bytes() == garbage


async def test_memory_locked_by_another_compass(tmp_path, bundle):
    db = tmp_path / "memory.duckdb"
    # Another process holds the memory open for writing, as a second compass would.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('CREATE TABLE t (x INT)'); c.execute('CHECKPOINT'); print('ready', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = db.read_bytes()
        app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            header = widget_text(app.investigation.query_one(IncidentHeader))
            assert "memory unavailable:" in header
            assert "done" in header and len(app.investigation.query_one(HypothesisList).ranked) == 3
        assert db.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


async def test_too_small_terminal_says_so_and_recovers(tmp_path, bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(70, 20)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "70x20" in text and "at least 80x24" in text
        assert "db_connection_pool_exhaustion" not in text
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        text = screen_text(app)
        assert "at least 80x24" not in text
        assert "db_connection_pool_exhaustion@payments" in text


async def test_mouse_selects_a_hypothesis(tmp_path, bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        # below the top border: row 1 takes 3 lines (cause, bar, memory), row 2 takes 2: y=6 is row 3
        await pilot.click(HypothesisList, offset=(6, 6))
        await pilot.pause()
        assert screen.query_one(HypothesisList).selected_id == DEPLOY.id
        assert screen.query_one(TabbedContent).active == "evidence"
        shown = "\n".join(widget_text(w) for w in screen.query_one(EvidencePane).query(Static))
        assert "disproven: no checkout deploy before the onset" in shown


async def test_help_screen_and_export(tmp_path, bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    app.options.export_dir = tmp_path
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "it was actually…: FAULT@SERVICE (Tab completes)" in screen_text(app)
        await pilot.press("escape", "e")
        await pilot.pause()
        out = tmp_path / "compass-inv-2025-09-08T18-13-27Z-checkout-test.json"
        assert str(out) in notices(app)
    data = json.loads(out.read_text())
    assert data["format"] == "compass-investigation/1"
    assert [h["fault"] for h in data["hypotheses"]] == ["db_connection_pool_exhaustion", "cpu_saturation", "bad_deploy"]


async def test_chat_commands(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        await pilot.press("i")  # the chat has its own key; / filters
        assert screen.focused is screen.query_one("#chat-input", Input)
        log = screen.query_one("#chat-log", RichLog)

        chat_input = screen.query_one("#chat-input", Input)

        async def ask(line: str) -> str:
            before = len(log.lines)
            chat_input.value = line  # typing is covered elsewhere; this keeps the test quick
            await pilot.press("enter")
            await settle(pilot)
            # the log wraps to the pane: read it as one run of words
            return " ".join(" ".join(strip.text for strip in log.lines[before:]).split())

        assert "temporal_precedence" in await ask("why 1")
        assert "no checkout deploy before the onset" in await ask("why not bad_deploy@checkout")
        assert "never proposed" in await ask("why not dns_failure@checkout")
        assert "hikaricp_connections_active" in await ask("show payments")
        promql = await ask('promql sum by (code) (rate(http_requests_total{service="checkout"}[1m]))')
        assert "ok" in promql and "2 series" in promql and 'code="500"' in promql
        assert "error" in await ask("promql sum(rate(")
        logql = await ask('logql {service="checkout"} |= "error"')
        assert "lines" in logql or "no_data" in logql or "error" in logql
        assert "why not <fault@service>" in await ask("help")
        assert "without a model" in await ask("what happened?")
        runs = screen.run_no
        await ask("rerun")
        assert screen.run_no == runs + 1 and len(screen.query_one(HypothesisList).ranked) == 3
        assert screen.query_one(TabbedContent).active == "chat"
        await pilot.press("tab")
        assert screen.focused is screen.query_one(HypothesisList)


async def test_real_engine_on_a_simulated_incident_learns_from_a_confirmation(tmp_path, sim_bundle):
    db = tmp_path / "memory.duckdb"
    app = build_app(parse("--bundle", str(sim_bundle), "--store", str(db)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.investigation
        header = widget_text(screen.query_one(IncidentHeader))
        assert "done" in header and "memory on" in header
        top = screen.query_one(HypothesisList).ranked[0]
        # which cause wins is the engine's business (its own tests); the app shows what it says
        assert top.status == "supported" and top.evidence
        assert top.memory_note is None
        await pilot.press("enter")
        await pilot.pause()
        pane = screen.query_one(EvidencePane)
        shown = "\n".join(widget_text(w) for w in pane.query(Static))
        assert top.evidence[0].query in shown
        assert len(pane.query(SeriesChart)) == sum(e.chart is not None for e in top.evidence)
        await pilot.press("escape", "c", "r")
        await settle(pilot)
        # the rerun is the same investigation: its verdict is still on its row, and its own
        # first run is not a past sighting ("seen once") of itself
        again = screen.query_one(HypothesisList).ranked[0]
        assert again.id == top.id and again.memory_note is None
        assert screen.verdicts[top.id] == "confirmed"
        assert screen.query_one(IncidentHeader).investigation_id == screen.report.investigation_id
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM investigations").fetchone() == (1,)
    finally:
        con.close()
    # the same alert another time is a recurrence: it recalls the confirmation
    recurrence = tmp_path / "recurrence"
    shutil.copytree(sim_bundle, recurrence)
    incident = json.loads((recurrence / "incident.json").read_text())
    for alert in incident["alerts"]:  # the same alert, firing again a minute later
        fired = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")) + timedelta(minutes=1)
        alert["startsAt"] = fired.strftime("%Y-%m-%dT%H:%M:%SZ")
    (recurrence / "incident.json").write_text(json.dumps(incident))
    app = build_app(parse("--bundle", str(recurrence), "--store", str(db)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.investigation
        again = screen.query_one(HypothesisList).ranked[0]
        assert again.id == top.id and again.memory_note and again.memory_note.startswith("seen once")
        assert f"memory: {again.memory_note}" in screen_text(app)
        assert screen.verdicts == {}


async def test_the_suspects_tab_lists_where_the_report_says_the_trouble_started(tmp_path, sim_bundle):
    app = build_app(parse("--bundle", str(sim_bundle), "--no-store"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        suspects = screen.report.suspects
        assert suspects, "the engine ranked the services"
        await pilot.press("5")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "suspects"
        lines = [ln.strip() for ln in widget_text(screen.query_one("#suspects-pane", Static)).splitlines()]
        ranked = [ln for ln in lines if ln[:3].strip().rstrip(".").isdigit()]
        assert ranked[0].startswith("1.") and f"{suspects[0].score:.2f} {suspects[0].service}" in ranked[0]
        assert len(ranked) == min(12, len(suspects))
        assert suspects[0].service in screen_text(app)  # on screen, not only in the widget


async def test_live_alert_through_an_mcp_server(tmp_path, sim_bundle):
    config = tmp_path / "config.toml"
    config.write_text(
        'grafana_url = "https://grafana.example.com"\n'
        "[mcp_servers.replay]\n"
        f'command = "{sys.executable}"\n'
        f'args = ["-m", "compass_tui.cli", "replay", "{sim_bundle}"]\n'
    )
    app = build_app(parse("--config", str(config), "--alert", str(sim_bundle / "incident.json"), "--no-store"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        assert "done" in widget_text(screen.query_one(IncidentHeader))
        hyps = screen.query_one(HypothesisList)
        with_evidence = [i for i, h in enumerate(hyps.ranked) if h.evidence and h.evidence[0].kind in ("metric", "log")]
        assert with_evidence, "the engine found evidence through the MCP server"
        await pilot.press(*["j"] * with_evidence[0])
        await pilot.press("3")
        await pilot.pause()
        health = widget_text(screen.query_one("#health-pane", Static))
        assert "✔ mcp:replay:" in health and "answered" in health
        await pilot.press("1")
        await pilot.pause()
        shown = "\n".join(widget_text(w) for w in screen.query_one(EvidencePane).query(Static))
        assert "source mcp:replay" in shown and "link https://grafana.example.com/explore?… (Y copies it)" in shown


async def test_an_engine_error_is_one_line_and_keeps_what_arrived(tmp_path, bundle):
    async def crashing(request, deps):
        for event in scripted_events(with_report=False)[:8]:
            yield event
        raise RuntimeError("backend went away\nTraceback details nobody needs")

    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=crashing)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.investigation
        header = widget_text(screen.query_one(IncidentHeader))
        assert "stopped: backend went away" in header and "Traceback" not in header
        assert len(screen.query_one(HypothesisList).ranked) == 3


async def test_rerun_while_running_drops_the_old_stream(tmp_path, bundle):
    hold = asyncio.Event()
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted(hold=hold))
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(20):
            await pilot.pause()
            if len(app.investigation.hypotheses) == 3:
                break
        await pilot.press("r")
        await pilot.pause()
        hold.set()
        await settle(pilot)
        screen = app.investigation
        assert screen.run_no == 2 and screen.report is not None
        assert len(screen.query_one(HypothesisList).ranked) == 3
        assert "done" in widget_text(screen.query_one(IncidentHeader))


async def test_an_unreadable_bundle_is_one_line_not_a_crash(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bundle.json").write_text("{not json")
    app = build_app(parse("--bundle", str(broken), "--no-store"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = widget_text(app.investigation.query_one(IncidentHeader))
        assert "stopped:" in header and "broken" in header


async def test_an_alert_without_live_sources_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    alert = write_alert(tmp_path / "alert.json")
    app = build_app(parse("--alert", str(alert), "--no-store"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.investigation
        assert "checkout 5xx above 5%" in widget_text(screen.query_one(IncidentHeader))
        health = widget_text(screen.query_one("#health-pane", Static))
        assert "no live source configured (run `compass init`)" in health


async def test_nothing_configured_opens_the_demo_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    app = build_app(parse("--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = app.investigation.query_one(IncidentHeader)
        assert "DEMO" in widget_text(header) and "demo incident" in header.source_label


async def test_alert_from_stdin(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    payload = json.dumps(alert_payload())
    app = build_app(parse("--alert", "-", "--no-store"), stdin_text=payload)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = app.investigation.query_one(IncidentHeader)
        assert "checkout 5xx above 5%" in widget_text(header) and header.source_label == "alert stdin"


async def test_a_broken_config_is_named_and_the_demo_still_opens(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('theme = "purple"\n')
    app = build_app(parse("--config", str(config), "--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert str(config) in notices(app) and "theme" in notices(app)
        assert "DEMO" in widget_text(app.investigation.query_one(IncidentHeader))
        assert len(app.investigation.query_one(HypothesisList).ranked) == 3


def test_theme_from_flag_and_no_color(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert build_app(parse("--theme", "light", "--no-store")).theme == "compass-light"
    assert build_app(parse("--no-store")).theme == "compass-dark"
    monkeypatch.setenv("NO_COLOR", "1")
    assert build_app(parse("--no-store")).theme == "compass-high-contrast"


async def test_the_app_opens_on_the_inbox_of_what_watch_investigated(tmp_path, monkeypatch):
    from compass_tui.models import Incident, InvestigationRequest, Report, Timings
    from compass_tui.store import Store
    from compass_tui.tui.screens.inbox import InboxScreen
    from compass_tui.tui.screens.investigation import InvestigationScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))  # nothing configured
    db = tmp_path / "memory.duckdb"
    events = scripted_events()
    report = events[-1].report
    req = InvestigationRequest(title="HighErrorRate on checkout", service="checkout", alertname="HighErrorRate",
                               started_at=1.7e9, window_start=1.7e9 - 3600, window_end=1.7e9 + 600)
    with Store.open(db) as s:
        older = Report(investigation_id="inv-older", incident=Incident(title="older", service="cart"),
                       hypotheses=[], timings=Timings(total_s=1.0), signature="HighErrorRate|cart|errors|")
        s.record_investigation(older, request=req, source="watch", recorded_at=1.0e9)
        s.record_investigation(report.model_copy(update={"signature": "HighErrorRate|checkout|errors|"}),
                               request=req, source="watch")
        s.record_investigation(older.model_copy(update={"investigation_id": "inv-bundle"}), request=req,
                               source="bundle:x")

    async def must_not_run(request, deps):
        raise AssertionError("the recorded investigation was re-run")
        yield  # pragma: no cover

    app = build_app(parse("--store", str(db)), investigate=must_not_run)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)
        text = screen_text(app)
        assert "Inbox: 1 investigation" in text  # the bundle run and the week-old one do not wait
        top = report.hypotheses[0]
        assert f"{top.fault}@{top.service}" in text and "HighErrorRate" in text
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, InvestigationScreen)
        assert screen.report is not None and screen.report.investigation_id == report.investigation_id
        assert len(screen.query_one(HypothesisList).ranked) == len(report.hypotheses)
        await pilot.press("c")  # the verdict goes to the recorded investigation
        await pilot.pause()
    assert feedback_rows(db)[0][:3] == ("confirm", top.fault, top.service)

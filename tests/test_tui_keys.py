"""The app's keys as an SRE who knows k9s and lazygit expects them, and the triage rules a user
relies on: one answer per investigation, undo, what each row says was recorded, copying,
filtering, command mode, help that filters, Ctrl+C twice."""

from __future__ import annotations

import pytest
from test_tui_app import notices, screen_text, settle, widget_text
from test_tui_support import CPU, DEPLOY, POOL, parse, scripted, scripted_events, write_bundle
from textual.widgets import Input, RichLog

from compass_tui.models import Finished, HypothesisAdded
from compass_tui.tui.app import build_app
from compass_tui.tui.screens.help import HelpScreen
from compass_tui.tui.screens.verdict import ActualScreen, ReplaceScreen
from compass_tui.tui.widgets.evidence import EvidencePane
from compass_tui.tui.widgets.header import IncidentHeader
from compass_tui.tui.widgets.hypotheses import NONE_SURVIVED, HypothesisList

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path / "bundle")


def live_rows(app) -> list[tuple]:
    """The verdicts that count, as the memory the app writes to holds them."""
    screen = app.investigation
    store = screen.store_state.store
    return [(v["verdict"], v["fault"], v["service"]) for v in store.verdicts(screen.report.investigation_id)]


def with_report(**changes):
    """The scripted stream with its final report changed."""
    def investigate(request, deps):
        async def gen():
            for event in scripted_events():
                if isinstance(event, Finished):
                    event = Finished(report=event.report.model_copy(update=changes))
                yield event
        return gen()
    return investigate


@pytest.mark.parametrize("size", SIZES)
async def test_a_second_confirm_asks_to_replace_and_u_undoes(tmp_path, bundle, size):
    db = tmp_path / "m.duckdb"
    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = app.investigation
        await pilot.press("c")
        await pilot.pause()
        assert "[confirmed]" in screen_text(app)
        await pilot.press("j", "c")
        await pilot.pause()
        assert isinstance(app.screen, ReplaceScreen)
        await pilot.press("n")  # keep the first answer
        await pilot.pause()
        assert screen.verdicts == {POOL.id: "confirmed"}
        assert live_rows(app) == [("confirm", POOL.fault, POOL.service)]
        await pilot.press("c", "y")  # now replace it
        await pilot.pause()
        assert screen.verdicts == {CPU.id: "confirmed"}
        assert live_rows(app) == [("confirm", CPU.fault, CPU.service)]
        text = screen_text(app)
        assert text.count("[confirmed]") == 1
        await pilot.press("u")
        await pilot.pause()
        assert screen.verdicts == {} and live_rows(app) == []
        assert "Undone: confirm cpu_saturation@checkout" in notices(app)
        assert "[confirmed]" not in screen_text(app)
        await pilot.press("u")
        await pilot.pause()
        assert "No verdict to undo" in notices(app)


async def test_without_a_memory_the_same_rules_hold_and_rows_say_not_saved(tmp_path, bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.investigation
        await pilot.press("c", "j", "c")
        await pilot.pause()
        assert isinstance(app.screen, ReplaceScreen)
        await pilot.press("y")
        await pilot.pause()
        assert screen.verdicts == {CPU.id: "confirmed (not saved)"}
        await pilot.press("u")
        await pilot.pause()
        assert screen.verdicts == {}


async def test_the_id_is_in_the_header_in_full_and_y_copies_it_then_the_query(bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        inv = "inv-2025-09-08T18:13:27Z-checkout-test"
        assert inv in screen_text(app).splitlines()[1]
        await pilot.press("y")
        assert app.clipboard == inv
        await pilot.press("enter")  # the evidence, its first item under the cursor
        await pilot.pause()
        await pilot.press("y")
        assert app.clipboard == 'max by (service) (hikaricp_connections_active{service="payments"})'
        await pilot.press("Y")
        assert "No link to copy" in notices(app)  # no Grafana configured, no link given


async def test_slash_filters_the_focused_list_and_esc_clears_it(bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        hyps = screen.query_one(HypothesisList)
        await pilot.press("slash", *"cpu")
        await pilot.pause()
        assert [h.id for h in hyps.ranked] == [CPU.id]
        assert "filter: cpu" in screen_text(app)
        await pilot.press("enter")  # keep it, back in the list
        assert screen.focused is hyps and [h.id for h in hyps.ranked] == [CPU.id]
        await pilot.press("escape")
        await pilot.pause()
        assert len(hyps.ranked) == 3 and screen.focused is hyps
        # in the evidence pane, / filters its items
        await pilot.press("enter", "slash", *"nothing-like-this")
        await pilot.pause()
        assert screen.query_one(EvidencePane).items == []
        await pilot.press("escape")
        await pilot.pause()
        assert len(screen.query_one(EvidencePane).items) == 1
        assert screen.focused is screen.query_one(EvidencePane)


async def test_command_mode_completes_and_runs(tmp_path, bundle):
    db = tmp_path / "m.duckdb"
    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=scripted())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        bar = screen.query_one("#chat-input", Input)
        await pilot.press("colon", *"hi", "tab")
        assert bar.value == "history"
        await pilot.press("enter")
        await settle(pilot)
        log = screen.query_one("#chat-log", RichLog)
        shown = " ".join(" ".join(s.text for s in log.lines).split())
        assert ":history" in shown and "inv-2025-09-08T18:13:27Z-checkout-test" in shown
        await pilot.press("colon", *"theme light", "enter")
        await pilot.pause()
        assert app.theme == "compass-light"
        await pilot.press("colon", *"frobnicate", "enter")
        await pilot.pause()
        assert "unknown command :frobnicate" in notices(app)
        runs = screen.run_no
        await pilot.press("colon", *"rerun", "enter")
        await settle(pilot)
        assert screen.run_no == runs + 1
        await pilot.press("colon", *"doc", "tab", "enter")
        await pilot.pause()
        assert screen.query_one("TabbedContent").active == "health"
        # Esc backs out of command mode without running anything
        await pilot.press("colon", *"quit", "escape")
        await pilot.pause()
        assert app.is_running and bar.value == "" and screen.focused is screen.query_one(HypothesisList)


async def test_tab_and_shift_tab_cycle_the_panes_and_j_k_move_in_the_focused_one(bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.investigation
        hyps, evidence, bar = screen.query_one(HypothesisList), screen.query_one(EvidencePane), screen.query_one("#chat-input")
        assert screen.focused is hyps
        await pilot.press("tab")
        assert screen.focused is evidence
        await pilot.press("tab")
        assert screen.focused is bar
        await pilot.press("tab")
        assert screen.focused is hyps
        await pilot.press("shift+tab")
        assert screen.focused is bar
        await pilot.press("escape")
        assert screen.focused is hyps
        await pilot.press("j", "j")
        assert hyps.selected_id == DEPLOY.id
        await pilot.press("g")
        assert hyps.selected_id == POOL.id
        await pilot.press("G")
        assert hyps.selected_id == DEPLOY.id
        await pilot.press("k")
        assert hyps.selected_id == CPU.id
        # the footer follows the focus: verdict keys on the list, copy keys on the evidence
        footer = screen_text(app).splitlines()[-1]
        assert "confirm" in footer and "copy query" not in footer
        await pilot.press("g", "enter")
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "copy query" in footer and "confirm" not in footer


async def test_chat_history_on_up_and_down(bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        bar = app.investigation.query_one("#chat-input", Input)
        await pilot.press("i", *"help", "enter", *"why 1", "enter")
        await pilot.pause()
        await pilot.press("up")
        assert bar.value == "why 1"
        await pilot.press("up")
        assert bar.value == "help"
        await pilot.press("down")
        assert bar.value == "why 1"
        await pilot.press("down")
        assert bar.value == ""


async def test_help_filters_as_you_type_and_esc_closes(bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press(*"undo")
        await pilot.pause()
        text = screen_text(app)
        assert "undo the latest verdict" in text and "export the report" not in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_ctrl_c_twice_quits_once_only_warns(bundle):
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("i")  # even from a text field
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running and "Press Ctrl+C again to quit" in notices(app)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running


async def test_when_nothing_survives_the_screen_says_so_and_shows_the_strongest(bundle):
    disproven = [h.model_copy(update={"status": "disproven", "rank": i, "why_disproven": "ruled out"})
                 for i, h in enumerate(scripted_events()[-1].report.hypotheses, 1)]
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=with_report(hypotheses=disproven))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        hyps = app.investigation.query_one(HypothesisList)
        text = screen_text(app)
        assert "Nothing survived the disproof checks" in text
        assert hyps.none_survived and hyps.selected_id == disproven[0].id  # the strongest, highlighted
        assert "none proven" in notices(app)
        assert NONE_SURVIVED.split(".")[0] in text


async def test_a_cause_only_the_memory_proposed_is_labelled_memory(bundle):
    taught = POOL.model_copy(update={"id": "other:vacuum@payments-db", "fault": "other:vacuum", "service": "payments-db",
                                     "agent": "memory", "status": "inconclusive", "confidence": 0.99, "rank": 1,
                                     "title": "other:vacuum on payments-db (taught by an engineer)"})
    events = scripted_events()
    report = events[-1].report
    hyps = [taught] + [h.model_copy(update={"rank": h.rank + 1}) for h in report.hypotheses]

    async def investigate(request, deps):
        for event in events[:-1]:
            yield event
        yield HypothesisAdded(hypothesis=taught, at_s=0.5)
        yield Finished(report=report.model_copy(update={"hypotheses": hyps}))

    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=investigate)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "99% ? inconclusive [memory]" in text
        await pilot.press("enter")
        await pilot.pause()
        assert "proposed by the memory alone" in screen_text(app)


async def test_the_correction_offers_every_service_of_the_telemetry_most_suspect_first(bundle):
    services = ["api-gateway", "checkout", "frontend", "payments", "payments-db", "search"]
    app = build_app(parse("--bundle", str(bundle), "--no-store"), investigate=with_report(services=services))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        prompt = app.screen
        assert isinstance(prompt, ActualScreen)
        # the hypotheses' services by confidence, the alerting service, then the rest
        assert prompt.services == ["payments", "checkout", "api-gateway", "frontend", "payments-db", "search"]
        await pilot.press(*"cpu_saturation@fr", "tab")
        assert prompt.query_one("#cause", Input).value == "cpu_saturation@frontend"


def test_the_engine_suspects_rank_the_services_when_the_report_has_them():
    from types import SimpleNamespace

    from compass_tui.tui.verdicts import ranked_services

    report = SimpleNamespace(suspects=[{"service": "b", "score": 0.2}, {"service": "c", "score": 0.9}],
                             services=["a", "b", "c", "d"])
    assert ranked_services(report, [POOL], "checkout") == ["c", "b", "payments", "checkout", "a", "d"]


async def test_the_timer_never_runs_backwards_and_the_wait_is_recorded(tmp_path, bundle):
    import asyncio

    from compass_tui.store import Store

    db = tmp_path / "m.duckdb"
    seen: list[float] = []

    async def slow(request, deps):
        for event in scripted_events():
            if isinstance(event, Finished):
                await asyncio.sleep(0.6)  # the engine says 0.7 s; the engineer watched longer
            yield event

    app = build_app(parse("--bundle", str(bundle), "--store", str(db)), investigate=slow)
    async with app.run_test(size=(80, 24)) as pilot:
        header = app.investigation.query_one(IncidentHeader)
        for _ in range(40):
            await pilot.pause(0.05)
            seen.append(header.elapsed)
            if header.finished:
                break
        await settle(pilot)
        assert header.finished
        assert header.elapsed >= max(seen) and header.elapsed >= 0.6
        assert f"done {header.elapsed:.1f}s" in widget_text(header)
        waited = app.investigation.waited_s
        assert waited is not None and 0 < waited <= header.elapsed + 5
    with Store.open(db, read_only=True) as s:
        assert s.stats()["windows"]["7d"]["waited_s"]["n"] == 1

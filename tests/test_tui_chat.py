"""The chat's command language, without a terminal: parsing and the answers it gives."""

from __future__ import annotations

import asyncio

import numpy as np
from rich.console import Console
from test_tui_support import scripted_events

from compass_tui.models import Finished
from compass_tui.telemetry.backend import MetricResult, Series
from compass_tui.tui import chat


def plain(renderable) -> str:
    console = Console(width=300, record=True, file=__import__("io").StringIO())
    console.print(renderable)
    return console.export_text()


def hypotheses():
    report = next(e for e in scripted_events() if isinstance(e, Finished)).report
    return report.hypotheses


def test_parse_recognises_each_verb():
    assert chat.parse("why not bad_deploy@checkout") == chat.Command("why not", "bad_deploy@checkout")
    assert chat.parse("WHY 2") == chat.Command("why", "2")
    assert chat.parse("promql up{job='x'}") == chat.Command("promql", "up{job='x'}")
    assert chat.parse("rerun") == chat.Command("rerun", "")
    assert chat.parse("whyever") == chat.Command("unknown", "whyever")


def test_why_by_position_and_by_cause():
    hs = hypotheses()
    by_n = plain(chat.answer_why(hs, "1"))
    assert "db_connection_pool_exhaustion@payments" in by_n and "hikaricp_connections_active" in by_n
    assert plain(chat.answer_why(hs, "bad_deploy@checkout")).count("bad_deploy@checkout") >= 1
    assert "no hypothesis '9'" in plain(chat.answer_why(hs, "9"))


def test_why_not_distinguishes_disproven_ranked_and_never_proposed():
    hs = hypotheses()
    assert "is disproven: no checkout deploy before the onset" in plain(chat.answer_why_not(hs, "bad_deploy@checkout"))
    assert "is not ruled out: #2" in plain(chat.answer_why_not(hs, "cpu_saturation@checkout"))
    assert "never proposed" in plain(chat.answer_why_not(hs, "disk_full@payments"))


def test_show_lists_what_moved_on_a_service():
    hs = hypotheses()
    text = plain(chat.answer_show(hs, "payments"))
    assert "db_connection_pool_exhaustion" in text and "moved:" in text
    assert "nothing the investigation looked at moved on ledger" in plain(chat.answer_show(hs, "ledger"))


def test_metric_summary_names_each_series():
    result = MetricResult(
        query="up", source="bundle:x", series=[Series({"__name__": "up", "job": "a"}, np.array([1.0, 2.0]), np.array([1.0, 0.0]))]
    )
    text = plain(chat.summarize_metric(result))
    assert "1 series" in text and 'up{job="a"}' in text and "last 0" in text and "max 1" in text


def test_query_without_backend_says_why():
    text = plain(asyncio.run(chat.run_query(None, None, "promql", "up")))
    assert "no backend" in text


def test_frequent_events_merge_in_the_queue_but_nothing_else_does():
    from compass_tui.models import AgentCost, CostSpent, PhaseChanged, Progress
    from compass_tui.tui.messages import EngineEvent

    tick = lambda agent: EngineEvent(CostSpent(agent=agent, cost=AgentCost()), run=1)  # noqa: E731
    assert tick("database").can_replace(tick("database"))
    assert not tick("database").can_replace(tick("network"))
    progress = EngineEvent(Progress(message="a", at_s=0), run=1)
    assert progress.can_replace(EngineEvent(Progress(message="b", at_s=0), run=1))
    assert not progress.can_replace(EngineEvent(Progress(message="b", at_s=0), run=2))
    phase = EngineEvent(PhaseChanged(phase="act", at_s=0), run=1)
    assert not phase.can_replace(EngineEvent(PhaseChanged(phase="orient", at_s=0), run=1))

"""The engine end to end on simulated bundles: events stream in order, the culprit is found,
the report follows the compass-investigation/1 contract, evidence cites queries that ran."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from compass_tui.engine import EngineDeps, investigate, run_to_report
from compass_tui.engine.request import request_from_bundle_meta
from compass_tui.models import Finished, HypothesisAdded, PhaseChanged, QueryRan
from compass_tui.sim import FAULTS
from compass_tui.telemetry.bundle import open_bundle


def _run(path):
    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    return backend, req


def _truth(path):
    return json.loads((path / "truth.json").read_text())["culprit"]


@pytest.mark.parametrize("fault", FAULTS)
def test_finds_culprit_in_top_three(sim_bundle_factory, fault):
    # The clean scenario: how the engine copes with the realism knobs is measured in benchmarks/accuracy.py.
    path = sim_bundle_factory(fault, 11, services=12, realism="off")
    backend, req = _run(path)
    report = asyncio.run(run_to_report(req, EngineDeps(backend=backend)))
    truth = _truth(path)
    top = [(h.fault, h.service) for h in report.hypotheses[:3]]
    assert (truth["fault"], truth["service"]) in top, f"truth {truth} not in top 3: {top}"


def test_events_stream_in_order_and_cite_real_queries(sim_bundle_factory):
    path = sim_bundle_factory("db_connection_pool_exhaustion", 3, services=10)
    backend, req = _run(path)

    async def collect():
        return [ev async for ev in investigate(req, EngineDeps(backend=backend))]

    events = asyncio.run(collect())
    assert isinstance(events[0], PhaseChanged) and events[0].phase == "observe"
    assert isinstance(events[-1], Finished)
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases == ["observe", "orient", "act", "decide"]
    first_added = next(i for i, e in enumerate(events) if isinstance(e, HypothesisAdded))
    assert first_added < len(events) - 1
    ran = {e.query for e in events if isinstance(e, QueryRan)}
    report = events[-1].report
    assert report.hypotheses, "no hypotheses"
    for h in report.hypotheses[:3]:
        for ev in h.evidence:
            if ev.kind in ("metric", "log"):
                assert ev.query in ran, f"evidence cites a query that never ran: {ev.query}"
            assert ev.source


def test_report_json_contract(sim_bundle_factory):
    path = sim_bundle_factory("bad_deploy", 5, services=8)
    out = subprocess.run([sys.executable, "-m", "compass_tui.cli", "investigate", "--bundle", str(path), "--json", "--no-store"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["format"] == "compass-investigation/1"
    for key in ("investigation_id", "incident", "hypotheses", "timings", "cost", "degraded"):
        assert key in rep
    assert set(rep["incident"]) >= {"title", "service", "started_at"}
    ranks = [h["rank"] for h in rep["hypotheses"]]
    assert ranks == list(range(1, len(ranks) + 1))
    statuses = [h["status"] for h in rep["hypotheses"]]
    assert set(statuses) <= {"supported", "inconclusive", "disproven"}
    # disproven ones come after every other
    if "disproven" in statuses:
        first_dis = statuses.index("disproven")
        assert all(s == "disproven" for s in statuses[first_dis:])
    h = rep["hypotheses"][0]
    assert set(h) >= {"rank", "fault", "service", "title", "confidence", "status", "evidence", "disproof"}
    assert 0.0 <= h["confidence"] <= 1.0
    for e in h["evidence"]:
        assert set(e) >= {"kind", "summary", "supports", "source", "query"}
    for d in h["disproof"]:
        assert d["strategy"] and d["result"] in ("survived", "failed", "skipped")
    assert rep["timings"]["first_hypothesis_s"] is not None
    assert rep["cost"]["usd"] == 0.0


def test_events_mode_streams_json_lines(sim_bundle_factory):
    path = sim_bundle_factory("cache_failure", 2, services=8)
    out = subprocess.run([sys.executable, "-m", "compass_tui.cli", "investigate", "--bundle", str(path), "--events", "--no-store"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kinds = [json.loads(line)["kind"] for line in out.stdout.splitlines()]
    assert kinds[0] == "phase" and kinds[-1] == "finished"
    assert "query" in kinds and "hypothesis_added" in kinds


def test_unreadable_bundle_is_one_line_error_exit_2(tmp_path):
    bad = tmp_path / "nope.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    out = subprocess.run([sys.executable, "-m", "compass_tui.cli", "investigate", "--bundle", str(bad), "--json", "--no-store"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.tar.gz" in lines[0]


def test_missing_optional_signals_degrade_not_crash(sim_bundle_factory, tmp_path):
    import shutil

    path = sim_bundle_factory("memory_leak", 4, services=8)
    stripped = tmp_path / "stripped"
    shutil.copytree(path, stripped)
    for name in ("logs.json", "traces.json", "annotations.json"):
        (stripped / name).unlink(missing_ok=True)
    backend, req = _run(stripped)
    report = asyncio.run(run_to_report(req, EngineDeps(backend=backend)))
    signals = {d.signal for d in report.degraded}
    assert {"logs", "traces"} <= signals, signals
    assert report.hypotheses


def test_budget_caps_queries_and_says_so(sim_bundle_factory):
    from compass_tui.engine import Budget

    path = sim_bundle_factory("cpu_saturation", 6, services=10)
    backend, req = _run(path)
    report = asyncio.run(run_to_report(req, EngineDeps(backend=backend, budget=Budget(max_queries=5))))
    total = sum(c.queries for c in report.cost.by_agent.values())
    assert total <= 5
    assert any(d.signal == "budget" for d in report.degraded)

"""The disproof checks say what they decided: a check's verdict and its sentence agree,
competing explanations never rule each other out in a circle, and a cause only the memory
proposed is never `supported`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from compass_tui.engine import EngineDeps, run_to_report
from compass_tui.engine.context import Candidate
from compass_tui.engine import disproof
from compass_tui.engine.disproof import _magnitude, _temporal, break_cycles, status_of, to_hypothesis
from compass_tui.engine.faults.base import Rule
from compass_tui.engine.request import request_from_bundle_meta
from compass_tui.sim import FAULTS
from compass_tui.telemetry.bundle import open_bundle

# Words that, in a check that passed, would say the opposite (and the reverse for failures).
SAYS_FAILED = re.compile(
    r"after the symptom|cannot have caused|stayed within|did not move|not on one call path|is not downstream|"
    r"not an external dependency|came first|failed first|started first|upstream rose first or together|began later|"
    r"its pool, not the database|the deploy, not the config|already there before",
)
SAYS_SURVIVED = re.compile(r"itself is not slow|are its own|moved well beyond|no service upstream of it rose first")
SINGLE_VALUED = ("temporal_precedence", "scope", "magnitude")


def _ctx(onset: float = 10_000.0, tol: float = 180.0, step: float = 30.0) -> SimpleNamespace:
    return SimpleNamespace(onset=onset, tol=tol, grid=SimpleNamespace(step=step), suspects=[])


def assert_agrees(strategy: str, result: str, detail: str) -> None:
    """The sentence of one check must not contradict its verdict (what it quotes of another
    hypothesis's checks, in parentheses, is that hypothesis's, not this one's)."""
    detail = re.sub(r"\([^()]*\)", "", detail)
    if result == "survived":
        assert not SAYS_FAILED.search(detail), f"survived {strategy} but says: {detail}"
        if strategy == "temporal_precedence":
            assert "after" not in detail, f"survived temporal_precedence but says: {detail}"
    elif result == "failed":
        assert not SAYS_SURVIVED.search(detail), f"failed {strategy} but says: {detail}"
        if strategy == "temporal_precedence":
            assert "after" in detail or "already there before" in detail, detail


@pytest.mark.parametrize("lead", [600.0, 120.0, 0.0, -45.0, -120.0, -179.0, -181.0, -900.0])
def test_temporal_precedence_says_what_it_decided(lead: float) -> None:
    ctx = _ctx()
    c = Candidate("cpu_saturation", "api", "runtime", 0.8, "api is CPU bound", cause_onset=ctx.onset - lead)
    _temporal(ctx, c)
    [check] = c.checks
    assert check.result == ("survived" if lead >= -ctx.tol else "failed")
    assert_agrees(check.strategy, check.result, check.detail)
    if check.result == "survived" and lead < 0:
        assert "together" in check.detail


@pytest.mark.parametrize("lead_min,status", [(5, "supported"), (20, "supported"), (95, "inconclusive")])
def test_an_acute_cause_that_sat_there_for_an_hour_and_a_half_is_not_shown_as_supported(lead_min: int, status: str) -> None:
    ctx = _ctx()
    c = Candidate("cpu_saturation", "api", "runtime", 0.6, "api is CPU bound", cause_onset=ctx.onset - 60 * lead_min)
    _temporal(ctx, c)
    assert [d.result for d in c.checks] == ["survived"] and status_of(c) == status


@pytest.mark.parametrize("strength", [0.2, 0.4, 0.8])
def test_magnitude_says_what_it_decided(strength: float) -> None:
    c = Candidate("cpu_saturation", "api", "runtime", strength, "api is CPU bound", cause_onset=0.0)
    _magnitude(_ctx(), c)
    [check] = c.checks
    assert_agrees(check.strategy, check.result, check.detail)


@pytest.mark.parametrize("fault", FAULTS)
def test_every_check_of_a_real_investigation_agrees_with_its_verdict(sim_bundle_factory, fault: str) -> None:
    path = sim_bundle_factory(fault, 11, services=12)
    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    report = asyncio.run(run_to_report(req, EngineDeps(backend=backend)))
    assert report.hypotheses
    for h in report.hypotheses:
        for d in h.disproof:
            assert_agrees(d.strategy, d.result, d.detail)
        for strategy in SINGLE_VALUED:
            results = {d.result for d in h.disproof if d.strategy == strategy}
            assert not {"survived", "failed"} <= results, f"{h.id}: {strategy} both survived and failed"
        if h.status == "supported":
            assert not any(d.result == "failed" for d in h.disproof)
            assert any(e.kind != "memory" for e in h.evidence), f"{h.id} supported by memory alone"


def _beats(loser: Candidate, winner: Candidate, factor: float = 0.5) -> None:
    loser.lose_to(winner, f"{winner.id} explains it", factor)


def test_two_explanations_do_not_rule_each_other_out() -> None:
    pool = Candidate("db_connection_pool_exhaustion", "api", "database", 0.9, "pool", cause_onset=100.0)
    db = Candidate("db_slow_queries", "api-db", "database", 0.8, "db", cause_onset=130.0)
    _beats(pool, db, 0.35)
    _beats(db, pool, 0.4)
    break_cycles([pool, db])
    assert status_of(pool) != "disproven"  # it began first: it stands
    assert pool.factor == pytest.approx(1.0)
    assert status_of(db) == "disproven"
    assert db.why_not and "api" in db.why_not
    [kept] = [d for d in pool.checks if d.strategy == "competing_explanation"]
    assert kept.result == "survived" and "began first" in kept.detail
    assert_agrees(kept.strategy, kept.result, kept.detail)


def test_a_longer_cycle_is_broken_and_a_chain_is_left_alone() -> None:
    a = Candidate("cache_failure", "redis", "cache", 0.7, "a", cause_onset=50.0)
    b = Candidate("db_slow_queries", "db", "database", 0.9, "b", cause_onset=60.0)
    c = Candidate("cpu_saturation", "api", "runtime", 0.8, "c", cause_onset=70.0)
    _beats(a, b), _beats(b, c), _beats(c, a)
    break_cycles([a, b, c])
    assert [status_of(x) for x in (a, b, c)] == ["supported", "disproven", "disproven"]

    x = Candidate("cache_failure", "redis", "cache", 0.7, "x", cause_onset=50.0)
    y = Candidate("db_slow_queries", "db", "database", 0.9, "y", cause_onset=40.0)
    z = Candidate("db_connection_pool_exhaustion", "api", "database", 0.8, "z", cause_onset=60.0)
    _beats(y, x), _beats(z, y)  # z blames y, y blames x: x explains everything
    break_cycles([x, y, z])
    assert [status_of(v) for v in (x, y, z)] == ["supported", "disproven", "disproven"]


def test_the_registry_rules_cannot_rule_each_other_out_in_a_cycle(monkeypatch) -> None:
    """Two faults' own rules that each blame the other, run the way the engine runs every
    competing rule: the one that began first survives, with a check that says why."""
    def blames(loser: str, winner: str):
        def run(ctx, cands, by_fault) -> None:
            for c in by_fault.get(loser, []):
                for w in by_fault.get(winner, []):
                    c.lose_to(w, f"{w.id} explains it", 0.5)
        return run

    rules = [Rule(10, blames("db_slow_queries", "db_connection_pool_exhaustion")),
             Rule(20, blames("db_connection_pool_exhaustion", "db_slow_queries"))]
    monkeypatch.setattr(disproof, "competing_rules", lambda: rules)
    pool = Candidate("db_connection_pool_exhaustion", "api", "database", 0.9, "pool", cause_onset=100.0)
    db = Candidate("db_slow_queries", "api-db", "database", 0.8, "db", cause_onset=40.0)
    disproof._competing(_ctx(), [pool, db])
    assert status_of(db) == "supported" and status_of(pool) == "disproven"
    assert any(d.result == "survived" and "began first" in d.detail for d in db.checks)


def test_a_cause_only_the_memory_proposed_is_never_supported() -> None:
    c = Candidate("other:autovacuum", "payments-db", "memory", 0.55, "taught", None)
    _temporal(_ctx(), c)
    _magnitude(_ctx(), c)
    assert [d.result for d in c.checks] == ["skipped", "skipped"]
    assert "memory" in c.checks[1].detail
    h = to_hypothesis(c, memory_note="seen once, usually this", adjust=1.0)
    assert h.status == "inconclusive" and h.agent == "memory"


def test_memory_raises_a_cause_the_data_measured_rather_than_replacing_it(sim_bundle_factory, tmp_path: Path) -> None:
    from compass_tui.engine import signature_of
    from compass_tui.store import Store

    path = sim_bundle_factory("db_connection_pool_exhaustion", 3, services=10)
    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    store = Store.open(tmp_path / "m.duckdb")
    first = asyncio.run(run_to_report(req, EngineDeps(backend=backend, memory=store.advisor())))
    store.record_investigation(first, signature_of(first), req)
    # The engineer names the second hypothesis (one the agents measured) and a cause no agent can see.
    from compass_tui.store import CATALOG_FAULTS

    measured = next(h for h in first.hypotheses[1:] if h.fault in CATALOG_FAULTS and h.fault != "unexplained")
    store.feedback(first.investigation_id, "actual", measured.fault, measured.service)
    again = asyncio.run(run_to_report(req, EngineDeps(backend=open_bundle(path), memory=store.advisor())))
    h = next(x for x in again.hypotheses if x.id == measured.id)
    assert h.agent != "memory", "the memory's proposal replaced the hypothesis the data measured"
    assert h.memory_adjust > 0
    assert again.hypotheses[0].id == measured.id

    store.feedback(first.investigation_id, "actual", "other:autovacuum-storm", measured.service, replace=True)
    third = asyncio.run(run_to_report(req, EngineDeps(backend=open_bundle(path), memory=store.advisor())))
    taught = next(x for x in third.hypotheses if x.fault == "other:autovacuum-storm")
    assert taught.agent == "memory" and taught.status != "supported"
    assert third.hypotheses[0].id == taught.id  # still ranked first: what the engineer taught
    store.close()


def test_many_cpus_rising_in_one_step_share_a_cause_and_a_surge_that_came_first_explains_them() -> None:
    from compass_tui.engine.faults.cpu_saturation import shared_cause

    cpus = [Candidate("cpu_saturation", f"db-{i}", "infrastructure", 0.8, "cpu", cause_onset=1000.0 + 10 * i) for i in range(3)]
    surge = Candidate("traffic_surge", "edge", "application", 0.7, "surge", cause_onset=990.0)
    alone = Candidate("cpu_saturation", "api", "infrastructure", 0.8, "cpu", cause_onset=5000.0)
    cands = cpus + [surge, alone]
    shared_cause(_ctx(), cands, {"cpu_saturation": cpus + [alone], "traffic_surge": [surge]})
    assert all(status_of(c) == "disproven" for c in cpus)
    assert all(c.beaten and c.beaten[0][0] is surge for c in cpus)
    assert status_of(alone) == "supported" and alone.factor == 1.0  # one CPU on its own is its own
    for c in cpus:
        for d in c.checks:
            assert_agrees(d.strategy, d.result, d.detail)

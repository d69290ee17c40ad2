"""Each catalog fault's own module, rule by rule, on small hand-built contexts: what supports
it (its detector proposes it, its checks let it stand) and what disproves it (its detector
declines, or a rule fails it). Series are minute steps with a little noise; the symptom
starts at minute 90 and the alert fires at minute 100."""

from __future__ import annotations

import numpy as np
import pytest

from compass_tui.engine import agents
from compass_tui.engine.context import Candidate, Ctx, confidence
from compass_tui.engine.discovery import SigSeries, Stack
from compass_tui.engine.disproof import run_checks, status_of
from compass_tui.engine.faults import REGISTRY, fault_ids, get
from compass_tui.engine.graph import EdgeStats, ServiceGraph
from compass_tui.engine.localise import Moved, Suspect
from compass_tui.engine.origin import origin
from compass_tui.engine.timeseries import Grid
from compass_tui.models import InvestigationRequest
from compass_tui.telemetry.backend import Annotation

STEP = 60.0
N = 121
T0 = 1_700_000_000.0
ONSET_I, ALERT_I = 90, 100
ONSET = T0 + ONSET_I * STEP


def at(i: int) -> float:
    return T0 + i * STEP


def level(base: float, after: float | None = None, from_i: int = ONSET_I, noise: float = 0.02, seed: int = 1) -> np.ndarray:
    """``base`` with a little noise, stepping to ``after`` from index ``from_i``."""
    rng = np.random.default_rng(seed)
    v = base * (1 + noise * rng.standard_normal(N))
    if after is not None:
        v[from_i:] = after * (1 + noise * rng.standard_normal(N - from_i))
    return v


def make_ctx(series: dict[tuple[str, str], np.ndarray], edges=(), symptom="api", affected=None,
             annotations=(), suspects=(), services=None) -> Ctx:
    """A context as the orchestrator would hand the agents: series keyed (signal, key), where
    key is the service, or ``service|sub`` with the sub after the bar."""
    grid = Grid(start=T0, end=T0 + (N - 1) * STEP, step=STEP, alert_at=at(ALERT_I), baseline_end=at(50))
    stack = Stack()
    if services:
        stack.services |= set(services)
    graph = ServiceGraph()
    for a, b in edges:
        graph.add(a, b, "traces")
    req = InvestigationRequest(title="test", service=symptom, started_at=at(ALERT_I), window_start=grid.start, window_end=grid.end)
    ctx = Ctx(request=req, grid=grid, stack=stack, graph=graph, logs=None, annotations=list(annotations),
              source="test", log_source="test", onset=ONSET, symptom_service=symptom,
              affected=dict(affected or {}), suspects=list(suspects))
    for (sig, key), vals in series.items():
        _add_series(ctx, sig, key, vals)
        stack.services.add(key.partition("|")[0])
    return ctx


def found(cands: list[Candidate], fault: str, service: str | None = None) -> Candidate | None:
    return next((c for c in cands if c.fault == fault and (service is None or c.service == service)), None)


def checks(c: Candidate, strategy: str) -> list[str]:
    return [d.result for d in c.checks if d.strategy == strategy]


def all_candidates(ctx: Ctx) -> list[Candidate]:
    out = [c for fn in agents.AGENTS.values() for c in fn(ctx)] + origin(ctx)
    run_checks(ctx, out)
    return out


# ------------------------------------------------------------------ the registry


def test_the_registry_holds_the_fifteen_catalog_faults_in_catalog_order():
    assert fault_ids() == (
        "cpu_saturation", "memory_leak", "db_connection_pool_exhaustion", "db_slow_queries", "bad_deploy",
        "config_change", "external_dependency_failure", "network_degradation", "disk_full", "certificate_expired",
        "dns_failure", "traffic_surge", "cache_failure", "code_defect", "unexplained")
    for f in REGISTRY.values():
        assert f.title and f.detectors, f.id
        assert set(f.detectors) <= set(agents.AGENTS) | {"origin"}, f.id


def test_store_app_and_simulator_read_the_registry():
    from compass_tui.sim import ALL_FAULTS
    from compass_tui.sim.faults import _INJECTORS
    from compass_tui.store import CATALOG_FAULTS, parse_cause
    from compass_tui.tui.verdicts import catalog_faults

    assert tuple(CATALOG_FAULTS) == fault_ids() == tuple(catalog_faults())
    assert ALL_FAULTS == [f for f in fault_ids() if REGISTRY[f].simulated] and set(_INJECTORS) == set(ALL_FAULTS)
    assert parse_cause("code_defect@cart") == ("code_defect", "cart")
    with pytest.raises(ValueError, match="unknown fault"):
        parse_cause("cpu_saturaton@cart")


def test_the_store_imports_without_the_engine():
    import subprocess
    import sys

    code = "import sys, compass_tui.store, compass_tui.tui.verdicts\nprint('numpy' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ infrastructure


def test_cpu_saturation_supported_when_cpu_rises_before_latency():
    ctx = make_ctx({("cpu_util", "api"): level(0.3, 0.97, 86), ("latency_p99", "api"): level(0.2, 1.5)},
                   affected={"api": ONSET})
    c = found(all_candidates(ctx), "cpu_saturation", "api")
    assert c is not None and status_of(c) == "supported"
    assert checks(c, "temporal_precedence") == ["survived"]


def test_cpu_saturation_disproven_when_cpu_rises_after_the_symptom():
    ctx = make_ctx({("cpu_util", "api"): level(0.3, 0.97, 105), ("latency_p99", "api"): level(0.2, 1.5)},
                   affected={"api": ONSET})
    c = found(all_candidates(ctx), "cpu_saturation", "api")
    assert c is None or status_of(c) == "disproven"


def test_a_cpu_rise_whose_latency_the_localisation_saw_move_is_not_read_as_harmless():
    # mean latency from 0.14 s to 0.19 s: short of four spreads of a fifth of its level, but
    # the localisation saw it leave its baseline with the CPU
    def cpu(seen: bool, load: float = 10) -> Candidate:
        ctx = make_ctx({("cpu_cores", "api"): level(0.04, 0.11, 86), ("latency_mean", "api"): level(0.14, 0.19, 87, noise=0.01),
                        ("request_rate", "api"): level(10, load, 86)})
        if seen:
            ctx.suspects = [_suspect(ctx, "api", [_moved(ctx, "latency_mean", "latency", "own", "api", 11, 0.14, 0.19)])]
        return found(all_candidates(ctx), "cpu_saturation", "api")
    quiet, seen = cpu(False), cpu(True)
    assert any("did not rise with its CPU" in e.summary for e in quiet.evidence)
    assert not any("did not rise" in e.summary for e in seen.evidence) and seen.strength > quiet.strength
    # a CPU that follows the traffic: the load explains the latency as well
    loaded = cpu(True, load=28)
    assert any("did not rise with its CPU" in e.summary for e in loaded.evidence)


def test_a_cpu_grown_far_past_its_traffic_does_not_follow_the_load():
    # 2.3 times the requests cannot burn 70 times the CPU: something else does
    def cpu(after: float) -> Candidate:
        ctx = make_ctx({("cpu_cores", "carts"): level(0.1, after, 86), ("request_rate", "carts"): level(4.4, 10.1, 86)},
                       affected={"carts": ONSET})
        return found(all_candidates(ctx), "cpu_saturation", "carts")
    assert any("the CPU follows the load" in e.summary for e in cpu(0.3).evidence)
    hogged = cpu(7.0)
    assert not any("follows the load" in e.summary for e in hogged.evidence) and status_of(hogged) == "supported"


def test_a_database_cpu_rise_matters_only_where_one_of_its_callers_slowed():
    # a database reports no latency of its own and no CPU limit: 1.9 to 3.3 cores
    def cpu(caller_slowed: bool) -> Candidate:
        ctx = make_ctx({("cpu_cores", "orders-db"): level(1.9, 3.3, 80), ("latency_p99", "api"): level(0.2, 2.0 if caller_slowed else 0.2)},
                       edges=[("api", "orders-db")], affected={"api": at(82)} if caller_slowed else {})
        return found(all_candidates(ctx), "cpu_saturation", "orders-db")
    quiet, felt = cpu(False), cpu(True)
    assert any("nothing shows the CPU mattered" in e.summary and not e.supports for e in quiet.evidence)
    assert not any("nothing shows" in e.summary for e in felt.evidence) and felt.strength > quiet.strength


def test_cpu_saturation_ignores_a_rise_of_almost_nothing():
    ctx = make_ctx({("cpu_cores", "api"): level(0.001, 0.02, 86)}, affected={"api": ONSET})
    assert found(all_candidates(ctx), "cpu_saturation") is None


def test_memory_leak_supported_by_steady_growth():
    mem = np.clip(np.linspace(0.4, 0.98, N), 0, 1) + 0.005 * np.random.default_rng(3).standard_normal(N)
    ctx = make_ctx({("mem_util", "api"): mem, ("latency_p99", "api"): level(0.2, 1.0)}, affected={"api": ONSET})
    c = found(all_candidates(ctx), "memory_leak", "api")
    assert c is not None and c.strength >= 0.5 and c.facts.growth > 0.15


def test_memory_leak_declines_a_single_step():
    ctx = make_ctx({("mem_util", "api"): level(0.4, 0.8, 60, noise=0.005)}, affected={"api": ONSET})
    assert found(all_candidates(ctx), "memory_leak") is None


def _restarted_at(i: int) -> np.ndarray:
    r = np.zeros(N)
    r[i] = 1.0
    return r


def test_memory_that_climbs_after_a_restart_and_slows_is_a_warm_up_not_a_leak():
    # flat at 45 % for an hour, a restart 25 min before the onset, then the fresh process warms
    # its caches up to 60 %, fast at first, and keeps creeping up
    k = np.arange(N) - 65.0
    mem = np.where(k < 0, 0.45, 0.6 - 0.35 * np.exp(-np.maximum(k, 0) / 6.0) + 0.0015 * np.maximum(k, 0))
    mem = mem + 0.004 * np.random.default_rng(4).standard_normal(N)
    series = {("mem_util", "fleet"): mem, ("restarts", "fleet"): _restarted_at(65), ("latency_p99", "fleet"): level(0.2, 1.0)}
    ctx = make_ctx(series, affected={"fleet": ONSET})
    assert found(all_candidates(ctx), "memory_leak") is None


def test_a_restart_that_memory_grew_into_supports_the_leak():
    k = np.arange(N) - 65.0
    mem = np.where(k < 0, 0.5 + 0.45 * (np.arange(N) / 65.0), 0.3 + 0.012 * np.maximum(k, 0))
    mem = mem + 0.004 * np.random.default_rng(4).standard_normal(N)
    series = {("mem_util", "fleet"): mem, ("restarts", "fleet"): _restarted_at(65), ("latency_p99", "fleet"): level(0.2, 1.0)}
    ctx = make_ctx(series, affected={"fleet": ONSET})
    c = found(all_candidates(ctx), "memory_leak", "fleet")
    assert c is not None and any("OOM kill or crash" in e.summary and e.supports for e in c.evidence)


@pytest.mark.parametrize("shape,leak", [
    ("wander", False),  # high and flat, wandering a few points of the limit over the hour
    ("creep", True),  # high and creeping up steadily: little room left, so a leak
])
def test_memory_near_its_limit_is_a_leak_only_when_it_grows_steadily(shape, leak):
    rng = np.random.default_rng(6)
    i = np.arange(N)
    if shape == "wander":
        mem = 0.88 + 0.03 * np.sin(i / 16.0 + 2) + 0.006 * rng.standard_normal(N)
    else:
        mem = 0.8 + 0.18 * i / N + 0.004 * rng.standard_normal(N)
    ctx = make_ctx({("mem_util", "store"): mem, ("latency_p99", "store"): level(0.2, 1.0)}, affected={"store": ONSET})
    assert (found(all_candidates(ctx), "memory_leak", "store") is not None) == leak


def test_disk_full_supported_when_free_space_runs_out():
    ctx = make_ctx({("disk_free", "api"): np.clip(np.linspace(0.4, -0.1, N), 0.001, 1)}, affected={"api": ONSET})
    c = found(all_candidates(ctx), "disk_full", "api")
    assert c is not None and c.facts.free is not None and c.facts.free < 0.02 and status_of(c) == "supported"


def test_disk_full_declines_plenty_of_space():
    ctx = make_ctx({("disk_free", "api"): level(0.5)}, affected={"api": ONSET})
    assert found(all_candidates(ctx), "disk_full") is None


# ------------------------------------------------------------------ database


def _db_ctx(db_from: int, pool_from: int = 88, clients=("api",)):
    series = {("pool_util", "api|orders-db"): level(0.3, 1.0, pool_from, noise=0.01),
              ("db_tx_duration", "orders-db"): level(0.05, 5.0, db_from)}
    for cl in clients:
        series[("latency_p99", cl)] = level(0.2, 2.0)
    edges = [(cl, "orders-db") for cl in clients]
    return make_ctx(series, edges=edges, affected={cl: ONSET for cl in clients})


def test_pool_exhaustion_supported_when_the_database_is_not_slow():
    ctx = make_ctx({("pool_util", "api|orders-db"): level(0.3, 1.0, 88, noise=0.01), ("latency_p99", "api"): level(0.2, 2.0)},
                   edges=[("api", "orders-db")], affected={"api": ONSET})
    c = found(all_candidates(ctx), "db_connection_pool_exhaustion", "api")
    assert c is not None and c.facts.pool == "orders-db" and c.facts.ramp_onset is not None
    assert checks(c, "competing_explanation") == ["survived"] and status_of(c) == "supported"


@pytest.mark.parametrize("metrics_until,from_lines", [(80, True), (None, False)])
def test_pool_timeouts_in_the_logs_speak_for_a_client_whose_pool_metrics_stopped_before_the_trouble(metrics_until, from_lines):
    from compass_tui.engine.logfacts import analyse
    from compass_tui.telemetry.backend import LogLine

    util = level(0.1, noise=0.05)
    if metrics_until is not None:
        util[metrics_until:] = np.nan  # the exporter went with its pod
    ctx = make_ctx({("pool_util", "api|orders-db"): util, ("latency_p99", "api"): level(0.2, 2.0)},
                   edges=[("api", "orders-db")], affected={"api": ONSET})
    line = "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms."
    lines = [LogLine(t=at(91) + i, t_ns=int((at(91) + i) * 1e9), labels={"app": "api"}, line=line) for i in range(40)]
    ctx.logs = analyse(lines, "app", split_at=ONSET, base_span=3000, post_span=1800, known={"api", "orders-db"})
    c = found(all_candidates(ctx), "db_connection_pool_exhaustion", "api")
    assert (c is not None and c.from_lines) == from_lines


def test_pool_exhaustion_disproven_when_the_database_slowed_first():
    c = found(all_candidates(_db_ctx(db_from=80)), "db_connection_pool_exhaustion", "api")
    assert c is not None and "failed" in checks(c, "competing_explanation")
    assert "db_slow_queries on orders-db" in c.why_not


def test_db_slow_queries_supported_when_its_clients_slow_together():
    cands = all_candidates(_db_ctx(db_from=80, clients=("api", "billing")))
    c = found(cands, "db_slow_queries", "orders-db")
    assert c is not None and c.facts.clients == {"api", "billing"} and sorted(c.facts.slowed) == ["api", "billing"]
    assert checks(c, "competing_explanation") == ["survived"]


def _report_query(cpu_from: int, ageing: bool = True) -> list[Candidate]:
    """A report query starts on orders-db 30 s after point 80: the longest transaction's age
    grows with the clock from then (or, not ageing, steps to a plateau at 81)."""
    t = np.array([at(i) for i in range(N)])
    tx = level(0.5, noise=0.02)
    if ageing:
        tx = np.maximum(tx, t - (at(80) + 30))
    else:
        tx[81:] = 40.0
    ctx = make_ctx({("db_tx_duration", "orders-db"): tx, ("cpu_util", "orders-db"): level(0.3, 0.97, cpu_from),
                    ("latency_p99", "api"): level(0.2, 2.0)}, edges=[("api", "orders-db")], affected={"api": ONSET})
    return all_candidates(ctx)


def test_a_long_transaction_dates_the_slowness_from_when_it_began_not_from_its_crossing():
    aged = found(_report_query(cpu_from=81), "db_slow_queries", "orders-db")
    assert aged is not None and abs(aged.cause_onset - (at(80) + 30)) < 5
    plateau = found(_report_query(cpu_from=81, ageing=False), "db_slow_queries", "orders-db")
    assert plateau is not None and plateau.cause_onset == at(81)


def test_the_cpu_of_a_database_whose_long_queries_began_with_it_follows_from_them():
    with_queries = found(_report_query(cpu_from=81), "cpu_saturation", "orders-db")
    assert status_of(with_queries) == "disproven" and "long queries burn the CPU" in with_queries.why_not
    # a CPU that rose ten minutes before the query began is not explained by it
    before = found(_report_query(cpu_from=70), "cpu_saturation", "orders-db")
    assert not any("long queries" in d.detail for d in before.checks)


def test_db_slow_queries_disproven_when_one_client_suffers_and_its_pool_filled_first():
    ctx = _db_ctx(db_from=92, pool_from=85, clients=("api",))
    ctx.graph.add("billing", "orders-db", "traces")  # a second client, healthy
    c = found(all_candidates(ctx), "db_slow_queries", "orders-db")
    assert c is not None and "failed" in checks(c, "competing_explanation")


# ------------------------------------------------------------------ application


def _change_ctx(kind: str, change_i: int, err_from: int = ONSET_I, extra=()):
    ann = [Annotation(time=at(change_i), time_end=None, tags=[kind, "service:api"], text=f"{kind} of api")]
    ann += list(extra)
    return make_ctx({("error_ratio", "api"): level(0.001, 0.2, err_from, noise=0.1)}, annotations=ann,
                    affected={"api": at(err_from)})


@pytest.mark.parametrize("fault,kind", [("bad_deploy", "deploy"), ("config_change", "config")])
def test_a_change_supported_when_its_own_errors_follow_it(fault, kind):
    c = found(all_candidates(_change_ctx(kind, 86)), fault, "api")
    assert c is not None and c.facts.own >= 0.3
    assert checks(c, "magnitude") == ["survived"] and status_of(c) == "supported"


@pytest.mark.parametrize("fault,kind", [("bad_deploy", "deploy"), ("config_change", "config")])
def test_a_change_disproven_when_its_errors_were_there_before_it(fault, kind):
    c = found(all_candidates(_change_ctx(kind, 86, err_from=60)), fault, "api")
    assert c is not None and status_of(c) == "disproven"


@pytest.mark.parametrize("after,moved", [(2.7, True), (1.6, False)])
def test_a_deploy_that_made_its_service_twice_as_slow_is_its_own_trouble(after, moved):
    # p99 from 1.45 s to 2.7 s right after the rollout, no new errors; 10 % more is noise
    ann = [Annotation(time=at(86), time_end=None, tags=["deploy", "service:api"], text="deploy of api")]
    ctx = make_ctx({("latency_p99", "api"): level(1.45, after, 88, noise=0.05), ("error_ratio", "api"): level(0.005, noise=0.1)},
                   annotations=ann, affected={"api": at(88)})
    c = found(all_candidates(ctx), "bad_deploy", "api")
    assert c is not None and checks(c, "magnitude") == (["survived"] if moved else ["failed"])


def test_config_change_disproven_by_a_deploy_at_the_same_time():
    deploy = Annotation(time=at(86), time_end=None, tags=["deploy", "service:api"], text="deploy of api")
    cands = all_candidates(_change_ctx("config", 87, extra=[deploy]))
    c = found(cands, "config_change", "api")
    assert c is not None and "the deploy, not the config" in (c.why_not or "")
    assert status_of(found(cands, "bad_deploy", "api")) == "supported"


def test_traffic_surge_supported_at_the_entry():
    ctx = make_ctx({("request_rate", "web"): level(10, 40, 88), ("request_rate", "api"): level(10, 12),
                    ("latency_p99", "api"): level(0.2, 2.0)}, edges=[("web", "api")], symptom="web",
                   affected={"api": ONSET})
    c = found(all_candidates(ctx), "traffic_surge", "web")
    assert c is not None and c.facts.ups == [] and checks(c, "competing_explanation") == ["survived"]


def test_a_surge_served_with_usual_latency_and_errors_hurt_nothing():
    def surge(latency_after: float) -> Candidate:
        ctx = make_ctx({("request_rate", "shipping"): level(0.3, 1.5, 88), ("latency_p99", "shipping"): level(0.01, latency_after)},
                       symptom="web", affected={"shipping": ONSET} if latency_after > 0.02 else {})
        return found(all_candidates(ctx), "traffic_surge", "shipping")
    absorbed, felt = surge(0.01), surge(0.2)
    assert any("hurt nothing" in e.summary and not e.supports for e in absorbed.evidence)
    assert not any("hurt nothing" in e.summary for e in felt.evidence) and felt.strength > absorbed.strength


def test_traffic_surge_disproven_when_a_service_upstream_rose_first():
    ctx = make_ctx({("request_rate", "web"): level(10, 40, 86), ("request_rate", "api"): level(10, 40, 88)},
                   edges=[("web", "api")], symptom="web", affected={"api": ONSET})
    c = found(all_candidates(ctx), "traffic_surge", "api")
    assert c is not None and c.facts.ups == ["web"] and status_of(c) == "disproven"


def test_traffic_surge_explains_the_cpu_it_saturates():
    ctx = make_ctx({("request_rate", "api"): level(10, 40, 86), ("cpu_util", "api"): level(0.3, 0.97, 87),
                    ("latency_p99", "api"): level(0.2, 2.0)}, edges=[("web", "api")], symptom="api",
                   affected={"api": ONSET})
    cpu = found(all_candidates(ctx), "cpu_saturation", "api")
    assert cpu is not None and any("traffic surge into api came first" in d.detail for d in cpu.checks)


def _surge_over_an_earlier_cpu(web_felt_at: int, to: float = 40) -> Candidate:
    ctx = make_ctx({("request_rate", "web"): level(10, to, 88), ("cpu_util", "api"): level(0.3, 0.97, 80),
                    ("latency_p99", "api"): level(0.2, 2.0, 80), ("latency_p99", "web"): level(0.2, 2.0, web_felt_at)},
                   edges=[("web", "api")], symptom="web", affected={"api": at(80), "web": at(web_felt_at)})
    return found(all_candidates(ctx), "traffic_surge", "web")


def test_a_surge_is_retries_only_when_the_surging_service_was_failing_before_it_rose():
    # api's CPU was saturated first either way; web's clients only had something to retry
    # when web itself was slow before its rate rose
    retried = _surge_over_an_earlier_cpu(84)
    assert status_of(retried) == "disproven" and "retries" in retried.why_not
    new_load = _surge_over_an_earlier_cpu(ONSET_I)
    assert not any("retries" in d.detail for d in new_load.checks)


def test_eight_times_the_usual_traffic_is_more_than_retries_resend():
    # every call tried once and retried three times is four times the traffic, no more
    assert "retries" in (_surge_over_an_earlier_cpu(84).why_not or "")
    surge = _surge_over_an_earlier_cpu(84, to=80)
    assert not any("retries" in d.detail for d in surge.checks) and status_of(surge) != "disproven"


def test_a_rate_that_rose_after_the_service_began_failing_is_retries_with_no_cause_found_below():
    # web was slow from 84; its rate doubled at 88: nothing below explains it, the order does
    ctx = make_ctx({("request_rate", "web"): level(10, 20, 88), ("latency_p99", "web"): level(0.2, 2.0, 84)},
                   symptom="web", affected={"web": at(84)})
    c = found(all_candidates(ctx), "traffic_surge", "web")
    assert status_of(c) == "disproven" and "already failing or slow" in c.why_not
    on_time = make_ctx({("request_rate", "web"): level(10, 20, 88), ("latency_p99", "web"): level(0.2, 2.0, 89)},
                       symptom="web", affected={"web": at(89)})
    assert status_of(found(all_candidates(on_time), "traffic_surge", "web")) == "supported"


def _surge_below(caller_raw: float) -> Candidate:
    """api's traffic doubles at 88; its caller web was failing from 88 (its successes flat,
    its gateway failing with it) and received ``caller_raw`` times its usual requests."""
    ctx = make_ctx({("request_rate", "gw"): level(10), ("request_rate", "web"): level(10, 10 * caller_raw, 88),
                    ("ok_rate", "web"): level(10, 9, 88), ("request_rate", "api"): level(10, 20, 88),
                    ("error_ratio", "web"): level(0.01, 0.3, 88)},
                   edges=[("gw", "web"), ("web", "api")], symptom="gw", affected={"gw": at(88), "web": at(88)})
    return found(all_candidates(ctx), "traffic_surge", "api")


def test_a_surge_below_a_failing_caller_whose_raw_rate_rose_with_it_is_amplified_retries():
    echoed, own = _surge_below(2.0), _surge_below(1.0)
    assert own is not None and echoed is not None and echoed.strength < 0.5 * own.strength
    assert any("amplified retries" in e.summary and not e.supports for e in echoed.evidence)
    assert not any("amplified retries" in e.summary for e in own.evidence)


def test_a_surge_explains_a_database_only_when_more_load_reached_it():
    # web's load quadrupled; the database's only client api kept its usual rate
    def db(api_after: float) -> Candidate:
        ctx = make_ctx({("request_rate", "web"): level(10, 40, 86), ("request_rate", "api"): level(10, api_after, 86),
                        ("db_tx_duration", "orders-db"): level(0.05, 5.0, 87), ("latency_p99", "api"): level(0.2, 2.0)},
                       edges=[("web", "api"), ("web", "search"), ("api", "orders-db")], symptom="web",
                       affected={"api": ONSET, "web": ONSET})
        return found(all_candidates(ctx), "db_slow_queries", "orders-db")
    assert not any("traffic surge" in d.detail for d in db(10).checks)
    assert any("traffic surge into web came first" in d.detail for d in db(40).checks)


def test_a_deploy_below_a_surge_is_what_was_retried_only_once_its_errors_began():
    def surge(api_err_from: int) -> Candidate:
        ann = [Annotation(time=at(80), time_end=None, tags=["deploy", "service:api"], text="deploy of api")]
        ctx = make_ctx({("request_rate", "web"): level(10, 40, 88), ("latency_p99", "web"): level(0.2, 2.0, 88),
                        ("error_ratio", "api"): level(0.001, 0.2, api_err_from, noise=0.1)},
                       edges=[("web", "api")], symptom="web", annotations=ann,
                       affected={"web": at(88), "api": at(api_err_from)})
        return found(all_candidates(ctx), "traffic_surge", "web")
    # deployed at 80, failing from 88 with the surge: the deploy came first, its failures did not
    assert not any("retries" in d.detail for d in surge(88).checks)
    assert "bad_deploy on api came first" in (surge(81).why_not or "")


def test_a_retry_storm_at_the_entry_is_read_by_its_raw_rate_not_its_successes():
    # offered load tripled at the entry; little more of it than before succeeds
    ctx = make_ctx({("request_rate", "web"): level(10, 30, 88), ("ok_rate", "web"): level(10, 17, 88),
                    ("request_rate", "api"): level(10, 12), ("latency_p99", "api"): level(0.2, 2.0)},
                   edges=[("web", "api")], symptom="web", affected={"api": ONSET})
    c = found(all_candidates(ctx), "traffic_surge", "web")
    assert c is not None and c.facts.signal == "request_rate" and "3.0x" in c.title


def test_a_burst_over_before_the_alert_does_not_explain_the_trouble_that_outlasted_it():
    held = make_ctx({("request_rate", "web"): level(10, 40, 88)}, symptom="web")
    burst = level(10, 40, 88)
    burst[92:] = level(10)[92:]  # back to its usual load four minutes later, eight before the alert
    over = make_ctx({("request_rate", "web"): burst}, symptom="web")
    c_held = found(all_candidates(held), "traffic_surge", "web")
    c_over = found(all_candidates(over), "traffic_surge", "web")
    assert c_held is not None and c_over is not None
    assert c_over.strength < 0.6 * c_held.strength
    assert any("before the alert" in e.summary and not e.supports for e in c_over.evidence)


def test_a_surge_through_another_door_is_in_scope_when_it_saturates_what_both_call():
    series = {("request_rate", "partners"): level(10, 40, 88), ("latency_p99", "db"): level(0.02, 0.5, 89),
              ("latency_p99", "web"): level(0.2, 2.0, 90)}
    shared = make_ctx(series, edges=[("partners", "db"), ("web", "db")], symptom="web", affected={"db": at(89), "web": ONSET})
    apart = make_ctx(series, edges=[("partners", "ledger"), ("web", "db")], symptom="web", affected={"db": at(89), "web": ONSET},
                     services={"ledger"})
    assert checks(found(all_candidates(shared), "traffic_surge", "partners"), "scope") == ["survived"]
    assert checks(found(all_candidates(apart), "traffic_surge", "partners"), "scope") == ["failed"]


# ------------------------------------------------------------------ network and dependencies


def test_network_degradation_supported_by_retransmits():
    ctx = make_ctx({("retrans_ratio", "api"): level(0.001, 0.05, 87)}, affected={"api": ONSET})
    c = found(all_candidates(ctx), "network_degradation", "api")
    assert c is not None and c.agent == "network" and checks(c, "temporal_precedence") == ["survived"]


def test_network_degradation_declines_flat_retransmits():
    ctx = make_ctx({("retrans_ratio", "api"): level(0.001)}, affected={"api": ONSET})
    assert found(all_candidates(ctx), "network_degradation") is None


def _traced_call(extra_s: float, server_mult: float = 1.0) -> Ctx:
    """web calls api; after the onset the client side of each call takes ``extra_s`` longer
    than api's own server span, which takes ``server_mult`` times as long as before."""
    ctx = make_ctx({("latency_p99", "web"): level(0.2, 0.4)}, edges=[("web", "api")], symptom="web", affected={"web": ONSET})
    rng = np.random.default_rng(5)
    server = list(0.05 + 0.002 * rng.standard_normal(40))
    post = [x * server_mult for x in server[20:]]
    ctx.graph.edge_stats[("web", "api")] = EdgeStats(base_client=[x + 0.002 for x in server[:20]], base_server=server[:20],
                                                    post_client=[x + 0.002 + extra_s for x in post], post_server=post,
                                                    base_n=20, post_n=20)
    return ctx


def test_network_degradation_from_traces_alone_when_calls_wait_longer_than_the_callee_works():
    c = found(all_candidates(_traced_call(0.15)), "network_degradation", "api")
    assert c is not None and c.agent == "network" and status_of(c) != "disproven"
    assert any("150 ms more between caller and callee" in e.summary for e in c.evidence)
    # a millisecond more is clock noise, not a delay on the path
    assert found(all_candidates(_traced_call(0.001)), "network_degradation", "api") is None
    # api slowed itself: its callers queue for it, and that is not the path
    assert found(all_candidates(_traced_call(0.15, server_mult=4.0)), "network_degradation", "api") is None


def _add_series(ctx: Ctx, sig: str, key: str, vals: np.ndarray) -> None:
    svc, _, sub = key.partition("|")
    ctx.stack.signals.setdefault(sig, {})[key] = SigSeries(sig, svc, np.asarray(vals, float), f"{sig}{{service=\"{svc}\"}}", sub or None)


def _suspect(ctx: Ctx, svc: str, moved: list[Moved], norm: float = 1.0) -> Suspect:
    return Suspect(service=svc, score=norm, raw=norm, onset=ONSET, moved=moved, norm=norm)


def _moved(ctx: Ctx, signal: str, kind: str, view: str, key: str, z: float, base: float, peak: float) -> Moved:
    return Moved(signal=signal, kind=kind, view=view, z=z, onset=ONSET, series=ctx.series(signal, key), sev=z / 3,
                 baseline=base, peak=peak)


def test_network_degradation_from_the_callers_view_when_the_own_view_stays_flat():
    ctx = make_ctx({("client_latency", "web|api"): level(0.02, 0.8), ("latency_p99", "api"): level(0.02)},
                   edges=[("web", "api")], symptom="web")
    ctx.suspects = [_suspect(ctx, "api", [_moved(ctx, "client_latency", "latency", "callers", "web|api", 40, 0.02, 0.8)])]
    c = found(origin(ctx), "network_degradation", "api")
    assert c is not None and c.facts.callers_z == 40 and c.evidence[-1].supports


def test_network_degradation_not_from_the_callers_view_when_the_service_is_slow_itself():
    ctx = make_ctx({("client_latency", "web|api"): level(0.02, 0.8), ("latency_p99", "api"): level(0.02, 0.8)},
                   edges=[("web", "api")], symptom="web")
    ctx.suspects = [_suspect(ctx, "api", [_moved(ctx, "client_latency", "latency", "callers", "web|api", 40, 0.02, 0.8),
                                          _moved(ctx, "latency_p99", "latency", "own", "api", 40, 0.02, 0.8)])]
    assert found(origin(ctx), "network_degradation") is None


@pytest.mark.parametrize("own_from,cpu_limit_share,network", [(ONSET_I, None, False), (ONSET_I + 8, None, True),
                                                               (ONSET_I + 8, 0.99, False)])
def test_an_own_latency_that_rose_well_after_its_callers_waited_is_the_backlog_of_a_slow_path(own_from, cpu_limit_share, network):
    # web waits 40x longer for api from the onset; api's own latency rose as far, at the same
    # time (slow itself) or 8 min later (the backlog of a path slow first), unless api's CPU
    # was pinned at its limit from the onset (requests queue before its server timer starts)
    series = {("client_latency", "web|api"): level(0.02, 0.8), ("latency_p99", "api"): level(0.02, 0.8, own_from)}
    if cpu_limit_share is not None:
        series[("cpu_util", "api")] = level(0.45, cpu_limit_share)
    ctx = make_ctx(series, edges=[("web", "api")], symptom="web")
    own = _moved(ctx, "latency_p99", "latency", "own", "api", 40, 0.02, 0.8)
    own.onset = at(own_from)
    ctx.suspects = [_suspect(ctx, "api", [_moved(ctx, "client_latency", "latency", "callers", "web|api", 40, 0.02, 0.8), own])]
    c = found(origin(ctx), "network_degradation", "api")
    assert (c is not None) == network
    if network:
        assert any("flat until" in e.summary and "8 min after its callers" in e.summary and e.supports for e in c.evidence)


@pytest.mark.parametrize("own_peak,network", [(0.62, False), (0.46, True)])
def test_a_service_whose_own_time_grew_by_half_its_callers_wait_is_slow_itself(own_peak, network):
    # callers waited 0.13 s more; a noisy own p99 (7 sd against the callers' 47) grew by 0.18 s,
    # or by 0.02 s
    ctx = make_ctx({("client_latency", "web|api"): level(0.056, 0.189), ("latency_p99", "api"): level(0.44, own_peak)},
                   edges=[("web", "api")], symptom="web")
    ctx.suspects = [_suspect(ctx, "api", [_moved(ctx, "client_latency", "latency", "callers", "web|api", 47, 0.056, 0.189),
                                          _moved(ctx, "latency_p99", "latency", "own", "api", 7, 0.44, own_peak)])]
    assert (found(origin(ctx), "network_degradation", "api") is not None) == network


@pytest.mark.parametrize("server_mult,fault", [(16.0, "code_defect"), (1.0, "network_degradation")])
def test_with_no_server_metric_its_traced_server_spans_say_whether_the_wait_was_inside_it(server_mult, fault):
    # api exports no server-side metric; web waits 0.23 s more for it. Traced server spans of
    # api took 16x as long (the time went inside api) or held (it went on the way)
    peak = 0.25
    ctx = make_ctx({("client_latency", "web|api"): level(0.02, peak)}, edges=[("web", "api")], symptom="web")
    rng = np.random.default_rng(5)
    server = list(0.015 + 0.001 * rng.standard_normal(40))
    post = [x * server_mult for x in server[20:]]
    ctx.graph.edge_stats[("web", "api")] = EdgeStats(base_client=[x + 0.005 for x in server[:20]], base_server=server[:20],
                                                    post_client=[peak] * 20, post_server=post, base_n=20, post_n=20)
    ctx.suspects = [_suspect(ctx, "api", [_moved(ctx, "client_latency", "latency", "callers", "web|api", 40, 0.02, peak)])]
    cands = origin(ctx)
    c = found(cands, fault, "api")
    assert c is not None and any("own server spans took" in e.summary and e.supports for e in c.evidence)
    other = "network_degradation" if fault == "code_defect" else "code_defect"
    assert found(cands, other, "api") is None


def test_external_dependency_supported_by_failing_client_calls():
    ctx = make_ctx({("client_error_ratio", "api|stripe-api"): level(0.001, 0.3, 88, noise=0.1),
                    ("request_rate", "api"): level(10)}, symptom="api", affected={"api": ONSET})
    c = found(all_candidates(ctx), "external_dependency_failure", "stripe-api")
    assert c is not None and c.facts.callers == {"api"} and c.facts.kind == "err" and status_of(c) == "supported"


def test_external_dependency_disproven_when_it_reports_its_own_telemetry():
    ctx = make_ctx({("request_rate", "stripe-api"): level(10)})
    c = Candidate("external_dependency_failure", "stripe-api", "runbook", 0.8, "runbook says so", ONSET)
    run_checks(ctx, [c])
    assert "not an external dependency" in (c.why_not or "")


def test_certificate_expired_supported_when_it_expires_at_the_onset():
    ttl = np.maximum(0.0, (at(ONSET_I - 1) - (T0 + STEP * np.arange(N))))
    ctx = make_ctx({("cert_ttl", "api"): ttl}, affected={"api": ONSET})
    c = found(all_candidates(ctx), "certificate_expired", "api")
    assert c is not None and c.facts.expired_at is not None and status_of(c) == "supported"


def test_certificate_expired_disproven_when_name_resolution_failed_first():
    ttl = np.maximum(0.0, (at(ONSET_I - 1) - (T0 + STEP * np.arange(N))))
    ctx = make_ctx({("cert_ttl", "api"): ttl, ("dns_servfail_ratio", "coredns"): level(0.001, 0.5, 85, noise=0.1)},
                   affected={"api": ONSET})
    c = found(all_candidates(ctx), "certificate_expired", "api")
    assert c is not None and "name resolution through coredns failed first" in (c.why_not or "")


def test_dns_failure_supported_by_servfails_and_never_pruned_by_scope():
    ctx = make_ctx({("dns_servfail_ratio", "coredns"): level(0.001, 0.5, 87, noise=0.1), ("latency_p99", "api"): level(0.2, 1.0)},
                   edges=[("web", "api")], symptom="web", affected={"api": ONSET})
    c = found(all_candidates(ctx), "dns_failure", "coredns")
    assert c is not None and checks(c, "scope") == ["skipped"] and status_of(c) == "supported"


def test_dns_failure_declines_normal_responses():
    ctx = make_ctx({("dns_servfail_ratio", "coredns"): level(0.001, noise=0.1)}, affected={"api": ONSET})
    assert found(all_candidates(ctx), "dns_failure") is None


def test_cache_failure_supported_when_the_cache_goes_down():
    up = np.ones(N)
    up[88:] = 0.0
    ctx = make_ctx({("cache_up", "redis"): up}, edges=[("api", "redis")], symptom="api", affected={"api": ONSET})
    c = found(all_candidates(ctx), "cache_failure", "redis")
    assert c is not None and c.facts.down_at == at(88) and status_of(c) == "supported"


def test_cache_failure_takes_the_database_behind_it_down_with_it():
    up = np.ones(N)
    up[88:] = 0.0
    ctx = make_ctx({("cache_up", "redis"): up, ("db_tx_duration", "orders-db"): level(0.05, 5.0, 88),
                    ("latency_p99", "api"): level(0.2, 2.0)},
                   edges=[("api", "redis"), ("api", "orders-db")], symptom="api", affected={"api": ONSET})
    db = found(all_candidates(ctx), "db_slow_queries", "orders-db")
    assert db is not None and "the cache redis failed first" in (db.why_not or "")


@pytest.mark.parametrize("down_i,explains", [(90, True), (95, False)])
def test_a_cache_seen_down_within_the_onset_tolerance_of_the_database_behind_it_came_first(down_i, explains):
    # a database does not take a cache down: two minutes apart is together, five is not
    up = np.ones(N)
    up[down_i:] = 0.0
    ctx = make_ctx({("cache_up", "redis"): up, ("db_tx_duration", "orders-db"): level(0.05, 5.0, 88),
                    ("latency_p99", "api"): level(0.2, 2.0)},
                   edges=[("api", "redis"), ("api", "orders-db")], symptom="api", affected={"api": ONSET})
    db = found(all_candidates(ctx), "db_slow_queries", "orders-db")
    assert ("the cache redis failed first" in (db.why_not or "")) == explains


def test_cache_failure_declines_a_healthy_cache():
    ctx = make_ctx({("cache_up", "redis"): np.ones(N), ("cache_miss_ratio", "redis"): level(0.1)})
    assert found(all_candidates(ctx), "cache_failure") is None


# ------------------------------------------------------------------ origin: code_defect, unexplained


def _errors_suspect_ctx(annotations=()):
    ctx = make_ctx({("error_ratio", "cart"): level(0.001, 0.2, noise=0.1), ("request_rate", "cart"): level(10),
                    ("request_rate", "currency"): level(20)},
                   edges=[("web", "cart"), ("cart", "currency")], symptom="web", annotations=annotations,
                   affected={"cart": ONSET, "web": ONSET})
    ctx.suspects = [_suspect(ctx, "cart", [_moved(ctx, "error_ratio", "errors", "own", "cart", 30, 0.001, 0.2)])]
    return ctx


def test_code_defect_supported_when_errors_begin_in_its_own_code():
    cands = origin(ctx := _errors_suspect_ctx())
    run_checks(ctx, cands)
    c = found(cands, "code_defect", "cart")
    assert c is not None and c.facts.deps_healthy and checks(c, "competing_explanation") == ["survived"]
    assert status_of(c) == "supported"


@pytest.mark.parametrize("line,own", [
    ("Error: connect ECONNREFUSED redis-geo:6379", False),  # Node
    ("dial tcp 10.0.3.7:6379: connect: no route to host", False),  # Go
    ("java.net.SocketTimeoutException: Read timed out", False),
    ("requests.exceptions.ConnectionError: Max retries exceeded with url: /v1/rates", False),
    ("java.lang.NullPointerException: Cannot invoke \"Cart.getItems()\" because \"cart\" is null", True),
])
def test_a_connection_failure_logged_by_a_service_is_not_an_error_of_its_own_code(line, own):
    from compass_tui.engine.faults.code_defect import own_new_templates

    ctx = _logged_after_the_onset("pdf-render", "redis-geo", line)
    assert bool(own_new_templates(ctx, "pdf-render")) == own


def _logged_after_the_onset(svc: str, callee: str, line: str) -> Ctx:
    """svc, calling callee, fails and logs ``line`` ten times after the onset."""
    from compass_tui.engine.logfacts import analyse
    from compass_tui.telemetry.backend import LogLine

    ctx = make_ctx({("error_ratio", svc): level(0.001, 0.2)}, edges=[(svc, callee)])
    lines = [LogLine(t=at(95) + i, t_ns=int((at(95) + i) * 1e9), labels={"app": svc}, line=line) for i in range(10)]
    ctx.logs = analyse(lines, "app", split_at=ONSET, base_span=3000, post_span=1800, known={svc, callee})
    return ctx


@pytest.mark.parametrize("line,own", [
    ("failed to get quote: rpc error: code = Unknown desc = invalid argument: currency is nil", False),  # Go
    ("io.grpc.StatusRuntimeException: UNKNOWN: java.lang.NullPointerException", False),
    ('grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with: status = StatusCode.INTERNAL details = "boom">', False),
    ("Error: 13 INTERNAL: Cannot read properties of undefined (reading 'currency')", False),  # Node grpc-js
    ("TypeError: Cannot read properties of undefined (reading 'currency')", True),
])
def test_a_grpc_status_is_the_callees_failure_even_when_it_repeats_the_callees_error(line, own):
    # A server that failed in its own code sends its error text back; the caller logs it inside
    # the status, and names no host.
    from compass_tui.engine.faults.code_defect import own_new_templates

    ctx = _logged_after_the_onset("checkout", "currency", line)
    assert bool(own_new_templates(ctx, "checkout")) == own
    assert all(tp.inherited != own for tp in ctx.logs.templates.values())


def test_code_defect_not_cleared_by_a_dependency_nothing_measures():
    # cart also calls a payment API seen in one traced call: no telemetry, no measured calls
    ctx = _errors_suspect_ctx()
    ctx.graph.add("cart", "payments-api", "traces")
    ctx.graph.edge_stats[("cart", "payments-api")].post_n = 1
    cands = origin(ctx)
    run_checks(ctx, cands)
    c = found(cands, "code_defect", "cart")
    assert c is not None and not c.facts.deps_healthy
    assert any(d.result == "skipped" and "payments-api, which nothing measures" in d.detail for d in c.checks)
    # the same API with its calls counted by a client metric, flat: seen, and healthy
    _add_series(ctx, "client_latency", "cart|payments-api", level(0.2))
    seen = found(origin(ctx), "code_defect", "cart")
    assert seen.facts.deps_healthy


def test_code_defect_of_a_service_whose_dependency_went_bad_only_after_it():
    def with_currency_from(i: int | None) -> Candidate | None:
        ctx = _errors_suspect_ctx()
        _add_series(ctx, "latency_p99", "currency", level(0.01, 0.5))
        late = _suspect(ctx, "currency", [_moved(ctx, "latency_p99", "latency", "own", "currency", 20, 0.01, 0.5)], norm=0.8)
        late.onset = at(i) if i is not None else None
        ctx.suspects.append(late)
        return found(origin(ctx), "code_defect", "cart")

    # currency in trouble as early as cart: cart's errors may be passed on from it
    assert with_currency_from(ONSET_I) is None
    # ten minutes later: a consequence, so what cart calls was healthy when cart began to fail
    c = with_currency_from(ONSET_I + 10)
    assert c is not None and c.facts.deps_healthy
    # a blip that never held (no onset) is not trouble that could be passed on
    assert with_currency_from(None).facts.deps_healthy


def test_code_defect_of_a_service_whose_dependency_moved_far_less_than_it():
    ctx = _errors_suspect_ctx()
    # currency's latency left its baseline (z 6) as cart's errors soared (z 30)
    _add_series(ctx, "latency_p99", "currency", level(0.01, 0.02))
    ctx.suspects.append(_suspect(ctx, "currency", [_moved(ctx, "latency_p99", "latency", "own", "currency", 6, 0.01, 0.02)], norm=0.4))
    c = found(origin(ctx), "code_defect", "cart")
    assert c is not None and c.facts.deps_healthy
    assert any("moved far less than it did (currency)" in d.detail for d in c.checks)


def test_code_defect_not_cleared_when_its_own_calls_to_a_dependency_failed_as_early():
    """currency ranks low (only cart's calls see it), but those calls slowed with cart's errors."""
    ctx = _errors_suspect_ctx()
    _add_series(ctx, "client_latency", "cart|currency", level(0.01, 0.3))
    calls = _moved(ctx, "client_latency", "latency", "callers", "cart|currency", 15, 0.01, 0.3)
    ctx.suspects.append(_suspect(ctx, "currency", [calls], norm=0.2))
    assert found(origin(ctx), "code_defect", "cart") is None
    calls.onset = at(ONSET_I + 10)  # they slowed only later: a consequence
    assert found(origin(ctx), "code_defect", "cart").facts.deps_healthy


@pytest.mark.parametrize("calls_kind,cleared", [("errors", True), ("latency", False)])
def test_a_service_that_only_slowed_is_not_explained_by_a_few_more_failed_calls_to_a_dependency(calls_kind, cleared):
    """cart slowed (no errors of its own); its calls to currency failed a little more often at
    the same time. A failed call returns, it does not wait: that does not explain cart's
    latency, while calls to currency that slowed as much would."""
    ctx = make_ctx({("latency_p99", "cart"): level(0.05, 0.4), ("request_rate", "cart"): level(10),
                    ("request_rate", "currency"): level(20)},
                   edges=[("web", "cart"), ("cart", "currency")], symptom="web", affected={"cart": ONSET, "web": ONSET})
    ctx.suspects = [_suspect(ctx, "cart", [_moved(ctx, "latency_p99", "latency", "own", "cart", 9, 0.05, 0.4)])]
    sig = "client_error_ratio" if calls_kind == "errors" else "client_latency"
    _add_series(ctx, sig, "cart|currency", level(0.002, 0.01) if calls_kind == "errors" else level(0.01, 0.3))
    calls = _moved(ctx, sig, calls_kind, "callers", "cart|currency", 4 if calls_kind == "errors" else 9, 0.002, 0.01)
    ctx.suspects.append(_suspect(ctx, "currency", [calls], norm=0.5))
    c = found(origin(ctx), "code_defect", "cart")
    assert (c is not None and c.facts.deps_healthy) == cleared


def test_code_defect_not_cleared_by_a_partial_graph_when_an_unplaced_service_failed_as_early():
    """Client metrics saw web -> cart -> currency but not every call: search, which no edge
    places, failed as early as cart, so "what cart calls stayed healthy" is not established."""
    ctx = _errors_suspect_ctx()
    ctx.graph = ServiceGraph()
    for a, b in (("web", "cart"), ("cart", "currency")):
        ctx.graph.add(a, b, "client metrics")
    ctx.suspects.append(_suspect(ctx, "search", [], norm=0.7))
    cands = origin(ctx)
    run_checks(ctx, cands)
    c = found(cands, "code_defect", "cart")
    assert c is not None and not c.facts.deps_healthy
    assert checks(c, "competing_explanation") == ["skipped"] and "search degraded as early" in c.checks[0].detail
    # traces see the calls as they happen: the same graph from them clears cart's dependencies
    ctx.graph.sources = {k: {"traces"} for k in ctx.graph.sources}
    assert found(origin(ctx), "code_defect", "cart").facts.deps_healthy


def _traced_dependency(**stats) -> Candidate | None:
    ctx = _errors_suspect_ctx()
    ctx.graph.edge_stats[("cart", "currency")] = EdgeStats(**stats)
    return found(origin(ctx), "code_defect", "cart")


def test_code_defect_not_cleared_by_one_failed_call_to_a_dependency_nor_blocked_by_it():
    # one failed traced call in fourteen is not a failing dependency; five are
    assert _traced_dependency(base_n=34, post_n=14, post_err=1).facts.deps_healthy
    assert _traced_dependency(base_n=34, post_n=14, post_err=5) is None
    # calls that took three times as long are a sick dependency (or the path to it)
    assert _traced_dependency(base_n=20, post_n=20, base_client=[0.05] * 20, post_client=[0.15] * 20) is None


def test_code_defect_disproven_by_a_deploy_just_before():
    ann = [Annotation(time=at(85), time_end=None, tags=["deploy", "service:cart"], text="deploy of cart")]
    cands = origin(ctx := _errors_suspect_ctx(ann))
    run_checks(ctx, cands)
    c = found(cands, "code_defect", "cart")
    assert c is not None and status_of(c) == "disproven" and "explains it better" in c.why_not


def _slow_suspect_ctx(cpu_from: int):
    """A service whose latency rose at the onset, with no service graph, and whose CPU rose at
    ``cpu_from``."""
    ctx = make_ctx({("latency_p99", "cart"): level(0.05, 0.4), ("cpu_cores", "cart"): level(0.4, 0.6, cpu_from),
                    ("request_rate", "cart"): level(10)}, symptom="cart", affected={"cart": ONSET})
    ctx.graph = ServiceGraph()
    cpu = _moved(ctx, "cpu_cores", "cpu", "own", "cart", 6, 0.4, 0.6)
    cpu.onset = at(cpu_from)
    ctx.suspects = [_suspect(ctx, "cart", [_moved(ctx, "latency_p99", "latency", "own", "cart", 30, 0.05, 0.4), cpu])]
    return ctx


def test_code_defect_of_latency_alone_unless_a_resource_moved_in_time_to_explain_it():
    # a CPU that rose with the latency may be why it is slow: that is the resource's fault
    assert found(origin(_slow_suspect_ctx(ONSET_I)), "code_defect") is None
    # one that rose only after it, or long before while the latency stayed flat, explains nothing
    assert found(origin(_slow_suspect_ctx(ONSET_I + 10)), "code_defect", "cart") is not None
    assert found(origin(_slow_suspect_ctx(ONSET_I - 30)), "code_defect", "cart") is not None


def test_unexplained_says_where_and_is_never_supported():
    cands = origin(ctx := _errors_suspect_ctx())
    c = found(cands, "unexplained", "cart")
    assert c is not None and c.facts.where_only and "error_ratio" in c.title
    run_checks(ctx, cands)
    assert status_of(c) == "inconclusive"


def test_unexplained_ranks_below_a_specific_fault_that_survived_there():
    cands = origin(ctx := _errors_suspect_ctx())
    run_checks(ctx, cands)
    cd, un = found(cands, "code_defect", "cart"), found(cands, "unexplained", "cart")
    from compass_tui.engine.context import confidence

    assert confidence(un) < confidence(cd)


def test_every_fault_has_a_supporting_and_a_disproving_test_here():
    """Adding a fault means adding its rule tests: each id must be named by two tests here
    (besides the registry's own)."""
    import ast

    tree = ast.parse(open(__file__).read())
    named: dict[str, int] = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_") or "registry" in fn.name \
                or fn.name == "test_every_fault_has_a_supporting_and_a_disproving_test_here":
            continue
        consts = {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for d in fn.decorator_list:
            consts |= {n.value for n in ast.walk(d) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for f in consts & set(fault_ids()):
            named[f] = named.get(f, 0) + 1
    short = {f: named.get(f, 0) for f in fault_ids() if named.get(f, 0) < 2}
    assert not short, f"faults with fewer than two rule tests: {short}"
    assert get("other:kafka-lag") is None


def _cpu_moved(ctx: Ctx, svc: str, z: float, i: int) -> Suspect:
    return _suspect(ctx, svc, [Moved(signal="cpu_cores", kind="cpu", view="own", z=z, onset=at(i),
                                     series=ctx.series("cpu_cores", svc), sev=z / 3)])


def test_a_cpu_rise_several_services_share_is_not_one_service_s_saturation():
    # at the same minute three other services' CPU rose too little to be candidates, but the
    # localisation saw them leave their baselines about as far: the load, a host, a batch job
    def cpu(others_z: float, caller_slowed: bool = True) -> Candidate:
        series = {("cpu_cores", "orders-db"): level(1.9, 3.3, 86), ("latency_p99", "api"): level(0.2, 2.0 if caller_slowed else 0.2, 87)}
        for n, s in enumerate(("api", "cart", "search")):
            series[("cpu_cores", s)] = level(1.0, 1.3, 86, seed=n + 2)
        ctx = make_ctx(series, edges=[("api", "orders-db")], affected={"api": at(87)} if caller_slowed else {})
        ctx.suspects = [_cpu_moved(ctx, "orders-db", 20, 86)] + [_cpu_moved(ctx, s, others_z, 86) for s in ("api", "cart", "search")]
        return found(all_candidates(ctx), "cpu_saturation", "orders-db")
    shared, alone = cpu(12), cpu(4)
    assert any("a shared cause is as likely" in d.detail for d in shared.checks)
    # a rise five times bigger than the others' is not the one they share
    assert not any("shared cause" in d.detail for d in alone.checks)
    assert confidence(shared) < confidence(alone)
    assert status_of(alone) == "supported"
    # ... and a shared rise that nothing shows mattered here (its caller did not slow) is not
    # shown as this service's saturation
    quiet = cpu(12, caller_slowed=False)
    assert any("nothing shows the CPU mattered" in e.summary for e in quiet.evidence)
    assert status_of(quiet) == "inconclusive" and status_of(shared) == "supported"


def test_code_defect_of_a_service_flooded_from_above_is_load_even_though_its_successes_fell():
    # cart got twice its requests and failed most of them; where web, its caller, got twice its
    # own too, the extra requests came from above (load), not from web retrying cart's failures
    def cart(web_after: float) -> Candidate:
        ctx = make_ctx({("error_ratio", "cart"): level(0.001, 0.6, 89), ("request_rate", "cart"): level(10, 20, 88),
                        ("ok_rate", "cart"): level(10, 8, 88), ("request_rate", "web"): level(50, web_after, 88)},
                       edges=[("web", "cart")], symptom="web", affected={"cart": ONSET, "web": ONSET})
        ctx.suspects = [_suspect(ctx, "cart", [_moved(ctx, "error_ratio", "errors", "own", "cart", 30, 0.001, 0.6)])]
        cands = origin(ctx)
        run_checks(ctx, cands)
        return found(cands, "code_defect", "cart")
    flooded, retried = cart(100), cart(50)
    assert any("load, not its code" in d.detail for d in flooded.checks) and status_of(flooded) == "disproven"
    assert not any("load, not its code" in d.detail for d in retried.checks)


def test_code_defect_of_a_service_that_counts_no_requests_reads_its_load_from_its_callers():
    def cart(calls_after: float) -> Candidate:
        ctx = make_ctx({("error_ratio", "cart"): level(0.001, 0.6, 89), ("client_rate", "web|cart"): level(10, calls_after, 88)},
                       edges=[("web", "cart")], symptom="web", affected={"cart": ONSET, "web": ONSET})
        ctx.suspects = [_suspect(ctx, "cart", [_moved(ctx, "error_ratio", "errors", "own", "cart", 30, 0.001, 0.6)])]
        cands = origin(ctx)
        run_checks(ctx, cands)
        return found(cands, "code_defect", "cart")
    assert any("load, not its code" in d.detail for d in cart(25).checks)
    assert not any("load, not its code" in d.detail for d in cart(10).checks)

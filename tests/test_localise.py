"""Localisation: where the trouble started, before what it is.

The bundles here are written by hand in the shape real RCA data sets have (per-service gauges
under names no family knows, a caller's view of its peers with a peer label, no traces, an
earlier incident inside the baseline), so the engine is held to what it must read on stacks
it was not written for."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from compass_tui.engine import EngineDeps, run_to_report
from compass_tui.engine.localise import series_z
from compass_tui.engine.request import request_from_bundle_meta
from compass_tui.engine.timeseries import Grid
from compass_tui.telemetry.bundle import open_bundle

STEP = 60
T0 = 1_700_000_000
N = 180  # three hours at one-minute steps
ALERT_I = 150


def _write(tmp: Path, series: dict[tuple[str, tuple], np.ndarray], alert_service: str, alert_i: int = ALERT_I) -> Path:
    """A bundle: gauges given as {(metric, ((label, value), ...)): values}."""
    tmp.mkdir(parents=True, exist_ok=True)
    start, end = T0, T0 + (N - 1) * STEP
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    import time

    def ts(t):
        return time.strftime(fmt, time.gmtime(t))

    (tmp / "bundle.json").write_text(json.dumps({"format": "compass-bundle/1", "title": "test", "step_seconds": STEP,
                                                 "window": {"start": ts(start), "end": ts(end)}}))
    alert = {"labels": {"alertname": "HighLatency", "service": alert_service, "severity": "critical"},
             "annotations": {"summary": f"{alert_service} slow"}, "startsAt": ts(T0 + alert_i * STEP), "status": "firing"}
    (tmp / "incident.json").write_text(json.dumps({"version": "4", "status": "firing", "alerts": [alert],
                                                   "commonLabels": alert["labels"]}))
    lines = []
    by_metric: dict[str, list] = {}
    for (metric, labels), vals in series.items():
        by_metric.setdefault(metric, []).append((labels, vals))
    for metric, items in by_metric.items():
        if metric.endswith("_total"):
            lines.append(f"# TYPE {metric[:-len('_total')]} counter")
        else:
            lines.append(f"# TYPE {metric} gauge")
        for labels, vals in items:
            lab = ",".join(f'{k}="{v}"' for k, v in labels)
            for i, v in enumerate(vals):
                if np.isfinite(v):  # NaN: the series has no point there (a pod not yet started, or gone)
                    lines.append(f"{metric}{{{lab}}} {v:.6g} {T0 + i * STEP}")
    lines.append("# EOF")
    (tmp / "metrics.om").write_text("\n".join(lines) + "\n")
    return tmp


def _noise(rng, level, rel=0.05):
    return level * (1 + rel * rng.standard_normal(N))


def _investigate(path: Path):
    import asyncio

    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    return asyncio.run(run_to_report(req, EngineDeps(backend=backend)))


def _top_is(report, fault: str, service: str):
    """The report's first hypothesis, asserted to be ``fault`` on ``service``."""
    top = report.hypotheses[0]
    assert (top.fault, top.service) == (fault, service), [(h.fault, h.service, h.confidence) for h in report.hypotheses[:3]]
    return top


def _not_shown(report, fault: str, status: str | None = None) -> None:
    """No hypothesis of ``fault`` (with that status, when given) in the report."""
    assert not any(h.fault == fault and status in (None, h.status) for h in report.hypotheses), \
        [(h.fault, h.service, h.confidence, h.status) for h in report.hypotheses[:3]]


def _chain(rng, culprit_effect, earlier_burst: str | None = None):
    """frontend -> cart -> currency, per-service latency/error gauges and the callers' view."""
    lat = {s: _noise(rng, base) for s, base in (("frontend", 0.08), ("cart", 0.03), ("currency", 0.01))}
    err = {s: np.abs(_noise(rng, 0.001, 0.5)) for s in lat}
    cpu = {s: _noise(rng, 0.2) for s in lat}
    client = {("frontend", "cart"): _noise(rng, 0.035), ("cart", "currency"): _noise(rng, 0.012)}
    culprit_effect(lat, err, cpu, client)
    if earlier_burst:
        # an earlier incident, recovered, inside the baseline
        lat[earlier_burst][60:75] *= 12
        err[earlier_burst][60:75] += 0.3
    out = {}
    for s in lat:
        out[("svc_response_time_seconds", (("service", s),))] = lat[s]
        out[("svc_error_ratio", (("service", s),))] = err[s]
        out[("svc_cpu_usage_cores", (("service", s), ("pod", f"{s}-7d9f8-abcde")))] = cpu[s]
    for (a, b), v in client.items():
        out[("client_call_latency_seconds", (("service", a), ("peer_service", b)))] = v
    return out


def test_robust_z_ignores_an_earlier_burst_in_the_baseline():
    g = Grid(start=T0, end=T0 + (N - 1) * STEP, step=STEP, alert_at=T0 + ALERT_I * STEP, baseline_end=T0 + 75 * STEP)
    rng = np.random.default_rng(1)
    v = _noise(rng, 1.0)
    v[30:40] *= 8  # an earlier incident
    v[ALERT_I - 2:] *= 5
    z, onset, base, peak, *_ = series_z(g, v, 1, g.alert_at)
    assert z > 10
    assert g.alert_at - 5 * STEP <= onset <= g.alert_at
    assert base == pytest.approx(1.0, rel=0.1)


def test_a_recording_of_minutes_at_a_coarse_step_still_has_a_baseline_before_its_onset():
    """Eleven one-minute points (the first before the rate had two samples), the alert at the
    seventh: the first half of the window before it holds two, too few. Up to two steps before
    the onset there are three."""
    from compass_tui.engine.timeseries import change

    n = 11
    g = Grid(start=T0, end=T0 + (n - 1) * STEP, step=STEP, alert_at=T0 + 6 * STEP, baseline_end=T0 + 2 * STEP)
    v = np.array([np.nan, 0.012, 0.011, 0.013, 0.012, 0.9, 0.93, 0.95, 0.92, 0.94, 0.93])
    ch = change(g, v, 1, anchor=T0 + 5 * STEP)
    assert ch.rose and ch.onset == T0 + 5 * STEP and ch.baseline == pytest.approx(0.012, abs=0.001)
    assert not np.isfinite(change(g, v, 1).baseline)  # no onset to stand back from: no baseline claimed


def test_bursts_the_baseline_keeps_having_are_not_an_anomaly():
    """A p99 that sits on a histogram bucket and jumps to three times it for a few minutes
    every quarter of an hour: one more such burst is its noise, a level it never reached is not."""
    z_burst, z_held, onset = _burst_then_held([(i, 3, 0.3) for i in range(5, 100, 15)], 0.3, 1.5)
    assert z_burst < 4
    assert z_held > 10 and onset is not None


def _burst_then_held(bursts, burst_level: float, held_level: float):
    """A p99 on a 0.1 bucket with baseline ``bursts`` (start, length, level): the z of a
    three-minute burst to ``burst_level`` just before the alert, and the z and onset of a rise
    to ``held_level`` that holds."""
    g = Grid(start=T0, end=T0 + (N - 1) * STEP, step=STEP, alert_at=T0 + ALERT_I * STEP, baseline_end=T0 + 100 * STEP)
    rng = np.random.default_rng(7)
    v = 0.1 * (1 + 0.001 * rng.standard_normal(N))
    for i, n, h in bursts:
        v[i:i + n] = h
    burst = v.copy()
    burst[ALERT_I - 4:ALERT_I - 1] = burst_level
    z_burst, *_ = series_z(g, burst, 1, g.alert_at - 4 * STEP)
    held = v.copy()
    held[ALERT_I - 4:] = held_level
    z_held, onset, *_ = series_z(g, held, 1, g.alert_at - 4 * STEP)
    return z_burst, z_held, onset


def test_a_burst_no_bigger_than_the_biggest_the_baseline_had_is_noise_unless_it_holds():
    """Bursts of every height in the baseline (0.15 to 0.42 over a 0.1 bucket): one of 0.4 near
    the onset that is over in three minutes is no anomaly; the same level held is one."""
    heights = (0.15, 0.2, 0.42, 0.16, 0.29, 0.18, 0.33, 0.17)
    z_burst, z_held, onset = _burst_then_held([(i, 2, h) for i, h in zip(range(5, 100, 12), heights)], 0.4, 0.4)
    assert z_burst < 3
    assert z_held > 4 and onset is not None


def test_an_error_ratio_fifteen_times_its_usual_level_stands_out_over_an_earlier_incident():
    """0.2 % errors, a third of the baseline inside an earlier 40 % incident, then 3 %: the
    earlier incident must not widen the baseline's spread past what 3 % can show."""
    from compass_tui.engine.localise import ABS_FLOORS

    g = Grid(start=T0, end=T0 + (N - 1) * STEP, step=STEP, alert_at=T0 + ALERT_I * STEP, baseline_end=T0 + 75 * STEP)
    rng = np.random.default_rng(3)
    v = np.abs(_noise(rng, 0.002, 0.3))
    v[20:45] = np.abs(_noise(rng, 0.4, 0.05))[20:45]  # an earlier incident, a third of the baseline
    v[ALERT_I - 8:] = np.abs(_noise(rng, 0.03, 0.1))[ALERT_I - 8:]
    z, onset, base, *_ = series_z(g, v, 1, g.alert_at - 8 * STEP, abs_floor=ABS_FLOORS["error_ratio"])
    assert z >= 3 and onset is not None
    assert base == pytest.approx(0.002, rel=0.5)


def test_network_delay_seen_only_by_the_callers_is_named_on_the_callee(tmp_path):
    rng = np.random.default_rng(7)

    def delay(lat, err, cpu, client):
        client[("cart", "currency")][ALERT_I - 3:] *= 40  # the callers wait...
        lat["cart"][ALERT_I - 3:] += 0.45  # ...and so do their own callers
        lat["frontend"][ALERT_I - 2:] += 0.5
        client[("frontend", "cart")][ALERT_I - 2:] += 0.45
        # currency's own server-side latency stays flat

    report = _investigate(_write(tmp_path / "b", _chain(rng, delay, earlier_burst="frontend"), "frontend"))
    assert report.suspects and report.suspects[0].service == "currency"
    top = report.hypotheses[0]
    assert (top.fault, top.service) == ("network_degradation", "currency")
    assert top.status != "disproven"
    assert any("client_call_latency_seconds" in e.query for e in top.evidence)
    assert any("stayed" in e.summary for e in top.evidence)  # its own view, flat, was read
    # the symptom's onset is the alert's rise, not the earlier incident in the baseline
    onset, alert = (datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ") for x in (report.incident.onset, report.incident.started_at))
    assert 0 <= (alert - onset).total_seconds() <= 10 * STEP
    cart = next(s for s in report.suspects if s.service == "cart")
    assert "currency" in cart.inherited_from and cart.score < 1.0


def test_errors_that_begin_in_a_service_with_healthy_dependencies_are_a_code_defect(tmp_path):
    rng = np.random.default_rng(11)

    def defect(lat, err, cpu, client):
        err["cart"][ALERT_I - 3:] += 0.25
        err["frontend"][ALERT_I - 2:] += 0.2
        client[("frontend", "cart")][ALERT_I - 3:] *= 1.3

    report = _investigate(_write(tmp_path / "b", _chain(rng, defect), "frontend"))
    assert report.suspects[0].service == "cart"
    assert "currency" not in [s.service for s in report.suspects[:1]]
    top = report.hypotheses[0]
    assert (top.fault, top.service) == ("code_defect", "cart")
    frontend = next(s for s in report.suspects if s.service == "frontend")
    assert "cart" in frontend.inherited_from


def test_a_tiny_cpu_rise_does_not_outrank_a_real_one(tmp_path):
    rng = np.random.default_rng(5)

    def contention(lat, err, cpu, client):
        cpu["currency"][ALERT_I - 4:] *= 30  # CPU contention on the culprit
        lat["currency"][ALERT_I - 3:] *= 20
        client[("cart", "currency")][ALERT_I - 3:] *= 18
        lat["cart"][ALERT_I - 3:] += 0.2
        lat["frontend"][ALERT_I - 2:] += 0.2
        cpu["frontend"][:] = 0.001
        cpu["frontend"][ALERT_I - 3:] = 0.02  # 20x, but of nothing

    report = _investigate(_write(tmp_path / "b", _chain(rng, contention), "frontend"))
    assert report.suspects[0].service == "currency"
    assert report.hypotheses[0].service == "currency"
    assert not any(h.fault == "cpu_saturation" and h.service == "frontend" and h.status == "supported" for h in report.hypotheses)


def test_where_only_ranks_below_a_specific_fault_that_survived_on_the_same_service():
    path = Path(__file__).resolve().parents[2] / "shared" / "examples" / "bundles" / "example-certificate_expired.tar.gz"
    if not path.exists():
        pytest.skip("the example bundles are not beside this checkout")
    report = _investigate(path)
    ranked = [(h.fault, h.service, h.status) for h in report.hypotheses]
    assert ranked[0][:2] == ("certificate_expired", "kyc")
    unexplained = [i for i, h in enumerate(report.hypotheses) if h.fault == "unexplained" and h.service == "kyc"]
    assert unexplained and unexplained[0] > 0
    assert report.hypotheses[unexplained[0]].status == "inconclusive"
    assert report.suspects[0].service == "kyc"
    assert all(s.signals and s.signals[0].query for s in report.suspects)


def test_every_service_in_the_report_suspects_names_the_query_behind_it(tmp_path):
    rng = np.random.default_rng(3)

    def defect(lat, err, cpu, client):
        lat["cart"][ALERT_I - 3:] *= 15
        lat["frontend"][ALERT_I - 2:] += 0.4

    report = _investigate(_write(tmp_path / "b", _chain(rng, defect), "frontend"))
    assert report.suspects
    for s in report.suspects:
        assert 0 < s.score <= 1.0
        for sig in s.signals:
            assert sig.query and sig.z >= 3
    js = report.to_json_dict()
    assert js["suspects"][0]["service"] == report.suspects[0].service


def test_a_service_mesh_alone_is_enough_to_find_a_code_defect(tmp_path):
    """Only mesh counters (caller and callee labels, both reporters, a status label)."""
    rng = np.random.default_rng(21)
    edges = {("frontend", "cart"): 20.0, ("cart", "currency"): 30.0, ("frontend", "ads"): 5.0}
    series = {}
    for (a, b), rps in edges.items():
        rate_ok = _noise(rng, rps, 0.03)
        rate_err = np.abs(_noise(rng, 0.01 * rps, 0.3))
        if b == "cart":
            rate_err[ALERT_I - 3:] += 0.3 * rps  # cart's own 500s, seen by both ends
        for reporter in ("source", "destination"):
            for code, r in (("200", rate_ok), ("500", rate_err)):
                labels = (("reporter", reporter), ("source_workload", a), ("destination_workload", b), ("response_code", code))
                series[("mesh_requests_total", labels)] = np.cumsum(r * STEP)
    report = _investigate(_write(tmp_path / "b", series, "frontend"))
    assert report.suspects[0].service == "cart"
    assert any(sig.view == "callers" for sig in report.suspects[0].signals)
    top = report.hypotheses[0]
    assert (top.fault, top.service) == ("code_defect", "cart")
    assert all('reporter=' in e.query for e in top.evidence if e.kind == "metric")


def test_a_caller_whose_calls_to_every_peer_slowed_at_once_is_the_common_factor(tmp_path):
    """cart's own process is starved: its calls to currency and to search both slow down, while
    currency's own latency stays flat and nobody else sees either in trouble."""
    rng = np.random.default_rng(13)

    def starved(lat, err, cpu, client):
        client[("cart", "currency")][ALERT_I - 3:] *= 25
        client[("cart", "search")] = _noise(rng, 0.02)
        client[("cart", "search")][ALERT_I - 3:] *= 25
        lat["cart"][ALERT_I - 3:] += 0.6
        lat["frontend"][ALERT_I - 2:] += 0.6
        client[("frontend", "cart")][ALERT_I - 2:] += 0.6

    report = _investigate(_write(tmp_path / "b", _chain(rng, starved), "frontend"))
    assert report.suspects[0].service == "cart", [(s.service, s.score) for s in report.suspects[:3]]
    assert report.hypotheses[0].service == "cart", [(h.fault, h.service, h.confidence, h.status, [d.detail for d in h.disproof if d.result == "failed"]) for h in report.hypotheses[:4]]
    assert not any(h.service in ("currency", "search") and h.status == "supported" for h in report.hypotheses)


def test_one_pod_pinned_at_its_cpu_limit_is_cpu_saturation_of_its_service(tmp_path):
    """Three pods of currency; one is pinned at its limit, which the service's sum hides."""
    rng = np.random.default_rng(17)
    series = _chain(rng, lambda lat, err, cpu, client: None)
    series = {k: v for k, v in series.items() if k[0] != "svc_cpu_usage_cores"}
    for svc in ("frontend", "cart", "currency"):
        for p in range(3):
            pod = f"{svc}-5c7d9-{p}"
            use = _noise(rng, 0.3, 0.03)
            if svc == "currency" and p == 1:
                use[ALERT_I - 4:] = 1.0 * (1 + 0.01 * rng.standard_normal(N - ALERT_I + 4))
            labels = (("container", svc), ("pod", pod))
            series[("container_cpu_usage_seconds_total", labels)] = np.cumsum(use * STEP)
            series[("kube_pod_container_resource_limits", labels + (("resource", "cpu"),))] = np.full(N, 1.0)
    lat = series[("svc_response_time_seconds", (("service", "currency"),))]
    lat[ALERT_I - 3:] *= 4  # one pod in three serves slowly
    series[("svc_response_time_seconds", (("service", "cart"),))][ALERT_I - 3:] += 0.02
    series[("svc_response_time_seconds", (("service", "frontend"),))][ALERT_I - 2:] += 0.02
    report = _investigate(_write(tmp_path / "b", series, "frontend"))
    top = _top_is(report, "cpu_saturation", "currency")
    assert "currency-5c7d9-1" in top.title
    assert any("currency-5c7d9-1" in e.summary or "pod" in e.query for e in top.evidence)


@pytest.mark.parametrize("metric", ["svc_latency_seconds", "request_latency_seconds"])
def test_one_statistic_of_a_measure_is_read_never_the_max_across_statistics(tmp_path, metric):
    """Gauges labelled by statistic (avg, p99): currency's mean doubles while its p99, always
    noisy, hides it; the max across statistics would read only the p99. Named like a summary
    (``request_latency_seconds``) but with no quantiles, it is read the same way."""
    rng = np.random.default_rng(29)
    series = {}
    for svc, base in (("frontend", 0.3), ("cart", 0.1), ("currency", 0.2)):
        avg = _noise(rng, base, 0.03)
        p99 = _noise(rng, 8 * base, 0.35)
        if svc == "currency":
            avg[ALERT_I - 3:] *= 2.0
        if svc == "frontend":
            avg[ALERT_I - 2:] += 0.1
        series[(metric, (("service", svc), ("statistic", "avg")))] = avg
        series[(metric, (("service", svc), ("statistic", "p99")))] = np.abs(p99)
    report = _investigate(_write(tmp_path / "b", series, "frontend"))
    top = report.suspects[0]
    assert top.service == "currency", [(s.service, s.score) for s in report.suspects[:3]]
    assert any('statistic="avg"' in sig.query for sig in top.signals)


def _gateway_in_front_of_a_worker(rng, with_graph: bool):
    """frontend -> gateway -> worker, each with its own mean latency; the worker slows and the
    gateway in front of it, a thin layer, shows the same seconds on a calmer base. Tempo's
    service-graph counters (``client``, ``server``) name the calls when ``with_graph``."""
    lat = {"frontend": _noise(rng, 0.30, 0.05), "gateway": _noise(rng, 0.20, 0.01), "worker": _noise(rng, 0.18, 0.15)}
    for svc in lat:
        lat[svc][ALERT_I - 4:] += 0.5
    series = {("svc_latency_seconds", (("service", s), ("statistic", "avg"))): v for s, v in lat.items()}
    if with_graph:
        for a, b in (("frontend", "gateway"), ("gateway", "worker")):
            series[("traces_service_graph_request_total", (("client", a), ("server", b)))] = np.cumsum(_noise(rng, 10.0, 0.02) * STEP)
    return series


def test_tempo_service_graph_metrics_place_the_culprit_behind_the_layer_in_front_of_it(tmp_path):
    without = _investigate(_write(tmp_path / "a", _gateway_in_front_of_a_worker(np.random.default_rng(31), False), "frontend"))
    assert without.suspects[0].service == "gateway"  # no graph: the calmer base reads as the origin
    report = _investigate(_write(tmp_path / "b", _gateway_in_front_of_a_worker(np.random.default_rng(31), True), "frontend"))
    assert report.suspects[0].service == "worker", [(s.service, s.score) for s in report.suspects[:3]]
    assert not any(d.signal == "service_graph" for d in report.degraded)


def _a_rare_caller_and_a_busy_one(rng, with_rates: bool):
    """batch serves one request a minute and from a few minutes before the alert fails one of
    them now and then (50 %, 0 %);
    cart serves fifty a second and three in a hundred start failing."""
    avail = {"batch": np.ones(N), "cart": np.clip(_noise(rng, 0.999, 0.0005), 0, 1), "frontend": np.clip(_noise(rng, 0.999, 0.0005), 0, 1)}
    avail["batch"][ALERT_I - 5:] = np.resize([0.5, 0.0, 0.5, 1.0], N - ALERT_I + 5)
    avail["cart"][ALERT_I - 3:] -= 0.03
    avail["frontend"][ALERT_I - 2:] -= 0.02
    series = {("svc_availability_ratio", (("service", s),)): v for s, v in avail.items()}
    if with_rates:
        for s, rps in (("batch", 1 / 60), ("cart", 50.0), ("frontend", 80.0)):
            series[("svc_requests_per_second", (("service", s),))] = _noise(rng, rps, 0.02)
    return series


def test_a_ratio_moved_by_one_request_is_noise_where_the_request_rate_says_so(tmp_path):
    without = _investigate(_write(tmp_path / "a", _a_rare_caller_and_a_busy_one(np.random.default_rng(33), False), "frontend"))
    assert without.suspects[0].service == "batch"  # no counts: 50 % looks like a collapse
    report = _investigate(_write(tmp_path / "b", _a_rare_caller_and_a_busy_one(np.random.default_rng(33), True), "frontend"))
    assert report.suspects[0].service == "cart", [(s.service, s.score) for s in report.suspects[:3]]


def _waiting_caller(rng, with_outbound: bool):
    """frontend calls cart, cart calls currency (no graph, no peer label anywhere). currency
    slows; cart and frontend, on calmer bases, show the same seconds; their client-side
    latency (which peer, it does not say) rises with it when ``with_outbound``."""
    lat = {"frontend": _noise(rng, 0.30, 0.05), "cart": _noise(rng, 0.20, 0.01), "currency": _noise(rng, 0.18, 0.15)}
    for svc in lat:
        lat[svc][ALERT_I - 4:] += 0.5
    series = {("svc_latency_seconds", (("service", s),)): v for s, v in lat.items()}
    if with_outbound:
        for svc, base, waits in (("frontend", 0.2, True), ("cart", 0.17, True), ("currency", 0.01, False)):
            out = _noise(rng, base, 0.01)
            if waits:
                out[ALERT_I - 4:] += 0.5
            series[("svc_client_latency_seconds", (("service", svc),))] = out
    return series


def test_a_service_whose_outbound_calls_slowed_with_it_yields_even_without_a_graph(tmp_path):
    without = _investigate(_write(tmp_path / "a", _waiting_caller(np.random.default_rng(35), False), "frontend"))
    assert without.suspects[0].service == "cart"
    report = _investigate(_write(tmp_path / "b", _waiting_caller(np.random.default_rng(35), True), "frontend"))
    assert report.suspects[0].service == "currency", [(s.service, s.score) for s in report.suspects[:3]]
    cart = next(s for s in report.suspects if s.service == "cart")
    assert any(sig.view == "outbound" for sig in cart.signals)


def test_a_success_rate_in_percent_is_read_by_its_failures(tmp_path):
    """cart's success rate, in percent, goes from 99.9 to 97: thirty times the failures."""
    rng = np.random.default_rng(37)
    ok = {s: np.clip(_noise(rng, 99.9, 0.0003), 0, 100) for s in ("frontend", "cart", "currency")}
    ok["cart"][ALERT_I - 3:] -= 3.0
    ok["frontend"][ALERT_I - 2:] -= 0.5
    series = {("pod_success_rate_percent", (("service", s), ("pod", f"{s}-7d9f8-abcde"))): v for s, v in ok.items()}
    report = _investigate(_write(tmp_path / "b", series, "frontend"))
    assert report.suspects and report.suspects[0].service == "cart", [(s.service, s.score) for s in report.suspects[:3]]


def test_a_cpu_percentage_under_an_unknown_name_is_read_against_the_limit(tmp_path):
    """Per-pod CPU as a percentage of the limit, latency per pod, under names no family knows:
    the pod pinned near 100 % is CPU saturation of its service."""
    rng = np.random.default_rng(39)
    series = {}
    for svc, base in (("frontend", 0.12), ("currency", 0.01)):
        for pod in (f"{svc}-7d9f8c6b5-x2x4z", f"{svc}-7d9f8c6b5-k9q8w"):
            lat = _noise(rng, base, 0.1)
            cpu = np.clip(_noise(rng, 12.0, 0.15), 0, 100)
            if pod == "currency-7d9f8c6b5-x2x4z":
                cpu[ALERT_I - 6:] = np.clip(_noise(rng, 95.0, 0.02)[ALERT_I - 6:], 0, 100)
                lat[ALERT_I - 5:] += 0.08
            if svc == "frontend":
                lat[ALERT_I - 5:] += 0.04
            series[("pod_server_latency_p90_seconds", (("pod", pod),))] = lat
            series[("pod_cpu_usage_rate_percent", (("pod", pod),))] = cpu
    report = _investigate(_write(tmp_path / "b", series, "frontend"))
    top = report.hypotheses[0]
    assert (top.fault, top.service) == ("cpu_saturation", "currency"), [(h.fault, h.service) for h in report.hypotheses[:3]]
    assert "-> 0.9" in top.title


def _two_client_libraries(rng):
    """frontend (Micrometer: ``http_client_requests_seconds``, ``client_name``) calls cart; cart
    (OpenTelemetry: ``http_client_request_duration_seconds``, ``server_address``) calls
    currency. The network in front of cart slows: cart's own latency holds, its caller waits."""
    series = {}
    lat = {"frontend": _noise(rng, 0.08), "cart": _noise(rng, 0.03), "currency": _noise(rng, 0.01)}
    lat["frontend"][ALERT_I - 3:] += 0.4
    for svc, v in lat.items():
        series[("svc_response_time_seconds", (("service", svc),))] = v
    calls = {("frontend", "cart"): ("http_client_requests_seconds", "client_name", _noise(rng, 0.035)),
             ("cart", "currency"): ("http_client_request_duration_seconds", "server_address", _noise(rng, 0.012))}
    calls[("frontend", "cart")][2][ALERT_I - 3:] += 0.4
    for (a, b), (metric, peer, mean) in calls.items():
        per_s = _noise(rng, 20.0, 0.02)
        labels = (("service", a), (peer, b))
        series[(f"{metric}_count", labels)] = np.cumsum(per_s * STEP)
        series[(f"{metric}_sum", labels)] = np.cumsum(per_s * STEP * mean)
    return series


def test_calls_counted_by_two_client_libraries_both_join_the_service_graph(tmp_path):
    report = _investigate(_write(tmp_path, _two_client_libraries(np.random.default_rng(41)), "frontend"))
    assert report.suspects[0].service == "cart", [(s.service, s.score) for s in report.suspects[:3]]
    assert any("http_client_requests_seconds" in sig.query for sig in report.suspects[0].signals)
    assert not any(d.signal == "service_graph" for d in report.degraded)


def _entry_and_a_failing_service(rng, cart_from: int = ALERT_I - 4):
    """No graph. cart begins to fail at ``cart_from``; frontend, the alerting entry, slows and
    fails a little before the alert."""
    lat = {"frontend": _noise(rng, 0.08), "cart": _noise(rng, 0.03), "search": _noise(rng, 0.02)}
    err = {s: np.abs(_noise(rng, 0.001, 0.3)) for s in lat}
    err["cart"][cart_from:] += 0.04
    err["frontend"][ALERT_I - 4:] += 0.03
    lat["frontend"][ALERT_I - 4:] += 0.6
    series = {}
    for s in lat:
        series[("svc_response_time_seconds", (("service", s),))] = lat[s]
        series[("svc_error_ratio", (("service", s),))] = err[s]
    return series


def test_without_a_graph_the_alerting_entry_yields_to_a_service_that_failed_with_it(tmp_path):
    report = _investigate(_write(tmp_path / "a", _entry_and_a_failing_service(np.random.default_rng(43)), "frontend"))
    assert report.suspects[0].service == "cart", [(s.service, s.score) for s in report.suspects[:3]]
    # cart failing only twenty minutes after the alert cannot be where the entry's trouble came from
    report = _investigate(_write(tmp_path / "b", _entry_and_a_failing_service(np.random.default_rng(43), ALERT_I + 20), "frontend"))
    assert report.suspects[0].service == "frontend", [(s.service, s.score) for s in report.suspects[:3]]


def test_a_tie_on_the_severity_scale_goes_to_the_service_that_moved_further(tmp_path):
    """No graph. currency's errors go from 0.05 % to 8 %, checkout's (which calls it) to 6.4 %
    at the same minute: both saturate the severity scale, and currency moved further."""
    rng = np.random.default_rng(45)
    series = {}
    for svc, extra in (("frontend", 0.0), ("checkout", 0.064), ("currency", 0.08)):
        err = np.abs(_noise(rng, 0.0005, 0.05))
        err[ALERT_I - 5:] += extra
        series[("svc_error_ratio", (("service", svc),))] = err
        series[("svc_response_time_seconds", (("service", svc),))] = _noise(rng, 0.05)
    report = _investigate(_write(tmp_path, series, "frontend"))
    top = report.suspects[:2]
    assert [s.service for s in top] == ["currency", "checkout"] and top[0].score == top[1].score, [(s.service, s.score) for s in top]
    assert report.hypotheses[0].service == "currency", [(h.fault, h.service, h.confidence) for h in report.hypotheses[:3]]


def test_a_spike_of_the_noisy_alerting_service_that_was_over_before_the_alert_is_not_the_onset(tmp_path):
    """The entry spikes now and then; one spike ended six minutes before the alert fired, and
    the entry barely moved afterwards. The trouble began in cart, three minutes before the alert:
    that is the onset, and cart's defect is not "after the symptom"."""
    rng = np.random.default_rng(5)

    def defect(lat, err, cpu, client):
        lat["frontend"][ALERT_I - 8:ALERT_I - 6] *= 15  # a spike, over by ALERT_I - 6
        err["frontend"][ALERT_I - 8:ALERT_I - 6] += 0.08
        err["cart"][ALERT_I - 3:] += 0.25
        lat["cart"][ALERT_I - 3:] *= 3

    report = _investigate(_write(tmp_path / "b", _chain(rng, defect), "frontend"))
    onset, alert = (datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ") for x in (report.incident.onset, report.incident.started_at))
    assert (alert - onset).total_seconds() <= 4 * STEP
    top = report.hypotheses[0]
    assert top.service == "cart" and top.status != "disproven"



def test_a_dependency_that_failed_a_little_does_not_explain_a_caller_that_failed_a_lot(tmp_path):
    # currency's failures went from 0.1 % to 1 % and its latency up by a fifth, a little
    # before cart's went to 20 % and three times: currency cannot have passed that up
    rng = np.random.default_rng(13)

    def defect(lat, err, cpu, client):
        err["currency"][ALERT_I - 6:] += 0.01
        lat["currency"][ALERT_I - 6:] *= 1.2
        client[("cart", "currency")][ALERT_I - 6:] *= 1.2
        err["cart"][ALERT_I - 4:] += 0.2
        lat["cart"][ALERT_I - 4:] *= 3
        err["frontend"][ALERT_I - 3:] += 0.15
        lat["frontend"][ALERT_I - 3:] *= 2
        client[("frontend", "cart")][ALERT_I - 3:] *= 3

    report = _investigate(_write(tmp_path / "b", _chain(rng, defect), "frontend"))
    assert [s.service for s in report.suspects[:2]] == ["cart", "currency"]
    assert (report.hypotheses[0].fault, report.hypotheses[0].service) == ("code_defect", "cart")


def _cart_fails_from(i: int, lat, err, client) -> None:
    """cart fails a fifth of its requests, twice slower, from ``i`` on; frontend, which calls
    it, follows a minute later."""
    err["cart"][i:] += 0.2
    lat["cart"][i:] *= 2
    err["frontend"][i + 1:] += 0.15
    lat["frontend"][i + 1:] *= 1.5
    client[("frontend", "cart")][i + 1:] *= 2


def test_a_dependency_whose_failures_were_over_at_once_does_not_explain_a_caller_that_kept_failing(tmp_path):
    # currency failed a third of its calls, five times slower, for two minutes and was healthy
    # again; cart, which calls it, began failing a fifth of its requests, twice slower, as
    # currency's burst began and stayed there: a blip over at once is not what cart kept passing up
    rng = np.random.default_rng(17)

    def defect(lat, err, cpu, client):
        err["currency"][ALERT_I - 6:ALERT_I - 4] += 0.3
        lat["currency"][ALERT_I - 6:ALERT_I - 4] *= 5
        client[("cart", "currency")][ALERT_I - 6:ALERT_I - 4] *= 5
        _cart_fails_from(ALERT_I - 6, lat, err, client)

    report = _investigate(_write(tmp_path / "b", _chain(rng, defect), "frontend"))
    assert report.suspects[0].service == "cart", [(s.service, s.score, s.inherited_from) for s in report.suspects[:3]]
    assert report.hypotheses[0].service == "cart", [(h.fault, h.service, h.confidence) for h in report.hypotheses[:3]]


def _unmeasured_callee(rng, cart_cpu: bool):
    """frontend -> cart -> currency; cart exports no request metric of its own (its CPU only,
    when ``cart_cpu``), and frontend's calls to it begin to fail, a fifth of them."""
    series = {}
    for s, base in (("frontend", 0.08), ("currency", 0.01)):
        series[("svc_response_time_seconds", (("service", s),))] = _noise(rng, base)
        series[("svc_error_ratio", (("service", s),))] = np.abs(_noise(rng, 0.001, 0.5))
    for s in ("frontend", "currency") + (("cart",) if cart_cpu else ()):
        series[("svc_cpu_usage_cores", (("service", s), ("pod", f"{s}-7d9f8-abcde")))] = _noise(rng, 0.2)
    calls = np.abs(_noise(rng, 0.001, 0.5))
    calls[ALERT_I - 4:] += 0.2
    series[("svc_error_ratio", (("service", "frontend"),))][ALERT_I - 3:] += 0.15
    series[("client_call_error_ratio", (("service", "frontend"), ("peer_service", "cart")))] = calls
    series[("client_call_error_ratio", (("service", "cart"), ("peer_service", "currency")))] = np.abs(_noise(rng, 0.001, 0.5))
    series[("client_call_latency_seconds", (("service", "frontend"), ("peer_service", "cart")))] = _noise(rng, 0.035)
    return series


def test_failures_of_a_service_only_its_callers_count_are_read_as_its_code_but_never_shown_as_supported(tmp_path):
    report = _investigate(_write(tmp_path / "a", _unmeasured_callee(np.random.default_rng(19), True), "frontend"))
    top = _top_is(report, "code_defect", "cart")
    assert top.status == "inconclusive"
    assert any("client_call_error_ratio" in e.query for e in top.evidence)
    assert any(d.result == "skipped" and "counts no failures of its own" in d.detail for d in top.disproof)
    # a third party (no telemetry of its own at all) failing is not a code defect of the team's
    report = _investigate(_write(tmp_path / "b", _unmeasured_callee(np.random.default_rng(19), False), "frontend"))
    assert not any((h.fault, h.service) == ("code_defect", "cart") for h in report.hypotheses), \
        [(h.fault, h.service, h.confidence) for h in report.hypotheses[:3]]


def test_a_dependency_that_slowed_for_a_moment_before_a_caller_kept_failing_does_not_clear_its_code(tmp_path):
    # currency slowed three times for two minutes and was itself again; a few minutes later
    # cart, which calls it, began failing a fifth of its requests and stayed there
    rng = np.random.default_rng(23)

    def defect(lat, err, cpu, client):
        lat["currency"][ALERT_I - 8:ALERT_I - 6] *= 3
        client[("cart", "currency")][ALERT_I - 8:ALERT_I - 6] *= 3
        _cart_fails_from(ALERT_I - 5, lat, err, client)

    report = _investigate(_write(tmp_path / "b", _chain(rng, defect), "frontend"))
    top = _top_is(report, "code_defect", "cart")


def _cpu_to_a_ceiling(rng, flat: bool):
    """currency's two pods go from 0.30 to 0.42 cores as its latency doubles; no limit is
    exported. ``flat``: they then hold at 0.42 with a tenth of their usual noise (a quota)."""
    series = _chain(rng, lambda lat, err, cpu, client: None)
    series = {k: v for k, v in series.items() if k[0] != "svc_cpu_usage_cores"}
    for svc in ("frontend", "cart", "currency"):
        for p in range(2):
            use = _noise(rng, 0.3, 0.05)
            if svc == "currency":
                use[ALERT_I - 4:] = 0.42 * (1 + (0.005 if flat else 0.05) * rng.standard_normal(N - ALERT_I + 4))
            series[("container_cpu_usage_seconds_total", (("container", svc), ("pod", f"{svc}-5c7d9-{p}")))] = np.cumsum(use * STEP)
    series[("svc_response_time_seconds", (("service", "currency"),))][ALERT_I - 3:] *= 2
    series[("svc_response_time_seconds", (("service", "cart"),))][ALERT_I - 3:] += 0.01
    series[("svc_response_time_seconds", (("service", "frontend"),))][ALERT_I - 2:] += 0.01
    return series


def test_a_cpu_that_rose_and_held_flat_hit_a_limit_the_stack_does_not_export(tmp_path):
    report = _investigate(_write(tmp_path / "a", _cpu_to_a_ceiling(np.random.default_rng(29), True), "frontend"))
    top = _top_is(report, "cpu_saturation", "currency")
    assert any("held flat" in e.summary for e in top.evidence)
    # the same rise with the load's noise in it is no ceiling: 1.4x of a CPU without a limit is not saturation
    _not_shown(_investigate(_write(tmp_path / "b", _cpu_to_a_ceiling(np.random.default_rng(29), False), "frontend")),
               "cpu_saturation", "supported")


def _rolled_out(rng, new_hash: bool, errors_from: int = ALERT_I - 5):
    """cart's two pods are replaced six minutes before the alert, by pods of a new ReplicaSet
    (``new_hash``) or of the same one (a restart); cart's errors rise at ``errors_from``."""
    def defect(lat, err, cpu, client):
        err["cart"][errors_from:] += 0.2
        lat["cart"][errors_from:] *= 2
        err["frontend"][ALERT_I - 4:] += 0.15
        client[("frontend", "cart")][ALERT_I - 4:] *= 2

    series = {k: v for k, v in _chain(rng, defect).items() if k[0] != "svc_cpu_usage_cores"}
    for svc in ("frontend", "cart", "currency"):
        for p in range(2):
            use = _noise(rng, 0.3, 0.05)
            if svc != "cart":
                series[("container_cpu_usage_seconds_total", (("container", svc), ("pod", f"{svc}-5c7d9f8b6-q{p}x7z")))] = np.cumsum(use * STEP)
                continue
            old, new = use.copy(), use.copy()
            old[ALERT_I - 5:] = np.nan
            new[:ALERT_I - 6] = np.nan
            series[("container_cpu_usage_seconds_total", (("container", svc), ("pod", f"cart-5c7d9f8b6-k{p}w2m")))] = np.cumsum(np.nan_to_num(old) * STEP) + 0 * old
            series[("container_cpu_usage_seconds_total", (("container", svc), ("pod", f"cart-{'8f6b4d7c9' if new_hash else '5c7d9f8b6'}-n{p}v4t")))] = \
                np.cumsum(np.nan_to_num(new) * STEP) + 0 * new
    return series


def test_pods_of_a_new_replicaset_just_before_the_trouble_are_a_deploy(tmp_path):
    report = _investigate(_write(tmp_path / "a", _rolled_out(np.random.default_rng(31), True), "frontend"))
    top = _top_is(report, "bad_deploy", "cart")
    assert any("ReplicaSet 8f6b4d7c9" in e.summary for e in top.evidence)
    # the same pods restarted (same ReplicaSet) are no new version: the code defect stays
    report = _investigate(_write(tmp_path / "b", _rolled_out(np.random.default_rng(31), False), "frontend"))
    _not_shown(report, "bad_deploy")
    _top_is(report, "code_defect", "cart")
    # errors that began a couple of minutes before the new pods existed are not theirs
    _not_shown(_investigate(_write(tmp_path / "c", _rolled_out(np.random.default_rng(31), True, ALERT_I - 9), "frontend")),
               "bad_deploy", "supported")


def test_a_stack_that_names_services_by_name_and_measures_memory_by_usage_is_read(tmp_path):
    """Sock Shop's own instrumentation: a ``request_duration_seconds`` summary labelled ``name``
    (no other label names the service), cAdvisor's ``container_memory_usage_bytes``. Its request
    rate, latency and memory are read, and the container whose CPU went from 1 % of a core to a
    whole one while its latency rose is CPU saturation."""
    rng = np.random.default_rng(41)
    series = {}
    for svc, lat_base, cpu_base in (("front-end", 0.05, 0.1), ("carts", 0.02, 0.01), ("catalogue", 0.01, 0.015)):
        cpu, lat = _noise(rng, cpu_base), _noise(rng, lat_base)
        if svc == "carts":
            cpu[ALERT_I - 4:] = _noise(rng, 1.0, 0.02)[ALERT_I - 4:]
            lat[ALERT_I - 3:] *= 8
        if svc == "front-end":
            lat[ALERT_I - 3:] += 0.12
        series[("container_cpu_usage_seconds_total", (("container", svc), ("namespace", "sock-shop")))] = np.cumsum(cpu * STEP)
        series[("container_memory_usage_bytes", (("container", svc), ("namespace", "sock-shop")))] = _noise(rng, 3e8, 0.01)
        series[("request_duration_seconds_count", (("name", svc),))] = np.cumsum(_noise(rng, 10.0, 0.02) * STEP)
        series[("request_duration_seconds", (("name", svc), ("quantile", "0.99")))] = lat
    report = _investigate(_write(tmp_path / "b", series, "front-end"))
    missing = {d.signal for d in report.degraded}
    assert not {"requests", "latency", "memory"} & missing, missing
    _top_is(report, "cpu_saturation", "carts")


@pytest.mark.parametrize("obj, service", [
    ("carts-db-5h2l5bf8cj-cmj47", "carts-db"),  # the Deployment carts-db: carts' database, not carts
    ("carts-7c9f6d8b5d-x4k2p", "carts"),
    ("myrelease-orders-7c9f6d8b5d-x4k2p", "orders"),  # a release prefix on the Deployment's name
    ("data-orders-0", "orders"),  # a claim of orders' StatefulSet
])
def test_a_kubernetes_object_belongs_to_the_workload_its_name_says(obj, service):
    from compass_tui.engine.discovery import Discovery

    d = Discovery(None, Grid(start=T0, end=T0 + 600, step=STEP, alert_at=T0 + 300, baseline_end=T0 + 150))
    d.stack.services |= {"carts", "orders", "front-end"}
    assert d.object_service(obj) == service


def test_a_latency_that_rose_with_a_cpu_far_from_any_ceiling_is_its_code(tmp_path):
    """currency's latency triples while its CPU rises by half (0.2 to 0.29 cores): the CPU moved
    with it, but nothing reads it as short of CPU, so the slowness is its own code's."""
    rng = np.random.default_rng(43)

    def effect(lat, err, cpu, client):
        for s in ("frontend", "cart"):
            lat[s][ALERT_I - 4:] += 0.03
        lat["currency"][ALERT_I - 4:] *= 3
        client[("cart", "currency")][ALERT_I - 4:] += 0.02
        cpu["currency"][ALERT_I - 4:] *= 1.45
    report = _investigate(_write(tmp_path / "b", _chain(rng, effect), "frontend"))
    _top_is(report, "code_defect", "currency")

"""Differential test: the local PromQL evaluator against a real Prometheus 2.42 on the same data.

A seeded generator writes counters with resets, gauges (one with NaN samples), histograms,
summaries, irregular scrape times, gaps longer than the 5m lookback and series that start
late; the same samples go into promtool (as OpenMetrics) and into an InMemorySeriesSource.
Every query is run as range queries on three grids (15s, 30s, 60s steps, one start off the
step grid) and as instant queries, and the label sets and values must agree.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from compass_tui.telemetry.promql import InMemorySeriesSource, PromQLError, evaluate_instant, evaluate_range

try:
    from tests.prometheus_server import PrometheusServer, api_get, missing_binaries, prometheus_factory
except ImportError:  # tests/ on sys.path rather than the project root
    from prometheus_server import (  # type: ignore[no-redef]
        PrometheusServer,
        api_get,
        missing_binaries,
        prometheus_factory,
    )

_ = prometheus_factory  # a fixture: imported so that pytest finds it

pytestmark = pytest.mark.live

T0 = 1_699_999_200  # an hour boundary
SPAN = 7200
REL_TOL = 1e-6
ABS_TOL = 1e-9  # values that are 0 in one engine and 1e-17 in the other (rounding of a sum)


# --------------------------------------------------------------------------- data generator


def _times(rng: random.Random, interval: float, start: float, end: float, jitter: bool) -> list[float]:
    out, t = [], start
    while t <= end:
        # Quarter seconds are exact in binary, so promtool's int64(ts*1000) is exact too.
        out.append(t + (rng.randint(-8, 8) * 0.25 if jitter else 0.0))
        t += interval
    return sorted(set(out))


def _gaps(rng: random.Random, ts: list[float], n_gaps: int) -> list[float]:
    """Drop a few stretches of samples, some longer than the 5m lookback."""
    for _ in range(n_gaps):
        g0 = T0 + rng.uniform(600, SPAN - 900)
        length = rng.choice([90, 200, 420, 900])
        ts = [t for t in ts if not g0 <= t < g0 + length]
    return ts


def generate(seed: int = 7):
    """Families as (name, type, [(labels, t, v)]) with labels carrying __name__."""
    rng = random.Random(seed)
    fams = []

    series = []
    for job in ("api", "web"):
        for inst in ("i1", "i2", "i3"):
            for code in ("200", "500", "503"):
                interval = 15 if job == "api" else 30
                start = T0 + (rng.choice([0, 0, 0, 1800, 2710]))
                ts = _gaps(rng, _times(rng, interval, start, T0 + SPAN, jitter=inst != "i1"), rng.randint(0, 2))
                v, vals = rng.uniform(0, 5000), []
                rate = {"200": 20.0, "500": 0.7, "503": 0.2}[code] * rng.uniform(0.5, 1.5)
                for t in ts:
                    if rng.random() < 0.01:
                        v = rng.uniform(0, 5)  # a counter reset (process restart)
                    v += max(0.0, rng.gauss(rate * interval, rate * interval / 3))
                    vals.append(round(v, 3))
                series.append(({"__name__": "http_requests_total", "job": job, "instance": inst, "code": code},
                                ts, vals))
    fams.append(("http_requests", "counter", series))

    series = []
    for inst in ("i1", "i2", "i3"):
        for mode in ("user", "system"):
            ts = _gaps(rng, _times(rng, 30, T0, T0 + SPAN, jitter=True), 1)
            x, vals = rng.uniform(0.1, 0.9), []
            for _ in ts:
                x = abs(x + rng.gauss(0, 0.05))  # reflect at 0 and 1: no clamped ties for topk
                x = 2.0 - x if x > 1.0 else x
                vals.append(round(x, 6))
            series.append(({"__name__": "cpu_usage", "instance": inst, "mode": mode, "job": "api"}, ts, vals))
    fams.append(("cpu_usage", "gauge", series))

    series = []
    for svc in ("checkout", "search", "auth"):
        for region in ("eu", "us"):
            ts = _times(rng, 15, T0 + rng.choice([0, 3000]), T0 + SPAN - rng.choice([0, 1200]), jitter=False)
            vals = [float(rng.randint(0, 40)) for _ in ts]
            series.append(({"__name__": "queue_depth", "service": svc, "region": region}, ts, vals))
    fams.append(("queue_depth", "gauge", series))

    series = []
    for node in ("n1", "n2"):
        ts = _times(rng, 60, T0, T0 + SPAN, jitter=False)
        base = rng.uniform(2e9, 8e9)
        vals = [round(base + 1e6 * i + rng.gauss(0, 1e7)) for i in range(len(ts))]
        series.append(({"__name__": "node_memory_bytes", "node": node}, ts, vals))
    fams.append(("node_memory_bytes", "gauge", series))

    series = []
    ts = _times(rng, 30, T0, T0 + SPAN, jitter=False)
    vals = [math.nan if rng.random() < 0.15 else rng.uniform(-10, 10) for _ in ts]
    series.append(({"__name__": "flaky_gauge", "instance": "i1"}, ts, vals))
    fams.append(("flaky_gauge", "gauge", series))

    # A batch job: starts late, stops for 20 minutes, comes back.
    ts = [t for t in _times(rng, 60, T0 + 1500, T0 + SPAN, jitter=False) if not T0 + 3600 <= t < T0 + 4800]
    fams.append(("batch_heartbeat", "gauge",
                 [({"__name__": "batch_heartbeat", "job": "batch"}, ts, [float(t) for t in ts])]))

    series = []
    for job in ("api", "web"):
        for inst in ("i1", "i2", "i3"):
            ts = _gaps(rng, _times(rng, 60, T0, T0 + SPAN, jitter=False), 1)
            vals = [0.0 if rng.random() < 0.1 else 1.0 for _ in ts]
            series.append(({"__name__": "up", "job": job, "instance": inst}, ts, vals))
    fams.append(("up", "gauge", series))

    series = []
    for inst, version in (("i1", "1.4.2"), ("i2", "1.4.2"), ("i3", "1.5.0")):
        ts = _times(rng, 60, T0, T0 + SPAN, jitter=False)
        series.append(({"__name__": "build_info", "instance": inst, "version": version}, ts, [1.0] * len(ts)))
    fams.append(("build_info", "gauge", series))

    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    series = []
    for job in ("api", "web"):
        for inst in ("i1", "i2"):
            ts = _times(rng, 60, T0 + rng.choice([0, 1200]), T0 + SPAN, jitter=False)
            counts = [0.0] * len(bounds)
            total = 0.0
            rows: list[list[float]] = [[] for _ in bounds]
            sums, cnts = [], []
            for _ in ts:
                if rng.random() < 0.01:
                    counts, total = [0.0] * len(bounds), 0.0
                for _ in range(rng.randint(0, 60)):
                    obs = rng.lognormvariate(-1.5 if job == "api" else -0.7, 0.8)
                    total += obs
                    for k, b in enumerate(bounds):
                        if obs <= float(b):
                            counts[k] += 1
                for k in range(len(bounds)):
                    rows[k].append(counts[k])
                sums.append(round(total, 4))
                cnts.append(counts[-1])
            lab = {"job": job, "instance": inst}
            for k, b in enumerate(bounds):
                series.append(({"__name__": "request_duration_seconds_bucket", **lab, "le": b}, ts, rows[k]))
            series.append(({"__name__": "request_duration_seconds_sum", **lab}, ts, sums))
            series.append(({"__name__": "request_duration_seconds_count", **lab}, ts, cnts))
    fams.append(("request_duration_seconds", "histogram", series))

    series = []
    for inst in ("i1", "i2"):
        ts = _times(rng, 30, T0, T0 + SPAN, jitter=True)
        for q, scale in (("0.5", 0.1), ("0.9", 0.3), ("0.99", 0.8)):
            series.append(({"__name__": "rpc_latency_seconds", "instance": inst, "quantile": q}, ts,
                           [round(scale * rng.uniform(0.8, 1.2), 5) for _ in ts]))
        c, s, cs, ss = 0.0, 0.0, [], []
        for _ in ts:
            k = rng.randint(0, 30)
            c += k
            s += k * 0.12
            cs.append(c)
            ss.append(round(s, 4))
        series.append(({"__name__": "rpc_latency_seconds_sum", "instance": inst}, ts, ss))
        series.append(({"__name__": "rpc_latency_seconds_count", "instance": inst}, ts, cs))
    fams.append(("rpc_latency_seconds", "summary", series))
    return fams


def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def to_openmetrics(fams) -> str:
    """OpenMetrics text as promtool accepts it: one family at a time, series by series,
    samples in time order, ``# EOF`` last."""
    lines = []
    for name, typ, series in fams:
        lines.append(f"# TYPE {name} {typ}")
        for labels, ts, vals in series:
            body = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
            sel = f"{labels['__name__']}{{{body}}}" if body else labels["__name__"]
            for t, v in zip(ts, vals):
                lines.append(f"{sel} {_fmt_value(v)} {t:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def to_source(fams) -> InMemorySeriesSource:
    return InMemorySeriesSource(
        [(labels, np.array(ts, float), np.array(vals, float)) for _, _, series in fams for labels, ts, vals in series]
    )


# ------------------------------------------------------------------------------- queries

QUERIES = [
    # selectors, offsets, literals
    "http_requests_total",
    'http_requests_total{job="api",code!="200"}',
    '{__name__=~"cpu_usage|queue_depth",instance!~"i3"}',
    "cpu_usage offset 7m",
    "queue_depth @ 1700003000",
    "42",
    "-(1 + 2) * 3 ^ 2 ^ 0.5 % 5",
    # counters
    "rate(http_requests_total[1m])",
    "rate(http_requests_total[5m] offset 2m)",
    'sum by (job) (rate(http_requests_total{code=~"5.."}[1m]))',
    "increase(http_requests_total[10m])",
    "irate(http_requests_total[2m])",
    "resets(http_requests_total[30m])",
    "changes(up[15m])",
    "delta(cpu_usage[10m])",
    "idelta(queue_depth[1m])",
    "deriv(node_memory_bytes[10m])",
    "predict_linear(cpu_usage[15m], 3600)",
    # over_time
    "avg_over_time(cpu_usage[5m])",
    "min_over_time(flaky_gauge[5m])",
    "max_over_time(flaky_gauge[3m])",
    "sum_over_time(queue_depth[2m])",
    "count_over_time(http_requests_total[3m])",
    "last_over_time(cpu_usage[10m])",
    "quantile_over_time(0.9, queue_depth[10m])",
    "stddev_over_time(cpu_usage[10m])",
    "stdvar_over_time(queue_depth[5m])",
    "present_over_time(up[2m])",
    'absent_over_time(up{job="api",instance="i1"}[2m])',
    'absent_over_time(batch_heartbeat{job="batch"}[5m])',
    'absent(batch_heartbeat{job="batch",instance=~".*"})',
    "time() - batch_heartbeat",
    "stddev_over_time(flaky_gauge[2m])",
    "quantile_over_time(0.5, flaky_gauge[5m])",
    "sum_over_time(flaky_gauge[5m]) + avg_over_time(flaky_gauge[5m])",
    "last_over_time(flaky_gauge[1m])",
    "changes(flaky_gauge[10m])",
    "deriv(flaky_gauge[5m])",
    "flaky_gauge > 0",
    "flaky_gauge == bool flaky_gauge",
    "max(flaky_gauge) + min(flaky_gauge) + stddev(flaky_gauge)",
    'absent(nonexistent{job="x",env=~"p.*"})',
    'absent(up{job="api"})',
    # aggregation
    "avg without (mode) (cpu_usage)",
    "max by (instance) (cpu_usage) - min by (instance) (cpu_usage)",
    "count(up == 1) by (job)",
    "stddev by (service) (queue_depth)",
    "stdvar(cpu_usage)",
    "group by (job) (up)",
    "topk(2, cpu_usage)",
    "bottomk by (instance) (1, cpu_usage)",
    "quantile by (mode) (0.75, cpu_usage)",
    'count_values("state", up)',
    "sum(rate(http_requests_total[5m])) by (instance, job)",
    # binary operators and matching
    "cpu_usage * 100 > 50",
    "50 < cpu_usage * 100",
    "cpu_usage > bool 0.5",
    "queue_depth / 0",
    "flaky_gauge % 3",
    "-queue_depth + 1",
    "rate(http_requests_total[5m]) / ignoring(code) group_left sum by (job, instance) (rate(http_requests_total[5m]))",
    "up * on(instance) group_left(version) build_info",
    'sum by (instance) (cpu_usage) / on(instance) sum by (instance) (rate(http_requests_total{job="api"}[5m]))',
    "rpc_latency_seconds_sum / rpc_latency_seconds_count",
    "cpu_usage and on(instance) (up == 1)",
    "queue_depth or on(service) vector(1)",
    "up unless (cpu_usage > 0.5)",
    'up or label_replace(build_info, "job", "x", "", "")',
    "1 - (queue_depth != bool 0)",
    # histograms and summaries
    "histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le, job) (rate(request_duration_seconds_bucket[10m])))",
    "histogram_quantile(0.99, sum by (le) (increase(request_duration_seconds_bucket[5m])))",
    'rpc_latency_seconds{quantile="0.99"}',
    # other functions
    "abs(flaky_gauge)",
    "ceil(cpu_usage * 10) + floor(cpu_usage * 10)",
    "round(cpu_usage, 0.05)",
    "round(flaky_gauge)",
    "exp(cpu_usage) + ln(cpu_usage)",
    "log2(queue_depth) + log10(queue_depth)",
    "ln(node_memory_bytes)",
    "rate(rpc_latency_seconds_count[5m])",
    "increase(request_duration_seconds_count[1h])",
    "sum without (instance, code) (rate(http_requests_total[2m]))",
    "avg(cpu_usage) by (job)",
    "topk(1, sum by (job) (rate(http_requests_total[5m])))",
    "sum by (job) (increase(http_requests_total[5m])) > 1000",
    "cpu_usage offset -5m",
    "sum(queue_depth @ end())",
    "max_over_time(queue_depth[10m:30s] offset 5m)",
    "sqrt(queue_depth)",
    "clamp(flaky_gauge, -2, 3)",
    "clamp_min(cpu_usage, 0.4)",
    "clamp_max(queue_depth, 10)",
    "scalar(sum(up))",
    "vector(time())",
    "time() - timestamp(cpu_usage)",
    "timestamp(sum(up))",
    'label_replace(cpu_usage, "host", "node-$1", "instance", "i(.*)")',
    'label_join(up, "id", "/", "job", "instance")',
    "sort_desc(queue_depth)",
    "max_over_time(rate(http_requests_total[1m])[10m:1m])",
    "avg_over_time(sum(queue_depth)[7m:45s])",
    "hour(vector(time())) + minute()",
    "holt_winters(cpu_usage[10m], 0.5, 0.3)",
    "sin(cpu_usage) + acos(cpu_usage) + tanh(cpu_usage) - atanh(cpu_usage)",
    "asinh(queue_depth) + acosh(queue_depth) + deg(queue_depth) - rad(queue_depth) + pi()",
    "1 > bool 2",
    "sum(http_requests_total) # a trailing comment",
]

# Queries Prometheus rejects when run: both engines must refuse them.
FAILING = [
    "queue_depth + on(region) queue_depth",
    "cpu_usage / ignoring(mode) cpu_usage",
]

RANGES = [
    (T0 + 900, T0 + 6300, 60),
    (T0 + 1200.5, T0 + 4800, 30),
    (T0 + 3000, T0 + 4500, 15),
]
INSTANTS = [T0 + 2222, T0 + 5000]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    reason = missing_binaries()
    if reason:
        pytest.skip(reason)
    fams = generate()
    workdir = tmp_path_factory.mktemp("prometheus")
    with PrometheusServer(to_openmetrics(fams), workdir) as url:
        yield url, to_source(fams)


def _key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


def _compare(query: str, ours: dict[tuple, list[tuple[float, float]]], theirs: dict[tuple, list[tuple[float, float]]]):
    assert set(ours) == set(theirs), (
        f"{query}: label sets differ\n only ours: {sorted(set(ours) - set(theirs))}\n"
        f" only Prometheus: {sorted(set(theirs) - set(ours))}"
    )
    for key in ours:
        a, b = ours[key], theirs[key]
        ta, tb = [round(t, 3) for t, _ in a], [round(t, 3) for t, _ in b]
        assert ta == tb, f"{query} {dict(key)}: timestamps differ: ours {ta[:8]}... prometheus {tb[:8]}..."
        for (t, va), (_, vb) in zip(a, b):
            assert _close(va, vb), f"{query} {dict(key)} at {t}: ours {va!r}, prometheus {vb!r}"


def _prom_matrix(data) -> dict:
    out = {}
    for item in data["result"]:
        pts = item.get("values") or [item["value"]]
        out[_key(item["metric"])] = [(float(t), float(v)) for t, v in pts]
    return out


@pytest.mark.parametrize("query", QUERIES)
def test_range_query_matches_prometheus(world, query):
    url, source = world
    for start, end, step in RANGES:
        theirs = _prom_matrix(api_get(url, "/api/v1/query_range", query=query, start=start, end=end, step=step))
        series = evaluate_range(query, source, start, end, step)
        ours = {_key(s.labels): list(zip(s.t.tolist(), s.v.tolist())) for s in series}
        assert len(ours) == len(series), f"{query}: duplicate label sets in our result"
        _compare(f"{query} [{start}..{end} step {step}]", ours, theirs)


@pytest.mark.parametrize("query", QUERIES)
def test_instant_query_matches_prometheus(world, query):
    url, source = world
    for t in INSTANTS:
        data = api_get(url, "/api/v1/query", query=query, time=t)
        value = evaluate_instant(query, source, t)
        if data["resultType"] == "scalar":
            assert isinstance(value, float), f"{query}: Prometheus gives a scalar, we gave {value!r}"
            assert _close(value, float(data["result"][1])), f"{query} at {t}: {value} vs {data['result'][1]}"
            continue
        assert not isinstance(value, float), f"{query}: we gave a scalar, Prometheus a {data['resultType']}"
        ours = {_key(s.labels): list(zip(s.t.tolist(), s.v.tolist())) for s in value}
        _compare(f"{query} @ {t}", ours, _prom_matrix(data))
        if query.startswith("sort"):
            prom_order = [_key(item["metric"]) for item in data["result"]]
            assert [_key(s.labels) for s in value] == prom_order, f"{query}: order differs"


def test_range_vector_instant_query_matches_prometheus(world):
    url, source = world
    for query in ("cpu_usage[5m]", "http_requests_total{code='500'}[2m] offset 1m", "rate(up[5m])[10m:2m]"):
        for t in INSTANTS:
            data = api_get(url, "/api/v1/query", query=query, time=t)
            ours = {_key(s.labels): list(zip(s.t.tolist(), s.v.tolist())) for s in evaluate_instant(query, source, t)}
            _compare(f"{query} @ {t}", ours, _prom_matrix(data))


@pytest.mark.parametrize("query", FAILING)
def test_both_engines_refuse_the_same_queries(world, query):
    url, source = world
    start, end, step = RANGES[0]
    with pytest.raises(RuntimeError):
        api_get(url, "/api/v1/query_range", query=query, start=start, end=end, step=step)
    with pytest.raises(PromQLError):
        evaluate_range(query, source, start, end, step)


# ------------------------------------------------------------------- the test server itself

TINY = """# TYPE jobs_total counter
jobs_total{queue="a"} 1 1700000000
jobs_total{queue="a"} 4 1700000060
# EOF
"""


def test_prometheus_factory_serves_the_given_samples(prometheus_factory):
    url = prometheus_factory(TINY)
    data = api_get(url, "/api/v1/query", query="jobs_total", time=1700000060)
    assert [(r["metric"], r["value"][1]) for r in data["result"]] == [
        ({"__name__": "jobs_total", "queue": "a"}, "4")
    ]


def test_prometheus_server_stops_on_exit_and_reports_bad_input(tmp_path):
    if missing_binaries():
        pytest.skip(missing_binaries())
    server = PrometheusServer(TINY, tmp_path / "ok")
    with server as url:
        proc = server.proc
        assert api_get(url, "/api/v1/query", query="1")["result"][1] == "1"
    assert proc is not None and proc.poll() is not None
    with pytest.raises(RuntimeError, match="promtool could not load"):
        with PrometheusServer("not openmetrics\n", tmp_path / "bad"):
            pass

"""How fast the local PromQL evaluator answers typical investigation queries.

    .venv/bin/python benchmarks/bench_promql.py [--series 300] [--points 300]

Prints the median wall time of each query over a few runs. The data: counters scraped every
15s with occasional resets, ``--series`` of them split over jobs and status codes, each with
``--points`` samples; range queries cover the whole span at a 15s step (``--points`` steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from compass_tui.telemetry.promql import InMemorySeriesSource, evaluate_range

QUERIES = [
    'sum by (job) (rate(http_requests_total{code=~"5.."}[1m]))',
    "sum by (job) (rate(http_requests_total[5m]))",
    "rate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "max_over_time(http_requests_total[5m])",
    "quantile_over_time(0.9, http_requests_total[5m])",
    'sum(rate(http_requests_total{code=~"5.."}[5m])) by (job) / sum(rate(http_requests_total[5m])) by (job)',
    "topk(5, rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, job) (rate(latency_seconds_bucket[5m])))",
]


def build(series: int, points: int, seed: int = 1) -> tuple[InMemorySeriesSource, float, float]:
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000.0
    t = t0 + np.arange(points) * 15.0
    data = []
    codes = ["200", "500", "503", "404"]
    for i in range(series):
        inc = rng.exponential(10.0, points)
        v = np.cumsum(inc)
        reset = rng.integers(0, points)
        v[reset:] -= v[reset] - inc[reset]  # one counter reset
        labels = {"__name__": "http_requests_total", "job": f"job{i % 10}", "instance": f"i{i}",
                  "code": codes[i % 4]}
        data.append((labels, t, v))
    bounds = ["0.1", "0.5", "1", "5", "+Inf"]
    for j in range(max(1, series // 20)):
        base = np.cumsum(rng.poisson(20, points)).astype(float)
        for k, le in enumerate(bounds):
            frac = (k + 1) / len(bounds)
            data.append(({"__name__": "latency_seconds_bucket", "job": f"job{j % 10}", "instance": f"h{j}", "le": le},
                         t, np.floor(base * frac) if le != "+Inf" else base))
    return InMemorySeriesSource(data), t0, float(t[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    t_build = time.perf_counter()
    source, start, end = build(args.series, args.points)
    print(f"{args.series} series x {args.points} points, built in {time.perf_counter() - t_build:.2f}s")
    for q in QUERIES:
        times = []
        for _ in range(args.runs):
            t1 = time.perf_counter()
            out = evaluate_range(q, source, start, end, 15)
            times.append(time.perf_counter() - t1)
        print(f"{statistics.median(times) * 1000:9.1f} ms  {len(out):6d} series  {q}")


if __name__ == "__main__":
    main()

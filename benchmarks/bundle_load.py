"""How long opening a bundle takes, how much memory it needs, and how fast a typical set of
50 queries runs against it.

    python benchmarks/bundle_load.py BUNDLE [BUNDLE ...] [--repeat N]

Each bundle (directory or .tar.gz) is measured in a fresh subprocess, so the peak RSS is
that bundle's own. Figures printed per bundle: open time (best and median of N), peak RSS
after opening and after the queries, and the query mix's total and slowest query.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SERVICE_KEYS = ("service", "service_name", "job", "app", "container")


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _queries(b) -> list[tuple[str, str, float, str]]:
    """The query mix of one investigation, shaped like the engine's: discovery, PromQL
    range queries on the red metrics and resources, log searches and counts, traces,
    annotations. Returns (verb, query, seconds, status) per query."""
    start, end = b.window
    step = b.step
    out: list[tuple[str, str, float, str]] = []

    async def timed(verb: str, query: str, coro):
        t0 = time.perf_counter()
        r = await coro
        status = getattr(r, "status", "ok")
        out.append((verb, query, time.perf_counter() - t0, status))
        return r

    names = await timed("metric_names", "", b.metric_names())
    sel = await timed("series", "{__name__=~\".+\"}", b.series('{__name__=~".+"}', start, end))
    key = next((k for k in SERVICE_KEYS if any(k in s for s in sel)), "job")
    services = sorted({s[key] for s in sel if key in s})[:4] or ["x"]
    req = next((n for n in names if n.endswith("_requests_total") or n == "grpc_server_handled_total"), "http_requests_total")
    hist = next((n for n in names if n.endswith("_seconds_bucket")), "http_request_duration_seconds_bucket")
    promql = [
        f"sum by ({key}) (rate({req}[1m]))",
        f'sum by ({key}) (rate({req}{{code=~"5.."}}[1m])) / sum by ({key}) (rate({req}[1m]))',
        f"histogram_quantile(0.99, sum by ({key}, le) (rate({hist}[5m])))",
        f"sum by ({key}) (rate(process_cpu_seconds_total[1m]))",
        f"max by ({key}) (process_resident_memory_bytes)",
        "up == 0",
        f"increase(kube_pod_container_status_restarts_total[5m])",
        f"max by ({key}) (hikaricp_connections_active / hikaricp_connections_max)",
        "sum(rate(node_netstat_Tcp_RetransSegs[1m])) / sum(rate(node_netstat_Tcp_OutSegs[1m]))",
        "min(probe_ssl_earliest_cert_expiry) - time()",
        f"sum by ({key}) (rate({req}[5m] offset 10m))",
        "avg_over_time(up[10m])",
        f"topk(3, sum by ({key}) (rate({req}[1m])))",
    ]
    for s in (services * 4)[:4]:
        promql.append(f'sum(rate({req}{{{key}="{s}"}}[1m]))')
        promql.append(f'histogram_quantile(0.95, sum by (le) (rate({hist}{{{key}="{s}"}}[5m])))')
    assert len(promql) >= 20
    for q in promql[:20]:
        await timed("query_range", q, b.query_range(q, start, end, step))
    for q in promql[:5]:
        await timed("query_instant", q, b.query_instant(q, end))
    log_names = await timed("log_label_names", "", b.log_label_names())
    lkey = next((k for k in ("service_name", "service", "app", "job") if k in log_names), "job")
    lvals = (await timed("log_label_values", lkey, b.log_label_values(lkey)))[:3] or ["x"]
    logs = [f'{{{lkey}=~".+"}} |= "error"', f'{{{lkey}=~".+"}} |~ "(?i)timeout|refused"']
    for v in lvals:
        logs += [f'{{{lkey}="{v}"}}', f'{{{lkey}="{v}"}} != "debug" |~ "5[0-9][0-9]"']
    logs += [f'{{{lkey}=~".+"}} | logfmt | level="error"', f'{{{lkey}=~".+"}} | json | level="error"']
    for q in logs[:10]:
        await timed("query_logs", q, b.query_logs(q, start, end, 1000))
    metrics = [
        f'sum by ({lkey}) (count_over_time({{{lkey}=~".+"}} |= "error" [1m]))',
        f'sum by ({lkey}) (rate({{{lkey}=~".+"}}[5m]))',
        f'sum(count_over_time({{{lkey}=~".+"}} |~ "(?i)exception|panic" [1m]))',
        f'sum by ({lkey}) (bytes_over_time({{{lkey}=~".+"}}[5m]))',
    ] + [f'count_over_time({{{lkey}="{v}"}}[1m])' for v in lvals]
    for q in metrics[:6]:
        await timed("query_log_metric", q, b.query_log_metric(q, start, end, step))
    tsvc = services + [None]
    for s in tsvc[:3]:
        await timed("search_traces", f"service={s} errors", b.search_traces(start, end, service=s, error_only=True))
    await timed("search_traces", "all", b.search_traces(start, end))
    await timed("annotations", "", b.annotations(start, end))
    return out


def measure_one(path: str, repeat: int) -> dict:
    """Open the bundle ``repeat`` times and run the query mix once; figures as a dict."""
    from compass_tui.telemetry.bundle import open_bundle

    opens = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        b = open_bundle(path)
        opens.append(time.perf_counter() - t0)
        if _ != repeat - 1:
            b.close()
    rss_open = _rss_mb()
    t0 = time.perf_counter()
    results = asyncio.run(_queries(b))
    q_total = time.perf_counter() - t0
    # second pass: the caches are warm, as for the later agents of an investigation
    t0 = time.perf_counter()
    asyncio.run(_queries(b))
    q_warm = time.perf_counter() - t0
    b.close()
    slow = max(results, key=lambda r: r[2])
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r[3]] = statuses.get(r[3], 0) + 1
    return {
        "bundle": Path(path).name,
        "open_best_s": min(opens),
        "open_median_s": statistics.median(opens),
        "rss_after_open_mb": rss_open,
        "queries": len(results),
        "queries_total_s": q_total,
        "queries_warm_s": q_warm,
        "slowest_query_s": slow[2],
        "slowest_query": f"{slow[0]}: {slow[1]}",
        "statuses": statuses,
        "peak_rss_mb": _rss_mb(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.bundles[0], args.repeat)))
        return 0
    print(f"{'bundle':44} {'open best':>9} {'median':>7} {'RSS open':>8} {'50 q':>7} {'warm':>7} {'slowest':>7} {'peak RSS':>8}")
    for path in args.bundles:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", "--repeat", str(args.repeat), path], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(f"{path}: failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            continue
        r = json.loads(proc.stdout)
        print(
            f"{r['bundle'][:44]:44} {r['open_best_s']:8.3f}s {r['open_median_s']:6.3f}s {r['rss_after_open_mb']:6.0f}MB"
            f" {r['queries_total_s']:6.3f}s {r['queries_warm_s']:6.3f}s {r['slowest_query_s']:6.3f}s {r['peak_rss_mb']:6.0f}MB"
        )
        print(f"    {r['queries']} queries, statuses {r['statuses']}; slowest: {r['slowest_query'][:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

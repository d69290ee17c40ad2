"""Live-path parity: the same incident investigated through a real Prometheus behind the real
prometheus-mcp-server, and from the bundle's own metrics (the same data, nothing else).

    python benchmarks/live_parity.py [--seeds 4] [--seed0 1] [--realism random,off] [--faults a,b]
                                     [--diff N] [--out results.json]

For each metric-visible fault and seed the simulator writes a bundle; its metrics.om is
backfilled into a fresh Prometheus (promtool), which prometheus-mcp-server serves over stdio to
COMPASS's MCP backend. The metrics-only bundle (bundle.json, incident.json, metrics.om) is the
reference. Per fault it prints how many incidents gave the same top hypothesis (fault@service),
the same whole ranking (fault, service, status), and the first difference. ``--diff N`` also
compares, query by query, the answers both backends gave to the queries the engine issued and
prints the first N that differ (what makes the rankings part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRIC_FAULTS = ["cpu_saturation", "memory_leak", "disk_full", "cache_failure", "dns_failure",
                 "db_slow_queries", "db_connection_pool_exhaustion", "traffic_surge"]


class Recorder:
    """A Backend that passes every verb through and keeps what each metric verb answered."""

    def __init__(self, inner):
        self.inner = inner
        self.answers: dict[tuple, object] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def query_range(self, promql, start, end, step):
        res = await self.inner.query_range(promql, start, end, step)
        self.answers[("range", promql, start, end, step)] = res
        return res

    async def query_instant(self, promql, t):
        res = await self.inner.query_instant(promql, t)
        self.answers[("instant", promql, t)] = res
        return res

    async def series(self, selector, start, end):
        res = await self.inner.series(selector, start, end)
        self.answers[("series", selector, start, end)] = res
        return res

    async def metric_names(self):
        res = await self.inner.metric_names()
        self.answers[("names",)] = res
        return res


def result_difference(a, b) -> str | None:
    """Why two answers to one query differ (None when they agree within float noise)."""
    if isinstance(a, list) or isinstance(b, list):
        ka = sorted(tuple(sorted(d.items())) for d in a or []) if not all(isinstance(x, str) for x in a or []) else a
        kb = sorted(tuple(sorted(d.items())) for d in b or []) if not all(isinstance(x, str) for x in b or []) else b
        return None if ka == kb else f"{len(a or [])} vs {len(b or [])} items"
    if a.status != b.status:
        return f"status {a.status} vs {b.status} ({a.error or b.error or ''})"
    if (a.scalar is None) != (b.scalar is None) or (a.scalar is not None and not np.isclose(a.scalar, b.scalar)):
        return f"scalar {a.scalar} vs {b.scalar}"
    ka = {tuple(sorted(s.labels.items())): s for s in a.series}
    kb = {tuple(sorted(s.labels.items())): s for s in b.series}
    if ka.keys() != kb.keys():
        only_a, only_b = sorted(set(ka) - set(kb))[:1], sorted(set(kb) - set(ka))[:1]
        return f"series {len(ka)} vs {len(kb)}; only bundle {only_a}; only live {only_b}"
    for k in ka:
        sa, sb = ka[k], kb[k]
        if len(sa.t) != len(sb.t) or not np.array_equal(sa.t, sb.t):
            extra_a = sorted(set(sa.t.tolist()) - set(sb.t.tolist()))
            extra_b = sorted(set(sb.t.tolist()) - set(sa.t.tolist()))
            return f"{dict(k)}: {len(sa.t)} vs {len(sb.t)} points; only bundle t={extra_a[:3]}; only live t={extra_b[:3]}"
        if not np.allclose(sa.v, sb.v, rtol=1e-6, atol=1e-9, equal_nan=True):
            i = int(np.argmax(~np.isclose(sa.v, sb.v, rtol=1e-6, atol=1e-9, equal_nan=True)))
            return f"{dict(k)}: at t={sa.t[i]:.0f} {sa.v[i]!r} vs {sb.v[i]!r}"
    return None


def ranking(report) -> list[tuple[str, str, str]]:
    return [(h.fault, h.service, h.status) for h in report.hypotheses]


def top(rank: list[tuple[str, str, str]]) -> str | None:
    alive = [f"{f}@{s}" for f, s, st in rank if st != "disproven"]
    return alive[0] if alive else None


def first_difference(a: list, b: list) -> str | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"#{i + 1} bundle {x[0]}@{x[1]} {x[2]} / live {y[0]}@{y[1]} {y[2]}"
    if len(a) != len(b):
        return f"length bundle {len(a)} / live {len(b)}"
    return None


async def investigate_both(path: Path, work: Path, diff: int, request: str = "bundle", fit: bool = True) -> dict:
    """One incident, both ways; the figures and (when asked) the differing queries."""
    from compass_tui.config import McpServerConfig
    from compass_tui.engine.deps import EngineDeps
    from compass_tui.engine.orchestrator import run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.telemetry.bundle import open_bundle
    from compass_tui.telemetry.mcp_backend import McpBackend
    from tests.prometheus_server import PrometheusServer

    metrics_only = work / "metrics-only"
    metrics_only.mkdir()
    for name in ("bundle.json", "incident.json", "metrics.om"):
        shutil.copy(path / name, metrics_only / name)
    offline = open_bundle(metrics_only)
    try:
        req = request_from_bundle_meta(offline.manifest, offline.incident)
        ref_rec = Recorder(offline)
        t0 = time.perf_counter()
        ref = await run_to_report(req, EngineDeps(backend=ref_rec))
        if request == "alert":
            # as `compass investigate --alert` and `compass watch` build it: window and step from the alert
            from compass_tui.engine.request import DEFAULT_BASELINE_S, request_from_alert

            req = request_from_alert(offline.incident, baseline_s=DEFAULT_BASELINE_S, now=time.time())
        elif request == "alert-step":
            # the bundle's window, the step the alert path would choose for it
            from compass_tui.engine.request import request_from_alert

            req = request_from_alert(offline.incident, window=offline.window)
        bundle_s = time.perf_counter() - t0
        with PrometheusServer((path / "metrics.om").read_text(), work / "prom") as url:
            script = Path(sys.executable).parent / "prometheus-mcp-server"
            cfg = McpServerConfig(command=str(script), args=[], env={"PROMETHEUS_URL": url}, cwd=str(work))
            async with McpBackend({"prometheus": cfg}, window=offline.window) as mb:
                if request != "bundle" and fit:
                    # what the live path does once its sources are open (compass_tui.service)
                    from compass_tui.live_sources import fit_step_to_samples

                    await fit_step_to_samples(mb, req)
                live_rec = Recorder(mb)
                t0 = time.perf_counter()
                live = await run_to_report(req, EngineDeps(backend=live_rec))
                live_s = time.perf_counter() - t0
                calls = len(mb.calls)
                failed = [c.error for c in mb.calls if not c.ok]
                diffs: list[str] = []
                if diff:
                    # the same queries, both ways: what the engine saw differently
                    for key, got in live_rec.answers.items():
                        want = ref_rec.answers.get(key)
                        if want is None:
                            want = await {"range": offline.query_range, "instant": offline.query_instant,
                                          "series": offline.series}[key[0]](*key[1:]) if key[0] != "names" else await offline.metric_names()
                        why = result_difference(want, got)
                        if why:
                            diffs.append(f"{key[0]} {key[1]!s:.160}: {why}")
                    only_ref = [k for k in ref_rec.answers if k not in live_rec.answers]
                    if only_ref:
                        diffs.append(f"{len(only_ref)} queries only the bundle run issued, e.g. {only_ref[0]!s:.200}")
    finally:
        offline.close()
    a, b = ranking(ref), ranking(live)
    return {
        "top_bundle": top(a), "top_live": top(b), "same_top": top(a) == top(b), "same_ranking": a == b,
        "first_difference": first_difference(a, b), "live_s": live_s, "bundle_s": bundle_s, "calls": calls,
        "failed_calls": failed[:3], "queries_differing": diffs, "degraded_live": [d.reason for d in live.degraded][:5],
    }


def main() -> int:
    from compass_tui.sim import SimOptions, generate, write_bundle

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4, help="seeds per fault and realism mode")
    ap.add_argument("--seed0", type=int, default=1)
    ap.add_argument("--realism", default="random,off", help="comma-separated realism modes")
    ap.add_argument("--faults", default=",".join(METRIC_FAULTS))
    ap.add_argument("--diff", type=int, default=0, help="print up to N differing query answers per mismatch")
    ap.add_argument("--request", choices=("bundle", "alert", "alert-step"), default="bundle",
                    help="the live run's request: the bundle's window and step (default), or built from the alert as "
                         "`compass investigate --alert` does (alert), or the bundle's window with the alert path's step")
    ap.add_argument("--no-fit", action="store_true",
                    help="with an alert request, keep its step (do not fit it to the scrape interval)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    faults = [f for f in a.faults.split(",") if f]
    modes = [m for m in a.realism.split(",") if m]
    rows = []
    t_all = time.perf_counter()
    for fault in faults:
        for mode in modes:
            for seed in range(a.seed0, a.seed0 + a.seeds):
                with tempfile.TemporaryDirectory(prefix="parity-") as d:
                    work = Path(d)
                    path = Path(write_bundle(generate(fault, seed, SimOptions(realism=mode)), work / "b"))
                    try:
                        r = asyncio.run(investigate_both(path, work, a.diff, a.request, not a.no_fit))
                    except Exception as exc:  # noqa: BLE001 - a failing run is a row, not a crash
                        r = {"same_top": False, "same_ranking": False, "first_difference": f"error: {type(exc).__name__}: {exc}",
                             "queries_differing": [], "top_bundle": None, "top_live": None}
                r.update(fault=fault, seed=seed, realism=mode)
                rows.append(r)
                mark = "ok " if r["same_ranking"] else ("top" if r["same_top"] else "XX ")
                print(f"{mark} {fault:30} {mode:6} seed {seed:3}: bundle {r['top_bundle']} / live {r['top_live']}"
                      + (f"  [{r['first_difference']}]" if r["first_difference"] else ""), flush=True)
                for q in r["queries_differing"][: a.diff]:
                    print(f"      {q}", flush=True)
    print(f"\n{'fault':30} {'n':>3} {'same top-1':>10} {'same ranking':>12}  first difference")
    for fault in faults:
        rs = [r for r in rows if r["fault"] == fault]
        first = next((f"{r['realism']} seed {r['seed']}: {r['first_difference']}" for r in rs if r["first_difference"]), "")
        print(f"{fault:30} {len(rs):>3} {sum(r['same_top'] for r in rs):>10} {sum(r['same_ranking'] for r in rs):>12}  {first}")
    print(f"{'ALL':30} {len(rows):>3} {sum(r['same_top'] for r in rows):>10} {sum(r['same_ranking'] for r in rows):>12}")
    walls = [r["live_s"] for r in rows if "live_s" in r]
    if walls:
        print(f"live investigation median {float(np.median(walls)):.1f} s; benchmark {time.perf_counter() - t_all:.0f} s")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

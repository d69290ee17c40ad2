"""``compass eval [DIR...] [--config A --config B]``: re-run your recorded incidents under
one or several configs and score each: top-1, top-3, time to first hypothesis, cost.

The answer for each incident is the cause the engineer confirmed or named in the memory
(matched on the alert, the service and when it fired), else a ``truth.json`` in the bundle
(simulated incidents). The memory itself is not consulted while re-running: it would recall
the very answer being scored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tarfile
import time
from pathlib import Path


def _err(msg: str) -> int:
    print(f"compass eval: error: {msg}", file=sys.stderr)
    return 2


def find_bundles(paths: list[str]) -> list[Path]:
    """Bundles named directly or found one level inside the folders given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.name.endswith(".tar.gz") or (p.is_dir() and (p / "bundle.json").exists()):
            out.append(p)
        elif p.is_dir():
            for q in sorted(p.iterdir()):
                if q.name.endswith(".tar.gz") or (q.is_dir() and (q / "bundle.json").exists()):
                    out.append(q)
    return out


def _truth_file(bundle: Path) -> tuple[str, str] | None:
    try:
        if bundle.is_dir():
            doc = json.loads((bundle / "truth.json").read_text())
        else:
            with tarfile.open(bundle) as tar:
                m = next((m for m in tar.getmembers() if m.name.endswith("/truth.json") or m.name == "truth.json"), None)
                if m is None:
                    return None
                doc = json.loads(tar.extractfile(m).read())
        c = doc["culprit"]
        return str(c["fault"]), str(c["service"])
    except (OSError, KeyError, ValueError, tarfile.TarError, TypeError):
        return None


def _store_answers(store_path: str | None) -> list[dict]:
    """(alertname, service, started_at, cause) of every recorded investigation with a verdict."""
    from compass_tui.store import Store, StoreUnavailable, default_path
    from compass_tui.store.store import outcome

    p = Path(store_path).expanduser() if store_path else default_path()
    if not p.exists():
        return []
    try:
        store = Store.open(p, read_only=True)
    except StoreUnavailable as e:
        print(f"compass eval: memory unavailable ({e}); using truth.json files only", file=sys.stderr)
        return []
    try:
        invs = store.outcomes()
    finally:
        store.close()
    out = []
    for inv in invs:
        cause, _ = outcome(inv)
        if cause is not None and inv["started_at"] is not None:
            out.append({**inv, "cause": cause})
    return out


def _answer(request, answers: list[dict]) -> tuple[str, str] | None:
    best = None
    for a in answers:
        if abs(a["started_at"] - request.started_at) <= 120 and (a["service"] in (None, request.service)):
            best = a["cause"]
    return best


async def _one(bundle: Path, cfg, answers: list[dict]) -> dict:
    from compass_tui.engine import Budget, EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.runbooks import load_configured
    from compass_tui.telemetry.bundle import open_bundle

    backend = open_bundle(bundle)
    try:
        request = request_from_bundle_meta(backend.manifest, backend.incident)
        want = _answer(request, answers)
        how = "your verdict"
        if want is None:
            want, how = _truth_file(bundle), "truth.json"
        budget = cfg.budget.to_budget() if cfg is not None else Budget()
        t0 = time.perf_counter()
        from compass_tui.llm.client import models_from_config

        llm = models_from_config(cfg) if cfg is not None else None  # a config with [models] is compared with its models
        report = await run_to_report(request, EngineDeps(backend=backend, budget=budget, runbooks=load_configured(cfg),
                                                         t0=t0, llm=llm))
    finally:
        await backend.aclose()
    ranked = [(h.fault, h.service) for h in report.hypotheses if h.status != "disproven"]
    return {"bundle": str(bundle), "answer": f"{want[0]}@{want[1]}" if want else None, "answer_from": how if want else None,
            "rank": (ranked.index(want) + 1) if want in ranked else None,
            "top": [f"{f}@{s}" for f, s in ranked[:3]], "first_hypothesis_s": report.timings.first_hypothesis_s,
            "total_s": report.timings.total_s, "queries": sum(a.queries for a in report.cost.by_agent.values()),
            "usd": report.cost.usd, "tokens": report.cost.prompt_tokens + report.cost.completion_tokens}


def score(rows: list[dict]) -> dict:
    """top-1, top-3, time to first hypothesis and cost over the incidents with an answer."""
    judged = [r for r in rows if r["answer"]]
    firsts = [r["first_hypothesis_s"] for r in rows if r["first_hypothesis_s"] is not None]

    def share(k: int) -> float | None:
        return round(sum(1 for r in judged if r["rank"] is not None and r["rank"] <= k) / len(judged), 4) if judged else None

    return {"incidents": len(rows), "with_answer": len(judged), "top1": share(1), "top3": share(3),
            "first_hypothesis_s_median": round(statistics.median(firsts), 3) if firsts else None,
            "total_s_mean": round(statistics.fmean(r["total_s"] for r in rows), 3) if rows else None,
            "queries_mean": round(statistics.fmean(r["queries"] for r in rows), 1) if rows else None,
            "usd_total": round(sum(r["usd"] for r in rows), 6), "tokens_total": sum(r["tokens"] for r in rows)}


def run_eval(args: argparse.Namespace) -> int:
    """Score each config on the recorded incidents and print a table (or JSON)."""
    from compass_tui.config import ConfigError, load_config

    bundles = find_bundles(args.dirs or [])
    if not args.dirs:
        return _err("name the bundles to re-run: compass eval DIR... (bundles from `compass snapshot`, or folders of them)")
    if not bundles:
        return _err(f"no bundles found in {', '.join(args.dirs)} (expected .tar.gz files or bundle directories)")
    configs = getattr(args, "config", None) or [None]
    loaded = []
    for c in configs:
        try:
            loaded.append((c or "current config", load_config(c)))
        except ConfigError as e:
            return _err(str(e))
    answers = _store_answers(getattr(args, "store", None))
    results = {}
    for name, cfg in loaded:
        rows = []
        for b in bundles:
            try:
                rows.append(asyncio.run(_one(b, cfg, answers)))
            except Exception as e:  # one unreadable bundle must not lose the others
                print(f"compass eval: {b}: skipped: {type(e).__name__}: {e}", file=sys.stderr)
        results[name] = {"score": score(rows), "incidents": rows}
    if getattr(args, "json", False):
        print(json.dumps(results, indent=2))
        return 0
    from compass_tui.commands.memory import _table

    def pct(x):
        return "-" if x is None else f"{x * 100:.0f}%"

    table = [["CONFIG", "INCIDENTS", "WITH ANSWER", "TOP-1", "TOP-3", "FIRST HYPOTHESIS", "TOTAL", "QUERIES", "USD"]]
    for name, r in results.items():
        s = r["score"]
        table.append([name, str(s["incidents"]), str(s["with_answer"]), pct(s["top1"]), pct(s["top3"]),
                      "-" if s["first_hypothesis_s_median"] is None else f"{s['first_hypothesis_s_median']:.2f} s",
                      "-" if s["total_s_mean"] is None else f"{s['total_s_mean']:.2f} s",
                      "-" if s["queries_mean"] is None else f"{s['queries_mean']:.0f}", f"{s['usd_total']:.4f}"])
    print(_table(table))
    print("\nanswers: your verdicts in the memory where recorded, else the bundle's truth.json; "
          "first hypothesis is the median, total and queries the mean per incident; the memory is not consulted")
    for name, r in results.items():
        for row in r["incidents"]:
            if row["answer"] and row["rank"] != 1:
                print(f"  {name}: {Path(row['bundle']).name}: wanted {row['answer']} ({row['answer_from']}), "
                      f"got {row['top'][:1] or ['nothing']}")
    return 0

"""Runbooks benchmark: do the shipped runbooks turn misses into hits on incidents whose cause
is outside the catalog, without spoiling the incidents the catalog already gets right?

    python benchmarks/runbooks.py [--per-cause 5] [--per-fault 2] [--seed0 3000] [--jobs 2] [--out results.json]

Every incident is investigated twice through the same path as ``compass investigate
--bundle``: with the rules alone and with the runbooks of ``runbooks/``. Out-of-catalog
incidents come from ``compass_tui.sim.outside`` (the cause's series written into a simulated
bundle); in-catalog ones from ``compass_tui.sim``. Prints top-1 and top-3 before and after,
the misses turned into hits, the hits lost, and the cost of the runbooks in queries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _investigate(path: Path, with_runbooks: bool) -> dict:
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.runbooks import load_dirs
    from compass_tui.telemetry.bundle import open_bundle

    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    t0 = time.perf_counter()
    rbs = load_dirs([ROOT / "runbooks"]) if with_runbooks else None
    report = asyncio.run(run_to_report(req, EngineDeps(backend=backend, runbooks=rbs)))
    wall = time.perf_counter() - t0
    truth = json.loads((path / "truth.json").read_text())["culprit"]
    ranked = [(h.fault, h.service) for h in report.hypotheses if h.status != "disproven"]
    want = (truth["fault"], truth["service"])
    return {"rank": ranked.index(want) + 1 if want in ranked else None, "top": [f"{f}@{s}" for f, s in ranked[:3]],
            "wall_s": round(wall, 3), "queries": sum(c.queries for c in report.cost.by_agent.values()),
            "runbook_queries": report.cost.by_agent["runbooks"].queries if "runbooks" in report.cost.by_agent else 0}


def one(job: tuple[str, str, int]) -> dict:
    kind, name, seed = job
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "b"
        if kind == "outside":
            from compass_tui.sim.outside import generate_outside, write_outside

            write_outside(generate_outside(name, seed), out)
        else:
            from compass_tui.sim import generate, write_bundle

            write_bundle(generate(name, seed), out)
        truth = json.loads((out / "truth.json").read_text())["culprit"]
        before = _investigate(out, False)
        after = _investigate(out, True)
    return {"kind": kind, "cause": name, "seed": seed, "truth": f"{truth['fault']}@{truth['service']}",
            "before": before, "after": after}


def _share(rows: list[dict], when: str, k: int) -> str:
    if not rows:
        return "-"
    n = sum(1 for r in rows if r[when]["rank"] is not None and r[when]["rank"] <= k)
    return f"{n}/{len(rows)} ({100 * n / len(rows):.0f}%)"


def main() -> int:
    from compass_tui.sim import FAULTS
    from compass_tui.sim.outside import CAUSES

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-cause", type=int, default=5, help="out-of-catalog incidents per cause")
    ap.add_argument("--per-fault", type=int, default=2, help="in-catalog incidents per catalog fault")
    ap.add_argument("--seed0", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    jobs = [("outside", c, a.seed0 + i) for c in CAUSES for i in range(a.per_cause)]
    jobs += [("catalog", f, a.seed0 + i) for f in FAULTS for i in range(a.per_fault)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        rows = list(ex.map(one, jobs))
    wall = time.perf_counter() - t0
    print(f"{len(rows)} incidents in {wall:.0f} s\n")
    print(f"{'':<34}{'top-1 rules':>16}{'top-1 +runbooks':>18}{'top-3 rules':>16}{'top-3 +runbooks':>18}")
    for kind in ("outside", "catalog"):
        names = CAUSES if kind == "outside" else FAULTS
        for name in names:
            rs = [r for r in rows if r["kind"] == kind and r["cause"] == name]
            if rs:
                print(f"{('other:' if kind == 'outside' else '') + name:<34}{_share(rs, 'before', 1):>16}"
                      f"{_share(rs, 'after', 1):>18}{_share(rs, 'before', 3):>16}{_share(rs, 'after', 3):>18}")
        rs = [r for r in rows if r["kind"] == kind]
        label = "ALL out of the catalog" if kind == "outside" else "ALL in the catalog"
        print(f"{label:<34}{_share(rs, 'before', 1):>16}{_share(rs, 'after', 1):>18}"
              f"{_share(rs, 'before', 3):>16}{_share(rs, 'after', 3):>18}\n")
    hit = lambda r, w: r[w]["rank"] == 1  # noqa: E731
    gained = [r for r in rows if hit(r, "after") and not hit(r, "before")]
    lost = [r for r in rows if hit(r, "before") and not hit(r, "after")]
    print(f"misses turned into hits (top-1): {len(gained)}; hits lost: {len(lost)}")
    for r in lost:
        print(f"  lost: {r['truth']} seed {r['seed']}: now {r['after']['top'][:2]}")
    for r in rows:
        if r["kind"] == "outside" and not hit(r, "after"):
            print(f"  still missed: {r['truth']} seed {r['seed']}: {r['after']['top'][:2]}")
    rq = [r["after"]["runbook_queries"] for r in rows]
    extra = [r["after"]["wall_s"] - r["before"]["wall_s"] for r in rows]
    print(f"runbook queries per investigation: {sum(rq) / len(rq):.1f}; "
          f"extra wall time per investigation: {sum(extra) / len(extra):+.2f} s (mean)")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

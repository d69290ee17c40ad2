"""Does COMPASS learn from the engineer? Replays a stream of simulated incidents in which
causes recur, runs the real engine on each against a real memory file, and corrects it the
way an engineer would: when the first hypothesis is wrong, ``--actual`` the truth; when it is
right, ``--confirm`` it.

Reports top-1 accuracy without memory, on first occurrences, and on recurrences with the
memory, and checks the promise that after ONE correction the recurrence ranks the corrected
cause first. ``speed`` measures the memory itself (record, feedback, recall) at a given size.

    python benchmarks/learning.py replay [--families 6] [--recurrences 3] [--seed 7] [--json]
    python benchmarks/learning.py speed [--investigations 5000] [--json]

Exit status 1 when a recurrence after a correction did not rank the corrected cause first.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compass_tui.models import Hypothesis, Incident, Report, Signature, Timings  # noqa: E402
from compass_tui.store import CATALOG_FAULTS, Store  # noqa: E402
from compass_tui.store.store import signature_from_key  # noqa: E402

# ----------------------------------------------------------------------------- replay


@dataclasses.dataclass
class Occurrence:
    family: int
    fault: str
    seed: int
    k: int  # 0 for the first occurrence of the family
    variant: int  # which recurrence: shifts the window and the noise


def plan_stream(faults: list[str], families: int, recurrences: int, seed: int) -> list[Occurrence]:
    """Families of the same system failing the same way, each recurring; interleaved so a
    family's recurrences are separated by other incidents, as they are on call."""
    rng = random.Random(seed)
    chosen = [faults[i % len(faults)] for i in range(families)]
    rng.shuffle(chosen)
    occ: list[Occurrence] = []
    for fam, fault in enumerate(chosen):
        base_seed = seed * 1000 + fam
        for k in range(recurrences):
            occ.append(Occurrence(fam, fault, base_seed, k, k))
    # Keep each family's order while interleaving families at random.
    order: list[Occurrence] = []
    queues = {f: [o for o in occ if o.family == f] for f in range(families)}
    while any(queues.values()):
        f = rng.choice([f for f, q in queues.items() if q])
        order.append(queues[f].pop(0))
    return order


def _sim_api() -> tuple[Any, Any, Any]:
    try:
        from compass_tui.sim import SimOptions, generate, write_bundle
    except ImportError as e:
        raise SystemExit(f"learning.py: the simulator is not available ({e}); run `speed` instead") from None
    return generate, write_bundle, SimOptions


def _options(SimOptions: Any, occ: Occurrence) -> Any:
    """SimOptions for one occurrence: the same system and culprit as the family's first,
    at another time and with other noise when the simulator lets us say so."""
    fields = {f.name for f in dataclasses.fields(SimOptions)} if dataclasses.is_dataclass(SimOptions) else set(
        getattr(SimOptions, "model_fields", {})
    )
    kw: dict[str, Any] = {}
    # Recurrences happen at other hours and days; the signature has no time in it.
    for name in ("noise_seed", "variant", "recurrence"):
        if name in fields:
            kw[name] = occ.variant
            break
    for name in ("time_offset_s", "shift_s", "offset_s"):
        if name in fields:
            kw[name] = occ.variant * 86400.0 + occ.variant * 3 * 3600.0
            break
    return SimOptions(**kw)


RECURRENCE_SHIFT_S = 9 * 86400 + 5 * 3600 + 13 * 60
"""How much later each recurrence happens: days and hours later, on a whole minute so every
scrape step (15, 20, 30, 60 s) stays on its grid."""


def _shift_rfc3339(text: str, dt: float) -> str:
    from compass_tui.engine.request import format_time, parse_time

    return format_time(parse_time(text) + dt)


def _shift_sample(line: str, dt: int) -> str:
    """``name{labels} value ts`` with ts moved; comments and ``# EOF`` unchanged."""
    if not line or line.startswith("#"):
        return line
    close = line.rfind("}")
    rest = line[close + 1:].split() if close >= 0 else line.split()[1:]
    if len(rest) < 2:
        return line  # no timestamp on this sample
    head, _, ts = line.rpartition(" ")
    new = repr(float(ts) + dt) if "." in ts or "e" in ts.lower() else str(int(ts) + dt)
    return f"{head} {new}"


def shift_bundle(src: Path, dst: Path, dt: int) -> Path:
    """Copy a bundle directory with every timestamp moved ``dt`` seconds later: the same
    incident recurring at another time."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        data = f.read_bytes()
        if f.name == "bundle.json":
            m = json.loads(data)
            m["window"] = {k: _shift_rfc3339(v, dt) for k, v in m["window"].items()}
            data = json.dumps(m, indent=1).encode()
        elif f.name == "incident.json":
            inc = json.loads(data)
            for a in inc.get("alerts", []):
                for k in ("startsAt", "endsAt"):
                    if a.get(k) and not str(a[k]).startswith("0001"):
                        a[k] = _shift_rfc3339(a[k], dt)
            data = json.dumps(inc, indent=1).encode()
        elif f.name == "metrics.om":
            out = [_shift_sample(line, dt) for line in data.decode().splitlines()]
            data = ("\n".join(out) + "\n").encode()
        elif f.name == "logs.json":
            body = json.loads(data)
            for st in body.get("streams", []):
                st["values"] = [[str(int(v[0]) + dt * 10**9), *v[1:]] for v in st["values"]]
            data = json.dumps(body, separators=(",", ":")).encode()
        elif f.name == "traces.json":
            def shift(obj: Any) -> Any:
                if isinstance(obj, dict):
                    return {k: (str(int(v) + dt * 10**9) if k.endswith("UnixNano") else shift(v)) for k, v in obj.items()}
                if isinstance(obj, list):
                    return [shift(x) for x in obj]
                return obj
            data = json.dumps(shift(json.loads(data)), separators=(",", ":")).encode()
        elif f.name == "annotations.json":
            anns = json.loads(data)
            for a in anns:
                for k in ("time", "timeEnd"):
                    if a.get(k) is not None:
                        a[k] = a[k] + dt * 1000
            data = json.dumps(anns, indent=1).encode()
        (dst / f.name).write_bytes(data)
    return dst


def _truth(bundle: Path) -> tuple[str, str]:
    t = json.loads((bundle / "truth.json").read_text())["culprit"]
    return t["fault"], t["service"]


def _request_for(bundle: Path) -> Any:
    from compass_tui.engine.request import request_from_bundle_meta

    manifest = json.loads((bundle / "bundle.json").read_text())
    incident = json.loads((bundle / "incident.json").read_text())
    return request_from_bundle_meta(manifest, incident)


async def _investigate(bundle: Path, memory: Any) -> tuple[Report, float]:
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.telemetry.bundle import open_bundle

    request = _request_for(bundle)
    backend = open_bundle(bundle)
    t0 = time.perf_counter()
    try:
        report = await run_to_report(request, EngineDeps(backend=backend, memory=memory))
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            res = close()
            if asyncio.iscoroutine(res):
                await res
    return report, time.perf_counter() - t0


def _cause(h: Hypothesis | None) -> tuple[str, str] | None:
    return (h.fault, h.service) if h is not None else None


def replay(args: argparse.Namespace) -> dict[str, Any]:
    generate, write_bundle, SimOptions = _sim_api()
    from compass_tui.sim import FAULTS  # what the simulator injects (not ``unexplained``)

    faults = [f for f in (args.faults.split(",") if args.faults else FAULTS)]
    stream = plan_stream(faults, args.families, args.recurrences, args.seed)
    work = Path(tempfile.mkdtemp(prefix="compass-learning-"))
    store = Store.open(Path(args.store) if args.store else work / "memory.duckdb")
    rows: list[dict[str, Any]] = []
    last_correction: dict[int, tuple[str, str]] = {}  # family -> the cause it was corrected to
    try:
        for i, occ in enumerate(stream):
            bundle = work / f"inc-{i:03d}-{occ.fault}"
            sim = generate(occ.fault, occ.seed, _options(SimOptions, occ))
            if occ.k and args.shift:
                first = work / f"sim-{occ.family}"
                if not first.exists():
                    write_bundle(sim, first)
                shift_bundle(first, bundle, occ.k * RECURRENCE_SHIFT_S)
            else:
                write_bundle(sim, bundle)
                if args.shift:
                    write_bundle(sim, work / f"sim-{occ.family}")
            truth = _truth(bundle)
            without, _ = asyncio.run(_investigate(bundle, None)) if args.baseline else (None, 0.0)
            report, wall = asyncio.run(_investigate(bundle, store.advisor()))
            sig = signature_from_key(report.signature) if report.signature else Signature()
            store.record_investigation(report, sig, _request_for(bundle))
            top = _cause(report.hypotheses[0] if report.hypotheses else None)
            rank = next((h.rank or j + 1 for j, h in enumerate(report.hypotheses) if _cause(h) == truth), None)
            after_correction = last_correction.get(occ.family)
            if top == truth:
                store.feedback(report.investigation_id, "confirm", *truth)
            else:
                store.feedback(report.investigation_id, "actual", *truth, note="benchmark: the truth")
                last_correction[occ.family] = truth
            row = {
                "i": i, "family": occ.family, "k": occ.k, "fault": occ.fault, "seed": occ.seed,
                "truth": f"{truth[0]}@{truth[1]}", "top": f"{top[0]}@{top[1]}" if top else None,
                "truth_rank": rank, "top1": top == truth,
                "top1_without_memory": (_cause(without.hypotheses[0] if without.hypotheses else None) == truth)
                if without is not None else None,
                "top_without_memory": (lambda c: f"{c[0]}@{c[1]}" if c else None)(
                    _cause(without.hypotheses[0] if without.hypotheses else None)) if without is not None else None,
                "notes_shown": sum(1 for h in report.hypotheses if h.memory_note),
                "after_correction": after_correction is not None,
                "corrected_first": (top == after_correction) if after_correction is not None else None,
                "memory_note": next((h.memory_note for h in report.hypotheses if _cause(h) == truth), None),
                "started_at": report.incident.started_at, "signature": report.signature, "wall_s": round(wall, 3),
                "first_hypothesis_s": report.timings.first_hypothesis_s,
            }
            rows.append(row)
            if not args.json:
                print(f"{i:3d} fam {occ.family} #{occ.k} {row['truth']:<45} top={row['top']} "
                      f"{'OK ' if row['top1'] else 'MISS'} {wall:5.1f}s  {row['memory_note'] or ''}",
                      file=sys.stderr)
    finally:
        store.close()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    def share(xs: list[bool]) -> float | None:
        return round(sum(xs) / len(xs), 3) if xs else None

    first = [r for r in rows if r["k"] == 0]
    again = [r for r in rows if r["k"] > 0]
    after = [r for r in rows if r["after_correction"]]
    summary = {
        "incidents": len(rows),
        "families": args.families,
        "recurrences": args.recurrences,
        "top1_without_memory_all": share([r["top1_without_memory"] for r in rows if r["top1_without_memory"] is not None]),
        "top1_without_memory_recurrences": share(
            [r["top1_without_memory"] for r in again if r["top1_without_memory"] is not None]),
        "top1_first_occurrence": share([r["top1"] for r in first]),
        "top1_recurrences_with_memory": share([r["top1"] for r in again]),
        # Memory must not disturb incidents it has not seen: first occurrences whose top-1
        # changed with the memory, and how many of them showed a (false) recollection.
        "first_occurrences_changed_by_memory": sum(
            1 for r in first if r["top_without_memory"] is not None and r["top_without_memory"] != r["top"]),
        "first_occurrences_with_a_recollection": sum(1 for r in first if r["notes_shown"]),
        "recurrences_after_a_correction": len(after),
        "corrected_cause_ranked_first": sum(bool(r["corrected_first"]) for r in after),
        "median_wall_s": round(statistics.median([r["wall_s"] for r in rows]), 3) if rows else None,
        "memory": str(args.store) if args.store else (str(work / "memory.duckdb") if args.keep else None),
    }
    return {"summary": summary, "incidents": rows}


# ----------------------------------------------------------------------------- speed


def _fake_report(i: int, sig: Signature, rng: random.Random) -> Report:
    """An investigation of realistic size (8 ranked hypotheses) for the size benchmark."""
    services = sig.moved or ["svc"]
    hyps = []
    for r in range(8):
        fault = rng.choice(CATALOG_FAULTS)
        service = rng.choice(services)
        hyps.append(Hypothesis(id=f"{fault}@{service}#{r}", rank=r + 1, fault=fault, service=service,
                               title=f"{fault} on {service}", confidence=round(1 - r / 10, 2)))
    return Report(investigation_id=f"inv-{i:06d}", incident=Incident(title="x", service=sig.service),
                  hypotheses=hyps, timings=Timings(first_hypothesis_s=rng.uniform(0.5, 3), total_s=5),
                  signature=sig.key())


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Time record, feedback and recall on a memory already holding N investigations."""
    rng = random.Random(args.seed)
    n = args.investigations
    names = [f"svc-{j}" for j in range(40)]
    sigs = [
        Signature(alertname=rng.choice(["HighErrorRate", "HighLatency", "SLOBurn"]), service=rng.choice(names),
                  shape=rng.choice(["errors", "latency", "errors+latency"]), moved=sorted(rng.sample(names, 4)))
        for _ in range(200)
    ]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "memory.duckdb"
        store = Store.open(path)
        rec_t, fb_t = [], []
        for i in range(n):
            sig = rng.choice(sigs)
            rep = _fake_report(i, sig, rng)
            t0 = time.perf_counter()
            store.record_investigation(rep, sig, recorded_at=time.time() - rng.uniform(0, 40 * 86400))
            rec_t.append(time.perf_counter() - t0)
            if rng.random() < 0.6:
                h = rng.choice(rep.hypotheses[:3])
                t0 = time.perf_counter()
                store.feedback(rep.investigation_id, rng.choice(["confirm", "actual", "reject"]), h.fault, h.service,
                               reason="no")
                fb_t.append(time.perf_counter() - t0)
        advisor = store.advisor()
        recall_t = []
        for _ in range(200):
            sig = rng.choice(sigs)
            cands = [(f, s) for f in CATALOG_FAULTS[:6] for s in sig.moved]
            t0 = time.perf_counter()
            advisor.recall(sig, cands)
            advisor.proposals(sig)
            recall_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.history(20)
        hist_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.stats()
        stats_s = time.perf_counter() - t0
        store.close()
        t0 = time.perf_counter()
        Store.open(path, read_only=True).close()
        open_s = time.perf_counter() - t0
        size = path.stat().st_size

    def ms(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {"median_ms": round(1000 * statistics.median(xs), 2), "p95_ms": round(1000 * xs[int(0.95 * (len(xs) - 1))], 2)}

    return {
        "investigations": n,
        "record": ms(rec_t),
        "feedback": ms(fb_t),
        "recall_and_proposals": ms(recall_t),
        "history_ms": round(1000 * hist_s, 2),
        "stats_ms": round(1000 * stats_s, 2),
        "open_ms": round(1000 * open_s, 2),
        "file_mb": round(size / 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("replay", help="replay recurring simulated incidents through the engine and the memory")
    r.add_argument("--families", type=int, default=6, help="distinct (system, fault) pairs")
    r.add_argument("--recurrences", type=int, default=3, help="occurrences of each family")
    r.add_argument("--faults", help="comma-separated fault ids (default: the whole catalog)")
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--store", help="memory file to use (default: a fresh one in a temporary directory)")
    r.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the run without memory on each incident")
    r.add_argument("--keep", action="store_true", help="keep the bundles and the memory for a look afterwards")
    r.add_argument("--no-shift", dest="shift", action="store_false",
                   help="replay recurrences at the same time instead of days later")
    r.add_argument("--json", action="store_true")
    s = sub.add_parser("speed", help="time the memory at a given size")
    s.add_argument("--investigations", type=int, default=5000)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.what == "speed":
        out = speed(args)
        print(json.dumps(out, indent=None if args.json else 2))
        return 0
    out = replay(args)
    s_ = out["summary"]
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(s_, indent=2))
    promised = s_["recurrences_after_a_correction"] == s_["corrected_cause_ranked_first"]
    if not promised:
        print(f"learning.py: after a correction the corrected cause came first in only "
              f"{s_['corrected_cause_ranked_first']} of {s_['recurrences_after_a_correction']} recurrences",
              file=sys.stderr)
    return 0 if promised else 1


if __name__ == "__main__":
    sys.exit(main())

"""Model-backed hypotheses on causes outside the catalog: does a model's correct claim, borne
out by the data, turn a miss into a hit, and does a wrong one stay unsupported? What did it cost?

Incidents: simulated CPU saturations whose CPU metrics are renamed to a metric the catalog's
agents do not know (``<prefix>worker_busy_seconds_total``): the cause, a saturated worker
pool, is then outside what the catalog can see (``other:worker-pool-saturation@<culprit>``).
The model is a scripted OpenAI-compatible server on 127.0.0.1 reached through litellm over
real HTTP (priced from litellm's table as ``openai/gpt-4o-mini``). It is told the truth (it
is scripted, not clever): the benchmark measures the engine's evidence discipline.

Three runs per incident: rules only; a correct model (the culprit, a query on the renamed
metric, ``rises``); a wrong model (a real bystander service with the same kind of query,
and a service that does not exist). Scored top-1 by fault and service (``other:`` slugs as
written) and by service alone (the catalog's rule for causes outside it).

    .venv/bin/python benchmarks/models.py --seeds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from model_server import ModelServer, Scripted  # noqa: E402

CPU_NAMES = ("container_cpu_usage_seconds_total", "process_cpu_seconds_total")
NEW_NAME = "app_worker_busy_seconds_total"
SLUG = "other:worker-pool-saturation"


def outside_catalog(seed: int, root: Path) -> tuple[Path, str, str]:
    """A CPU-saturation incident whose CPU metrics are renamed: (bundle, culprit, service label)."""
    from compass_tui.sim import SimOptions, generate, write_bundle

    inc = generate("cpu_saturation", seed, SimOptions())
    out = write_bundle(inc, root / f"outside-{seed}")
    om = out / "metrics.om"
    text = om.read_text()
    for name in CPU_NAMES:
        text = re.sub(rf"(?m)^(# (?:TYPE|HELP|UNIT) )?{name[:-len('_total')]}(_total)?\b",
                      lambda m: (m.group(1) or "") + NEW_NAME[:-len("_total")] + (m.group(2) or ""), text)
    om.write_text(text)
    truth = json.loads((out / "truth.json").read_text())
    culprit = truth["culprit"]["service"]
    # the label that names the culprit on the renamed metric (naming schemes vary: service, job, app...)
    m = re.search(rf'(?m)^{NEW_NAME[:-len("_total")]}\w*\{{[^}}]*?(\w+)="{re.escape(culprit)}"', text)
    label = m.group(1) if m else truth["meta"]["service_label"]
    truth["culprit"] = {"service": culprit, "fault": SLUG}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return out, culprit, label


def script_for(culprit: str, label: str, bystander: str, correct: bool):
    q = lambda svc: f'sum by ({label}) (rate({NEW_NAME}{{{label}="{svc}"}}[5m]))'  # noqa: E731
    if correct:
        hyps = [{"fault": SLUG, "service": culprit, "title": f"{culprit}'s worker pool is saturated",
                 "why": "busy worker time rose before the latency",
                 "predictions": [{"language": "promql", "query": q(culprit), "expect": "rises"}]}]
    else:
        hyps = [{"fault": "other:gc-pauses", "service": bystander, "title": f"{bystander} pauses for GC",
                 "why": "confident", "predictions": [{"language": "promql", "query": q(bystander), "expect": "rises"}]},
                {"fault": "other:quantum-flux", "service": "flux-capacitor", "title": "the flux capacitor failed",
                 "why": "very confident", "predictions": [{"language": "promql", "query": "up", "expect": "present"}]}]
    body = json.dumps({"hypotheses": hyps})

    def script(req, path):
        return Scripted(content=body, prompt_tokens=len(json.dumps(req)) // 4, completion_tokens=len(body) // 4)

    return script


async def one(bundle: Path, models=None):
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.telemetry.bundle import open_bundle

    backend = open_bundle(bundle)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    t = time.perf_counter()
    report = await run_to_report(req, EngineDeps(backend=backend, llm=models))
    await backend.aclose()
    return report, time.perf_counter() - t


def models_for(base: str):
    from compass_tui.config import ModelsConfig
    from compass_tui.llm.client import Models

    cfg = ModelsConfig(hypotheses="openai/gpt-4o-mini", endpoints={"openai/gpt-4o-mini": {"api_base": base + "/v1"}})
    return Models(cfg, environ={})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--first-seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            bundle, culprit, label = outside_catalog(seed, Path(tmp))
            base_report, base_s = asyncio.run(one(bundle))
            top = base_report.hypotheses[0] if base_report.hypotheses else None
            others = sorted({h.service for h in base_report.hypotheses if h.service != culprit})
            bystander = others[0] if others else "nobody"
            row = {"seed": seed, "culprit": culprit, "rules": (top.fault, top.service, base_s) if top else None}
            for kind in ("correct", "wrong"):
                with ModelServer(script_for(culprit, label, bystander, kind == "correct")) as srv:
                    rep, secs = asyncio.run(one(bundle, models_for(srv.base)))
                mine = [h for h in rep.hypotheses if h.agent == "model:hypotheses"]
                top = rep.hypotheses[0]
                c = rep.cost.by_agent.get("hypotheses")
                row[kind] = {"top": (top.fault, top.service), "secs": secs, "model": [(h.id, h.status, h.rank) for h in mine],
                             "usd": rep.cost.usd, "tokens": (rep.cost.prompt_tokens, rep.cost.completion_tokens),
                             "calls": rep.cost.calls, "latency_s": c.latency_s if c else 0.0,
                             "queries": c.queries if c else 0, "degraded": [d.signal for d in rep.degraded if d.signal.startswith("model")]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    n = len(rows)

    def hit(top, culprit, fault=True):
        return top is not None and top[1] == culprit and (not fault or top[0] == SLUG)

    rules_fs = sum(hit(r["rules"], r["culprit"]) for r in rows)
    rules_s = sum(hit(r["rules"], r["culprit"], False) for r in rows)
    cor_fs = sum(hit(r["correct"]["top"], r["culprit"]) for r in rows)
    cor_s = sum(hit(r["correct"]["top"], r["culprit"], False) for r in rows)
    wr_s = sum(hit(r["wrong"]["top"], r["culprit"], False) for r in rows)
    wrong_supported = sum(1 for r in rows for (_, st, _) in r["wrong"]["model"] if st == "supported")
    wrong_total = sum(len(r["wrong"]["model"]) for r in rows)
    print()
    print(f"{n} incidents whose cause is outside the catalog ({SLUG}@culprit)")
    print(f"top-1 fault+service: rules {rules_fs}/{n}, correct model {cor_fs}/{n}")
    print(f"top-1 service only:  rules {rules_s}/{n}, correct model {cor_s}/{n}, wrong model {wr_s}/{n}")
    print(f"wrong model's hypotheses supported: {wrong_supported}/{wrong_total}; "
          f"top-1 unchanged by the wrong model: {sum(r['wrong']['top'] == r['rules'][:2] for r in rows)}/{n}")
    for kind in ("correct", "wrong"):
        usd = sum(r[kind]["usd"] for r in rows)
        pt = sum(r[kind]["tokens"][0] for r in rows)
        ct = sum(r[kind]["tokens"][1] for r in rows)
        lat = sum(r[kind]["latency_s"] for r in rows) / n
        q = sum(r[kind]["queries"] for r in rows)
        extra = sum(r[kind]["secs"] - r["rules"][2] for r in rows) / n
        print(f"hypotheses role, {kind} model: ${usd:.6f} total, {pt}+{ct} tokens, {sum(r[kind]['calls'] for r in rows)} calls, "
              f"{lat:.2f} s mean call latency, {q} queries, +{extra:.2f} s per investigation")
    return 0


if __name__ == "__main__":
    sys.exit(main())

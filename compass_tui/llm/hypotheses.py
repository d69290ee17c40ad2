"""The model-backed hypothesis agent: a model proposes causes, the data decides.

After the deterministic agents and disproof, the ``hypotheses`` model is shown the
localisation ranking, the surviving and disproven hypotheses with their evidence and
redacted log samples, and proposes causes (catalog faults or ``other:<slug>``), each with the
queries (PromQL, LogQL, TraceQL) that would bear it out and what it expects them to show.
The engine runs those queries through its QueryRunner (read-only, within the query budget)
and judges every prediction itself:

- ``supported`` only when every prediction came back as predicted, at least one of them a
  change the data really shows (``rises``, ``falls``, ``present``) in data that names the
  service, and the engine's own disproof checks (temporal precedence, scope) survive;
- else ``inconclusive``, saying which prediction the data did not bear out and why;
- a service that is not in the telemetry is never supported.

A model hypothesis the data does not bear out ranks after every hypothesis of the engine's
that was not disproven (disproven ones come last, as the report's contract says), and a supported one does not outrank a supported deterministic
hypothesis whose cause began earlier: a model's claim never lowers the deterministic
culprit on garbage.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compass_tui.engine.context import Candidate, Ctx, rate_lag
from compass_tui.engine.disproof import rank, run_checks, to_hypothesis
from compass_tui.engine.queries import BudgetExhausted
from compass_tui.engine.timeseries import change, fmt_delta
from compass_tui.llm.client import BudgetStop, Caps, ModelError, ModelSession
from compass_tui.models import CostSpent, Evidence, Hypothesis, HypothesisAdded, ModelCall, Progress

ROLE = "hypotheses"
AGENT = ROLE
"""Queries the agent runs are charged to the role, next to its model calls."""

CATALOG = (
    "cpu_saturation", "memory_leak", "db_connection_pool_exhaustion", "db_slow_queries", "bad_deploy",
    "config_change", "external_dependency_failure", "network_degradation", "disk_full", "certificate_expired",
    "dns_failure", "traffic_surge", "cache_failure", "code_defect", "unexplained",
)
"""Fault ids of the fault catalog, version 2."""

WHERE_FAULTS = {"unexplained", "code_defect"}
"""Catalog faults that say where the trouble started rather than what it is: a specific cause
that survived on the same service ranks above them (the fault catalog's ranking rule)."""

MAX_HYPOTHESES = 6
MAX_PREDICTIONS = 4
POSITIVE = ("rises", "falls", "present")
EXPECTS = POSITIVE + ("absent",)

SYSTEM = """You are the hypotheses agent of COMPASS, an incident investigator. Deterministic agents \
already proposed and tried to disprove causes from a fault catalog. Propose up to {n} root-cause \
hypotheses they may have missed, each one a fault on one service AS NAMED IN THE TELEMETRY (the list \
below), with queries whose results would bear it out. COMPASS runs your queries read-only and marks a \
hypothesis supported only if the data comes back as you predicted; a service not in the telemetry is \
never supported. Use a catalog fault id ({catalog}) or other:<slug> for a cause outside the catalog.

Each prediction: language promql (range query over the incident window), logql (a log query or a \
metric query like sum by (svc) (count_over_time({{...}}[1m]))) or traceql ({{ resource.service.name = "svc" \
&& status = error }}); expect one of: rises (the series rises above its baseline, at or before the \
symptom), falls, present (lines/spans/nonzero values appear after the onset, rarer before), absent. \
Keep the service label in results (by (<label>)) so the data names the service.

Answer with JSON only:
{{"hypotheses": [{{"fault": "other:<slug> or a catalog id", "service": "<service>", "title": "<one line>", \
"why": "<one line>", "predictions": [{{"language": "promql", "query": "<query>", "expect": "rises"}}]}}]}}"""


@dataclass
class Outcome:
    """How one prediction came back."""

    ok: bool
    positive: bool
    summary: str
    onset: float | None = None
    from_lines: bool = False
    evidence: Evidence | None = None


@dataclass
class Proposal:
    fault: str
    service: str
    title: str
    why: str
    predictions: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None


# ---------------------------------------------------------------------- the hook


async def model_hypotheses(run: Any, ctx: Ctx, cands: list[Candidate], ranked: list[Hypothesis]) -> list[Hypothesis]:
    """Ask the hypotheses model, test its claims on the data, return the new ranking.

    ``run`` is the orchestrator's run (runner, events, degrade, budget); any model failure is
    a degraded entry and the deterministic ranking is returned unchanged."""
    models = run.deps.llm
    session = getattr(run, "model_session", None)
    if session is None:
        session = start_session(run)
    model = models.model_for(ROLE)
    if not model:
        return ranked
    t0 = time.perf_counter()
    try:
        prompt = build_prompt(ctx, ranked, await _metric_names(run))
        reply = await session.complete(ROLE, [
            {"role": "system", "content": SYSTEM.format(n=MAX_HYPOTHESES, catalog=", ".join(CATALOG))},
            {"role": "user", "content": prompt},
        ], json_mode=True)
    except BudgetStop as e:
        run.degrade(f"model:{ROLE}", f"{e}: no more model calls in this investigation; the ranking is the deterministic one")
        return ranked
    except ModelError as e:
        run.degrade(f"model:{ROLE}", f"{e}; its hypotheses were dropped, the ranking is the deterministic one",
                    _fix_for(e))
        return ranked
    finally:
        run.runner.costs[AGENT].wall_s += time.perf_counter() - t0
    try:
        proposals = parse_proposals(reply.content, reply.tool_calls)
    except ValueError as e:
        run.degrade(f"model:{ROLE}", f"{ROLE} model {model}: {e}; its hypotheses were dropped")
        return ranked
    if not proposals:
        run.events.put_nowait(Progress(message=f"the {ROLE} model ({model}) proposed nothing new", at_s=run.at()))
        return ranked
    run.events.put_nowait(Progress(message=f"the {ROLE} model ({model}) proposed {len(proposals)}: testing them on the data", at_s=run.at()))
    t1 = time.perf_counter()
    try:
        return await _test_and_merge(run, ctx, cands, ranked, proposals, reply.call, model)
    finally:
        run.runner.costs[AGENT].wall_s += time.perf_counter() - t1


def start_session(run: Any) -> ModelSession:
    """The investigation's model account: caps from its budget (USD by severity), every
    charge streamed to the app as a CostSpent event."""
    budget = run.deps.budget
    caps = Caps(max_calls=budget.max_llm_calls, max_usd=budget.usd_cap(run.request.labels.get("severity")),
                max_tokens=budget.max_tokens)

    def on_cost(role, cost, total):
        merged = run.runner.costs[role]
        merged.calls, merged.prompt_tokens, merged.completion_tokens = cost.calls, cost.prompt_tokens, cost.completion_tokens
        merged.usd, merged.latency_s, merged.model = cost.usd, cost.latency_s, cost.model
        run.events.put_nowait(CostSpent(agent=role, cost=merged, total_usd=round(total, 10), budget_usd=caps.max_usd))

    run.model_session = run.deps.llm.session(caps, on_cost)
    return run.model_session


def _fix_for(e: ModelError) -> str | None:
    return {
        "unreachable": "check [models.endpoints] api_base and that the model server is running",
        "timeout": "raise [models] timeout_s, or use a faster model for this role",
        "rate_limit": "wait, lower [budget] max_llm_calls, or use another model for this role",
        "auth": "export the key the endpoint's api_key refers to",
        "config": "fix [models] in the config",
    }.get(e.kind)


async def _metric_names(run: Any) -> list[str]:
    try:
        return list(await run.deps.backend.metric_names())
    except Exception:
        return []


# ---------------------------------------------------------------------- the prompt


def known_services(ctx: Ctx) -> set[str]:
    """Every service the telemetry names: metrics, traces, logs and the graph."""
    out = set(ctx.stack.services) | set(ctx.graph.nodes()) | set(ctx.affected)
    if ctx.logs is not None:
        out |= {svc for (svc, _) in ctx.logs.templates}
    return {s for s in out if s}


def service_label(ctx: Ctx) -> str:
    counts: dict[str, int] = {}
    for info in ctx.stack.metrics.values():
        if info.svc_label:
            counts[info.svc_label] = counts.get(info.svc_label, 0) + 1
    return max(counts, key=counts.get) if counts else "service"


def suspects_of(ctx: Ctx, ranked: list[Hypothesis]) -> list[tuple[str, float]]:
    """The localisation ranking: the engine's suspects when it has them, else the services of
    the hypotheses in rank order."""
    raw = getattr(ctx, "suspects", None)
    out: list[tuple[str, float]] = []
    for s in raw or []:
        if isinstance(s, dict):
            out.append((str(s.get("service")), float(s.get("score", 0.0) or 0.0)))
        elif isinstance(s, (tuple, list)) and s:
            out.append((str(s[0]), float(s[1]) if len(s) > 1 else 0.0))
        elif hasattr(s, "service"):
            out.append((str(s.service), float(getattr(s, "score", 0.0) or 0.0)))
    if out:
        return out[:15]
    seen: dict[str, float] = {}
    for h in ranked:
        if h.status != "disproven" and h.service not in seen:
            seen[h.service] = h.confidence
    return list(seen.items())[:15]


def build_prompt(ctx: Ctx, ranked: list[Hypothesis], metric_names: list[str]) -> str:
    """What the model is told about the incident (redacted and cut by the session)."""
    from compass_tui.engine.request import format_time  # noqa: PLC0415

    req = ctx.request
    lines = [f"Incident: {req.title}", f"Alerting service: {ctx.symptom_service or req.service or 'unknown'}",
             f"Symptom onset: {format_time(ctx.onset)}; window {format_time(ctx.grid.start)} .. {format_time(ctx.grid.end)}",
             f"Service label in metrics: {service_label(ctx)}", ""]
    lines.append("Services in the telemetry: " + ", ".join(sorted(known_services(ctx))[:120]))
    if ctx.affected:
        lines.append("Services whose errors or latency rose (onset): " + ", ".join(
            f"{s} ({format_time(t)})" for s, t in sorted(ctx.affected.items(), key=lambda kv: kv[1])[:20]))
    sus = suspects_of(ctx, ranked)
    if sus:
        lines.append("Localisation ranking (most suspect first): " + ", ".join(f"{s} {v:.2f}" for s, v in sus))
    if ctx.graph.known:
        edges = sorted({f"{a}->{b}" for a in ctx.graph.nodes() for b in ctx.graph.downstream(a) if b in ctx.graph.callees(a)}) \
            if hasattr(ctx.graph, "callees") else []
        if edges:
            lines.append("Calls: " + ", ".join(edges[:80]))
    lines.append("")
    alive = [h for h in ranked if h.status != "disproven"][:8]
    dead = [h for h in ranked if h.status == "disproven"][:8]
    lines.append("Surviving hypotheses:" if alive else "Surviving hypotheses: none")
    for h in alive:
        lines.append(f"- {h.fault}@{h.service} {h.status} {h.confidence:.2f}: {h.title}")
        for e in h.evidence[:3]:
            lines.append(f"    {'+' if e.supports else '-'} {e.summary}  [{e.query[:160]}]")
    if dead:
        lines.append("Disproven:")
        for h in dead:
            lines.append(f"- {h.fault}@{h.service}: {h.why_disproven or 'disproven'}")
    if ctx.logs is not None and ctx.logs.templates:
        lines.append("")
        lines.append("New error log lines after the onset (redacted samples, count after/before):")
        tps = sorted(ctx.logs.templates.values(), key=lambda t: -(t.post - t.base))[:14]
        for tp in tps:
            lines.append(f"- {tp.service}: {tp.example[:240]}  ({tp.post}/{tp.base})")
    if metric_names:
        lines.append("")
        lines.append("Metric names: " + ", ".join(sorted(metric_names)[:300]))
    return "\n".join(lines)


# ---------------------------------------------------------------------- parsing


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_proposals(content: str, tool_calls: list[dict[str, Any]] | None = None) -> list[Proposal]:
    """The model's proposals from its JSON answer (or a tool call's arguments); ValueError
    with one line when there is nothing usable."""
    doc: Any = None
    for tc in tool_calls or []:
        if isinstance(tc.get("arguments"), dict) and "hypotheses" in tc["arguments"]:
            doc = tc["arguments"]
            break
    if doc is None:
        text = (content or "").strip()
        m = _FENCE.search(text)
        if m:
            text = m.group(1).strip()
        if not text:
            raise ValueError("answered nothing")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            a, b = text.find("{"), text.rfind("}")
            try:
                doc = json.loads(text[a:b + 1]) if a >= 0 and b > a else None
            except json.JSONDecodeError:
                doc = None
        if doc is None:
            raise ValueError("answered text that is not the JSON asked for")
    items = doc.get("hypotheses") if isinstance(doc, dict) else doc if isinstance(doc, list) else None
    if not isinstance(items, list):
        raise ValueError('answered JSON without a "hypotheses" list')
    out: list[Proposal] = []
    for it in items[:MAX_HYPOTHESES]:
        if not isinstance(it, dict):
            continue
        fault = normalise_fault(str(it.get("fault") or ""))
        service = str(it.get("service") or "").strip()
        preds = []
        for p in (it.get("predictions") or [])[:MAX_PREDICTIONS]:
            if not isinstance(p, dict):
                continue
            q = str(p.get("query") or "").strip()
            lang = str(p.get("language") or "promql").strip().lower()
            exp = str(p.get("expect") or "").strip().lower()
            if q:
                preds.append({"language": lang, "query": q, "expect": exp})
        prop = Proposal(fault=fault or "other:unnamed", service=service, title=str(it.get("title") or "").strip()[:200],
                        why=str(it.get("why") or "").strip()[:300], predictions=preds)
        if not fault:
            prop.problem = f"fault {it.get('fault')!r} is neither a catalog id nor other:<slug>"
        if not service:
            continue
        out.append(prop)
    return out


def normalise_fault(raw: str) -> str | None:
    f = raw.strip()
    if f in CATALOG:
        return f
    if f.lower().startswith("other:"):
        slug = re.sub(r"[^a-z0-9]+", "-", f[6:].lower()).strip("-")
        return f"other:{slug}" if slug else None
    return None


# ---------------------------------------------------------------------- testing claims


async def _test_and_merge(run, ctx, cands, ranked, proposals, call: ModelCall, model: str) -> list[Hypothesis]:
    known = known_services(ctx)
    by_id = {h.id: h for h in ranked}
    onsets = {c.id: c.cause_onset for c in cands}
    new: list[tuple[Hypothesis, float | None]] = []
    for p in proposals:
        hid = f"{p.fault}@{p.service}"
        call.proposed.append(hid)
        proposed_by = Evidence(kind="model", summary=f"proposed by the {ROLE} model ({model}): {p.why or p.title or hid}",
                               supports=True, source=f"model:{model}", query=f"{ROLE} role, call {len(run.model_session.calls)}")
        if hid in by_id:
            # the engine already weighed this cause: the model's view is noted, the verdict stays the engine's
            by_id[hid].evidence.append(proposed_by)
            continue
        c = Candidate(p.fault, p.service, f"model:{ROLE}", 0.0, p.title or f"{p.fault} on {p.service} (proposed by a model)")
        c.evidence.append(proposed_by)
        pre = Hypothesis(id=hid, fault=p.fault, service=p.service, title=c.title, confidence=0.0,
                         status="inconclusive", agent=c.agent, evidence=list(c.evidence))
        run.events.put_nowait(HypothesisAdded(hypothesis=pre, at_s=run.at()))
        why: str | None = p.problem
        if why is None and p.service not in known:
            why = f"{p.service} does not appear in the telemetry (metrics, logs, traces): a service that is not there cannot be the cause"
        outcomes: list[Outcome] = []
        if why is None and not p.predictions:
            why = "the model gave no query that could bear it out"
        if why is None:
            for pred in p.predictions:
                try:
                    o = await check_prediction(run, ctx, p.service, pred)
                except BudgetExhausted as e:
                    o = Outcome(False, False, f"not run: {e}")
                outcomes.append(o)
                if o.evidence is not None:
                    c.evidence.append(o.evidence)
            bad = [o for o in outcomes if not o.ok]
            if bad:
                why = "the data did not come back as predicted: " + "; ".join(o.summary for o in bad[:3])
            elif not any(o.positive for o in outcomes):
                why = "no prediction showed a change in the data (only absences were predicted)"
        if why is None:
            positives = [o for o in outcomes if o.positive]
            c.strength = min(0.8, 0.55 + 0.1 * (len(positives) - 1))
            times = [o.onset for o in positives if o.onset is not None]
            c.cause_onset = min(times) if times else None
            c.from_lines = bool(positives) and all(o.from_lines for o in positives if o.onset is not None)
            try:
                run_checks(ctx, [c])
            except Exception:  # a catalog check that needs facts the model did not measure
                pass
            h = to_hypothesis(c)
            if h.status == "inconclusive":
                h.why_disproven = None
        else:
            c.strength = 0.1
            h = to_hypothesis(c)
            h.status = "inconclusive"
            h.confidence = 0.05
            h.title = f"{h.title} — not borne out: {why}"
        new.append((h, c.cause_onset))
    return merge(ranked, new, onsets, ctx, call)


def merge(ranked: list[Hypothesis], new: list[tuple[Hypothesis, float | None]], onsets: dict[str, float | None],
          ctx: Ctx, call: ModelCall) -> list[Hypothesis]:
    """The ranking with the model's hypotheses in it, under the evidence discipline."""
    before = ranked[0].id if ranked else None
    supported, unsupported, ahead = [], [], []
    for h, onset in new:
        if h.status != "supported":
            unsupported.append(h)
            continue
        specific = h.fault not in WHERE_FAULTS
        # the engine's "where, not what" on the same service does not compete with a specific cause
        # borne out there (the catalog's rule); every other supported engine hypothesis does
        rivals = [d for d in ranked if d.status == "supported"
                  and not (specific and d.service == h.service and d.fault in WHERE_FAULTS)]
        top = rivals[0] if rivals else None
        top_onset = onsets.get(top.id) if top else None
        held_back = top is not None and (onset is None or top_onset is not None and onset > top_onset + ctx.tol)
        if held_back:
            # the engine's own culprit began earlier (or the model's cause has no start): it stays ahead
            h.confidence = round(max(0.01, min(h.confidence, top.confidence - 0.01)), 3)
        elif specific:
            ahead.append(h)
        supported.append(h)
    # claims the data did not bear out come after every hypothesis of the engine's that was not
    # disproven; disproven ones come last, as the report's contract says
    alive = rank([h for h in ranked if h.status != "disproven"] + supported)
    for h in ahead:
        # a specific cause borne out on a service goes just above the engine's where-only
        # hypothesis there; nothing else moves
        i = alive.index(h)
        j = next((k for k, d in enumerate(alive[:i]) if d.service == h.service and d.fault in WHERE_FAULTS), None)
        if j is not None:
            alive.insert(j, alive.pop(i))
    weak = sorted((h for h in unsupported if h.status != "disproven"), key=lambda h: -h.confidence)
    dead = rank([h for h in ranked if h.status == "disproven"] + [h for h in unsupported if h.status == "disproven"])
    out = alive + weak + dead
    for i, h in enumerate(out, 1):
        h.rank = i
    if out and out[0].id != before and out[0].id in call.proposed:
        call.changed_ranking = True
    return out


async def check_prediction(run: Any, ctx: Ctx, service: str, pred: dict[str, str]) -> Outcome:
    """Run one predicted query and say whether the data came back as predicted."""
    lang, q, expect = pred["language"], pred["query"], pred["expect"]
    g = ctx.grid
    if expect not in EXPECTS:
        return Outcome(False, False, f"{q}: unknown expectation {expect!r} (rises, falls, present, absent)")
    if lang in ("traceql", "trace"):
        return await _check_traces(run, ctx, service, q, expect)
    if lang == "logql" and not _LOG_METRIC.search(q):
        return await _check_lines(run, ctx, service, q, expect)
    if lang == "logql":
        r = await run.runner.log_metric(AGENT, q, g.start, g.end, g.step)
    elif lang == "promql":
        r = await run.runner.range(AGENT, q, g.start, g.end, g.step)
    else:
        return Outcome(False, False, f"{q}: unknown query language {lang!r}")
    kind = "log" if lang == "logql" else "metric"
    if r is None or r.status == "error":
        err = getattr(r, "error", None) or "no answer"
        return Outcome(False, False, f"{q}: the query failed ({err})", evidence=_ev(ctx, kind, q, f"the query failed: {err}", False))
    mine = [s for s in r.series if _names(s.labels, service)] or ([s for s in r.series] if _matches(q, service) else [])
    if expect == "absent":
        vals = [v for s in mine for v in np.asarray(s.v, dtype=float) if np.isfinite(v) and v != 0]
        ok = not vals
        summ = "no data for it, as predicted" if ok else f"{len(mine)} series with nonzero values: not absent"
        return Outcome(ok, False, f"{q}: {summ}", evidence=_ev(ctx, kind, q, f"predicted absent: {summ}", ok))
    if not r.series:
        return Outcome(False, True, f"{q}: returned no data", evidence=_ev(ctx, kind, q, "predicted a change; the query returned no data", False))
    if not mine:
        return Outcome(False, True, f"{q}: the data does not name {service}",
                       evidence=_ev(ctx, kind, q, f"the {len(r.series)} series returned do not name {service}", False))
    best: tuple[float, Any, Any] | None = None
    lag = rate_lag(q, g.step)
    horizon = max(1800.0, 0.5 * (ctx.onset - g.start))
    for s in mine[:50]:
        vals = g.align(np.asarray(s.t, dtype=float), np.asarray(s.v, dtype=float))
        if not np.isfinite(vals).any():
            continue
        if expect == "present":
            post = vals[g.times >= ctx.onset - ctx.tol]
            pre = vals[g.times < ctx.onset - ctx.tol]
            post_hi = float(np.nanmax(post)) if np.isfinite(post).any() else 0.0
            pre_hi = float(np.nanmedian(pre)) if np.isfinite(pre).any() else 0.0
            if post_hi > 0 and post_hi > 3 * max(pre_hi, 0.0):
                finite = np.where(np.isfinite(vals), vals, -np.inf)
                first = g.times[(g.times >= ctx.onset - 900) & (finite > 3 * max(pre_hi, 0.0))]
                onset = float(first[0]) if len(first) else None
                score = post_hi
                if best is None or score > best[0]:
                    best = (score, s, (onset, f"values appear after the onset (peak {post_hi:.4g}, before {pre_hi:.4g})"))
            continue
        ch = change(g, vals, 1 if expect == "rises" else -1, anchor=ctx.onset, horizon=horizon, lag=lag)
        if ch.onset is None:
            continue
        score = abs(ch.z)
        if best is None or score > best[0]:
            word = "rose" if expect == "rises" else "fell"
            best = (score, s, (ch.onset, f"{word} from {ch.baseline:.4g} to {ch.after:.4g} at {_hhmm(ch.onset)}"))
    if best is None:
        what = {"rises": "did not rise above its baseline", "falls": "did not fall below its baseline",
                "present": "shows nothing after the onset that was not there before"}[expect]
        return Outcome(False, True, f"{q}: {what}", evidence=_ev(ctx, kind, q, f"predicted {expect}: the data {what}", False))
    _, s, (onset, text) = best
    if onset is not None and onset > ctx.onset + ctx.tol:
        return Outcome(False, True, f"{q}: {text}, {fmt_delta(ctx.onset - onset)} the symptom: too late to cause it",
                       evidence=_ev(ctx, kind, q, f"{text}: after the symptom", False))
    lead = f", {fmt_delta(ctx.onset - onset)} the symptom" if onset is not None else ""
    return Outcome(True, True, f"{q}: {text}{lead}", onset=onset,
                   evidence=_ev(ctx, kind, q, f"as the model predicted ({expect}): {text}{lead}", True))


_LOG_METRIC = re.compile(r"\b(count_over_time|rate|bytes_over_time|bytes_rate|sum_over_time|absent_over_time)\s*\(")
_TRACE_SVC = re.compile(r'resource\.service\.name\s*=\s*"([^"]+)"')


async def _check_lines(run, ctx: Ctx, service: str, q: str, expect: str) -> Outcome:
    g = ctx.grid
    r = await run.runner.logs(AGENT, q, g.start, g.end, limit=5000)
    if r is None or r.status == "error":
        err = getattr(r, "error", None) or "no answer"
        return Outcome(False, False, f"{q}: the query failed ({err})", evidence=_ev(ctx, "log", q, f"the query failed: {err}", False))
    lines = [ln for ln in r.lines if _names(ln.labels, service)] or (list(r.lines) if _matches(q, service) else [])
    return _judge_times(ctx, "log", q, service, expect, [ln.t for ln in lines], len(r.lines), "lines")


async def _check_traces(run, ctx: Ctx, service: str, q: str, expect: str) -> Outcome:
    g = ctx.grid
    m = _TRACE_SVC.search(q)
    svc = m.group(1) if m else None
    err = bool(re.search(r"status\s*=\s*error", q))
    r = await run.runner.traces(AGENT, g.start, g.end, service=svc, error_only=err, limit=20000)
    if r is None or r.status == "error":
        e = getattr(r, "error", None) or "no answer"
        return Outcome(False, False, f"{q}: the search failed ({e})", evidence=_ev(ctx, "trace", q, f"the search failed: {e}", False))
    spans = [s for s in r.spans if s.service == service]
    return _judge_times(ctx, "trace", q, service, expect, [s.start for s in spans], len(r.spans), "spans")


def _judge_times(ctx: Ctx, kind: str, q: str, service: str, expect: str, times: list[float], total: int, what: str) -> Outcome:
    g = ctx.grid
    split = ctx.onset - max(ctx.tol, 240.0)
    post = [t for t in times if t >= split]
    pre = [t for t in times if t < split]
    post_rate = len(post) / max(g.end - split, 1.0)
    pre_rate = len(pre) / max(split - g.start, 1.0)
    if expect == "absent":
        ok = not times
        summ = f"no {what} for {service}, as predicted" if ok else f"{len(times)} {what} for {service}: not absent"
        return Outcome(ok, False, f"{q}: {summ}", evidence=_ev(ctx, kind, q, f"predicted absent: {summ}", ok))
    if expect != "present" and expect != "rises":
        return Outcome(False, True, f"{q}: {what} cannot fall; expect present, rises or absent")
    if not times:
        why = f"returned no {what}" if not total else f"the {total} {what} returned do not name {service}"
        return Outcome(False, True, f"{q}: {why}", evidence=_ev(ctx, kind, q, f"predicted {expect}: {why}", False))
    if len(post) >= 3 and post_rate > 3 * pre_rate:
        first = min(post)
        text = f"{len(post)} {what} after the onset against {len(pre)} before, the first at {_hhmm(first)}"
        if first > ctx.onset + max(ctx.tol, 240.0):
            return Outcome(False, True, f"{q}: {text}: after the symptom", evidence=_ev(ctx, kind, q, f"{text}: after the symptom", False))
        return Outcome(True, True, f"{q}: {text}", onset=first, from_lines=True,
                       evidence=_ev(ctx, kind, q, f"as the model predicted ({expect}): {text}", True))
    text = f"{len(post)} {what} after the onset against {len(pre)} before: no new {what}"
    return Outcome(False, True, f"{q}: {text}", evidence=_ev(ctx, kind, q, f"predicted {expect}: {text}", False))


def _names(labels: dict[str, str], service: str) -> bool:
    return any(v == service for k, v in labels.items() if k != "__name__")


def _matches(q: str, service: str) -> bool:
    """The query selects the service by an exact label matcher."""
    return bool(re.search(r'=\s*"' + re.escape(service) + r'"', q))


def _ev(ctx: Ctx, kind: str, q: str, summary: str, supports: bool) -> Evidence:
    source = ctx.log_source if kind == "log" else ctx.source
    return Evidence(kind=kind, summary=summary, supports=supports, source=source, query=q,
                    link=ctx.link(q, "log" if kind == "log" else "metric") if kind != "trace" else None)


def _hhmm(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))

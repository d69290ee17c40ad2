"""traffic_surge: the culprit receives far more load than usual (application agent).

Supports: the request rate (successful throughput, or the raw rate when callers were not
failing first) well above its baseline at onset, in requests per second over a real base, on
the most upstream service whose rate rose. Weakened: a service that served it with its
latency and errors at their usual level and its CPU barely up (the load strained nothing). Disproves: the rate within its baseline range; a
service upstream of it rose first (the surge enters there); a failure below it that came
first (the extra requests are retries). Its rule on others: a strong surge that came first
explains the saturation of CPUs, pools and databases on or below the surging service."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults import get, load_driven
from compass_tui.engine.faults._common import rel
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.faults.cpu_saturation import PER_REQUEST_MAX, too_small
from compass_tui.engine.timeseries import fmt_ratio, fmt_time


@dataclass
class SurgeFacts(Facts):
    ups: list[str] = field(default_factory=list)
    """Services upstream of it whose rate rose first or together."""
    signal: str = ""
    """ok_rate (successful throughput) or request_rate (the raw rate)."""
    ratio: float = 1.0
    """How many times its usual rate it received."""


OWN_FELT = ("latency_p99", "latency_mean", "error_ratio")
"""A service's own signals of trouble, as the affected services are read from."""

RETRY_MAX = 4.0
"""Retries resend each failed call a few times at most: a rate past this many times its usual
is more than retries (one try and three retries of every call)."""


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per service whose request rate rose far above its usual load."""
    rising: dict[str, object] = {}
    sig_of: dict[str, str] = {}
    raw: dict[str, object] = {}
    for svc in ctx.stack.signals.get("request_rate", {}):
        # Successful throughput, and the raw rate unless only errors grew (an error or retry
        # storm inflates the raw rate without more useful load). A ramp need not hold at the
        # symptom's onset; the earliest credible start wins.
        kw = dict(rel_floor=0.15, k=3.0, must_hold=False)
        ok = ctx.chg("ok_rate", svc, 1, **kw) if ctx.series("ok_rate", svc) is not None else None
        tot = ctx.chg("request_rate", svc, 1, **kw)
        raw[svc] = tot
        options = []
        if ok is not None and ok.rose and ok.ratio >= 1.5:
            options.append(("ok_rate", ok))
        entry = ctx.graph.known and not ctx.graph.callers(svc)
        # at an entry the offered load is what arrives, failing or not; elsewhere the raw
        # rate counts when no caller was failing (and retrying) before it rose
        callers_failing_first = tot is not None and tot.onset is not None and any(
            u in ctx.affected and ctx.affected[u] <= tot.onset + ctx.grid.step * 0.5 for u in ctx.graph.callers(svc))
        if tot is not None and tot.rose and tot.ratio >= 1.5 and (
                entry or ok is None or (np.isfinite(ok.ratio) and ok.ratio >= 1.3) or
                (ctx.graph.known and not callers_failing_first)):
            options.append(("request_rate", tot))
        # more load must matter against the service's usual load, in requests per second
        options = [o for o in options if o[1].onset <= ctx.onset + 600
                   and o[1].after - o[1].baseline >= 0.3 and o[1].baseline >= 0.05]
        if options:
            # the earliest credible start; of two that start together (within a step), the larger
            # rise: at an entry, a retry storm's offered load is the raw rate, not its successes
            first = min(o[1].onset for o in options)
            sig, ch = max((o for o in options if o[1].onset <= first + ctx.grid.step), key=lambda o: o[1].ratio)
            rising[svc] = ch
            sig_of[svc] = sig
    out = []
    for svc, ch in rising.items():
        sig = sig_of[svc]
        # retries: callers that were failing and whose own traffic did not grow resend
        # their failed calls; that is amplification, not new load
        retriers = [u for u in ctx.graph.callers(svc) if u in ctx.affected and u not in rising
                    and ctx.affected[u] < (ch.onset or 0) - ctx.grid.step * 0.5]
        # amplification: a caller whose own raw rate rose with it but which is no surge itself
        # (it was failing, and what grew was its retries) sends the extra calls down
        echoes = [u for u in ctx.graph.callers(svc) if u not in rising and u in ctx.affected and (t := raw.get(u)) is not None and t.rose
                  and t.ratio >= 1.5 and t.onset is not None and t.onset <= (ch.onset or 0) + ctx.grid.step * 0.5]
        ups = [u for u in ctx.graph.upstream(svc) if u in rising and (rising[u].onset or 0) <= (ch.onset or 0) + ctx.tol]
        score = 0.45 + min(0.3, 0.15 * (ch.ratio - 1.5)) + min(0.1, 0.01 * ch.z)
        if not ctx.graph.callers(svc):
            score += 0.05
        c = Candidate("traffic_surge", svc, "application", min(score, 1.0),
                      f"{svc} receives {fmt_ratio(ch.ratio)} its usual traffic", ch.onset)
        series = ctx.series(sig, svc)
        c.evidence.append(ctx.metric_evidence(series, f"{'successful ' if sig == 'ok_rate' else ''}request rate of {svc} rose {fmt_ratio(ch.ratio)} ({ch.baseline:.1f}/s -> {ch.after:.1f}/s) at {fmt_time(ch.onset)}, {rel(ctx, ch.onset)}", onset=ch.onset))
        ended = _ended(ctx, series.values, ch)
        if ended is not None:
            # a burst that was over before the page: the trouble outlasted the load
            c.strength *= 0.5
            c.evidence.append(ctx.metric_evidence(series, f"the rate of {svc} was back to its usual level by {fmt_time(ended)}, "
                                                  "before the alert: the trouble outlasted the extra load", supports=False))
        if (calm := _unstrained(ctx, svc, ch.ratio)) is not None:
            # its latency (which holds that of every call it makes) and its errors stayed
            # usual, and its CPU barely moved: it served the extra load, and nothing it calls
            # was hurt by it either
            c.strength *= 0.5
            c.evidence.append(ctx.metric_evidence(calm, f"{svc} served the extra load with its latency and errors at their "
                                                        "usual level and its CPU barely up: it hurt nothing", supports=False))
        if retriers:
            c.strength *= 0.45
            c.evidence.append(ctx.metric_evidence(ctx.series("error_ratio", retriers[0]) or series,
                                                  f"its callers {', '.join(sorted(retriers))} were already failing and their own traffic did not grow: retries, not new load",
                                                  supports=False))
        elif echoes and not ups:
            c.strength *= 0.45
            c.evidence.append(ctx.metric_evidence(ctx.series("request_rate", echoes[0]) or series,
                                                  f"its callers {', '.join(sorted(echoes))} received more requests too while failing, "
                                                  "with no surge of their own: amplified retries from above, not new load", supports=False))
        c.facts = SurgeFacts(ups=ups, signal=sig, ratio=float(ch.ratio))
        out.append(c)
    return out


def _unstrained(ctx: Ctx, svc: str, ratio: float):
    """The service's own latency or error series when it served its extra load (``ratio`` times
    its usual) with no sign of strain, else None: not the alerting service, its own latency and
    errors measured and at their usual level, its CPU up by too little to matter, or by far
    more than the load can burn (something else burnt it)."""
    calm = next((x for x in (ctx.series(s, svc) for s in OWN_FELT) if x is not None), None)
    if svc == ctx.symptom_service or svc in ctx.affected or calm is None:
        return None
    for sig in ("cpu_cores", "cpu_util"):
        ch = ctx.chg(sig, svc, 1, must_hold=False)
        if ch is not None and ch.rose and not too_small(sig, ch) and (not np.isfinite(ch.ratio) or ch.ratio <= PER_REQUEST_MAX * ratio):
            return None
    return calm


def _ended(ctx: Ctx, values: np.ndarray, ch) -> float | None:
    """When a surge was over before the alert: the rate back within a quarter of its rise for
    two minutes (and three points) at least. None while it still held."""
    t = ctx.grid.times
    bar = ch.baseline + 0.25 * (ch.after - ch.baseline)
    need = max(3, int(np.ceil(120 / ctx.grid.step)))
    run = 0
    for i in np.nonzero((t > ch.onset) & (t <= ctx.grid.alert_at))[0]:
        if not np.isfinite(values[i]):
            continue
        run = run + 1 if values[i] < bar else 0
        if run >= need:
            return float(t[i - need + 1])
    return None


def scope(ctx: Ctx, c: Candidate) -> bool:
    """Load enters upstream: the alerting service must be the surging one or below it."""
    s = ctx.symptom_service
    if not s or not ctx.graph.known or s not in ctx.graph.nodes():
        c.check("scope", None, "the service graph cannot place this service relative to the alert")
    elif not ctx.graph_complete and not (s == c.service or s in ctx.graph.downstream(c.service) or c.service in ctx.graph.downstream(s)):
        c.check("scope", None, "the service graph is partial (no traces): scope cannot rule it out")
    elif s == c.service or s in ctx.graph.downstream(c.service):
        c.check("scope", True, f"the alerting service {s} is {'this service' if s == c.service else 'downstream of it'}")
    elif c.service in ctx.graph.downstream(s):
        c.check("scope", True, f"{c.service} is downstream of the alerting service {s}")
    elif shared := sorted((ctx.graph.downstream(c.service) & ctx.graph.downstream(s)) & set(ctx.affected)):
        # load entering one door saturates what both call: the other door feels it
        c.check("scope", True, f"the surge reaches {', '.join(shared[:3])}, which the alerting service {s} also calls and which degraded")
    else:
        c.check("scope", False, f"{c.service} and the alerting service {s} are not on one call path", 0.45)
    return True


def _failed(c: Candidate) -> bool:
    return any(d.result == "failed" for d in c.checks)


def upstream_first(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """A service upstream of it rose first or together: the surge enters there."""
    for s in by_fault.get("traffic_surge", []):
        ups = getattr(s.facts, "ups", [])
        if ups:
            s.lose_to(next((x for x in by_fault.get("traffic_surge", []) if x.service in ups), None), f"{', '.join(sorted(ups))} upstream rose first or together: the surge enters there", 0.4)
        else:
            s.check("competing_explanation", True, "no service upstream of it rose first")


def retries(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """A rate rise that follows a failure below it is retries, not load."""
    for s in by_fault.get("traffic_surge", []):
        if s.cause_onset is None or getattr(s.facts, "ratio", 1.0) > RETRY_MAX:
            continue  # more than every call resent a few times over: load, not retries
        # retries resend calls that failed or timed out: the surging service itself must have
        # been failing or slow no later than its rate rose, or no one had anything to retry
        felt = ctx.affected.get(s.service)
        if felt is not None and felt > s.cause_onset + ctx.grid.step * 0.5:
            continue
        if felt is not None and felt < s.cause_onset - ctx.grid.step * 0.5:
            # its own trouble came a step or more before its rate rose: the extra requests
            # followed the failure (callers resending failed calls); load did not cause it
            s.lose_to(None, f"{s.service} was already failing or slow at {fmt_time(felt)}, before its rate rose at "
                            f"{fmt_time(s.cause_onset)}: the extra requests are retries", 0.5)
            continue
        below = ctx.graph.downstream(s.service) | {s.service} if ctx.graph.known else None
        for c in cands:
            if c.fault == "traffic_surge" or c.cause_onset is None or c.strength < 0.6:
                continue
            if _failed(c):
                continue  # already ruled out: it explains nothing
            # load saturates CPUs, pools and databases within a step: only clearly earlier
            # saturation came first
            margin = max(2 * ctx.grid.step, 60.0) if load_driven(c) else ctx.grid.step * 0.5
            began = min(c.cause_onset, getattr(c.facts, "ramp_onset", None) or c.cause_onset)
            # a change is retried once it fails: a deploy is dated by when its errors began
            began = max(began, getattr(c.facts, "err_onset", None) or began)
            if (below is None or c.service in below) and began < s.cause_onset - margin:
                s.lose_to(c, f"{c.fault} on {c.service} came first: the extra requests are retries", 0.5)
                break


def explains_load(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """A strong surge that came first explains what load can cause (CPU, pools, databases)
    on the surging service, or below it when that service's own load rose."""
    strong_surges = [s for s in by_fault.get("traffic_surge", []) if not getattr(s.facts, "ups", []) and s.strength >= 0.55
                     and not _failed(s)]
    for c in cands:
        if c.fault in ("traffic_surge",) or c.cause_onset is None:
            continue
        # only what load can cause: saturation of CPU, pools, databases
        f = get(c.fault)
        if f is None or f.load_driven is None or getattr(c.facts, "beyond_load", False):
            continue  # (nor a CPU that grew many times past the traffic it served)
        # a database that got slow on its own (long transactions, locks) needs the surge first
        slack = ctx.tol if load_driven(c) else 0.0
        for s in strong_surges:
            if s.cause_onset is not None and c.cause_onset - 900 <= s.cause_onset <= c.cause_onset + slack and \
                    (c.service == s.service or (c.service in ctx.graph.downstream(s.service) and load_rose(ctx, c.service))):
                c.lose_to(s, f"a traffic surge into {s.service} came first; this follows from the load", 0.5)
                break


def load_rose(ctx: Ctx, svc: str, _seen: frozenset = frozenset()) -> bool:
    """Did the service itself receive more requests (so extra load can explain it)? A
    database or cache without request metrics is judged by its callers: more load reached
    it when one of them received more; where no caller is measured either, it may have."""
    if ctx.series("request_rate", svc) is None:
        callers = [u for u in ctx.graph.callers(svc) if u not in _seen]
        if not callers:
            return True
        return any(load_rose(ctx, u, _seen | {svc}) for u in callers)
    for sig in ("request_rate", "ok_rate"):
        ch = ctx.chg(sig, svc, 1, rel_floor=0.15, k=3.0, must_hold=False)
        if ch is not None and ch.rose and ch.ratio >= 1.3:
            return True
    return False


FAULT = Fault(
    id="traffic_surge", title="the culprit receives far more load than usual", order=12,
    detectors={"application": detect}, facts=SurgeFacts, scope=scope,
    rules=(Rule(30, upstream_first), Rule(40, retries), Rule(50, explains_load)),
    acute=True, seen_by_others=True,
)

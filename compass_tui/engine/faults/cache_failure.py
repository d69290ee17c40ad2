"""cache_failure: a cache is down or useless (dependencies agent).

Supports: the cache down, or its miss ratio (or evictions) up; what is behind it loaded after.
Disproves: the cache up with a normal hit ratio; neither it nor what its clients call is on
the alerting path (scope). Its rule on others: a database does not take a cache down, so a
cache that failed at the same moment as the database (or the CPU or pool) behind it came
first."""

from __future__ import annotations

from dataclasses import dataclass

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import rel
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.timeseries import fmt_time

BEHIND = ("db_slow_queries", "cpu_saturation", "db_connection_pool_exhaustion")
"""What a failed cache loads behind it."""


@dataclass
class CacheFacts(Facts):
    down_at: float | None = None
    """When the cache went down (None: it stayed up)."""
    miss_ratio: float | None = None
    """Its miss ratio after the rise, if it rose."""


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per cache that went down or whose misses rose."""
    out = []
    caches = {s.service for sig in ("cache_up", "cache_miss_ratio", "cache_evictions") for s in ctx.stack.signals.get(sig, {}).values()}
    for svc in sorted(caches):
        c = Candidate("cache_failure", svc, "dependencies", 0.0, f"the cache {svc} is down or useless", None)
        facts = CacheFacts()
        score = 0.0
        up = ctx.series("cache_up", svc)
        if up is not None:
            ch_up = ctx.chg("cache_up", svc, -1, abs_floor=0.1)
            t_down = ch_up.onset if ch_up is not None and ch_up.after < 0.5 else None
            if t_down is not None:
                score = 0.85
                c.cause_onset = t_down
                facts.down_at = t_down
                c.title = f"the cache {svc} is down"
                c.evidence.append(ctx.metric_evidence(up, f"{svc} went down at {fmt_time(t_down)}, {rel(ctx, t_down)}", onset=t_down))
        ch = ctx.chg("cache_miss_ratio", svc, 1, abs_floor=0.02, rel_floor=0.2)
        if ch is not None and ch.rose and (ch.after >= 0.5 or ch.ratio >= 2.0):
            score = max(score, 0.6 + min(0.25, 0.03 * ch.z))
            c.cause_onset = c.cause_onset or ch.onset
            facts.miss_ratio = ch.after
            c.evidence.append(ctx.metric_evidence(ctx.series("cache_miss_ratio", svc), f"miss ratio of {svc} rose from {ch.baseline * 100:.0f}% to {ch.after * 100:.0f}% at {fmt_time(ch.onset)}, {rel(ctx, ch.onset)}", onset=ch.onset))
        ev = ctx.chg("cache_evictions", svc, 1, abs_floor=0.5, rel_floor=0.5)
        if ev is not None and ev.rose and ev.ratio >= 3 and score:
            score += 0.05
        if score <= 0:
            continue
        c.strength = min(score, 1.0)
        c.facts = facts
        out.append(c)
    return out


def scope(ctx: Ctx, c: Candidate) -> bool:
    """A cache hurts through the database behind it: its clients' misses load that database,
    and every client of the database suffers. Without a complete graph: the generic check."""
    s = ctx.symptom_service
    if not (s and ctx.graph_complete and s in ctx.graph.nodes()):
        return False
    reach = {s} | ctx.graph.downstream(s)
    behind = {d for x in ctx.graph.callers(c.service) for d in ctx.graph.callees(x)} - {c.service}
    if c.service in reach or reach & behind:
        via = "" if c.service in reach else f" (through {', '.join(sorted(reach & behind))})"
        c.check("scope", True, f"{c.service} is on the alerting path of {s}{via}")
    else:
        c.check("scope", False, f"neither {c.service} nor what its clients call is downstream of {s}", 0.45)
    return True


def came_first(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """The cache in front of a database: at the same moment, the cache came first."""
    for ca in by_fault.get("cache_failure", []):
        if ca.cause_onset is None or ca.strength < 0.6:
            continue
        cache_clients = ctx.graph.callers(ca.service)
        for c in [x for f in BEHIND for x in by_fault.get(f, [])]:
            # "at the same moment" is as close as onsets can be told apart
            if c.cause_onset is None or ca.cause_onset > c.cause_onset + ctx.tol:
                continue
            behind = not ctx.graph.known or not cache_clients or c.service in cache_clients or \
                any(c.service in ctx.graph.callees(x) for x in cache_clients)
            if behind:
                c.lose_to(ca, f"the cache {ca.service} failed first; load moved behind it", 0.5)


FAULT = Fault(
    id="cache_failure", title="a cache is down or useless", order=13,
    detectors={"dependencies": detect}, facts=CacheFacts, scope=scope, rules=(Rule(60, came_first),),
    acute=True, seen_by_others=True,
)

"""db_connection_pool_exhaustion: the client's pool to its database is used up (database agent).

Supports: the pool at (nearly) its max within a sustained rise, pending waiters, acquisition
timeouts, pool-timeout lines ("Connection is not available") that the baseline did not have;
without pool metrics, those lines alone. Disproves (competing explanation): the database
behind the pool slowed first (then it is db_slow_queries on the database)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import db_change, pool_target, rel
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.timeseries import first_crossing, fmt_delta, fmt_time


@dataclass
class PoolFacts(Facts):
    pool: str | None = None
    """The pool's name as its metrics label it (None when read from logs)."""
    ramp_onset: float | None = None
    """When the pool's usage left its baseline (before it ran out): ordered against load."""


def detect(ctx: Ctx) -> list[Candidate]:
    """Pools that ran out (metrics), then clients whose logs say so without pool metrics."""
    out: list[Candidate] = []
    for key, s in ctx.stack.signals.get("pool_util", {}).items():
        c = pool(ctx, key, s)
        if c:
            out.append(c)
    # pool timeouts in the logs of a client whose pool metrics are not exported
    if ctx.logs:
        # pool metrics that stopped before the trouble (an exporter gone with its pod) say
        # nothing about it: the lines speak for that client
        live = ctx.grid.times >= ctx.onset - ctx.tol
        with_metrics = {s.service for s in ctx.stack.signals.get("pool_util", {}).values() if np.isfinite(s.values[live]).any()}
        for (svc, cls), ts in ctx.logs.class_hits.items():
            if cls != "pool" or svc in with_metrics:
                continue
            post = [t for t in ts if t >= ctx.onset - 1800]
            base = [t for t in ts if t <= ctx.grid.baseline_end]
            if len(post) < 3 or len(post) <= 3 * len(base):
                continue
            score = 0.55 + (0.1 if svc in ctx.affected else 0.0) + min(0.1, len(post) / 500)
            c = Candidate("db_connection_pool_exhaustion", svc, "database", score,
                          f"{svc} cannot get connections from its pool (logs)", post[0], from_lines=True)
            c.facts = PoolFacts()
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)connection is not available|timeout acquiring|pool"',
                                               f"{len(post)} pool-timeout lines from {svc} from {fmt_time(post[0])} (baseline {len(base)}); no pool metrics exported"))
            out.append(c)
    return out


def pool(ctx: Ctx, key: str, s) -> Candidate | None:
    """The exhaustion of one pool (a ``pool_util`` series), or None."""
    svc, pool = s.service, s.sub
    g = ctx.grid
    ch = ctx.chg("pool_util", key, 1, rel_floor=0.05)
    vals = s.values
    near = (g.times >= ctx.onset - 1800) & (g.times <= ctx.onset + 3 * ctx.tol) & np.isfinite(vals)
    if not near.any():
        return None
    peak = float(np.max(vals[near]))
    if peak < 0.85:
        return None
    t_sat = first_crossing(g, np.where(g.times >= ctx.onset - 1800, vals, np.nan), 0.95 if peak >= 0.95 else 0.85)
    if t_sat is None and (ch is None or ch.onset is None):
        return None  # touched the max now and then: not a pool that ran out
    # a pool fills over a while: it began when usage left its baseline (kept for ordering
    # against load), it ran out when it reached its max within that sustained rise (an
    # earlier brief touch of the max is not the exhaustion)
    ramp = ch.onset if ch is not None and ch.onset is not None else t_sat
    if ch is not None and ch.onset is not None:
        t_sat = first_crossing(g, np.where(g.times >= ch.onset - g.step, vals, np.nan), 0.95 if peak >= 0.95 else 0.85) or t_sat
    if t_sat is None:
        t_sat = ramp
    pend = ctx.chg("pool_pending", key, 1, abs_floor=0.5)
    tos = ctx.chg("pool_timeouts", key, 1, abs_floor=0.01)
    lines = ctx.logs.hits(svc, "pool", ctx.onset - 1800) if ctx.logs else []
    base_lines = ctx.logs.hits(svc, "pool", None, ctx.grid.baseline_end) if ctx.logs else []
    score = 0.5 + (0.15 if peak >= 0.97 else 0.0)
    if pend is not None and pend.rose:
        score += 0.1
    if tos is not None and tos.rose:
        score += 0.1
    if len(lines) >= 3 and len(lines) > 3 * len(base_lines):
        score += 0.15
    if svc in ctx.affected:
        score += 0.05
    c = Candidate("db_connection_pool_exhaustion", svc, "database", min(score, 1.0),
                  f"{svc} exhausted its connection pool" + (f" {pool}" if pool else ""), t_sat)
    c.evidence.append(ctx.metric_evidence(s, f"pool {pool or ''} of {svc} at {peak * 100:.0f}% of max from {fmt_time(t_sat)}, {rel(ctx, t_sat)} (baseline {ch.baseline * 100:.0f}%)" if ch else f"pool of {svc} at {peak * 100:.0f}% of max", onset=t_sat))
    if pend is not None and pend.rose:
        c.evidence.append(ctx.metric_evidence(ctx.series("pool_pending", key), f"{pend.after:.0f} requests waiting for a connection (baseline {pend.baseline:.0f})", onset=pend.onset))
    if tos is not None and tos.rose:
        c.evidence.append(ctx.metric_evidence(ctx.series("pool_timeouts", key), f"connection acquisition timeouts on {svc}: {tos.after:.2f}/s", onset=tos.onset))
    if lines and ctx.logs:
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)connection is not available|timeout acquiring|pool"',
                                           f"{len(lines)} pool-timeout lines from {svc} (baseline {len(base_lines)})"))
    c.facts = PoolFacts(pool=pool, ramp_onset=ramp)
    return c


def database_behind(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """The pool vs the database behind it: a database that slowed first is the cause."""
    for c in by_fault.get("db_connection_pool_exhaustion", []):
        db = pool_target(ctx, c.service, getattr(c.facts, "pool", None))
        best = db_change(ctx, db, slowness_only=True) if db else None
        if best is not None and best[1] is not None and (c.cause_onset is None or best[1] <= c.cause_onset + ctx.grid.step):
            c.lose_to(next((x for x in by_fault.get("db_slow_queries", []) if x.service == db), None), f"the database {db} itself slowed ({fmt_delta((c.cause_onset or ctx.onset) - best[1])} the pool filled): db_slow_queries on {db}", 0.35)
        else:
            c.check("competing_explanation", True, f"the database {db or 'behind the pool'} itself is not slow" if db else "no database-server slowdown explains it")


FAULT = Fault(
    id="db_connection_pool_exhaustion", title="the client's pool to its database is used up", order=3,
    detectors={"database": detect}, facts=PoolFacts, rules=(Rule(10, database_behind),),
    load_driven=lambda c: True, acute=True,
)

"""db_slow_queries: the database is slow: long queries, locks (database agent).

Supports: the longest transaction, locks or slow queries up on the database (active queries
only when nothing better moved), and its clients slowing together. Disproves: database
metrics flat; none of its clients slowed; only one client suffers while others are fine and
that client's pool filled first (its pool, not the database)."""

from __future__ import annotations

from dataclasses import dataclass, field

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import DB_SIGNALS, db_change, pool_target, rel
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.timeseries import fmt_ratio, fmt_time


@dataclass
class DbFacts(Facts):
    clients: set[str] = field(default_factory=set)
    """The services that call the database (graph callers and pools that point at it)."""
    signal: str = ""
    """The database signal that rose (db_active alone rises with load too)."""
    slowed: list[str] = field(default_factory=list)
    """The clients whose errors or latency moved."""


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per database whose server-side signals rose."""
    dbs = set()
    for sig in DB_SIGNALS:
        dbs |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    return [c for c in (db_slow(ctx, db) for db in sorted(dbs)) if c]


def db_clients(ctx: Ctx, db: str) -> set[str]:
    """Callers of the database, and clients whose pool points at it."""
    out = set(ctx.graph.callers(db))
    for key, s in ctx.stack.signals.get("pool_util", {}).items():
        if pool_target(ctx, s.service, s.sub) == db:
            out.add(s.service)
    return out


def db_slow(ctx: Ctx, db: str) -> Candidate | None:
    """The slowness of one database, or None."""
    best = db_change(ctx, db)
    if best is None:
        return None
    z, onset, sig, ch = best
    clients = db_clients(ctx, db)
    slowed = [c for c in clients if c in ctx.affected]
    score = (0.5 if sig != "db_active" else 0.35) + min(0.25, 0.04 * z)
    if clients and len(slowed) >= max(1, len(clients) // 2):
        score += 0.15
    elif clients and not slowed:
        score *= 0.6  # a slow database slows its clients; none of these did
    elif len(clients) >= 3 and len(slowed) == 1:
        score *= 0.8  # one client of many: more likely that client's own problem
    slow_lines = ctx.logs.hits(db, "db_slow", ctx.onset - 1800) if ctx.logs else []
    base_slow = ctx.logs.hits(db, "db_slow", None, ctx.grid.baseline_end) if ctx.logs else []
    if len(slow_lines) > 2 * max(1, len(base_slow)):
        score += 0.1
    names = {"db_tx_duration": "longest transaction/query time", "db_locks": "locks", "db_active": "active queries",
             "db_slow_rate": "slow queries"}
    c = Candidate("db_slow_queries", db, "database", min(score, 1.0),
                  f"{db} is slow: {names[sig]} up {fmt_ratio(ch.ratio)}", onset)
    c.evidence.append(ctx.metric_evidence(ctx.series(sig, db), f"{names[sig]} on {db} rose {fmt_ratio(ch.ratio)} at {fmt_time(onset)}, {rel(ctx, onset)}", onset=onset))
    if clients:
        c.evidence.append(ctx.metric_evidence(
            ctx.series("latency_p99", slowed[0]) or ctx.series("latency_mean", slowed[0]) or ctx.series(sig, db),
            f"{len(slowed)} of {len(clients)} clients of {db} slowed or failed: {', '.join(sorted(slowed)) or 'none'}",
            supports=bool(slowed)) if slowed else
            ctx.metric_evidence(ctx.series(sig, db), f"none of the {len(clients)} clients of {db} slowed", supports=False))
    c.facts = DbFacts(clients=clients, signal=sig, slowed=slowed)
    return c


def one_client(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """Only one client suffers while the others are fine, and its pool filled first: its
    pool, not the database."""
    for c in by_fault.get("db_slow_queries", []):
        clients = getattr(c.facts, "clients", set())
        slowed = getattr(c.facts, "slowed", [])
        pools = [p for p in by_fault.get("db_connection_pool_exhaustion", []) if p.service in clients]
        if len(clients) >= 2 and len(slowed) <= 1 and pools and pools[0].cause_onset is not None and \
                (c.cause_onset is None or pools[0].cause_onset <= c.cause_onset + ctx.grid.step):
            c.lose_to(pools[0], f"only {pools[0].service} suffers while other clients are fine: its pool, not the database", 0.4)
        else:
            c.check("competing_explanation", True, f"{len(slowed)} of {len(clients)} clients slowed together" if clients else "no competing cause on the clients")


def burns_cpu(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """Long queries burn a database's CPU: a CPU saturation of the same database that began
    no earlier than its slow queries (within the tolerance) follows from them."""
    for db in by_fault.get("db_slow_queries", []):
        if db.cause_onset is None or getattr(db.facts, "signal", "") == "db_active":
            continue  # more active queries alone is load, and load is the CPU's too
        for c in by_fault.get("cpu_saturation", []):
            if c.service == db.service and c.cause_onset is not None and c.cause_onset >= db.cause_onset - ctx.tol:
                c.lose_to(db, f"the slow queries on {db.service} began no later than its CPU rose: long queries burn the CPU", 0.5)


FAULT = Fault(
    id="db_slow_queries", title="the database is slow: long queries, locks", order=4,
    detectors={"database": detect}, facts=DbFacts, rules=(Rule(20, one_client), Rule(56, burns_cpu)),
    # only more active queries: load alone produces that within a step
    load_driven=lambda c: getattr(c.facts, "signal", None) == "db_active", acute=True,
)

"""What the origin agent's detectors share: the leading suspects they explain, and how a
signal that left its baseline is cited as evidence."""

from __future__ import annotations

from compass_tui.engine.context import Ctx
from compass_tui.engine.faults._common import DB_NAME, rel
from compass_tui.engine.localise import KNOWN_SIGNALS, Moved, Suspect
from compass_tui.engine.timeseries import fmt_time
from compass_tui.models import Evidence

MAX_SUSPECTS = 5
"""The origin agent explains this many of the localisation's leading suspects."""


def origin_suspects(ctx: Ctx) -> list[tuple[Suspect, float]]:
    """The leading suspects (at least a quarter of the leader's score) and the strength a
    hypothesis on each starts from."""
    return [(s, 0.25 + 0.3 * s.norm) for s in ctx.suspects[:MAX_SUSPECTS] if s.norm >= 0.25]


def moved_evidence(ctx: Ctx, m: Moved, supports: bool = True) -> Evidence:
    """A signal that left its baseline, as evidence: from what to what, and when."""
    if m.signal == "log_errors":
        return ctx.log_evidence(m.series.query, f"new error templates of {m.series.service}'s own after the onset", supports)
    direction = "fell" if m.peak < m.baseline else "rose"
    what = m.label
    summary = (f"{what} {direction} from {m.baseline:.3g} to {m.peak:.3g} ({m.z:.0f} robust sd) at "
               f"{fmt_time(m.onset)}, {rel(ctx, m.onset)}")
    return ctx.metric_evidence(m.series, summary, supports=supports, onset=m.onset)


def own_latency_query(ctx: Ctx, svc: str) -> str:
    """The query of the service's own server-side latency, or "(none)"."""
    return _own_query(ctx, svc, ("latency_p99", "latency_mean"), {"latency"})


def own_errors_query(ctx: Ctx, svc: str) -> str:
    """The query of the service's own server-side failures (or successes), or "(none)"."""
    return _own_query(ctx, svc, ("error_ratio",), {"errors", "success"})


def _own_query(ctx: Ctx, svc: str, names: tuple[str, ...], kinds: set[str]) -> str:
    """The service's first series under the engine's names, then of these kinds in its own
    view under whatever names the stack's families were read by."""
    for sig in names:
        ss = ctx.series(sig, svc)
        if ss is not None:
            return ss.query
    for sig, meta in ctx.stack.generic.items():
        if meta.kind in kinds and meta.view == "own":
            for ss in ctx.stack.signals.get(sig, {}).values():
                if ss.service == svc:
                    return ss.query
    return "(none)"


def reports_own(ctx: Ctx, svc: str) -> bool:
    """Does the service export any telemetry of its own, under any name (a third party is seen
    only by its callers)?"""
    for sig, series in ctx.stack.signals.items():
        meta = ctx.stack.generic.get(sig)
        view = KNOWN_SIGNALS[sig][2] if sig in KNOWN_SIGNALS else meta.view if meta is not None else None
        if view == "own" and any(ss.service == svc for ss in series.values()):
            return True
    return False


def is_datastore(ctx: Ctx, svc: str) -> bool:
    """A database or cache (its slowness or failure is its own catalog fault)."""
    db_signals = ("db_tx_duration", "db_locks", "db_active", "db_slow_rate", "db_up", "cache_up", "cache_miss_ratio")
    return any(ctx.series(sig, svc) is not None for sig in db_signals) or bool(DB_NAME.search(svc))

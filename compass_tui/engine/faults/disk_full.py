"""disk_full: a filesystem or volume is (nearly) full (infrastructure agent).

Supports: available bytes near zero before the symptom; "No space left on device" lines that
were not there in the baseline. Disproves: plenty of space left throughout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import rel
from compass_tui.engine.faults.base import Facts, Fault
from compass_tui.engine.timeseries import first_crossing, fmt_time


@dataclass
class DiskFacts(Facts):
    free: float | None = None
    """The lowest free share up to the symptom (None when only the logs say so)."""
    lines: int = 0
    """"No space left" lines since shortly before the onset."""


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per service with a (nearly) full filesystem or new no-space lines."""
    services = {s.service for s in ctx.stack.signals.get("disk_free", {}).values()}
    if ctx.logs:
        services |= {svc for (svc, cls) in ctx.logs.class_hits if cls == "disk"}
    return [c for c in (disk(ctx, svc) for svc in sorted(services)) if c]


def disk(ctx: Ctx, svc: str) -> Candidate | None:
    """The full disk of one service, or None."""
    s = ctx.series("disk_free", svc)
    g = ctx.grid
    lines = ctx.logs.hits(svc, "disk", ctx.onset - 1800) if ctx.logs else []
    base_lines = ctx.logs.hits(svc, "disk", None, g.baseline_end) if ctx.logs else []
    new_lines = len(lines) >= 2 and len(lines) > 3 * len(base_lines)
    low, t = 1.0, None
    from_lines = False
    if s is not None:
        upto = (g.times <= ctx.onset + ctx.tol) & np.isfinite(s.values)
        if upto.any():
            low = float(np.min(s.values[upto]))
            t = first_crossing(g, s.values, 0.05, -1)
    if low > 0.1 and not new_lines:
        return None
    if s is not None and low <= 0.1:
        score = 0.9 if low <= 0.02 else 0.75 if low <= 0.05 else 0.45
    else:
        score = 0.6  # only the logs say so
        t = lines[0] if lines else None
        from_lines = True
    if new_lines:
        score = min(1.0, score + 0.1)
    c = Candidate("disk_full", svc, "infrastructure", score,
                  f"a filesystem of {svc} is full" + (f" ({low * 100:.1f}% free)" if s is not None else ""), t,
                  from_lines=from_lines)
    c.facts = DiskFacts(free=low if s is not None else None, lines=len(lines))
    if s is not None:
        c.evidence.append(ctx.metric_evidence(s, f"free space on {svc} fell to {low * 100:.1f}%" + (f" at {fmt_time(t)}, {rel(ctx, t)}" if t else ""),
                                              supports=low <= 0.1, onset=t))
    if lines and ctx.logs:
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)no space left|disk full"',
                                           f'{len(lines)} "no space left on device" lines from {svc} (baseline {len(base_lines)})'))
    return c


FAULT = Fault(
    id="disk_full", title="a filesystem or volume is (nearly) full", order=9,
    detectors={"infrastructure": detect}, facts=DiskFacts,
)

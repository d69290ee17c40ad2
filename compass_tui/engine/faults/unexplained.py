"""unexplained: the culprit is where the trouble started, but no fault above fits its
signals (origin agent).

Proposed on every leading suspect of the localisation so the likely origin always has a
hypothesis; it says what moved. Never shown as supported (where, not what); it ranks below
any specific fault that survived on the same service and names the faults ruled out there."""

from __future__ import annotations

from dataclasses import dataclass

from compass_tui.engine.context import Candidate, Ctx, confidence
from compass_tui.engine.faults._origin import moved_evidence, origin_suspects
from compass_tui.engine.faults.base import Facts, Fault


@dataclass
class UnexplainedFacts(Facts):
    where_only: bool = True
    """Says where the trouble started, not what it is."""
    moved: tuple[str, ...] = ()
    """The kinds of signal that moved (latency, errors, ...)."""


def detect(ctx: Ctx) -> list[Candidate]:
    """One where-only hypothesis per leading suspect."""
    return [unexplained(ctx, s, strength) for s, strength in origin_suspects(ctx)]


def unexplained(ctx: Ctx, s, strength: float) -> Candidate:
    """The where-only hypothesis on one suspect."""
    kinds = sorted({m.label for m in s.moved[:4]})
    c = Candidate("unexplained", s.service, "origin", strength,
                  f"trouble started at {s.service} ({', '.join(kinds)}); no catalog fault fits its signals", s.onset)
    for m in s.moved[:3]:
        if m.signal != "log_errors":
            c.evidence.append(moved_evidence(ctx, m))
    c.facts = UnexplainedFacts(moved=tuple(kinds))
    return c


def below_specific(ctx: Ctx, cands: list[Candidate]) -> None:
    """``unexplained`` says where, not what: below any specific fault that survived on the
    same service, and it names the faults ruled out there."""
    for c in cands:
        if c.fault != "unexplained":
            continue
        same = [x for x in cands if x.service == c.service and x is not c and x.fault != "unexplained"]
        alive = [x for x in same if not any(d.result == "failed" for d in x.checks)]
        ruled = sorted({x.fault for x in same} - {x.fault for x in alive})
        if ruled:
            c.title += f"; ruled out there: {', '.join(ruled)}"
        if ruled or not alive:
            c.check("competing_explanation", True, "no specific fault fits here" + (": ruled out " + "; ".join(
                f"{x.fault} ({x.why_not})" for x in same if x.fault in ruled) if ruled else "")[:400])
        if alive:
            best = max(confidence(x) for x in alive)
            cap = 0.95 * best
            if c.strength * c.factor > cap:
                c.factor = cap / max(c.strength, 1e-9)


FAULT = Fault(
    id="unexplained", title="the culprit is where the trouble started, but no fault above fits its signals",
    order=15, detectors={"origin": detect}, facts=UnexplainedFacts, final=below_specific, where_only=True,
    where_reading=True, since=2, simulated=False,
)

"""Recall: how past verdicts on incidents with the same signature shift today's ranking.

Matching (see docs/memory.md): a past investigation matches today's signature when it had the
same alert name and the same alerting service, and either the same symptom shape or a similar
set of moved services (Jaccard >= 0.5). It counts fully (weight 1) when both hold, half when
only one does. Time is not part of a signature, so a recurrence at any hour matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compass_tui.models import ProposedCause, Recall, Signature
from compass_tui.store.causes import catalog_faults

if TYPE_CHECKING:
    from compass_tui.store.store import Store

JACCARD_MIN = 0.5
"""Moved-service sets at least this similar count as the same incident pattern."""
PARTIAL_WEIGHT = 0.5
"""Weight of a past incident that matches on shape or on moved services, not both."""
CONFIRM_GAIN = 0.6
"""Added for a cause the engineer confirmed when COMPASS had already ranked it first."""
CORRECTION_GAIN = 1.0
"""Added for a cause the engineer named when COMPASS had ranked something else first: large
enough that one correction puts it first on the next recurrence, whatever the engine scored."""
REJECT_PENALTY = 0.3
"""Taken off per rejection (explicit, or the top hypothesis of a corrected investigation)."""
MAX_GAIN = 1.2
MAX_PENALTY = 0.6


def jaccard(a: list[str] | set[str], b: list[str] | set[str]) -> float:
    """|a & b| / |a | b|; two empty sets are identical (1.0)."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def match_weight(sig: Signature, shape: str, moved: list[str]) -> float:
    """How much a past incident (same alert and service) counts for ``sig``: 1, 0.5 or 0."""
    same_shape = (sig.shape or "") == (shape or "")
    similar = jaccard(sig.moved, moved) >= JACCARD_MIN
    if same_shape and similar:
        return 1.0
    if same_shape or similar:
        return PARTIAL_WEIGHT
    return 0.0


def cause_name(c: tuple[str, str]) -> str:
    return f"{c[0]}@{c[1]}"


@dataclass
class CauseTally:
    """What past verdicts say about one cause under a signature."""

    gain: float = 0.0
    penalty: float = 0.0
    resolved: float = 0.0  # weighted count of incidents whose cause this was
    resolved_n: int = 0
    taught_n: int = 0  # answers COMPASS had not ranked first (corrections)
    rejected_n: int = 0
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Recollection:
    """Everything the memory knows about one signature."""

    seen: int = 0
    resolved_total: float = 0.0
    causes: dict[tuple[str, str], CauseTally] = field(default_factory=dict)

    def usual(self) -> tuple[tuple[str, str], CauseTally] | None:
        """The cause most often given as the answer (latest wins a tie)."""
        best = None
        for c, t in self.causes.items():
            if t.resolved_n and (best is None or t.resolved >= best[1].resolved):
                best = (c, t)
        return best


def recollect(past: list[dict[str, Any]], sig: Signature) -> Recollection:
    """Tally the verdicts of the past investigations that match ``sig`` (oldest first)."""
    from compass_tui.store.store import outcome

    rec = Recollection()
    for inv in past:
        w = match_weight(sig, inv["shape"], inv["moved"])
        if w <= 0:
            continue
        rec.seen += 1
        cause, rejected = outcome(inv)
        top = (inv["hypotheses"][0]["fault"], inv["hypotheses"][0]["service"]) if inv["hypotheses"] else None
        if cause is not None:
            t = rec.causes.setdefault(cause, CauseTally())
            t.gain += w * (CONFIRM_GAIN if cause == top else CORRECTION_GAIN)
            t.resolved += w
            t.resolved_n += 1
            t.taught_n += cause != top
            rec.resolved_total += w
            for v in inv["verdicts"]:
                if (v["fault"], v["service"]) == cause and v["note"]:
                    t.notes.append(v["note"])
            # COMPASS ranked something else first and was corrected: that one was wrong.
            if top is not None and top != cause:
                rejected = rejected | {top}
        for r in rejected:
            t = rec.causes.setdefault(r, CauseTally())
            t.penalty += w * REJECT_PENALTY
            t.rejected_n += 1
            for v in inv["verdicts"]:
                if v["verdict"] == "reject" and (v["fault"], v["service"]) == r and v["reason"]:
                    t.reasons.append(v["reason"])
    return rec


def adjust_for(rec: Recollection, tally: CauseTally) -> float:
    """The confidence shift for one cause: its gain scaled by its share of the answers
    (two different answers split the push), minus its rejections; both capped."""
    gain = 0.0
    if tally.gain and rec.resolved_total:
        gain = min(MAX_GAIN, tally.gain) * (tally.resolved / rec.resolved_total)
    return round(gain - min(MAX_PENALTY, tally.penalty), 4)


def note_for(rec: Recollection, cause: tuple[str, str], tally: CauseTally | None) -> str | None:
    """The line shown on a hypothesis, e.g. "seen 3 times, usually db_slow_queries@payments-db"."""
    if rec.seen == 0 or tally is None:
        return None
    times = "once" if rec.seen == 1 else f"{rec.seen} times"
    parts = []
    usual = rec.usual()
    if usual is not None:
        (uc, ut) = usual
        answered = sum(t.resolved_n for t in rec.causes.values())
        who = "this" if uc == cause else cause_name(uc)
        parts.append(f"seen {times}, usually {who} ({ut.resolved_n} of {answered})")
    else:
        parts.append(f"seen {times}")
    if tally.rejected_n:
        why = f": {tally.reasons[-1]}" if tally.reasons else ""
        n = "once" if tally.rejected_n == 1 else f"{tally.rejected_n} times"
        parts.append(f"ruled out {n} before{why}")
    if tally.notes and usual is not None and usual[0] == cause:
        parts.append(f"fixed by: {tally.notes[-1]}")
    return "; ".join(parts)


class StoreAdvisor:
    """``MemoryAdvisor`` over a ``Store``: recall for candidates, proposals for a signature."""

    def __init__(self, store: "Store", exclude: str | None = None) -> None:
        self._store = store
        self._exclude = exclude
        # The engine asks for proposals and then recall under one signature: read it once.
        self._cache: tuple[str, int, Recollection] | None = None

    def recollect(self, signature: Signature) -> Recollection:
        """The tally of past verdicts for this signature."""
        key, gen = signature.key(), self._store.generation
        if self._cache is not None and self._cache[:2] == (key, gen):
            return self._cache[2]
        rec = recollect(self._store._past(signature.alertname, signature.service, self._exclude), signature)
        self._cache = (key, gen, rec)
        return rec

    def recall(self, signature: Signature, candidates: list[tuple[str, str]]) -> dict[tuple[str, str], Recall]:
        """For each (fault, service) candidate: the confidence shift and the note to show.
        Every candidate gets an entry; one with no history gets ``Recall()`` (no shift, no note)."""
        rec = self.recollect(signature)
        out: dict[tuple[str, str], Recall] = {}
        for c in candidates:
            c = (c[0], c[1])
            tally = rec.causes.get(c)
            if tally is None:
                out[c] = Recall()
                continue
            out[c] = Recall(adjust=adjust_for(rec, tally), note=note_for(rec, c, tally))
        return out

    def proposals(self, signature: Signature) -> list[ProposedCause]:
        """Causes the engineer taught for matching incidents, most often named first, so the
        engine proposes them itself: every ``other:<slug>`` cause (no agent can propose one),
        and catalog causes the engineer named when COMPASS had ranked something else first
        (its agents missed or ruled them out, and would again on the same data)."""
        rec = self.recollect(signature)
        props = []
        for c, t in rec.causes.items():
            if not t.resolved_n:
                continue
            if c[0] in catalog_faults() and not t.taught_n:
                continue  # confirmed where COMPASS already ranked it first: the agents find it
            if adjust_for(rec, t) <= 0:
                continue  # taught once, ruled out since
            note = note_for(rec, c, t) or "taught by the engineer"
            props.append(
                (t.resolved, ProposedCause(fault=c[0], service=c[1], note=f"taught by the engineer; {note}",
                                           times_seen=t.resolved_n))
            )
        props.sort(key=lambda p: -p[0])
        return [p for _, p in props]


__all__ = ["StoreAdvisor", "jaccard", "match_weight", "recollect"]

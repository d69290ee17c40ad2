"""network_degradation: loss or delay on the path to the culprit.

Two detectors. The network agent's reads TCP retransmits or drops on the culprit, and the
traces' client-side durations against the server-side ones. The origin agent's reads the
callers' view: the callers' client-side latency to a leading suspect far above its baseline
while the suspect's own server-side latency stayed flat. Disproves: retransmits flat; client
and server durations agree (the service's own view moved as much, and at the same time, or
its CPU saturated: it is slow itself)."""

from __future__ import annotations

import re

from dataclasses import dataclass

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults import cpu_saturation
from compass_tui.engine.faults._common import rel, trace_evidence
from compass_tui.engine.faults._origin import moved_evidence, origin_suspects, own_latency_query
from compass_tui.engine.faults.base import Facts, Fault
from compass_tui.engine.graph import EdgeStats, median
from compass_tui.engine.timeseries import fmt_ratio, fmt_time
from compass_tui.models import Evidence


@dataclass
class NetworkFacts(Facts):
    callers_z: float | None = None
    """How far (robust sd) the callers' view of the culprit moved (callers'-view detector)."""
    gap: float | None = None
    """Client-side minus server-side time of calls to the culprit, after vs before (traces)."""


# ------------------------------------------------------------------ network agent


def detect(ctx: Ctx) -> list[Candidate]:
    """Retransmits or drops on a service, or a client/server duration gap in traces."""
    # the traced calls into each callee, grouped once
    into: dict[str, list[EdgeStats]] = {}
    for (_, b), st in ctx.graph.edge_stats.items():
        into.setdefault(b, []).append(st)
    timed = {b for b, calls in into.items() if any(st.post_client and st.post_server for st in calls)}
    out: list[Candidate] = []
    # services with network metrics of their own, and every callee the traces time from both ends
    for svc in sorted({s.service for s in ctx.stack.signals.get("retrans_ratio", {}).values()} |
                      {s.service for s in ctx.stack.signals.get("net_drops", {}).values()} | timed):
        c = net(ctx, svc, into.get(svc, []))
        if c:
            out.append(c)
    return out


def net(ctx: Ctx, svc: str, calls: list[EdgeStats]) -> Candidate | None:
    """The network degradation to one service seen in its own network metrics or in the
    traced ``calls`` into it, or None."""
    best = None
    for sig in ("retrans_ratio", "net_drops"):
        ch = ctx.chg(sig, svc, 1, rel_floor=0.3, abs_floor=1e-4)
        if ch is not None and ch.rose and ch.ratio >= 2.0:
            if best is None or ch.z > best[1].z:
                best = (sig, ch)
    gap, added = client_server_gap(calls)
    # the time between caller and callee grew, by a few ms at least (clock noise is no delay)
    widened = gap is not None and gap >= 3.0 and added >= 0.005
    # from traces alone only while the callee's own time held: a callee that slowed itself
    # also makes its callers queue for it (an accept queue, a pool), and that is not the path
    if best is None and not (widened and server_growth(calls) <= 1.5):
        return None
    score = 0.0
    c = Candidate("network_degradation", svc, "network", 0.0, f"packet loss or delay on the path to {svc}", None)
    c.facts = NetworkFacts(gap=gap)
    if best is not None:
        sig, ch = best
        score += 0.55 + min(0.2, 0.03 * ch.z)
        c.cause_onset = ch.onset
        what = "TCP retransmits" if sig == "retrans_ratio" else "dropped packets"
        c.evidence.append(ctx.metric_evidence(ctx.series(sig, svc), f"{what} on {svc} rose {fmt_ratio(ch.ratio)} at {fmt_time(ch.onset)}, {rel(ctx, ch.onset)}", onset=ch.onset))
    if widened:
        score += 0.25 if best is not None else 0.5 + min(0.2, 0.05 * float(np.log2(gap / 3.0)))
        c.evidence.append(trace_evidence(ctx, svc, f"calls to {svc} spend {added * 1000:.0f} ms more between caller and callee than before "
                                                   f"({gap:.1f}x; client-side against server-side span durations)"))
    c.strength = min(score, 1.0)
    return c


def client_server_gap(calls: list[EdgeStats]) -> tuple[float | None, float]:
    """How much the client-side minus server-side time of the traced calls into a service
    grew after the onset: (after / before, after - before in seconds); (None, 0) without any."""
    gaps_b, gaps_p = [], []
    for st in calls:
        if not st.post_client or not st.post_server:
            continue
        gaps_p.append(median(st.post_client) - median(st.post_server))
        if st.base_client and st.base_server:
            gaps_b.append(median(st.base_client) - median(st.base_server))
    if not gaps_p:
        return None, 0.0
    gp = float(np.median(gaps_p))
    gb = float(np.median(gaps_b)) if gaps_b else 0.0
    return gp / max(gb, 0.005), gp - gb


def traced_own(ctx: Ctx, svc: str) -> tuple[float, float] | None:
    """The service's own time as its traced server spans show it: (after / before, seconds
    added), the median over its traced callers; None when no traced call into it was timed at
    the server both before and after."""
    calls = [st for (_, b), st in ctx.graph.edge_stats.items() if b == svc and st.post_server and st.base_server]
    if not calls:
        return None
    added = float(np.median([median(st.post_server) - median(st.base_server) for st in calls]))
    return server_growth(calls), added


def spent_inside(traced: tuple[float, float] | None, seen) -> bool:
    """The callers' wait ``seen`` was spent inside the callee: its traced server spans
    (``traced_own``) took 1.5x their usual time and grew by half that wait or more."""
    return traced is not None and traced[0] >= 1.5 and half_the_wait(traced[1], seen)


def half_the_wait(added_s: float, seen) -> bool:
    """A callee whose own time grew by half its callers' added wait ``seen`` or more is slow
    itself, however noisy its own measure."""
    return added_s >= 0.5 * added_seconds(seen)


def traced_spans_took(svc: str, traced: tuple[float, float]) -> str:
    return f"{svc}'s own server spans took {traced[0]:.1f}x their usual time"


def server_growth(calls: list[EdgeStats]) -> float:
    """How many times longer the callee's own server spans took after the onset than before
    (the median over its traced callers; 1.0 when it cannot be told)."""
    ratios = [median(st.post_server) / max(median(st.base_server), 1e-3) for st in calls if st.post_server and st.base_server]
    return float(np.median(ratios)) if ratios else 1.0


# ------------------------------------------------------------------ origin agent


def detect_callers_view(ctx: Ctx) -> list[Candidate]:
    """Leading suspects whose callers waited far longer while their own view stayed flat."""
    return [c for c in (callers_view(ctx, s, strength) for s, strength in origin_suspects(ctx)) if c]


def callers_view(ctx: Ctx, s, strength: float) -> Candidate | None:
    """Network degradation to one suspect read from its callers' view, or None."""
    callers = s.kinds("callers")
    own = s.kinds("own")
    seen = callers.get("latency")
    if seen is None:
        return None
    if not (seen.baseline > 0 and seen.peak >= 2.0 * seen.baseline and seen.peak - seen.baseline >= 0.005):
        return None  # far slower, not a few percent: delay on the path is large or nothing
    own_lat = own.get("latency")
    measured_own = own_latency_query(ctx, s.service) != "(none)"
    if own_lat is not None and rose_later(ctx, own_lat, seen) and not cpu_saturation.saturated(ctx, s.service):
        # a service slow itself is slow for its callers at once; its own time that rose only
        # well after they waited is the backlog of a path that was slow first (a saturated
        # CPU is the exception: requests queue before its server timer starts)
        own_lat = None
    if own_lat is not None and own_lat.z >= 0.5 * seen.z:
        return None  # the service's own view moved as much: it is slow itself
    if own_lat is not None and half_the_wait(added_seconds(own_lat), seen):
        return None  # its own time grew by half the callers' wait or more: it is slow itself
    traced = None if measured_own else traced_own(ctx, s.service)
    if spent_inside(traced, seen):
        return None  # no server-side metric, but its traced server spans grew as much: it is slow itself
    c = Candidate("network_degradation", s.service, "origin", 0.0, f"calls to {s.service} are slow on the way (callers' view)",
                  seen.onset)
    c.evidence.append(moved_evidence(ctx, seen))
    if traced is not None and traced[0] < 1.5:
        c.strength = min(0.9, strength + 0.1)
        c.evidence.append(trace_evidence(ctx, s.service, f"{traced_spans_took(s.service, traced)} while its callers waited"))
    elif measured_own:
        c.strength = min(0.9, strength + 0.15)
        held = "flat" if own_lat is None else f"within {own_lat.z:.0f} sd"
        late = own.get("latency")
        if late is not None and late is not own_lat:
            held = f"flat until {fmt_time(late.onset)}, {(late.onset - seen.onset) / 60:.0f} min after its callers began to wait"
        c.evidence.append(Evidence(kind="metric", summary=f"{s.service}'s own server-side latency stayed {held} while its callers waited",
                                   supports=True, source=ctx.source, query=own_latency_query(ctx, s.service)))
    else:
        # slow on the way or slow itself: without its own view the data cannot tell, so it is
        # never shown as supported
        c.strength = min(strength + 0.02, 0.48)
        c.evidence.append(Evidence(kind="metric", summary=f"{s.service} has no server-side latency of its own to compare with",
                                   supports=False, source=ctx.source, query="(none)"))
        c.check("competing_explanation", None, f"without {s.service}'s own latency, a delay on the way cannot be told from {s.service} being slow itself")
    c.facts = NetworkFacts(callers_z=seen.z)
    if seen.common:
        c.check("competing_explanation", False, f"{seen.series.service}'s calls to {', '.join(seen.common[:3])} slowed at the "
                f"same time: the caller is the common factor, not the path to {s.service}", 0.4)
    return c


def rose_later(ctx: Ctx, own, seen) -> bool:
    """Did the service's own latency leave its baseline more than two onset tolerances after
    its callers' view of it did?"""
    return own.onset is not None and seen.onset is not None and own.onset > seen.onset + 2 * ctx.tol


def added_seconds(m) -> float:
    """Seconds a latency measure added over its baseline (a milliseconds family read so)."""
    scale = 1e-3 if re.search(r"millis|_ms\b", m.series.query) else 1.0
    return (m.peak - m.baseline) * scale


FAULT = Fault(
    id="network_degradation", title="loss or delay on the path to the culprit", order=8,
    detectors={"network": detect, "origin": detect_callers_view}, facts=NetworkFacts, acute=True,
)

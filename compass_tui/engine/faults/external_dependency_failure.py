"""external_dependency_failure: a third-party or external dependency is slow or failing
(dependencies agent).

Supports: client metrics (error ratio, latency) or client spans to the dependency slow or
failing; new error lines naming it in its callers' logs. Disproves: calls to it normal in
duration and status; no service on the alerting path calls it (scope); it reports its own
telemetry, so it is not external; name resolution failed first (dns_failure's rule)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import DB_NAME, NOT_A_PEER, OWN_ERROR, rel, trace_evidence
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.graph import median
from compass_tui.engine.timeseries import fmt_time


@dataclass
class ExternalFacts(Facts):
    callers: set[str] = field(default_factory=set)
    """Callers whose client metrics to it rose."""
    kind: str | None = None
    """What rose in the client metrics: "err" or "lat" (None: spans or logs only)."""


def internal_services(ctx: Ctx) -> set[str]:
    """Services that report their own telemetry (not third parties seen only by callers)."""
    own = set(ctx.stack.signals.get("request_rate", {}))
    for sig in ("cpu_cores", "cpu_util", "mem_bytes", "mem_util", "up", "db_up", "cache_up"):
        own |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    own |= set(ctx.graph.own_errors)
    return own


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per third party whose calls failed or slowed (metrics, spans, logs)."""
    internal = internal_services(ctx)
    per_peer: dict[str, list] = {}
    for key, s in ctx.stack.signals.get("client_error_ratio", {}).items():
        per_peer.setdefault(s.sub, []).append(("err", s))
    for key, s in ctx.stack.signals.get("client_latency", {}).items():
        per_peer.setdefault(s.sub, []).append(("lat", s))
    # calls seen only in traces
    for (a, b), st in ctx.graph.edge_stats.items():
        if b not in internal and (st.post_n >= 2):
            per_peer.setdefault(b, [])
    # third parties named only in callers' new error lines
    if ctx.logs:
        for tp in ctx.logs.templates.values():
            if tp.post < 3 or not tp.named or not OWN_ERROR.search(tp.example) and "timeout" not in tp.example.lower():
                continue
            if tp.base and tp.post / ctx.logs.post_span < 4 * tp.base / ctx.logs.base_span:
                continue
            for p in tp.named:
                if p not in internal and p not in ctx.stack.services and p not in NOT_A_PEER and len(p) > 2:
                    per_peer.setdefault(p, [])
    out = []
    for peer, items in per_peer.items():
        if not peer or peer in internal or DB_NAME.search(peer) or re.search(r"redis|cache|memcache|kafka|rabbit", peer, re.I):
            continue  # an uninstrumented database or cache is ours, not a third party
        best = None
        callers = set()
        for kind, s in items:
            ch = ctx.chg("client_error_ratio" if kind == "err" else "client_latency", f"{s.service}|{peer}", 1,
                         abs_floor=0.01 if kind == "err" else 0.005, rel_floor=0.3)
            if ch is not None and ch.rose and (ch.ratio >= 2.0 or kind == "err" and ch.after - ch.baseline > 0.05):
                callers.add(s.service)
                if best is None or ch.z > best[2].z:
                    best = (kind, s, ch)
        tr = _trace_peer(ctx, peer)
        peer_lines = _log_peer_errors(ctx, peer)
        if best is None and not tr and not (peer_lines and peer_lines[0] >= 5):
            continue
        score = 0.0
        c = Candidate("external_dependency_failure", peer, "dependencies", 0.0, f"the external dependency {peer} is failing", None)
        c.facts = ExternalFacts(callers=callers, kind=best[0] if best else None)
        if best is not None:
            kind, s, ch = best
            score += 0.6 + min(0.15, 0.02 * ch.z) + (0.1 if len(callers) > 1 else 0.0)
            c.cause_onset = ch.onset
            what = "error ratio" if kind == "err" else "latency"
            c.evidence.append(ctx.metric_evidence(s, f"{what} of calls from {s.service} to {peer} rose {'from %.1f%% to %.1f%%' % (ch.baseline * 100, ch.after * 100) if kind == 'err' else '%.1fx' % ch.ratio} at {fmt_time(ch.onset)}, {rel(ctx, ch.onset)}", onset=ch.onset))
            c.title = f"the external dependency {peer} is {'failing' if kind == 'err' else 'slow'} (called by {', '.join(sorted(callers))})"
        if tr:
            score += 0.2 if best is not None else 0.6
            c.evidence.append(trace_evidence(ctx, peer, tr))
            if best is None:
                c.cause_onset = ctx.onset  # traces are binned at the onset: no finer start
        if peer_lines:
            n, who = peer_lines
            if score == 0:
                score = 0.5 + min(0.2, n / 500) + (0.1 if len(who) > 1 else 0.0)
                c.cause_onset = min((tp.first_post for tp in ctx.logs.templates.values()
                                     if peer in tp.named and tp.first_post), default=None)
                c.from_lines = True
            else:
                score += 0.1
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |= "{peer}"',
                                               f"{n} new error lines naming {peer} from {', '.join(sorted(who))}"))
        c.strength = min(score, 1.0)
        out.append(c)
    return out


def _log_peer_errors(ctx: Ctx, peer: str):
    """New error lines (any class) that name ``peer``, and who wrote them."""
    if not ctx.logs:
        return None
    n, who = 0, set()
    for tp in ctx.logs.templates.values():
        if peer in tp.peers or peer in tp.named:
            if tp.post >= 2 and (tp.base == 0 or tp.post / ctx.logs.post_span > 4 * tp.base / ctx.logs.base_span):
                n += tp.post
                who.add(tp.service)
    return (n, who) if n else None


def _trace_peer(ctx: Ctx, peer: str) -> str | None:
    for (a, b), st in ctx.graph.edge_stats.items():
        # traces are sampled: a handful of spans on each side is enough for a large change
        if b != peer or st.post_n < 3 or st.base_n < 3:
            continue
        er_b, er_p = st.base_err / st.base_n, st.post_err / st.post_n
        if er_p > max(0.2 if st.post_n < 10 else 0.05, 3 * er_b):
            return f"{er_p * 100:.0f}% of client spans from {a} to {peer} failed after the onset (before: {er_b * 100:.0f}%, {st.post_n} spans)"
        mb, mp = median(st.base_client), median(st.post_client)
        if mb > 0 and mp > (4.0 if st.post_n < 10 else 2.5) * mb:
            return f"client spans from {a} to {peer} took {mp / mb:.1f}x longer after the onset ({st.post_n} spans)"
    return None


def scope(ctx: Ctx, c: Candidate) -> bool:
    """A third party hurts the alert only through a caller on the alerting path."""
    s = ctx.symptom_service
    callers = ctx.graph.callers(c.service) or {x.split("|")[0] for x in ctx.stack.signals.get("client_rate", {}) if x.endswith("|" + c.service)}
    reach = ({s} | ctx.graph.downstream(s)) if s else set()
    if not s or not ctx.graph_complete:
        c.check("scope", None, "the service graph is unknown or partial")
    elif callers & reach:
        c.check("scope", True, f"{c.service} is called by {', '.join(sorted(callers & reach))}, on the alerting path")
    else:
        c.check("scope", False, f"no service on the path from {s} calls {c.service}", 0.5)
    return True


def must_be_external(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """Externals must be external: a service with its own telemetry is not a third party."""
    internal = internal_services(ctx)
    for c in by_fault.get("external_dependency_failure", []):
        if c.service in internal:
            c.check("competing_explanation", False, f"{c.service} reports its own telemetry: not an external dependency", 0.5)


FAULT = Fault(
    id="external_dependency_failure", title="a third-party or external dependency is slow or failing", order=7,
    detectors={"dependencies": detect}, facts=ExternalFacts, scope=scope, rules=(Rule(130, must_be_external),),
    acute=True, seen_by_others=True,
)

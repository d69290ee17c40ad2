"""code_defect: the culprit's own code fails or slows on some requests, with no deploy or
config change behind it (origin agent).

Supports: errors, exceptions or latency begin in a leading suspect whose trouble is not
inherited: new error templates of its own, or dependencies that stayed healthy. Disproves:
no change in its own errors or latency; its trouble mostly echoes a dependency's (and no new
exceptions of its own); it is a database or cache (their own faults), or short of a resource
with only latency, where that resource's own fault reads it so (a CPU that rose with the
latency but nowhere near a ceiling is the code burning it); it received more requests as the
trouble began (load, not its code); a deploy or config change of it shortly before explains
it (then it is that fault). A specific cause that survived on the same service ranks above
it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from compass_tui.engine.context import Candidate, Ctx, confidence
from compass_tui.engine.faults import get
from compass_tui.engine.faults._common import OWN_ERROR, change_events, frag, trace_evidence
from compass_tui.engine.faults._origin import is_datastore, moved_evidence, origin_suspects, own_errors_query, reports_own
from compass_tui.engine.faults.base import Facts, Fault
from compass_tui.engine.faults.cpu_saturation import saturated
from compass_tui.engine.faults.disk_full import disk
from compass_tui.engine.faults.memory_leak import memory
from compass_tui.engine.faults.network_degradation import spent_inside, traced_own, traced_spans_took
from compass_tui.engine.faults.traffic_surge import load_rose
from compass_tui.engine.graph import median
from compass_tui.engine.logfacts import INHERITED
from compass_tui.engine.localise import FELT, explainable, lasted
from compass_tui.engine.timeseries import fmt_time


SHORT_OF = {"cpu": saturated, "memory": lambda ctx, svc: memory(ctx, svc) is not None,
            "disk": lambda ctx, svc: disk(ctx, svc) is not None}
"""A resource kind -> whether its catalog fault reads the service as short of it."""


@dataclass
class CodeDefectFacts(Facts):
    own: float = 1.0
    """Its trouble is its own (not inherited from a dependency)."""
    own_templates: int = 0
    """New error templates of its own."""
    deps_healthy: bool = False
    """What it calls stayed healthy (the graph knows its callees)."""


MINOR_SHARE = 0.35
"""Below this share of a service's own trouble, what its dependencies felt does not explain it."""


def detect(ctx: Ctx) -> list[Candidate]:
    """Leading suspects whose own code began to fail or slow, with no change behind it."""
    changes = change_events(ctx)
    return [c for c in (code_defect(ctx, s, strength, changes) for s, strength in origin_suspects(ctx)) if c]


def code_defect(ctx: Ctx, s, strength: float, changes) -> Candidate | None:
    """A code defect of one suspect, or None."""
    own = s.kinds("own")
    trouble = [own[k] for k in ("errors", "success") if k in own]
    lat = own.get("latency")
    traced = None
    seen_failing = None
    if not trouble and lat is None:
        # no server-side metric of its own: its callers' wait counts as its own latency when its
        # traced server spans show the time was spent inside it
        callers = s.kinds("callers")
        seen = callers.get("latency")
        traced = traced_own(ctx, s.service) if seen is not None else None
        if spent_inside(traced, seen):
            lat = seen
        elif "errors" in callers and own_errors_query(ctx, s.service) == "(none)" and reports_own(ctx, s.service):
            # ... and the calls its callers saw fail are its failures, as far as anything can
            # tell without its own count of them (a third party's are its own fault)
            seen_failing = callers["errors"]
            trouble = [seen_failing]
        else:
            return None
    if is_datastore(ctx, s.service):
        return None  # a slow or failing database or cache is its own catalog fault
    moved = [k for k in SHORT_OF if k in own and own[k].sev >= 1.0 and _in_step(ctx, own[k], lat)]
    if not trouble and moved and any(short(ctx, s.service) for short in SHORT_OF.values()):
        # slow and short of a resource: that resource's fault, not its code (a CPU that rose
        # with the latency but that no CPU reading calls saturated is the code burning it)
        return None
    own_lines = own_new_templates(ctx, s.service)
    graph = ctx.graph
    deps_known = graph.known and s.service in graph.nodes()
    began = (trouble or [lat])[0].onset
    # a dependency in trouble explains it only if its trouble began (held) no later than this one's
    sick = {x.service for x in ctx.suspects if x.norm >= 0.3 * s.norm and x.service != s.service
            and x.onset is not None and (began is None or x.onset <= began + ctx.tol)}
    # a dependency whose worst trouble its callers could feel (its latency, errors, a saturated
    # pool) is a small part of this one's worst latency or errors does not explain it
    worst = max((m.sev for k, m in s.kinds().items() if k in FELT), default=0.0)
    by_name = {x.service: x for x in ctx.suspects}
    # a service that only slowed is explained by a dependency that slowed, saturated or went
    # away, not by a few more failed calls to it (a failed call returns, it does not wait)
    explains = (FELT | {"saturation"}) if trouble else {"latency", "saturation", "availability"}
    # ... nor one whose latency and errors are too small to have been passed up as this one's,
    # nor one whose latency and errors were over at once while this one's lasted
    minor = sorted(d for d in graph.callees(s.service) & sick if max(
        (m.sev for k, m in by_name[d].kinds().items() if k in explains), default=0.0) < MINOR_SHARE * worst
        or explainable(s, by_name[d].kinds()) < MINOR_SHARE or (lasted(s) and not lasted(by_name[d])))
    # its own calls to a dependency that failed or slowed as early are the plainest sign of a
    # sick dependency, however little else of that dependency is seen
    sick |= {d for d in graph.callees(s.service) if d in by_name and any(
        m.view == "callers" and m.kind in FELT & explains and m.series.service == s.service and m.onset is not None
        and (began is None or m.onset <= began + ctx.tol) and m.sev >= MINOR_SHARE * worst for m in by_name[d].moved)}
    deps_healthy = deps_known and not (graph.callees(s.service) & sick - set(minor)) and \
        not any(_calls_failing(ctx, s.service, d) for d in graph.callees(s.service))
    if s.inherited_share >= 0.5 and not own_lines:
        return None  # its trouble echoes a dependency's
    unknown_graph = not deps_known
    unplaced = []
    if deps_healthy and not ctx.graph_complete:
        # client metrics see some calls, not all: trouble as early that no edge places above or
        # below this service may sit behind a call they missed
        placed = graph.upstream(s.service) | graph.downstream(s.service)
        unplaced = sorted(x.service for x in ctx.suspects if x.service in sick and x.service not in placed
                          and x.norm >= 0.5 * s.norm)
        deps_healthy = not unplaced
    # a callee nothing measures (no telemetry of its own, no measured calls to it: an external
    # API seen in one span) was not seen healthy: it was not seen at all
    blind = sorted(d for d in graph.callees(s.service) if _unseen(ctx, s.service, d)) if deps_healthy else []
    deps_healthy = deps_healthy and not blind
    calm = not any(k in own and own[k].sev >= 1.0 and _in_step(ctx, own[k], lat) for k in ("cpu", "memory", "disk", "saturation"))
    if not own_lines and not deps_healthy and not ((unknown_graph or unplaced or blind) and (calm or trouble)):
        # nothing says the trouble is its own rather than passed on: where, not what (without
        # a graph, errors of its own, or latency with calm resources, and no change are the
        # best reading; a specific cause that survives on it still ranks above)
        return None
    lead = (trouble or [lat])[0]
    t0 = lead.onset
    near = [e for e in changes.get(s.service, []) if t0 is not None and t0 - 3600 <= e[0] <= t0 + ctx.tol]
    c = Candidate("code_defect", s.service, "origin", strength + (0.05 if trouble else 0.02),
                  f"{s.service}'s own code fails or slows ({'errors' if trouble else 'latency'} begin there, no change behind them)", t0)
    for m in (trouble + ([lat] if lat else []))[:3]:
        c.evidence.append(moved_evidence(ctx, m))
    if traced is not None:
        c.evidence.append(trace_evidence(ctx, s.service, f"{traced_spans_took(s.service, traced)} ({traced[1] * 1000:.0f} ms more): "
                                                         "the wait is spent inside it"))
    if own_lines:
        new = own_lines
        c.strength = min(0.95, c.strength + 0.15)
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{s.service}"}} |= "{frag(new[0].example)}"',
                                           f'new error template of its own in {s.service}: "{new[0].example[:120]}" ({new[0].post} lines)'))
    # where the dependencies could not be judged, and no lines of its own say so, it is less sure
    unchecked = (f"no service graph places {s.service}: whether a dependency explains it could not be checked" if unknown_graph
                 else f"what {s.service} is seen to call stayed healthy, but the client metrics see only some calls and "
                      f"{', '.join(unplaced[:3])} degraded as early, unplaced relative to it" if unplaced
                 else f"{s.service} calls {', '.join(blind[:3])}, which nothing measures (no telemetry of its own, no measured "
                      "calls): whether it explains the trouble could not be checked" if blind else None)
    if unchecked and not own_lines:
        c.strength -= 0.03 if trouble else 0.06
        c.check("competing_explanation", None, unchecked)
    if seen_failing is not None:
        # its own code failing or the calls failing on the way: the data cannot tell, so it is
        # never shown as supported
        c.strength = min(c.strength - 0.03, 0.48)
        c.check("competing_explanation", None, f"{s.service} counts no failures of its own: calls failing on the way "
                f"({seen_failing.label}) cannot be told from its own code failing")
    if deps_healthy and minor:
        c.check("competing_explanation", True, f"what {s.service} calls moved far less than it did ({', '.join(minor[:3])})")
    elif deps_healthy:
        callees = sorted(graph.callees(s.service))
        c.check("competing_explanation", True, f"what {s.service} calls stayed healthy ({', '.join(callees[:5]) or 'it calls nothing seen'})")
    # load explains it when much more arrived no later than the trouble began; the retries a
    # failing service draws fail too, so where successes are counted, more successes is load
    load = own.get("traffic")
    ok = ctx.series("ok_rate", s.service) is not None
    rr = ctx.chg("ok_rate" if ok else "request_rate", s.service, 1, rel_floor=0.15, k=3.0, must_hold=False)
    if ok:
        load = None  # the total (retries included) says nothing the successes do not

    def in_time(onset: float | None) -> bool:
        return onset is not None and (t0 is None or onset <= t0)

    if ok and not (rr is not None and rr.rose and rr.ratio >= 1.5 and in_time(rr.onset)):
        # ... unless more arrived from above: a caller that itself received more sent it
        total = ctx.chg("request_rate", s.service, 1, rel_floor=0.15, k=3.0, must_hold=False)
        if total is not None and total.rose and total.ratio >= 1.5 and in_time(total.onset) and \
                any(ctx.series("request_rate", u) is not None and load_rose(ctx, u) for u in ctx.graph.callers(s.service)):
            rr = total
    if rr is None and load is None and not ok:
        # no request count of its own: its callers count the calls they sent it
        for key in ctx.stack.signals.get("client_rate", {}):
            if key.endswith("|" + s.service):
                ch = ctx.chg("client_rate", key, 1, rel_floor=0.15, k=3.0, must_hold=False)
                if ch is not None and ch.rose and (rr is None or ch.ratio > rr.ratio):
                    rr = ch
    if (rr is not None and rr.rose and rr.ratio >= 1.5 and in_time(rr.onset)) or \
            (load is not None and load.baseline > 0 and load.peak >= 1.5 * load.baseline and load.sev >= 1.0 and in_time(load.onset)):
        c.check("competing_explanation", False, f"{s.service} received more requests as its trouble began: load, not its code", 0.5)
    if near:
        t, kind, how, _ = near[-1]
        c.check("competing_explanation", False, f"a {kind} of {s.service} ({how}) at {fmt_time(t)} explains it better", 0.5)
    c.facts = CodeDefectFacts(own=1.0, own_templates=len(own_lines), deps_healthy=bool(deps_healthy))
    return c


def below_specific(ctx: Ctx, cands: list[Candidate]) -> None:
    """"No deploy, config change or other cause behind it": a specific cause of the same
    service that survived explains it better, so a code defect ranks below it."""
    for c in cands:
        if c.fault != "code_defect":
            continue
        others = [x for x in cands if x.service == c.service and not _where_reading(x)
                  and not any(d.result == "failed" for d in x.checks)]
        if others:
            cap = 0.95 * max(confidence(x) for x in others)
            if c.strength * c.factor > cap:
                c.factor = cap / max(c.strength, 1e-9)


def _in_step(ctx: Ctx, res, lat) -> bool:
    """Could this resource have slowed it? Not if it moved only after the latency began. A CPU
    short enough to slow a service does so within minutes: one that rose long before a latency
    that stayed flat meanwhile did not. Memory and disk fill slowly, so earlier is fine."""
    if lat is None or lat.onset is None or res.onset is None:
        return True
    if res.onset > lat.onset + ctx.tol:
        return False
    return res.kind != "cpu" or res.onset >= lat.onset - max(4 * ctx.tol, 600.0)


def _where_reading(c: Candidate) -> bool:
    f = get(c.fault)
    return f is not None and f.where_reading


def own_new_templates(ctx: Ctx, svc: str):
    """New error templates that are the service's own: not inherited, naming no peer, no timeout
    or refusal (those are a dependency's trouble seen from here)."""
    if not ctx.logs:
        return []
    callees = ctx.graph.callees(svc)
    return [tp for tp in ctx.logs.new_templates(svc) if not tp.inherited and OWN_ERROR.search(tp.example)
            and not INHERITED.search(tp.example) and not (tp.named & callees)
            and not any(re.search(rf"\b(to|from|calling|call|upstream|service|host|at)\s+\W?{re.escape(c)}\b", tp.example, re.I)
                        for c in callees)]


def _unseen(ctx: Ctx, svc: str, callee: str) -> bool:
    """Nothing measures the callee: no series of its own, no client or service-graph series
    of calls to it, and too few traced calls from svc before and after the onset to judge."""
    if callee in ctx.stack.services:
        return False
    for sig, series in ctx.stack.signals.items():
        if sig.startswith(("client_", "sg_")) and any(k.partition("|")[2] == callee for k in series):
            return False
    st = ctx.graph.edge_stats.get((svc, callee))
    return st is None or st.post_n < 5 or st.base_n < 5


def _calls_failing(ctx: Ctx, svc: str, callee: str) -> bool:
    """Do the traced calls from svc to callee fail or slow down after the onset?"""
    st = ctx.graph.edge_stats.get((svc, callee))
    if st is None or st.post_n < 5:
        return False
    err_b = st.base_err / st.base_n if st.base_n else 0.0
    err_p = st.post_err / st.post_n
    if err_p >= 0.05 and err_p > 3 * err_b and st.post_err >= 3:  # one failed call in fourteen is not a failing callee
        return True
    if st.base_client and st.post_client:
        return median(st.post_client) > 2 * median(st.base_client)
    return False


FAULT = Fault(
    id="code_defect", title="the culprit's own code fails or slows on some requests, with no deploy or config change behind it",
    order=14, detectors={"origin": detect}, facts=CodeDefectFacts, final=below_specific,
    where_reading=True, since=2,
)

"""The origin agent: explains the localisation's leading suspects with the faults that need no
catalog signature of their own: ``network_degradation`` read from the callers' view,
``code_defect`` (trouble that begins in the service's own code, with no change behind it),
and ``unexplained`` (where, not what) so the likely origin always has a hypothesis."""

from __future__ import annotations

from compass_tui.engine.agents import DB_NAME, _frag, _rel, change_events
from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.logfacts import INHERITED
from compass_tui.engine.localise import Moved, Suspect
from compass_tui.engine.timeseries import fmt_time
from compass_tui.models import Evidence

MAX_SUSPECTS = 5
OWN_TROUBLE = ("errors", "success", "latency", "availability")


def _moved_evidence(ctx: Ctx, m: Moved, supports: bool = True) -> Evidence:
    if m.signal == "log_errors":
        return ctx.log_evidence(m.series.query, f"new error templates of {m.series.service}'s own after the onset", supports)
    direction = "fell" if m.peak < m.baseline else "rose"
    what = m.label
    summary = (f"{what} {direction} from {m.baseline:.3g} to {m.peak:.3g} ({m.z:.0f} robust sd) at "
               f"{fmt_time(m.onset)}, {_rel(ctx, m.onset)}")
    return ctx.metric_evidence(m.series, summary, supports=supports, onset=m.onset)


def origin(ctx: Ctx) -> list[Candidate]:
    out: list[Candidate] = []
    suspects = [s for s in ctx.suspects[:MAX_SUSPECTS] if s.norm >= 0.25]
    changes = change_events(ctx)
    for s in suspects:
        strength = 0.25 + 0.3 * s.norm
        net = _network(ctx, s, strength)
        if net:
            out.append(net)
        cd = _code_defect(ctx, s, strength, changes)
        if cd:
            out.append(cd)
        out.append(_unexplained(ctx, s, strength))
    return out


def _network(ctx: Ctx, s: Suspect, strength: float) -> Candidate | None:
    callers = s.kinds("callers")
    own = s.kinds("own")
    seen = callers.get("latency")
    if seen is None:
        return None
    if not (seen.baseline > 0 and seen.peak >= 2.0 * seen.baseline and seen.peak - seen.baseline >= 0.005):
        return None  # far slower, not a few percent: delay on the path is large or nothing
    own_lat = own.get("latency")
    measured_own = _own_latency_query(ctx, s.service) != "(none)"
    if own_lat is not None and own_lat.z >= 0.5 * seen.z:
        return None  # the service's own view moved as much: it is slow itself
    c = Candidate("network_degradation", s.service, "origin", 0.0, f"calls to {s.service} are slow on the way (callers' view)",
                  seen.onset)
    c.evidence.append(_moved_evidence(ctx, seen))
    if measured_own:
        c.strength = min(0.9, strength + 0.15)
        c.evidence.append(Evidence(kind="metric", summary=f"{s.service}'s own server-side latency stayed "
                                   f"{'flat' if own_lat is None else f'within {own_lat.z:.0f} sd'} while its callers waited",
                                   supports=True, source=ctx.source, query=_own_latency_query(ctx, s.service)))
    else:
        c.strength = strength + 0.02
        c.evidence.append(Evidence(kind="metric", summary=f"{s.service} has no server-side latency of its own to compare with",
                                   supports=False, source=ctx.source, query="(none)"))
    c.facts["callers_z"] = seen.z
    return c


def _own_latency_query(ctx: Ctx, svc: str) -> str:
    for sig in ("latency_p99", "latency_mean"):
        ss = ctx.series(sig, svc)
        if ss is not None:
            return ss.query
    for sig, meta in ctx.stack.generic.items():
        if meta.kind == "latency" and meta.view == "own":
            for ss in ctx.stack.signals.get(sig, {}).values():
                if ss.service == svc:
                    return ss.query
    return "(none)"


def _code_defect(ctx: Ctx, s: Suspect, strength: float, changes) -> Candidate | None:
    own = s.kinds("own")
    trouble = [own[k] for k in ("errors", "success") if k in own]
    lat = own.get("latency")
    if not trouble and lat is None:
        return None
    if _is_datastore(ctx, s.service):
        return None  # a slow or failing database or cache is its own catalog fault
    resources = [own[k] for k in ("cpu", "memory", "disk") if k in own and own[k].sev >= 1.0]
    if not trouble and resources:
        return None  # slow and short of a resource: that resource's fault, not its code
    own_lines = own_new_templates(ctx, s.service)
    graph = ctx.graph
    deps_known = graph.known and s.service in graph.nodes()
    sick = {x.service for x in ctx.suspects if x.norm >= 0.3 * s.norm and x.service != s.service}
    deps_healthy = deps_known and not (graph.callees(s.service) & sick)
    if s.inherited_share >= 0.5 and not own_lines:
        return None  # its trouble echoes a dependency's
    unknown_graph = not deps_known
    calm = not any(k in own and own[k].sev >= 1.0 for k in ("cpu", "memory", "disk", "saturation"))
    if not own_lines and not deps_healthy and not (unknown_graph and trouble and calm):
        # nothing says the trouble is its own rather than passed on: where, not what (without
        # a graph, errors of its own with calm resources and no change are the best reading)
        return None
    lead = (trouble or [lat])[0]
    t0 = lead.onset
    near = [e for e in changes.get(s.service, []) if t0 is not None and t0 - 3600 <= e[0] <= t0 + ctx.tol]
    c = Candidate("code_defect", s.service, "origin", strength + (0.05 if trouble else 0.02),
                  f"{s.service}'s own code fails or slows ({'errors' if trouble else 'latency'} begin there, no change behind them)", t0)
    for m in (trouble + ([lat] if lat else []))[:3]:
        c.evidence.append(_moved_evidence(ctx, m))
    if own_lines:
        new = own_lines
        c.strength = min(0.95, c.strength + 0.15)
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{s.service}"}} |= "{_frag(new[0].example)}"',
                                           f'new error template of its own in {s.service}: "{new[0].example[:120]}" ({new[0].post} lines)'))
    if unknown_graph and not own_lines:
        c.strength -= 0.03
        c.check("scope", None, f"no service graph places {s.service}: its dependencies could not be checked")
    if deps_healthy:
        callees = sorted(graph.callees(s.service))
        c.check("scope", True, f"what {s.service} calls stayed healthy ({', '.join(callees[:5]) or 'it calls nothing seen'})")
    load = own.get("traffic")
    rr = ctx.chg("request_rate", s.service, 1, rel_floor=0.15, k=3.0, must_hold=False)
    if (rr is not None and rr.rose and rr.ratio >= 1.5) or (load is not None and load.peak > load.baseline and load.sev >= 1.0):
        c.check("competing_explanation", False, f"{s.service} received more requests as its trouble began: load, not its code", 0.5)
    if near:
        t, kind, how, _ = near[-1]
        c.check("competing_explanation", False, f"a {kind} of {s.service} ({how}) at {fmt_time(t)} explains it better", 0.5)
    c.facts["own"] = 1.0
    return c


def own_new_templates(ctx: Ctx, svc: str):
    """New error templates that are the service's own: not inherited, naming no peer, no timeout
    or refusal (those are a dependency's trouble seen from here)."""
    if not ctx.logs:
        return []
    return [tp for tp in ctx.logs.new_templates(svc) if not tp.inherited and not tp.named and not tp.peers
            and not INHERITED.search(tp.example)]


def _is_datastore(ctx: Ctx, svc: str) -> bool:
    db_signals = ("db_tx_duration", "db_locks", "db_active", "db_slow_rate", "db_up", "cache_up", "cache_miss_ratio")
    return any(ctx.series(sig, svc) is not None for sig in db_signals) or bool(DB_NAME.search(svc))


def _unexplained(ctx: Ctx, s: Suspect, strength: float) -> Candidate:
    kinds = ", ".join(sorted({m.label for m in s.moved[:4]}))
    c = Candidate("unexplained", s.service, "origin", strength,
                  f"trouble started at {s.service} ({kinds}); no catalog fault fits its signals", s.onset)
    for m in s.moved[:3]:
        if m.signal != "log_errors":
            c.evidence.append(_moved_evidence(ctx, m))
    c.facts["where_only"] = True
    return c

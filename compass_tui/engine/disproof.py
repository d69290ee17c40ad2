"""Act: try to kill every hypothesis with the generic checks (temporal precedence, scope,
magnitude, the share of what moved that it explains, where the localisation puts it) and the
competing explanations each fault brings (``engine/faults``); confidence comes from what
survived; then rank."""

from __future__ import annotations

from compass_tui.engine.context import Candidate, Ctx, confidence
from compass_tui.engine.faults import Fault, Rule, get, registry
from compass_tui.engine.timeseries import fmt_delta
from compass_tui.models import Disproof, Hypothesis

__all__ = ["confidence", "explained_share", "rank", "run_checks", "status_of", "to_hypothesis"]


def run_checks(ctx: Ctx, cands: list[Candidate]) -> None:
    """Every check on every candidate, in a fixed order (later rules read earlier verdicts)."""
    for c in cands:
        _temporal(ctx, c)
        _scope(ctx, c)
        _magnitude(ctx, c)
    _competing(ctx, cands)
    for c in cands:
        c.factor *= 0.85 + 0.15 * explained_share(ctx, c)
    _where(ctx, cands)
    _below_fired_runbooks(cands)
    for f in registry().values():
        if f.final is not None:
            f.final(ctx, cands)


def _fault(c: Candidate) -> Fault | None:
    return get(c.fault)


def _where(ctx: Ctx, cands: list[Candidate]) -> None:
    """A cause on a service the localisation does not place at the origin explains less."""
    norm = {s.service: s.norm for s in ctx.suspects}
    if not norm:
        return
    for c in cands:
        if c.agent in ("memory", "origin", "runbook"):
            continue  # the engineer's own checks point where they point; origin is the ranking itself
        n = norm.get(c.service, 0.0)
        f = _fault(c)
        if f is not None and f.seen_by_others:
            # culprits that often report no telemetry of their own (and load, which enters at
            # the top where the downstream services suffer) are judged by others' view of them
            n = max(n, 0.6)
        c.factor *= 0.75 + 0.25 * n


def _below_fired_runbooks(cands: list[Candidate]) -> None:
    """A runbook that fired and survived is the engineer's own knowledge of this failure: the
    engine's "where, not what" readings (faults with ``where_reading``) rank below it."""
    fired = [confidence(x) for x in cands if x.agent == "runbook" and not any(d.result == "failed" for d in x.checks)]
    if not fired:
        return
    cap = 0.95 * max(fired)
    for c in cands:
        f = _fault(c)
        if f is not None and f.where_reading and c.strength * c.factor > cap:
            c.factor = cap / max(c.strength, 1e-9)


def explained_share(ctx: Ctx, c: Candidate) -> float:
    """Share of the services whose errors or latency moved that sit at or above the culprit
    (a cause explains what calls it). DNS sits under everything."""
    if not ctx.affected or not ctx.graph.known:
        return 0.5
    f = _fault(c)
    if f is not None and f.under_everything:
        return 1.0
    above = ctx.graph.upstream(c.service) | {c.service}
    return sum(1 for s in ctx.affected if s in above) / len(ctx.affected)


def _temporal(ctx: Ctx, c: Candidate) -> None:
    if c.cause_onset is None:
        c.check("temporal_precedence", None, "no start time for the cause could be measured")
        return
    lead = ctx.onset - c.cause_onset
    # logs and traces are samples: their first line can come a few minutes after the start
    tol = max(ctx.tol, 240.0) if c.from_lines else ctx.tol
    if lead >= -tol:
        if lead >= 0:
            c.check("temporal_precedence", True, f"cause began {fmt_delta(lead)} the symptom")
        else:
            # measured a little after, but closer than two onsets can be told apart: together
            c.check("temporal_precedence", True, f"cause and symptom began together (within {_span(-lead)}; "
                                                 f"onsets are read to {_span(tol)})")
        if lead < -ctx.grid.step * 0.5 and not c.from_lines and c.agent != "origin":  # origin: timing is in its ranking
            c.factor *= 0.85  # within tolerance, but after: a cause that precedes explains more
        f = _fault(c)
        if f is not None and f.acute and lead > 900:
            # an acute cause shows within minutes; one that sat there for long explains less
            c.factor *= max(0.4, 1.0 - (lead - 900) / 2700)
    else:
        c.check("temporal_precedence", False, f"cause began {fmt_delta(lead)} the symptom, so it cannot have caused it", 0.25)


def _span(seconds: float) -> str:
    """'45 s', '3 min': a duration without a direction."""
    s = abs(seconds)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def _scope(ctx: Ctx, c: Candidate) -> None:
    f = _fault(c)
    if f is not None and f.scope is not None and f.scope(ctx, c):
        return
    s = ctx.symptom_service
    inside = ctx.in_scope(c.service)
    if inside is None:
        c.check("scope", None, "the service graph cannot place this service relative to the alert")
    elif inside:
        c.check("scope", True, f"{c.service} is {'the alerting service' if c.service == s else 'downstream of ' + str(s)}")
    else:
        c.check("scope", False, f"{c.service} is not downstream of the alerting service {s}", 0.45)


MEMORY = "memory"
"""The agent name of a cause proposed by the memory alone (no query measured it)."""


def memory_only(c: Candidate) -> bool:
    """Proposed by the memory and by no agent: nothing in the data measured it."""
    return c.agent == MEMORY


def _magnitude(ctx: Ctx, c: Candidate) -> None:
    if memory_only(c):
        c.check("magnitude", None, "proposed by the memory alone: no query measured this cause's signal")
        return
    if c.agent == "origin":
        # proposed from series that left their baseline: say by how much
        zs = [e.summary for e in c.evidence if e.supports and "robust sd" in e.summary]
        c.check("magnitude", True, f"its signals left their baseline range ({len(zs)} series beyond 3 robust sd)")
        return
    f = _fault(c)
    if f is not None and f.magnitude is not None and f.magnitude(ctx, c):
        return
    if c.strength >= 0.5:
        c.check("magnitude", True, "the cause's signal moved well beyond its baseline range")
    elif c.strength >= 0.35:
        c.check("magnitude", None, "the cause's signal moved, but not decisively")
    else:
        c.check("magnitude", False, "the cause's signal stayed within its baseline range", 0.4)


def _downstream_first(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """A downstream culprit explains an upstream one's symptoms (for the faults that say
    ``explained_by_downstream``), unless the upstream one's trouble is its own."""
    strong = [c for c in cands if c.strength >= 0.6 and c.factor >= 0.9]
    for c in cands:
        f = _fault(c)
        if f is None or not f.explained_by_downstream:
            continue
        own = getattr(c.facts, "own", None)
        own = 1.0 if own is None else own
        for o in strong:
            if o is c or o.service == c.service:
                continue
            if o.service in ctx.graph.downstream(c.service) and o.cause_onset is not None and c.cause_onset is not None \
                    and o.cause_onset < c.cause_onset - ctx.grid.step and own < 0.5:
                c.lose_to(o, f"{o.fault} on {o.service}, downstream, started first", 0.6)
                break


GENERIC_RULES = (Rule(100, _downstream_first),)


def competing_rules() -> list[Rule]:
    """Every competing-explanation rule, the faults' and the generic ones, in running order
    (by stage, then catalog order)."""
    rules = [r for f in registry().values() for r in f.rules] + list(GENERIC_RULES)
    return sorted(rules, key=lambda r: r.stage)


def _competing(ctx: Ctx, cands: list[Candidate]) -> None:
    by_fault: dict[str, list[Candidate]] = {}
    for c in cands:
        by_fault.setdefault(c.fault, []).append(c)
    try:
        for rule in competing_rules():
            rule.run(ctx, cands, by_fault)
    finally:
        break_cycles(cands)


def break_cycles(cands: list[Candidate]) -> None:
    """Competing explanations must not rule each other out in a circle (the pool blames the
    database while the database blames the pool): in each cycle the cause that began first
    (then the stronger) stands, and its failures against the others are withdrawn."""
    while True:
        # nodes numbered in candidate order, so the walk is deterministic
        number = {id(c): k for k, c in enumerate(cands)}
        edges: dict[int, set[int]] = {}
        for c in cands:
            for winner, _, _ in c.beaten:
                if id(winner) in number:
                    edges.setdefault(number[id(c)], set()).add(number[id(winner)])
        cycle = _find_cycle(edges)
        if not cycle:
            return
        members = [cands[k] for k in cycle]
        keep = min(members, key=lambda c: (c.cause_onset is None, c.cause_onset or 0.0, -c.strength, c.id))
        inside = {id(m) for m in members}
        for winner, check, factor in [b for b in keep.beaten if id(b[0]) in inside]:
            keep.beaten.remove((winner, check, factor))
            if check in keep.checks:
                keep.checks.remove(check)
            keep.factor /= factor
            first = winner.cause_onset is None or (keep.cause_onset is not None and keep.cause_onset < winner.cause_onset)
            keep.check("competing_explanation", True,
                       f"{winner.id} and this one each seemed to explain the other; this one "
                       + ("began first" if first else "is the stronger signal"))
        keep.why_not = next((d.detail for d in keep.checks if d.result == "failed"), None)


def _find_cycle(edges: dict[int, set[int]]) -> list[int]:
    """One cycle of the graph ``node -> {nodes}``, as its nodes; [] when there is none."""
    state: dict[int, int] = {}
    stack: list[int] = []

    def visit(n: int) -> list[int]:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return []

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return []


SUPPORTED_FLOOR = 0.3
"""A hypothesis that its checks left below this confidence (a cause that sat there for an
hour, on a service the localisation does not place) is not shown as supported."""


def status_of(c: Candidate) -> str:
    if any(d.result == "failed" for d in c.checks):
        return "disproven"
    f = get(c.fault)
    if f is not None and f.where_only:
        return "inconclusive"  # where, not what: nothing is claimed to be supported
    if memory_only(c):
        return "inconclusive"  # the memory proposes; only data can support
    if c.strength >= 0.5 and confidence(c) >= SUPPORTED_FLOOR:  # no check failed: that returned above
        return "supported"
    return "inconclusive"


def to_hypothesis(c: Candidate, memory_note: str | None = None, adjust: float = 0.0) -> Hypothesis:
    st = status_of(c)
    conf = confidence(c)
    if adjust:
        conf = max(0.01, min(0.99, conf + adjust))
        if adjust >= 0.5 and st == "disproven":
            # the engineer confirmed this cause for this signature before: show it, unproven
            st = "inconclusive"
    return Hypothesis(
        id=c.id, fault=c.fault, service=c.service, title=c.title, confidence=round(conf, 3), status=st,
        evidence=c.evidence, disproof=c.checks, agent=c.agent, memory_note=memory_note,
        why_disproven=c.why_not if st == "disproven" else None, memory_adjust=adjust,
    )


def rank(hyps: list[Hypothesis], where: dict[str, int] | None = None) -> list[Hypothesis]:
    """Supported first, then by confidence; ``where`` (service -> its place among the
    localisation's suspects) breaks a tie before the names do."""
    order = {"supported": 0, "inconclusive": 1, "disproven": 2}
    where = where or {}
    # a memory-backed hypothesis can lift an inconclusive one over weaker supported ones
    def key(h: Hypothesis):
        tier = order[h.status]
        if h.status == "inconclusive" and h.memory_adjust > 0 and h.confidence >= 0.6:
            tier = 0
        return (tier, -h.confidence, where.get(h.service, len(where)), h.fault, h.service)

    out = sorted(hyps, key=key)
    for i, h in enumerate(out, 1):
        h.rank = i
    return out

"""What bad_deploy and config_change share: a change of the culprit before the symptom, how
much of its trouble after the change is its own, and the rules that judge that."""

from __future__ import annotations

from dataclasses import dataclass

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import OWN_ERROR, ROLLOUT, change_events, closeness, frag, rel
from compass_tui.engine.faults._origin import moved_evidence
from compass_tui.engine.faults.base import Facts
from compass_tui.engine.timeseries import fmt_ratio, fmt_time
from compass_tui.models import Evidence

FAULT_OF = {"deploy": "bad_deploy", "config": "config_change"}

LATER_SPECIFIC = ("db_connection_pool_exhaustion", "memory_leak", "cpu_saturation", "disk_full", "certificate_expired")
"""Faults of the culprit itself that, starting well after a change, explain it better."""


@dataclass
class ChangeFacts(Facts):
    own: float | None = None
    """0..1: how much of the culprit's trouble after the change is its own (None: not judged,
    the change came after the symptom)."""
    err_onset: float | None = None
    """When its own errors or latency began."""


def detect_changes(ctx: Ctx, kind: str) -> list[Candidate]:
    """Candidates of one change kind (deploy or config), per changed service, in the order
    the changes were found."""
    out = []
    for svc, events in change_events(ctx).items():
        c = change_candidate(ctx, svc, kind, [e for e in events if e[1] == kind])
        if c:
            out.append(c)
    return out


def change_candidate(ctx: Ctx, svc: str, kind: str, evs) -> Candidate | None:
    """A change of ``kind`` on ``svc`` as a hypothesis, from its change events (or None)."""
    if not evs:
        return None
    # the change closest before the onset (or just after, within tolerance)
    before = [e for e in evs if e[0] <= ctx.onset + ctx.tol]
    if not before:
        t, _, how, q = min(evs, key=lambda e: e[0])
        c = Candidate(FAULT_OF[kind], svc, "application", 0.2, f"{kind} of {svc} at {fmt_time(t)}", t)
        c.facts = ChangeFacts()
        c.evidence.append(_change_ev(ctx, q, f"{how} at {fmt_time(t)}, {rel(ctx, t)}", False))
        return c
    # the latest change before the onset; an annotation, a new version label and a
    # "starting" line minutes apart are one rollout: date it by its first sign
    before.sort(key=lambda e: e[0])
    pick = len(before) - 1
    while pick > 0 and before[pick][0] - before[pick - 1][0] <= 300:
        pick -= 1
    t, _, how, q = before[pick]
    close = closeness(ctx, t, 1800)
    # a rollout read from the pods is dated by the new pods themselves: trouble before them is not theirs
    rollout = how.startswith(ROLLOUT)
    own = own_errors(ctx, svc, t, ctx.grid.step if rollout else ctx.tol)
    if own[3] is not None and own[3] - t > 600:
        # trouble that starts long after a rollout is less likely the rollout's doing
        own = (own[0] * max(0.3, 1.0 - (own[3] - t - 600) / 1800), *own[1:])
    score = min(1.0, 0.25 + 0.3 * close + 0.35 * own[0])
    if rollout:
        # pods replaced say a rollout happened, not what it changed (a restart, a config, a
        # new version): it counts as far as the localisation places the service at the origin
        score *= 0.5 + 0.5 * next((x.norm for x in ctx.suspects if x.service == svc), 0.0)
    c = Candidate(FAULT_OF[kind], svc, "application", score,
                  f"{'a new version' if kind == 'deploy' else 'a configuration change'} of {svc} brought {own[2]}", t)
    c.evidence.append(_change_ev(ctx, q, f"{how} at {fmt_time(t)}, {rel(ctx, t)}", True))
    for ev in own[1]:
        c.evidence.append(ev)
    c.facts = ChangeFacts(own=own[0], err_onset=own[3])
    return c


def _change_ev(ctx: Ctx, q: str, summary: str, supports: bool):
    kind = "annotation" if q == "annotations" else "log" if q == "logs" else "metric"
    query = f"annotations(from={int(ctx.grid.start * 1000)}, to={int(ctx.grid.end * 1000)})" if q == "annotations" else \
        (f'{{{ctx.logs.label}=~".+"}} |~ "(?i)starting|version|config|reload|flag"' if q == "logs" and ctx.logs else q)
    return Evidence(kind=kind, summary=summary, supports=supports, source=ctx.log_source if kind == "log" else ctx.source, query=query)


def own_errors(ctx: Ctx, svc: str, t_change: float, lead: float | None = None):
    """How much of svc's trouble after a change is its own: (0..1, evidence, words, onset).
    ``lead``: how long before the change's time its trouble may begin (the onset tolerance)."""
    lead = ctx.tol if lead is None else lead
    evidence = []
    score = 0.0
    err = ctx.chg("error_ratio", svc, 1, abs_floor=0.002, rel_floor=0.3)
    lat = ctx.chg("latency_p99", svc, 1, rel_floor=0.2, k=3.0) or ctx.chg("latency_mean", svc, 1, rel_floor=0.2, k=3.0)
    onset = None
    soon = t_change + 1800  # a canary or a slow rollout can take a while to bite
    # what rose: under the engine's names, else what the localisation saw of its own errors and
    # latency under whatever names the stack uses; (what, onset, its evidence)
    rose = []
    if err is not None or lat is not None:
        if err is not None and err.rose:
            onset = err.onset
            rose.append(("errors", err.onset, lambda: ctx.metric_evidence(
                ctx.series("error_ratio", svc), f"error ratio of {svc} rose from {err.baseline * 100:.1f}% to {err.after * 100:.1f}% "
                f"at {fmt_time(err.onset)}", onset=err.onset)))
        if lat is not None and lat.rose:
            rose.append(("latency", lat.onset, lambda: ctx.metric_evidence(
                ctx.series("latency_p99", svc) or ctx.series("latency_mean", svc),
                f"latency of {svc} rose {fmt_ratio(lat.ratio)} at {fmt_time(lat.onset)}", onset=lat.onset)))
    else:
        sus = next((x for x in ctx.suspects if x.service == svc), None)
        own = sus.kinds("own") if sus is not None else {}
        for kinds, what in ((("errors", "success"), "errors"), (("latency",), "latency")):
            m = next((own[k] for k in kinds if k in own), None)
            if m is not None:
                rose.append((what, m.onset, lambda m=m: moved_evidence(ctx, m)))
    found = []
    for what, t, ev in rose:
        if t is not None and t_change - lead <= t <= soon:
            score += 0.2 if found else 0.45 if what == "errors" else 0.35
            found.append(what)
            onset = onset or t
            evidence.append(ev())
    words = " and ".join(found) or "errors"
    if ctx.logs:
        new = [tp for tp in ctx.logs.new_templates(svc) if not tp.inherited and OWN_ERROR.search(tp.example)
               and t_change - lead <= (tp.first_post or 0) <= soon + 300]
        inh = [tp for tp in ctx.logs.new_templates(svc) if tp.inherited]
        if new:
            score += 0.35
            evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |= "{frag(new[0].example)}"',
                                             f'{len(new)} new error template(s) of its own in {svc}, e.g. "{new[0].example[:120]}" ({new[0].post} lines, none before)'))
        elif inh:
            evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}}',
                                             f"the new errors of {svc} are inherited from its dependencies (e.g. \"{inh[0].example[:100]}\")", supports=False))
            score *= 0.6
    g = ctx.graph.own_errors.get(svc)
    if g and g[3] >= 10 and g[1] >= 10:
        rate_b, rate_p = g[0] / g[1], g[2] / g[3]
        if rate_p > max(0.02, 3 * rate_b):
            score += 0.15
    return min(score, 1.0), evidence, words, onset


def _own(c: Candidate, default: float) -> float:
    own = getattr(c.facts, "own", None)
    return default if own is None else own


def magnitude(ctx: Ctx, c: Candidate) -> bool:
    """A change matters when the culprit's own errors or latency rose right after it."""
    if _own(c, 0.0) >= 0.3:
        c.check("magnitude", True, f"{c.service}'s errors or latency rose right after the change")
    else:
        c.check("magnitude", False, f"{c.service}'s errors and latency did not move after the change", 0.4)
    return True


def own_not_inherited(fault: str):
    """Rule: are the changed service's errors its own (and not there before the change)?"""
    def run(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
        for c in by_fault.get(fault, []):
            own = _own(c, 0.0)
            err_onset = getattr(c.facts, "err_onset", None)
            if c.cause_onset is not None and err_onset is not None and err_onset < c.cause_onset - 2 * ctx.tol:
                c.check("temporal_precedence", False, "its errors were already there before the change", 0.3)
            if own >= 0.3:
                c.check("competing_explanation", True, f"{c.service}'s new errors are its own, not inherited")
    return run


def later_specific(fault: str):
    """Rule: a specific fault of the same service that starts well after the change explains
    it better."""
    def run(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
        specific = [c for c in cands if c.fault in LATER_SPECIFIC and c.strength >= 0.6 and c.cause_onset is not None]
        for c in by_fault.get(fault, []):
            for o in specific:
                if o.service == c.service and c.cause_onset is not None and o.cause_onset > c.cause_onset + 600:
                    c.lose_to(o, f"{o.fault} of {o.service} began later, closer to the symptom", 0.6)
                    break
    return run

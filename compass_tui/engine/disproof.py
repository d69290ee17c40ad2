"""Act: try to kill every hypothesis with the catalog's checks (temporal precedence, scope,
magnitude, competing explanations); confidence comes from what survived; then rank."""

from __future__ import annotations

from compass_tui.engine.agents import db_change, dns_services, internal_services, pool_target
from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.timeseries import fmt_delta
from compass_tui.models import Disproof, Hypothesis

# faults whose cause must be visible before (or at) the symptom
NEEDS_ONSET = {"cpu_saturation", "db_connection_pool_exhaustion", "db_slow_queries", "network_degradation",
               "traffic_surge", "cache_failure", "dns_failure", "external_dependency_failure", "disk_full",
               "certificate_expired", "bad_deploy", "config_change"}


ACUTE = {"cpu_saturation", "db_connection_pool_exhaustion", "db_slow_queries", "network_degradation",
         "traffic_surge", "cache_failure", "dns_failure", "external_dependency_failure"}


def run_checks(ctx: Ctx, cands: list[Candidate]) -> None:
    for c in cands:
        _temporal(ctx, c)
        _scope(ctx, c)
        _magnitude(ctx, c)
    _competing(ctx, cands)
    for c in cands:
        c.factor *= 0.85 + 0.15 * explained_share(ctx, c)
    _where(ctx, cands)
    _where_only_last(cands)


# culprits that often report no telemetry of their own: judged by others' view of them
SEEN_BY_OTHERS = {"dns_failure", "certificate_expired", "external_dependency_failure", "traffic_surge", "cache_failure"}
"""(and load enters at the top, where it is the downstream services that suffer)"""


def _where(ctx: Ctx, cands: list[Candidate]) -> None:
    """A cause on a service the localisation does not place at the origin explains less."""
    norm = {s.service: s.norm for s in ctx.suspects}
    if not norm:
        return
    for c in cands:
        if c.agent in ("memory", "origin", "runbook"):
            continue  # the engineer's own checks point where they point; origin is the ranking itself
        n = norm.get(c.service, 0.0)
        if c.fault in SEEN_BY_OTHERS:
            n = max(n, 0.6)
        c.factor *= 0.75 + 0.25 * n


WHERE_FAULTS = {"unexplained", "code_defect"}


def _where_only_last(cands: list[Candidate]) -> None:
    """``unexplained`` says where, not what: below any specific fault that survived on the
    same service, and it names the faults ruled out there."""
    # a runbook that fired and survived is the engineer's own knowledge of this failure: the
    # engine's "where, not what" readings rank below it
    fired = [confidence(x) for x in cands if x.agent == "runbook" and not any(d.result == "failed" for d in x.checks)]
    for c in cands:
        if c.fault in WHERE_FAULTS and fired and c.strength * c.factor > 0.95 * max(fired):
            c.factor = 0.95 * max(fired) / max(c.strength, 1e-9)
    for c in cands:
        if c.fault == "code_defect":
            # "no deploy, config change or other cause behind it": a specific cause of the same
            # service that survived explains it better
            others = [x for x in cands if x.service == c.service and x.fault not in WHERE_FAULTS
                      and not any(d.result == "failed" for d in x.checks)]
            if others:
                cap = 0.95 * max(confidence(x) for x in others)
                if c.strength * c.factor > cap:
                    c.factor = cap / max(c.strength, 1e-9)
            continue
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


def explained_share(ctx: Ctx, c: Candidate) -> float:
    """Share of the services whose errors or latency moved that sit at or above the culprit
    (a cause explains what calls it). DNS sits under everything."""
    if not ctx.affected or not ctx.graph.known:
        return 0.5
    if c.fault == "dns_failure":
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
        if lead < -ctx.grid.step * 0.5 and not c.from_lines:
            c.factor *= 0.85  # within tolerance, but after: a cause that precedes explains more
        if c.fault in ACUTE and lead > 900:
            # an acute cause shows within minutes; one that sat there for long explains less
            c.factor *= max(0.4, 1.0 - (lead - 900) / 2700)
    else:
        c.check("temporal_precedence", False, f"cause began {fmt_delta(lead)} the symptom, so it cannot have caused it", 0.25)


def _span(seconds: float) -> str:
    """'45 s', '3 min': a duration without a direction."""
    s = abs(seconds)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def _overrule(c: Candidate, strategy: str, detail: str, factor: float) -> None:
    """Fail ``strategy`` for ``c``, withdrawing an earlier survival of the same check: one
    check cannot both pass and fail for one hypothesis."""
    c.checks = [d for d in c.checks if not (d.strategy == strategy and d.result == "survived")]
    c.check(strategy, False, detail, factor)


def _scope(ctx: Ctx, c: Candidate) -> None:
    s = ctx.symptom_service
    if c.fault == "dns_failure":
        c.check("scope", None, "every service resolves names; scope cannot rule DNS out")
        return
    if c.fault in ("external_dependency_failure",):
        callers = ctx.graph.callers(c.service) or {x.split("|")[0] for x in ctx.stack.signals.get("client_rate", {}) if x.endswith("|" + c.service)}
        reach = ({s} | ctx.graph.downstream(s)) if s else set()
        if not s or not ctx.graph_complete:
            c.check("scope", None, "the service graph is unknown or partial")
        elif callers & reach:
            c.check("scope", True, f"{c.service} is called by {', '.join(sorted(callers & reach))}, on the alerting path")
        else:
            c.check("scope", False, f"no service on the path from {s} calls {c.service}", 0.5)
        return
    if c.fault == "traffic_surge":
        # load enters upstream: the alerting service must be the surging one or below it
        if not s or not ctx.graph.known or s not in ctx.graph.nodes():
            c.check("scope", None, "the service graph cannot place this service relative to the alert")
        elif not ctx.graph_complete and not (s == c.service or s in ctx.graph.downstream(c.service) or c.service in ctx.graph.downstream(s)):
            c.check("scope", None, "the service graph is partial (no traces): scope cannot rule it out")
        elif s == c.service or s in ctx.graph.downstream(c.service):
            c.check("scope", True, f"the alerting service {s} is {'this service' if s == c.service else 'downstream of it'}")
        elif c.service in ctx.graph.downstream(s):
            c.check("scope", True, f"{c.service} is downstream of the alerting service {s}")
        else:
            c.check("scope", False, f"{c.service} and the alerting service {s} are not on one call path", 0.45)
        return
    if c.fault == "cache_failure" and s and ctx.graph_complete and s in ctx.graph.nodes():
        # a cache hurts through the database behind it: its clients' misses load that database,
        # and every client of the database suffers
        reach = {s} | ctx.graph.downstream(s)
        behind = {d for x in ctx.graph.callers(c.service) for d in ctx.graph.callees(x)} - {c.service}
        if c.service in reach or reach & behind:
            via = "" if c.service in reach else f" (through {', '.join(sorted(reach & behind))})"
            c.check("scope", True, f"{c.service} is on the alerting path of {s}{via}")
        else:
            c.check("scope", False, f"neither {c.service} nor what its clients call is downstream of {s}", 0.45)
        return
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
    if c.fault in ("bad_deploy", "config_change"):
        own = c.facts.get("own", 0.0)
        if own >= 0.3:
            c.check("magnitude", True, f"{c.service}'s errors or latency rose right after the change")
        else:
            c.check("magnitude", False, f"{c.service}'s errors and latency did not move after the change", 0.4)
        return
    if c.strength >= 0.5:
        c.check("magnitude", True, "the cause's signal moved well beyond its baseline range")
    elif c.strength >= 0.35:
        c.check("magnitude", None, "the cause's signal moved, but not decisively")
    else:
        c.check("magnitude", False, "the cause's signal stayed within its baseline range", 0.4)


def _competing(ctx: Ctx, cands: list[Candidate]) -> None:
    duels: list[tuple[Candidate, Candidate | None, Disproof, float]] = []

    def beats(loser: Candidate, winner: Candidate | None, detail: str, factor: float) -> None:
        """``winner`` explains ``loser``'s signal better: fail the loser, remember who did it."""
        loser.check("competing_explanation", False, detail, factor)
        duels.append((loser, winner, loser.checks[-1], factor))

    try:
        _competing_checks(ctx, cands, beats)
    finally:
        break_cycles(duels)


def break_cycles(duels: list[tuple[Candidate, Candidate | None, Disproof, float]]) -> None:
    """Competing explanations must not rule each other out in a circle (the pool blames the
    database while the database blames the pool): in each cycle the cause that began first
    (then the stronger) stands, and its failures against the others are withdrawn."""
    while True:
        # nodes numbered in the order the duels happened, so the walk is deterministic
        number: dict[int, int] = {}
        nodes: list[Candidate] = []
        beaten_by: dict[int, set[int]] = {}
        for loser, winner, _, _ in duels:
            if winner is None or winner is loser:
                continue
            for c in (loser, winner):
                if id(c) not in number:
                    number[id(c)] = len(nodes)
                    nodes.append(c)
            beaten_by.setdefault(number[id(loser)], set()).add(number[id(winner)])
        cycle = _find_cycle(beaten_by)
        if not cycle:
            return
        members = [nodes[k] for k in cycle]
        keep = min(members, key=lambda c: (c.cause_onset is None, c.cause_onset or 0.0, -c.strength, c.id))
        inside = {id(m) for m in members}
        kept = []
        for duel in duels:
            loser, winner, check, factor = duel
            if loser is keep and winner is not None and id(winner) in inside:
                if check in loser.checks:
                    loser.checks.remove(check)
                loser.factor /= factor
                loser.check("competing_explanation", True,
                            f"{winner.id} and this one each seemed to explain the other; this one "
                            + ("began first" if winner.cause_onset is None or (keep.cause_onset or 0) < winner.cause_onset
                               else "is the stronger signal"))
                loser.why_not = next((d.detail for d in loser.checks if d.result == "failed"), None)
            else:
                kept.append(duel)
        duels[:] = kept


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


def _competing_checks(ctx: Ctx, cands: list[Candidate], beats) -> None:
    by_fault: dict[str, list[Candidate]] = {}
    for c in cands:
        by_fault.setdefault(c.fault, []).append(c)

    # the pool vs the database behind it
    for c in by_fault.get("db_connection_pool_exhaustion", []):
        db = pool_target(ctx, c.service, c.facts.get("pool", None))
        best = db_change(ctx, db, slowness_only=True) if db else None
        if best is not None and best[1] is not None and (c.cause_onset is None or best[1] <= c.cause_onset + ctx.grid.step):
            beats(c, next((x for x in by_fault.get("db_slow_queries", []) if x.service == db), None), f"the database {db} itself slowed ({fmt_delta((c.cause_onset or ctx.onset) - best[1])} the pool filled): db_slow_queries on {db}", 0.35)
        else:
            c.check("competing_explanation", True, f"the database {db or 'behind the pool'} itself is not slow" if db else "no database-server slowdown explains it")
    for c in by_fault.get("db_slow_queries", []):
        clients = c.facts.get("clients", set())
        slowed = c.facts.get("slowed", [])
        pools = [p for p in by_fault.get("db_connection_pool_exhaustion", []) if p.service in clients]
        if len(clients) >= 2 and len(slowed) <= 1 and pools and pools[0].cause_onset is not None and \
                (c.cause_onset is None or pools[0].cause_onset <= c.cause_onset + ctx.grid.step):
            beats(c, pools[0], f"only {pools[0].service} suffers while other clients are fine: its pool, not the database", 0.4)
        else:
            c.check("competing_explanation", True, f"{len(slowed)} of {len(clients)} clients slowed together" if clients else "no competing cause on the clients")

    # consequences of a surge
    surges = [s for s in by_fault.get("traffic_surge", [])]
    for s in surges:
        ups = s.facts.get("ups", [])
        if ups:
            beats(s, next((x for x in surges if x.service in ups), None), f"{', '.join(sorted(ups))} upstream rose first or together: the surge enters there", 0.4)
        else:
            s.check("competing_explanation", True, "no service upstream of it rose first")
    # a rate rise that follows a failure below it is retries, not load
    for s in surges:
        if s.cause_onset is None:
            continue
        below = ctx.graph.downstream(s.service) | {s.service} if ctx.graph.known else None
        for c in cands:
            if c.fault == "traffic_surge" or c.cause_onset is None or c.strength < 0.6:
                continue
            if any(d.result == "failed" for d in c.checks):
                continue  # already ruled out: it explains nothing
            # load saturates CPUs, pools and databases within a step: only clearly earlier
            # saturation came first
            margin = max(2 * ctx.grid.step, 60.0) if load_driven(c) else ctx.grid.step * 0.5
            began = min(c.cause_onset, c.facts.get("ramp_onset", None) or c.cause_onset)
            if (below is None or c.service in below) and began < s.cause_onset - margin:
                beats(s, c, f"{c.fault} on {c.service} came first: the extra requests are retries", 0.5)
                break

    strong_surges = [s for s in surges if not s.facts.get("ups", []) and s.strength >= 0.55
                     and not any(d.result == "failed" for d in s.checks)]
    for c in cands:
        if c.fault in ("traffic_surge",) or c.cause_onset is None:
            continue
        # only what load can cause: saturation of CPU, pools, databases
        if c.fault not in ("cpu_saturation", "db_connection_pool_exhaustion", "db_slow_queries"):
            continue
        # a database that got slow on its own (long transactions, locks) needs the surge first
        slack = ctx.tol if load_driven(c) else -ctx.grid.step * 0.5
        for s in strong_surges:
            if s.cause_onset is not None and c.cause_onset - 900 <= s.cause_onset <= c.cause_onset + slack and \
                    (c.service == s.service or (c.service in ctx.graph.downstream(s.service) and _load_rose(ctx, c.service))):
                beats(c, s, f"a traffic surge into {s.service} came first; this follows from the load", 0.5)
                break

    # the cache in front of a database
    # (a database does not take a cache down: at the same moment, the cache came first)
    for ca in by_fault.get("cache_failure", []):
        if ca.cause_onset is None or ca.strength < 0.6:
            continue
        cache_clients = ctx.graph.callers(ca.service)
        for c in by_fault.get("db_slow_queries", []) + by_fault.get("cpu_saturation", []) + by_fault.get("db_connection_pool_exhaustion", []):
            if c.cause_onset is None or ca.cause_onset > c.cause_onset + ctx.grid.step * 0.5:
                continue
            behind = not ctx.graph.known or not cache_clients or c.service in cache_clients or \
                any(c.service in ctx.graph.callees(x) for x in cache_clients)
            if behind:
                beats(c, ca, f"the cache {ca.service} failed first; load moved behind it", 0.5)

    # deploy/config: are its errors its own?
    for c in by_fault.get("bad_deploy", []) + by_fault.get("config_change", []):
        own = c.facts.get("own", 0.0)
        err_onset = c.facts.get("err_onset", None)
        if c.cause_onset is not None and err_onset is not None and err_onset < c.cause_onset - 2 * ctx.tol:
            _overrule(c, "temporal_precedence", "its errors were already there before the change", 0.3)
        if own >= 0.3:
            c.check("competing_explanation", True, f"{c.service}'s new errors are its own, not inherited")
    # a specific fault of the same service that starts after the change explains it better
    specific = [c for c in cands if c.fault in ("db_connection_pool_exhaustion", "memory_leak", "cpu_saturation", "disk_full",
                                                "certificate_expired") and c.strength >= 0.6 and c.cause_onset is not None]
    for c in by_fault.get("bad_deploy", []) + by_fault.get("config_change", []):
        for o in specific:
            if o.service == c.service and c.cause_onset is not None and o.cause_onset > c.cause_onset + 600:
                beats(c, o, f"{o.fault} of {o.service} began later, closer to the symptom", 0.6)
                break

    # bad_deploy vs config_change on the same service
    deploys = {c.service: c for c in by_fault.get("bad_deploy", [])}
    for c in by_fault.get("config_change", []):
        d = deploys.get(c.service)
        if d is not None and d.cause_onset is not None and c.cause_onset is not None and abs(d.cause_onset - c.cause_onset) < 300:
            beats(c, d, "a new version shipped at the same time: the deploy, not the config", 0.6)

    # a downstream culprit explains an upstream one's symptoms
    strong = [c for c in cands if c.strength >= 0.6 and c.factor >= 0.9]
    for c in cands:
        if c.fault not in ("cpu_saturation", "bad_deploy", "config_change", "memory_leak"):
            continue
        for o in strong:
            if o is c or o.service == c.service:
                continue
            if o.service in ctx.graph.downstream(c.service) and o.cause_onset is not None and c.cause_onset is not None \
                    and o.cause_onset < c.cause_onset - ctx.grid.step and c.facts.get("own", 1.0) < 0.5:
                beats(c, o, f"{o.fault} on {o.service}, downstream, started first", 0.6)
                break

    # names that do not resolve make every dependency look down
    for d in by_fault.get("dns_failure", []):
        if d.strength < 0.55 or d.cause_onset is None or any(x.result == "failed" for x in d.checks):
            continue
        for c in by_fault.get("external_dependency_failure", []) + by_fault.get("certificate_expired", []):
            if c.cause_onset is None or d.cause_onset <= c.cause_onset + ctx.tol:
                beats(c, d, f"name resolution through {d.service} failed first: calls to {c.service} fail to resolve", 0.5)

    # DNS: only a real DNS service can be the culprit
    dns = dns_services(ctx)
    for c in by_fault.get("dns_failure", []):
        if c.service not in dns:
            c.factor *= 0.8
    # externals must be external
    internal = internal_services(ctx)
    for c in by_fault.get("external_dependency_failure", []):
        if c.service in internal:
            c.check("competing_explanation", False, f"{c.service} reports its own telemetry: not an external dependency", 0.5)


def load_driven(c: Candidate) -> bool:
    """Saturation that extra load alone produces within a step: CPU, a pool, a database whose
    only sign is more active queries."""
    return c.fault in ("cpu_saturation", "db_connection_pool_exhaustion") or \
        (c.fault == "db_slow_queries" and c.facts.get("signal") == "db_active")


def _load_rose(ctx: Ctx, svc: str) -> bool:
    """Did the service itself receive more requests (so extra load can explain it)? A
    database or cache without request metrics is judged by its callers, so: yes."""
    if ctx.series("request_rate", svc) is None:
        return True
    for sig in ("request_rate", "ok_rate"):
        ch = ctx.chg(sig, svc, 1, rel_floor=0.15, k=3.0, must_hold=False)
        if ch is not None and ch.rose and ch.ratio >= 1.3:
            return True
    return False


def confidence(c: Candidate) -> float:
    return max(0.01, min(0.99, c.strength * c.factor))


def status_of(c: Candidate) -> str:
    if any(d.result == "failed" for d in c.checks):
        return "disproven"
    if c.fault == "unexplained":
        return "inconclusive"  # where, not what: nothing is claimed to be supported
    if memory_only(c):
        return "inconclusive"  # the memory proposes; only data can support
    if c.strength >= 0.5 and not any(d.result == "failed" for d in c.checks):
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


def rank(hyps: list[Hypothesis]) -> list[Hypothesis]:
    order = {"supported": 0, "inconclusive": 1, "disproven": 2}
    # a memory-backed hypothesis can lift an inconclusive one over weaker supported ones
    def key(h: Hypothesis):
        tier = order[h.status]
        if h.status == "inconclusive" and h.memory_adjust > 0 and h.confidence >= 0.6:
            tier = 0
        return (tier, -h.confidence, h.fault, h.service)

    out = sorted(hyps, key=key)
    for i, h in enumerate(out, 1):
        h.rank = i
    return out

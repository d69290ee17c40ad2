"""dns_failure: name resolution fails (network agent).

Supports: SERVFAIL/NXDOMAIN shares or lookup times up on a DNS service; new "no such host"
lines in many services at once. Disproves: DNS responses and lookup times normal; a culprit
that is no DNS service explains less. Its rules: names that do not resolve make every
dependency look down, so a DNS failure that came first explains external-dependency and
certificate hypotheses. Scope cannot rule DNS out: every service resolves names."""

from __future__ import annotations

from dataclasses import dataclass

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import rel
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.timeseries import fmt_ratio, fmt_time


@dataclass
class DnsFacts(Facts):
    signal: str | None = None
    """The DNS signal that rose (None when only the logs say so)."""
    nohost_lines: int = 0
    """New "no such host" lines across the services."""


def dns_services(ctx: Ctx) -> set[str]:
    """The services that export DNS server metrics."""
    out = set()
    for sig in ("dns_fail_ratio", "dns_servfail_ratio", "dns_lookup"):
        out |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    return out


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per DNS service whose failures rose, or that new lookup errors point at."""
    out = []
    new_nohost = 0
    callers: set[str] = set()
    if ctx.logs:
        for tp in ctx.logs.templates.values():
            if "dns" in tp.classes and tp.post >= 2 and (tp.base == 0 or tp.post / ctx.logs.post_span > 4 * tp.base / ctx.logs.base_span):
                new_nohost += tp.post
                callers.add(tp.service)
    for svc in sorted(dns_services(ctx)):
        best = None
        for sig in ("dns_servfail_ratio", "dns_fail_ratio", "dns_lookup"):
            ch = ctx.chg(sig, svc, 1, rel_floor=0.3, abs_floor=0.005 if "ratio" in sig else 0.01)
            if ch is not None and ch.rose and ch.ratio >= 2.0:
                if best is None or ch.z > best[1].z:
                    best = (sig, ch)
        if best is None and not new_nohost:
            continue
        score = 0.0
        c = Candidate("dns_failure", svc, "network", 0.0, f"name resolution through {svc} fails", None)
        c.facts = DnsFacts(signal=best[0] if best else None, nohost_lines=new_nohost)
        if best is not None:
            sig, ch = best
            score += 0.6 + min(0.2, 0.03 * ch.z)
            c.cause_onset = ch.onset
            what = {"dns_servfail_ratio": "SERVFAIL share", "dns_fail_ratio": "failed-lookup share", "dns_lookup": "lookup time"}[sig]
            c.evidence.append(ctx.metric_evidence(ctx.series(sig, svc), f"DNS {what} on {svc} rose {fmt_ratio(ch.ratio)} at {fmt_time(ch.onset)}, {rel(ctx, ch.onset)}", onset=ch.onset))
        if new_nohost and ctx.logs:
            # resolution errors appearing in many services at once point at DNS itself
            score += 0.55 if (new_nohost >= 20 and len(callers) >= 2 and best is None) else 0.25
            if c.cause_onset is None:
                c.cause_onset = min((tp.first_post for tp in ctx.logs.templates.values()
                                     if "dns" in tp.classes and tp.first_post), default=None)
                c.from_lines = True
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |~ "(?i)no such host|could not resolve|name resolution"',
                                               f'{new_nohost} new "no such host" lines from {", ".join(sorted(callers))}'))
        c.strength = min(score, 1.0)
        out.append(c)
    return out


def scope(ctx: Ctx, c: Candidate) -> bool:
    """Every service resolves names: scope cannot rule DNS out."""
    c.check("scope", None, "every service resolves names; scope cannot rule DNS out")
    return True


def resolved_first(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """Names that do not resolve make every dependency look down."""
    for d in by_fault.get("dns_failure", []):
        if d.strength < 0.55 or d.cause_onset is None or any(x.result == "failed" for x in d.checks):
            continue
        for c in by_fault.get("external_dependency_failure", []) + by_fault.get("certificate_expired", []):
            if c.cause_onset is None or d.cause_onset <= c.cause_onset + ctx.tol:
                c.lose_to(d, f"name resolution through {d.service} failed first: calls to {c.service} fail to resolve", 0.5)


def real_dns(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """Only a real DNS service can be the culprit."""
    dns = dns_services(ctx)
    for c in by_fault.get("dns_failure", []):
        if c.service not in dns:
            c.factor *= 0.8


FAULT = Fault(
    id="dns_failure", title="name resolution fails", order=11,
    detectors={"network": detect}, facts=DnsFacts, scope=scope,
    rules=(Rule(110, resolved_first), Rule(120, real_dns)),
    acute=True, seen_by_others=True, under_everything=True,
)

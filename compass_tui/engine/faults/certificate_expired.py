"""certificate_expired: a TLS certificate of the culprit expired (network agent).

Supports: the certificate's expiry time at or before the onset; handshake errors naming the
culprit in callers' logs ("certificate has expired"), which alone can propose it. Disproves:
the certificate valid throughout the window; name resolution failing first (dns_failure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import closeness, rel
from compass_tui.engine.faults.base import Facts, Fault
from compass_tui.engine.timeseries import first_crossing, fmt_time


@dataclass
class CertFacts(Facts):
    expired_at: float | None = None
    """When the certificate's time to live reached zero (None when only logs say so)."""
    callers: set[str] | None = None
    """Services whose new TLS errors name the culprit."""


def detect(ctx: Ctx) -> list[Candidate]:
    """Certificates that expired (metrics), then TLS errors naming a service (logs)."""
    out = []
    g = ctx.grid
    for key, s in ctx.stack.signals.get("cert_ttl", {}).items():
        svc = s.service
        ok = np.isfinite(s.values)
        if not ok.any():
            continue
        t_exp = first_crossing(g, s.values, 0.0, -1)
        lines = _caller_lines(ctx, svc, "cert")
        if t_exp is None:
            continue
        already = t_exp <= g.start + g.step
        score = 0.55 + 0.3 * (closeness(ctx, t_exp, 1800) if not already else 0.2)
        if lines:
            score += 0.15
        c = Candidate("certificate_expired", svc, "network", min(score, 1.0), f"the TLS certificate of {svc} expired at {fmt_time(t_exp)}", t_exp)
        c.facts = CertFacts(expired_at=t_exp, callers=lines[1] if lines else None)
        c.evidence.append(ctx.metric_evidence(s, f"certificate of {svc} expired at {fmt_time(t_exp)}, {rel(ctx, t_exp)}", onset=t_exp))
        if lines and ctx.logs:
            n, callers = lines
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |~ "(?i)certificate|x509|handshake" |= "{svc}"',
                                               f"{n} TLS handshake errors naming {svc} from {', '.join(sorted(callers))}"))
        out.append(c)
    # certificate errors in logs with no expiry metric for that service
    if ctx.logs:
        seen = {c.service for c in out}
        for svc, (n, callers) in _log_peer_faults(ctx, "cert").items():
            if svc in seen or n < 5:
                continue
            first = min((tp.first_post for tp in ctx.logs.templates.values()
                         if "cert" in tp.classes and svc in tp.peers and tp.first_post), default=None)
            c = Candidate("certificate_expired", svc, "network", 0.55 + min(0.3, n / 300),
                          f"TLS handshakes with {svc} fail (certificate)", first, from_lines=True)
            c.facts = CertFacts(callers=callers)
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |~ "(?i)certificate|x509|handshake" |= "{svc}"',
                                               f"{n} new TLS certificate errors naming {svc} from {', '.join(sorted(callers))}"))
            out.append(c)
    return out


def _caller_lines(ctx: Ctx, svc: str, cls: str):
    """New lines of a fault class that name ``svc`` (from its callers) or come from it."""
    if not ctx.logs:
        return None
    n, callers = 0, set()
    for tp in ctx.logs.templates.values():
        if cls not in tp.classes or tp.post < 1:
            continue
        if tp.base and tp.post / ctx.logs.post_span < 4 * tp.base / ctx.logs.base_span:
            continue
        if svc in tp.peers or tp.service == svc or svc in tp.example:
            n += tp.post
            callers.add(tp.service)
    return (n, callers) if n else None


def _log_peer_faults(ctx: Ctx, cls: str) -> dict[str, tuple[int, set[str]]]:
    out: dict[str, tuple[int, set[str]]] = {}
    if not ctx.logs:
        return out
    for tp in ctx.logs.templates.values():
        if cls not in tp.classes or not tp.peers:
            continue
        if tp.base and tp.post / ctx.logs.post_span < 4 * tp.base / ctx.logs.base_span:
            continue
        for p in tp.peers:
            n, cs = out.get(p, (0, set()))
            out[p] = (n + tp.post, cs | {tp.service})
    return out


FAULT = Fault(
    id="certificate_expired", title="a TLS certificate of the culprit expired", order=10,
    detectors={"network": detect}, facts=CertFacts, seen_by_others=True,
)

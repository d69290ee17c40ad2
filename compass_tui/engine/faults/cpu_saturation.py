"""cpu_saturation: CPU at or near its limit, or throttled (infrastructure agent).

Supports: CPU usage or throttling rises at or before the symptom, and matters in cores or
against the limit; the culprit's own latency rises. Disproves: CPU flat, or a rise that
follows the traffic (CPU per request unchanged); latency that did not move with it. Load and
earlier failures downstream are weighed by the traffic_surge and generic rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._common import rel
from compass_tui.engine.faults.base import Facts, Fault, Rule
from compass_tui.engine.timeseries import fmt_ratio, fmt_time

SIGNALS = ("cpu_util", "cpu_throttle", "cpu_cores", "cpu_util_pod", "cpu_cores_pod")
LEVELS = (("cpu_util", 0.8), ("cpu_throttle", 0.2), ("cpu_cores", None), ("cpu_util_pod", 0.8), ("cpu_cores_pod", None))
"""Each CPU signal and the level that counts as saturated (None: no limit known)."""


@dataclass
class CpuFacts(Facts):
    signal: str = ""
    """Which CPU signal carried the rise (cpu_util, cpu_throttle or cpu_cores, or per pod)."""
    pod: str | None = None
    """The one pod whose CPU rose, when a per-pod series carried it."""
    mattered: bool = True
    """False when nothing (a latency of its own, a limit, a caller that slowed) shows it did."""
    beyond_load: bool = False
    """Its traffic rose too, but its CPU per request grew past PER_REQUEST_MAX times: the load
    does not explain it."""


def _keys(ctx: Ctx) -> dict[str, dict[str, list[str]]]:
    """service -> CPU signal -> its series keys (the service, or each of its pods)."""
    keys: dict[str, dict[str, list[str]]] = {}
    for sig in SIGNALS:
        for key, s in sorted(ctx.stack.signals.get(sig, {}).items()):
            keys.setdefault(s.service, {}).setdefault(sig, []).append(key)
    return keys


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per service whose CPU rose enough to matter."""
    keys = _keys(ctx)
    return [c for c in (cpu(ctx, svc, keys[svc]) for svc in sorted(keys)) if c]


def too_small(kind: str, ch) -> bool:
    """A CPU rise that does not matter in cores or against the limit (``kind``: cpu_cores,
    cpu_util, cpu_throttle): 20x of almost nothing is nothing."""
    return (kind == "cpu_cores" and ch.after - ch.baseline < 0.05) or \
        (kind == "cpu_util" and ch.after < 0.3) or (kind == "cpu_throttle" and ch.after < 0.05)


def saturated(ctx: Ctx, svc: str) -> bool:
    """Does this fault read the service's CPU as saturated (before any disproof)?"""
    return cpu(ctx, svc, _keys(ctx).get(svc, {})) is not None


def cpu(ctx: Ctx, svc: str, keys: dict[str, list[str]]) -> Candidate | None:
    """The CPU saturation of one service (or of one of its pods), or None. ``keys``: its
    series keys per CPU signal (the service, or each of its pods)."""
    best = flat = None
    for sig, level_ok in LEVELS:
        kind = sig.removesuffix("_pod")
        for key in keys.get(sig, []):
            ch = ctx.chg(sig, key, 1)
            if ch is None or not np.isfinite(ch.baseline):
                continue
            # without a limit, saturation can only be read from a large rise
            small = too_small(kind, ch)
            if ch.rose and not small and ch.ratio >= (1.3 if level_ok is not None else 1.6):
                level = (0.7 if ch.ratio < 2.0 else 1.0) if level_ok is None else min(1.0, ch.after / level_ok)
                score = min(1.0, 0.35 + 0.1 * min(ch.z, 6)) * (0.6 + 0.4 * level)
                if best is None or score > best[0]:
                    best = (score, sig, ch, key, False)
            elif level_ok is None and ch.rose and not small and ch.ratio >= 1.3 and pinned(ctx, ctx.series(sig, key), ch):
                # a smaller rise that then held flat at one level hit a ceiling: a limit the
                # stack does not export (read only where no other reading says saturated)
                score = min(1.0, 0.35 + 0.1 * min(ch.z, 6))
                if flat is None or score > flat[0]:
                    flat = (score, sig, ch, key, True)
    for sig in ("cpu_util", "cpu_util_pod"):
        for key in keys.get(sig, []):
            util = ctx.chg(sig, key, 1, rel_floor=0.02, abs_floor=0.01, k=3.0)
            if best is None and util is not None and np.isfinite(util.baseline) and util.onset is not None \
                    and util.after >= 0.95 and util.baseline <= 0.9:
                # pinned at its limit: the rise may be small when it was already running hot
                best = (0.6 + min(0.3, (util.after - util.baseline) * 2), sig, util, key, False)
    best = best or flat
    if best is None:
        return None
    score, sig, ch, key, flat = best
    s = ctx.series(sig, key)
    pod = s.sub if sig.endswith("_pod") else None
    what = {"cpu_util": "CPU usage against its limit", "cpu_throttle": "CPU throttling",
            "cpu_cores": "CPU usage"}[sig.removesuffix("_pod")] + (f" of pod {pod}" if pod else "")
    c = Candidate("cpu_saturation", svc, "infrastructure", score,
                  f"{svc} is CPU-saturated ({what} {ch.baseline:.2f} -> {ch.after:.2f})", ch.onset)
    c.facts = CpuFacts(signal=sig, pod=pod)
    held = ", then held flat there (a ceiling: a limit the stack does not export)" if flat else ""
    c.evidence.append(ctx.metric_evidence(s, f"{what} on {svc} rose from {ch.baseline:.2f} to {ch.after:.2f} at {fmt_time(ch.onset)}, "
                                             f"{rel(ctx, ch.onset)}{held}", onset=ch.onset))
    load = None
    for lsig in ("ok_rate", "request_rate"):
        lc = ctx.chg(lsig, svc, 1, rel_floor=0.15, k=3.0, must_hold=False)
        if lc is not None and lc.rose and np.isfinite(lc.ratio):
            load = lc if load is None or lc.ratio > load.ratio else load
    load_series = ctx.series("request_rate", svc)
    if load is None and load_series is None:
        # a database or cache counts no requests of its own: its callers count them
        for key, cs in ctx.stack.signals.get("client_rate", {}).items():
            if key.endswith("|" + svc):
                lc = ctx.chg("client_rate", key, 1, rel_floor=0.15, k=3.0, must_hold=False)
                if lc is not None and lc.rose and np.isfinite(lc.ratio) and (load is None or lc.ratio > load.ratio):
                    load, load_series = lc, cs
    # (CPU per request that grew past PER_REQUEST_MAX times is something else burning it)
    # (usage only: throttling or a share of a limit from nothing has no ratio to compare)
    c.facts.beyond_load = load is not None and sig.removesuffix("_pod") == "cpu_cores" and ch.baseline > 0 and \
        np.isfinite(ch.ratio) and ch.ratio > PER_REQUEST_MAX * load.ratio
    follows_load = load is not None and load.ratio >= 0.7 * min(ch.ratio, 3.0) and not c.facts.beyond_load
    if follows_load:
        # CPU per request did not change: the CPU follows the traffic, it does not lead
        c.strength *= 0.6
        c.evidence.append(ctx.metric_evidence(load_series or s, f"{svc}'s traffic rose {fmt_ratio(load.ratio)} with its CPU: the CPU follows the load", supports=False))
    lat = ctx.chg("latency_p99", svc, 1, rel_floor=0.2) or ctx.chg("latency_mean", svc, 1, rel_floor=0.2)
    err = ctx.chg("error_ratio", svc, 1, abs_floor=0.002, rel_floor=0.3)
    # the localisation's own reading counts too: a latency of its own (not inherited) that it
    # saw leave its baseline with the CPU rose
    sus = next((x for x in ctx.suspects if x.service == svc), None)
    own_lat = sus.kinds("own").get("latency") if sus is not None and sus.inherited_share < 0.5 else None
    # (not when the CPU follows the load: then the load explains the latency as well)
    with_cpu = not follows_load and own_lat is not None and own_lat.onset is not None and ch.onset is not None and \
        ch.onset - ctx.tol <= own_lat.onset <= ch.onset + 2 * ctx.tol
    if (lat is not None and lat.rose) or svc in ctx.affected or with_cpu:
        c.strength = min(1.0, c.strength + 0.1)
    elif lat is not None or err is not None:
        # a saturated CPU shows in the service's own latency; this one's did not move
        c.strength *= 0.6
        c.evidence.append(ctx.metric_evidence(ctx.series("latency_p99", svc) or ctx.series("latency_mean", svc) or s,
                                              f"latency of {svc} did not rise with its CPU", supports=False))
    elif not any(u in ctx.affected for u in ctx.graph.callers(svc)) and sig.removesuffix("_pod") == "cpu_cores":
        # no latency of its own (a database, a cache) and no limit to measure against: only its
        # callers (the graph holds those that client metrics name too) can show that the CPU
        # mattered, and none of those seen did
        c.strength *= 0.75
        c.facts.mattered = False
        c.evidence.append(ctx.metric_evidence(s, f"{svc} has no latency of its own and no CPU limit, and none of its "
                                              "callers seen slowed: nothing shows the CPU mattered", supports=False))
    return c


PER_REQUEST_MAX = 4.0
"""Load drives CPU a little worse than in proportion near a limit, not many times worse: a CPU
per request past this many times its usual is not the load's doing."""

PINNED_SPREAD = 0.35
"""A CPU whose spread after its rise is at most this share of its usual (relative to its level)
is held at a ceiling."""


def pinned(ctx: Ctx, s, ch) -> bool:
    """Did the CPU rise to a level and stay there, its spread relative to its level a third of
    its usual or less? Usage held at a CFS quota is that flat; usage that follows load or
    work keeps the noise of the load."""
    if s is None or ch.onset is None or not ch.baseline > 0:
        return False
    t = ctx.grid.times
    v = s.values
    after = v[np.isfinite(v) & (t > ch.onset + ctx.grid.step)]
    base = v[np.isfinite(v) & (t <= ctx.grid.baseline_end)]
    if len(after) < 5 or len(base) < 10:
        return False
    rel_after = float(np.median(np.abs(after - np.median(after)))) / max(float(np.median(after)), 1e-9)
    rel_base = float(np.median(np.abs(base - np.median(base)))) / float(np.median(base))
    return rel_base > 0 and rel_after <= PINNED_SPREAD * rel_base


def _cpu_moves(ctx: Ctx):
    for sus in ctx.suspects:
        for m in sus.moved:
            if m.kind == "cpu" and m.view == "own" and m.onset is not None:
                yield sus.service, m


def cpu_rose_with(ctx: Ctx, svc: str, at: float) -> set[str]:
    """Other services whose own CPU the localisation saw leave its baseline within a step of
    ``at``, by at least half as far as ``svc``'s did: a rise many times bigger than the rest is
    not the one they share."""
    own = max((m.z for s, m in _cpu_moves(ctx) if s == svc), default=0.0)
    return {s for s, m in _cpu_moves(ctx)
            if s != svc and abs(m.onset - at) <= ctx.grid.step and m.z >= 0.5 * own}


def shared_cause(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """Three or more services whose CPU rose in the same step share a cause (load, a noisy
    host, a batch job), which one service's own CPU does not explain: each counts less, and a
    surge into them that came no later explains them (the surge rules weigh that). Services
    whose CPU rose too little to be a candidate count as well: the localisation saw them move."""
    cpus = [c for c in by_fault.get("cpu_saturation", []) if c.cause_onset is not None]
    for c in cpus:
        together = [o for o in cpus if abs(o.cause_onset - c.cause_onset) <= ctx.grid.step]
        others = sorted(({o.service for o in together} | cpu_rose_with(ctx, c.service, c.cause_onset)) - {c.service})
        if len(others) >= 2:
            c.factor *= 0.7
            c.check("competing_explanation", None, f"{len(others) + 1} services' CPU rose in the same step "
                    f"({', '.join(others[:3])}, ...): a shared cause is as likely")
            if isinstance(c.facts, CpuFacts) and not c.facts.mattered:
                # a shared rise that nothing shows mattered here: the data cannot support this
                # service's saturation over the others'
                c.strength = min(c.strength, 0.45)
            surges = [s for s in by_fault.get("traffic_surge", []) if s.cause_onset is not None
                      and s.cause_onset <= c.cause_onset + ctx.grid.step and s.strength >= 0.5
                      and not any(d.result == "failed" for d in s.checks)]
            if surges:
                c.lose_to(surges[0], f"a traffic surge into {surges[0].service} came no later, and {len(together)} "
                          "services' CPU rose with it: the load, not this CPU", 0.6)


FAULT = Fault(
    id="cpu_saturation", title="CPU at or near its limit, or throttled", order=1,
    detectors={"infrastructure": detect}, facts=CpuFacts, rules=(Rule(55, shared_cause),),
    load_driven=lambda c: True, acute=True, explained_by_downstream=True,
)

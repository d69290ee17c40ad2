"""Orient, where before what: rank every service by how far and how early its own signals
(and its callers' view of it) left a baseline, and walk the service graph so that a service
whose trouble is only inherited from a dependency yields to that dependency.

This runs before the catalog agents and always gives an answer: even when no fault kind
fits, the ranking says where the trouble started. Everything here is numpy over series
discovery already queried; each suspect keeps the queries behind its score.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from compass_tui.engine.context import Ctx, rate_lag
from compass_tui.engine.discovery import SigSeries
from compass_tui.engine.agents import OWN_ERROR
from compass_tui.engine.logfacts import INHERITED
from compass_tui.engine.request import format_time
from compass_tui.engine.timeseries import Grid, episode_peaks, recurrent_scale
from compass_tui.models import Suspect as SuspectOut
from compass_tui.models import SuspectSignal

# engine signal -> (kind, direction, view); direction +1 bad when up, -1 bad when down, 0 either
KNOWN_SIGNALS: dict[str, tuple[str, int, str]] = {
    "error_ratio": ("errors", 1, "own"),
    "latency_p99": ("latency", 1, "own"),
    "latency_mean": ("latency", 1, "own"),
    "request_rate": ("traffic", 0, "own"),
    "cpu_util": ("cpu", 1, "own"),
    "cpu_cores": ("cpu", 1, "own"),
    "cpu_throttle": ("cpu", 1, "own"),
    "cpu_util_pod": ("cpu", 1, "own"),
    "cpu_cores_pod": ("cpu", 1, "own"),
    "mem_util": ("memory", 1, "own"),
    "mem_bytes": ("memory", 1, "own"),
    "heap_util": ("memory", 1, "own"),
    "heap_bytes": ("memory", 1, "own"),
    "restarts": ("restarts", 1, "own"),
    "process_restarts": ("restarts", 1, "own"),
    "pool_util": ("saturation", 1, "own"),
    "pool_pending": ("saturation", 1, "own"),
    "pool_timeouts": ("errors", 1, "own"),
    "db_tx_duration": ("latency", 1, "own"),
    "db_locks": ("saturation", 1, "own"),
    "db_active": ("saturation", 1, "own"),
    "db_slow_rate": ("latency", 1, "own"),
    "db_up": ("availability", -1, "own"),
    "cache_up": ("availability", -1, "own"),
    "up": ("availability", -1, "own"),
    "probe_success": ("availability", -1, "own"),
    "probe_duration": ("latency", 1, "own"),
    "disk_free": ("disk", -1, "own"),
    "retrans_ratio": ("network", 1, "own"),
    "net_drops": ("network", 1, "own"),
    "dns_fail_ratio": ("errors", 1, "own"),
    "dns_lookup": ("latency", 1, "own"),
    "cache_miss_ratio": ("errors", 1, "own"),
    "cache_evictions": ("saturation", 1, "own"),
    "client_error_ratio": ("errors", 1, "callers"),
    "client_latency": ("latency", 1, "callers"),
}

# how much a kind of signal says about where trouble started
WEIGHTS = {
    "latency": 1.0, "errors": 1.0, "success": 1.0, "availability": 1.0, "cpu": 0.9, "memory": 0.7, "restarts": 0.6,
    "saturation": 0.8, "disk": 0.7, "network": 0.55, "traffic": 0.35, "other": 0.3,
}
INHERITABLE = {"latency", "errors", "success", "availability", "traffic", "saturation"}
"""Kinds a service shows when a dependency fails (its own CPU or memory it does not inherit)."""
FELT = {"latency", "errors", "success", "availability"}
FAILURES = FELT - {"latency"}
"""Kinds of a dependency's trouble its callers feel."""
Z_ON = 3.0

# signal -> the smallest move that matters, in its own unit (an error ratio of 0.005, 0.05 CPU
# cores, one lock): a flat baseline must not turn a trickle into a storm
ABS_FLOORS = {
    "error_ratio": 0.005, "client_error_ratio": 0.005, "cache_miss_ratio": 0.02, "dns_fail_ratio": 0.01,
    "latency_p99": 0.002, "latency_mean": 0.001, "client_latency": 0.001, "probe_duration": 0.002, "dns_lookup": 0.002,
    "request_rate": 0.05, "cpu_util": 0.02, "cpu_cores": 0.03, "cpu_throttle": 0.02,
    "cpu_util_pod": 0.02, "cpu_cores_pod": 0.03, "mem_util": 0.01, "heap_util": 0.01,
    "restarts": 0.3, "process_restarts": 0.3, "pool_util": 0.05, "pool_pending": 0.5, "pool_timeouts": 0.05,
    "db_tx_duration": 0.2, "db_locks": 1.0, "db_active": 1.0, "db_slow_rate": 0.05, "db_up": 0.1, "cache_up": 0.1,
    "up": 0.1, "probe_success": 0.1, "disk_free": 0.005, "retrans_ratio": 0.002, "net_drops": 0.1, "cache_evictions": 0.5,
}


OUTBOUND = "outbound"
"""The view of a service's calls to its dependencies, without a peer named."""

PER_POD = {"cpu_util_pod", "cpu_cores_pod"}
"""The engine's own per-pod signals (their sub key is the pod)."""


def is_per_pod(signal: str) -> bool:
    """Does this signal's sub key name a pod (generic per-pod views and the per-pod CPU)?"""
    return signal.startswith("g:") or signal in PER_POD


@dataclass
class Moved:
    """One series of a service that left its baseline."""

    signal: str
    kind: str
    view: str
    z: float
    onset: float | None
    series: SigSeries
    sev: float
    baseline: float = float("nan")
    peak: float = float("nan")
    held: float = float("nan")
    """The series' median from its onset on: where it stayed, against where it peaked."""
    held_z: float = 0.0
    """How far that median is past the baseline, in the same robust units as ``z``."""
    common: tuple[str, ...] = ()
    """Callers' view only: the other peers whose calls from the same caller slowed at once
    (the caller is the common factor)."""

    @property
    def label(self) -> str:
        who = f" (callers {self.series.service})" if self.view == "callers" else ""
        pod = f" {self.series.sub}" if self.view == "own" and self.series.sub else ""
        name = self.signal[2:] if self.signal[:2] in ("g:", "e:") else self.signal
        return f"{name}{pod}{who}"


@dataclass
class Suspect:
    service: str
    score: float
    raw: float
    onset: float | None
    moved: list[Moved] = field(default_factory=list)
    inherited_from: list[str] = field(default_factory=list)
    inherited_share: float = 0.0
    """How much of its latency and errors a dependency's trouble explains (0..1)."""
    pod: str | None = None
    norm: float = 0.0

    def kinds(self, view: str | None = None) -> dict[str, Moved]:
        """The strongest moved series per kind (of one view, or of its own and its callers')."""
        out: dict[str, Moved] = {}
        for m in self.moved:
            if (view is not None and m.view != view) or (view is None and m.view == OUTBOUND):
                continue
            if m.kind not in out or m.sev > out[m.kind].sev:
                out[m.kind] = m
        return out


def _sev(z: float) -> float:
    """Severity of a robust z-score: 0 below the bar, then logarithmic, so 40x is not 10x 4x."""
    if not np.isfinite(z) or z < Z_ON:
        return 0.0
    return min(6.0, 1.0 + math.log2(z / Z_ON))


def series_z(grid: Grid, values: np.ndarray, direction: int, onset: float, lag: float = 0.0, abs_floor: float = 0.0,
             share_of_good: float = 0.0):
    """(z, onset, baseline, peak, held, held_z) of one series: how far it went past a robust baseline in the
    incident window, in its bad direction (either for direction 0). ``share_of_good``: the
    series is a share of requests that went well (availability, success ratio) out of this
    much (1, or 100 for a percentage), so its level is how much failed (99.9 % to 97 % is 30
    times the failures, not 3 % less)."""
    t = grid.times
    finite = np.isfinite(values)
    if finite.sum() < 6:
        return None
    step = grid.step
    base_end = min(grid.baseline_end, onset - 2 * step)
    bmask = finite & (t <= base_end)
    if bmask.sum() < 4:
        bmask = finite & (t <= onset - step)
        if bmask.sum() < 1:
            return None
    base = values[bmask]
    med = float(np.median(base))
    mad = 1.4826 * float(np.median(np.abs(base - med)))
    q1, q3 = np.percentile(base, [25, 75])
    scale_floor = 0.005 * float(np.nanmax(np.abs(share_of_good - values[finite] if share_of_good else values[finite])))
    level = abs(share_of_good - med) if share_of_good else abs(med)
    # the IQR gives a scale where the MAD has none (a mostly constant series), but a quarter of
    # the baseline in an earlier incident breaks it: it may widen the MAD three times, not more
    iqr = float(q3 - q1) / 1.349
    if mad > 0:
        iqr = min(iqr, 3.0 * mad)
    scale = max(mad, iqr, 0.05 * level, scale_floor, abs_floor, 1e-12)
    scale = recurrent_scale(values[bmask], med, scale, direction, Z_ON)
    # the lead-in is short: the tail of an earlier incident in the window is not this one
    lead = min(900.0, max(600.0, 2 * step))
    post = max(1800.0, 8 * step)
    wmask = finite & (t >= onset - lead) & (t <= min(grid.end, max(onset, grid.alert_at) + post))
    if wmask.sum() == 0:
        return None
    dev = (values - med) / scale
    if direction < 0:
        dev = -dev
    elif direction == 0:
        dev = np.abs(dev)
    wmask &= ~_over_before(t, finite, dev, onset, step)
    if wmask.sum() == 0:
        return None
    w = dev[wmask]
    top = np.sort(w)[::-1]
    # one stray point is not a change: the second highest when there are enough points
    z = float(top[1]) if len(top) >= 4 and step < 120 else float(top[0]) * (1.0 if step >= 120 else 0.8)
    first = None
    first_i = None
    tw = t[wmask]
    run = 2 if step < 120 else 1
    above = w >= Z_ON
    for i in range(len(w)):
        if above[i] and (run == 1 or (i + 1 < len(w) and above[i + 1])):
            first = float(tw[i]) - lag
            first_i = i
            # a series that keeps having bursts (a p99 flicking between histogram buckets): a
            # burst that does not hold counts only by how far it passed its biggest one
            if step < 120 and np.mean(above[i:i + 10]) < 0.5:
                peaks = episode_peaks(base, med, scale, direction, Z_ON)
                if len(peaks) >= 3 and max(peaks) > Z_ON:
                    z *= Z_ON / max(peaks)
            break
    peak_i = int(np.argmax(w))
    vw = values[wmask]
    if first_i is None:
        return z, first, med, float(vw[peak_i]), float("nan"), 0.0
    return z, first, med, float(vw[peak_i]), float(np.median(vw[first_i:])), float(np.median(w[first_i:]))


def _over_before(t: np.ndarray, finite: np.ndarray, dev: np.ndarray, onset: float, step: float) -> np.ndarray:
    """Points of an excursion that was over before the onset: everything before the last quiet
    stretch (three points in a row back inside the baseline) that ends by a step before the
    onset. A noisy service's spike that recovered is an earlier episode, not this trouble; a
    rise that leads the onset and holds has no such stretch and keeps its points."""
    out = np.zeros(t.shape, dtype=bool)
    idx = np.nonzero(finite & (t <= onset - step))[0]
    quiet = 0
    for j in range(len(idx) - 1, -1, -1):
        i = idx[j]
        if dev[i] < Z_ON:
            quiet += 1
            if quiet >= 3:
                if (dev[idx[:j]] >= Z_ON).any():
                    out[: i] = True
                break
        else:
            quiet = 0
    return out


def _series_of(ctx: Ctx):
    """Every series the localisation reads, with its kind, direction and view."""
    for sig, (kind, direction, view) in KNOWN_SIGNALS.items():
        for s in ctx.stack.signals.get(sig, {}).values():
            yield sig, kind, direction, view, s
    for sig, meta in ctx.stack.generic.items():
        for s in ctx.stack.signals.get(sig, {}).values():
            yield sig, meta.kind, meta.direction, meta.view, s


SYMPTOM_KINDS = {"latency": dict(rel_floor=0.2), "errors": dict(abs_floor=0.002, rel_floor=0.3),
                 "success": dict(rel_floor=0.02, abs_floor=0.002), "availability": dict(rel_floor=0.02, abs_floor=0.002)}


def symptom_series(ctx: Ctx, svc: str):
    """(series, direction, change() options) of the alerting service's own errors and latency,
    under the engine's names first, then whatever else measures them."""
    known = [("error_ratio", 1), ("latency_p99", 1), ("latency_mean", 1)]
    found = False
    for sig, direction in known:
        s = ctx.series(sig, svc)
        if s is not None:
            found = True
            yield s, direction, SYMPTOM_KINDS["errors" if sig == "error_ratio" else "latency"]
    if found:
        return
    for sig, meta in ctx.stack.generic.items():
        if meta.view != "own" or meta.kind not in SYMPTOM_KINDS:
            continue
        for s in ctx.stack.signals.get(sig, {}).values():
            if s.service == svc:
                yield s, meta.direction, SYMPTOM_KINDS[meta.kind]


RATIO_KINDS = {"errors", "success", "availability"}
NOT_REQUEST_RATIOS = {"up", "probe_success", "db_up", "cache_up", "cache_miss_ratio", "dns_fail_ratio"}


def share_of_good(sig: str, kind: str, s: SigSeries) -> float:
    """Out of how much a series is a share of requests that went well: 1 for a success or
    availability gauge within [0, 1], 100 for one in percent (mostly near 100); 0 for
    anything else (a rate of successful requests is a count, however small)."""
    if kind not in ("success", "availability") or sig in NOT_REQUEST_RATIOS or "rate(" in s.query:
        return 0.0
    v = s.values[np.isfinite(s.values)]
    if not len(v) or float(v.min()) < 0.0:
        return 0.0
    top = float(v.max())
    if top <= 1.0 + 1e-9:
        return 1.0
    return 100.0 if top <= 100.0 + 1e-6 and float(np.median(v)) >= 50.0 else 0.0


def _rates(ctx: Ctx) -> dict[tuple[str, str], SigSeries]:
    """(view, key) -> the request rate a ratio of that key is a share of: a service's own
    requests, or a caller's calls to a peer."""
    out: dict[tuple[str, str], SigSeries] = {}
    for sig, kind, _, view, s in _series_of(ctx):
        if kind == "traffic":
            out.setdefault((view, s.key), s)
    for sig in ("client_rate", "sg_rate"):
        for key, s in ctx.stack.signals.get(sig, {}).items():
            out.setdefault(("callers", key), s)
    return out


def count_floor(ctx: Ctx, rates: dict, sig: str, kind: str, view: str, s: SigSeries) -> float:
    """The smallest move of a request ratio that is more than one request's worth: a service
    that served two requests in a step and failed one is at 50 %, and that is noise. 1/n, with
    n the requests its usual rate puts in one point (a step, or the rate's window)."""
    if kind not in RATIO_KINDS or sig in NOT_REQUEST_RATIOS:
        return 0.0
    rate = rates.get((view, s.key)) or rates.get((view, s.service))
    if rate is None:
        return 0.0
    base = rate.values[np.isfinite(rate.values) & (ctx.grid.times <= ctx.grid.baseline_end)]
    if len(base) < 4:
        return 0.0
    window = max(ctx.grid.step, 2.0 * rate_lag(s.query, ctx.grid.step))
    n = float(np.median(base)) * window
    return min(1.0, 1.0 / n) if n > 0 else 0.0


def series_services(ctx: Ctx) -> set[str]:
    """Services that have a series of their own."""
    out = set()
    for _, _, _, view, s in _series_of(ctx):
        if view == "own":
            out.add(s.service)
    return out


def localise(ctx: Ctx) -> list[Suspect]:
    """Rank every service by where the trouble started; the best first."""
    g = ctx.grid
    onset = ctx.onset
    moved: dict[str, list[Moved]] = {}
    rates = _rates(ctx)
    for sig, kind, direction, view, s in _series_of(ctx):
        floor = max(ABS_FLOORS.get(sig, 0.0), count_floor(ctx, rates, sig, kind, view, s))
        r = series_z(g, s.values, direction, onset, rate_lag(s.query, g.step), floor, share_of_good(sig, kind, s))
        if r is None:
            continue
        z, first, base, peak, held, held_z = r
        sev = _sev(z)
        if sev <= 0:
            continue
        if first is not None and first > g.alert_at + max(1800.0, 8 * g.step):
            continue
        target = s.sub if view == "callers" and s.sub else s.service
        if not target:
            continue
        w = WEIGHTS.get(kind, 0.3) * (0.3 if view == "callers" and kind == "traffic" else 1.0)
        moved.setdefault(target, []).append(Moved(sig, kind, view, z, first, s, sev * w, base, peak, held, held_z))
    if ctx.logs is not None:
        _log_moves(ctx, moved)
    _common_caller(moved, series_services(ctx))

    suspects: dict[str, Suspect] = {}
    for svc, ms in moved.items():
        best: dict[str, Moved] = {}
        for m in ms:
            if m.view == OUTBOUND:
                continue  # what it waited for says where its trouble came from, not how much it has
            if m.kind not in best or m.sev > best[m.kind].sev:
                best[m.kind] = m
        if not best:
            continue
        vals = sorted((m.sev for m in best.values()), reverse=True)
        raw = vals[0] + 0.25 * sum(vals[1:4])
        strong = [m for m in best.values() if m.sev >= 0.5 * vals[0] and m.onset is not None]
        first = min((m.onset for m in strong), default=None)
        # only per-pod series carry a pod as their sub key (others: a pool, a peer)
        pods = [m.series.sub for m in ms if m.view == "own" and is_per_pod(m.signal) and m.series.sub and m.sev >= 0.8 * vals[0]]
        suspects[svc] = Suspect(svc, raw, raw, first, sorted(ms, key=lambda m: -m.sev), pod=pods[0] if len(set(pods)) == 1 else None)

    _inherit(ctx, suspects)
    _over(ctx, suspects)
    _alerting_front(ctx, suspects)
    _timing(ctx, suspects)
    _on_path(ctx, suspects)
    # a tie (both saturate the severity scale) goes to the earlier, then to the one whose errors
    # moved further: errors thin out on their way up a chain (latency adds up, so it says nothing)
    ranked = sorted(suspects.values(), key=lambda s: (-s.score, s.onset if s.onset is not None else math.inf,
                                                      -max((m.z for m in s.moved if m.view != OUTBOUND and m.kind in FAILURES),
                                                           default=0.0), s.service))
    top = ranked[0].score if ranked else 1.0
    for s in ranked:
        s.norm = s.score / top if top > 0 else 0.0
    return ranked


def _log_moves(ctx: Ctx, moved: dict[str, list[Moved]]) -> None:
    """New error templates of a service's own (not inherited from a peer) are its own errors."""
    logs = ctx.logs
    per: dict[str, tuple[int, float | None]] = {}
    for (svc, _), tp in logs.templates.items():
        if tp.inherited or INHERITED.search(tp.example) or not OWN_ERROR.search(tp.example):
            continue  # a dependency's trouble seen from here, or no error at all
        base_rate = tp.base / logs.base_span
        post_rate = tp.post / logs.post_span
        if tp.post >= 3 and (tp.base == 0 or post_rate > 8 * base_rate):
            n, t = per.get(svc, (0, None))
            first = tp.first_post if t is None else min(t, tp.first_post or t)
            per[svc] = (n + tp.post, first)
    for svc, (n, first) in per.items():
        z = Z_ON * (1 + min(n, 400) / 20)
        dummy = SigSeries("log_errors", svc, np.full(ctx.grid.times.shape, np.nan), logs.query)
        moved.setdefault(svc, []).append(Moved("log_errors", "errors", "own", z, first, dummy, _sev(z) * 0.8))


def _common_caller(moved: dict[str, list[Moved]], reporting: set[str]) -> None:
    """A caller whose calls to several peers slowed (by as much) or failed at once, while no other
    caller sees those peers in trouble and they show none of their own, is itself the common
    factor (its CPU, its pool, its process): its view of them is its own trouble. A peer that
    reports nothing itself, seen slow only by one caller in trouble, counts half: the slow
    calls may be the caller's own making. ``reporting``: services with series of their own."""
    seen_by: dict[str, set[str]] = {}
    for target, ms in moved.items():
        for m in ms:
            if m.view == "callers" and m.kind in FELT and m.sev >= 0.3:
                seen_by.setdefault(target, set()).add(m.series.service)
    own_felt = {t for t, ms in moved.items() if any(m.view == "own" and m.kind in FELT and m.sev >= 0.3 for m in ms)}
    alone: dict[str, set[str]] = {}
    for target, callers in seen_by.items():
        if len(callers) == 1 and target not in own_felt:
            alone.setdefault(next(iter(callers)), set()).add(target)
    for caller, targets in alone.items():
        for target in targets - reporting if len(targets) < 2 and caller in own_felt else ():
            # one witness, itself in trouble, of a peer that reports nothing of its own: the
            # slow calls may be the caller's own making as much as the peer's
            for i, m in enumerate(moved[target]):
                if m.view == "callers" and m.series.service == caller:
                    moved[target][i] = replace(m, sev=m.sev * 0.5)
        # a delay of the caller's own adds about as much to every call; one peer far worse
        # than the rest is that peer's trouble
        rise = {t: max((m.peak - m.baseline for m in moved[t] if m.view == "callers" and m.series.service == caller
                        and m.kind == "latency" and np.isfinite(m.peak - m.baseline)), default=0.0) for t in targets}
        top = max(rise.values(), default=0.0)
        if top > 0:
            targets = {t for t in targets if rise[t] >= 0.25 * top}
        if len(targets) < 2:
            continue  # one peer in trouble: what its caller sees of it is its trouble
        for target in targets:
            others = tuple(sorted(targets - {target}))
            for i, m in enumerate(moved[target]):
                if m.view == "callers" and m.series.service == caller:
                    moved[target][i] = replace(m, sev=m.sev * 0.3, common=others)
                    moved.setdefault(caller, []).append(replace(m, view="own", sev=m.sev * 0.8))


RATIO_SIGNALS = ("error_ratio", "client_error_ratio")
_RATIO_NAME = re.compile(r"ratio|fraction|share|:errors$", re.I)


def _is_share(m: Moved) -> bool:
    """Is this errors series a share of calls that failed (0..1)?"""
    return (m.signal in RATIO_SIGNALS or bool(_RATIO_NAME.search(m.signal))) and 0.0 <= m.baseline <= m.peak <= 1.0


FAN_OUT = 3.0
"""A request may call a dependency a few times: each call can fail it, or land in its tail."""
_MEAN_NAME = re.compile(r"mean|avg|average|_count$", re.I)


def _is_mean(m: Moved) -> bool:
    return m.signal == "latency_mean" or (m.signal.startswith("g:") and bool(_MEAN_NAME.search(m.signal)))


def _passed(kind: str, m: Moved, d: Moved, mine: float, theirs: float) -> float | None:
    """How much of a caller's rise to ``mine`` a dependency at ``theirs`` could have passed up
    (both against their own baselines), or None where the two cannot be compared."""
    if kind == "latency" and m.baseline > 0 and d.baseline > 0 and mine > m.baseline:
        # a mean cannot grow by more than the factor; a quantile of several calls can
        k = 1.0 if _is_mean(m) and _is_mean(d) else FAN_OUT
        return min(1.0, k * max(0.0, theirs / d.baseline - 1.0) / (mine / m.baseline - 1.0))
    if kind == "errors" and _is_share(m) and _is_share(d) and mine > m.baseline:
        return min(1.0, FAN_OUT * max(0.0, theirs - d.baseline) / (mine - m.baseline))
    return None


def explainable(s: Suspect, theirs: dict[str, Moved]) -> float:
    """How much of ``s``'s latency and errors a dependency's (``theirs``: its moved series per
    kind, or ``s``'s own outbound calls) could have passed up, 0..1, weighted by how far each
    moved. A caller waiting on a dependency slows on average by at most the factor the
    dependency slowed by (a tail quantile, a few times that), and fails at most a few times as
    many more calls as the dependency does: a callee whose failures went from 0.4 % to 1.3 %
    does not explain a caller that went from 0.6 % to 19 %. Where the caller's trouble held,
    the same goes for where both stayed: a dependency's blip that was over at once does not
    explain a caller that stayed failing.
    A kind that cannot be compared (the dependency shows none of it, or in other units) is not
    held against the dependency."""
    num = den = 0.0
    for kind, m in s.kinds().items():
        if kind not in ("latency", "errors"):
            continue
        d = theirs.get(kind)
        part = 1.0
        if d is not None and all(np.isfinite(x) for x in (m.baseline, m.peak, d.baseline, d.peak)):
            peak = _passed(kind, m, d, m.peak, d.peak)
            part = 1.0 if peak is None else peak
            if m.held_z >= Z_ON and np.isfinite(m.held) and np.isfinite(d.held):
                held = _passed(kind, m, d, m.held, d.held)
                if held is not None:
                    part = min(part, held)
        num += m.sev * part
        den += m.sev
    return num / den if den > 0 else 1.0


def _inherit(ctx: Ctx, suspects: dict[str, Suspect]) -> None:
    """A service whose latency or errors only echo a dependency's trouble yields to it: a
    dependency in the graph in trouble no later than it, or its own outbound calls slowing or
    failing no later than it (which dependency, the stack does not say)."""
    graph = ctx.graph
    tol = max(2 * ctx.grid.step, 60.0)
    # what a dependency passes up is what its callers can feel: its latency and errors
    felt = {k: sum(m.sev for kk, m in s.kinds().items() if kk in FELT) for k, s in suspects.items()}
    for svc, s in suspects.items():
        deps = [d for d in graph.callees(svc) if d in suspects] if graph.known else []
        calls = {k: m for k, m in s.kinds(OUTBOUND).items() if k in FELT and m.onset is not None
                 and (s.onset is None or m.onset <= s.onset + tol)}
        waited = sum(m.sev for m in calls.values()) * (explainable(s, calls) if calls else 1.0)
        if not deps and waited <= 0:
            continue
        own = s.kinds()
        # what its callers see of it is inherited as much as what it sees of itself
        inh = sum(m.sev for k, m in own.items() if k in INHERITABLE)
        rest = sum(m.sev for k, m in own.items() if k not in INHERITABLE)
        if inh <= 0:
            continue
        # the dependency that explains most: trouble of its own no later than this service's,
        # as far as it is big enough to explain this service's
        blame = []
        for d in deps:
            ds = suspects[d]
            if s.onset is not None and ds.onset is not None and ds.onset > s.onset + tol:
                continue
            if felt[d] > 0:
                blame.append((felt[d] * explainable(s, ds.kinds()), d))
        if not blame and waited <= 0:
            continue
        blame.sort(reverse=True)
        share = min(1.0, max(blame[0][0] if blame else 0.0, waited) / max(inh, 1e-9))
        s.inherited_from = [d for _, d in blame[:3]]
        s.inherited_share = share
        kept = inh * (1.0 - 0.7 * share) + rest
        total = inh + rest
        s.score = s.raw * (kept / total if total > 0 else 1.0)


def _over(ctx: Ctx, suspects: dict[str, Suspect]) -> None:
    """A service whose every signal was back near its baseline from its onset on (a blip, a
    restart) while the alerting service's latency or errors held is not what kept the alert
    firing: it yields to the services whose trouble lasted."""
    a = suspects.get(ctx.symptom_service or "")
    if a is None or not lasted(a):
        return
    for s in suspects.values():
        if s is not a and not lasted(s, None):
            s.score *= 0.5


def lasted(s: Suspect, kinds: set[str] | None = FELT) -> bool:
    """Did any of the suspect's latency and errors (or signals of these kinds, None: any) stay
    past the bar from its onset on?"""
    return any(m.held_z >= Z_ON for m in s.moved if m.view != OUTBOUND and (kinds is None or m.kind in kinds))


def _alerting_front(ctx: Ctx, suspects: dict[str, Suspect]) -> None:
    """The alerting service stands in front of what it calls: where no graph places it, its
    latency and errors are as likely passed up from a service whose own began with them."""
    a = ctx.symptom_service
    if not a or a not in suspects or (ctx.graph.known and a in ctx.graph.nodes()):
        return
    s = suspects[a]
    if s.onset is None:
        return
    tol = max(2 * ctx.grid.step, 60.0)
    felt = [o for o in suspects.values() if o.service != a and o.onset is not None and o.onset <= s.onset + tol
            and o.score >= 0.5 * s.score and any(k in FELT for k in o.kinds("own"))]
    if felt:
        s.score *= 0.8


def on_path(ctx: Ctx, service: str) -> bool | None:
    """Is the service on the alert's path (the alerting service or below it)? None: unknown."""
    a = ctx.symptom_service
    graph = ctx.graph
    if not a or not graph.known or a not in graph.nodes() or service not in graph.nodes():
        return None
    return service == a or service in graph.downstream(a)


def _on_path(ctx: Ctx, suspects: dict[str, Suspect]) -> None:
    """Trouble off the alert's path did not page anyone: it is noise or another incident."""
    for s in suspects.values():
        p = on_path(ctx, s.service)
        if p is False:
            s.score *= 0.35 if ctx.graph_complete else 0.7


def _timing(ctx: Ctx, suspects: dict[str, Suspect]) -> None:
    """Among strong suspects, the one whose trouble began first is likelier the origin."""
    if not suspects:
        return
    top = max(s.score for s in suspects.values())
    early = [s.onset for s in suspects.values() if s.onset is not None and s.score >= 0.5 * top]
    if not early:
        return
    first = min(early)
    span = max(900.0, 5 * ctx.grid.step)
    for s in suspects.values():
        if s.onset is None:
            s.score *= 0.9
            continue
        late = max(0.0, s.onset - first - ctx.tol)
        s.score *= 1.0 - 0.2 * min(1.0, late / span)


def suspect_out(s: Suspect, rank: int) -> SuspectOut:
    """The report's view of a suspect."""
    return SuspectOut(
        rank=rank, service=s.service, score=round(s.norm, 3), onset=format_time(s.onset) if s.onset else None, pod=s.pod,
        inherited_from=s.inherited_from,
        signals=[SuspectSignal(signal=m.label, kind=m.kind, view=m.view, z=round(min(m.z, 1e6), 2),
                               onset=format_time(m.onset) if m.onset else None, query=m.series.query) for m in s.moved[:6]],
    )

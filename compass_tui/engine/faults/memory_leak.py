"""memory_leak: memory grows until the limit (infrastructure agent).

Supports: steady growth of the memory envelope before the symptom (garbage-collection saws
ride on it), near the limit; restarts (OOM kills); out-of-memory log lines. Disproves: memory
flat, or one step (a restart to a higher level, a cache warming) rather than growth all
along, or a rise packed into one short climb (a restart warming up to a new level); growth
only after the onset (temporal precedence)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults.base import Facts, Fault
from compass_tui.engine.timeseries import fmt_time, slope_per_s

SIGNALS = ("mem_util", "heap_util", "mem_bytes", "heap_bytes")


@dataclass
class MemoryFacts(Facts):
    signal: str = ""
    """The memory signal that grew."""
    growth: float = 0.0
    """Relative growth of the envelope over the leak's longest stretch."""
    restarted_at: float | None = None
    """When the service restarted near the onset, if it did."""


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per service whose memory grew steadily before the symptom."""
    services = {s.service for sig in SIGNALS for s in ctx.stack.signals.get(sig, {}).values()}
    return [c for c in (memory(ctx, svc) for svc in sorted(services)) if c]


def _mem_signal(ctx: Ctx, svc: str):
    for sig in SIGNALS:
        s = ctx.series(sig, svc)
        if s is not None and np.isfinite(s.values).sum() > 5:
            return sig, s
    return None, None


def memory(ctx: Ctx, svc: str) -> Candidate | None:
    """The memory leak of one service, or None."""
    sig, s = _mem_signal(ctx, svc)
    if s is None:
        return None
    g = ctx.grid
    lead = max(1800.0, 0.6 * (ctx.onset - g.start))
    t, v = g.times, s.values
    # up to the alert: a slow leak shows in latency long before the restarts that page
    win = (t >= ctx.onset - lead) & (t <= max(ctx.onset + 3 * ctx.tol, g.alert_at + ctx.tol)) & np.isfinite(v)
    if win.sum() < 4:
        return None
    idx = np.nonzero(win)[0]
    # Garbage collection saws memory up and down every few minutes; a leak lifts the whole
    # saw. Follow the envelope (the rolling max over ~5 min) and split only at restarts
    # (the envelope falls by a quarter or more).
    w = max(3, int(round(300.0 / g.step)))
    env = np.full_like(v, np.nan)
    for j in idx:
        lo = max(idx[0], j - w + 1)
        seg_vals = v[lo:j + 1]
        seg_vals = seg_vals[np.isfinite(seg_vals)]
        env[j] = seg_vals.max() if len(seg_vals) else np.nan
    segments, seg_start = [], idx[0]
    for a, b in zip(idx[:-1], idx[1:]):
        if v[b] < 0.75 * env[a]:
            segments.append((seg_start, a))
            seg_start = b
    segments.append((seg_start, idx[-1]))
    start_i, peak_i = max(segments, key=lambda ab: ab[1] - ab[0])
    # skip the envelope's warm-up at the segment start (it only sees part of a saw tooth)
    start_i = min(peak_i, start_i + w - 1)
    t_start, t_peak = float(t[start_i]), float(t[peak_i])
    span = t_peak - t_start
    if span < max(6 * g.step, 600.0):
        return None
    v_env = env
    slope, r2 = slope_per_s(g, v_env, t_start, t_peak)
    lvl0 = float(v_env[start_i])
    growth = slope * span / max(abs(lvl0), 1e-9)
    restarts = _restarts_near(ctx, svc)
    oom_lines = ctx.logs.hits(svc, "oom", ctx.onset - lead, ctx.onset + 600) if ctx.logs else []
    util = sig.endswith("_util")
    peak = float(np.nanmax(v[start_i:peak_i + 1]))
    score = 0.0
    rise = slope * span
    # near a limit a leak has little room left: a few points of the limit is growth enough, when
    # it is steady (a high, flat level that wanders a few points is no leak)
    near_limit = util and peak >= 0.9 and rise >= 0.06 and r2 >= 0.8
    # a leak grows all along; one step (a restart to a higher level, a cache warming) is not one
    jumps = np.diff(v_env[start_i:peak_i + 1])
    jumps = jumps[np.isfinite(jumps)]
    one_step = rise > 0 and len(jumps) and float(jumps.max()) >= 0.5 * rise
    # ...and not in one climb that then levelled off (a restart warming up to a new level): a
    # leak that began late still climbs until the trouble (or the limit)
    k = max(2, int(round((t_peak - t_start) / 4.0 / g.step)))
    seg_env = v_env[start_i:peak_i + 1]
    fin = np.isfinite(seg_env)
    levelled = False
    if fin.sum() > k and not near_limit:
        ahead = np.fmax.accumulate(np.where(fin, seg_env, seg_env[fin][0]))
        total = float(ahead[-1] - ahead[0])
        gains = ahead[k:] - ahead[:-k]
        j = int(np.argmax(gains))
        climb, after = float(gains[j]), float(ahead[-1] - ahead[j + k])
        post_steps = len(ahead) - 1 - (j + k)
        # most of the rise in one quarter of the stretch, then a stretch at least half as long
        # growing at under a third of the climb's pace
        levelled = total > 0 and climb >= 0.6 * total and post_steps >= 0.5 * k and \
            after / max(post_steps, 1) < 0.35 * climb / k
    # A restart that memory was not growing into was no OOM kill; a climb that began with it and
    # slows down is the fresh process warming its caches, not a leak (a leak the restart brought
    # in, a new version's, keeps its pace)
    oom_restart, warm_up = _after_restart(g, v_env, t_start, t_peak, restarts, rise)
    # a leak takes memory where it has not been: a level the service already held before the
    # stretch, with no restart resetting it since, is its usual wander (a high, flat level)
    prior = np.nonzero((t < t_start) & np.isfinite(v))[0]
    been_there = False
    if len(prior) >= 6 and rise > 0:
        top_i = int(prior[np.argmax(v[prior])])
        since = v[top_i:start_i + 1]
        been_there = float(v[top_i]) >= peak - 0.25 * rise and float(np.nanmin(since)) >= 0.75 * float(v[top_i])
    if slope > 0 and (growth >= 0.15 or near_limit) and r2 >= 0.5 and not one_step and not levelled and not warm_up \
            and not been_there:
        score = 0.45 + min(0.25, growth * 0.3) + 0.1 * r2
        if util and peak >= 0.85:
            score += 0.15
    if oom_restart and score > 0:
        score += 0.1
    if oom_lines and score > 0:
        score += 0.1
    if score <= 0:
        return None
    # the leak began with the first stretch that grew too (restarts only reset it)
    leak_start = t_start
    for a, b in segments:
        if b - a >= 3 and (a, b) != (start_i, peak_i):
            sl, rr = slope_per_s(g, v_env, float(t[a]), float(t[b]))
            if sl > 0 and rr >= 0.5 and float(t[a]) < leak_start:
                leak_start = float(t[a])
    c = Candidate("memory_leak", svc, "infrastructure", min(score, 1.0),
                  f"{svc} is leaking memory ({growth * 100:.0f}% growth before the symptom)", leak_start)
    c.facts = MemoryFacts(signal=sig, growth=float(growth), restarted_at=restarts[1] if restarts is not None else None)
    level = f"peak {peak * 100:.0f}% of its limit" if util else f"peak {_bytes(peak)}" if "bytes" in sig else f"peak {peak:.2f}"
    c.evidence.append(ctx.metric_evidence(s, f"memory of {svc} grew steadily {growth * 100:.0f}% over {span / 60:.0f} min up to {fmt_time(t_peak)} (R² {r2:.2f}), {level}", onset=t_start))
    if restarts is not None:
        rs, rt = restarts
        if oom_restart:
            c.evidence.append(ctx.metric_evidence(rs, f"{svc} restarted at {fmt_time(rt)} (OOM kill or crash)", onset=rt))
        else:
            c.evidence.append(ctx.metric_evidence(rs, f"{svc} restarted at {fmt_time(rt)}, but its memory was not growing before "
                                                      "that: no OOM kill", onset=rt, supports=False))
    if oom_lines and ctx.logs:
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)out ?of ?memory|oom|heap space|gc overhead"',
                                           f"{len(oom_lines)} out-of-memory lines from {svc}"))
    return c


def _after_restart(g, env: np.ndarray, t_start: float, t_peak: float, restarts, rise: float) -> tuple[bool, bool]:
    """(the restart came after growth, as an OOM kill does; the growth began at the restart and
    slowed down, as a warm-up does). Both False without a restart inside the stretch."""
    if restarts is None or rise <= 0:
        return restarts is not None, False
    rt = restarts[1]
    t = g.times
    pre = np.nonzero((t >= min(t_start, rt - 1800.0)) & (t < rt) & np.isfinite(env))[0]
    # the envelope (a rolling max over ~5 min) still holds the old process for a while
    post = np.nonzero((t >= max(rt + 300.0, t_start)) & (t <= t_peak) & np.isfinite(env))[0]
    if len(pre) < 3:
        return True, False  # nothing seen before it: no reason to doubt it
    grew_before = float(np.max(env[pre]) - env[pre[0]]) >= 0.25 * rise
    if grew_before or len(post) < 6:
        return grew_before, False
    half = post[len(post) // 2]
    first, second = float(env[half] - env[post[0]]), float(env[post[-1]] - env[half])
    return False, first > 0 and second < 0.4 * first


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} PiB"


def _restarts_near(ctx: Ctx, svc: str):
    for sig in ("restarts", "process_restarts"):
        s = ctx.series(sig, svc)
        if s is None:
            continue
        g = ctx.grid
        m = (g.times >= ctx.onset - 1800) & (g.times <= ctx.onset + 3 * ctx.tol) & np.isfinite(s.values)
        base = s.values[(g.times < ctx.onset - 1800) & np.isfinite(s.values)]
        if m.any() and np.nanmax(s.values[m]) > 0.5 and (len(base) == 0 or np.nanmax(base) < 0.5):
            t = float(g.times[m][np.argmax(s.values[m] > 0.5)])
            return s, t
    return None


FAULT = Fault(
    id="memory_leak", title="memory grows until the limit", order=2,
    detectors={"infrastructure": detect}, facts=MemoryFacts, explained_by_downstream=True,
)

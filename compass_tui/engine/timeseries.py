"""Series on a common step grid: baselines, change points, onsets and magnitudes.

Everything here is pure numpy over arrays the backends returned; no queries run here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Grid:
    """The investigation's evaluation grid and the windows that matter on it."""

    start: float
    end: float
    step: float
    alert_at: float
    baseline_end: float
    """End of the baseline window: well before the alert, so a slow onset stays out of it."""

    @property
    def times(self) -> np.ndarray:
        n = int(np.floor((self.end - self.start) / self.step + 1e-9)) + 1
        return self.start + self.step * np.arange(n)

    def align(self, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Values of a series on the grid, NaN where it has no point."""
        out = np.full(self.times.shape, np.nan)
        if len(t) == 0:
            return out
        idx = np.rint((np.asarray(t) - self.start) / self.step).astype(int)
        ok = (idx >= 0) & (idx < len(out))
        out[idx[ok]] = np.asarray(v, dtype=float)[ok]
        return out


@dataclass
class Change:
    """How a series moved against its baseline."""

    baseline: float
    """Median over the baseline window."""
    spread: float
    """Robust spread of the baseline (scaled MAD, floored)."""
    after: float
    """Median over [onset, alert + a little] (or over the last part when no onset)."""
    peak: float
    onset: float | None
    """First time of the sustained excursion that reaches the alert, None when none."""
    z: float
    """(after - baseline) / spread, signed."""
    ratio: float
    """after / baseline (inf when the baseline is 0 and after is not)."""
    end: float | None = None
    """Last time of that excursion (None when no onset)."""

    @property
    def rose(self) -> bool:
        return self.onset is not None and self.z > 0



def _robust(values: np.ndarray) -> tuple[float, float]:
    vals = values[np.isfinite(values)]
    if len(vals) == 0:
        return float("nan"), float("nan")
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826
    return med, mad


def recurrent_scale(base: np.ndarray, med: float, scale: float, direction: int, bar: float,
                    episodes: int = 3, gap: int = 2) -> float:
    """The scale widened so that bursts the baseline itself keeps having are not anomalies.

    ``base``: the baseline's values in time order. Excursions past ``bar`` scales, merged
    across gaps of up to ``gap`` points, are episodes; when there are at least ``episodes`` of
    them, the scale grows until the ``episodes``-th highest peak sits on the bar. One or two
    episodes are left alone: an earlier incident inside the baseline is not the series' noise
    (a p99 that flips between two histogram buckets every few minutes is)."""
    if not (scale > 0) or len(base) < 2 * episodes:
        return scale
    peaks = episode_peaks(base, med, scale, direction, bar, gap)
    if len(peaks) < episodes:
        return scale
    return scale * max(1.0, sorted(peaks)[-episodes] / bar)


def episode_peaks(base: np.ndarray, med: float, scale: float, direction: int, bar: float, gap: int = 2) -> list[float]:
    """The peak (in scales) of each excursion of ``base`` past ``bar`` scales, excursions
    separated by up to ``gap`` points merged."""
    dev = (base - med) / scale
    dev = np.abs(dev) if direction == 0 else dev * direction
    dev = np.where(np.isfinite(dev), dev, -np.inf)
    idx = np.nonzero(dev >= bar)[0]
    if not len(idx):
        return []
    peaks: list[float] = []
    start = prev = int(idx[0])
    for i in list(idx[1:]) + [None]:
        if i is not None and i - prev <= gap + 1:
            prev = int(i)
            continue
        peaks.append(float(dev[start:prev + 1].max()))
        if i is not None:
            start = prev = int(i)
    return peaks


def _blocks(beyond: np.ndarray, finite: np.ndarray, min_run: int) -> list[tuple[int, int]]:
    """Runs of True (a one-point NaN gap tolerated) at least ``min_run`` long, as (first, last)."""
    blocks: list[tuple[int, int]] = []
    i, n = 0, len(beyond)
    while i < n:
        if not beyond[i]:
            i += 1
            continue
        j = i
        last = i
        while j + 1 < n:
            if beyond[j + 1]:
                j += 1
                last = j
            elif not finite[j + 1] and j + 2 < n and beyond[j + 2]:
                j += 2
                last = j
            else:
                break
        if last - i + 1 >= min_run:
            blocks.append((i, last))
        i = last + 1
    return blocks


def change(
    grid: Grid,
    values: np.ndarray,
    direction: int = 1,
    *,
    k: float = 4.0,
    rel_floor: float = 0.1,
    abs_floor: float = 1e-9,
    min_run: int = 3,
    anchor: float | None = None,
    horizon: float | None = None,
    must_hold: bool = True,
    lag: float = 0.0,
) -> Change:
    """Baseline the series and find its sustained excursion in ``direction`` (+1 up, -1 down).

    Points beyond ``baseline ± k·spread`` (spread: scaled MAD floored at ``rel_floor`` of the
    baseline level and at ``abs_floor``) form runs of at least ``min_run`` points. The run
    that matters is the one holding ``anchor`` (default: the alert), else the latest one
    starting before it, within ``horizon`` seconds (default: back to the baseline's end), else
    the first one after it. A blip that recovered long before the anchor is not an onset.
    """
    times = grid.times
    base_mask = times <= grid.baseline_end
    base_vals = values[base_mask]
    base_end = grid.baseline_end
    if np.isfinite(base_vals).sum() < max(3, min(8, base_mask.sum() // 4)):
        # a series that starts after the baseline window (a late exporter, a new pod): its
        # own first stretch, well before the anchor, is the baseline; without one no change
        # can be claimed from it
        anchor_t = grid.alert_at if anchor is None else anchor
        pre = np.nonzero(np.isfinite(values) & (times < anchor_t - 600))[0]
        if len(pre) >= 8:
            first = pre[: max(8, len(pre) // 2)]
        else:
            # a short recording (minutes at a coarse step): the baseline is what came up to two
            # steps before the onset, as the localisation reads it; three points at the least
            first = np.nonzero(np.isfinite(values) & (times <= anchor_t - 2 * grid.step))[0]
            if anchor is None or len(first) < 3:
                return Change(float("nan"), float("nan"), float("nan"), float("nan"), None, 0.0, 1.0)
        base_vals = values[first]
        base_end = float(times[first[-1]])
    med, mad = _robust(base_vals)
    spread = max(mad, abs(med) * rel_floor, abs_floor)
    spread = recurrent_scale(base_vals, med, spread, direction, k)
    thresh = med + direction * k * spread
    finite = np.isfinite(values)
    beyond = finite & ((values - thresh) * direction > 0)
    beyond &= times > base_end - grid.step * 0.5
    # a rate over a window shows a change ``lag`` late: compare against a shifted anchor
    anchor_t = (grid.alert_at if anchor is None else anchor) + lag
    earliest = base_end if horizon is None else max(grid.start, anchor_t - horizon)
    onset = end = None
    chosen = None
    blocks = _blocks(beyond, finite, min_run)
    # rate windows and scrape offsets delay what a query sees by a step or two
    slack = max(2 * grid.step, 60.0)
    before = [b for b in blocks if times[b[0]] <= anchor_t + slack and times[b[0]] >= earliest - grid.step * 0.5]
    holding = [b for b in before if times[b[1]] >= anchor_t - 2 * grid.step]
    if holding:
        chosen = holding[-1]
        # merge with earlier blocks separated by short dips
        for b in reversed(before[: before.index(chosen)]):
            if times[chosen[0]] - times[b[1]] <= 2 * grid.step:
                chosen = (b[0], chosen[1])
    elif before and not must_hold:
        chosen = before[-1]
    elif not must_hold:
        after_blocks = [b for b in blocks if times[b[0]] > anchor_t]
        if after_blocks:
            chosen = after_blocks[0]
    if chosen is not None:
        # the excursion began where the ramp left the baseline, not where it crossed the bar
        first = chosen[0]
        low = med + direction * 1.5 * spread
        i = first - 1
        while i >= 0 and times[i] > base_end - grid.step * 0.5:
            if finite[i] and (values[i] - low) * direction > 0:
                first = i
            elif finite[i]:
                break
            i -= 1
        chosen = (first, chosen[1])
        onset = float(times[chosen[0]]) - lag
        end = float(times[chosen[1]]) - lag
        after_mask = (times >= times[chosen[0]]) & (times <= times[chosen[1]])
    else:
        after_mask = (times >= anchor_t - 5 * grid.step) & (times <= anchor_t + 5 * grid.step)
    after_vals = values[after_mask]
    after_vals = after_vals[np.isfinite(after_vals)]
    after = float(np.median(after_vals)) if len(after_vals) else float("nan")
    post = values[(times > base_end) & finite]
    peak = float(np.max(post) if direction > 0 else np.min(post)) if len(post) else float("nan")
    z = (after - med) / spread if np.isfinite(after) else 0.0
    if med == 0:
        ratio = float("inf") if np.isfinite(after) and after != 0 else 1.0
    else:
        ratio = after / med if np.isfinite(after) else 1.0
    return Change(med, spread, after, peak, onset, float(z), float(ratio), end)


def first_crossing(grid: Grid, values: np.ndarray, threshold: float, direction: int = 1) -> float | None:
    """First grid time the series is beyond ``threshold`` (and stays for two points)."""
    times = grid.times
    beyond = np.isfinite(values) & ((values - threshold) * direction >= 0)
    for i in range(len(times) - 1):
        if beyond[i] and (beyond[i + 1] or not np.isfinite(values[i + 1])):
            return float(times[i])
    if len(times) and beyond[-1]:
        return float(times[-1])
    return None


def slope_per_s(grid: Grid, values: np.ndarray, start: float, end: float) -> tuple[float, float]:
    """Least-squares slope over [start, end] and the fit's R², ignoring NaNs."""
    times = grid.times
    m = (times >= start) & (times <= end) & np.isfinite(values)
    if m.sum() < 4:
        return 0.0, 0.0
    x = times[m] - times[m][0]
    y = values[m]
    a, b = np.polyfit(x, y, 1)
    fit = a * x + b
    ss_res = float(np.sum((y - fit) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return float(a), r2


def fmt_time(t: float | None) -> str:
    """HH:MM:SS UTC for summaries."""
    if t is None:
        return "?"
    import time as _time

    return _time.strftime("%H:%M:%S", _time.gmtime(t))


def fmt_delta(seconds: float) -> str:
    """'90 s before', '4 min after'."""
    s = abs(seconds)
    if s < 1:
        return "0 s before"
    word = "before" if seconds > 0 else "after"
    if s < 120:
        return f"{s:.0f} s {word}"
    return f"{s / 60:.0f} min {word}"


def fmt_ratio(r: float) -> str:
    """'3.2x', or 'from zero' when the baseline was zero."""
    if not np.isfinite(r):
        return "from zero"
    return f"{r:.1f}x"

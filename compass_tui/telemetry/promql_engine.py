"""PromQL evaluation over a whole step grid at once, with Prometheus 2.42's numbers.

Every intermediate instant vector is a matrix: one row per series, one column per step, with
a presence mask beside the values (absent is not NaN: NaN is a legal sample value). Range
functions find each step's window with one ``searchsorted`` over all series at once: series
``i`` is shifted by ``i * span`` on a shared time axis, so windows never cross series.
Times are integer milliseconds, as in Prometheus, so window edges compare exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from compass_tui.telemetry.promql_parser import (
    COMPARISON_OPS,
    SET_OPS,
    AggregateExpr,
    BinaryExpr,
    Call,
    Matcher,
    MatrixSelector,
    Node,
    NumberLiteral,
    ParenExpr,
    PromQLError,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorMatching,
    VectorSelector,
)

LOOKBACK_MS = 300_000  # Prometheus's default --query.lookback-delta
DEFAULT_SUBQUERY_STEP_MS = 60_000  # the default global evaluation_interval
_NAME_DROPPING_OPS = {"+", "-", "*", "/", "%", "^"}  # atan2 and comparisons keep __name__
_GATHER_BUDGET = 4_000_000  # elements per chunk when a function needs every sample of a window
_CHUNK_CELLS = 200_000  # series x steps per block for range functions


class SeriesSource(Protocol):
    """Where the evaluator reads raw samples."""

    def select(
        self, matchers: list[Matcher], start: float, end: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """Raw samples of every series matching ALL matchers (the metric name arrives as a
        ``__name__`` matcher); labels include ``__name__``; t (unix seconds, ascending) within
        [start, end] inclusive; v float64."""
        ...


@dataclass
class Vec:
    """An instant vector over the step grid."""

    labels: list[dict[str, str]]
    vals: np.ndarray  # (series, steps) float64
    mask: np.ndarray  # (series, steps) bool: is there a sample at this step
    ts: np.ndarray | None = None  # (series, steps) int64 sample times, for timestamp()


@dataclass
class RangeArg:
    """A range vector argument: raw samples per series and the window to cut at each step."""

    labels: list[dict[str, str]]
    t: np.ndarray  # int64 ms of all series, concatenated
    v: np.ndarray
    offsets: np.ndarray  # (series + 1,) series i is t[offsets[i]:offsets[i + 1]]
    range_ms: int
    eval_ms: np.ndarray  # (steps,) the window's right edge at each step (offset and @ applied)
    step_ms: np.ndarray  # (steps,) the step timestamps themselves (what enh.Ts is in Prometheus)
    offset_ms: int
    matchers: list[Matcher] | None = None

    def rows(self, r0: int, r1: int) -> RangeArg:
        """The same argument restricted to series r0..r1-1."""
        a, b = int(self.offsets[r0]), int(self.offsets[r1])
        return RangeArg(self.labels[r0:r1], self.t[a:b], self.v[a:b], self.offsets[r0 : r1 + 1] - a,
                        self.range_ms, self.eval_ms, self.step_ms, self.offset_ms, self.matchers)

    def series(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.t[a:b], self.v[a:b]


def _concat(t_list: list[np.ndarray], v_list: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.zeros(len(t_list) + 1, dtype=np.int64)
    if t_list:
        np.cumsum([len(t) for t in t_list], out=offsets[1:])
        return np.concatenate(t_list), np.concatenate(v_list).astype(float, copy=False), offsets
    return np.zeros(0, np.int64), np.zeros(0), offsets


@dataclass
class Windows:
    flat_t: np.ndarray
    flat_v: np.ndarray
    lo: np.ndarray  # (series, steps) first index in the window
    hi: np.ndarray  # (series, steps) one past the last index
    starts: np.ndarray  # (series,) index of each series' first sample in the flat arrays

    @property
    def count(self) -> np.ndarray:
        return self.hi - self.lo


def _windows(flat_t: np.ndarray, flat_v: np.ndarray, offsets: np.ndarray, right: np.ndarray,
             range_ms: int) -> Windows:
    """Index windows [right - range, right] (closed on both ends, as in Prometheus 2.x)."""
    m, n = len(offsets) - 1, len(right)
    starts = offsets[:-1]
    if m == 0:
        z = np.zeros((0, n), np.int64)
        return Windows(flat_t, flat_v, z, z, starts)
    lens = np.diff(offsets)
    left = right - range_ms
    base = int(left.min())
    top = int(right.max())
    if len(flat_t):
        base = min(base, int(flat_t.min()))
        top = max(top, int(flat_t.max()))
    span = top - base + 1
    shift = np.arange(m, dtype=np.int64) * span
    key = flat_t - base + np.repeat(shift, lens)
    hi = np.searchsorted(key, ((right - base)[None, :] + shift[:, None]).ravel(), "right").reshape(m, n)
    lo = np.searchsorted(key, ((left - base)[None, :] + shift[:, None]).ravel(), "left").reshape(m, n)
    return Windows(flat_t, flat_v, lo, hi, starts)


def _first_in_series(w: Windows) -> np.ndarray:
    """Boolean per flat index: is this the first sample of its series."""
    first = np.zeros(len(w.flat_t), bool)
    first[w.starts[w.starts < len(w.flat_t)]] = True
    return first


def _gather_reduce(w: Windows, fn, min_count: int = 1, extra=None) -> tuple[np.ndarray, np.ndarray]:
    """Apply fn(vals[r, n, W], times[r, n, W], valid[r, n, W], count[r, n], rows) to every window,
    in row chunks that keep memory bounded; returns (values, mask)."""
    count = w.count
    m, n = count.shape
    out = np.full((m, n), np.nan)
    mask = count >= min_count
    if m == 0 or not mask.any():
        return out, mask
    width = int(count.max())
    rows_per_chunk = max(1, _GATHER_BUDGET // max(1, n * width))
    offs = np.arange(width)
    last_index = max(len(w.flat_v) - 1, 0)
    for r0 in range(0, m, rows_per_chunk):
        r1 = min(m, r0 + rows_per_chunk)
        lo = w.lo[r0:r1]
        cnt = count[r0:r1]
        idx = lo[:, :, None] + offs
        valid = offs < cnt[:, :, None]
        np.minimum(idx, last_index, out=idx)
        vals = w.flat_v[idx]
        times = w.flat_t[idx]
        with np.errstate(all="ignore"):
            out[r0:r1] = fn(vals, times, valid, cnt, slice(r0, r1))
    return out, mask


# ------------------------------------------------------------------------ range functions


def _extrapolated_rate(a: RangeArg, is_counter: bool, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus's extrapolatedRate (rate, increase, delta), vectorised over series and steps."""
    w = _windows(a.t, a.v, a.offsets, a.eval_ms, a.range_ms)
    count = w.count
    mask = count >= 2
    if not mask.any():
        return np.full(count.shape, np.nan), mask
    first = np.where(mask, w.lo, 0)
    last = np.where(mask, w.hi - 1, 0)
    fv, lv = w.flat_v[first], w.flat_v[last]
    with np.errstate(all="ignore"):
        result = lv - fv
        if is_counter:
            v = w.flat_v
            corr = np.zeros(len(v))
            corr[1:] = np.where(v[1:] < v[:-1], v[:-1], 0.0)
            corr[_first_in_series(w)] = 0.0
            # Adding 0.0 leaves a float unchanged, so windows without resets get exactly 0.
            cum = np.cumsum(corr)
            result = result + (cum[last] - cum[first])
        ft, lt = w.flat_t[first], w.flat_t[last]
        range_start = (a.step_ms - a.offset_ms - a.range_ms)[None, :]
        range_end = (a.step_ms - a.offset_ms)[None, :]
        dur_start = (ft - range_start) / 1000.0
        dur_end = (range_end - lt) / 1000.0
        sampled = (lt - ft) / 1000.0
        avg = sampled / (count - 1)
        if is_counter:
            to_zero = sampled * (fv / result)
            use_zero = (result > 0) & (fv >= 0) & (to_zero < dur_start)
            dur_start = np.where(use_zero, to_zero, dur_start)
        threshold = avg * 1.1
        interval = sampled + np.where(dur_start < threshold, dur_start, avg / 2)
        interval = interval + np.where(dur_end < threshold, dur_end, avg / 2)
        factor = interval / sampled
        if is_rate:
            factor = factor / (a.range_ms / 1000.0)
        result = result * factor
    return result, mask


def _instant_value(a: RangeArg, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus's instantValue (irate, idelta): the last two samples of the window."""
    w = _windows(a.t, a.v, a.offsets, a.eval_ms, a.range_ms)
    mask = w.count >= 2
    if not mask.any():
        return np.full(mask.shape, np.nan), mask
    last = np.where(mask, w.hi - 1, 1)
    prev = last - 1
    lv, pv = w.flat_v[last], w.flat_v[prev]
    with np.errstate(all="ignore"):
        if is_rate:
            result = np.where(lv < pv, lv, lv - pv)
            interval = w.flat_t[last] - w.flat_t[prev]
            mask = mask & (interval != 0)
            result = result / (interval / 1000.0)
        else:
            result = lv - pv
    return result, mask


def _count_transitions(a: RangeArg, kind: str) -> tuple[np.ndarray, np.ndarray]:
    w = _windows(a.t, a.v, a.offsets, a.eval_ms, a.range_ms)
    v = w.flat_v
    hit = np.zeros(len(v), np.int64)
    if len(v) > 1:
        cur, prev = v[1:], v[:-1]
        if kind == "changes":
            hit[1:] = (cur != prev) & ~(np.isnan(cur) & np.isnan(prev))
        else:
            hit[1:] = cur < prev
        hit[_first_in_series(w)] = 0
    cum = np.cumsum(hit)
    mask = w.count >= 1
    first = np.where(mask, w.lo, 0)
    last = np.where(mask, w.hi - 1, 0)
    if not len(v):
        return np.zeros(mask.shape), mask
    return (cum[last] - cum[first]).astype(float), mask


def _incremental_mean(vals, times, valid, cnt, rows):
    """Prometheus 2.42's avg_over_time: mean += v/count - mean/count, in sample order, with
    its rules for infinities (a sum would overflow where this does not)."""
    mean = np.zeros(cnt.shape)
    comp = np.zeros(cnt.shape)  # Kahan-Neumaier compensation
    for i in range(vals.shape[2]):
        live = i < cnt
        v = vals[:, :, i]
        count = float(i + 1)
        inf_mean = np.isinf(mean)
        skip = inf_mean & ((np.isinf(v) & ((mean > 0) == (v > 0))) | (~np.isinf(v) & ~np.isnan(v)))
        inc = v / count - mean / count
        t = mean + inc
        c = np.where(np.abs(mean) >= np.abs(inc), (mean - t) + inc, (inc - t) + mean)
        upd = live & ~skip
        mean = np.where(upd, t, mean)
        comp = np.where(upd, comp + c, comp)
    return np.where(np.isinf(mean), mean, mean + comp)


def _window_reduce(ufunc: np.ufunc, w: Windows) -> np.ndarray:
    """ufunc folded over every window in sample order, in one reduceat pass: the windows'
    [lo, hi) bounds interleaved, every other result kept (empty windows give junk, masked)."""
    m, n = w.lo.shape
    if m == 0:
        return np.zeros((0, n))
    padded = np.append(w.flat_v, 0.0)  # reduceat needs every index inside the array
    idx = np.empty(2 * m * n, dtype=np.int64)
    idx[0::2] = w.lo.ravel()
    idx[1::2] = w.hi.ravel()
    return ufunc.reduceat(padded, idx)[0::2].reshape(m, n)


def _variance(vals, valid, cnt):
    mean = np.where(valid, vals, 0.0).sum(axis=2) / cnt
    dev = np.where(valid, (vals - mean[:, :, None]) ** 2, 0.0).sum(axis=2) / cnt
    # Prometheus's running (Welford) variance is exactly 0 for a constant window.
    lo = np.fmin.reduce(np.where(valid, vals, np.nan), axis=2)
    hi = np.fmax.reduce(np.where(valid, vals, np.nan), axis=2)
    no_nan = ~np.any(valid & np.isnan(vals), axis=2)
    return np.where((lo == hi) & np.isfinite(lo) & no_nan, 0.0, dev)


def _stdvar_fn(vals, times, valid, cnt, rows):
    return _variance(vals, valid, cnt)


def _stddev_fn(vals, times, valid, cnt, rows):
    return np.sqrt(_variance(vals, valid, cnt))


def _sort_nan_first(vals: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Valid values sorted along axis with NaN first (Prometheus's vectorByValueHeap order),
    invalid entries (+Inf) last."""
    key = np.where(valid, np.where(np.isnan(vals), -np.inf, vals), np.inf)
    order = np.argsort(key, axis=axis, kind="stable")
    return np.take_along_axis(np.where(valid, vals, np.inf), order, axis=axis)


def _quantile_sorted(sorted_vals: np.ndarray, cnt: np.ndarray, q: np.ndarray, axis: int) -> np.ndarray:
    """Prometheus's quantile() over values sorted along ``axis`` with ``cnt`` valid leading entries."""
    n = cnt.astype(float)
    rank = q * (n - 1)
    lower = np.maximum(0, np.floor(rank))
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)
    top = np.maximum(n - 1, 0)
    li = np.clip(np.nan_to_num(lower), 0, top).astype(np.int64)
    ui = np.clip(np.nan_to_num(upper), 0, top).astype(np.int64)
    lv = np.take_along_axis(sorted_vals, np.expand_dims(li, axis), axis).squeeze(axis)
    uv = np.take_along_axis(sorted_vals, np.expand_dims(ui, axis), axis).squeeze(axis)
    res = lv * (1 - weight) + uv * weight
    res = np.where(q < 0, -np.inf, res)
    res = np.where(q > 1, np.inf, res)
    return np.where(np.isnan(q), np.nan, res)


def _linear_regression(vals, times, valid, cnt, intercept_ms):
    """Prometheus's linearRegression: (slope, intercept) at intercept_ms (broadcastable)."""
    x = np.where(valid, (times - intercept_ms) / 1000.0, 0.0)
    y = np.where(valid, vals, 0.0)
    n = cnt.astype(float)
    sum_x, sum_y = x.sum(axis=2), y.sum(axis=2)
    sum_xy, sum_x2 = (x * y).sum(axis=2), (x * x).sum(axis=2)
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x
    intercept = sum_y / n - slope * sum_x / n
    first = vals[:, :, :1]
    const = np.all(~valid | (vals == first), axis=2)
    first = first[:, :, 0]
    slope = np.where(const, np.where(np.isinf(first), np.nan, 0.0), slope)
    intercept = np.where(const, np.where(np.isinf(first), np.nan, first), intercept)
    return slope, intercept


# ---------------------------------------------------------------- labels, arithmetic, matching


def _key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


def _drop_name(labels: dict[str, str]) -> dict[str, str]:
    if "__name__" not in labels:
        return labels
    out = dict(labels)
    del out["__name__"]
    return out


def _merge(vec: Vec, strict: bool) -> Vec:
    """Rows with equal label sets become one; two samples at one step for one label set
    (or, if strict, any repeat, as Prometheus checks after dropping metric names) fail."""
    groups: dict[tuple, list[int]] = {}
    for i, lab in enumerate(vec.labels):
        groups.setdefault(_key(lab), []).append(i)
    if len(groups) == len(vec.labels):
        return vec
    keep: list[int] = []
    vals, mask = vec.vals.copy(), vec.mask.copy()
    ts = vec.ts.copy() if vec.ts is not None else None
    for rows in groups.values():
        head = rows[0]
        keep.append(head)
        if len(rows) == 1:
            continue
        if strict or (vec.mask[rows].sum(axis=0) > 1).any():
            raise PromQLError("vector cannot contain metrics with the same labelset")
        for r in rows[1:]:
            sel = vec.mask[r]
            vals[head, sel] = vec.vals[r, sel]
            mask[head, sel] = True
            if ts is not None:
                ts[head, sel] = vec.ts[r, sel]  # type: ignore[index]
    keep.sort()
    return Vec([vec.labels[i] for i in keep], vals[keep], mask[keep], ts[keep] if ts is not None else None)


def _arith(op: str, a, b):
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == ">":
            return a > b
        if op == "<":
            return a < b
        if op == ">=":
            return a >= b
        if op == "<=":
            return a <= b
    raise PromQLError(f"operator {op!r} not allowed here")


def _signature_fn(matching: VectorMatching):
    names = tuple(matching.labels)
    if matching.on:
        return lambda lab: tuple(lab.get(n, "") for n in names)
    drop = set(names) | {"__name__"}
    return lambda lab: tuple(sorted((k, v) for k, v in lab.items() if k not in drop))


def _go_expand(template: str, m: re.Match[str]) -> str:
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            j = template.find("}", i + 2)
            name = template[i + 2 : j] if j > 0 else ""
            if j < 0 or not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                out.append(c)
                i += 1
                continue
            i = j + 1
        else:
            mm = re.match(r"[A-Za-z0-9_]+", template[i + 1 :])
            if not mm:
                out.append(c)
                i += 1
                continue
            name = mm.group()
            i += 1 + len(name)
        if name.isdigit():
            k = int(name)
            if k <= (m.re.groups):
                out.append(m.group(k) or "")
        else:
            try:
                out.append(m.group(name) or "")
            except IndexError:
                pass  # Go expands an unknown group name to the empty string
    return "".join(out)


_FLOAT_GO = {math.inf: "+Inf", -math.inf: "-Inf"}


def format_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64), as count_values writes label values."""
    if math.isnan(v):
        return "NaN"
    if v in _FLOAT_GO:
        return _FLOAT_GO[v]
    return np.format_float_positional(v, trim="-")


# ------------------------------------------------------------------------------ evaluator


class Evaluator:
    """Evaluates an AST at every timestamp of a grid (integer milliseconds)."""

    def __init__(self, source: SeriesSource, grid_ms: np.ndarray, query_start_ms: int, query_end_ms: int):
        self.source = source
        self.grid = grid_ms
        self.n = len(grid_ms)
        self.query_start_ms = query_start_ms
        self.query_end_ms = query_end_ms

    # ---- data access
    def _at_ms(self, at) -> int | None:
        if at is None:
            return None
        if at == "start":
            return self.query_start_ms
        if at == "end":
            return self.query_end_ms
        return int(round(float(at) * 1000))

    def _eval_times(self, offset_ms: int, at) -> np.ndarray:
        at_ms = self._at_ms(at)
        base = self.grid if at_ms is None else np.full(self.n, at_ms, dtype=np.int64)
        return base - offset_ms

    def _fetch(self, matchers: list[Matcher], lo_ms: int, hi_ms: int):
        """(labels, flat int64 ms times, flat values, offsets) of the matching series, sorted by
        label set as Prometheus's series sets are (the order decides topk ties)."""
        raw = self.source.select(matchers, lo_ms / 1000.0, hi_ms / 1000.0)
        raw = sorted(raw, key=lambda item: _key(item[0]))
        labels = [dict(lab) for lab, _, _ in raw]
        flat_s, flat_v, offsets = _concat([np.asarray(t, dtype=np.float64) for _, t, _ in raw],
                                          [np.asarray(v, dtype=np.float64) for _, _, v in raw])
        flat_t = np.round(flat_s * 1000.0).astype(np.int64)
        if len(flat_t) and (flat_t.min() < lo_ms or flat_t.max() > hi_ms):
            # A source that returned more than asked: cut each series to the window.
            keep = (flat_t >= lo_ms) & (flat_t <= hi_ms)
            counts = np.add.reduceat(keep.astype(np.int64), offsets[:-1]) if len(labels) else np.zeros(0)
            counts = np.where(np.diff(offsets) > 0, counts, 0)
            offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
            flat_t, flat_v = flat_t[keep], flat_v[keep]
        return labels, flat_t, flat_v, offsets

    def range_arg(self, node: Node) -> RangeArg:
        node = _unparen(node)
        if isinstance(node, MatrixSelector):
            vs = node.selector
            right = self._eval_times(vs.offset_ms, vs.at)
            labels, ts, vals, offsets = self._fetch(vs.matchers, int(right.min()) - node.range_ms, int(right.max()))
            step = self.grid if vs.at is None else np.full(self.n, self._at_ms(vs.at), dtype=np.int64)
            return RangeArg(labels, ts, vals, offsets, node.range_ms, right, step, vs.offset_ms, vs.matchers)
        if isinstance(node, SubqueryExpr):
            return self._subquery(node)
        raise PromQLError(f"expected a range vector, got {node.type}", node.pos)

    def _subquery(self, node: SubqueryExpr) -> RangeArg:
        right = self._eval_times(node.offset_ms, node.at)
        step = node.step_ms or DEFAULT_SUBQUERY_STEP_MS
        lo = int(right.min()) - node.range_ms
        # The subquery grid is aligned to multiples of its step, as Prometheus does.
        start = (lo // step) * step
        if start < lo:
            start += step
        end = int(right.max())
        grid = np.arange(start, end + 1, step, dtype=np.int64)
        labels: list[dict[str, str]] = []
        ts: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        if len(grid):
            inner = Evaluator(self.source, grid, self.query_start_ms, self.query_end_ms)
            value = inner.eval(node.expr)
            if isinstance(value, np.ndarray):
                value = Vec([{}], value[None, :], np.ones((1, len(grid)), bool))
            for i, lab in enumerate(value.labels):
                sel = value.mask[i]
                if sel.any():
                    labels.append(lab)
                    ts.append(grid[sel])
                    vals.append(value.vals[i, sel])
        stepv = self.grid if node.at is None else np.full(self.n, self._at_ms(node.at), dtype=np.int64)
        flat_t, flat_v, offsets = _concat(ts, vals)
        return RangeArg(labels, flat_t, flat_v, offsets, node.range_ms, right, stepv, node.offset_ms, None)

    # ---- dispatch
    def eval(self, node: Node):
        """Evaluate to a Vec, a scalar (ndarray of shape (steps,)) or a str."""
        if isinstance(node, NumberLiteral):
            return np.full(self.n, node.value)
        if isinstance(node, StringLiteral):
            return node.value
        if isinstance(node, ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, VectorSelector):
            return self.vector_selector(node)
        if isinstance(node, UnaryExpr):
            val = self.eval(node.expr)
            if isinstance(val, np.ndarray):
                return -val
            return _merge(Vec([_drop_name(lab) for lab in val.labels], -val.vals, val.mask), strict=True)
        if isinstance(node, BinaryExpr):
            return self.binary(node)
        if isinstance(node, AggregateExpr):
            return self.aggregate(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, (MatrixSelector, SubqueryExpr)):
            raise PromQLError("a range vector cannot be used here", node.pos)
        raise PromQLError(f"cannot evaluate {type(node).__name__}", node.pos)

    def vector_selector(self, vs: VectorSelector) -> Vec:
        right = self._eval_times(vs.offset_ms, vs.at)
        labels, ts, vals, offsets = self._fetch(vs.matchers, int(right.min()) - LOOKBACK_MS, int(right.max()))
        w = _windows(ts, vals, offsets, right, LOOKBACK_MS)
        mask = w.hi > w.lo
        last = np.where(mask, w.hi - 1, 0)
        if len(w.flat_v):
            v, t = w.flat_v[last], w.flat_t[last]
        else:
            v, t = np.zeros(mask.shape), np.zeros(mask.shape, np.int64)
        return Vec(labels, v, mask, t)

    # ---- binary operators
    def binary(self, node: BinaryExpr):
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        op = node.op
        l_scalar, r_scalar = isinstance(lhs, np.ndarray), isinstance(rhs, np.ndarray)
        if l_scalar and r_scalar:
            res = _arith(op, lhs, rhs)
            return res.astype(float) if op in COMPARISON_OPS else res
        if l_scalar or r_scalar:
            vec, sc = (rhs, lhs) if l_scalar else (lhs, rhs)
            a, b = (sc[None, :], vec.vals) if l_scalar else (vec.vals, sc[None, :])
            res = _arith(op, a, b)
            if op in COMPARISON_OPS:
                if node.return_bool:
                    return _merge(Vec([_drop_name(x) for x in vec.labels], res.astype(float), vec.mask.copy()),
                                  strict=False)
                # A filter keeps the vector's own value, whichever side it is on.
                return Vec(vec.labels, vec.vals, vec.mask & res, vec.ts)
            labels = [_drop_name(x) for x in vec.labels] if op in _NAME_DROPPING_OPS else vec.labels
            return _merge(Vec(labels, res, vec.mask.copy()), strict=False)
        assert node.matching is not None
        if op in SET_OPS:
            return self.set_op(op, lhs, rhs, node.matching)
        return self.vector_binop(node, lhs, rhs)

    def set_op(self, op: str, lhs: Vec, rhs: Vec, matching: VectorMatching) -> Vec:
        sig = _signature_fn(matching)
        def presence(vec: Vec) -> dict[tuple, np.ndarray]:
            out: dict[tuple, np.ndarray] = {}
            for i, lab in enumerate(vec.labels):
                s = sig(lab)
                out[s] = out[s] | vec.mask[i] if s in out else vec.mask[i].copy()
            return out
        def other_side(vec: Vec, pres: dict[tuple, np.ndarray]) -> np.ndarray:
            rows = np.zeros(vec.mask.shape, bool)
            for i, lab in enumerate(vec.labels):
                hit = pres.get(sig(lab))
                if hit is not None:
                    rows[i] = hit
            return rows

        if op in ("and", "unless"):
            rows = other_side(lhs, presence(rhs))
            mask = lhs.mask & rows if op == "and" else lhs.mask & ~rows
            return Vec(lhs.labels, lhs.vals, mask, lhs.ts)
        rmask = rhs.mask & ~other_side(rhs, presence(lhs))
        out = Vec(lhs.labels + rhs.labels, np.concatenate([lhs.vals, rhs.vals]),
                  np.concatenate([lhs.mask, rmask]))
        return _merge(out, strict=False)

    def vector_binop(self, node: BinaryExpr, lhs: Vec, rhs: Vec) -> Vec:
        matching = node.matching
        assert matching is not None
        op = node.op
        sig = _signature_fn(matching)
        one_to_many = matching.card == "one-to-many"
        many, one = (rhs, lhs) if one_to_many else (lhs, rhs)
        one_rows: dict[tuple, list[int]] = {}
        for j, lab in enumerate(one.labels):
            one_rows.setdefault(sig(lab), []).append(j)
        # Prometheus checks the "one" side only at steps where the other side has samples.
        many_any = many.mask.any(axis=0)
        for s, rows in one_rows.items():
            if len(rows) > 1 and ((one.mask[rows].sum(axis=0) > 1) & many_any).any():
                side = "left" if one_to_many else "right"
                group = dict(zip(matching.labels, s)) if matching.on else dict(s)
                raise PromQLError(
                    f"found duplicate series for the match group {group} on the {side} hand-side of the "
                    "operation; many-to-many matching not allowed: matching labels must be unique on one side"
                )
        li: list[int] = []
        rj: list[int] = []
        out_labels: list[dict[str, str]] = []
        drop = op in _NAME_DROPPING_OPS or node.return_bool
        many_sigs: dict[tuple, list[int]] = {}
        for i, lab in enumerate(many.labels):
            s = sig(lab)
            rows = one_rows.get(s)
            if not rows:
                continue
            many_sigs.setdefault(s, []).append(i)
            for j in rows:
                li.append(i)
                rj.append(j)
                out_labels.append(self._result_metric(lab, one.labels[j], op, matching, drop))
        if not li:
            return Vec([], np.zeros((0, self.n)), np.zeros((0, self.n), bool))
        ia, ja = np.array(li), np.array(rj)
        mask = many.mask[ia] & one.mask[ja]
        if matching.card == "one-to-one":
            for s, rows in many_sigs.items():
                if len(rows) > 1:
                    any_one = one.mask[one_rows[s]].any(axis=0)
                    if ((many.mask[rows] & any_one).sum(axis=0) > 1).any():
                        raise PromQLError("multiple matches for labels: many-to-one matching must be explicit "
                                          "(group_left/group_right)")
        left_v, right_v = many.vals[ia], one.vals[ja]
        if one_to_many:
            left_v, right_v = right_v, left_v
        res = _arith(op, left_v, right_v)
        if op in COMPARISON_OPS:
            if node.return_bool:
                vals = res.astype(float)
            else:
                vals = left_v
                mask = mask & res
        else:
            vals = res
        try:
            return _merge(Vec(out_labels, vals, mask), strict=False)
        except PromQLError:
            raise PromQLError("multiple matches for labels: grouping labels must ensure unique matches") from None

    @staticmethod
    def _result_metric(lab, other, op, matching: VectorMatching, drop: bool) -> dict[str, str]:
        out = dict(lab)
        if drop:
            out.pop("__name__", None)
        if matching.card == "one-to-one":
            if matching.on:
                out = {k: v for k, v in out.items() if k in matching.labels}
            else:
                for name in matching.labels:
                    out.pop(name, None)
        for name in matching.include:
            if other.get(name):
                out[name] = other[name]
            else:
                out.pop(name, None)
        return out

    # ---- aggregation
    def aggregate(self, node: AggregateExpr) -> Vec:
        vec: Vec = self.eval(node.expr)
        op = node.op
        param = self.eval(node.param) if node.param is not None else None
        grouping = node.grouping
        if node.without:
            drop = set(grouping) | {"__name__"}
            def group_labels(lab):
                return {k: v for k, v in lab.items() if k not in drop}
        else:
            keep = set(grouping)
            def group_labels(lab):
                return {k: v for k, v in lab.items() if k in keep}
        if op == "count_values":
            return self._count_values(vec, str(param), group_labels)
        gids: dict[tuple, int] = {}
        out_labels: list[dict[str, str]] = []
        gid = np.empty(len(vec.labels), np.int64)
        for i, lab in enumerate(vec.labels):
            g = group_labels(lab)
            k = _key(g)
            if k not in gids:
                gids[k] = len(out_labels)
                out_labels.append(g)
            gid[i] = gids[k]
        ng = len(out_labels)
        if op in ("topk", "bottomk"):
            return self._topk(vec, gid, ng, param, op == "topk")
        if ng == 0:
            return Vec([], np.zeros((0, self.n)), np.zeros((0, self.n), bool))
        order = np.argsort(gid, kind="stable")
        sorted_gid = gid[order]
        starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
        vals, mask = vec.vals[order], vec.mask[order]
        count = np.add.reduceat(mask.astype(np.int64), starts, axis=0)
        present = count > 0
        with np.errstate(all="ignore"):
            if op == "sum":
                res = np.add.reduceat(np.where(mask, vals, 0.0), starts, axis=0)
            elif op == "avg":
                res = np.add.reduceat(np.where(mask, vals, 0.0), starts, axis=0) / count
            elif op == "count":
                res = count.astype(float)
            elif op == "group":
                res = np.ones(count.shape)
            elif op == "min":
                res = np.fmin.reduceat(np.where(mask, vals, np.nan), starts, axis=0)
            elif op == "max":
                res = np.fmax.reduceat(np.where(mask, vals, np.nan), starts, axis=0)
            elif op in ("stddev", "stdvar"):
                mean = np.add.reduceat(np.where(mask, vals, 0.0), starts, axis=0) / count
                dev = np.where(mask, (vals - mean[sorted_gid]) ** 2, 0.0)
                var = np.add.reduceat(dev, starts, axis=0) / count
                lo = np.fmin.reduceat(np.where(mask, vals, np.nan), starts, axis=0)
                hi = np.fmax.reduceat(np.where(mask, vals, np.nan), starts, axis=0)
                no_nan = np.add.reduceat(mask & np.isnan(vals), starts, axis=0) == 0
                var = np.where((lo == hi) & np.isfinite(lo) & no_nan, 0.0, var)
                # Prometheus seeds the group with its first sample: one sample (even NaN) gives 0.
                var = np.where(count == 1, 0.0, var)
                res = np.sqrt(var) if op == "stddev" else var
            elif op == "quantile":
                res = np.full((ng, self.n), np.nan)
                bounds = list(starts) + [len(order)]
                for g in range(ng):
                    rows = slice(bounds[g], bounds[g + 1])
                    block = _sort_nan_first(vals[rows], mask[rows], axis=0)
                    res[g] = _quantile_sorted(block, np.maximum(count[g], 1), param, axis=0)
            else:  # pragma: no cover - the parser only admits the operators above
                raise PromQLError(f"unknown aggregation {op!r}", node.pos)
        return Vec(out_labels, res, present)

    def _topk(self, vec: Vec, gid: np.ndarray, ng: int, param, top: bool) -> Vec:
        k = np.asarray(param, dtype=float)
        bad = ~(np.abs(k) < 2.0**63)
        if bad.any() and len(vec.labels):
            raise PromQLError(f"Scalar value {format_float(float(k[bad][0]))} overflows int64")
        k = np.clip(np.trunc(np.nan_to_num(k)), -1, len(vec.labels) + 1).astype(np.int64)
        selected = np.zeros(vec.mask.shape, bool)
        cols = np.arange(self.n)
        for g in range(ng):
            rows = np.flatnonzero(gid == g)
            vals, mask = vec.vals[rows], vec.mask[rows]
            # Rank by value; NaN ranks last in both topk and bottomk; absent rows after all.
            key = np.where(np.isnan(vals), np.inf, -vals if top else vals)
            key = np.where(mask, key, np.nan)
            order = np.argsort(key, axis=0, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(len(rows))[:, None].repeat(self.n, axis=1), axis=0)
            selected[rows] = mask & (rank < k[None, :])
            # Where the k-th and (k+1)-th values tie, which series Prometheus keeps depends on
            # its heap: replay the heap for those steps only.
            count = mask.sum(axis=0)
            kk = np.clip(k, 1, None)
            check = (count > k) & (k >= 1)
            if check.any():
                sk = np.take_along_axis(key, order, axis=0)
                kth = sk[np.minimum(kk - 1, len(rows) - 1), cols]
                nxt = sk[np.minimum(kk, len(rows) - 1), cols]
                for c in np.flatnonzero(check & (kth == nxt)):
                    keep = _heap_select(vals[:, c], mask[:, c], int(k[c]), top)
                    selected[rows, c] = False
                    selected[rows[keep], c] = True
        return Vec(vec.labels, vec.vals, selected, vec.ts)

    def _count_values(self, vec: Vec, label: str, group_labels) -> Vec:
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
            raise PromQLError(f"invalid label name {label!r} in count_values")
        out: dict[tuple, tuple[dict[str, str], np.ndarray]] = {}
        for i, lab in enumerate(vec.labels):
            g = group_labels(lab)
            for c in np.flatnonzero(vec.mask[i]):
                lbl = dict(g)
                lbl[label] = format_float(float(vec.vals[i, c]))
                k = _key(lbl)
                if k not in out:
                    out[k] = (lbl, np.zeros(self.n))
                out[k][1][c] += 1
        labels = [lab for lab, _ in out.values()]
        counts = np.array([c for _, c in out.values()]).reshape(len(labels), self.n)
        return Vec(labels, counts, counts > 0)

    # ---- functions
    def call(self, node: Call):
        name = node.func
        args = node.args
        if name in _RANGE_FUNCS:
            if name == "quantile_over_time":
                q = self.eval(args[0])
                a = self.range_arg(args[1])
            else:
                a = self.range_arg(args[0])
            if name == "absent_over_time":
                return self._absent_over_time(a, args[0])
            vals, mask = self._range_func(name, a, args)
            labels = a.labels if name == "last_over_time" else [_drop_name(x) for x in a.labels]
            return _merge(Vec(labels, vals, mask), strict=name != "last_over_time")
        if name == "time":
            return self.grid / 1000.0
        if name == "pi":
            return np.full(self.n, math.pi)
        if name == "vector":
            return Vec([{}], self.eval(args[0])[None, :].copy(), np.ones((1, self.n), bool))
        if name == "scalar":
            vec = self.eval(args[0])
            one = vec.mask.sum(axis=0) == 1
            idx = np.argmax(vec.mask, axis=0) if len(vec.labels) else np.zeros(self.n, np.int64)
            vals = vec.vals[idx, np.arange(self.n)] if len(vec.labels) else np.full(self.n, np.nan)
            return np.where(one, vals, np.nan)
        if name == "absent":
            vec = self.eval(args[0])
            present = vec.mask.any(axis=0)
            return Vec([_absent_labels(args[0])], np.ones((1, self.n)), ~present[None, :])
        if name == "histogram_quantile":
            return self._histogram_quantile(self.eval(args[0]), self.eval(args[1]))
        if name in ("label_replace", "label_join"):
            return self._label_func(name, self.eval(args[0]), [self.eval(a) for a in args[1:]])
        if name in ("sort", "sort_desc"):
            return self.eval(args[0])
        if name == "timestamp":
            inner = args[0]
            vec = self.eval(inner)
            if isinstance(inner, VectorSelector) and vec.ts is not None:
                vals = vec.ts / 1000.0
            else:
                vals = np.broadcast_to(self.grid / 1000.0, vec.vals.shape).copy()
            return _merge(Vec([_drop_name(x) for x in vec.labels], vals, vec.mask), strict=False)
        # Element-wise functions of one instant vector (and scalar parameters).
        if args:
            vec = self.eval(args[0])
        else:  # the date functions default to vector(time())
            vec = Vec([{}], (self.grid / 1000.0)[None, :], np.ones((1, self.n), bool))
        params = [self.eval(a) for a in args[1:]]
        with np.errstate(all="ignore"):
            vals, mask = self._elementwise(name, vec, params)
        return _merge(Vec([_drop_name(x) for x in vec.labels], vals, mask), strict=False)

    def _elementwise(self, name: str, vec: Vec, params: list) -> tuple[np.ndarray, np.ndarray]:
        v, mask = vec.vals, vec.mask
        simple = {
            "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "ln": np.log,
            "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt, "sgn": np.sign,
            "acos": np.arccos, "acosh": np.arccosh, "asin": np.arcsin, "asinh": np.arcsinh,
            "atan": np.arctan, "atanh": np.arctanh, "cos": np.cos, "cosh": np.cosh, "sin": np.sin,
            "sinh": np.sinh, "tan": np.tan, "tanh": np.tanh, "deg": np.degrees, "rad": np.radians,
        }  # fmt: skip
        if name in simple:
            return simple[name](v), mask
        if name == "round":
            to = params[0][None, :] if params else 1.0
            inv = 1.0 / to
            return np.floor(v * inv + 0.5) / inv, mask
        if name == "clamp":
            lo, hi = params[0][None, :], params[1][None, :]
            return np.maximum(lo, np.minimum(hi, v)), mask & ~(hi < lo)
        if name == "clamp_min":
            return np.maximum(v, params[0][None, :]), mask
        if name == "clamp_max":
            return np.minimum(v, params[0][None, :]), mask
        if name in _DATE_FUNCS:
            return _date_func(name, v), mask
        raise PromQLError(f"function {name!r} is not supported")

    def _range_func(self, name: str, a: RangeArg, args) -> tuple[np.ndarray, np.ndarray]:
        # Work on blocks of series that fit in cache: fresh 100 MB temporaries cost more in
        # page faults than the arithmetic itself.
        rows = max(1, _CHUNK_CELLS // max(1, self.n))
        if len(a.labels) <= rows:
            return self._range_func_block(name, a, args)
        vals, masks = [], []
        for r0 in range(0, len(a.labels), rows):
            v, m = self._range_func_block(name, a.rows(r0, min(r0 + rows, len(a.labels))), args)
            vals.append(v)
            masks.append(m)
        return np.vstack(vals), np.vstack(masks)

    def _range_func_block(self, name: str, a: RangeArg, args) -> tuple[np.ndarray, np.ndarray]:
        if name == "rate":
            return _extrapolated_rate(a, True, True)
        if name == "increase":
            return _extrapolated_rate(a, True, False)
        if name == "delta":
            return _extrapolated_rate(a, False, False)
        if name == "irate":
            return _instant_value(a, True)
        if name == "idelta":
            return _instant_value(a, False)
        if name in ("changes", "resets"):
            return _count_transitions(a, name)
        w = _windows(a.t, a.v, a.offsets, a.eval_ms, a.range_ms)
        count = w.count
        mask = count >= 1
        if name == "count_over_time":
            return count.astype(float), mask
        if name == "present_over_time":
            return np.ones(count.shape), mask
        if name == "last_over_time":
            last = np.where(mask, w.hi - 1, 0)
            return (w.flat_v[last] if len(w.flat_v) else np.zeros(count.shape)), mask
        if name == "sum_over_time":
            return _window_reduce(np.add, w), mask
        if name == "avg_over_time":
            with np.errstate(all="ignore"):
                avg = _window_reduce(np.add, w) / count
            odd = mask & ~np.isfinite(avg)
            if odd.any():
                # Infinities or an overflowing sum: Prometheus's running mean decides.
                avg = np.where(odd, _gather_reduce(w, _incremental_mean)[0], avg)
            return avg, mask
        if name == "min_over_time":
            return _window_reduce(np.fmin, w), mask  # NaN only when every sample is NaN
        if name == "max_over_time":
            return _window_reduce(np.fmax, w), mask
        if name == "stddev_over_time":
            return _gather_reduce(w, _stddev_fn)
        if name == "stdvar_over_time":
            return _gather_reduce(w, _stdvar_fn)
        if name == "quantile_over_time":
            q = self.eval(args[0])

            def quant(vals, times, valid, cnt, rows):
                s = _sort_nan_first(vals, valid, axis=2)
                return _quantile_sorted(s, np.maximum(cnt, 1), np.broadcast_to(q, cnt.shape), axis=2)

            return _gather_reduce(w, quant)
        if name == "deriv":
            def deriv(vals, times, valid, cnt, rows):
                return _linear_regression(vals, times, valid, cnt, times[:, :, :1])[0]

            return _gather_reduce(w, deriv, min_count=2)
        if name == "holt_winters":
            sf, tf = self.eval(args[1]), self.eval(args[2])
            for what, f in (("smoothing", sf), ("trend", tf)):
                if np.any((f <= 0) | (f >= 1)):
                    bad = float(f[(f <= 0) | (f >= 1)][0])
                    raise PromQLError(f"invalid {what} factor. Expected: 0 < {what[0]}f < 1, got: {bad:f}")

            def holt(vals, times, valid, cnt, rows):
                s1 = vals[:, :, 0]
                b = vals[:, :, 1] - vals[:, :, 0] if vals.shape[2] > 1 else np.zeros_like(s1)
                s0 = np.zeros_like(s1)
                for i in range(1, vals.shape[2]):
                    live = i < cnt
                    x = sf * vals[:, :, i]
                    nb = b if i == 1 else tf * (s1 - s0) + (1 - tf) * b
                    y = (1 - sf) * (s1 + nb)
                    s0, s1, b = np.where(live, s1, s0), np.where(live, x + y, s1), np.where(live, nb, b)
                return s1

            return _gather_reduce(w, holt, min_count=2)
        if name == "predict_linear":
            dur = self.eval(args[1])
            step = a.step_ms

            def predict(vals, times, valid, cnt, rows):
                slope, icpt = _linear_regression(vals, times, valid, cnt, step[None, :, None])
                return slope * dur[None, :] + icpt

            return _gather_reduce(w, predict, min_count=2)
        raise PromQLError(f"function {name!r} is not supported")

    def _absent_over_time(self, a: RangeArg, arg: Node) -> Vec:
        w = _windows(a.t, a.v, a.offsets, a.eval_ms, a.range_ms)
        present = (w.count > 0).any(axis=0) if len(a.labels) else np.zeros(self.n, bool)
        return Vec([_absent_labels(arg)], np.ones((1, self.n)), ~present[None, :])

    def _label_func(self, name: str, vec: Vec, params: list) -> Vec:
        name_re = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
        if name == "label_replace":
            dst, repl, src, regex = params
            if not name_re.match(dst):
                raise PromQLError(f"invalid destination label name in label_replace(): {dst!r}")
            try:
                rx = re.compile(r"(?:" + regex + r")\Z")
            except re.error as exc:
                raise PromQLError(f"invalid regular expression in label_replace(): {regex!r}: {exc}") from None
            labels = []
            for lab in vec.labels:
                m = rx.match(lab.get(src, ""))
                if m is None:
                    labels.append(lab)
                    continue
                out = dict(lab)
                value = _go_expand(repl, m)
                if value:
                    out[dst] = value
                else:
                    out.pop(dst, None)
                labels.append(out)
        else:
            dst, sep, *srcs = params
            if not name_re.match(dst):
                raise PromQLError(f"invalid destination label name in label_join(): {dst!r}")
            labels = []
            for lab in vec.labels:
                out = dict(lab)
                value = sep.join(lab.get(s, "") for s in srcs)
                if value:
                    out[dst] = value
                else:
                    out.pop(dst, None)
                labels.append(out)
        return _merge(Vec(labels, vec.vals, vec.mask, vec.ts), strict=False)

    def _histogram_quantile(self, q: np.ndarray, vec: Vec) -> Vec:
        groups: dict[tuple, list[tuple[float, int]]] = {}
        out_labels: dict[tuple, dict[str, str]] = {}
        for i, lab in enumerate(vec.labels):
            try:
                ub = float(lab.get("le", ""))
            except ValueError:
                continue  # no bucket label or a malformed one: Prometheus skips the series
            rest = {k: v for k, v in lab.items() if k != "le"}
            k = _key(rest)
            groups.setdefault(k, []).append((ub, i))
            out_labels[k] = _drop_name(rest)
        labels, rows_v, rows_m = [], [], []
        for k, members in groups.items():
            members.sort(key=lambda x: x[0])
            # Coalesce buckets with the same upper bound (le="1" and le="1.0").
            bounds: list[float] = []
            counts: list[np.ndarray] = []
            present: list[np.ndarray] = []
            for ub, i in members:
                c = np.where(vec.mask[i], vec.vals[i], 0.0)
                if bounds and bounds[-1] == ub:
                    counts[-1] = counts[-1] + c
                    present[-1] = present[-1] | vec.mask[i]
                else:
                    bounds.append(ub)
                    counts.append(c)
                    present.append(vec.mask[i].copy())
            labels.append(out_labels[k])
            res, any_present = _bucket_quantile(q, np.array(bounds), np.array(counts), np.array(present))
            rows_v.append(res)
            rows_m.append(any_present)
        if not labels:
            return Vec([], np.zeros((0, self.n)), np.zeros((0, self.n), bool))
        return _merge(Vec(labels, np.array(rows_v), np.array(rows_m)), strict=False)


def _bucket_quantile(q: np.ndarray, ub: np.ndarray, counts: np.ndarray, present: np.ndarray):
    """Prometheus's bucketQuantile for one histogram at every step (buckets sorted by ub)."""
    nb, n = counts.shape
    any_present = present.any(axis=0)
    with np.errstate(all="ignore"):
        # ensureMonotonic over the buckets present at each step
        mono = np.fmax.accumulate(np.where(present, counts, np.nan), axis=0)
        npresent = present.sum(axis=0)
        inf_ok = np.isinf(ub[-1]) & (ub[-1] > 0) & present[-1]
        obs = mono[-1]
        rank = q * obs
        idx = np.arange(nb)[:, None]
        # prev present bucket index for every row (-1 if none)
        pres_idx = np.where(present, idx, -1)
        prev_idx = np.maximum.accumulate(np.vstack([np.full((1, n), -1), pres_idx[:-1]]), axis=0)
        cand = present & (mono >= rank[None, :]) & (idx < nb - 1)
        has = cand.any(axis=0)
        b = np.where(has, np.argmax(cand, axis=0), nb - 1)
        cols = np.arange(n)
        prev_b = prev_idx[b, cols]
        end = ub[b]
        cnt_b = mono[b, cols]
        prev_c = np.where(prev_b >= 0, mono[np.maximum(prev_b, 0), cols], 0.0)
        start = np.where(prev_b >= 0, ub[np.maximum(prev_b, 0)], 0.0)
        interp = start + (end - start) * ((rank - prev_c) / (cnt_b - prev_c))
        # rank beyond every finite bucket: the upper bound of the last finite present bucket
        second_last = prev_idx[nb - 1, cols]
        res = np.where(has, interp, ub[np.maximum(second_last, 0)])
        res = np.where(has & (prev_b < 0) & (end <= 0), end, res)
        res = np.where((npresent < 2) | ~inf_ok | (obs == 0), np.nan, res)
        res = np.where(q < 0, -np.inf, res)
        res = np.where(q > 1, np.inf, res)
        res = np.where(np.isnan(q), np.nan, res)
    return res, any_present


def _heap_select(vals: np.ndarray, mask: np.ndarray, k: int, top: bool) -> list[int]:
    """The rows Prometheus 2.42's topk/bottomk heap holds after seeing the present rows in
    order (Go's container/heap; Less puts NaN first)."""
    def less(a: float, b: float) -> bool:
        if math.isnan(a):
            return True
        return a < b if top else a > b

    heap: list[tuple[float, int]] = []

    def up(j: int) -> None:
        while j > 0:
            i = (j - 1) // 2
            if not less(heap[j][0], heap[i][0]):
                break
            heap[i], heap[j] = heap[j], heap[i]
            j = i

    def down(i: int, n: int) -> None:
        while True:
            j1 = 2 * i + 1
            if j1 >= n:
                break
            j = j1
            if j1 + 1 < n and less(heap[j1 + 1][0], heap[j1][0]):
                j = j1 + 1
            if not less(heap[j][0], heap[i][0]):
                break
            heap[i], heap[j] = heap[j], heap[i]
            i = j

    for r in np.flatnonzero(mask):
        v = float(vals[r])
        if heap and len(heap) >= k:
            h = heap[0][0]
            better = (h < v) if top else (h > v)
            if not (better or math.isnan(h)):
                continue
            if k == 1:  # replaced in place
                heap[0] = (v, int(r))
                continue
            # heap.Pop: swap the root to the end, sift down, drop it
            last = len(heap) - 1
            heap[0], heap[last] = heap[last], heap[0]
            down(0, last)
            heap.pop()
        heap.append((v, int(r)))
        up(len(heap) - 1)
    return [r for _, r in heap]


def _absent_labels(arg: Node) -> dict[str, str]:
    arg = _unparen(arg)
    if isinstance(arg, MatrixSelector):
        arg = arg.selector
    if not isinstance(arg, VectorSelector):
        return {}
    out: dict[str, str] = {}
    dropped: set[str] = set()
    for m in arg.matchers:
        if m.name == "__name__":
            continue
        if m.op == "=" and m.name not in out:
            out[m.name] = m.value
        else:
            dropped.add(m.name)
    return {k: v for k, v in out.items() if k not in dropped and v}


def _unparen(node: Node) -> Node:
    while isinstance(node, ParenExpr):
        node = node.expr
    return node


_RANGE_FUNCS = {
    "rate", "increase", "delta", "irate", "idelta", "deriv", "predict_linear", "resets", "changes",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "present_over_time", "absent_over_time", "holt_winters",
}  # fmt: skip
_DATE_FUNCS = {"day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year"}


def _date_func(name: str, v: np.ndarray) -> np.ndarray:
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v)
    secs = np.floor(v[ok]).astype(np.int64)
    days = secs // 86400
    if name == "hour":
        out[ok] = (secs % 86400) // 3600
    elif name == "minute":
        out[ok] = (secs % 3600) // 60
    elif name == "day_of_week":
        out[ok] = (days + 4) % 7
    else:
        d = days.astype("datetime64[D]")
        years = d.astype("datetime64[Y]")
        months = d.astype("datetime64[M]")
        if name == "year":
            out[ok] = years.astype(np.int64) + 1970
        elif name == "month":
            out[ok] = months.astype(np.int64) % 12 + 1
        elif name == "day_of_month":
            out[ok] = (d - months).astype(np.int64) + 1
        elif name == "day_of_year":
            out[ok] = (d - years).astype(np.int64) + 1
        elif name == "days_in_month":
            out[ok] = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
    return out

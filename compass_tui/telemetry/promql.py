"""A local PromQL evaluator giving Prometheus 2.42's numbers over an incident bundle's metrics.

Usage::

    source = InMemorySeriesSource([({"__name__": "up", "job": "api"}, t, v), ...])
    series = evaluate_range('sum by (job) (rate(http_requests_total[5m]))', source, start, end, 30)
    value = evaluate_instant("scalar(sum(up))", source, t)

Semantics follow Prometheus 2.42: 5 minute lookback, range windows closed on both ends
([t - range, t]), extrapolated rate/increase/delta with counter-reset handling, metric names
dropped where Prometheus drops them, and its step grid (start, start + step, ... <= end) in
integer milliseconds. The parser lives in ``promql_parser``, the evaluator in ``promql_engine``.
"""

from __future__ import annotations

import numpy as np

from compass_tui.telemetry.backend import Series
from compass_tui.telemetry.promql_engine import Evaluator, SeriesSource, Vec
from compass_tui.telemetry.promql_parser import (
    MATRIX,
    STRING,
    Call,
    Matcher,
    Node,
    ParenExpr,
    PromQLError,
    VectorSelector,
    parse,
    walk,
)

__all__ = [
    "InMemorySeriesSource",
    "Matcher",
    "Node",
    "PromQLError",
    "SeriesSource",
    "evaluate_instant",
    "evaluate_range",
    "parse",
    "selectors",
]

MAX_POINTS = 11_000  # Prometheus refuses range queries with more points per series


class InMemorySeriesSource:
    """A SeriesSource over series held in memory, indexed by metric name."""

    def __init__(self, series: list[tuple[dict[str, str], np.ndarray, np.ndarray]]):
        self._series: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
        self._by_name: dict[str, list[int]] = {}
        for labels, t, v in series:
            t = np.asarray(t, dtype=np.float64)
            v = np.asarray(v, dtype=np.float64)
            if len(t) != len(v):
                raise ValueError(f"series {labels}: {len(t)} timestamps but {len(v)} values")
            if len(t) > 1 and np.any(np.diff(t) < 0):
                order = np.argsort(t, kind="stable")
                t, v = t[order], v[order]
            labels = {k: str(val) for k, val in labels.items() if val != ""}
            self._by_name.setdefault(labels.get("__name__", ""), []).append(len(self._series))
            self._series.append((labels, t, v))

    def select(
        self, matchers: list[Matcher], start: float, end: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """Samples of the series matching every matcher, cut to [start, end]."""
        candidates: range | list[int] = range(len(self._series))
        for m in matchers:
            if m.name == "__name__" and m.op == "=":
                candidates = self._by_name.get(m.value, [])
                break
        out = []
        for i in candidates:
            labels, t, v = self._series[i]
            if all(m.matches(labels.get(m.name, "")) for m in matchers):
                lo = int(np.searchsorted(t, start, "left"))
                hi = int(np.searchsorted(t, end, "right"))
                out.append((labels, t[lo:hi], v[lo:hi]))
        return out

    def metric_names(self) -> list[str]:
        """Every metric name held, sorted."""
        return sorted(n for n in self._by_name if n)


def _to_ms(t: float) -> int:
    # Prometheus rounds query timestamps to the millisecond.
    return int(round(float(t) * 1000.0))


def _parse_checked(expr: str, for_range: bool) -> Node:
    node = parse(expr)
    if node.type == STRING or (for_range and node.type == MATRIX):
        what = "range query" if for_range else "query"
        raise PromQLError(f"invalid expression type {node.type!r} for {what}, must be scalar or instant vector")
    return node


def _series_from_vec(vec: Vec, grid_ms: np.ndarray) -> list[Series]:
    out = []
    t_all = grid_ms / 1000.0
    for i, labels in enumerate(vec.labels):
        sel = vec.mask[i]
        if sel.any():
            out.append(Series(dict(labels), t_all[sel], vec.vals[i, sel].copy()))
    out.sort(key=lambda s: sorted(s.labels.items()))
    return out


def evaluate_range(expr: str, source: SeriesSource, start: float, end: float, step: float) -> list[Series]:
    """Evaluate a PromQL range query like /api/v1/query_range: one Series per output label set,
    its points on the grid start, start + step, ... <= end where the result is present.
    A scalar expression gives one Series with empty labels."""
    if step <= 0:
        raise PromQLError("zero or negative query resolution step widths are not accepted")
    start_ms, end_ms, step_ms = _to_ms(start), _to_ms(end), _to_ms(step)
    if step_ms <= 0:
        raise PromQLError("query resolution step must be at least 1ms")
    if end_ms < start_ms:
        raise PromQLError("end timestamp must not be before start time")
    if (end_ms - start_ms) // step_ms + 1 > MAX_POINTS:
        raise PromQLError(f"exceeded maximum resolution of {MAX_POINTS} points per timeseries; "
                          "try decreasing the query resolution (?step=XX)")
    node = _parse_checked(expr, for_range=True)
    grid = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
    value = Evaluator(source, grid, start_ms, end_ms).eval(node)
    if isinstance(value, np.ndarray):
        return [Series({}, grid / 1000.0, value.astype(float))]
    return _series_from_vec(value, grid)


def evaluate_instant(expr: str, source: SeriesSource, t: float) -> list[Series] | float:
    """Evaluate a PromQL instant query like /api/v1/query: a float for a scalar result, else
    one Series per output label set with a single point at t (a range-vector query gives each
    series' raw samples in the window). sort()/sort_desc() order the result by value."""
    t_ms = _to_ms(t)
    node = _parse_checked(expr, for_range=False)
    grid = np.array([t_ms], dtype=np.int64)
    ev = Evaluator(source, grid, t_ms, t_ms)
    if node.type == MATRIX:
        arg = ev.range_arg(node)
        out = []
        for i, labels in enumerate(arg.labels):
            ts, vs = arg.series(i)
            right = int(arg.eval_ms[0])
            sel = (ts >= right - arg.range_ms) & (ts <= right)
            if sel.any():
                out.append(Series(dict(labels), ts[sel] / 1000.0, vs[sel].copy()))
        out.sort(key=lambda s: sorted(s.labels.items()))
        return out
    value = ev.eval(node)
    if isinstance(value, np.ndarray):
        return float(value[0])
    series = _series_from_vec(value, grid)
    top = node
    while isinstance(top, ParenExpr):
        top = top.expr
    if isinstance(top, Call) and top.func in ("sort", "sort_desc"):
        # Prometheus's sort puts NaN last in both directions.
        desc = top.func == "sort_desc"
        series.sort(key=lambda s: (np.isnan(s.v[0]), -s.v[0] if desc else s.v[0]))
    return series


def selectors(expr: str) -> list[list[Matcher]]:
    """The label matchers of every vector selector in a query, in order of appearance
    (the metric name as a ``__name__`` matcher); raises PromQLError on a bad query."""
    node = parse(expr)
    out = []
    for n in walk(node):
        if isinstance(n, VectorSelector):
            out.append([Matcher(m.name, m.op, m.value) for m in n.matchers])
    return out


"""The local PromQL evaluator, checked against values worked out by hand from Prometheus 2.42's
rules (the differential test in test_promql_vs_prometheus.py checks the same engine against a
real server)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compass_tui.telemetry.backend import Series
from compass_tui.telemetry.promql import (
    InMemorySeriesSource,
    Matcher,
    PromQLError,
    evaluate_instant,
    evaluate_range,
    parse,
    selectors,
)


def src(*series: tuple[dict[str, str], list[float], list[float]]) -> InMemorySeriesSource:
    return InMemorySeriesSource([(labels, np.array(t, float), np.array(v, float)) for labels, t, v in series])


def values(result) -> dict[tuple, float]:
    """Instant result as {sorted label items: value}."""
    assert not isinstance(result, float), result
    return {tuple(sorted(s.labels.items())): float(s.v[0]) for s in result}


def one(result) -> float:
    vals = values(result)
    assert len(vals) == 1, vals
    return next(iter(vals.values()))


def L(**kw) -> tuple:
    return tuple(sorted(kw.items()))


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("query", "column", "words"),
    [
        ("sum(rate(x[5m])", 16, "unexpected end of input"),
        ("rate(x)", 6, "expected type range vector"),
        ("1 > 2", 3, "BOOL"),
        ('foo{a="b"', 10, "label matching"),
        ("nofunc(x)", 1, "unknown function"),
        ("x[5m] + 1", 1, "range vector"),
        ("x[5]", 3, "expected a duration"),
        ('x{a="b}', 5, "unterminated quoted string"),
        ("a + group_left b", 5, "unexpected"),
        ("a + on(x) group_left(x) b", 3, "must not occur in ON and GROUP"),
        ('{a=""}', 1, "at least one non-empty matcher"),
        ("x{__name__='y'}", 1, "metric name must not be set twice"),
        ("sum(x, y)", 1, "wrong number of arguments"),
        ("topk(x)", 1, "wrong number of arguments"),
        ("x offset", 9, "expected a duration"),
        ("rate(x[5m]) offset 1m", 13, "offset modifier must be preceded"),
        ("1 and 2", 3, "set operator"),
        ("x == bool", 10, "unexpected end of input"),
        ("", 1, "no expression"),
        ("sum(x) by (a) )", 15, "unexpected ')'"),
        ('x{a=~"("}', 6, "invalid regular expression"),
        ("x[5mb]", 3, "bad number or duration"),
    ],
)
def test_parse_errors_say_what_and_which_column(query, column, words):
    with pytest.raises(PromQLError) as err:
        parse(query)
    assert str(err.value).startswith(f"column {column}:"), str(err.value)
    assert words in str(err.value)
    assert err.value.pos == column - 1


def test_parse_error_on_a_later_line_names_line_and_column():
    with pytest.raises(PromQLError, match=r"^line 2, column 8: "):
        parse("sum(x)\n  + 1 +")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("2 ^ 3 ^ 2", 512),  # right-associative
        ("-2 ^ 2", -4),  # unary minus binds looser than ^
        ("2 * 3 % 4", 2),
        ("-7 % 3", -1),  # Go's math.Mod keeps the dividend's sign
        ("1 + 2 > bool 2", 1),
        ("0x1F + 1e2 - .5", 130.5),
        ("time() # comments run to the end of the line", 100),
        ("1 / 0", math.inf),
        ("-1 / 0", -math.inf),
        ("0 / 0", math.nan),
        ("Inf - Inf", math.nan),
        ("2 atan2 0", math.pi / 2),
    ],
)
def test_scalar_arithmetic_precedence_and_ieee_results(query, expected):
    got = evaluate_instant(query, src(), 100)
    assert isinstance(got, float)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_durations_compound_units_and_offsets():
    s = src(({"__name__": "x"}, [0, 60, 5400], [1, 2, 3]))
    assert one(evaluate_instant("count_over_time(x[1h30m])", s, 5400)) == 3  # [0, 5400] is closed
    assert one(evaluate_instant("count_over_time(x[90m] offset 1ms)", s, 5400)) == 2
    assert one(evaluate_instant("x offset 89m", s, 5400)) == 2
    assert one(evaluate_instant("count_over_time(x[100ms])", s, 60.1)) == 1


def test_keywords_are_case_insensitive_and_usable_as_label_names():
    s = src(({"__name__": "x", "on": "a", "by": "b"}, [0], [1]), ({"__name__": "x", "on": "c", "by": "d"}, [0], [2]))
    assert values(evaluate_instant("SUM(x) BY (on)", s, 10)) == {L(on="a"): 1, L(on="c"): 2}
    assert values(evaluate_instant('x{by="d"}', s, 10)) == {L(__name__="x", on="c", by="d"): 2}


def test_selectors_lists_every_vector_selector_with_its_matchers():
    got = selectors('sum(rate(http_requests_total{code=~"5.."}[5m])) / on(job) group_left up{job!="x"}')
    assert got == [
        [Matcher("__name__", "=", "http_requests_total"), Matcher("code", "=~", "5..")],
        [Matcher("__name__", "=", "up"), Matcher("job", "!=", "x")],
    ]
    assert selectors('{__name__=~"a|b"}') == [[Matcher("__name__", "=~", "a|b")]]
    with pytest.raises(PromQLError):
        selectors("rate(")


def test_regex_matchers_are_fully_anchored():
    s = src(({"__name__": "x", "a": "ab"}, [0], [1]), ({"__name__": "x", "a": "b"}, [0], [2]))
    assert values(evaluate_instant('x{a=~"a"}', s, 1)) == {}
    assert values(evaluate_instant('x{a=~"a.*"}', s, 1)) == {L(__name__="x", a="ab"): 1}
    assert values(evaluate_instant('x{a!~"a"}', s, 1)) == {L(__name__="x", a="ab"): 1, L(__name__="x", a="b"): 2}
    # A missing label matches as the empty string.
    assert values(evaluate_instant('x{c=~"|z"}', s, 1)) == values(evaluate_instant("x", s, 1))


# ------------------------------------------------------------------------ selectors, lookback


def test_instant_selector_looks_back_five_minutes_inclusive():
    s = src(({"__name__": "x"}, [0], [7]))
    assert one(evaluate_instant("x", s, 300)) == 7
    assert values(evaluate_instant("x", s, 300.001)) == {}


def test_range_query_grid_and_gaps_longer_than_lookback():
    s = src(({"__name__": "g"}, [0, 30, 700, 730], [1, 2, 3, 4]))
    (series,) = evaluate_range("g", s, 0, 900, 60)
    # Prometheus's grid: start, start + step, ... <= end; absent steps are omitted.
    assert series.t.tolist() == [0, 60, 120, 180, 240, 300, 720, 780, 840, 900]
    assert series.v.tolist() == [1, 2, 2, 2, 2, 2, 3, 4, 4, 4]
    assert series.labels == {"__name__": "g"}


def test_scalar_range_query_gives_one_series_without_labels():
    (series,) = evaluate_range("time() * 2", src(), 10, 40, 15)
    assert series.labels == {}
    assert series.t.tolist() == [10, 25, 40]
    assert series.v.tolist() == [20, 50, 80]
    assert isinstance(series, Series)


def test_range_query_rejects_range_vectors_and_bad_steps():
    with pytest.raises(PromQLError, match="range vector"):
        evaluate_range("x[5m]", src(), 0, 10, 1)
    with pytest.raises(PromQLError, match="step"):
        evaluate_range("x", src(), 0, 10, 0)
    with pytest.raises(PromQLError, match="11000"):
        evaluate_range("x", src(), 0, 100000, 1)


def test_instant_range_vector_query_gives_raw_samples_in_window():
    s = src(({"__name__": "x"}, [0, 30, 60, 90], [1, 2, 3, 4]))
    (series,) = evaluate_instant("x[1m]", s, 90)
    assert series.t.tolist() == [30, 60, 90]
    assert series.v.tolist() == [2, 3, 4]


# --------------------------------------------------------------------------- counter functions

COUNTER = {"__name__": "c_total", "job": "a"}


def test_rate_and_increase_count_a_reset_as_a_continuation():
    s = src((COUNTER, [0, 15, 30, 45, 60], [0, 15, 30, 5, 20]))
    # 20 - 0 plus the 30 lost at the reset; samples cover the whole window: no extrapolation.
    assert one(evaluate_instant("increase(c_total[1m])", s, 60)) == pytest.approx(50)
    assert one(evaluate_instant("rate(c_total[1m])", s, 60)) == pytest.approx(50 / 60)
    assert one(evaluate_instant("resets(c_total[1m])", s, 60)) == 1
    assert one(evaluate_instant("delta(c_total[1m])", s, 60)) == pytest.approx(20)


def test_rate_extrapolates_a_series_starting_mid_window_by_half_an_interval():
    s = src((COUNTER, [30, 45, 60], [100, 115, 130]))
    # 30 over 30s sampled; start gap 30s > 1.1 * 15s so extend by 7.5s: 30 * 37.5 / 30.
    assert one(evaluate_instant("increase(c_total[1m])", s, 60)) == pytest.approx(37.5)
    assert one(evaluate_instant("rate(c_total[1m])", s, 60)) == pytest.approx(37.5 / 60)


def test_rate_extrapolation_stops_at_the_counters_zero_point():
    s = src((COUNTER, [30, 45, 60], [5, 20, 35]))
    # The counter would reach zero 5s before the first sample: extend by 5s only.
    assert one(evaluate_instant("increase(c_total[1m])", s, 60)) == pytest.approx(35)


def test_rate_needs_two_samples_and_drops_the_metric_name():
    s = src((COUNTER, [0, 60], [1, 2]))
    assert values(evaluate_instant("rate(c_total[1m])", s, 30)) == {}
    assert set(values(evaluate_instant("rate(c_total[2m])", s, 60))) == {L(job="a")}


def test_irate_idelta_use_the_last_two_samples():
    s = src((COUNTER, [0, 10, 20, 30], [0, 10, 40, 5]))
    assert one(evaluate_instant("irate(c_total[1m])", s, 30)) == pytest.approx(0.5)  # reset: 5 / 10s
    assert one(evaluate_instant("idelta(c_total[1m])", s, 30)) == pytest.approx(-35)
    assert one(evaluate_instant("irate(c_total[1m])", s, 20)) == pytest.approx(3)


def test_changes_counts_value_changes_including_nan_transitions():
    s = src(({"__name__": "g"}, [0, 10, 20, 30, 40], [1, 1, 2, math.nan, math.nan]))
    assert one(evaluate_instant("changes(g[1m])", s, 40)) == 2


# ---------------------------------------------------------------------------- over_time


def test_over_time_functions():
    s = src(({"__name__": "g", "i": "1"}, [0, 10, 20, 30], [4, 1, 3, 2]))
    q = lambda f: one(evaluate_instant(f, s, 30))  # noqa: E731
    assert q("avg_over_time(g[30s])") == 2.5
    assert q("min_over_time(g[30s])") == 1
    assert q("max_over_time(g[30s])") == 4
    assert q("sum_over_time(g[30s])") == 10
    assert q("count_over_time(g[30s])") == 4
    assert q("count_over_time(g[29s])") == 3  # the window is [t - 29s, t]
    assert q("last_over_time(g[30s])") == 2
    assert q("present_over_time(g[30s])") == 1
    assert q("quantile_over_time(0.5, g[30s])") == 2.5
    assert q("quantile_over_time(0, g[30s])") == 1
    assert q("quantile_over_time(2, g[30s])") == math.inf
    assert q("stdvar_over_time(g[30s])") == pytest.approx(1.25)
    assert q("stddev_over_time(g[30s])") == pytest.approx(math.sqrt(1.25))
    # last_over_time keeps the metric name, the others drop it.
    assert set(values(evaluate_instant("last_over_time(g[1m])", s, 30))) == {L(__name__="g", i="1")}
    assert set(values(evaluate_instant("max_over_time(g[1m])", s, 30))) == {L(i="1")}


def test_over_time_with_nan_samples():
    s = src(({"__name__": "g"}, [0, 10, 20], [math.nan, 5, 3]))
    assert one(evaluate_instant("max_over_time(g[1m])", s, 20)) == 5  # NaN loses to any number
    assert math.isnan(one(evaluate_instant("sum_over_time(g[1m])", s, 20)))
    assert math.isnan(one(evaluate_instant("stddev_over_time(g[1m])", s, 20)))
    # quantile sorts NaN first, as Prometheus does
    assert math.isnan(one(evaluate_instant("quantile_over_time(0, g[1m])", s, 20)))


def test_deriv_and_predict_linear_on_a_line():
    s = src(({"__name__": "g"}, [0, 60, 120, 180], [10, 16, 22, 28]))
    assert one(evaluate_instant("deriv(g[3m])", s, 180)) == pytest.approx(0.1)
    assert one(evaluate_instant("predict_linear(g[3m], 600)", s, 180)) == pytest.approx(88)
    # The line is anchored at the evaluation time, not at the last sample.
    assert one(evaluate_instant("predict_linear(g[5m], 0)", s, 200)) == pytest.approx(30)
    flat = src(({"__name__": "g"}, [0, 60], [0.1, 0.1]))
    assert one(evaluate_instant("deriv(g[1m])", flat, 60)) == 0


def test_absent_and_absent_over_time():
    s = src(({"__name__": "up", "job": "a"}, [0], [1]))
    assert values(evaluate_instant('absent(up{job="a"})', s, 10)) == {}
    assert values(evaluate_instant('absent(up{job="b", env=~"p.*"})', s, 10)) == {L(job="b"): 1}
    assert values(evaluate_instant('absent(nope{a="x", a="y"})', s, 10)) == {(): 1}
    assert values(evaluate_instant('absent_over_time(up{job="a"}[1m])', s, 60)) == {}
    assert values(evaluate_instant('absent_over_time(up{job="a"}[1m])', s, 61)) == {L(job="a"): 1}


def test_subquery_evaluates_on_an_aligned_inner_grid():
    s = src((COUNTER, np.arange(0, 601, 15), np.arange(0, 601, 15) * 2.0))
    assert one(evaluate_instant("max_over_time(rate(c_total[1m])[5m:1m])", s, 600)) == pytest.approx(2)
    # inner grid at multiples of 1m inside [300, 600]: 300, 360, ..., 600
    assert one(evaluate_instant("count_over_time(c_total[5m:1m])", s, 600)) == 6
    assert one(evaluate_instant("count_over_time(c_total[5m:1m])", s, 630)) == 5


# ------------------------------------------------------------------------ binary operators


def test_division_by_zero_gives_inf_and_nan_like_prometheus():
    s = src(({"__name__": "x", "i": "1"}, [0], [3]), ({"__name__": "x", "i": "2"}, [0], [0]),
            ({"__name__": "x", "i": "3"}, [0], [-2]))
    got = values(evaluate_instant("x / 0", s, 1))
    assert got[L(i="1")] == math.inf
    assert math.isnan(got[L(i="2")])
    assert got[L(i="3")] == -math.inf


def test_comparison_filters_keep_the_vector_value_and_name_unless_bool():
    s = src(({"__name__": "x", "i": "1"}, [0], [3]), ({"__name__": "x", "i": "2"}, [0], [7]))
    assert values(evaluate_instant("x > 5", s, 1)) == {L(__name__="x", i="2"): 7}
    assert values(evaluate_instant("5 < x", s, 1)) == {L(__name__="x", i="2"): 7}
    assert values(evaluate_instant("x > bool 5", s, 1)) == {L(i="1"): 0, L(i="2"): 1}
    assert values(evaluate_instant("x * 2", s, 1)) == {L(i="1"): 6, L(i="2"): 14}
    nan = src(({"__name__": "x"}, [0], [math.nan]))
    assert values(evaluate_instant("x == x", nan, 1)) == {}
    assert values(evaluate_instant("x != bool x", nan, 1)) == {(): 1}


REQS = [
    ({"__name__": "req", "job": "a", "code": "200"}, [0], [90]),
    ({"__name__": "req", "job": "a", "code": "500"}, [0], [10]),
    ({"__name__": "req", "job": "b", "code": "200"}, [0], [40]),
    ({"__name__": "tot", "job": "a"}, [0], [100]),
    ({"__name__": "tot", "job": "b"}, [0], [50]),
    ({"__name__": "info", "job": "a", "team": "red"}, [0], [1]),
]


def test_one_to_one_matching_with_on_and_ignoring():
    s = src(*REQS)
    assert values(evaluate_instant('req{code="500"} / ignoring(code) tot', s, 1)) == {L(job="a"): 0.1}
    assert values(evaluate_instant('req{code="200"} / on(job) tot', s, 1)) == {L(job="a"): 0.9, L(job="b"): 0.8}
    assert values(evaluate_instant("tot - tot", s, 1)) == {L(job="a"): 0, L(job="b"): 0}


def test_many_to_one_matching_with_group_left_copies_labels():
    s = src(*REQS)
    got = values(evaluate_instant("req / on(job) group_left tot", s, 1))
    assert got == {L(job="a", code="200"): 0.9, L(job="a", code="500"): 0.1, L(job="b", code="200"): 0.8}
    got = values(evaluate_instant("tot * on(job) group_left(team) info", s, 1))
    assert got == {L(job="a", team="red"): 100}
    got = values(evaluate_instant("info * on(job) group_right tot", s, 1))
    assert got == {L(job="a"): 100}


def test_matching_errors_like_prometheus():
    s = src(*REQS)
    with pytest.raises(PromQLError, match="many-to-one matching must be explicit"):
        evaluate_instant("req / on(job) tot", s, 1)
    with pytest.raises(PromQLError, match="duplicate series for the match group"):
        evaluate_instant("tot / on(job) req", s, 1)
    # With nothing on the other side Prometheus never looks for duplicates.
    assert values(evaluate_instant("nothing / on(job) req", s, 1)) == {}


def test_set_operators():
    s = src(*REQS)
    assert set(values(evaluate_instant("req and on(job) info", s, 1))) == {
        L(__name__="req", job="a", code="200"), L(__name__="req", job="a", code="500")}
    assert set(values(evaluate_instant("req unless on(job) info", s, 1))) == {L(__name__="req", job="b", code="200")}
    got = values(evaluate_instant("tot or on(job) info", s, 1))
    assert got == {L(__name__="tot", job="a"): 100, L(__name__="tot", job="b"): 50}
    got = values(evaluate_instant('tot{job="b"} or info', s, 1))
    assert got == {L(__name__="tot", job="b"): 50, L(__name__="info", job="a", team="red"): 1}


def test_metric_name_collision_after_dropping_it_is_an_error():
    s = src(({"__name__": "a", "j": "x"}, [0, 30], [1, 2]), ({"__name__": "b", "j": "x"}, [0, 30], [1, 2]))
    with pytest.raises(PromQLError, match="same labelset"):
        evaluate_instant('rate({__name__=~"a|b"}[1m])', s, 30)


# ----------------------------------------------------------------------------- aggregation

GAUGES = [
    ({"__name__": "g", "job": "a", "i": "1"}, [0], [1]),
    ({"__name__": "g", "job": "a", "i": "2"}, [0], [3]),
    ({"__name__": "g", "job": "b", "i": "3"}, [0], [10]),
    ({"__name__": "g", "job": "b", "i": "4"}, [0], [10]),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sum by (job) (g)", {L(job="a"): 4, L(job="b"): 20}),
        ("sum(g) by (job)", {L(job="a"): 4, L(job="b"): 20}),
        ("avg without (i) (g)", {L(job="a"): 2, L(job="b"): 10}),
        ("min(g)", {(): 1}),
        ("max by (job) (g)", {L(job="a"): 3, L(job="b"): 10}),
        ("count(g)", {(): 4}),
        ("stddev by (job) (g)", {L(job="a"): 1, L(job="b"): 0}),
        ("stdvar(g)", {(): 16.5}),
        ("group by (job) (g)", {L(job="a"): 1, L(job="b"): 1}),
        ("quantile(0.5, g)", {(): 6.5}),
        ("quantile by (job) (0.25, g)", {L(job="a"): 1.5, L(job="b"): 10}),
        ("topk(1, g) by (job)", {L(__name__="g", job="a", i="2"): 3, L(__name__="g", job="b", i="3"): 10}),
        ("bottomk(2, g)", {L(__name__="g", job="a", i="1"): 1, L(__name__="g", job="a", i="2"): 3}),
        ('count_values("v", g)', {L(v="1"): 1, L(v="3"): 1, L(v="10"): 2}),
        ("sum without () (g)", {L(job="a", i="1"): 1, L(job="a", i="2"): 3, L(job="b", i="3"): 10,
                                L(job="b", i="4"): 10}),
        ("topk(0, g)", {}),
        ("sum(nothing)", {}),
    ],
)
def test_aggregations(query, expected):
    assert values(evaluate_instant(query, src(*GAUGES), 1)) == pytest.approx(expected)


def test_topk_ties_keep_the_first_series_in_label_order():
    s = src(*GAUGES)
    assert set(values(evaluate_instant('topk(1, g{job="b"})', s, 1))) == {L(__name__="g", job="b", i="3")}


# ------------------------------------------------------------------------ histogram_quantile


def buckets(counts: dict[str, float], **labels) -> list:
    return [({"__name__": "h_bucket", "le": le, **labels}, [0], [c]) for le, c in counts.items()]


@pytest.mark.parametrize(
    ("q", "counts", "expected"),
    [
        (0.5, {"1": 10, "2": 20, "+Inf": 20}, 1.0),
        (0.75, {"1": 10, "2": 20, "+Inf": 20}, 1.5),
        (1.0, {"1": 10, "2": 20, "+Inf": 20}, 2.0),
        (0.99, {"1": 10, "2": 20, "+Inf": 40}, 2.0),  # in the +Inf bucket: the last finite bound
        (0.25, {"-1": 10, "2": 20, "+Inf": 40}, -1.0),  # first bucket with a bound <= 0
        (0.75, {"1": 10, "2": 8, "+Inf": 20}, 2.0),  # non-monotonic counts are made monotonic
        (0.5, {"1": 10, "2": 20}, math.nan),  # no +Inf bucket
        (0.5, {"1": 0, "+Inf": 0}, math.nan),  # no observations
        (1.5, {"1": 10, "+Inf": 10}, math.inf),
        (-1, {"1": 10, "+Inf": 10}, -math.inf),
    ],
)
def test_histogram_quantile_interpolates_within_buckets(q, counts, expected):
    got = one(evaluate_instant(f"histogram_quantile({q}, h_bucket)", src(*buckets(counts, job="a")), 1))
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_histogram_quantile_groups_by_labels_other_than_le_and_skips_bad_le():
    s = src(*buckets({"1": 5, "+Inf": 10}, job="a"), *buckets({"1": 10, "+Inf": 10}, job="b"),
            ({"__name__": "h_bucket", "job": "c", "le": "abc"}, [0], [3]))
    assert values(evaluate_instant("histogram_quantile(0.5, h_bucket)", s, 1)) == {L(job="a"): 1, L(job="b"): 0.5}


# -------------------------------------------------------------------------- other functions


def test_elementwise_math_functions():
    s = src(({"__name__": "x"}, [0], [-2.5]))
    q = lambda f: one(evaluate_instant(f, s, 1))  # noqa: E731
    assert q("abs(x)") == 2.5
    assert q("ceil(x)") == -2
    assert q("floor(x)") == -3
    assert q("round(x)") == -2  # Prometheus rounds half up
    assert q("round(x, 2)") == -2
    assert q("exp(abs(x))") == pytest.approx(math.exp(2.5))
    assert q("ln(abs(x))") == pytest.approx(math.log(2.5))
    assert q("log2(abs(x) * 4)") == pytest.approx(math.log2(10))
    assert q("log10(abs(x) * 40)") == pytest.approx(2)
    assert math.isnan(q("sqrt(x)"))
    assert q("clamp(x, -1, 1)") == -1
    assert q("clamp_min(x, 0)") == 0
    assert q("clamp_max(x, -3)") == -3
    assert values(evaluate_instant("clamp(x, 1, -1)", s, 1)) == {}  # max < min: empty


def test_scalar_vector_time_timestamp():
    s = src(({"__name__": "x", "i": "1"}, [0, 55], [4, 5]), ({"__name__": "x", "i": "2"}, [0], [7]))
    assert evaluate_instant('scalar(x{i="1"})', s, 60) == 5
    assert math.isnan(evaluate_instant("scalar(x)", s, 60))
    assert values(evaluate_instant("vector(2)", s, 60)) == {(): 2}
    assert evaluate_instant("time()", s, 60) == 60
    assert values(evaluate_instant("timestamp(x)", s, 60)) == {L(i="1"): 55, L(i="2"): 0}
    assert values(evaluate_instant("timestamp(x + 0)", s, 60)) == {L(i="1"): 60, L(i="2"): 60}


def test_label_replace_and_label_join():
    s = src(({"__name__": "up", "instance": "host-7:9100", "job": "node"}, [0], [1]))
    got = values(evaluate_instant('label_replace(up, "host", "$1", "instance", "(.*):.*")', s, 1))
    assert got == {L(__name__="up", instance="host-7:9100", job="node", host="host-7"): 1}
    got = values(evaluate_instant('label_replace(up, "host", "$1", "instance", "nomatch")', s, 1))
    assert got == {L(__name__="up", instance="host-7:9100", job="node"): 1}
    got = values(evaluate_instant('label_replace(up, "job", "", "job", ".*")', s, 1))
    assert got == {L(__name__="up", instance="host-7:9100"): 1}  # an empty value removes the label
    got = values(evaluate_instant('label_join(up, "id", "/", "job", "instance")', s, 1))
    assert got == {L(__name__="up", instance="host-7:9100", job="node", id="node/host-7:9100"): 1}
    with pytest.raises(PromQLError, match="invalid regular expression"):
        evaluate_instant('label_replace(up, "a", "b", "job", "(")', s, 1)


def test_sort_orders_instant_results_by_value():
    s = src(*GAUGES)
    got = evaluate_instant("sort_desc(sum by (i) (g))", s, 1)
    assert [float(x.v[0]) for x in got] == [10, 10, 3, 1]
    got = evaluate_instant("sort(g)", s, 1)
    assert [float(x.v[0]) for x in got] == [1, 3, 10, 10]


def test_vectorised_range_evaluation_matches_instant_evaluation_at_every_step():
    rng = np.random.default_rng(3)
    series = []
    for i in range(12):
        t = np.sort(rng.choice(np.arange(0, 3600, 5), size=400, replace=False)).astype(float)
        v = np.cumsum(rng.exponential(3, len(t)))
        v[len(v) // 2 :] -= v[len(v) // 2] - 1  # a reset
        series.append(({"__name__": "c_total", "job": f"j{i % 3}", "i": str(i)}, t, v))
    s = InMemorySeriesSource(series)
    for query in ("sum by (job) (rate(c_total[2m]))", "max_over_time(c_total[3m])", "irate(c_total[1m])",
                  "quantile_over_time(0.3, c_total[5m])", "deriv(c_total[4m])", "changes(c_total[10m])"):
        ranged = {tuple(sorted(x.labels.items())): dict(zip(x.t.tolist(), x.v.tolist()))
                  for x in evaluate_range(query, s, 600, 3000, 60)}
        for t in range(600, 3001, 60):
            for key, v in values(evaluate_instant(query, s, t)).items():
                assert ranged[key][t] == pytest.approx(v, rel=1e-9), (query, t, key)


def test_bad_source_data_is_reported_clearly():
    with pytest.raises(ValueError, match="2 timestamps but 1 values"):
        InMemorySeriesSource([({"__name__": "x"}, np.array([0.0, 1.0]), np.array([1.0]))])


# ------------------------------------------------------------------------ robustness

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from compass_tui.telemetry.promql_parser import FUNCTIONS  # noqa: E402

_ATOMS = st.sampled_from([
    "g", 'g{job="a"}', "c_total", "h_bucket", "nothing", "1", "0", "-2.5", "NaN", "Inf", '"s"',
    "g[1m]", "c_total[5m]", "g[2m:30s]", "g offset 1m", "time()",
])


def _aggregation(parts: tuple[str, str, str]) -> str:
    op, grouping, arg = parts
    if op.endswith(","):  # an aggregation with a parameter: "topk(2," + arg
        return f"{op} {arg}){grouping}"
    return f"{op}({arg}){grouping}"


def _combine(children):
    ops = st.sampled_from(["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<=", "> bool", "and", "or",
                           "unless", "atan2", "/ on(job)", "* ignoring(i) group_left"])
    aggs = st.sampled_from(["sum", "avg", "max", "count", "stddev", "topk(2,", "quantile(0.5,",
                            'count_values("v",'])
    return st.one_of(
        st.tuples(children, ops, children).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(st.sampled_from(sorted(FUNCTIONS)), st.lists(children, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(aggs, st.sampled_from(["", " by (job)", " without (i)"]), children).map(_aggregation),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"-{c}"),
    )


_QUERIES = st.recursive(_ATOMS, _combine, max_leaves=6)
_FUZZ_SOURCE = src(*GAUGES, *buckets({"1": 5, "+Inf": 10}, job="a"),
                   ({"__name__": "c_total", "job": "a"}, [0, 30, 60, 90], [0, 5, 2, 9]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUERIES)
def test_any_query_evaluates_or_fails_with_a_promql_error(query):
    for run in (lambda: evaluate_range(query, _FUZZ_SOURCE, 0, 120, 30),
                lambda: evaluate_instant(query, _FUZZ_SOURCE, 90)):
        try:
            result = run()
        except PromQLError as exc:
            assert str(exc)
            continue
        assert isinstance(result, (list, float))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='abcgx_{}[]()=~!"\',.:@ +-*/%^<>#0123456789mshdwyoefnt\n', max_size=30))
def test_any_text_parses_or_fails_with_a_promql_error(text):
    try:
        parse(text)
    except PromQLError as exc:
        assert str(exc)

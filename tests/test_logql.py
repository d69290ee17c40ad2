"""The LogQL subset: every supported form parses to what Loki means, the rest fails clearly."""

from __future__ import annotations

import pytest

from compass_tui.telemetry import logql
from compass_tui.telemetry.logql import (
    LabelFilter,
    LineFilter,
    LogQLError,
    LogQuery,
    ParserStage,
    RangeAggregation,
    StreamMatcher,
    VectorAggregation,
    parse,
)


def test_stream_selector_all_operators():
    q = parse('{a="b", c=~"d|e", f!="g", h!~"i"}')
    assert isinstance(q, LogQuery)
    assert q.matchers == [
        StreamMatcher("a", "=", "b"),
        StreamMatcher("c", "=~", "d|e"),
        StreamMatcher("f", "!=", "g"),
        StreamMatcher("h", "!~", "i"),
    ]
    streams = [
        {"a": "b", "c": "d", "f": "x", "h": "j"},  # matches
        {"a": "b", "c": "dd", "f": "x"},  # regex is anchored: "dd" is not d|e
        {"a": "b", "c": "e", "f": "g"},  # f!="g" fails
        {"a": "b", "c": "e", "h": "i"},  # h!~"i" fails
        {"a": "b", "c": "e"},  # missing f and h count as empty: matches
    ]
    assert q.select_streams(streams) == [0, 4]


def test_chained_line_filters_keep_order_and_unescape():
    q = parse(r'{job="api"} |= "timeout" != "healthz" |~ `5\d\d` !~ "(?i)debug" |= "say \"hi\""')
    assert q.line_filters == [
        LineFilter("|=", "timeout"),
        LineFilter("!=", "healthz"),
        LineFilter("|~", r"5\d\d"),
        LineFilter("!~", "(?i)debug"),
        LineFilter("|=", 'say "hi"'),
    ]


def test_parsers_and_label_filters():
    q = parse('{job="api"} |= "x" | json | level="error" | status=~"5.." | duration > 2.5 | code != 200')
    assert q.parsers == [ParserStage("json")]
    assert q.label_filters == [
        LabelFilter("level", "=", "error"),
        LabelFilter("status", "=~", "5.."),
        LabelFilter("duration", ">", 2.5),
        LabelFilter("code", "!=", 200.0),
    ]
    assert q.label_filters[2].matches({"duration": "3"})
    assert not q.label_filters[2].matches({"duration": "fast"})
    assert parse('{job="api"} | logfmt').parsers == [ParserStage("logfmt")]


@pytest.mark.parametrize(
    "text, fn, rng",
    [
        ('count_over_time({job="api"}[1m])', "count_over_time", 60),
        ('rate({job="api"} |= "error" [5m])', "rate", 300),
        ('bytes_over_time({job="api"}[1h30m])', "bytes_over_time", 5400),
        ('bytes_rate({job="api"}[30s])', "bytes_rate", 30),
    ],
)
def test_range_aggregations(text, fn, rng):
    q = parse(text)
    assert isinstance(q, RangeAggregation)
    assert (q.fn, q.range_s) == (fn, rng)
    assert q.query.matchers == [StreamMatcher("job", "=", "api")]


def test_vector_aggregations_grouping_before_or_after():
    a = parse('sum by (job, level) (count_over_time({env="prod"} |= "err" [1m]))')
    b = parse('sum(count_over_time({env="prod"} |= "err" [1m])) by (job, level)')
    for q in (a, b):
        assert isinstance(q, VectorAggregation)
        assert (q.op, q.grouping, q.without) == ("sum", ["job", "level"], False)
        assert isinstance(q.inner, RangeAggregation) and q.inner.query.line_filters == [LineFilter("|=", "err")]
    plain = parse('sum(rate({env="prod"}[5m]))')
    assert plain.grouping is None
    nested = parse('max without (pod) (sum by (pod, job) (rate({env="prod"}[5m])))')
    assert nested.without and isinstance(nested.inner, VectorAggregation)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty query"),
        ('{job="api"', "unexpected end of query at column 11, expected ',' or '}'"),
        ("{}", "at least one label matcher"),
        ('{job=~".*"}', "does not match the empty string"),
        ('{job="api"} |= error', "unexpected 'error' at column 16, expected a quoted string after |="),
        ('{job="api"} | line_format "{{.msg}}"', "the line_format stage is not supported (column 15)"),
        ('count_over_time({job="api"})', "expected a range such as [5m]"),
        ('count_over_time({job="api"}[5x])', "invalid duration '5x'"),
        ('topk(3, rate({job="api"}[1m]))', "unsupported function 'topk' at column 1"),
        ('sum(rate({job="api"}[1m])) / sum(rate({job="b"}[1m]))', "binary operations between queries are not supported"),
        ('{job="api"} |~ "(unclosed"', "invalid regular expression"),
        ('{job="api"} |~ "(?=x)"', "lookaround"),
        (r'{job="api"} |= "\d"', "invalid escape \\d"),
        ('{job="api"} |= "open', "unterminated string at column 16"),
        ('{job="api"} | level > "x"', "expected a number after >"),
    ],
)
def test_errors_are_one_clear_line(text, message):
    with pytest.raises(LogQLError) as e:
        parse(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_durations():
    assert logql.parse_duration("90s") == 90
    assert logql.parse_duration("1h30m") == 5400
    assert logql.parse_duration("500ms") == 0.5
    with pytest.raises(LogQLError):
        logql.parse_duration("0s")

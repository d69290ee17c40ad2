"""A parser for the subset of LogQL the bundle backend answers.

Supported, with Loki's meaning:

- stream selectors ``{app="a", env=~"prod|stage", level!="debug", pod!~"canary-.*"}``
- line filters, chained: ``|= "x"``, ``!= "x"``, ``|~ "re"``, ``!~ "re"``
- parsers ``| json`` and ``| logfmt``, then label filters such as ``| level="error"``,
  ``| status=~"5.."``, ``| duration > 2`` (numbers compare as numbers)
- metric queries ``count_over_time(<log query> [5m])``, ``rate(...)``, ``bytes_over_time``,
  ``bytes_rate``, wrapped in ``sum|avg|min|max|count [by|without (labels)] (...)`` with the
  grouping before or after the parentheses.

Anything else is a :class:`LogQLError` whose message names the column and what was expected,
so a query written for Loki that this subset cannot answer fails clearly instead of
answering something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "LogQLError",
    "StreamMatcher",
    "LineFilter",
    "ParserStage",
    "LabelFilter",
    "LogQuery",
    "RangeAggregation",
    "VectorAggregation",
    "parse",
    "parse_duration",
    "parse_stream_selector",
]


class LogQLError(ValueError):
    """A query outside the supported subset or not valid LogQL; one line, with the column."""


@dataclass(frozen=True)
class StreamMatcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a label set satisfies this matcher (a missing label is the empty string,
        and regular expressions are anchored, as in Loki and Prometheus)."""
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        ok = _compile(self.value).fullmatch(v) is not None
        return ok if self.op == "=~" else not ok


@dataclass(frozen=True)
class LineFilter:
    op: str  # |= != |~ !~
    value: str


@dataclass(frozen=True)
class ParserStage:
    kind: str  # json | logfmt


@dataclass(frozen=True)
class LabelFilter:
    name: str
    op: str  # = != =~ !~ (strings) or == != > >= < <= (numbers)
    value: str | float

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether extracted labels satisfy this filter; a label that is not a number fails
        a numeric comparison, as Loki marks it an error and drops the line."""
        v = labels.get(self.name, "")
        if isinstance(self.value, float):
            try:
                x = float(v)
            except ValueError:
                return False
            return {
                "==": x == self.value,
                "!=": x != self.value,
                ">": x > self.value,
                ">=": x >= self.value,
                "<": x < self.value,
                "<=": x <= self.value,
            }[self.op]
        return StreamMatcher(self.name, self.op, self.value).matches({self.name: v})


@dataclass
class LogQuery:
    """A log query: a stream selector and its pipeline stages, in order."""

    matchers: list[StreamMatcher]
    line_filters: list[LineFilter] = field(default_factory=list)
    parsers: list[ParserStage] = field(default_factory=list)
    label_filters: list[LabelFilter] = field(default_factory=list)

    def select_streams(self, streams: list[dict[str, str]]) -> list[int]:
        """Indexes of the streams whose labels the selector matches."""
        return [i for i, s in enumerate(streams) if all(m.matches(s) for m in self.matchers)]


@dataclass
class RangeAggregation:
    fn: str  # count_over_time | rate | bytes_over_time | bytes_rate
    query: LogQuery
    range_s: float


@dataclass
class VectorAggregation:
    op: str  # sum | avg | min | max | count
    inner: "RangeAggregation | VectorAggregation"
    grouping: list[str] | None = None  # None: aggregate everything into one series
    without: bool = False


RANGE_FUNCS = ("count_over_time", "rate", "bytes_over_time", "bytes_rate")
VECTOR_OPS = ("sum", "avg", "min", "max", "count")

_regex_cache: dict[str, re.Pattern] = {}


def _compile(pattern: str) -> re.Pattern:
    r = _regex_cache.get(pattern)
    if r is None:
        try:
            r = re.compile(pattern)
        except re.error as e:
            raise LogQLError(f"invalid regular expression {pattern!r}: {e}") from None
        _regex_cache[pattern] = r
    return r


_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DUR_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Loki duration such as ``5m``, ``1h30m`` or ``500ms``."""
    pos, total = 0, 0.0
    if not text:
        raise LogQLError("empty duration")
    while pos < len(text):
        m = _DUR_RE.match(text, pos)
        if m is None:
            raise LogQLError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h)")
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if total <= 0:
        raise LogQLError(f"duration {text!r} must be positive")
    return total


# --------------------------------------------------------------------------- lexer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<duration>\[[^\]]*\])
  | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|[{}(),|=<>])
  | (?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_.]*)
  | (?P<arith>[-+*/%^])
    """,
    re.X | re.S,
)


@dataclass
class _Tok:
    kind: str
    text: str
    col: int  # 1-based


def _unquote(s: str, col: int) -> str:
    if s[0] == "`":
        return s[1:-1]
    body = s[1:-1]
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            hexpart = body[i + 2 : i + 2 + width]
            if len(hexpart) != width or not all(h in "0123456789abcdefABCDEF" for h in hexpart):
                raise LogQLError(f"invalid escape \\{nxt} in string at column {col}")
            out.append(chr(int(hexpart, 16)))
            i += 2 + width
        else:
            # Go strings reject unknown escapes such as "\d": regexes go in backticks or "\\d".
            raise LogQLError(
                f"invalid escape \\{nxt} in string at column {col} (write regular expressions in backticks or double the backslash)"
            )
    return "".join(out)


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            snippet = text[pos : pos + 10]
            if text[pos] in "\"`":
                raise LogQLError(f"unterminated string at column {pos + 1}")
            raise LogQLError(f"unexpected {snippet!r} at column {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    toks.append(_Tok("eof", "", len(text) + 1))
    return toks


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _lex(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> _Tok:
        t = self.tok
        self.i += 1
        return t

    def fail(self, expected: str) -> LogQLError:
        t = self.tok
        got = "end of query" if t.kind == "eof" else repr(t.text)
        return LogQLError(f"unexpected {got} at column {t.col}, expected {expected}")

    def expect(self, text: str) -> _Tok:
        if self.tok.text != text or self.tok.kind == "string":
            raise self.fail(repr(text))
        return self.advance()

    def string(self, what: str = "a quoted string") -> str:
        if self.tok.kind != "string":
            raise self.fail(what)
        t = self.advance()
        return _unquote(t.text, t.col)

    # query := metric | log
    def query(self) -> LogQuery | RangeAggregation | VectorAggregation:
        if self.tok.kind == "op" and self.tok.text == "{":
            q: LogQuery | RangeAggregation | VectorAggregation = self.log_query()
        elif self.tok.kind == "ident":
            q = self.metric()
        else:
            raise self.fail("a stream selector '{...}' or a metric function")
        if self.tok.kind != "eof":
            if self.tok.kind == "arith" or self.tok.text in (">", "<", ">=", "<=", "==", "!=", "or", "and", "unless"):
                raise LogQLError(f"binary operations between queries are not supported (column {self.tok.col})")
            raise self.fail("end of query")
        return q

    def metric(self) -> RangeAggregation | VectorAggregation:
        name = self.tok.text
        if name in RANGE_FUNCS:
            return self.range_agg()
        if name in VECTOR_OPS:
            return self.vector_agg()
        raise LogQLError(
            f"unsupported function {name!r} at column {self.tok.col} "
            f"(supported: {', '.join(RANGE_FUNCS + VECTOR_OPS)})"
        )

    def range_agg(self) -> RangeAggregation:
        fn = self.advance().text
        self.expect("(")
        if self.tok.text != "{":
            raise self.fail("a log query '{...}' inside " + fn)
        q = self.log_query()
        if self.tok.kind != "duration":
            raise self.fail("a range such as [5m] after the log query")
        rng = parse_duration(self.advance().text[1:-1].strip())
        self.expect(")")
        return RangeAggregation(fn, q, rng)

    def grouping(self) -> tuple[list[str], bool]:
        without = self.advance().text == "without"
        self.expect("(")
        labels: list[str] = []
        while self.tok.text != ")":
            if self.tok.kind != "ident":
                raise self.fail("a label name")
            labels.append(self.advance().text)
            if self.tok.text == ",":
                self.advance()
            elif self.tok.text != ")":
                raise self.fail("',' or ')'")
        self.advance()
        return labels, without

    def vector_agg(self) -> VectorAggregation:
        op = self.advance().text
        grouping: list[str] | None = None
        without = False
        if self.tok.kind == "ident" and self.tok.text in ("by", "without"):
            grouping, without = self.grouping()
        self.expect("(")
        if self.tok.kind != "ident":
            raise self.fail("a metric query such as count_over_time(...) inside " + op)
        inner = self.metric()
        self.expect(")")
        if self.tok.kind == "ident" and self.tok.text in ("by", "without"):
            if grouping is not None:
                raise LogQLError(f"grouping given twice at column {self.tok.col}")
            grouping, without = self.grouping()
        return VectorAggregation(op, inner, grouping, without)

    def log_query(self) -> LogQuery:
        q = LogQuery(self.selector())
        while True:
            t = self.tok
            if t.kind == "op" and t.text in ("|=", "!=", "|~", "!~"):
                self.advance()
                value = self.string(f"a quoted string after {t.text}")
                if t.text in ("|~", "!~"):
                    _check_re2(value, t.col)
                q.line_filters.append(LineFilter(t.text, value))
            elif t.kind == "op" and t.text == "|":
                self.advance()
                self.stage(q)
            else:
                return q

    def stage(self, q: LogQuery) -> None:
        t = self.tok
        if t.kind != "ident":
            raise self.fail("a parser (json, logfmt) or a label filter after '|'")
        if t.text in ("json", "logfmt"):
            self.advance()
            if self.tok.kind == "ident" and self.peek().text == "=":
                raise LogQLError(f"{t.text} with parameters is not supported (column {self.tok.col})")
            q.parsers.append(ParserStage(t.text))
            return
        if t.text in ("regexp", "pattern", "unpack", "line_format", "label_format", "drop", "keep", "decolorize", "unwrap"):
            raise LogQLError(f"the {t.text} stage is not supported (column {t.col}); supported: json, logfmt, label filters")
        name = self.advance().text
        op = self.tok
        if op.kind != "op" or op.text not in ("=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="):
            raise self.fail("a comparison (=, !=, =~, !~, ==, >, >=, <, <=) after the label name")
        self.advance()
        if self.tok.kind == "number":
            num = float(self.advance().text)
            cmp = "==" if op.text == "=" else op.text
            if cmp in ("=~", "!~"):
                raise LogQLError(f"{op.text} needs a quoted regular expression (column {op.col})")
            q.label_filters.append(LabelFilter(name, cmp, num))
            return
        if op.text in (">", ">=", "<", "<=", "=="):
            raise self.fail(f"a number after {op.text}")
        value = self.string("a quoted string or a number")
        if op.text in ("=~", "!~"):
            _compile(value)
        q.label_filters.append(LabelFilter(name, op.text, value))

    def selector(self) -> list[StreamMatcher]:
        self.expect("{")
        matchers: list[StreamMatcher] = []
        while self.tok.text != "}" or self.tok.kind == "string":
            if self.tok.kind != "ident" or "." in self.tok.text:
                raise self.fail("a label name")
            name = self.advance().text
            op = self.tok
            if op.kind != "op" or op.text not in ("=", "!=", "=~", "!~"):
                raise self.fail("=, !=, =~ or !~")
            self.advance()
            value = self.string()
            if op.text in ("=~", "!~"):
                _compile(value)
            matchers.append(StreamMatcher(name, op.text, value))
            if self.tok.text == ",":
                self.advance()
            elif self.tok.text != "}":
                raise self.fail("',' or '}'")
        self.advance()
        if not matchers:
            raise LogQLError("a stream selector needs at least one label matcher, e.g. {job=\"api\"}")
        if all(_matches_empty(m) for m in matchers):
            raise LogQLError(
                "queries need at least one matcher that does not match the empty string, e.g. {job=\"api\"}"
            )
        return matchers


def _matches_empty(m: StreamMatcher) -> bool:
    return m.matches({})


def _check_re2(pattern: str, col: int) -> None:
    """Line-filter regexes run in the database's RE2 engine, as in Loki; reject what RE2
    cannot take here, before a query fails half way."""
    if re.search(r"\(\?[=!<]|\\[1-9]", pattern):
        raise LogQLError(f"regular expression at column {col} uses lookaround or backreferences, which RE2 does not support")
    _compile(pattern)


def parse(text: str) -> LogQuery | RangeAggregation | VectorAggregation:
    """Parse a LogQL query of the supported subset; raises LogQLError."""
    if not isinstance(text, str) or not text.strip():
        raise LogQLError("empty query")
    return _Parser(text).query()


def parse_stream_selector(text: str) -> list[StreamMatcher]:
    """Parse a bare stream selector ``{a="b", ...}``; raises LogQLError."""
    p = _Parser(text)
    m = p.selector()
    if p.tok.kind != "eof":
        raise p.fail("end of selector")
    return m

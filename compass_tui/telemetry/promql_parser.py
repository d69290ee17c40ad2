"""PromQL lexer, parser and AST, following the grammar of Prometheus 2.42.

The parser checks types the way Prometheus does (a range vector where an instant vector is
expected, a comparison between scalars without ``bool``...) so a query that Prometheus would
reject is rejected here too, with the column where the problem is.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

SCALAR, VECTOR, MATRIX, STRING = "scalar", "instant vector", "range vector", "string"


class PromQLError(ValueError):
    """A query that cannot be parsed or evaluated; the message names what and where."""

    def __init__(self, message: str, pos: int | None = None, query: str | None = None):
        self.pos = pos
        self.query = query
        self.reason = message
        if pos is not None and query is not None:
            line = query.count("\n", 0, pos) + 1
            col = pos - (query.rfind("\n", 0, pos) + 1) + 1
            where = f"column {col}" if line == 1 else f"line {line}, column {col}"
            message = f"{where}: {message}"
        super().__init__(message)


@functools.lru_cache(maxsize=4096)
def _compile_anchored(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(r"(?:" + pattern + r")\Z", re.DOTALL if "(?s" in pattern else 0)
    except re.error as exc:
        raise PromQLError(f"invalid regular expression {pattern!r}: {exc}") from None


@dataclass
class Matcher:
    """One label matcher. Regex matchers are fully anchored, like Prometheus's."""

    name: str
    op: str  # '=', '!=', '=~', '!~'
    value: str

    def matches(self, value: str) -> bool:
        """Whether a label value (``""`` for a missing label) satisfies this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = _compile_anchored(self.value).match(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ----------------------------------------------------------------------------------- AST


@dataclass
class Node:
    pos: int = field(default=0, kw_only=True)

    @property
    def type(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


@dataclass
class NumberLiteral(Node):
    value: float

    @property
    def type(self) -> str:
        return SCALAR


@dataclass
class StringLiteral(Node):
    value: str

    @property
    def type(self) -> str:
        return STRING


@dataclass
class VectorSelector(Node):
    name: str | None
    matchers: list[Matcher]
    offset_ms: int = 0
    at: float | str | None = None  # unix seconds, or "start"/"end"

    @property
    def type(self) -> str:
        return VECTOR


@dataclass
class MatrixSelector(Node):
    selector: VectorSelector
    range_ms: int

    @property
    def type(self) -> str:
        return MATRIX


@dataclass
class SubqueryExpr(Node):
    expr: Node
    range_ms: int
    step_ms: int  # 0: the default evaluation interval
    offset_ms: int = 0
    at: float | str | None = None

    @property
    def type(self) -> str:
        return MATRIX


@dataclass
class ParenExpr(Node):
    expr: Node

    @property
    def type(self) -> str:
        return self.expr.type


@dataclass
class UnaryExpr(Node):
    op: str
    expr: Node

    @property
    def type(self) -> str:
        return self.expr.type


@dataclass
class VectorMatching:
    card: str = "one-to-one"  # 'one-to-one', 'many-to-one', 'one-to-many', 'many-to-many'
    on: bool = False
    labels: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)


@dataclass
class BinaryExpr(Node):
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False
    matching: VectorMatching | None = None

    @property
    def type(self) -> str:
        if self.lhs.type == SCALAR and self.rhs.type == SCALAR:
            return SCALAR
        return VECTOR


@dataclass
class Call(Node):
    func: str
    args: list[Node]

    @property
    def type(self) -> str:
        return FUNCTIONS[self.func][1]


@dataclass
class AggregateExpr(Node):
    op: str
    expr: Node
    param: Node | None = None
    grouping: list[str] = field(default_factory=list)
    without: bool = False

    @property
    def type(self) -> str:
        return VECTOR


# name -> (argument types, return type, number of optional trailing args (-1: variadic))
FUNCTIONS: dict[str, tuple[tuple[str, ...], str, int]] = {
    "abs": ((VECTOR,), VECTOR, 0),
    **{f: ((VECTOR,), VECTOR, 0) for f in (
        "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh",
        "deg", "rad",
    )},
    "pi": ((), SCALAR, 0),
    "absent": ((VECTOR,), VECTOR, 0),
    "absent_over_time": ((MATRIX,), VECTOR, 0),
    "avg_over_time": ((MATRIX,), VECTOR, 0),
    "ceil": ((VECTOR,), VECTOR, 0),
    "changes": ((MATRIX,), VECTOR, 0),
    "clamp": ((VECTOR, SCALAR, SCALAR), VECTOR, 0),
    "clamp_max": ((VECTOR, SCALAR), VECTOR, 0),
    "clamp_min": ((VECTOR, SCALAR), VECTOR, 0),
    "count_over_time": ((MATRIX,), VECTOR, 0),
    "day_of_month": ((VECTOR,), VECTOR, 1),
    "day_of_week": ((VECTOR,), VECTOR, 1),
    "day_of_year": ((VECTOR,), VECTOR, 1),
    "days_in_month": ((VECTOR,), VECTOR, 1),
    "delta": ((MATRIX,), VECTOR, 0),
    "deriv": ((MATRIX,), VECTOR, 0),
    "exp": ((VECTOR,), VECTOR, 0),
    "floor": ((VECTOR,), VECTOR, 0),
    "histogram_quantile": ((SCALAR, VECTOR), VECTOR, 0),
    "holt_winters": ((MATRIX, SCALAR, SCALAR), VECTOR, 0),
    "hour": ((VECTOR,), VECTOR, 1),
    "idelta": ((MATRIX,), VECTOR, 0),
    "increase": ((MATRIX,), VECTOR, 0),
    "irate": ((MATRIX,), VECTOR, 0),
    "label_join": ((VECTOR, STRING, STRING, STRING), VECTOR, -1),
    "label_replace": ((VECTOR, STRING, STRING, STRING, STRING), VECTOR, 0),
    "last_over_time": ((MATRIX,), VECTOR, 0),
    "ln": ((VECTOR,), VECTOR, 0),
    "log10": ((VECTOR,), VECTOR, 0),
    "log2": ((VECTOR,), VECTOR, 0),
    "max_over_time": ((MATRIX,), VECTOR, 0),
    "min_over_time": ((MATRIX,), VECTOR, 0),
    "minute": ((VECTOR,), VECTOR, 1),
    "month": ((VECTOR,), VECTOR, 1),
    "predict_linear": ((MATRIX, SCALAR), VECTOR, 0),
    "present_over_time": ((MATRIX,), VECTOR, 0),
    "quantile_over_time": ((SCALAR, MATRIX), VECTOR, 0),
    "rate": ((MATRIX,), VECTOR, 0),
    "resets": ((MATRIX,), VECTOR, 0),
    "round": ((VECTOR, SCALAR), VECTOR, 1),
    "scalar": ((VECTOR,), SCALAR, 0),
    "sgn": ((VECTOR,), VECTOR, 0),
    "sort": ((VECTOR,), VECTOR, 0),
    "sort_desc": ((VECTOR,), VECTOR, 0),
    "sqrt": ((VECTOR,), VECTOR, 0),
    "stddev_over_time": ((MATRIX,), VECTOR, 0),
    "stdvar_over_time": ((MATRIX,), VECTOR, 0),
    "sum_over_time": ((MATRIX,), VECTOR, 0),
    "time": ((), SCALAR, 0),
    "timestamp": ((VECTOR,), VECTOR, 0),
    "vector": ((SCALAR,), VECTOR, 0),
    "year": ((VECTOR,), VECTOR, 1),
}

AGGREGATORS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
    "topk", "bottomk", "quantile", "count_values",
}  # fmt: skip
PARAM_AGGREGATORS = {"topk": SCALAR, "bottomk": SCALAR, "quantile": SCALAR, "count_values": STRING}

COMPARISON_OPS = {"==", "!=", ">", "<", ">=", "<="}
SET_OPS = {"and", "or", "unless"}
# Binary operator precedence, lowest first (Prometheus's generated_parser.y).
PRECEDENCE = {
    "or": 1,
    "and": 2, "unless": 2,
    "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
    "+": 4, "-": 4,
    "*": 5, "/": 5, "%": 5, "atan2": 5,
    "^": 6,
}  # fmt: skip
KEYWORDS = {
    "and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left",
    "group_right", "bool", "offset",
} | AGGREGATORS  # fmt: skip

_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                   "w": 604_800_000, "y": 31_536_000_000}  # fmt: skip
_DURATION_RE = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?\Z")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def parse_duration(text: str) -> int | None:
    """A Prometheus duration (``5m``, ``1h30m``, ``250ms``) in milliseconds, or None."""
    m = _DURATION_RE.match(text)
    if not m or not text:
        return None
    units = ("y", "w", "d", "h", "m", "s", "ms")
    return sum(int(g) * _DURATION_UNITS[u] for g, u in zip(m.groups(), units) if g)


# --------------------------------------------------------------------------------- lexer


@dataclass
class Token:
    kind: str  # 'ident', 'number', 'duration', 'string', 'op', 'eof'
    text: str
    pos: int
    value: object = None


_OPS = ["==", "!=", "<=", ">=", "=~", "!~", "+", "-", "*", "/", "%", "^", "<", ">", "=",
        "(", ")", "{", "}", "[", "]", ",", ":", "@"]  # fmt: skip
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION_TOKEN_RE = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
_IDENT_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", "'": "'", '"': '"'}  # fmt: skip


def _lex(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c == "#":  # comment to end of line
            j = query.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and query[i + 1].isdigit()):
            m = _DURATION_TOKEN_RE.match(query, i)
            if m and not (m.end() < n and (query[m.end()].isalnum() or query[m.end()] in "_.")):
                tokens.append(Token("duration", m.group(), i, parse_duration(m.group())))
                i = m.end()
                continue
            m = _NUMBER_RE.match(query, i)
            assert m is not None
            end = m.end()
            if end < n and (query[end].isalnum() or query[end] in "_:."):
                raise PromQLError(f"bad number or duration syntax: {query[i:end + 1]!r}", i, query)
            text = m.group()
            value = float(int(text, 16)) if text[:2].lower() == "0x" else float(text)
            tokens.append(Token("number", text, i, value))
            i = end
            continue
        if c.isalpha() or c == "_":  # a leading ':' is the subquery colon
            m = _IDENT_RE.match(query, i)
            assert m is not None
            word = m.group()
            if word.lower() in ("inf", "nan"):
                tokens.append(Token("number", word, i, float(word.lower())))
            else:
                tokens.append(Token("ident", word, i))
            i = m.end()
            continue
        if c in "\"'`":
            j = i + 1
            out: list[str] = []
            while True:
                if j >= n or (query[j] == "\n" and c != "`"):
                    raise PromQLError("unterminated quoted string", i, query)
                ch = query[j]
                if ch == c:
                    break
                if ch == "\\" and c != "`":
                    j, piece = _unescape(query, j, c, i)
                    out.append(piece)
                    continue
                out.append(ch)
                j += 1
            tokens.append(Token("string", query[i : j + 1], i, "".join(out)))
            i = j + 1
            continue
        for op in _OPS:
            if query.startswith(op, i):
                tokens.append(Token("op", op, i))
                i += len(op)
                break
        else:
            raise PromQLError(f"unexpected character {c!r}", i, query)
    tokens.append(Token("eof", "", n))
    return tokens


def _unescape(query: str, j: int, quote: str, start: int) -> tuple[int, str]:
    """Decode one Go string escape at query[j] == '\\'; returns (next index, text)."""
    if j + 1 >= len(query):
        raise PromQLError("unterminated quoted string", start, query)
    e = query[j + 1]
    if e in _GO_ESCAPES:
        return j + 2, _GO_ESCAPES[e]
    for prefix, width, base in (("x", 2, 16), ("u", 4, 16), ("U", 8, 16)):
        if e == prefix:
            digits = query[j + 2 : j + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise PromQLError("invalid escape sequence in string", j, query)
            return j + 2 + width, chr(int(digits, base))
    if e in "01234567":
        digits = query[j + 1 : j + 4]
        if len(digits) == 3 and all(d in "01234567" for d in digits):
            return j + 4, chr(int(digits, 8))
    raise PromQLError(f"unknown escape sequence \\{e} in string", j, query)


# -------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, query: str):
        self.query = query
        self.tokens = _lex(query)
        self.i = 0

    # token access
    def peek(self, k: int = 0) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, message: str, pos: int) -> PromQLError:
        return PromQLError(message, pos, self.query)

    def unexpected(self, tok: Token, context: str, expected: str | None = None) -> PromQLError:
        what = "end of input" if tok.kind == "eof" else repr(tok.text)
        msg = f"unexpected {what} in {context}"
        if expected:
            msg += f", expected {expected}"
        return self.error(msg, tok.pos)

    def is_op(self, text: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "op" and tok.text == text

    def is_kw(self, word: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "ident" and tok.text.lower() == word

    def expect_op(self, text: str, context: str) -> Token:
        tok = self.next()
        if tok.kind != "op" or tok.text != text:
            raise self.unexpected(tok, context, repr(text))
        return tok

    # grammar
    def parse(self) -> Node:
        if self.peek().kind == "eof":
            raise self.error("no expression found in input", 0)
        node = self.expr(0)
        tok = self.peek()
        if tok.kind != "eof":
            raise self.unexpected(tok, "expression", "an operator or end of input")
        return node

    def binary_op(self) -> str | None:
        tok = self.peek()
        if tok.kind == "op" and tok.text in PRECEDENCE:
            return tok.text
        if tok.kind == "ident" and tok.text.lower() in ("and", "or", "unless", "atan2"):
            return tok.text.lower()
        return None

    def expr(self, min_prec: int) -> Node:
        lhs = self.unary()
        while True:
            op = self.binary_op()
            if op is None or PRECEDENCE[op] < min_prec:
                return lhs
            op_tok = self.next()
            return_bool, matching = self.binary_modifiers(op)
            # '^' is right-associative; every other operator is left-associative.
            rhs = self.expr(PRECEDENCE[op] if op == "^" else PRECEDENCE[op] + 1)
            lhs = self.check_binary(BinaryExpr(op, lhs, rhs, return_bool, matching, pos=op_tok.pos))

    def binary_modifiers(self, op: str) -> tuple[bool, VectorMatching | None]:
        return_bool = False
        if self.is_kw("bool"):
            tok = self.next()
            if op not in COMPARISON_OPS:
                raise self.error("bool modifier can only be used on comparison operators", tok.pos)
            return_bool = True
        matching = None
        if self.is_kw("on") or self.is_kw("ignoring"):
            tok = self.next()
            matching = VectorMatching(on=tok.text.lower() == "on", labels=self.label_list("on/ignoring"))
            matching.pos = tok.pos  # type: ignore[attr-defined]
            if self.is_kw("group_left") or self.is_kw("group_right"):
                gtok = self.next()
                matching.card = "many-to-one" if gtok.text.lower() == "group_left" else "one-to-many"
                if self.is_op("("):
                    matching.include = self.label_list(gtok.text)
        elif self.is_kw("group_left") or self.is_kw("group_right"):
            tok = self.peek()
            raise self.error(f"unexpected {tok.text!r}: {tok.text} needs on(...) or ignoring(...) before it",
                             tok.pos)
        return return_bool, matching

    def label_list(self, context: str) -> list[str]:
        self.expect_op("(", f"grouping of {context}")
        labels: list[str] = []
        while True:
            tok = self.next()
            if tok.kind == "op" and tok.text == ")":
                return labels
            if tok.kind != "ident" or not _LABEL_NAME_RE.match(tok.text):
                raise self.unexpected(tok, f"grouping of {context}", "a label name or ')'")
            labels.append(tok.text)
            sep = self.next()
            if sep.kind == "op" and sep.text == ")":
                return labels
            if not (sep.kind == "op" and sep.text == ","):
                raise self.unexpected(sep, f"grouping of {context}", "',' or ')'")

    def check_binary(self, node: BinaryExpr) -> BinaryExpr:
        lt, rt = node.lhs.type, node.rhs.type
        for side, t in ((node.lhs, lt), (node.rhs, rt)):
            if t not in (SCALAR, VECTOR):
                raise self.error(
                    f"binary expression must contain only scalar and instant vector types, got {t}", side.pos
                )
        if node.op in SET_OPS:
            if lt != VECTOR or rt != VECTOR:
                raise self.error(f"set operator {node.op!r} not allowed in binary scalar expression", node.pos)
            if node.matching is None:
                node.matching = VectorMatching()
            if node.matching.card != "one-to-one":
                raise self.error(f"no grouping allowed for {node.op!r} operation", node.pos)
            node.matching.card = "many-to-many"
        elif node.matching is not None and (lt != VECTOR or rt != VECTOR):
            raise self.error("vector matching only allowed between instant vectors", node.pos)
        if node.op in COMPARISON_OPS and lt == SCALAR and rt == SCALAR and not node.return_bool:
            raise self.error("comparisons between scalars must use BOOL modifier", node.pos)
        if lt == VECTOR and rt == VECTOR and node.matching is None:
            node.matching = VectorMatching()
        if node.matching is not None and node.matching.on is False and node.matching.include:
            pass
        if node.matching is not None and node.matching.card in ("many-to-one", "one-to-many"):
            overlap = set(node.matching.labels) & set(node.matching.include)
            if node.matching.on and overlap:
                label = sorted(overlap)[0]
                raise self.error(f"label {label!r} must not occur in ON and GROUP clause at once", node.pos)
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("+", "-"):
            self.next()
            # Prometheus gives unary operators the precedence of '*': -a^b is -(a^b).
            operand = self.expr(PRECEDENCE["^"])
            if operand.type not in (SCALAR, VECTOR):
                raise self.error(f"unary expression only allowed on expressions of type scalar or "
                                 f"instant vector, got {operand.type}", operand.pos)
            if tok.text == "+":
                return operand
            if isinstance(operand, NumberLiteral):
                return NumberLiteral(-operand.value, pos=tok.pos)
            return UnaryExpr("-", operand, pos=tok.pos)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.is_op("["):
                node = self.range_or_subquery(node)
            elif self.is_kw("offset"):
                tok = self.next()
                sign = 1
                if self.is_op("-") or self.is_op("+"):
                    sign = -1 if self.next().text == "-" else 1
                dur = self.next()
                if dur.kind != "duration":
                    raise self.unexpected(dur, "offset", "a duration like 5m")
                self.set_offset(node, sign * int(dur.value), tok.pos)  # type: ignore[arg-type]
            elif self.is_op("@"):
                tok = self.next()
                self.set_at(node, self.at_value(), tok.pos)
            else:
                return node

    def at_value(self) -> float | str:
        tok = self.next()
        sign = 1.0
        if tok.kind == "op" and tok.text in ("+", "-"):
            sign = -1.0 if tok.text == "-" else 1.0
            tok = self.next()
        if tok.kind == "number":
            return sign * float(tok.value)  # type: ignore[arg-type]
        if tok.kind == "ident" and tok.text in ("start", "end") and sign > 0:
            self.expect_op("(", "@ modifier")
            self.expect_op(")", "@ modifier")
            return tok.text
        raise self.unexpected(tok, "@ modifier", "a timestamp, start() or end()")

    def target_of_modifier(self, node: Node, what: str, pos: int) -> VectorSelector | SubqueryExpr:
        if isinstance(node, MatrixSelector):
            return node.selector
        if isinstance(node, (VectorSelector, SubqueryExpr)):
            return node
        raise self.error(f"{what} modifier must be preceded by an instant vector selector or range vector "
                         f"selector or a subquery", pos)

    def set_offset(self, node: Node, offset_ms: int, pos: int) -> None:
        target = self.target_of_modifier(node, "offset", pos)
        if target.offset_ms:
            raise self.error("offset may not be set multiple times", pos)
        target.offset_ms = offset_ms

    def set_at(self, node: Node, at: float | str, pos: int) -> None:
        target = self.target_of_modifier(node, "@", pos)
        if target.at is not None:
            raise self.error("@ <timestamp> may not be set multiple times", pos)
        target.at = at

    def range_or_subquery(self, node: Node) -> Node:
        open_tok = self.next()
        dur = self.next()
        if dur.kind != "duration":
            raise self.unexpected(dur, "range or subquery", "a duration like 5m")
        if self.is_op("]"):
            self.next()
            if not isinstance(node, VectorSelector):
                raise self.error("ranges only allowed for vector selectors", open_tok.pos)
            if node.offset_ms or node.at is not None:
                raise self.error("no offset or @ modifier allowed before range", open_tok.pos)
            return MatrixSelector(node, int(dur.value), pos=node.pos)  # type: ignore[arg-type]
        self.expect_op(":", "subquery")
        step = 0
        if self.peek().kind == "duration":
            step = int(self.next().value)  # type: ignore[arg-type]
        self.expect_op("]", "subquery")
        if node.type != VECTOR:
            raise self.error(f"subquery is only allowed on instant vector, got {node.type}", node.pos)
        return SubqueryExpr(node, int(dur.value), step, pos=node.pos)  # type: ignore[arg-type]

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "number":
            self.next()
            return NumberLiteral(float(tok.value), pos=tok.pos)  # type: ignore[arg-type]
        if tok.kind == "string":
            self.next()
            return StringLiteral(str(tok.value), pos=tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self.next()
            inner = self.expr(0)
            self.expect_op(")", "parenthesised expression")
            return ParenExpr(inner, pos=tok.pos)
        if tok.kind == "op" and tok.text == "{":
            return self.selector(None, tok.pos)
        if tok.kind == "ident":
            word = tok.text
            low = word.lower()
            if low in AGGREGATORS and (self.is_op("(", 1) or self.is_kw("by", 1) or self.is_kw("without", 1)):
                return self.aggregation()
            if self.is_op("(", 1):
                return self.call()
            if low in KEYWORDS:
                raise self.unexpected(tok, "expression", "a metric name, number, string or '('")
            self.next()
            return self.selector(word, tok.pos)
        if tok.kind == "duration":
            raise self.error(f"unexpected duration {tok.text!r}: durations are only allowed in [...] "
                             "and after offset", tok.pos)
        raise self.unexpected(tok, "expression", "a metric name, number, string or '('")

    def selector(self, name: str | None, pos: int) -> VectorSelector:
        matchers: list[Matcher] = []
        if self.is_op("{"):
            self.next()
            while not self.is_op("}"):
                ltok = self.next()
                if ltok.kind != "ident" or not _LABEL_NAME_RE.match(ltok.text):
                    raise self.unexpected(ltok, "label matching", "a label name or '}'")
                optok = self.next()
                if optok.kind != "op" or optok.text not in ("=", "!=", "=~", "!~"):
                    raise self.unexpected(optok, "label matching", "one of '=', '!=', '=~', '!~'")
                vtok = self.next()
                if vtok.kind != "string":
                    raise self.unexpected(vtok, "label matching", "a quoted string")
                m = Matcher(ltok.text, optok.text, str(vtok.value))
                if m.op in ("=~", "!~"):
                    try:
                        _compile_anchored(m.value)
                    except PromQLError as exc:
                        raise self.error(exc.reason, vtok.pos) from None
                matchers.append(m)
                if self.is_op(","):
                    self.next()
                elif not self.is_op("}"):
                    raise self.unexpected(self.peek(), "label matching", "',' or '}'")
            self.next()
        if name is not None:
            if any(m.name == "__name__" for m in matchers):
                raise self.error("metric name must not be set twice", pos)
            matchers.insert(0, Matcher("__name__", "=", name))
        if not any(not m.matches("") for m in matchers):
            raise self.error("vector selector must contain at least one non-empty matcher", pos)
        return VectorSelector(name, matchers, pos=pos)

    def call(self) -> Call:
        tok = self.next()
        name = tok.text
        if name not in FUNCTIONS:
            raise self.error(f"unknown function with name {name!r}", tok.pos)
        self.expect_op("(", f"call to {name}")
        args: list[Node] = []
        if not self.is_op(")"):
            while True:
                args.append(self.expr(0))
                if self.is_op(","):
                    self.next()
                    continue
                break
        self.expect_op(")", f"call to function {name!r}")
        self.check_call(name, args, tok.pos)
        return Call(name, args, pos=tok.pos)

    def check_call(self, name: str, args: list[Node], pos: int) -> None:
        types, _, optional = FUNCTIONS[name]
        n = len(args)
        if optional == -1:
            ok = n >= len(types) - 1
        else:
            ok = len(types) - optional <= n <= len(types)
        if not ok:
            want = len(types) if optional == 0 else f"at least {len(types) - max(optional, 1)}"
            raise self.error(f"expected {want} argument(s) in call to {name!r}, got {n}", pos)
        for i, arg in enumerate(args):
            want_t = types[min(i, len(types) - 1)]
            if arg.type != want_t:
                raise self.error(f"expected type {want_t} in call to function {name!r}, got {arg.type}", arg.pos)

    def aggregation(self) -> AggregateExpr:
        tok = self.next()
        op = tok.text.lower()
        grouping: list[str] | None = None
        without = False
        if self.is_kw("by") or self.is_kw("without"):
            without = self.next().text.lower() == "without"
            grouping = self.label_list("by/without")
        self.expect_op("(", f"aggregation {op}")
        args: list[Node] = []
        if not self.is_op(")"):
            while True:
                args.append(self.expr(0))
                if self.is_op(","):
                    self.next()
                    if self.is_op(")"):
                        break
                    continue
                break
        self.expect_op(")", f"aggregation {op}")
        if self.is_kw("by") or self.is_kw("without"):
            if grouping is not None:
                raise self.error("grouping given twice in aggregation", self.peek().pos)
            without = self.next().text.lower() == "without"
            grouping = self.label_list("by/without")
        want = 2 if op in PARAM_AGGREGATORS else 1
        if len(args) != want:
            raise self.error(f"wrong number of arguments for aggregate expression provided, expected {want}, "
                             f"got {len(args)}", tok.pos)
        expr = args[-1]
        if expr.type != VECTOR:
            raise self.error(f"expected type instant vector in aggregation expression, got {expr.type}",
                             expr.pos)
        param = args[0] if want == 2 else None
        if param is not None and param.type != PARAM_AGGREGATORS[op]:
            raise self.error(f"expected type {PARAM_AGGREGATORS[op]} in aggregation parameter, got {param.type}",
                             param.pos)
        return AggregateExpr(op, expr, param, grouping or [], without, pos=tok.pos)


def parse(expr: str) -> Node:
    """Parse a PromQL expression into an AST; raises PromQLError naming the column."""
    if not isinstance(expr, str):
        raise PromQLError(f"query must be a string, got {type(expr).__name__}")
    return _Parser(expr).parse()


def walk(node: Node):
    """Every node of an AST, depth first."""
    yield node
    for child in _children(node):
        yield from walk(child)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MatrixSelector):
        return [node.selector]
    if isinstance(node, (SubqueryExpr, ParenExpr, UnaryExpr)):
        return [node.expr]
    if isinstance(node, BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, AggregateExpr):
        return [node.param, node.expr] if node.param is not None else [node.expr]
    return []

"""Runbooks: the engineer's own checks, written as small TOML files, run as one more agent.

A runbook says when it applies (alert name, service, labels; globs), which queries to run
(PromQL, LogQL, a trace search), the condition on what they return, and the cause it points
to (a catalog fault or ``other:<slug>``) with a note on the fix. The engine runs every
applicable runbook through the same QueryRunner as the other agents (same budget, read-only)
and its hypotheses face the same disproof. The format is documented in docs/runbooks.md.

Loading never stops at a bad file: each error is one line ``file:line: what is expected``
and the other runbooks still run.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

from compass_tui.engine.faults.base import Facts
from compass_tui.models import Chart, Evidence, InvestigationRequest

if TYPE_CHECKING:
    from compass_tui.engine.context import Candidate, Ctx
    from compass_tui.engine.queries import QueryRunner

QueryKind = Literal["promql", "logql", "traceql"]
QUERY_KINDS: tuple[str, ...] = ("promql", "logql", "traceql")
STATS = {
    "promql": ("max", "min", "mean", "last", "baseline", "rise", "drop", "ratio"),
    "logql": ("lines", "baseline_lines", "ratio"),
    "traceql": ("spans", "baseline_spans", "ratio"),
}
"""What a condition may test, per kind of query (see docs/runbooks.md)."""
ABSOLUTE = {"max", "min", "mean", "last", "lines", "spans"}
"""Stats that can be judged on the baseline alone: a condition on them that already held
before the incident is chronic, not a cause."""
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
_COND = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_FAULT = re.compile(r"^(?:[a-z][a-z0-9_]*|other:[a-z0-9][a-z0-9-]*)$")
_TRACE = re.compile(r'^\{\s*(?:resource\.service\.name\s*=\s*"([^"]+)")?\s*(?:&&\s*)?(status\s*=\s*error)?\s*\}$')
SERVICE_LABELS = ("service", "service_name", "job", "app", "container")
DEFAULT_CONFIDENCE = 0.8
"""How strongly a runbook that fired proposes its cause before disproof."""


class RunbookError(ValueError):
    """A runbook file cannot be used; the message is one line: ``file:line: what is expected``."""


# ---------------------------------------------------------------- the format


@dataclass
class Condition:
    """``stat op number`` (several joined with ``and``), e.g. ``max > 1000 and ratio >= 3``."""

    text: str
    terms: list[tuple[str, str, float]]

    def holds(self, stats: dict[str, float]) -> bool:
        """Whether every term holds on these stats (a stat that is NaN never holds)."""
        for stat, op, value in self.terms:
            x = stats.get(stat, float("nan"))
            if x is None or (isinstance(x, float) and math.isnan(x)) or not OPS[op](x, value):
                return False
        return True


@dataclass
class RunbookQuery:
    id: str
    kind: QueryKind
    text: str
    condition: Condition | None
    line: int


@dataclass
class When:
    """When a runbook applies: every given field must match (globs, any of a list)."""

    alertname: list[str] = field(default_factory=list)
    service: list[str] = field(default_factory=list)
    labels: dict[str, list[str]] = field(default_factory=dict)

    def applies(self, request: InvestigationRequest) -> bool:
        """Whether the alert of ``request`` matches."""
        def any_glob(value: str | None, globs: list[str]) -> bool:
            return not globs or (value is not None and any(fnmatch.fnmatchcase(value, g) for g in globs))

        if not any_glob(request.alertname, self.alertname):
            return False
        if not any_glob(request.service, self.service):
            return False
        return all(any_glob(request.labels.get(k), g) for k, g in self.labels.items())


@dataclass
class Runbook:
    name: str
    path: str
    fault: str
    note: str
    queries: list[RunbookQuery]
    when: When = field(default_factory=When)
    service: str | None = None
    """Template of the culprit: ``{label}`` of the series that fired, or ``{alert}``; None
    takes the series' service label, else the alerting service."""
    match: Literal["all", "any"] = "all"
    confidence: float = DEFAULT_CONFIDENCE
    draft: bool = False

    @property
    def label(self) -> str:
        """How evidence names it: ``runbook NAME (FILE)``."""
        return f"runbook {self.name} ({self.path})" + (" [draft]" if self.draft else "")


@dataclass
class RunbookSet:
    """The runbooks an investigation runs, the load errors (one line each), and what each
    runbook found in the last run (for ``compass runbook test``)."""

    runbooks: list[Runbook] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    results: dict[str, "RunbookResult"] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.runbooks)


def _line_of(text: str, key: str, table: str | None = None, index: int = 0) -> int:
    """The line where ``key`` is set (inside the ``index``-th ``[[table]]``/``[table]`` when
    given), else the table's header line, else 1: TOML parsers do not say where a key was."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    if table:
        heads = [i for i, ln in enumerate(lines) if re.match(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$", ln)]
        if index < len(heads):
            start = heads[index]
            nxt = [i for i, ln in enumerate(lines) if i > start and re.match(r"^\s*\[", ln)]
            end = nxt[0] if nxt else len(lines)
            for i in range(start, end):
                if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
                    return i + 1
            return start + 1
    else:
        for i in range(start, end):
            if re.match(r"^\s*\[", lines[i]):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
                return i + 1
    return 1


def parse_condition(text: str, kind: str) -> Condition:
    """Parse ``stat op number [and ...]``; raises ValueError saying what is expected."""
    terms = []
    for part in re.split(r"\s+and\s+", text.strip()):
        m = _COND.match(part)
        if not m:
            raise ValueError(f"condition {part!r}: expected `STAT OP NUMBER` (e.g. `max > 1000`), OP one of > >= < <= == !=")
        stat, op, num = m.group(1), m.group(2), float(m.group(3))
        if stat not in STATS[kind]:
            raise ValueError(f"condition {part!r}: {stat!r} is not a stat of a {kind} query; expected one of {', '.join(STATS[kind])}")
        terms.append((stat, op, num))
    return Condition(text=text.strip(), terms=terms)


def _globs(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise TypeError


def parse_runbook(text: str, path: str) -> Runbook:
    """A runbook from TOML text; raises RunbookError (one line, with the file and line)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = m.group(1) if m else "1"
        msg = msg[: m.start()].strip() if m else msg
        raise RunbookError(f"{path}:{line}: invalid TOML: {msg}") from None

    def fail(key: str, expected: str, table: str | None = None, index: int = 0) -> RunbookError:
        return RunbookError(f"{path}:{_line_of(text, key, table, index)}: {key}: {expected}")

    known = {"name", "fault", "service", "note", "when", "query", "match", "confidence", "draft", "description"}
    for k in doc:
        if k not in known:
            return_err = fail(k, f"unknown key; expected one of {', '.join(sorted(known))}")
            raise return_err
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "expected a non-empty string (the runbook's name)")
    fault = doc.get("fault")
    if not isinstance(fault, str) or not _FAULT.match(fault):
        raise fail("fault", "expected a catalog fault id or other:<slug> (lowercase letters, digits, dashes: e.g. other:kafka-consumer-lag)")
    note = doc.get("note", "")
    if not isinstance(note, str):
        raise fail("note", "expected a string (what fixes it)")
    service = doc.get("service")
    if service is not None and (not isinstance(service, str) or not service.strip()):
        raise fail("service", "expected a string: a service name, {label} of the series that fired, or {alert}")
    match = doc.get("match", "all")
    if match not in ("all", "any"):
        raise fail("match", "expected \"all\" or \"any\"")
    conf = doc.get("confidence", DEFAULT_CONFIDENCE)
    if not isinstance(conf, (int, float)) or isinstance(conf, bool) or not 0.0 < float(conf) <= 1.0:
        raise fail("confidence", "expected a number in (0, 1]")
    draft = doc.get("draft", False)
    if not isinstance(draft, bool):
        raise fail("draft", "expected true or false")
    when = When()
    w = doc.get("when", {})
    if not isinstance(w, dict):
        raise fail("when", "expected a table ([when])")
    for k, v in w.items():
        try:
            if k == "alertname":
                when.alertname = _globs(v)
            elif k == "service":
                when.service = _globs(v)
            elif k == "labels":
                if not isinstance(v, dict):
                    raise TypeError
                when.labels = {str(lk): _globs(lv) for lk, lv in v.items()}
            else:
                raise fail(k, "unknown key of [when]; expected alertname, service or labels", "when")
        except TypeError:
            raise fail(k, "expected a glob string or a list of them" + (" per label" if k == "labels" else ""), "when") from None
    qs = doc.get("query")
    if not isinstance(qs, list) or not qs or not all(isinstance(q, dict) for q in qs):
        raise fail("query", "expected at least one [[query]] table with promql, logql or traceql")
    queries = []
    for i, q in enumerate(qs):
        for k in q:
            if k not in ("id", "condition", *QUERY_KINDS):
                raise fail(k, "unknown key of [[query]]; expected id, promql|logql|traceql, condition", "query", i)
        kinds = [k for k in QUERY_KINDS if k in q]
        if len(kinds) != 1:
            raise fail("promql", "each [[query]] needs exactly one of promql, logql, traceql", "query", i)
        kind = kinds[0]
        qtext = q[kind]
        if not isinstance(qtext, str) or not qtext.strip():
            raise fail(kind, "expected the query text as a string", "query", i)
        if kind == "traceql" and not _TRACE.match(qtext.strip()):
            raise fail(kind, 'expected a trace search: { }, { status = error }, { resource.service.name = "S" } or both joined by &&', "query", i)
        qid = q.get("id", f"q{i + 1}")
        if not isinstance(qid, str):
            raise fail("id", "expected a string", "query", i)
        cond = None
        if "condition" in q:
            if not isinstance(q["condition"], str):
                raise fail("condition", "expected a string like \"max > 1000\"", "query", i)
            try:
                cond = parse_condition(q["condition"], kind)
            except ValueError as e:
                raise fail("condition", str(e), "query", i) from None
        queries.append(RunbookQuery(id=qid, kind=kind, text=qtext.strip(), condition=cond,
                                    line=_line_of(text, kind, "query", i)))
    if not any(q.condition for q in queries):
        raise fail("condition", "no [[query]] has a condition, so the runbook could never fire", "query", 0)
    return Runbook(name=name.strip(), path=path, fault=fault, note=note.strip(), queries=queries, when=when,
                   service=service.strip() if service else None, match=match, confidence=float(conf), draft=draft)


def load_file(path: str | os.PathLike[str]) -> Runbook:
    """Read one runbook file; raises RunbookError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RunbookError(f"{p}:1: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise RunbookError(f"{p}:1: not UTF-8 text (expected a TOML runbook)") from None
    return parse_runbook(text, str(p))


def shipped_dir() -> Path | None:
    """The runbooks shipped with COMPASS: installed data files, or a source checkout's."""
    for d in (Path(sys.prefix) / "share" / "compass" / "runbooks",
              Path(__file__).resolve().parent.parent / "runbooks"):
        if d.is_dir():
            return d
    return None


def personal_dir() -> Path:
    """``$XDG_CONFIG_HOME/compass/runbooks``: where the engineer's own runbooks and drafts go."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "compass" / "runbooks"


def configured_dirs(cfg: Any | None) -> list[Path]:
    """The folders to read, in order: the shipped examples (unless ``shipped_runbooks`` is
    off), the personal folder, and ``runbook_dirs`` of the config."""
    dirs: list[Path] = []
    if cfg is None or getattr(cfg, "shipped_runbooks", True):
        s = shipped_dir()
        if s is not None:
            dirs.append(s)
    dirs.append(personal_dir())
    for d in getattr(cfg, "runbook_dirs", None) or []:
        dirs.append(Path(d).expanduser())
    return dirs


def load_dirs(dirs: list[Path] | list[str], files: list[str] | None = None) -> RunbookSet:
    """Every ``*.toml`` of ``dirs`` (a missing folder is simply empty) plus ``files``; bad
    files become one-line errors, the rest load. A later runbook with the name of an
    earlier one replaces it (the personal folder overrides a shipped example)."""
    out = RunbookSet()
    paths: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_dir():
            paths += sorted(d.glob("*.toml"))
    paths += [Path(f) for f in files or []]
    by_name: dict[str, Runbook] = {}
    for p in paths:
        try:
            rb = load_file(p)
        except RunbookError as e:
            out.errors.append(str(e))
            continue
        by_name[rb.name] = rb
    out.runbooks = list(by_name.values())
    return out


def load_configured(cfg: Any | None) -> RunbookSet:
    """The runbooks of the configured folders."""
    return load_dirs(configured_dirs(cfg))


# ---------------------------------------------------------------- running


@dataclass
class SeriesOutcome:
    labels: dict[str, str]
    stats: dict[str, float]
    held: bool
    chronic: bool = False
    onset: float | None = None
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class QueryOutcome:
    query: RunbookQuery
    status: str
    """ok, no_data, error, or skipped (budget)."""
    error: str | None = None
    series: list[SeriesOutcome] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return any(s.held for s in self.series)


@dataclass
class RunbookResult:
    runbook: Runbook
    applies: bool
    queries: list[QueryOutcome] = field(default_factory=list)
    fired: bool = False
    services: list[str] = field(default_factory=list)
    why: str = ""


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    a = abs(x)
    if a >= 1e5 or (0 < a < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}"


def fmt_stats(stats: dict[str, float]) -> str:
    """``max 4.8e4, baseline 120, ...`` for evidence and the test command."""
    return ", ".join(f"{k} {_fmt(v)}" for k, v in stats.items())


def _series_stats(times: np.ndarray, v: np.ndarray, base_end: float, end: float) -> tuple[dict[str, float], dict[str, float]]:
    """Stats of the part after the baseline and of the baseline itself."""
    ok = np.isfinite(v)
    before = v[ok & (times <= base_end)]
    during = v[ok & (times > base_end) & (times <= end)]
    nan = float("nan")
    base = float(np.median(before)) if len(before) else nan

    def of(part: np.ndarray) -> dict[str, float]:
        if not len(part):
            return {"max": nan, "min": nan, "mean": nan, "last": nan}
        return {"max": float(np.max(part)), "min": float(np.min(part)), "mean": float(np.mean(part)),
                "last": float(part[-1])}

    d = of(during)
    d["baseline"] = base
    d["rise"] = d["max"] - base if not math.isnan(base) else nan
    d["drop"] = base - d["min"] if not math.isnan(base) else nan
    if math.isnan(base) or math.isnan(d["max"]):
        d["ratio"] = nan
    elif abs(base) < 1e-12:
        d["ratio"] = float("inf") if d["max"] > 1e-12 else 1.0
    else:
        d["ratio"] = d["max"] / base
    return d, of(before)


def _first_held(times: np.ndarray, v: np.ndarray, cond: Condition, base: float, base_end: float) -> float | None:
    """The first time after the baseline where the condition held point by point (two points
    in a row, one gap allowed), so the disproof can judge what came first."""
    holds = np.zeros(len(v), dtype=bool)
    for i, x in enumerate(v):
        if not np.isfinite(x) or times[i] <= base_end:
            continue
        pt = {"max": x, "min": x, "mean": x, "last": x, "baseline": base, "rise": x - base, "drop": base - x,
              "ratio": (x / base) if abs(base) > 1e-12 else (float("inf") if x > 1e-12 else 1.0)}
        holds[i] = cond.holds(pt)
    idx = np.nonzero(holds)[0]
    for j in idx:
        if j + 1 < len(holds) and (holds[j + 1] or (j + 2 < len(holds) and holds[j + 2])):
            return float(times[j])
    return float(times[idx[0]]) if len(idx) else None


def _counts(ts: list[float], base_start: float, base_end: float, end: float) -> tuple[dict[str, float], float | None]:
    before = sum(1 for t in ts if t <= base_end)
    during = sorted(t for t in ts if base_end < t <= end)
    rb = before / max(base_end - base_start, 1.0)
    rd = len(during) / max(end - base_end, 1.0)
    ratio = (rd / rb) if rb > 0 else (float("inf") if rd > 0 else 1.0)
    return {"n": float(len(during)), "baseline_n": float(before), "ratio": ratio}, (during[0] if during else None)


def _render_service(template: str | None, labels: dict[str, str], alert_service: str | None) -> str | None:
    if template is None:
        for k in SERVICE_LABELS:
            if labels.get(k):
                return labels[k]
        return alert_service
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        key = m.group(1)
        if key == "alert":
            if not alert_service:
                missing = True
            return alert_service or ""
        if key not in labels:
            missing = True
            return ""
        return labels[key]

    out = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, template)
    return None if missing or not out else out


async def evaluate(rb: Runbook, ctx: "Ctx", runner: "QueryRunner", agent: str = "runbooks") -> RunbookResult:
    """Run one runbook's queries through the runner and judge its conditions."""
    from compass_tui.engine.queries import BudgetExhausted

    req = ctx.request
    res = RunbookResult(runbook=rb, applies=rb.when.applies(req))
    if not res.applies:
        res.why = "does not apply to this alert ([when] did not match)"
        return res
    g = ctx.grid
    times = g.times
    for q in rb.queries:
        out = QueryOutcome(query=q, status="ok")
        res.queries.append(out)
        try:
            if q.kind == "promql":
                r = await runner.range(agent, q.text, g.start, g.end, g.step)
            elif q.kind == "logql":
                r = await runner.logs(agent, q.text, g.start, g.end, limit=5000)
            else:
                m = _TRACE.match(q.text)
                r = await runner.traces(agent, g.start, g.end, service=m.group(1) if m else None,
                                        error_only=bool(m and m.group(2)), limit=20000)
        except BudgetExhausted as e:
            out.status, out.error = "skipped", str(e)
            continue
        if r is None or r.status == "error":
            out.status, out.error = "error", getattr(r, "error", None) or "no answer"
            continue
        out.status = r.status
        if q.kind == "promql":
            for s in r.series:
                v = g.align(s.t, s.v)
                during, before = _series_stats(times, v, g.baseline_end, g.end)
                labels = {k: val for k, val in s.labels.items() if k != "__name__"}
                ok = np.isfinite(v)
                stride = max(1, int(np.ceil(ok.sum() / 240)))
                so = SeriesOutcome(labels=labels, stats=during, held=False,
                                   points=list(zip(times[ok].tolist(), v[ok].tolist()))[::stride])
                if q.condition is not None:
                    so.held = q.condition.holds(during)
                    abs_terms = [t for t in q.condition.terms if t[0] in ABSOLUTE]
                    if so.held and abs_terms and len(abs_terms) == len(q.condition.terms):
                        so.chronic = Condition(q.condition.text, abs_terms).holds(before)
                    if so.held:
                        so.onset = _first_held(times, v, q.condition, during["baseline"], g.baseline_end)
                out.series.append(so)
        else:
            ts = [ln.t for ln in r.lines] if q.kind == "logql" else [sp.start for sp in r.spans]
            c, first = _counts(ts, g.start, g.baseline_end, g.end)
            unit = "lines" if q.kind == "logql" else "spans"
            stats = {unit: c["n"], f"baseline_{unit}": c["baseline_n"], "ratio": c["ratio"]}
            so = SeriesOutcome(labels={}, stats=stats, held=False, onset=first)
            if q.condition is not None:
                so.held = q.condition.holds(stats)
                abs_terms = [t for t in q.condition.terms if t[0] in ABSOLUTE]
                if so.held and abs_terms and len(abs_terms) == len(q.condition.terms):
                    so.chronic = Condition(q.condition.text, abs_terms).holds({unit: c["baseline_n"]})
            out.series.append(so)
    judged = [o for o in res.queries if o.query.condition is not None]
    held = [o.held for o in judged]
    res.fired = bool(held) and (all(held) if rb.match == "all" else any(held))
    if not res.fired:
        failed = [o.query.id for o in judged if not o.held]
        res.why = "condition did not hold: " + ", ".join(failed)
    return res


@dataclass
class RunbookFacts(Facts):
    """What a runbook's hypothesis carries into the disproof: the runbook it came from."""

    runbook: str = ""


def candidates(res: RunbookResult, ctx: "Ctx") -> list["Candidate"]:
    """The hypotheses a fired runbook proposes: one per culprit its firing series name."""
    from compass_tui.engine.context import Candidate

    if not res.fired:
        return []
    rb = res.runbook
    alert_svc = ctx.symptom_service or ctx.request.service
    known = ctx.stack.services | set(ctx.graph.nodes()) | set(ctx.affected)
    per_service: dict[str, list[tuple[QueryOutcome, SeriesOutcome]]] = {}
    for o in res.queries:
        for s in o.series:
            if s.held or (o.query.condition is None and s.labels):
                svc = _render_service(rb.service, s.labels, alert_svc)
                if svc is None:
                    continue
                if svc not in known:
                    # label values often differ from the service name only in case
                    loose = [k for k in known if k.lower() == svc.lower()]
                    svc = loose[0] if len(loose) == 1 else svc
                per_service.setdefault(svc, []).append((o, s))
    if not per_service and alert_svc:
        per_service[alert_svc] = [(o, s) for o in res.queries for s in o.series if s.held]
    out = []
    for svc, hits in per_service.items():
        onsets = [s.onset for _, s in hits if s.onset is not None]
        chronic = any(s.chronic for _, s in hits)
        strength = 0.3 if chronic else rb.confidence
        c = Candidate(rb.fault, svc, "runbook", strength, f"{rb.name} (runbook {Path(rb.path).name})",
                      min(onsets) if onsets else None)
        first = min(((s.onset, o.query.kind) for o, s in hits if s.onset is not None), default=None)
        c.from_lines = first is not None and first[1] != "promql"  # sampled lines can lag the truth
        c.evidence.append(Evidence(kind="runbook", summary=f"{rb.label}: " + (rb.note or "no note") +
                                   (" (its condition already held before the incident)" if chronic else ""),
                                   supports=not chronic, source=rb.path, query=f"runbook {rb.path}"))
        seen = set()
        for o, s in hits:
            key = (o.query.id, tuple(sorted(s.labels.items())))
            if key in seen:
                continue
            seen.add(key)
            where = ", ".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            summary = f"[{rb.label}] {o.query.id}: {o.query.condition.text if o.query.condition else 'context'} " \
                      f"({fmt_stats(s.stats)})" + (f" on {where}" if where else "")
            if o.query.kind == "promql":
                e = Evidence(kind="metric", summary=summary, supports=True, source=ctx.source, query=o.query.text,
                             link=ctx.link(o.query.text))
                if s.points:
                    e.chart = Chart(label=f"{rb.name} {o.query.id}" + (f" {where}" if where else ""),
                                    points=s.points, onset=s.onset)
                c.evidence.append(e)
            elif o.query.kind == "logql":
                c.evidence.append(Evidence(kind="log", summary=summary, supports=True, source=ctx.log_source,
                                           query=o.query.text, link=ctx.link(o.query.text, "log")))
            else:
                c.evidence.append(Evidence(kind="trace", summary=summary, supports=True, source=ctx.source,
                                           query=o.query.text))
        c.facts = RunbookFacts(runbook=rb.path)
        out.append(c)
    return out


async def propose(ctx: "Ctx", runner: "QueryRunner", rbset: RunbookSet | None,
                  emit: Callable[["Candidate"], None] | None = None,
                  degrade: Callable[..., None] | None = None) -> list["Candidate"]:
    """The runbook agent: run every applicable runbook and return its hypotheses (before
    disproof). Load errors and a runbook that fails while running become ``degraded``
    entries; the others still run."""
    if not rbset:
        if rbset is not None and rbset.errors and degrade:
            degrade("runbooks", "; ".join(rbset.errors))
        return []
    if rbset.errors and degrade is not None:
        degrade("runbooks", "; ".join(rbset.errors), "fix the file named, or move it out of the runbook folder")
    out: list[Candidate] = []
    rbset.results = {}
    for rb in rbset.runbooks:
        try:
            res = await evaluate(rb, ctx, runner)
            found = candidates(res, ctx)
        except Exception as e:  # one runbook failing must not lose the others
            if degrade is not None:
                degrade(f"runbook:{rb.name}", f"{rb.path}: failed while running: {type(e).__name__}: {e}")
            continue
        rbset.results[rb.name] = res
        res.services = [c.service for c in found]
        for c in found:
            if emit is not None and c.strength >= 0.3:
                emit(c)
        out += found
    return out


# ---------------------------------------------------------------- learning a draft


def _toml_str(s: str) -> str:
    """A TOML literal string when it can be one (queries keep their quotes), else basic."""
    if "'" not in s and "\n" not in s:
        return f"'{s}'"
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _condition_from_chart(points: list[tuple[float, float]], alert_at: float | None) -> str | None:
    vals = [v for _, v in points if math.isfinite(v)]
    if len(vals) < 6:
        return None
    half = len(vals) // 2
    base = float(np.median(vals[: max(1, half // 2)]))
    peak = max(vals[half:]) if vals[half:] else max(vals)
    if peak <= base:
        return None
    thr = base + 0.5 * (peak - base)
    return f"max > {thr:.4g}" + (f" and ratio >= {min(10.0, max(1.5, peak / base * 0.5)):.2g}" if base > 0 else "")


def draft_runbook(report: Any, fault: str, service: str, queries: list[tuple[str, str]] | None = None,
                  alert: str | None = None) -> str:
    """TOML text of a draft runbook for a cause the engineer named (often ``other:<slug>``),
    from ``queries`` ((kind, text): what they ran in the chat) or, without any, the queries of
    the evidence on that service. Conditions come from the charts when the values are at
    hand, else a generic "it moved" condition to review."""
    slug = fault.split(":", 1)[-1]
    picked: list[tuple[str, str, str | None]] = []
    for kind, text in queries or []:
        picked.append((kind, text, None))
    if not picked:
        for h in getattr(report, "hypotheses", []):
            if h.service != service:
                continue
            for e in h.evidence:
                if e.kind == "metric" and e.query and not e.query.startswith("match[]"):
                    cond = _condition_from_chart(e.chart.points, None) if e.chart is not None else None
                    picked.append(("promql", e.query, cond))
                elif e.kind == "log" and e.query.startswith("{"):
                    picked.append(("logql", e.query, "lines > 5 and ratio >= 3"))
        seen: set[str] = set()
        picked = [p for p in picked if not (p[1] in seen or seen.add(p[1]))][:3]
    inv = getattr(report, "investigation_id", "?")
    lines = [
        f"# Draft learnt from investigation {inv}, where the engineer said it was actually {fault}@{service}.",
        "# Review the queries and conditions, then: compass runbook test THIS_FILE --bundle INCIDENT",
        "# (docs/runbooks.md). Delete `draft = true` once you trust it.",
        f"name = {_toml_str(slug.replace('_', ' ').replace('-', ' ').capitalize())}",
        f"fault = {_toml_str(fault)}",
        f"service = {_toml_str(service)}",
        "note = " + _toml_str(f"Learnt from {inv}: what fixed it last time?"),
        "draft = true",
        "",
    ]
    if alert:
        lines += ["[when]", f"alertname = {_toml_str(alert)}", ""]
    if not picked:
        lines += ["# No query showed it in that investigation: write the one that would.", "[[query]]",
                  "id = \"signal\"", "promql = 'up'", "condition = \"min < 1\"", ""]
    for i, (kind, text, cond) in enumerate(picked, 1):
        if kind not in QUERY_KINDS:
            kind = "promql"
        default = {"promql": "ratio >= 3", "logql": "lines > 5 and ratio >= 3", "traceql": "spans > 5 and ratio >= 3"}[kind]
        lines += ["[[query]]", f'id = "q{i}"', f"{kind} = {_toml_str(text)}",
                  f'condition = "{cond or default}"' + ("" if cond else "   # a guess: the signal moved; review it"), ""]
    return "\n".join(lines)

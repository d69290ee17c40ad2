"""The bundle backend: an incident frozen to files, loaded into DuckDB and queried locally.

``open_bundle(path)`` reads a bundle directory or ``.tar.gz`` (see the incident bundle spec)
and returns a :class:`BundleBackend` that answers every verb of
:class:`~compass_tui.telemetry.backend.Backend`: PromQL through the project's evaluator over
the bundle's samples, LogQL (the subset in :mod:`compass_tui.telemetry.logql`) pushed down
into DuckDB SQL, trace search and annotations. Replay, the demo, the tests and the accuracy
benchmark therefore run the engine's real query path.

Tables (one DuckDB connection per backend, in memory unless ``db_path`` is given):
``series(sid, name, labels)``, ``samples(sid, t, v)``, ``log_streams(stream_id, labels)``,
``log_lines(stream_id, t_ns, line)``, ``spans(idx, trace_id, ..., start_ns, end_ns, error,
attributes)``, ``annotations(time, time_end, tags, text)``. Label sets are JSON text.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from compass_tui.telemetry import logql
from compass_tui.telemetry.backend import (
    Annotation,
    AnnotationResult,
    Capabilities,
    LogLine,
    LogResult,
    MetricResult,
    Series,
    Span,
    TraceResult,
)
from compass_tui.telemetry.bundle_reader import (
    KNOWN_FILES,
    AnnotationRow,
    BundleError,
    BundleLocation,
    LogsData,
    MetricsData,
    SpanRow,
    locate_bundle,
    parse_annotations,
    parse_logs,
    parse_openmetrics,
    parse_rfc3339,
    parse_traces,
    read_incident,
    read_manifest,
)
from compass_tui.telemetry.preload import Preload

__all__ = ["BundleBackend", "BundleError", "BundleSeriesSource", "open_bundle"]


# --------------------------------------------------------------------------- metrics


def _op_text(op: Any) -> str:
    """A matcher operator as text, whether given as a string or an enum."""
    op = getattr(op, "value", op)
    return {"EQ": "=", "NEQ": "!=", "RE": "=~", "NRE": "!~", "==": "="}.get(op, op)


class BundleSeriesSource:
    """The bundle's samples, served to the PromQL evaluator (``SeriesSource``).

    All samples live in a few numpy arrays sorted by (series, time); a series is a slice, so
    a select is a label match (cached per matcher set) plus two binary searches per series.
    Returned arrays are read-only views: the evaluator runs hundreds of queries against the
    same data and must not change it."""

    def __init__(self, data: MetricsData):
        self.labels = data.labels
        self._t = data.t
        self._v = data.v
        self._off = data.offsets
        self._t.flags.writeable = False
        self._v.flags.writeable = False
        self.by_name: dict[str, list[int]] = {}
        for sid, lab in enumerate(self.labels):
            self.by_name.setdefault(lab["__name__"], []).append(sid)
        self._match_cache: dict[tuple, list[int]] = {}
        self._regex: dict[str, re.Pattern] = {}
        self._lock = threading.Lock()

    def _re(self, pattern: str) -> re.Pattern:
        r = self._regex.get(pattern)
        if r is None:
            r = re.compile(pattern)
            self._regex[pattern] = r
        return r

    def match(self, matchers) -> list[int]:
        """Series ids whose labels satisfy every matcher (``name``, ``op``, ``value``)."""
        key = tuple((m.name, _op_text(m.op), m.value) for m in matchers)
        hit = self._match_cache.get(key)
        if hit is not None:
            return hit
        cands: list[int] | range = range(len(self.labels))
        for name, op, value in key:
            if name == "__name__" and op == "=":
                cands = self.by_name.get(value, [])
                break
        out = []
        for sid in cands:
            lab = self.labels[sid]
            ok = True
            for name, op, value in key:
                v = lab.get(name, "")
                if op == "=":
                    ok = v == value
                elif op == "!=":
                    ok = v != value
                elif op == "=~":
                    ok = self._re(value).fullmatch(v) is not None
                elif op == "!~":
                    ok = self._re(value).fullmatch(v) is None
                else:
                    raise ValueError(f"unknown matcher operator {op!r}")
                if not ok:
                    break
            if ok:
                out.append(sid)
        with self._lock:
            if len(self._match_cache) > 4096:
                self._match_cache.clear()
            self._match_cache[key] = out
        return out

    def samples(self, sid: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples of one series with ``start <= t <= end``."""
        o0, o1 = int(self._off[sid]), int(self._off[sid + 1])
        t = self._t[o0:o1]
        i0 = o0 + int(np.searchsorted(t, start, side="left"))
        i1 = o0 + int(np.searchsorted(t, end, side="right"))
        return self._t[i0:i1], self._v[i0:i1]

    def select(self, matchers, start: float, end: float) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """``(labels incl. __name__, t, v)`` of every matching series with samples in
        ``[start, end]`` (both ends included; the evaluator trims to its own semantics)."""
        out = []
        for sid in self.match(matchers):
            t, v = self.samples(sid, start, end)
            if len(t):
                out.append((dict(self.labels[sid]), t, v))
        return out


_SEL_NAME_RE = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*")


def parse_series_selector(selector: str) -> list:
    """Matchers of a PromQL series selector (``up``, ``up{job="a"}``, ``{__name__=~"x.*"}``);
    ValueError with a one-line message if it is not one."""
    try:
        from compass_tui.telemetry import promql_parser
    except ImportError:
        return _parse_series_selector_fallback(selector)
    try:
        node = promql_parser.parse(selector)
    except promql_parser.PromQLError as e:
        raise ValueError(f"bad series selector {selector!r}: {e}") from None
    if not isinstance(node, promql_parser.VectorSelector):
        raise ValueError(f"bad series selector {selector!r}: expected a metric name and/or {{label matchers}}")
    matchers = list(node.matchers)
    if node.name and not any(m.name == "__name__" for m in matchers):
        matchers.append(logql.StreamMatcher("__name__", "=", node.name))
    return matchers


def _parse_series_selector_fallback(selector: str) -> list[logql.StreamMatcher]:
    m = _SEL_NAME_RE.match(selector)
    name = m.group(1) if m else None
    rest = selector[m.end():] if m else selector
    matchers: list[logql.StreamMatcher] = []
    if name:
        matchers.append(logql.StreamMatcher("__name__", "=", name))
    if rest.strip():
        if name and rest.strip() == "{}":
            return matchers
        try:
            matchers += logql.parse_stream_selector(rest)
        except logql.LogQLError as e:
            raise ValueError(f"bad series selector {selector!r}: {e}") from None
    if not matchers:
        raise ValueError(f"bad series selector {selector!r}: expected a metric name or {{...}}")
    return matchers


# --------------------------------------------------------------------------- log parsing stages

_LOGFMT_RE = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
_LABEL_SANITIZE_RE = re.compile(r"[^a-zA-Z0-9_]")


def _sanitize(name: str) -> str:
    s = _LABEL_SANITIZE_RE.sub("_", name)
    return "_" + s if s and s[0].isdigit() else s


def _flatten_json(obj: dict, prefix: str, out: dict[str, str]) -> None:
    for k, v in obj.items():
        key = _sanitize(f"{prefix}{k}")
        if isinstance(v, dict):
            _flatten_json(v, key + "_", out)
        elif isinstance(v, list):
            continue  # Loki's json parser skips arrays
        elif v is None:
            out[key] = ""
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, float) and v.is_integer():
            out[key] = str(int(v)) if abs(v) < 1e15 else str(v)
        else:
            out[key] = str(v)


def _extract(line: str, parsers: list[logql.ParserStage]) -> dict[str, str] | None:
    """Labels the parser stages extract from a line; None when the line does not parse
    (Loki sets ``__error__`` on it, which a label filter then drops)."""
    out: dict[str, str] = {}
    for p in parsers:
        if p.kind == "json":
            try:
                obj = json.loads(line)
            except ValueError:
                return None
            if not isinstance(obj, dict):
                return None
            _flatten_json(obj, "", out)
        else:
            for k, v in _LOGFMT_RE.findall(line):
                if v.startswith('"'):
                    try:
                        v = json.loads(v)
                    except ValueError:
                        v = v[1:-1]
                out[_sanitize(k)] = v
    return out


def _merge_labels(stream: dict[str, str], extracted: dict[str, str]) -> dict[str, str]:
    """Stream labels plus extracted ones; a clash gets the ``_extracted`` suffix, as in Loki."""
    out = dict(stream)
    for k, v in extracted.items():
        out[k + "_extracted" if k in stream else k] = v
    return out


# --------------------------------------------------------------------------- backend


class BundleBackend:
    """A bundle loaded into DuckDB, answering the verbs of the Backend protocol.

    ``manifest`` is ``bundle.json``, ``incident`` is ``incident.json``, ``degraded`` lists
    ``(signal, reason)`` for optional files missing or partly unreadable, ``window`` is the
    manifest's window in unix seconds and ``step`` its step."""

    def __init__(self, path: Path, loc: BundleLocation, db_path: str | None = None,
                 preparsed: Preload | None = None):
        self.path = path
        self._pre = preparsed
        self.source = f"bundle:{path.name}"
        self._loc = loc
        self.degraded: list[tuple[str, str]] = list(loc.notes)
        root = loc.root
        self._root = root
        if not any((root / n).is_file() for n in KNOWN_FILES):
            raise BundleError(str(path), "not a bundle: no bundle.json or incident.json in it")
        for name in ("bundle.json", "incident.json"):
            if not (root / name).is_file():
                raise BundleError(name, f"missing from the bundle {path.name} (every bundle needs it)")
        self.manifest: dict = read_manifest(self._read("bundle.json"))
        self.incident: dict = read_incident(self._read("incident.json"))
        w = self.manifest["window"]
        self.window: tuple[float, float] = (parse_rfc3339(w["start"]), parse_rfc3339(w["end"]))
        self.step: float = float(self.manifest.get("step_seconds", 15))

        self._con = duckdb.connect(db_path or ":memory:")
        self._local = threading.local()
        self._closed = False
        self._have: dict[str, bool] = {"metrics": False, "logs": False, "traces": False, "annotations": False}
        self._missing: dict[str, str] = {}

        self._metrics: BundleSeriesSource | None = None
        self.metric_types: dict[str, str] = {}
        self._streams: list[dict[str, str]] = []
        self._spans: list[SpanRow] = []
        self._annotations: list[AnnotationRow] = []
        try:
            self._load_metrics()
            self._load_logs()
            self._load_traces()
            self._load_annotations()
        except BaseException:
            self._con.close()
            raise

    # ---- loading

    def _read(self, name: str) -> bytes:
        """A bundle file's bytes; an unreadable file is a BundleError naming it."""
        try:
            return (self._root / name).read_bytes()
        except OSError as e:
            raise BundleError(name, f"cannot read: {e.strerror or e}") from None

    def _parsed(self, name: str, parse: Any) -> Any:
        """``parse`` of the bundle file ``name``, or what a preload already parsed of it."""
        if self._pre is not None:
            done = self._pre.result().get(name)
            if done is not None:
                return done
        return parse(self._read(name))

    def _degrade(self, signal: str, reason: str, available: bool) -> None:
        self.degraded.append((signal, reason))
        if not available:
            self._missing[signal] = reason

    def _absent(self, signal: str, fname: str) -> bool:
        """Whether the file is missing. If so the signal is unavailable, and the reason is
        the archive's note when it skipped the member (a link), else that there is none."""
        if (self._root / fname).is_file():
            return False
        note = next((r for s, r in self.degraded if s == signal), None)
        if note is None:
            self._degrade(signal, f"no {fname} in the bundle", False)
        else:
            self._missing[signal] = note
        return True

    def _load_metrics(self) -> None:
        con = self._con
        con.execute("CREATE OR REPLACE TABLE series (sid INTEGER, name VARCHAR, labels VARCHAR)")
        con.execute("CREATE OR REPLACE TABLE samples (sid INTEGER, t DOUBLE, v DOUBLE)")
        if self._absent("metrics", "metrics.om"):
            return
        data = self._parsed("metrics.om", parse_openmetrics)  # BundleError on a bad line
        for w in data.warnings:
            self._degrade("metrics", w, True)
        self.metric_types = data.types
        self._metrics = BundleSeriesSource(data)
        self._have["metrics"] = bool(data.labels)
        if not data.labels:
            self._missing["metrics"] = "metrics.om holds no samples"
        cols = {
            "sid": np.arange(len(data.labels), dtype=np.int32),
            "name": np.array([lab["__name__"] for lab in data.labels], dtype=object),
            "labels": np.array([json.dumps(lab, sort_keys=True) for lab in data.labels], dtype=object),
        }
        self._insert("series", cols)
        self._insert("samples", {"sid": data.sid, "t": data.t, "v": data.v})

    def _insert(self, table: str, cols: dict[str, np.ndarray]) -> None:
        if not len(next(iter(cols.values()))):
            return
        self._con.register("_incoming", cols)
        try:
            self._con.execute(f"INSERT INTO {table} SELECT {', '.join(cols)} FROM _incoming")
        finally:
            self._con.unregister("_incoming")

    def _load_logs(self) -> None:
        con = self._con
        con.execute("CREATE OR REPLACE TABLE log_streams (stream_id INTEGER, labels VARCHAR)")
        con.execute("CREATE OR REPLACE TABLE log_lines (stream_id INTEGER, t_ns BIGINT, line VARCHAR)")
        if self._absent("logs", "logs.json"):
            return
        try:
            data: LogsData = self._parsed("logs.json", parse_logs)
        except (ValueError, BundleError) as e:
            self._degrade("logs", str(e), False)
            return
        for p in data.problems:
            self._degrade("logs", p, True)
        self._streams = data.streams
        self._have["logs"] = bool(data.streams)
        if not data.streams:
            self._missing.setdefault("logs", "logs.json holds no streams")
        self._insert(
            "log_streams",
            {
                "stream_id": np.arange(len(data.streams), dtype=np.int32),
                "labels": np.array([json.dumps(s, sort_keys=True) for s in data.streams], dtype=object),
            },
        )
        self._insert(
            "log_lines",
            {"stream_id": data.stream_id, "t_ns": data.t_ns, "line": np.array(data.line, dtype=object)},
        )

    def _load_traces(self) -> None:
        con = self._con
        con.execute(
            "CREATE OR REPLACE TABLE spans (idx INTEGER, trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR,"
            " service VARCHAR, name VARCHAR, kind INTEGER, start_ns BIGINT, end_ns BIGINT, error BOOLEAN,"
            " attributes VARCHAR)"
        )
        if self._absent("traces", "traces.json"):
            return
        try:
            spans, problems = self._parsed("traces.json", parse_traces)
        except (ValueError, BundleError) as e:
            self._degrade("traces", str(e), False)
            return
        for p in problems:
            self._degrade("traces", p, True)
        self._spans = spans
        self._have["traces"] = bool(spans)
        if not spans:
            self._missing.setdefault("traces", "traces.json holds no spans")
        obj = lambda xs: np.array(xs, dtype=object)  # noqa: E731
        self._insert(
            "spans",
            {
                "idx": np.arange(len(spans), dtype=np.int32),
                "trace_id": obj([s.trace_id for s in spans]),
                "span_id": obj([s.span_id for s in spans]),
                "parent_span_id": obj([s.parent_span_id for s in spans]),
                "service": obj([s.service for s in spans]),
                "name": obj([s.name for s in spans]),
                "kind": np.array([s.kind for s in spans], dtype=np.int32),
                "start_ns": np.array([s.start_ns for s in spans], dtype=np.int64),
                "end_ns": np.array([s.end_ns for s in spans], dtype=np.int64),
                "error": np.array([s.error for s in spans], dtype=bool),
                "attributes": obj([json.dumps(s.attributes, sort_keys=True) for s in spans]),
            },
        )

    def _load_annotations(self) -> None:
        con = self._con
        con.execute(
            "CREATE OR REPLACE TABLE annotations (time DOUBLE, time_end DOUBLE, tags VARCHAR, text VARCHAR)"
        )
        if self._absent("annotations", "annotations.json"):
            return
        try:
            rows, problems = parse_annotations(self._read("annotations.json"))
        except (ValueError, BundleError) as e:
            self._degrade("annotations", str(e), False)
            return
        for p in problems:
            self._degrade("annotations", p, True)
        self._annotations = sorted(rows, key=lambda a: a.time)
        self._have["annotations"] = True
        if rows:
            con.executemany(
                "INSERT INTO annotations VALUES (?, ?, ?, ?)",
                [(a.time, a.time_end, json.dumps(a.tags), a.text) for a in rows],
            )

    # ---- plumbing

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB: one connection, a cursor per thread)."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
        return cur

    def _sql(self, sql: str, params: list | None = None) -> list[tuple]:
        return self._cursor().execute(sql, params or []).fetchall()

    def files(self) -> dict[str, bytes]:
        """Raw bytes of the bundle's files (``bundle.json``, ``metrics.om``...), read now
        from disk. Only valid before :meth:`aclose` for a bundle that came from an archive."""
        out: dict[str, bytes] = {}
        for p in sorted(self._root.iterdir()):
            if p.is_file() and not p.is_symlink() and (p.name in KNOWN_FILES or not p.name.startswith(".")):
                out[p.name] = p.read_bytes()
        return out

    def close(self) -> None:
        """Close the database and remove any extraction directory (idempotent)."""
        if not self._closed:
            self._closed = True
            self._con.close()
        self._loc.cleanup()

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> "BundleBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> "BundleBackend":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    # ---- discovery

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            metrics=self._have["metrics"],
            logs=self._have["logs"],
            traces=self._have["traces"],
            annotations=self._have["annotations"],
            missing={k: v for k, v in self._missing.items() if not self._have.get(k)},
        )

    async def metric_names(self) -> list[str]:
        return sorted(self._metrics.by_name) if self._metrics else []

    async def series(self, selector: str, start: float, end: float) -> list[dict[str, str]]:
        """Label sets of the series the selector matches that have samples in [start, end];
        empty for a malformed selector, like the MCP backend (``parse_series_selector``
        says what is wrong with one)."""
        try:
            matchers = parse_series_selector(selector)
        except ValueError:
            return []
        if self._metrics is None:
            return []
        src = self._metrics
        out = []
        for sid in src.match(matchers):
            t, _ = src.samples(sid, start, end)
            if len(t):
                out.append(dict(src.labels[sid]))
        return out

    # ---- PromQL

    def _promql(self):
        from compass_tui.telemetry import promql  # written alongside; imported on first query

        return promql

    async def query_range(self, promql: str, start: float, end: float, step: float) -> MetricResult:
        return self._run_promql(promql, lambda pq, src: pq.evaluate_range(promql, src, start, end, step))

    async def query_instant(self, promql: str, t: float) -> MetricResult:
        return self._run_promql(promql, lambda pq, src: pq.evaluate_instant(promql, src, t))

    def _run_promql(self, query: str, run) -> MetricResult:
        t0 = time.perf_counter()
        res = MetricResult(query=query, source=self.source)
        try:
            if self._metrics is None:
                res.status, res.error = "error", self._missing.get("metrics", "no metrics in the bundle")
                return res
            try:
                pq = self._promql()
            except ImportError as e:
                res.status, res.error = "error", f"PromQL evaluator unavailable: {e}"
                return res
            try:
                out = run(pq, self._metrics)
            except Exception as e:  # noqa: BLE001 - a bad query is a result, never a crash
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                res.status, res.error = "error", msg
                return res
            if isinstance(out, (int, float, np.floating)):
                res.scalar = float(out)
                res.status = "ok"
            else:
                res.series = [s for s in out if len(s.t)]
                res.status = "ok" if res.series else "no_data"
            return res
        finally:
            res.wall_s = time.perf_counter() - t0

    # ---- logs

    async def log_label_names(self) -> list[str]:
        return sorted({k for s in self._streams for k in s})

    async def log_label_values(self, label: str) -> list[str]:
        return sorted({s[label] for s in self._streams if label in s})

    def _filter_sql(self, q: logql.LogQuery, t0_ns: int, t1_ns: int) -> tuple[str, list] | None:
        """WHERE clause (and parameters) for a log query's streams, time and line filters;
        None when no stream matches."""
        ids = q.select_streams(self._streams)
        if not ids:
            return None
        where = [f"stream_id IN ({', '.join(str(i) for i in ids)})", "t_ns >= ?", "t_ns <= ?"]
        params: list = [t0_ns, t1_ns]
        for f in q.line_filters:
            if f.op == "|=":
                where.append("contains(line, ?)")
            elif f.op == "!=":
                where.append("NOT contains(line, ?)")
            elif f.op == "|~":
                where.append("regexp_matches(line, ?)")
            else:
                where.append("NOT regexp_matches(line, ?)")
            params.append(f.value)
        return " AND ".join(where), params

    @staticmethod
    def _ns(t: float) -> int:
        return int(round(t * 1e9))

    async def query_logs(self, logql_text: str, start: float, end: float, limit: int = 1000) -> LogResult:
        """Lines of a LogQL log query in [start, end], newest first, at most ``limit``."""
        t0 = time.perf_counter()
        res = LogResult(query=logql_text, source=self.source)
        try:
            try:
                q = logql.parse(logql_text)
            except logql.LogQLError as e:
                res.status, res.error = "error", str(e)
                return res
            if not isinstance(q, logql.LogQuery):
                res.status, res.error = "error", "a metric query; use query_log_metric for count_over_time/rate"
                return res
            if not self._have["logs"]:
                res.status, res.error = "error", self._missing.get("logs", "no logs in the bundle")
                return res
            try:
                lines, truncated = await asyncio.to_thread(self._log_lines, q, start, end, max(0, int(limit)))
            except (duckdb.Error, logql.LogQLError) as e:
                res.status, res.error = "error", str(e).splitlines()[0]
                return res
            res.lines, res.truncated = lines, truncated
            res.status = "ok" if lines else "no_data"
            return res
        finally:
            res.wall_s = time.perf_counter() - t0

    def _log_lines(self, q: logql.LogQuery, start: float, end: float, limit: int) -> tuple[list[LogLine], bool]:
        where = self._filter_sql(q, self._ns(start), self._ns(end))
        if where is None:
            return [], False
        clause, params = where
        sql = f"SELECT stream_id, t_ns, line FROM log_lines WHERE {clause} ORDER BY t_ns DESC, stream_id"
        if not q.parsers and not q.label_filters:
            rows = self._sql(sql + " LIMIT ?", params + [limit + 1])
            out = [LogLine(tn / 1e9, tn, dict(self._streams[s]), line) for s, tn, line in rows[:limit]]
            return out, len(rows) > limit
        rows = self._sql(sql, params)
        out: list[LogLine] = []
        for s, tn, line in rows:
            labels = self._line_labels(q, self._streams[s], line)
            if labels is None:
                continue
            if len(out) == limit:
                return out, True
            out.append(LogLine(tn / 1e9, tn, labels, line))
        return out, False

    @staticmethod
    def _line_labels(q: logql.LogQuery, stream: dict[str, str], line: str) -> dict[str, str] | None:
        """Labels of a line after the parser stages, or None if a label filter drops it."""
        if q.parsers:
            ext = _extract(line, q.parsers)
            if ext is None:
                if q.label_filters:
                    return None
                labels = dict(stream, __error__="JSONParserErr")
            else:
                labels = _merge_labels(stream, ext)
        else:
            labels = dict(stream)
        if all(f.matches(labels) for f in q.label_filters):
            return labels
        return None

    async def query_log_metric(self, logql_text: str, start: float, end: float, step: float) -> MetricResult:
        """A LogQL metric query on the step grid start, start+step, ... <= end; a value at
        t counts the lines in (t - range, t], and a series has no point where it saw none."""
        t0 = time.perf_counter()
        res = MetricResult(query=logql_text, source=self.source)
        try:
            try:
                q = logql.parse(logql_text)
            except logql.LogQLError as e:
                res.status, res.error = "error", str(e)
                return res
            if isinstance(q, logql.LogQuery):
                res.status, res.error = "error", "a log query, not a metric query; wrap it in count_over_time(...[5m])"
                return res
            if not self._have["logs"]:
                res.status, res.error = "error", self._missing.get("logs", "no logs in the bundle")
                return res
            if not (step > 0 and math.isfinite(step) and end >= start):
                res.status, res.error = "error", f"bad range: start={start} end={end} step={step}"
                return res
            if (end - start) / step > 11000:
                res.status, res.error = "error", "exceeded maximum resolution of 11,000 points per series; use a larger step"
                return res
            try:
                res.series = await asyncio.to_thread(self._eval_log_metric, q, start, end, step)
            except (duckdb.Error, logql.LogQLError) as e:
                res.status, res.error = "error", str(e).splitlines()[0]
                return res
            res.status = "ok" if res.series else "no_data"
            return res
        finally:
            res.wall_s = time.perf_counter() - t0

    def _eval_log_metric(self, q, start: float, end: float, step: float) -> list[Series]:
        grid = float(start) + float(step) * np.arange(int(math.floor((end - start) / step + 1e-9)) + 1)
        return self._eval_node(q, grid)

    def _eval_node(self, node, grid: np.ndarray) -> list[Series]:
        if isinstance(node, logql.RangeAggregation):
            return self._eval_range(node, grid)
        inner = self._eval_node(node.inner, grid)
        groups: dict[tuple, tuple[dict[str, str], list[np.ndarray]]] = {}
        for s in inner:
            if node.grouping is None:
                lab: dict[str, str] = {}
            elif node.without:
                lab = {k: v for k, v in s.labels.items() if k not in node.grouping}
            else:
                lab = {k: s.labels[k] for k in node.grouping if s.labels.get(k, "") != ""}
            key = tuple(sorted(lab.items()))
            dense = np.full(len(grid), np.nan)
            dense[np.searchsorted(grid, s.t)] = s.v
            groups.setdefault(key, (lab, []))[1].append(dense)
        out = []
        for lab, rows in groups.values():
            m = np.vstack(rows)
            present = ~np.isnan(m)
            n = present.sum(axis=0)
            has = n > 0
            with np.errstate(all="ignore"):
                if node.op == "sum":
                    val = np.nansum(m, axis=0)
                elif node.op == "avg":
                    val = np.nansum(m, axis=0) / np.maximum(n, 1)
                elif node.op == "count":
                    val = n.astype(float)
                elif node.op == "min":
                    val = np.where(has, np.nanmin(np.where(present, m, np.inf), axis=0), np.nan)
                else:
                    val = np.where(has, np.nanmax(np.where(present, m, -np.inf), axis=0), np.nan)
            out.append(Series(lab, grid[has].copy(), val[has].astype(float)))
        out.sort(key=lambda s: sorted(s.labels.items()))
        return out

    def _eval_range(self, node: logql.RangeAggregation, grid: np.ndarray) -> list[Series]:
        q = node.query
        rng_ns = self._ns(node.range_s)
        grid_ns = np.round(grid * 1e9).astype(np.int64)
        where = self._filter_sql(q, int(grid_ns[0]) - rng_ns + 1, int(grid_ns[-1]))
        if where is None:
            return []
        clause, params = where
        need_line = bool(q.parsers or q.label_filters)
        cols = "stream_id, t_ns, strlen(line)" + (", line" if need_line else "")
        rows = self._sql(f"SELECT {cols} FROM log_lines WHERE {clause} ORDER BY t_ns", params)
        series_of: dict[tuple, tuple[dict[str, str], list[int], list[int]]] = {}
        for row in rows:
            s = row[0]
            if need_line:
                labels = self._line_labels(q, self._streams[s], row[3])
                if labels is None:
                    continue
                labels.pop("__error__", None)
            else:
                labels = self._streams[s]
            key = tuple(sorted(labels.items())) if need_line else (s,)
            entry = series_of.get(key)
            if entry is None:
                entry = series_of[key] = (dict(labels), [], [])
            entry[1].append(row[1])
            entry[2].append(row[2])
        out = []
        by_bytes = node.fn in ("bytes_over_time", "bytes_rate")
        for labels, ts, sizes in series_of.values():
            t_arr = np.asarray(ts, dtype=np.int64)
            w = np.asarray(sizes if by_bytes else np.ones(len(ts)), dtype=np.float64)
            cs = np.concatenate([[0.0], np.cumsum(w)])
            hi = np.searchsorted(t_arr, grid_ns, side="right")
            lo = np.searchsorted(t_arr, grid_ns - rng_ns, side="right")
            val = cs[hi] - cs[lo]
            has = hi > lo
            if node.fn in ("rate", "bytes_rate"):
                val = val / node.range_s
            if has.any():
                out.append(Series(labels, grid[has].copy(), val[has]))
        out.sort(key=lambda s: sorted(s.labels.items()))
        return out

    # ---- traces and annotations

    async def search_traces(
        self,
        start: float,
        end: float,
        service: str | None = None,
        error_only: bool = False,
        limit: int = 5000,
    ) -> TraceResult:
        """Spans overlapping [start, end], optionally of one service and only errors,
        oldest first, at most ``limit``. The query text is the TraceQL equivalent."""
        t0 = time.perf_counter()
        conds = []
        if service is not None:
            conds.append(f"resource.service.name = {json.dumps(service)}")
        if error_only:
            conds.append("status = error")
        query = "{ " + " && ".join(conds) + " }" if conds else "{ }"
        res = TraceResult(query=query, source=self.source)
        try:
            if not self._have["traces"]:
                res.status, res.error = "error", self._missing.get("traces", "no traces in the bundle")
                return res
            where = ["end_ns >= ?", "start_ns <= ?"]
            params: list = [self._ns(start), self._ns(end)]
            if service is not None:
                where.append("service = ?")
                params.append(service)
            if error_only:
                where.append("error")
            lim = max(0, int(limit))
            sql = f"SELECT idx FROM spans WHERE {' AND '.join(where)} ORDER BY start_ns, idx LIMIT ?"
            rows = await asyncio.to_thread(self._sql, sql, params + [lim + 1])
            res.truncated = len(rows) > lim
            for (idx,) in rows[:lim]:
                s = self._spans[idx]
                res.spans.append(
                    Span(s.trace_id, s.span_id, s.parent_span_id, s.service, s.name, s.kind,
                         s.start_ns / 1e9, s.end_ns / 1e9, s.error, dict(s.attributes))
                )
            res.status = "ok" if res.spans else "no_data"
            return res
        except duckdb.Error as e:
            res.status, res.error = "error", str(e).splitlines()[0]
            return res
        finally:
            res.wall_s = time.perf_counter() - t0

    async def annotations(self, start: float, end: float) -> AnnotationResult:
        """Annotations overlapping [start, end], oldest first."""
        t0 = time.perf_counter()
        res = AnnotationResult(
            query=f"annotations(from={int(start * 1000)}, to={int(end * 1000)})", source=self.source
        )
        if not self._have["annotations"]:
            res.status, res.error = "error", self._missing.get("annotations", "no annotations in the bundle")
        else:
            for a in self._annotations:
                a_end = a.time_end if a.time_end is not None else a.time
                if a.time <= end and a_end >= start:
                    res.annotations.append(Annotation(a.time, a.time_end, list(a.tags), a.text))
            res.status = "ok" if res.annotations else "no_data"
        res.wall_s = time.perf_counter() - t0
        return res


def open_bundle(path: str | Path, db_path: str | None = None, preparsed: Preload | None = None) -> BundleBackend:
    """Open the bundle at ``path`` (a directory, or a ``.tar.gz`` of one) and load it.

    Raises :class:`BundleError` for a bundle that cannot be read: not a bundle, a truncated
    archive, a missing or malformed ``bundle.json``/``incident.json``, a malformed line in
    ``metrics.om``. Problems in the other optional files become ``degraded`` entries.
    ``db_path`` None keeps the DuckDB database in memory; ``preparsed`` is a preload of the
    same bundle (see :mod:`compass_tui.telemetry.preload`) whose results are used when valid."""
    try:
        return _open(Path(path), db_path, preparsed)
    finally:
        if preparsed is not None:  # read by now, or never to be: stop the child
            preparsed.cancel()


def _open(p: Path, db_path: str | None, preparsed: Preload | None) -> BundleBackend:
    try:
        loc = locate_bundle(p)
    except OSError as e:  # unreadable file or directory, full temporary disk
        raise BundleError(p.name, f"cannot read: {e.strerror or e}") from None
    try:
        return BundleBackend(p, loc, db_path, preparsed)
    except OSError as e:
        loc.cleanup()
        raise BundleError(p.name, f"cannot read: {e.strerror or e}") from None
    except duckdb.Error as e:  # e.g. db_path locked by another process
        loc.cleanup()
        raise BundleError(db_path or p.name, f"cannot load into DuckDB: {str(e).splitlines()[0]}") from None
    except BaseException:
        loc.cleanup()
        raise

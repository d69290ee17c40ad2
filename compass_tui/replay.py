"""``compass replay BUNDLE``: a recorded incident served as an MCP server that speaks
Grafana's tool names and argument shapes (those of mcp-grafana 2.1), so any MCP client, or
COMPASS itself, can investigate it as if it were a live Grafana stack.

The datasources are ``prometheus``, ``loki`` and ``tempo`` (those the bundle has). Times
accept RFC3339 or Grafana's relative ``now``/``now-1h``, where *now* is the end of the
bundle's window, so relative queries land on the incident. Answers have the same JSON
shapes as mcp-grafana's; a rejected query is a tool error, as there. Every tool is read-only.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from compass_tui.telemetry.values import prom_value
from compass_tui.telemetry.backend import Backend, MetricResult, Span

DATASOURCES = {
    "metrics": {"uid": "prometheus", "name": "Prometheus (replay)", "type": "prometheus"},
    "logs": {"uid": "loki", "name": "Loki (replay)", "type": "loki"},
    "traces": {"uid": "tempo", "name": "Tempo (replay)", "type": "tempo"},
}
REPLAY_MAX_LOG_LINES = 5000
"""Log lines one call may return (Grafana's server defaults to 100)."""

_TIME_DESC = "RFC3339 or relative to now (e.g. 'now', 'now-1.5h', 'now-2h45m'); now is the end of the recorded window"
_UID = {"type": "string", "description": "The UID of the datasource to query"}
_MATCHES = {
    "type": "array",
    "description": "Optionally, a list of label matchers to filter the results by",
    "items": {
        "type": "object",
        "properties": {
            "filters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "The name of the label to match against"},
                        "value": {"type": "string", "description": "The value to match against"},
                        "type": {"type": "string", "description": "One of the '=' or '!=' or '=~' or '!~'"},
                    },
                    "required": ["name", "value", "type"],
                },
            }
        },
    },
}


def _schema(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


# The input schemas of mcp-grafana 2.1.x for the tools served here (descriptions shortened).
TOOLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "list_datasources": (
        "List datasources",
        "List all configured datasources. Use this to discover available datasources and their UIDs.",
        _schema(
            {
                "limit": {"type": "integer", "default": 50, "description": "Maximum number of datasources to return (max 100)"},
                "name": {"type": "string", "description": "Case-insensitive substring match on the datasource name."},
                "offset": {"type": "integer", "default": 0, "description": "Number of datasources to skip for pagination"},
                "type": {"type": "string", "description": "The type of datasources to search for, e.g. 'prometheus', 'loki', 'tempo'"},
            },
            [],
        ),
    ),
    "query_prometheus": (
        "Query Prometheus metrics",
        "Query a PromQL-compatible datasource using a PromQL expression. Supports instant queries (single point) "
        "and range queries (time range). Time: RFC3339 or relative expressions like 'now', 'now-1h'.",
        _schema(
            {
                "datasourceUid": _UID,
                "endTime": {"type": "string", "description": "The end time. " + _TIME_DESC},
                "expr": {"type": "string", "description": "The PromQL expression to query"},
                "projectName": {"type": "string", "description": "GCP project name (Cloud Monitoring only; ignored)"},
                "queryType": {"type": "string", "description": "The type of query to use. Either 'range' or 'instant'"},
                "startTime": {"type": "string", "description": "The start time. Required if queryType is 'range'. " + _TIME_DESC},
                "stepSeconds": {"type": "integer", "description": "The time series step size in seconds. Required if queryType is 'range'"},
            },
            ["datasourceUid", "expr", "endTime"],
        ),
    ),
    "list_prometheus_metric_names": (
        "List Prometheus metric names",
        "Lists metric names in a PromQL-compatible datasource, filtered by an optional regex, with pagination "
        "(page * limit must not exceed 10000).",
        _schema(
            {
                "datasourceUid": _UID,
                "endRfc3339": {"type": "string", "description": "Optionally, the end time of the time range"},
                "limit": {"type": "integer", "default": 10, "description": "The maximum number of results to return"},
                "page": {"type": "integer", "default": 1, "description": "The page number to return"},
                "projectName": {"type": "string", "description": "GCP project name (ignored)"},
                "regex": {"type": "string", "description": "The regex to match against the metric names"},
                "startRfc3339": {"type": "string", "description": "Optionally, the start time of the time range"},
            },
            ["datasourceUid"],
        ),
    ),
    "list_prometheus_label_names": (
        "List Prometheus label names",
        "List label names in a PromQL-compatible datasource. Allows filtering by series selectors and time range.",
        _schema(
            {
                "datasourceUid": _UID,
                "endRfc3339": {"type": "string", "description": "Optionally, the end time of the time range"},
                "limit": {"type": "integer", "default": 100, "description": "Optionally, the maximum number of results to return"},
                "matches": _MATCHES,
                "projectName": {"type": "string", "description": "GCP project name (ignored)"},
                "startRfc3339": {"type": "string", "description": "Optionally, the start time of the time range"},
            },
            ["datasourceUid"],
        ),
    ),
    "list_prometheus_label_values": (
        "List Prometheus label values",
        "Gets the values for a specific label name in a PromQL-compatible datasource. Allows filtering by series "
        "selectors and time range.",
        _schema(
            {
                "datasourceUid": _UID,
                "endRfc3339": {"type": "string", "description": "Optionally, the end time of the query"},
                "labelName": {"type": "string", "description": "The name of the label to query"},
                "limit": {"type": "integer", "default": 100, "description": "Optionally, the maximum number of results to return"},
                "matches": _MATCHES,
                "projectName": {"type": "string", "description": "GCP project name (ignored)"},
                "startRfc3339": {"type": "string", "description": "Optionally, the start time of the query"},
            },
            ["datasourceUid", "labelName"],
        ),
    ),
    "query_loki_logs": (
        "Query Loki logs",
        "Executes a LogQL query against a Loki datasource and returns matching log entries (or metric samples). "
        "Defaults to the last hour, a limit of 10 entries, and 'backward' direction (newest first).",
        _schema(
            {
                "datasourceUid": _UID,
                "direction": {"type": "string", "description": "Optionally, 'forward' (oldest first) or 'backward' (newest first, default)"},
                "endRfc3339": {"type": "string", "description": "Optionally, the end time of the query (RFC3339 or 'now')"},
                "format": {"type": "string", "enum": ["full", "compact"], "description": "Output format for log queries"},
                "limit": {"type": "integer", "default": 10, "description": f"Optionally, the maximum number of log lines to return (max {REPLAY_MAX_LOG_LINES})"},
                "logql": {"type": "string", "description": "The LogQL query to execute against Loki."},
                "queryType": {"type": "string", "description": "Query type: 'range' (default) or 'instant'."},
                "startRfc3339": {"type": "string", "description": "Optionally, the start time of the query (RFC3339 or 'now-1h')"},
                "stepSeconds": {"type": "integer", "description": "Resolution step in seconds for range metric queries."},
            },
            ["datasourceUid", "logql"],
        ),
    ),
    "list_loki_label_names": (
        "List Loki label names",
        "Lists all available label names found in logs within a Loki datasource and time range.",
        _schema(
            {
                "datasourceUid": _UID,
                "endRfc3339": {"type": "string", "description": "Optionally, the end time of the query (defaults to now)"},
                "matcher": {"type": "string", "description": "Optionally, a stream selector to narrow the search"},
                "startRfc3339": {"type": "string", "description": "Optionally, the start time of the query (defaults to 1 hour ago)"},
            },
            ["datasourceUid"],
        ),
    ),
    "list_loki_label_values": (
        "List Loki label values",
        "Retrieves all unique values of a label within a Loki datasource and time range.",
        _schema(
            {
                "datasourceUid": _UID,
                "endRfc3339": {"type": "string", "description": "Optionally, the end time of the query (defaults to now)"},
                "labelName": {"type": "string", "description": "The name of the label to retrieve values for"},
                "matcher": {"type": "string", "description": "Optionally, a stream selector to narrow the search"},
                "startRfc3339": {"type": "string", "description": "Optionally, the start time of the query (defaults to 1 hour ago)"},
            },
            ["datasourceUid", "labelName"],
        ),
    ),
    "search_tempo_traces": (
        "Search Tempo traces",
        "Search for traces using TraceQL queries. Replay supports '{}' and '&&' of "
        "resource.service.name = \"...\" and status = error.",
        _schema(
            {
                "datasourceUid": {"type": "string", "description": "UID of the tempo datasource to query"},
                "end": {"type": "string", "description": "End time for the search (RFC3339 format). If not provided will search the past 1 hour."},
                "query": {"type": "string", "description": "TraceQL query string"},
                "start": {"type": "string", "description": "Start time for the search (RFC3339 format). If not provided will search the past 1 hour."},
            },
            ["datasourceUid", "query"],
        ),
    ),
    "get_tempo_trace": (
        "Get Tempo trace",
        "Retrieve a specific trace by ID",
        _schema(
            {
                "datasourceUid": {"type": "string", "description": "UID of the tempo datasource to query"},
                "focus_span_id": {"type": "string", "description": "Optional 16-character hexadecimal span ID to select initially."},
                "trace_id": {"type": "string", "description": "Trace ID to retrieve"},
            },
            ["datasourceUid", "trace_id"],
        ),
    ),
    "get_annotations": (
        "Get Annotations",
        "Fetch Grafana annotations using filters such as dashboard UID, time range and tags.",
        {
            "type": "object",
            "properties": {
                "alertUid": {"type": "string", "description": "Filter by alert UID"},
                "dashboardUid": {"type": "string", "description": "Filter by dashboard UID"},
                "from": {"type": "integer", "description": "Epoch ms start time"},
                "limit": {"type": "integer", "description": "Max results default 100"},
                "matchAny": {"type": "boolean", "description": "If true, match any tag (OR). If false, match all tags (AND). Default: false"},
                "panelId": {"type": "integer", "description": "Filter by panel ID"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Filter by tags"},
                "to": {"type": "integer", "description": "Epoch ms end time"},
                "type": {"type": "string", "description": "annotation or alert"},
                "userId": {"type": "integer", "description": "Filter by creator user ID"},
            },
            "additionalProperties": False,
        },
    ),
}


class ToolError(Exception):
    """A rejected call; the message is what the client sees (is_error)."""


def _fmt_ts(t: float) -> int | float:
    return int(t) if float(t).is_integer() else round(float(t), 3)


_REL = re.compile(r"^now(?:-([0-9.]+[a-zµ]+(?:[0-9.]+[a-zµ]+)*))?$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ReplayTools:
    """The tools, over any Backend (a bundle, in practice), independent of the MCP transport."""

    def __init__(self, backend: Backend, window: tuple[float, float], step: float = 15.0):
        self.backend = backend
        self.window = window
        self.step = step
        self._caps = None
        self._spans_by_trace: dict[str, list[Span]] | None = None

    @property
    def now(self) -> float:
        return self.window[1]

    def parse_time(self, value: Any, what: str, default: float | None = None) -> float:
        if value is None or value == "":
            if default is None:
                raise ToolError(f"{what} is required")
            return default
        if isinstance(value, (int, float)):
            return float(value)
        s = str(value).strip()
        m = _REL.match(s)
        if m:
            if not m.group(1):
                return self.now
            total = 0.0
            for num, unit in re.findall(r"([0-9.]+)([a-zµ]+)", m.group(1)):
                if unit not in _UNITS:
                    raise ToolError(f"parsing {what}: unknown unit {unit!r} in {s!r}")
                total += float(num) * _UNITS[unit]
            return self.now - total
        from compass_tui.engine.request import parse_time

        try:
            return parse_time(s)
        except ValueError:
            raise ToolError(f"parsing {what}: {s!r} is not RFC3339 or relative time (e.g. 'now-1h')") from None

    async def caps(self):
        if self._caps is None:
            self._caps = await self.backend.capabilities()
        return self._caps

    async def _check_ds(self, args: dict[str, Any], signal: str) -> None:
        uid = args.get("datasourceUid")
        ds = DATASOURCES[signal]
        caps = await self.caps()
        if uid != ds["uid"] or not getattr(caps, signal):
            have = [d["uid"] for s, d in DATASOURCES.items() if getattr(caps, s)]
            raise ToolError(f"datasource with UID '{uid}' not found (this replay has: {', '.join(have) or 'none'})")

    async def call(self, name: str, args: dict[str, Any]) -> tuple[Any, bool]:
        """Run a tool: (JSON payload, whether it also goes out as structured content)."""
        fn = getattr(self, f"tool_{name}", None)
        if fn is None or name not in TOOLS:
            raise ToolError(f"unknown tool: {name}")
        return await fn(args or {})

    # ------------------------------------------------------------ datasources

    async def tool_list_datasources(self, args: dict[str, Any]) -> tuple[Any, bool]:
        caps = await self.caps()
        items = []
        for i, (sig, ds) in enumerate(DATASOURCES.items(), start=1):
            if getattr(caps, sig):
                items.append({"id": i, "uid": ds["uid"], "name": ds["name"], "type": ds["type"], "isDefault": sig == "metrics"})
        if args.get("type"):
            items = [d for d in items if d["type"] == str(args["type"]).lower()]
        if args.get("name"):
            items = [d for d in items if str(args["name"]).lower() in d["name"].lower()]
        off = int(args.get("offset") or 0)
        lim = min(int(args.get("limit") or 50), 100)
        page = items[off : off + lim]
        return {"datasources": page, "total": len(items), "hasMore": off + lim < len(items)}, False

    # ------------------------------------------------------------ prometheus

    async def tool_query_prometheus(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "metrics")
        expr = args.get("expr")
        if not expr:
            raise ToolError("expr is required")
        qtype = args.get("queryType") or "range"
        end = self.parse_time(args.get("endTime"), "end time")
        if qtype == "range":
            start = self.parse_time(args.get("startTime"), "start time")
            step = args.get("stepSeconds")
            if not step:
                raise ToolError("stepSeconds must be provided when queryType is 'range'")
            if end < start:
                raise ToolError("querying Prometheus range: end time must not be before start time")
            res = await self.backend.query_range(str(expr), start, end, float(step))
            if res.status == "error":
                raise ToolError(f"querying Prometheus range: bad_data: {res.error}")
            data = [
                {"metric": s.labels, "values": [[_fmt_ts(t), prom_value(v)] for t, v in zip(s.t.tolist(), s.v.tolist())]}
                for s in res.series
            ]
        elif qtype == "instant":
            res = await self.backend.query_instant(str(expr), end)
            if res.status == "error":
                raise ToolError(f"querying Prometheus instant: bad_data: {res.error}")
            if res.scalar is not None:
                return {"data": [_fmt_ts(end), prom_value(res.scalar)]}, True
            if any(len(s.t) > 1 for s in res.series):
                # a range-vector expression: Prometheus answers a matrix of raw samples
                data = [
                    {"metric": s.labels, "values": [[_fmt_ts(t), prom_value(v)] for t, v in zip(s.t.tolist(), s.v.tolist())]}
                    for s in res.series
                ]
            else:
                data = [
                    {"metric": s.labels, "value": [_fmt_ts(float(s.t[-1])), prom_value(float(s.v[-1]))]}
                    for s in res.series
                    if len(s.t)
                ]
        else:
            raise ToolError(f"invalid query type: {qtype}")
        if not data:
            return {
                "data": None,
                "hints": {
                    "summary": "The Prometheus query returned no data for the specified time range.",
                    "possibleCauses": ["The metric, labels, time range or scrape target may have no data."],
                    "suggestedActions": ["Check metrics/labels with list_prometheus_metric_names and list_prometheus_label_values."],
                },
            }, True
        return {"data": data}, True

    async def _series(self, args: dict[str, Any]) -> list[dict[str, str]]:
        start = self.parse_time(args.get("startRfc3339"), "start time", self.window[0])
        end = self.parse_time(args.get("endRfc3339"), "end time", self.window[1])
        selectors = []
        for m in args.get("matches") or []:
            parts = []
            for f in (m or {}).get("filters") or []:
                op = f.get("type") or "="
                if op not in ("=", "!=", "=~", "!~"):
                    raise ToolError(f"invalid matcher type: {op}")
                parts.append(f'{f["name"]}{op}{json.dumps(str(f["value"]))}')
            if parts:
                selectors.append("{" + ",".join(parts) + "}")
        if not selectors:
            selectors = ['{__name__=~".+"}']
        out: dict[tuple, dict[str, str]] = {}
        for sel in selectors:
            try:
                for lbls in await self.backend.series(sel, start, end):
                    out[tuple(sorted(lbls.items()))] = lbls
            except ValueError as e:
                raise ToolError(f"listing Prometheus labels: {e}") from None
        return list(out.values())

    async def tool_list_prometheus_metric_names(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "metrics")
        names = await self.backend.metric_names()
        if args.get("regex"):
            try:
                rx = re.compile(str(args["regex"]))
            except re.error as e:
                raise ToolError(f"compiling regex: {e}") from None
            names = [n for n in names if rx.search(n)]
        limit = int(args.get("limit") or 10)
        page = int(args.get("page") or 1)
        if page * limit > 10000:
            raise ToolError("page * limit must not exceed 10000")
        lo = (page - 1) * limit
        return names[lo : lo + limit], False

    async def tool_list_prometheus_label_names(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "metrics")
        keys = sorted({k for lbls in await self._series(args) for k in lbls})
        return keys[: int(args.get("limit") or 100)], False

    async def tool_list_prometheus_label_values(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "metrics")
        label = args.get("labelName")
        if not label:
            raise ToolError("labelName is required")
        vals = sorted({lbls[label] for lbls in await self._series(args) if label in lbls})
        return vals[: int(args.get("limit") or 100)], False

    # ------------------------------------------------------------ loki

    async def tool_query_loki_logs(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "logs")
        from compass_tui.telemetry import logql

        text = str(args.get("logql") or "")
        if not text:
            raise ToolError("logql is required")
        end = self.parse_time(args.get("endRfc3339"), "end time", self.now)
        start = self.parse_time(args.get("startRfc3339"), "start time", end - 3600)
        limit = max(1, min(int(args.get("limit") or 10), REPLAY_MAX_LOG_LINES))
        try:
            parsed = logql.parse(text)
        except ValueError as e:
            raise ToolError(f"querying Loki: parse error: {e}") from None
        meta = {"linesReturned": 0, "maxLinesAllowed": REPLAY_MAX_LOG_LINES, "resultsTruncated": False,
                "totalLinesScanned": 0, "startTime": _rfc(start), "endTime": _rfc(end)}
        if isinstance(parsed, logql.LogQuery):
            backward = (args.get("direction") or "backward") != "forward"
            # the backend answers newest first, as Loki's default direction does; forward
            # wants the oldest lines, so it reads them all (bounded) and keeps the head
            res = await self.backend.query_logs(text, start, end, limit if backward else 10**6)
            if res.status == "error":
                raise ToolError(f"querying Loki: {res.error}")
            lines = res.lines if backward else res.lines[::-1]
            truncated = res.truncated or len(lines) > limit
            lines = lines[:limit]
            meta.update(linesReturned=len(lines), resultsTruncated=bool(truncated))
            data = [{"timestamp": str(ln.t_ns), "line": ln.line, "labels": ln.labels} for ln in lines]
            return {"data": data, "metadata": meta}, False
        step = float(args.get("stepSeconds") or max(1, round((end - start) / 250)))
        res = await self.backend.query_log_metric(text, start, end, step)
        if res.status == "error":
            raise ToolError(f"querying Loki: {res.error}")
        series = res.series[:limit]
        meta.update(linesReturned=len(series), resultsTruncated=len(res.series) > limit)
        data = [
            {"values": [{"timestamp": f"{t:.3f}", "value": v} for t, v in zip(s.t.tolist(), s.v.tolist())], "labels": s.labels}
            for s in series
        ]
        return {"data": data, "metadata": meta}, False

    async def tool_list_loki_label_names(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "logs")
        return await self.backend.log_label_names(), False

    async def tool_list_loki_label_values(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "logs")
        if not args.get("labelName"):
            raise ToolError("labelName is required")
        return await self.backend.log_label_values(str(args["labelName"])), False

    # ------------------------------------------------------------ tempo

    async def tool_search_tempo_traces(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "traces")
        service, error_only = parse_traceql(str(args.get("query") or ""))
        end = self.parse_time(args.get("end"), "end", self.now)
        start = self.parse_time(args.get("start"), "start", end - 3600)
        if end < start:
            raise ToolError("start must be before end")
        res = await self.backend.search_traces(start, end, service=service, error_only=error_only, limit=10**7)
        if res.status == "error":
            raise ToolError(f"searching Tempo: {res.error}")
        by_trace: dict[str, list[Span]] = {}
        for s in res.spans:
            by_trace.setdefault(s.trace_id, []).append(s)
        all_spans = await self._trace_index()
        traces = []
        for tid, matched in by_trace.items():
            whole = all_spans.get(tid, matched)
            root = next((s for s in whole if not s.parent_span_id), min(whole, key=lambda s: s.start))
            t0 = min(s.start for s in whole)
            t1 = max(s.end for s in whole)
            traces.append(
                {
                    "traceID": tid,
                    "rootServiceName": root.service,
                    "rootTraceName": root.name,
                    "startTimeUnixNano": str(int(round(t0 * 1e9))),
                    "durationMs": int(round((t1 - t0) * 1000)),
                    "spanSets": [
                        {
                            "spans": [
                                {"spanID": s.span_id, "startTimeUnixNano": str(int(round(s.start * 1e9))),
                                 "durationNanos": str(int(round((s.end - s.start) * 1e9)))}
                                for s in matched[:3]
                            ],
                            "matched": len(matched),
                        }
                    ],
                }
            )
        traces.sort(key=lambda x: x["startTimeUnixNano"])
        return {"traces": traces, "metrics": {"inspectedTraces": len(all_spans)}}, False

    async def _trace_index(self) -> dict[str, list[Span]]:
        if self._spans_by_trace is None:
            pad = 86400.0
            res = await self.backend.search_traces(self.window[0] - pad, self.window[1] + pad, limit=10**8)
            idx: dict[str, list[Span]] = {}
            for s in res.spans:
                idx.setdefault(s.trace_id, []).append(s)
            self._spans_by_trace = idx
        return self._spans_by_trace

    async def tool_get_tempo_trace(self, args: dict[str, Any]) -> tuple[Any, bool]:
        await self._check_ds(args, "traces")
        tid = str(args.get("trace_id") or "")
        spans = (await self._trace_index()).get(tid)
        if not spans:
            raise ToolError(f"trace {tid!r} not found")
        return {"trace": {"resourceSpans": otlp_resource_spans(spans)}}, False

    # ------------------------------------------------------------ annotations

    async def tool_get_annotations(self, args: dict[str, Any]) -> tuple[Any, bool]:
        caps = await self.caps()
        if not caps.annotations:
            raise ToolError(f"annotations: {caps.missing.get('annotations', 'none in this recording')}")
        start = float(args["from"]) / 1000.0 if args.get("from") is not None else self.window[0]
        end = float(args["to"]) / 1000.0 if args.get("to") is not None else self.window[1]
        res = await self.backend.annotations(start, end)
        if res.status == "error":
            raise ToolError(f"getting annotations: {res.error}")
        anns = res.annotations
        tags = [str(t) for t in args.get("tags") or []]
        if tags:
            if args.get("matchAny"):
                anns = [a for a in anns if set(tags) & set(a.tags)]
            else:
                anns = [a for a in anns if set(tags) <= set(a.tags)]
        # Grafana lists newest first
        anns = sorted(anns, key=lambda a: a.time, reverse=True)[: int(args.get("limit") or 100)]
        out = []
        for i, a in enumerate(anns, start=1):
            item: dict[str, Any] = {"id": i, "tags": a.tags, "text": a.text, "time": int(round(a.time * 1000))}
            if a.time_end is not None:
                item["timeEnd"] = int(round(a.time_end * 1000))
            out.append(item)
        return {"Payload": out}, False


def _rfc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_TRACEQL_COND = re.compile(r'^\s*(?:resource\.service\.name|\.service\.name)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$')
_TRACEQL_ERR = re.compile(r"^\s*status\s*=\s*error\s*$")


def parse_traceql(query: str) -> tuple[str | None, bool]:
    """The TraceQL subset replay answers: ``{}`` and ``&&`` of a service and ``status = error``."""
    q = query.strip()
    if not (q.startswith("{") and q.endswith("}")):
        raise ToolError(f"unsupported TraceQL for replay: {query!r} (expected {{ ... }})")
    body = q[1:-1].strip()
    service: str | None = None
    error_only = False
    if body:
        for cond in body.split("&&"):
            m = _TRACEQL_COND.match(cond)
            if m:
                service = json.loads(f'"{m.group(1)}"')
            elif _TRACEQL_ERR.match(cond):
                error_only = True
            else:
                raise ToolError(
                    f"unsupported TraceQL condition for replay: {cond.strip()!r} "
                    "(supported: resource.service.name = \"...\", status = error)"
                )
    return service, error_only


def _otlp_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def otlp_resource_spans(spans: list[Span]) -> list[dict[str, Any]]:
    """Spans as OTLP/JSON resourceSpans, one resource per service."""
    by_service: dict[str, list[Span]] = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    out = []
    for service, group in by_service.items():
        out.append(
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "compass-replay"},
                        "spans": [
                            {
                                "traceId": s.trace_id,
                                "spanId": s.span_id,
                                **({"parentSpanId": s.parent_span_id} if s.parent_span_id else {}),
                                "name": s.name,
                                "kind": s.kind,
                                "startTimeUnixNano": str(int(round(s.start * 1e9))),
                                "endTimeUnixNano": str(int(round(s.end * 1e9))),
                                "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in s.attributes.items()],
                                "status": {"code": 2 if s.error else 0},
                            }
                            for s in group
                        ],
                    }
                ],
            }
        )
    return out


# ---------------------------------------------------------------- the MCP server


def build_server(tools: ReplayTools, name: str = "compass-replay"):
    """A low-level MCP server exposing the replay tools with Grafana's exact input schemas."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    tool_list = [
        types.Tool(
            name=n,
            title=title,
            description=desc,
            input_schema=schema,
            annotations=types.ToolAnnotations(title=title, read_only_hint=True, destructive_hint=False,
                                              idempotent_hint=True, open_world_hint=False),
        )
        for n, (title, desc, schema) in TOOLS.items()
    ]

    async def on_list_tools(ctx, params) -> types.ListToolsResult:
        # a recording without annotations does not pretend to have them (datasources of
        # missing signals are likewise left out of list_datasources)
        caps = await tools.caps()
        return types.ListToolsResult(tools=[t for t in tool_list if t.name != "get_annotations" or caps.annotations])

    async def on_call_tool(ctx, params) -> types.CallToolResult:
        try:
            payload, structured = await tools.call(params.name, dict(params.arguments or {}))
        except ToolError as e:
            return types.CallToolResult(content=[types.TextContent(text=str(e))], is_error=True)
        except Exception as e:  # noqa: BLE001 - a replay bug is an error result, not a dead server
            return types.CallToolResult(content=[types.TextContent(text=f"{params.name}: {type(e).__name__}: {e}")], is_error=True)
        text = json.dumps(payload, separators=(",", ":"))
        return types.CallToolResult(
            content=[types.TextContent(text=text)],
            structured_content=payload if structured else None,
        )

    return Server(name, version=_version(), on_list_tools=on_list_tools, on_call_tool=on_call_tool)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("compass-tui")
    except Exception:  # noqa: BLE001
        return "0"


async def serve_stdio(backend: Backend, window: tuple[float, float], step: float = 15.0) -> None:
    """Serve over this process's stdin/stdout until the client goes away."""
    from mcp.server.stdio import stdio_server

    server = build_server(ReplayTools(backend, window, step))
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(backend: Backend, window: tuple[float, float], port: int, step: float = 15.0,
                     host: str = "127.0.0.1", ready=None) -> None:
    """Serve streamable HTTP on ``http://127.0.0.1:PORT/mcp`` until cancelled."""
    import uvicorn

    server = build_server(ReplayTools(backend, window, step))
    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    userver = uvicorn.Server(config)
    if ready is not None:
        import asyncio

        async def notify() -> None:
            while not userver.started:
                await asyncio.sleep(0.02)
            ready()

        asyncio.get_running_loop().create_task(notify())
    await userver.serve()


__all__ = ["ReplayTools", "TOOLS", "ToolError", "build_server", "serve_stdio", "serve_http", "parse_traceql", "MetricResult"]

"""The MCP backend: the engine's verbs answered through the tools of MCP servers.

Two tool families are understood, found by listing each server's tools (never assumed):

- Grafana's server (mcp-grafana) and ``compass replay``: ``query_prometheus``,
  ``list_prometheus_*``, ``query_loki_logs``, ``list_loki_*``, ``search_tempo_traces`` +
  ``get_tempo_trace``, ``get_annotations``, ``list_datasources``.
- prometheus-mcp-server: ``execute_range_query``, ``execute_query``, ``list_metrics``.

Sessions are opened once per investigation. Each server has one owner task that enters its
transport and session (an AsyncExitStack) and later exits them, because anyio cancel scopes
must be exited by the task that entered them; verbs called from any task only send requests.
Calls run concurrently under a semaphore, with a timeout, and a retry for transport
failures. Only tools on an explicit read allow-list are ever called. A server that will not
start, dies, hangs, answers garbage or too much, or rejects a query makes the verb return
status ``error`` saying what failed; nothing raises into the engine (``series`` excepted, whose
failure the query runner records as a failed query). Each server's failures are kept as a
``SourceFailure`` (what went wrong, since when, after how many answered calls) so the report
can say that the source failed rather than that a signal does not exist; the details (the
server's last stderr lines, the garbage it printed, the exceptions) go to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from compass_tui.config import Config, McpServerConfig, SecretMissing
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

# Tools COMPASS may call. Anything else (create_annotation, update_dashboard, alerting
# writes...) is refused before it reaches a server, whatever the server offers.
READ_TOOLS = frozenset(
    {
        # Grafana's server (and compass replay)
        "query_prometheus",
        "list_prometheus_metric_names",
        "list_prometheus_label_names",
        "list_prometheus_label_values",
        "list_prometheus_metric_metadata",
        "query_loki_logs",
        "list_loki_label_names",
        "list_loki_label_values",
        "search_tempo_traces",
        "get_tempo_trace",
        "list_tempo_attribute_names",
        "list_tempo_attribute_values",
        "get_annotations",
        "get_annotation_tags",
        "list_datasources",
        "get_datasource",
        "alerting_rules_read",
        # prometheus-mcp-server
        "execute_query",
        "execute_range_query",
        "list_metrics",
        "get_metric_metadata",
        "health_check",
    }
)

MAX_SERIES = 5000
"""Series kept from one metric result; more are cut and the result says truncated."""
MAX_POINTS = 2_000_000
"""Samples kept from one metric result across its series."""
MAX_TRACES_FETCHED = 500
"""Traces fetched one by one after a trace search (Grafana's Tempo tools have no bulk fetch)."""
SAMPLE_PROBE_SPAN_S = 1800.0
"""How far back ``sample_interval`` looks at raw samples: a few scrapes even at 5 minutes."""


log = logging.getLogger("compass.mcp")


class ToolRefused(Exception):
    """A tool outside the read allow-list was asked for."""


class SourceFailed(Exception):
    """A server could not answer a lookup (``series``); the message is one line."""


def rfc3339(t: float) -> str:
    """Unix seconds to RFC3339 UTC, with milliseconds only when present: Prometheus keeps
    milliseconds, and mcp-grafana's time parser rejects six fractional digits."""
    ms = int(round(t * 1000))
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    if ms % 1000 == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _num(x: Any) -> float:
    if isinstance(x, (int, float)):
        return float(x)
    s = str(x)
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    return float(s)


def _redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def _label_value(v: str) -> str:
    """A label value quoted for a PromQL matcher."""
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _one_line(text: str, limit: int = 400) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def _query_of(args: dict[str, Any]) -> str:
    q = args.get("query") or args.get("expr") or args.get("logql") or ""
    return _one_line(str(q), 200)


def _text_size(res: Any) -> int:
    """Characters of text in a tool result (what the result cap measures)."""
    return sum(len(getattr(c, "text", "") or "") for c in (getattr(res, "content", None) or []) if getattr(c, "type", "") == "text")


def _is_rpc_error(e: BaseException) -> bool:
    try:
        from mcp.shared.exceptions import MCPError
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return False
    return isinstance(e, MCPError)


def _garbage_text(e: BaseException) -> str:
    """The offending line of a JSON-RPC parse error (pydantic keeps it as the input)."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            if isinstance(first.get("input"), str):
                return first["input"]
        except Exception:  # noqa: BLE001 - any shape: fall back to the message
            pass
    return str(e).splitlines()[0] if str(e) else type(e).__name__


@dataclass
class CallOutcome:
    """What one tool call gave: the decoded payload or the error, and its wall time."""

    server: str
    tool: str
    payload: Any = None
    error: str | None = None
    wall_s: float = 0.0
    size: int = 0
    fault: str | None = None
    """Why it failed, as a SourceFailure kind: died, hung, garbage, too_big, errors."""
    query: str = ""
    """The query it carried (for the log)."""


@dataclass
class CallRecord:
    """One tool call as the cost ledger sees it."""

    server: str
    tool: str
    wall_s: float
    ok: bool
    error: str | None = None


@dataclass
class ServerState:
    """One configured server and what it became."""

    name: str
    config: McpServerConfig
    session: Any = None
    tools: dict[str, Any] = field(default_factory=dict)
    family: str | None = None  # "grafana" or "prometheus"
    status: str = "pending"  # pending, ready, failed, dead, hung, garbage, closed
    error: str | None = None
    server_info: str | None = None
    datasources: dict[str, str] = field(default_factory=dict)  # signal -> uid
    datasource_names: dict[str, str] = field(default_factory=dict)
    stderr_path: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    secrets: list[str] = field(default_factory=list)
    answered: int = 0
    """Tool calls answered without error."""
    garbage: list[str] = field(default_factory=list)
    """Lines the server printed on stdout that are not JSON-RPC (the first few)."""
    garbage_count: int = 0
    failure: SourceFailure | None = None
    faults: dict[str, int] = field(default_factory=dict)
    """fault kind -> failed calls of that kind."""

    def stderr_tail(self, n: int = 3) -> str:
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                lines = [ln.strip() for ln in f.read().splitlines()[-40:] if ln.strip()]
        except OSError:
            return ""
        # the server's own last words are the best hint of why it failed
        return _one_line(" | ".join(lines[-n:]), 300)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%SZ")


def _bare(error: str, server: str) -> str:
    """An error without its ``server/tool: `` prefix (the failure already names the server)."""
    head, sep, rest = error.partition(": ")
    return rest if sep and head.split("/")[0] == server else error


@dataclass
class SourceFailure:
    """How one server failed during an investigation: the kind (``died``, ``hung``,
    ``garbage``, ``too_big`` or ``errors``), since when, after how many answered calls, and
    how many calls failed since."""

    server: str
    kind: str
    since: float
    """time.time() of the first failed call."""
    answered_before: int
    first_error: str
    failed_calls: int = 0
    answered_after: int = 0
    timeout_s: float | None = None
    cap_bytes: int | None = None
    last_words: str = ""
    """The server's last stderr line when it failed (the log has more)."""

    sample: str = ""
    """For garbage: the first line it printed that is not JSON-RPC."""

    def short(self) -> str:
        """Which server failed, how and since when, in a few words."""
        s, at = self.server, _clock(self.since)
        return {
            "died": f"the MCP server {s} died at {at}",
            "hung": f"the MCP server {s} stopped answering at {at}",
            "garbage": f"the MCP server {s} answered garbage at {at}",
            "too_big": f"the MCP server {s} answered results too big to read from {at} on",
        }.get(self.kind, f"the MCP server {s} answered errors from {at} on")

    def headline(self) -> str:
        """One line: which server failed, how, since when, after how many answers."""
        s, n = self.server, self.answered_before
        after = f"after answering {n} call{'s' if n != 1 else ''}"
        why = _one_line(_bare(self.first_error, s), 120)
        if self.kind == "died":
            return f"{self.short()}, {after} (its connection closed)"
        if self.kind == "hung":
            return f"{self.short()}, {after} (no answer within {self.timeout_s or 0:g}s)"
        if self.kind == "garbage":
            what = f"lines that are not JSON-RPC, e.g. {_one_line(self.sample, 60)!r}" if self.sample else why
            return f"{self.short()}, {after} ({what})"
        if self.kind == "too_big":
            k = self.failed_calls
            return f"{self.short()}: {k} result{'s' if k != 1 else ''} over the {self.cap_bytes}-byte cap (mcp_max_result_bytes)"
        total = self.failed_calls + n + self.answered_after
        return f"{self.short()}: {self.failed_calls} of {total} calls failed ({why})"

    def detail(self) -> str:
        """The headline, with the server's last stderr line when it died."""
        words = f"; its last stderr line: {_one_line(self.last_words, 120)}" if self.last_words and self.kind == "died" else ""
        return self.headline() + words


def _family(tools: dict[str, Any]) -> str | None:
    if "query_prometheus" in tools or "query_loki_logs" in tools or "search_tempo_traces" in tools:
        return "grafana"
    if "execute_range_query" in tools or "execute_query" in tools:
        return "prometheus"
    return None


class McpBackend:
    """A Backend over the MCP servers of a config. Use as ``async with McpBackend(...)`` or
    call ``await start()`` and ``await aclose()`` yourself."""

    def __init__(
        self,
        servers: dict[str, McpServerConfig],
        *,
        max_concurrency: int = 8,
        retries: int = 1,
        max_result_bytes: int = 32 * 1024 * 1024,
        window: tuple[float, float] | None = None,
        source: str | None = None,
    ):
        self.servers = {n: ServerState(name=n, config=c) for n, c in servers.items() if c.enabled}
        self._sem = asyncio.Semaphore(max_concurrency)
        self.retries = retries
        self.max_result_bytes = max_result_bytes
        self.window = window
        """The incident window; discovery verbs without a time range of their own use it."""
        self.source = source or ("mcp:" + ",".join(self.servers) if self.servers else "mcp")
        self.calls: list[CallRecord] = []
        """Every tool call made, with its wall time (the engine charges queries to agents)."""
        self._started = False
        self._starting: asyncio.Future | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._trace_cache: dict[str, list[Span]] = {}

    @classmethod
    def from_config(cls, config: Config, window: tuple[float, float] | None = None) -> McpBackend:
        return cls(
            config.enabled_servers(),
            max_concurrency=config.mcp_max_concurrency,
            retries=config.mcp_retries,
            max_result_bytes=config.mcp_max_result_bytes,
            window=window,
        )

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> McpBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start every server (concurrently), list its tools, find its datasources. A server
        that fails is marked failed with the reason; start itself never raises."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        # every caller waits for the same start, so verbs racing at the beginning all see
        # the servers ready (shield: one caller's cancellation does not abort the start)
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        self._started = True
        self._tmpdir = tempfile.TemporaryDirectory(prefix="compass-mcp-")
        for st in self.servers.values():
            st.task = asyncio.create_task(self._own(st), name=f"mcp-owner:{st.name}")
        await asyncio.gather(*(st.ready.wait() for st in self.servers.values()))
        await asyncio.gather(*(self._discover_datasources(st) for st in self.servers.values() if st.status == "ready"))

    async def aclose(self) -> None:
        """Close every session from the task that opened it; idempotent."""
        for st in self.servers.values():
            st.stop.set()
        tasks = [st.task for st in self.servers.values() if st.task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=10)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(BaseException):
                    await t
        for st in self.servers.values():
            st.task = None
            st.session = None
            if st.status == "ready":
                st.status, st.error = "closed", "the investigation's sessions were closed"
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    async def _own(self, st: ServerState) -> None:
        """The owner task of one server: opens, waits for stop, closes, in this one task."""
        from mcp import ClientSession

        cap = self.max_result_bytes

        class Session(ClientSession):
            async def validate_tool_result(self, name: str, result: Any) -> None:
                # a result over the cap is refused anyway; checking a huge one against the
                # tool's output schema would hold the event loop for seconds
                if _text_size(result) <= cap:
                    await super().validate_tool_result(name, result)

        cfg = st.config
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with asyncio.timeout(cfg.startup_timeout_s):
                        read, write = await self._open_transport(st, stack)
                        session = await stack.enter_async_context(
                            Session(read, write, message_handler=self._message_handler(st))
                        )
                        init = await session.initialize()
                        info = getattr(init, "server_info", None)
                        if info is not None:
                            st.server_info = f"{info.name} {info.version}".strip()
                        listed = await session.list_tools()
                        st.tools = {t.name: t for t in listed.tools}
                except TimeoutError:
                    st.status = "failed"
                    tail = st.stderr_tail()
                    st.error = f"did not start within {cfg.startup_timeout_s:g}s" + (f": {tail}" if tail else "")
                    return
                except SecretMissing as e:
                    st.status = "failed"
                    st.error = str(e)
                    return
                except Exception as e:  # noqa: BLE001 - any start failure is reported, not raised
                    st.status = "failed"
                    st.error = self._start_error(st, e)
                    return
                st.session = session
                st.family = _family(st.tools)
                st.status = "ready"
                st.ready.set()
                await st.stop.wait()
                st.session = None
        except BaseException as e:  # noqa: BLE001
            # a transport dying mid-investigation surfaces here when its task group unwinds
            if st.status == "ready":
                st.status = "dead"
                st.error = f"stopped: {_one_line(_redact(str(e) or type(e).__name__, st.secrets))}"
            elif st.status == "pending":
                st.status = "failed"
                st.error = self._start_error(st, e)
            if not isinstance(e, asyncio.CancelledError):
                log.warning("%s: the session ended: %s", st.name, st.error, exc_info=e)
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            if st.status == "failed":
                log.warning("%s: %s%s", st.name, st.error, self._stderr_for_log(st))
            st.ready.set()

    def _message_handler(self, st: ServerState):
        """What the session passes on besides answers: a line on the server's stdout that is
        not JSON-RPC arrives here as the parse error (the SDK has logged it with its traceback)."""

        async def handle(message: Any) -> None:
            if isinstance(message, Exception):
                st.garbage_count += 1
                if len(st.garbage) < 3:
                    st.garbage.append(_one_line(_redact(_garbage_text(message), st.secrets), 80))
                    log.warning("%s: printed a line on stdout that is not JSON-RPC: %s", st.name, st.garbage[-1])

        return handle

    def _stderr_for_log(self, st: ServerState) -> str:
        if not st.stderr_path:
            return ""
        try:
            with open(st.stderr_path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-4000:].strip()
        except OSError:
            return ""
        return f"\n  the server's stderr (last lines):\n    " + "\n    ".join(_redact(tail, st.secrets).splitlines()[-30:]) if tail else ""

    def _failed(self, st: ServerState, out: CallOutcome) -> None:
        """Count one failed call against its server, and keep the first as the failure."""
        kind = out.fault or "errors"
        st.faults[kind] = st.faults.get(kind, 0) + 1
        if st.failure is None:
            st.failure = SourceFailure(server=st.name, kind=kind, since=time.time(), answered_before=st.answered,
                                       first_error=out.error or kind, timeout_s=st.config.tool_timeout_s,
                                       cap_bytes=self.max_result_bytes)
            log.warning("%s: first failed call (%s%s): %s%s", st.name, out.tool, f" {out.query}" if out.query else "",
                        out.error, self._stderr_for_log(st))
        else:
            log.info("%s/%s%s failed: %s", st.name, out.tool, f" {out.query}" if out.query else "", out.error)
        st.failure.failed_calls += 1
        if st.status in ("dead", "hung", "garbage") and not st.failure.last_words:
            st.failure.last_words = st.stderr_tail(1)
        if st.garbage and not st.failure.sample:
            st.failure.sample = st.garbage[0]
        # a server that died, hung or talks garbage says so, whatever its first failure was
        if st.status in ("dead", "hung", "garbage") and st.failure.kind not in ("died", "hung", "garbage"):
            st.failure.kind = {"dead": "died"}.get(st.status, st.status)

    def _malformed(self, out: CallOutcome, error: str) -> str:
        """A decoded answer whose shape is not what the tool promises: a failed call too."""
        st = self.servers.get(out.server)
        if st is not None:
            if st.failure is not None and st.failure.answered_after:
                st.failure.answered_after -= 1
            elif st.failure is None and st.answered:
                st.answered -= 1
            self._failed(st, CallOutcome(out.server, out.tool, error=error, fault="garbage"))
        return error

    def source_failures(self) -> list[SourceFailure]:
        """The servers that failed calls during this investigation, with how and since when."""
        return [st.failure for st in self.servers.values() if st.failure is not None]

    def _start_error(self, st: ServerState, e: BaseException) -> str:
        msg = str(e) or type(e).__name__
        if isinstance(e, BaseExceptionGroup):
            leaves = []

            def walk(g: BaseException) -> None:
                if isinstance(g, BaseExceptionGroup):
                    for x in g.exceptions:
                        walk(x)
                else:
                    leaves.append(g)

            walk(e)
            msg = "; ".join(str(x) or type(x).__name__ for x in leaves[:2])
        if isinstance(e, FileNotFoundError) or "No such file" in msg:
            msg = f"command not found: {st.config.command} (install it or fix mcp_servers.{st.name}.command)"
        tail = st.stderr_tail()
        text = f"could not start: {msg}" + (f" (server said: {tail})" if tail and tail not in msg else "")
        return _one_line(_redact(text, st.secrets))

    async def _open_transport(self, st: ServerState, stack: contextlib.AsyncExitStack):
        cfg = st.config
        if cfg.transport == "stdio":
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            env = cfg.resolved_env(st.name)
            st.secrets = cfg.secret_values(st.name)
            # Keep FastMCP-based servers quiet and off the network (banner, update check).
            env.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
            env.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
            assert self._tmpdir is not None
            st.stderr_path = os.path.join(self._tmpdir.name, f"{st.name}.stderr")
            errlog = stack.enter_context(open(st.stderr_path, "w", encoding="utf-8"))
            params = StdioServerParameters(command=cfg.command or "", args=list(cfg.args), env=env, cwd=cfg.cwd)
            return await stack.enter_async_context(stdio_client(params, errlog=errlog))
        import httpx2  # the HTTP client the mcp SDK ships with

        from mcp.client.streamable_http import streamable_http_client

        headers = cfg.resolved_headers(st.name)
        st.secrets = cfg.secret_values(st.name)
        client = await stack.enter_async_context(
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(cfg.tool_timeout_s, read=cfg.tool_timeout_s + 5))
        )
        url = cfg.resolved_url(st.name)
        streams = await stack.enter_async_context(streamable_http_client(url, http_client=client))
        return streams[0], streams[1]

    async def _discover_datasources(self, st: ServerState) -> None:
        cfg = st.config
        pinned = {
            "metrics": cfg.prometheus_datasource_uid,
            "logs": cfg.loki_datasource_uid,
            "traces": cfg.tempo_datasource_uid,
        }
        for sig, uid in pinned.items():
            if uid:
                st.datasources[sig] = uid
        if st.family != "grafana" or all(pinned.values()) or "list_datasources" not in st.tools:
            return
        out = await self._call(st.name, "list_datasources", {"limit": 100})
        if out.error:
            st.error = f"list_datasources failed: {out.error}"
            return
        items = out.payload.get("datasources") if isinstance(out.payload, dict) else out.payload
        if not isinstance(items, list):
            return
        kinds = {"metrics": ("prometheus", "mimir"), "logs": ("loki",), "traces": ("tempo",)}
        for sig, types in kinds.items():
            if st.datasources.get(sig):
                continue
            cands = [d for d in items if isinstance(d, dict) and str(d.get("type", "")).lower() in types]
            if cands:
                best = sorted(cands, key=lambda d: not d.get("isDefault"))[0]
                st.datasources[sig] = str(best.get("uid"))
                st.datasource_names[sig] = str(best.get("name", ""))

    # ------------------------------------------------------------ calling

    async def call_tool(self, server: str, tool: str, args: dict[str, Any], *, timeout_s: float | None = None) -> CallOutcome:
        """Call one read tool on one server; never raises (a refused write tool excepted)."""
        if tool not in READ_TOOLS:
            raise ToolRefused(f"{tool} is not a read tool COMPASS may call")
        return await self._call(server, tool, args, timeout_s=timeout_s)

    async def _call(self, server: str, tool: str, args: dict[str, Any], *, timeout_s: float | None = None) -> CallOutcome:
        if tool not in READ_TOOLS:
            # belt and braces: no code path reaches a write tool
            return CallOutcome(server, tool, error=f"refused: {tool} is not on COMPASS's read allow-list")
        st = self.servers.get(server)
        if st is None:
            return CallOutcome(server, tool, error=f"no MCP server named {server!r} is configured")
        if st.status != "ready" or st.session is None:
            out = CallOutcome(server, tool, error=f"{server}: {st.status}: {st.error or 'not started'}",
                              fault={"dead": "died"}.get(st.status, st.status))
            if st.status in ("dead", "hung", "garbage"):
                self._failed(st, out)  # a call the failure cost
            return out
        if tool not in st.tools:
            return CallOutcome(server, tool, error=f"{server} has no tool {tool}")
        limit = timeout_s or st.config.tool_timeout_s
        attempts = self.retries + 1
        last_err = "no attempt"
        fault = "errors"
        t0 = time.perf_counter()
        async with self._sem:
            for attempt in range(attempts):
                if st.status != "ready" or st.session is None:
                    last_err = f"{server}: {st.status}: {st.error}"
                    fault = {"dead": "died"}.get(st.status, st.status)
                    break
                try:
                    async with asyncio.timeout(limit):
                        res = await st.session.call_tool(tool, args)
                except TimeoutError:
                    # a hung server stays hung: stop sending it work instead of queueing more
                    if st.garbage_count > 0:
                        # it answered, but with lines that are not JSON-RPC: the answer is lost
                        st.status, fault = "garbage", "garbage"
                        sample = st.garbage[0] if st.garbage else "?"
                        st.error = f"answered lines that are not JSON-RPC (e.g. {sample!r}) and no answer within {limit:g}s"
                        last_err = f"{server}/{tool}: {st.error} (server marked degraded)"
                    else:
                        st.status, fault = "hung", "hung"
                        st.error = f"{tool} got no answer within {limit:g}s"
                        last_err = f"{server}/{tool}: no answer within {limit:g}s (server marked degraded)"
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - transport failures become errors
                    last_err = f"{server}/{tool}: {_one_line(_redact(str(e) or type(e).__name__, st.secrets))}"
                    log.info("%s/%s raised %s", server, tool, type(e).__name__, exc_info=e)
                    if st.task is not None and st.task.done():
                        st.status, fault = "dead", "died"
                        st.error = st.error or "the server process exited"
                        break
                    closed = type(e).__name__ in ("ClosedResourceError", "BrokenResourceError", "EndOfStream")
                    if closed or "connection closed" in str(e).lower():
                        st.status, fault = "dead", "died"
                        st.error = "connection closed (the server exited?)" + (
                            f": {st.stderr_tail()}" if st.stderr_tail() else ""
                        )
                        last_err = f"{server}/{tool}: {st.error}"
                        break
                    if _is_rpc_error(e):
                        # a JSON-RPC error is the server's answer: asking again gets the same
                        last_err = f"{server}/{tool}: JSON-RPC error: {_one_line(_redact(str(e), st.secrets))}"
                        break
                    if attempt + 1 < attempts:
                        await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                wall = time.perf_counter() - t0
                out = self._decode(st, tool, res)
                out.wall_s = wall
                self.calls.append(CallRecord(server, tool, wall, out.error is None, out.error))
                if out.error:
                    out.query = _query_of(args)
                    self._failed(st, out)
                else:
                    st.answered += 1
                    if st.failure is not None:
                        st.failure.answered_after += 1
                return out
        wall = time.perf_counter() - t0
        self.calls.append(CallRecord(server, tool, wall, False, last_err))
        out = CallOutcome(server, tool, error=last_err, wall_s=wall, fault=fault, query=_query_of(args))
        self._failed(st, out)
        return out

    def _decode(self, st: ServerState, tool: str, res: Any) -> CallOutcome:
        texts = [getattr(c, "text", "") for c in (res.content or []) if getattr(c, "type", "") == "text"]
        size = _text_size(res)
        if size > self.max_result_bytes:
            return CallOutcome(
                st.name, tool, size=size, fault="too_big",
                error=f"{st.name}/{tool}: result of {size} bytes is over the {self.max_result_bytes}-byte cap; narrow the query",
            )
        if res.is_error:
            msg = " ".join(texts) or "the tool reported an error"
            return CallOutcome(st.name, tool, size=size, error=f"{st.name}/{tool}: {_one_line(_redact(msg, st.secrets))}")
        sc = res.structured_content
        if sc is not None:
            # FastMCP servers wrap non-object results as {"result": ...}
            if isinstance(sc, dict) and set(sc) == {"result"} and len(texts) == 1:
                try:
                    return CallOutcome(st.name, tool, payload=json.loads(texts[0]), size=size)
                except ValueError:
                    pass
            return CallOutcome(st.name, tool, payload=sc, size=size)
        text = "".join(texts)
        if not text.strip():
            return CallOutcome(st.name, tool, payload=None, size=size)
        try:
            return CallOutcome(st.name, tool, payload=json.loads(text), size=size)
        except ValueError:
            return CallOutcome(
                st.name, tool, size=size, fault="garbage",
                error=f"{st.name}/{tool}: malformed result (not JSON): {_one_line(text, 120)}",
            )

    # ------------------------------------------------------------ routing

    def _server_for(self, signal: str) -> ServerState | None:
        """The first ready server (in config order) that can answer a signal."""
        for st in self.servers.values():
            if st.status not in ("ready", "hung", "dead", "garbage"):
                continue
            if signal == "metrics":
                if st.family == "prometheus" and "execute_range_query" in st.tools:
                    return st
                if st.family == "grafana" and "query_prometheus" in st.tools and st.datasources.get("metrics"):
                    return st
            elif signal == "logs":
                if st.family == "grafana" and "query_loki_logs" in st.tools and st.datasources.get("logs"):
                    return st
            elif signal == "traces":
                if (
                    st.family == "grafana"
                    and "search_tempo_traces" in st.tools
                    and "get_tempo_trace" in st.tools
                    and st.datasources.get("traces")
                ):
                    return st
            elif signal == "annotations":
                if "get_annotations" in st.tools:
                    return st
        return None

    def _missing_reason(self, signal: str) -> str:
        needs = {
            "metrics": "query_prometheus (mcp-grafana with a Prometheus datasource) or execute_range_query (prometheus-mcp-server)",
            "logs": "query_loki_logs (mcp-grafana with a Loki datasource)",
            "traces": "search_tempo_traces + get_tempo_trace (mcp-grafana with a Tempo datasource)",
            "annotations": "get_annotations (mcp-grafana)",
        }[signal]
        if not self.servers:
            return f"no MCP server configured; add one with {needs} (run `compass init`)"
        notes = []
        for st in self.servers.values():
            if st.status in ("failed", "dead", "hung", "garbage", "closed"):
                notes.append(f"{st.name} {st.status}: {st.error}")
            elif st.family == "grafana":
                ds = {"metrics": "Prometheus", "logs": "Loki", "traces": "Tempo"}.get(signal)
                if ds and not st.datasources.get(signal):
                    key = {"metrics": "prometheus", "logs": "loki", "traces": "tempo"}[signal]
                    notes.append(f"{st.name}: Grafana lists no {ds} datasource (set {key}_datasource_uid)")
                else:
                    notes.append(f"{st.name} lacks the tool")
            else:
                notes.append(f"{st.name} ({st.family or 'unknown tools'}) lacks it")
        return f"needs {needs}; " + "; ".join(notes)

    async def capabilities(self) -> Capabilities:
        await self.start()
        caps = Capabilities()
        for sig in ("metrics", "logs", "traces", "annotations"):
            st = self._server_for(sig)
            if st is not None and st.status == "ready":
                setattr(caps, sig, True)
            else:
                caps.missing[sig] = self._missing_reason(sig)
        return caps

    def _no_server(self, signal: str) -> str:
        return f"no source for {signal}: {self._missing_reason(signal)}"

    # ------------------------------------------------------------ metrics

    async def metric_names(self) -> list[str]:
        await self.start()
        st = self._server_for("metrics")
        if st is None:
            return []
        if st.family == "prometheus":
            out = await self._call(st.name, "list_metrics", {})
            payload = out.payload
            names = payload.get("metrics") if isinstance(payload, dict) else payload
        else:
            args: dict[str, Any] = {"datasourceUid": st.datasources["metrics"], "limit": 10000, "page": 1}
            out = await self._call(st.name, "list_prometheus_metric_names", args)
            names = out.payload
        if out.error or not isinstance(names, list):
            return []
        return sorted({str(n) for n in names})

    async def series(self, selector: str, start: float, end: float) -> list[dict[str, str]]:
        # Neither family has a series tool; last_over_time over the window keeps every label
        # (the metric name included) of every series that had a sample in it.
        rng = max(1, int(math.ceil(end - start)))
        res = await self.query_instant(f"last_over_time({selector}[{rng}s])", end)
        if res.status == "error":
            # an empty answer and a failed one must not look alike: the engine would take
            # a metric the server could not look up for one the stack does not have
            raise SourceFailed(res.error or "the lookup failed")
        if res.status != "ok":
            return []
        seen: dict[tuple, dict[str, str]] = {}
        for s in res.series:
            seen[tuple(sorted(s.labels.items()))] = s.labels
        return list(seen.values())

    async def query_range(self, promql: str, start: float, end: float, step: float) -> MetricResult:
        await self.start()
        st = self._server_for("metrics")
        if st is None:
            return MetricResult(query=promql, source=self.source, status="error", error=self._no_server("metrics"))
        if st.family == "prometheus":
            tool = "execute_range_query"
            args = {"query": promql, "start": _unix(start), "end": _unix(end), "step": f"{_step_str(step)}"}
        else:
            tool = "query_prometheus"
            args = {
                "datasourceUid": st.datasources["metrics"],
                "expr": promql,
                "startTime": rfc3339(start),
                "endTime": rfc3339(end),
                "stepSeconds": max(1, int(round(step))),
                "queryType": "range",
            }
        out = await self._call(st.name, tool, args)
        return self._metric_result(promql, out)

    async def query_instant(self, promql: str, t: float) -> MetricResult:
        await self.start()
        st = self._server_for("metrics")
        if st is None:
            return MetricResult(query=promql, source=self.source, status="error", error=self._no_server("metrics"))
        if st.family == "prometheus":
            tool, args = "execute_query", {"query": promql, "time": _unix(t)}
        else:
            tool = "query_prometheus"
            args = {
                "datasourceUid": st.datasources["metrics"],
                "expr": promql,
                "startTime": rfc3339(t),
                "endTime": rfc3339(t),
                "queryType": "instant",
            }
        out = await self._call(st.name, tool, args)
        return self._metric_result(promql, out)

    async def sample_interval(self, at: float, span_s: float = SAMPLE_PROBE_SPAN_S) -> float | None:
        """The scrape interval of the metrics before ``at``, in seconds: the median spacing of
        the raw samples of a typical ``up`` series (the one with the median sample count over
        ``span_s``). None when it cannot be told (no ``up``, or a source that cannot return raw
        samples). Two bounded queries."""
        rng = f"{max(60, int(span_s))}s"
        counts = await self.query_instant(f"count_over_time(up[{rng}])", at)
        if counts.status != "ok" or not counts.series:
            return None
        typical = sorted(counts.series, key=lambda s: (float(s.v[-1]) if len(s.v) else 0.0,
                                                       sorted(s.labels.items())))[len(counts.series) // 2]
        matchers = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(typical.labels.items()) if k != "__name__")
        raw = await self.query_instant(f"up{{{matchers}}}[{rng}]", at)
        if raw.status != "ok" or not raw.series or len(raw.series[0].t) < 3:
            return None
        spacing = float(np.median(np.diff(raw.series[0].t)))
        # Prometheus keeps milliseconds; a jittered scrape still has one typical spacing
        return round(spacing, 3) if spacing > 0 else None

    def _metric_result(self, query: str, out: CallOutcome) -> MetricResult:
        src = f"{out.server}/{out.tool}"
        if out.error:
            return MetricResult(query=query, source=src, status="error", error=out.error, wall_s=out.wall_s)
        try:
            res = parse_prom_payload(out.payload, query, src)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            return MetricResult(
                query=query, source=src, status="error", wall_s=out.wall_s,
                error=self._malformed(out, f"{src}: malformed result: {_one_line(str(e), 160)}"),
            )
        res.wall_s = out.wall_s
        return res

    # ------------------------------------------------------------ logs

    def _window_args(self, start_key: str, end_key: str) -> dict[str, str]:
        if self.window is None:
            return {}
        return {start_key: rfc3339(self.window[0]), end_key: rfc3339(self.window[1])}

    async def log_label_names(self) -> list[str]:
        await self.start()
        st = self._server_for("logs")
        if st is None or "list_loki_label_names" not in st.tools:
            return []
        args = {"datasourceUid": st.datasources["logs"], **self._window_args("startRfc3339", "endRfc3339")}
        out = await self._call(st.name, "list_loki_label_names", args)
        return [str(x) for x in out.payload] if isinstance(out.payload, list) and not out.error else []

    async def log_label_values(self, label: str) -> list[str]:
        await self.start()
        st = self._server_for("logs")
        if st is None or "list_loki_label_values" not in st.tools:
            return []
        args = {
            "datasourceUid": st.datasources["logs"],
            "labelName": label,
            **self._window_args("startRfc3339", "endRfc3339"),
        }
        out = await self._call(st.name, "list_loki_label_values", args)
        return [str(x) for x in out.payload] if isinstance(out.payload, list) and not out.error else []

    async def query_logs(self, logql: str, start: float, end: float, limit: int = 1000) -> LogResult:
        await self.start()
        st = self._server_for("logs")
        if st is None:
            return LogResult(query=logql, source=self.source, status="error", error=self._no_server("logs"))
        args = {
            "datasourceUid": st.datasources["logs"],
            "logql": logql,
            "startRfc3339": rfc3339(start),
            "endRfc3339": rfc3339(end),
            "limit": int(limit),
            # newest first, as Loki (and the bundle backend) answer by default
            "direction": "backward",
        }
        out = await self._call(st.name, "query_loki_logs", args)
        src = f"{out.server}/{out.tool}"
        if out.error:
            return LogResult(query=logql, source=src, status="error", error=out.error, wall_s=out.wall_s)
        try:
            res = parse_loki_logs(out.payload, logql, src, limit)
        except (ValueError, TypeError, KeyError) as e:
            return LogResult(query=logql, source=src, status="error", wall_s=out.wall_s,
                             error=self._malformed(out, f"{src}: malformed result: {_one_line(str(e), 160)}"))
        res.wall_s = out.wall_s
        return res

    async def query_log_metric(self, logql: str, start: float, end: float, step: float) -> MetricResult:
        await self.start()
        st = self._server_for("logs")
        if st is None:
            return MetricResult(query=logql, source=self.source, status="error", error=self._no_server("logs"))
        args = {
            "datasourceUid": st.datasources["logs"],
            "logql": logql,
            "startRfc3339": rfc3339(start),
            "endRfc3339": rfc3339(end),
            "stepSeconds": max(1, int(round(step))),
            "queryType": "range",
            # mcp-grafana applies its line limit to the number of series too
            "limit": MAX_SERIES,
        }
        out = await self._call(st.name, "query_loki_logs", args)
        src = f"{out.server}/{out.tool}"
        if out.error:
            return MetricResult(query=logql, source=src, status="error", error=out.error, wall_s=out.wall_s)
        try:
            res = parse_loki_metric(out.payload, logql, src)
        except (ValueError, TypeError, KeyError) as e:
            return MetricResult(query=logql, source=src, status="error", wall_s=out.wall_s,
                                error=self._malformed(out, f"{src}: malformed result: {_one_line(str(e), 160)}"))
        res.wall_s = out.wall_s
        return res

    # ------------------------------------------------------------ traces

    async def search_traces(
        self,
        start: float,
        end: float,
        service: str | None = None,
        error_only: bool = False,
        limit: int = 5000,
    ) -> TraceResult:
        await self.start()
        q = traceql_for(service, error_only)
        st = self._server_for("traces")
        if st is None:
            return TraceResult(query=q, source=self.source, status="error", error=self._no_server("traces"))
        uid = st.datasources["traces"]
        t0 = time.perf_counter()
        out = await self._call(st.name, "search_tempo_traces", {"datasourceUid": uid, "query": q, "start": rfc3339(start), "end": rfc3339(end)})
        src = f"{out.server}/search_tempo_traces"
        if out.error:
            return TraceResult(query=q, source=src, status="error", error=out.error, wall_s=out.wall_s)
        payload = out.payload if isinstance(out.payload, dict) else {}
        hits = payload.get("traces") or []
        if not isinstance(hits, list):
            return TraceResult(query=q, source=src, status="error", error=self._malformed(out, f"{src}: malformed result: traces is not a list"))
        ids = []
        for h in hits:
            tid = h.get("traceID") or h.get("traceId") if isinstance(h, dict) else None
            if tid and tid not in ids:
                ids.append(str(tid))
        truncated = len(ids) > MAX_TRACES_FETCHED
        ids = ids[:MAX_TRACES_FETCHED]

        async def fetch(tid: str) -> list[Span] | str:
            if tid in self._trace_cache:
                return self._trace_cache[tid]
            o = await self._call(st.name, "get_tempo_trace", {"datasourceUid": uid, "trace_id": tid})
            if o.error:
                return o.error
            try:
                spans = parse_otlp_spans(o.payload)
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                return self._malformed(o, f"{st.name}/get_tempo_trace: malformed trace {tid}: {_one_line(str(e), 120)}")
            self._trace_cache[tid] = spans
            return spans

        got = await asyncio.gather(*(fetch(t) for t in ids))
        spans: list[Span] = []
        errors = [g for g in got if isinstance(g, str)]
        for g in got:
            if isinstance(g, list):
                spans.extend(g)
        # the verb's contract: spans of the service (and with errors) within the window
        spans = [
            s for s in spans
            if (service is None or s.service == service) and (not error_only or s.error) and s.end >= start and s.start <= end
        ]
        spans.sort(key=lambda s: (s.start, s.trace_id, s.span_id))
        if len(spans) > limit:
            spans, truncated = spans[:limit], True
        wall = time.perf_counter() - t0
        if errors and not spans:
            return TraceResult(query=q, source=src, status="error", error=errors[0], wall_s=wall)
        status = "ok" if spans else "no_data"
        return TraceResult(query=q, source=src, status=status, spans=spans, wall_s=wall, truncated=truncated or bool(errors))

    # ------------------------------------------------------------ annotations

    async def annotations(self, start: float, end: float) -> AnnotationResult:
        await self.start()
        query = f"annotations(from={int(start * 1000)}, to={int(end * 1000)})"
        st = self._server_for("annotations")
        if st is None:
            return AnnotationResult(query=query, source=self.source, status="error", error=self._no_server("annotations"))
        out = await self._call(st.name, "get_annotations", {"from": int(math.floor(start * 1000)), "to": int(math.ceil(end * 1000)), "limit": 1000})
        src = f"{out.server}/{out.tool}"
        if out.error:
            return AnnotationResult(query=query, source=src, status="error", error=out.error, wall_s=out.wall_s)
        try:
            anns = parse_annotations(out.payload)
        except (ValueError, TypeError, KeyError) as e:
            return AnnotationResult(query=query, source=src, status="error", wall_s=out.wall_s,
                                    error=self._malformed(out, f"{src}: malformed result: {_one_line(str(e), 160)}"))
        return AnnotationResult(query=query, source=src, status="ok" if anns else "no_data", annotations=anns, wall_s=out.wall_s)

    # ------------------------------------------------------------ introspection

    def server_states(self) -> list[ServerState]:
        return list(self.servers.values())


# ---------------------------------------------------------------- payload parsing


def _unix(t: float) -> str:
    return repr(float(t)) if abs(t - round(t)) > 1e-9 else str(int(round(t)))


def _step_str(step: float) -> str:
    if abs(step - round(step)) < 1e-9:
        return f"{int(round(step))}s"
    return f"{int(round(step * 1000))}ms"


def parse_prom_payload(payload: Any, query: str, source: str) -> MetricResult:
    """Prometheus API ``data`` in any of the shapes the servers return: mcp-grafana's
    ``{"data": [...]}`` (matrix, vector or a scalar pair; null when empty), prometheus-mcp-server's
    ``{"resultType", "result"}``, or the raw ``{"status", "data": {"resultType", "result"}}``."""
    if isinstance(payload, dict) and "status" in payload and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    result_type = None
    if isinstance(payload, dict) and "result" in payload:
        result_type = payload.get("resultType")
        data = payload["result"]
    elif isinstance(payload, dict) and "data" in payload:
        data = payload["data"]
    elif payload is None or isinstance(payload, list):
        data = payload
    else:
        raise ValueError(f"unexpected payload keys {sorted(payload)[:5] if isinstance(payload, dict) else type(payload).__name__}")
    if data is None or data == []:
        return MetricResult(query=query, source=source, status="no_data")
    if result_type in ("scalar", "string") or (
        isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict) and not isinstance(data[1], (dict, list))
    ):
        return MetricResult(query=query, source=source, status="ok", scalar=_num(data[1]))
    if not isinstance(data, list):
        raise ValueError("result is not a list")
    series: list[Series] = []
    truncated = False
    points = 0
    for item in data:
        if len(series) >= MAX_SERIES or points >= MAX_POINTS:
            truncated = True
            break
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        if "values" in item:
            vals = item["values"] or []
            t = np.fromiter((float(p[0]) for p in vals), dtype=float, count=len(vals))
            v = np.fromiter((_num(p[1]) for p in vals), dtype=float, count=len(vals))
        elif "value" in item:
            p = item["value"]
            t = np.array([float(p[0])])
            v = np.array([_num(p[1])])
        else:
            raise ValueError("a series has neither values nor value")
        points += len(t)
        series.append(Series(labels=labels, t=t, v=v))
    return MetricResult(query=query, source=source, status="ok" if series else "no_data", series=series, truncated=truncated)


def parse_loki_logs(payload: Any, query: str, source: str, limit: int) -> LogResult:
    """mcp-grafana's ``{"data": [{"timestamp": ns, "line", "labels"}], "metadata"}`` (or a
    Loki ``streams`` result)."""
    meta = {}
    if isinstance(payload, dict):
        meta = payload.get("metadata") or {}
        data = payload.get("data")
        if isinstance(data, dict) and "result" in data:
            data = data["result"]
    else:
        data = payload
    if data is None:
        return LogResult(query=query, source=source, status="no_data")
    if not isinstance(data, list):
        raise ValueError("data is not a list")
    lines: list[LogLine] = []
    for e in data:
        if "stream" in e and "values" in e:  # raw Loki streams
            labels = {str(k): str(v) for k, v in (e.get("stream") or {}).items()}
            for ts, line in e["values"]:
                ns = int(ts)
                lines.append(LogLine(t=ns / 1e9, t_ns=ns, labels=labels, line=str(line)))
            continue
        if "line" not in e:
            raise ValueError("a log entry has no line (is this a metric query?)")
        ns = int(str(e.get("timestamp")))
        labels = {str(k): str(v) for k, v in (e.get("labels") or {}).items()}
        lines.append(LogLine(t=ns / 1e9, t_ns=ns, labels=labels, line=str(e["line"])))
    # trust the server's own flag; without one, a full page may have been cut
    truncated = bool(meta["resultsTruncated"]) if "resultsTruncated" in meta else len(lines) >= limit
    if len(lines) > limit:
        lines = lines[:limit]
    return LogResult(query=query, source=source, status="ok" if lines else "no_data", lines=lines, truncated=truncated)


def parse_loki_metric(payload: Any, query: str, source: str) -> MetricResult:
    """mcp-grafana's metric answer: ``{"data": [{"labels", "values": [{"timestamp": "s.mmm", "value"}]}]}``."""
    meta = payload.get("metadata") or {} if isinstance(payload, dict) else {}
    data = payload.get("data") if isinstance(payload, dict) else payload
    if isinstance(data, dict) and "result" in data:  # raw Loki matrix
        return parse_prom_payload(data, query, source)
    if not data:
        return MetricResult(query=query, source=source, status="no_data")
    series = []
    for item in data:
        if "metric" in item:
            return parse_prom_payload({"data": data}, query, source)
        labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
        vals = item.get("values")
        if vals is None and "value" in item:
            vals = [item["value"]]
        vals = vals or []
        t = np.array([float(p["timestamp"]) if isinstance(p, dict) else float(p[0]) for p in vals], dtype=float)
        v = np.array([_num(p["value"]) if isinstance(p, dict) else _num(p[1]) for p in vals], dtype=float)
        series.append(Series(labels=labels, t=t, v=v))
    return MetricResult(
        query=query, source=source, status="ok" if series else "no_data", series=series,
        truncated=bool(meta.get("resultsTruncated")),
    )


def _any_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    return None


def parse_otlp_spans(payload: Any) -> list[Span]:
    """Spans of an OTLP/JSON trace: ``batches`` (Tempo v1), ``resourceSpans`` or ``trace``."""
    if isinstance(payload, dict) and "trace" in payload and isinstance(payload["trace"], dict):
        payload = payload["trace"]
    rs = payload.get("batches") or payload.get("resourceSpans") or [] if isinstance(payload, dict) else []
    spans: list[Span] = []
    for r in rs:
        rattrs = {a["key"]: _any_value(a.get("value")) for a in (r.get("resource") or {}).get("attributes") or []}
        service = str(rattrs.get("service.name") or "unknown")
        for ss in r.get("scopeSpans") or r.get("instrumentationLibrarySpans") or []:
            for s in ss.get("spans") or []:
                attrs = {a["key"]: _any_value(a.get("value")) for a in s.get("attributes") or []}
                kind = s.get("kind", 0)
                if isinstance(kind, str):
                    kind = {"SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
                            "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}.get(kind, 0)
                code = (s.get("status") or {}).get("code", 0)
                if isinstance(code, str):
                    code = 2 if code.endswith("ERROR") else 0
                spans.append(
                    Span(
                        trace_id=str(s.get("traceId")),
                        span_id=str(s.get("spanId")),
                        parent_span_id=str(s["parentSpanId"]) if s.get("parentSpanId") else None,
                        service=service,
                        name=str(s.get("name", "")),
                        kind=int(kind),
                        start=int(s.get("startTimeUnixNano", 0)) / 1e9,
                        end=int(s.get("endTimeUnixNano", 0)) / 1e9,
                        error=int(code) == 2,
                        attributes={k: v for k, v in attrs.items() if v is not None},
                    )
                )
    return spans


def parse_annotations(payload: Any) -> list[Annotation]:
    """Grafana's annotation list, bare or as mcp-grafana's ``{"Payload": [...]}``."""
    items = payload
    if isinstance(payload, dict):
        items = payload.get("Payload", payload.get("annotations", payload.get("data")))
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError("annotations are not a list")
    out = []
    for a in items:
        t_end = a.get("timeEnd")
        out.append(
            Annotation(
                time=float(a["time"]) / 1000.0,
                time_end=float(t_end) / 1000.0 if t_end else None,
                tags=[str(t) for t in a.get("tags") or []],
                text=str(a.get("text", "")),
            )
        )
    out.sort(key=lambda a: a.time)
    return out


def traceql_for(service: str | None, error_only: bool) -> str:
    """The TraceQL a trace search runs (what evidence cites)."""
    conds = []
    if service is not None:
        conds.append(f"resource.service.name = {json.dumps(service)}")
    if error_only:
        conds.append("status = error")
    return "{ " + " && ".join(conds) + " }" if conds else "{ }"

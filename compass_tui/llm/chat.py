"""The chat's model path: a free-text question answered by the ``chat`` model with read-only
tools (run a PromQL or LogQL query over the incident window, show a hypothesis's evidence,
explain the ranking), streamed, each answer ending with the queries it ran.

What the tools return is redacted by the session before it reaches the model; the tools
cannot write anything anywhere.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compass_tui.llm.client import ModelSession
from compass_tui.models import Hypothesis, InvestigationRequest

ROLE = "chat"
MAX_ROUNDS = 5

SYSTEM = """You are COMPASS's incident chat. Answer the on-call engineer's question about this incident \
briefly and concretely. Use the tools to look at data; never invent a number or a query result. \
When you state a fact from data, it must come from a tool call in this conversation. Read-only: you \
cannot change anything."""

TOOLS = [
    {"type": "function", "function": {
        "name": "run_promql", "description": "Run a PromQL range query over the incident window; returns each series' last/min/max.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "run_logql", "description": "Run a LogQL query (log lines, or a metric query like count_over_time) over the incident window.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "show_evidence", "description": "The evidence, checks and queries behind one hypothesis (its rank, or fault@service).",
        "parameters": {"type": "object", "properties": {"hypothesis": {"type": "string"}}, "required": ["hypothesis"]}}},
    {"type": "function", "function": {
        "name": "explain_ranking", "description": "The ranked hypotheses with status, confidence and why disproven ones were ruled out.",
        "parameters": {"type": "object", "properties": {}}}},
]


@dataclass
class ChatAnswer:
    text: str
    queries: list[str] = field(default_factory=list)
    """Every query the answer ran, to cite under it."""


_LOG_METRIC = re.compile(r"\b(count_over_time|rate|bytes_over_time|bytes_rate|sum_over_time|absent_over_time)\s*\(")


def ranking_text(hypotheses: list[Hypothesis]) -> str:
    hs = sorted(hypotheses, key=lambda h: h.rank or 10**6)
    if not hs:
        return "no hypotheses yet"
    return "\n".join(f"#{h.rank} {h.fault}@{h.service} {h.status} {h.confidence:.2f}: {h.title}"
                     + (f" (ruled out: {h.why_disproven})" if h.why_disproven else "") for h in hs[:20])


def evidence_text(hypotheses: list[Hypothesis], which: str) -> str:
    hs = sorted(hypotheses, key=lambda h: h.rank or 10**6)
    which = (which or "").strip().lstrip("#")
    h = None
    if which.isdigit() and 1 <= int(which) <= len(hs):
        h = hs[int(which) - 1]
    else:
        h = next((x for x in hs if x.id == which), None)
    if h is None:
        return f"no hypothesis {which!r}"
    lines = [f"{h.fault}@{h.service} {h.status} {h.confidence:.2f}: {h.title}"]
    for e in h.evidence:
        lines.append(f"{'supports' if e.supports else 'contradicts'}: {e.summary} [query: {e.query}] ({e.source})")
    for d in h.disproof:
        lines.append(f"check {d.strategy}: {d.result}: {d.detail}")
    return "\n".join(lines)


def _no_result(r: Any) -> str | None:
    """What to say instead of a result that did not come or failed; None for a good one."""
    if r is None:
        return "no answer"
    if getattr(r, "status", "ok") == "error":
        return f"error: {r.error}"
    return None


def _metric_text(r: Any) -> str:
    if (said := _no_result(r)) is not None:
        return said
    out = [f"{len(r.series)} series"]
    for s in r.series[:12]:
        vals = [float(v) for v in s.v if not math.isnan(float(v))]
        name = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out.append(f"{{{name}}} last {vals[-1]:.4g} min {min(vals):.4g} max {max(vals):.4g}" if vals else f"{{{name}}} no points")
    return "\n".join(out)


def _log_text(r: Any) -> str:
    if (said := _no_result(r)) is not None:
        return said
    return "\n".join([f"{len(r.lines)} lines"] + [ln.line[:300] for ln in r.lines[:15]])


async def run_tool(name: str, args: dict[str, Any], *, backend: Any, request: InvestigationRequest | None,
                   hypotheses: list[Hypothesis], queries: list[str]) -> str:
    """One read-only tool call; the query is recorded for the citation."""
    if name == "explain_ranking":
        return ranking_text(hypotheses)
    if name == "show_evidence":
        return evidence_text(hypotheses, str(args.get("hypothesis", "")))
    if name in ("run_promql", "run_logql"):
        q = str(args.get("query") or "").strip()
        if not q:
            return "error: no query"
        if backend is None or request is None:
            return "error: no backend to query"
        start, end, step = request.window_start, request.window_end, request.step_s
        queries.append(q)
        try:
            if name == "run_promql":
                return _metric_text(await backend.query_range(q, start, end, step))
            if _LOG_METRIC.search(q):
                return _metric_text(await backend.query_log_metric(q, start, end, step))
            return _log_text(await backend.query_logs(q, start, end, 200))
        except Exception as e:  # a bad query is reported back to the model, not raised
            return f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return f"error: unknown tool {name}"


async def answer(session: ModelSession, question: str, *, hypotheses: list[Hypothesis], backend: Any,
                 request: InvestigationRequest | None, history: list[dict[str, Any]] | None = None,
                 on_delta: Callable[[str], None] | None = None) -> ChatAnswer:
    """Answer one question; raises ModelError/BudgetStop like any model call (the caller shows
    them as one line). ``history`` (earlier turns) is extended in place."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM + "\n\nCurrent ranking:\n" + ranking_text(hypotheses)}]
    msgs += list(history or [])
    msgs.append({"role": "user", "content": question})
    queries: list[str] = []
    text = ""
    for _ in range(MAX_ROUNDS):
        reply = await session.complete(ROLE, msgs, tools=TOOLS, stream=True, on_delta=on_delta)
        text = reply.content
        if not reply.tool_calls:
            break
        msgs.append({"role": "assistant", "content": reply.content or None, "tool_calls": [
            {"id": tc["id"], "type": "function", "function": {"name": tc["name"], "arguments": json.dumps(tc["arguments"])}}
            for tc in reply.tool_calls]})
        for tc in reply.tool_calls:
            args = tc["arguments"] if isinstance(tc["arguments"], dict) else {}
            result = await run_tool(tc["name"], args, backend=backend, request=request, hypotheses=hypotheses, queries=queries)
            msgs.append({"role": "tool", "tool_call_id": tc["id"], "content": result})
    if history is not None:
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
    return ChatAnswer(text=text, queries=queries)

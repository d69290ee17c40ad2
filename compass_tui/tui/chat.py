"""The escape-hatch chat's command language, understood without a model.

It answers from what the investigation already found (``why``, ``why not``, ``show``) and
runs the engineer's own queries against the current backend (``promql``, ``logql``); it
draws no conclusion of its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.text import Text

from compass_tui.models import Hypothesis, InvestigationRequest
from compass_tui.tui.render import confidence_bar, evidence_link, hypothesis_detail, ordered, style

HELP = """\
commands:
  why <n|fault@service>     the evidence and checks behind hypothesis n (or that cause)
  why not <fault@service>   why that cause is disproven, or was never proposed
  show <service>            what moved on a service: its hypotheses and the evidence citing it
  promql <query>            run PromQL over the incident window on the current backend
  logql <query>             run LogQL (a log query, or a metric query like count_over_time)
  rerun                     run the investigation again
  help                      this list"""

VERBS = ("why not", "why", "show", "promql", "logql", "rerun", "help")


@dataclass
class Command:
    verb: str
    arg: str


def parse(line: str) -> Command:
    """Split a chat line into a verb of the command language and its argument."""
    raw = line.strip()
    low = raw.lower()
    for verb in VERBS:
        if low == verb or low.startswith(verb + " "):
            return Command(verb, raw[len(verb):].strip())
    return Command("unknown", raw)


def _find(hypotheses: list[Hypothesis], arg: str) -> Hypothesis | None:
    ranked = ordered(hypotheses)
    if arg.isdigit():
        n = int(arg)
        return ranked[n - 1] if 1 <= n <= len(ranked) else None
    want = arg.strip().lower()
    for h in ranked:
        if h.id.lower() == want or f"{h.fault}@{h.service}".lower() == want:
            return h
    return None


def answer_why(hypotheses: list[Hypothesis], arg: str, grafana_url: str | None = None, window: tuple[float, float] | None = None) -> Text | Group:
    """The detail and evidence of one hypothesis, by list position or cause, with full links."""
    if not arg:
        return Text("usage: why <n|fault@service>")
    h = _find(hypotheses, arg)
    if h is None:
        return Text(f"no hypothesis {arg!r}: {len(hypotheses)} so far; `why 1` explains the first")
    text = Text()
    if not h.evidence:
        text.append("no evidence item yet")
    for i, e in enumerate(h.evidence, 1):
        mark = "✔ supports" if e.supports else "✘ contradicts"
        text.append(f"{i}. {mark}: {e.summary}\n   query: {e.query}  ({e.source})\n")
        link = evidence_link(e, grafana_url, window)
        if link:
            text.append(f"   link: {link}\n")
    return Group(hypothesis_detail(h), text)


def answer_why_not(hypotheses: list[Hypothesis], arg: str) -> Text:
    """Why a cause is not ranked: disproven (and by which check), lower, or never proposed."""
    if not arg:
        return Text("usage: why not <fault@service>")
    h = _find(hypotheses, arg)
    if h is None:
        return Text(
            f"{arg} was never proposed: no agent saw a signal predicting it in this window. "
            "`show <service>` lists what moved; `promql` lets you check yourself."
        )
    text = Text()
    if h.status == "disproven":
        text.append(f"{h.fault}@{h.service} is disproven: {h.why_disproven or 'a disproof check failed'}")
    else:
        pos = ordered(hypotheses).index(h) + 1
        text.append(f"{h.fault}@{h.service} is not ruled out: #{pos}, {h.status}, {confidence_bar(h.confidence)}")
    for d in h.disproof:
        if d.result == "failed":
            text.append(f"\n  ✘ {d.strategy}: {d.detail}")
    for e in h.evidence:
        if not e.supports:
            text.append(f"\n  contradicts: {e.summary}  [{e.query}]")
    return text


def answer_show(hypotheses: list[Hypothesis], service: str) -> Text:
    """What the investigation found moving on a service."""
    if not service:
        return Text("usage: show <service>")
    svc = service.strip()
    text = Text(f"{svc}:", style="bold")
    own = [h for h in ordered(hypotheses) if h.service == svc]
    for h in own:
        text.append(f"\n  {h.fault} ({h.status}, {confidence_bar(h.confidence)}): {h.title}")
    cited = [
        (h, e)
        for h in hypotheses
        for e in h.evidence
        if re.search(rf"(?<![\w-]){re.escape(svc)}(?![\w-])", f"{e.query} {e.summary}")
    ]
    for h, e in cited:
        text.append(f"\n  moved: {e.summary}  [{e.query}]  (for {h.fault}@{h.service})")
    if not own and not cited:
        text.append(f"\n  nothing the investigation looked at moved on {svc}; try `promql` on it")
    return text


def _series_name(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def summarize_metric(result: Any, limit: int = 8) -> Text:
    """A metric result in a few lines: status, series count, each series' last/min/max."""
    text = Text()
    status = getattr(result, "status", "?")
    text.append(f"{status}", style=style("bold $success" if status == "ok" else "bold $error"))
    text.append(f"  {getattr(result, 'source', '')}  {getattr(result, 'wall_s', 0.0) * 1000:.0f} ms")
    if getattr(result, "error", None):
        text.append(f"\n  error: {result.error}")
        return text
    if getattr(result, "scalar", None) is not None:
        text.append(f"\n  scalar {result.scalar:g}")
    series = list(getattr(result, "series", []) or [])
    text.append(f"\n  {len(series)} series")
    for s in series[:limit]:
        values = [float(v) for v in getattr(s, "v", []) if not math.isnan(float(v))]
        if values:
            text.append(
                f"\n  {_series_name(s.labels)}  last {values[-1]:.4g}  min {min(values):.4g}  "
                f"max {max(values):.4g}  ({len(values)} points)"
            )
        else:
            text.append(f"\n  {_series_name(s.labels)}  no points")
    if len(series) > limit:
        text.append(f"\n  … {len(series) - limit} more series not shown")
    if getattr(result, "truncated", False):
        text.append("\n  (the backend cut the result short)")
    return text


def summarize_logs(result: Any, limit: int = 8) -> Text:
    """A log result: status, line count, the first lines."""
    text = Text()
    status = getattr(result, "status", "?")
    text.append(f"{status}", style=style("bold $success" if status == "ok" else "bold $error"))
    text.append(f"  {getattr(result, 'source', '')}  {getattr(result, 'wall_s', 0.0) * 1000:.0f} ms")
    if getattr(result, "error", None):
        text.append(f"\n  error: {result.error}")
        return text
    lines = list(getattr(result, "lines", []) or [])
    text.append(f"\n  {len(lines)} lines")
    from compass_tui.tui.render import when  # noqa: PLC0415

    for line in lines[:limit]:
        text.append(f"\n  {when(line.t)} {line.line[:200]}")
    if len(lines) > limit:
        text.append(f"\n  … {len(lines) - limit} more lines")
    if getattr(result, "truncated", False):
        text.append("\n  (the backend cut the result short)")
    return text


_LOG_METRIC = re.compile(r"\b(count_over_time|rate|bytes_over_time|bytes_rate|sum_over_time|absent_over_time)\s*\(")


async def run_query(backend: Any, request: InvestigationRequest | None, language: str, query: str) -> Text:
    """Run the engineer's PromQL or LogQL over the incident window; read-only."""
    if not query:
        return Text(f"usage: {language} <query>")
    if backend is None or request is None:
        return Text("no backend to query yet: the incident is still opening, or no source is configured")
    start, end, step = request.window_start, request.window_end, request.step_s
    try:
        if language == "promql":
            return summarize_metric(await backend.query_range(query, start, end, step))
        if _LOG_METRIC.search(query):
            return summarize_metric(await backend.query_log_metric(query, start, end, step))
        return summarize_logs(await backend.query_logs(query, start, end, limit=200))
    except Exception as e:  # a bad query is the engineer's to fix: show it, keep going
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return Text(f"error: {first}", style=style("bold $error"))

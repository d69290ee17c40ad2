"""How hypotheses, evidence and results read on screen: Rich text built from the engine's
models, shared by the panes and the chat. Meaning never rests on colour alone (NO_COLOR):
every status has a word and a glyph, every bar has a number."""

from __future__ import annotations

import contextlib
import io
import json
import math
from datetime import datetime, timezone
from urllib.parse import quote

from rich.console import Group
from rich.table import Table
from rich.text import Text

from compass_tui.models import Evidence, Hypothesis

STATUS_GLYPH = {"supported": "✔", "inconclusive": "?", "disproven": "✘"}
STATUS_STYLE = {"supported": "bold $success", "inconclusive": "$warning", "disproven": "dim"}


def ordered(hypotheses: list[Hypothesis]) -> list[Hypothesis]:
    """Ranked best first as the engine ranked them; disproven ones always last."""

    def key(h: Hypothesis) -> tuple:
        return (h.status == "disproven", h.rank if h.rank > 0 else 10_000, -h.confidence, h.id)

    return sorted(hypotheses, key=key)


def confidence_bar(confidence: float, width: int = 8) -> str:
    """A bar of block characters plus the percentage, readable without colour."""
    c = min(max(confidence, 0.0), 1.0)
    full = int(round(c * width))
    return "█" * full + "░" * (width - full) + f" {c * 100:3.0f}%"


_PALETTE = {"$success": "green", "$warning": "yellow", "$error": "red", "$accent": "cyan"}


def set_palette(theme) -> None:
    """Take the signal colours from the app's theme, so text reads on light backgrounds too."""
    for name in ("success", "warning", "error", "accent"):
        value = getattr(theme, name, None)
        if value:
            _PALETTE[f"${name}"] = value


def style(spec: str) -> str:
    """A Rich style from a spec that may name the theme's colours (``bold $error``)."""
    for token, colour in _PALETTE.items():
        spec = spec.replace(token, colour)
    return spec


_style = style


def hypothesis_prompt(h: Hypothesis, position: int, verdict: str | None = None) -> Text:
    """Lines for the hypotheses list: the cause; its bar, status and title (or why it was
    disproven); what the memory recalls. Each line is cut, never wrapped, so the list stays
    aligned at any width."""
    dim = h.status == "disproven"
    first = Text(no_wrap=True, overflow="ellipsis")
    first.append(f"{position:>2} ", style="bold" if not dim else "dim")
    first.append(h.fault, style="dim" if dim else "bold")
    first.append("@", style="dim")
    first.append(h.service, style="dim" if dim else "bold")
    second = Text("   ", no_wrap=True, overflow="ellipsis")
    second.append(confidence_bar(h.confidence), style="dim" if dim else _style("$accent"))
    glyph = STATUS_GLYPH.get(h.status, "?")
    second.append(f" {glyph} {h.status} ", style=_style(STATUS_STYLE.get(h.status, "")))
    if h.agent == "memory":
        # proposed by the memory alone: no query measured it
        second.append("[memory] ", style="italic")
    if dim and h.why_disproven:
        second.append(f"· {h.why_disproven}", style="dim")
    else:
        second.append(f"· {h.title}", style="dim" if dim else "")
    lines = [first, second]
    if verdict:
        # what the memory holds for this cause, on its own line so no width cuts it
        lines.insert(1, Text.assemble("   ", (f"[{verdict}]", "reverse")))
    if h.memory_note:
        lines.append(Text(f"   memory: {h.memory_note}", style="italic", no_wrap=True, overflow="ellipsis"))
    text = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def when(t: float | None) -> str:
    """Unix seconds as HH:MM:SS UTC (the header and charts are read against alert times)."""
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%S")


def explore_url(grafana_url: str, query: str, kind: str, start: float | None, end: float | None) -> str:
    """A Grafana Explore deep link running ``query`` over the incident window."""
    pane: dict = {"queries": [{"refId": "A", "expr": query}]}
    if start is not None and end is not None:
        pane["range"] = {"from": str(int(start * 1000)), "to": str(int(end * 1000))}
    pane["datasource"] = "loki" if kind == "log" else "prometheus"
    panes = json.dumps({"a": pane}, separators=(",", ":"))
    return f"{grafana_url.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={quote(panes, safe='')}"


def evidence_link(e: Evidence, grafana_url: str | None, window: tuple[float, float] | None) -> str | None:
    """The engine's own link when it gave one; else an Explore link when Grafana is configured."""
    if e.link:
        return e.link
    if grafana_url and e.kind in ("metric", "log"):
        start, end = window if window else (None, None)
        return explore_url(grafana_url, e.query, e.kind, start, end)
    return None


def _fields(rows: list[tuple[str, Text | str]]) -> Table:
    """Label/value rows whose values wrap within their own column (long queries stay legible)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    # wrapped at spaces, so a query breaks between its tokens; only a token longer than the
    # pane is folded
    grid.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def evidence_text(e: Evidence, index: int, grafana_url: str | None, window: tuple[float, float] | None) -> Group:
    """One evidence item: supports or contradicts, the summary, the exact query and source."""
    head = Text()
    if e.supports:
        head.append(f"{index}. ✔ supports ", style=style("bold $success"))
    else:
        head.append(f"{index}. ✘ contradicts ", style=style("bold $error"))
    head.append(f"[{e.kind}] ", style="dim")
    head.append(e.summary)
    rows: list[tuple[str, Text | str]] = [
        ("   query", Text(e.query or "-", style="bold")),
        ("   source", e.source or "-"),
    ]
    parts: list = [head, _fields(rows)]
    link = evidence_link(e, grafana_url, window)
    if link:
        # A short label that is the whole link where the terminal supports hyperlinks; `Y`
        # copies it (OSC 52), and `why N` and the export carry it in full.
        parts.append(_fields([("   link", Text(short_link(link), style=f"link {link}" if link.startswith("http") else ""))]))
    return Group(*parts)


def short_link(link: str) -> str:
    """``https://host/path`` of a long link (its query string is what makes it unreadable)."""
    base, sep, _ = link.partition("?")
    return f"{base}?… (Y copies it)" if sep and len(link) > 80 else link


def hypothesis_detail(h: Hypothesis, verdict: str | None = None) -> Group:
    """The head of the evidence pane: the cause, its status, the disproof checks it faced."""
    text = Text()
    text.append(f"{h.fault}@{h.service}", style="bold")
    text.append(f"  {STATUS_GLYPH.get(h.status, '?')} {h.status}  ", style=_style(STATUS_STYLE.get(h.status, "")))
    text.append(confidence_bar(h.confidence, 10))
    if h.agent and h.agent != "memory":
        text.append(f"  by {h.agent}", style="dim")
    text.append(f"\n{h.title}")
    if h.agent == "memory":
        text.append("\nproposed by the memory alone: no query measured it", style="italic")
    if verdict:
        text.append(f"\nyour verdict: {verdict}", style="reverse")
    if h.why_disproven:
        text.append(f"\ndisproven: {h.why_disproven}", style="bold")
    if h.memory_note:
        text.append(f"\nmemory: {h.memory_note}", style="italic")
    parts: list = [text]
    if h.disproof:
        parts.append(Text("disproof checks:", style="dim"))
        marks = {"survived": "✔ survived", "failed": "✘ failed", "skipped": "- skipped"}
        parts.append(_fields([(f"  {marks.get(d.result, d.result)}", Text(f"{d.strategy}: {d.detail}")) for d in h.disproof]))
    return Group(*parts)


def chart_text(label: str, points: list[tuple[float, float]], onset: float | None, width: int, height: int, color: bool) -> Text:
    """A plotext line chart of ``points`` with the onset marked, as Rich text.

    The x axis is minutes from the onset (or from the first point), which reads better than
    unix seconds in 40 columns.
    """
    import plotext as plt  # noqa: PLC0415 - only when a chart is shown

    pts = [(t, v) for t, v in points if v is not None and not math.isnan(v)]
    if len(pts) < 2 or width < 20 or height < 5:
        return Text(f"{label}: too few points to chart ({len(pts)})", style="dim")
    origin = onset if onset is not None else pts[0][0]
    xs = [(t - origin) / 60.0 for t, _ in pts]
    ys = [v for _, v in pts]
    fig = plt.figure
    # plotext writes warnings to stdout, which would tear the full-screen display.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fig.clear()
        fig.plot_size(width, height)
        fig.theme("dark" if color else "colorless")
        sig = fig.signal(xs, ys, marker="braille")
        sig.lines()
        fig.draw(sig)
        if onset is not None and xs[0] <= 0 <= xs[-1]:
            lo, hi = min(ys), max(ys)
            mark = fig.signal([0.0, 0.0], [lo, hi if hi > lo else lo + 1], marker="braille")
            mark.lines()
            fig.draw(mark)
        fig.title(label[: max(width - 4, 10)])
        fig.label(f"minutes from the onset ({when(onset)})" if onset is not None else "minutes", axis="x")
        matrix = fig.build()
        out = matrix.string(colorless=not color)
    return Text.from_ansi(out, no_wrap=True)

"""The header: what fired, where, the window, the phase, and how long it has been running."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from compass_tui.tui.render import style, when

PHASES = ("observe", "orient", "act", "decide")


class IncidentHeader(Static):
    """Two lines: the incident and its source; the OODA phase, elapsed time and memory."""

    title: reactive[str] = reactive("opening the incident…")
    service: reactive[str | None] = reactive(None)
    window: reactive[tuple[float, float] | None] = reactive(None)
    phase: reactive[str | None] = reactive(None)
    elapsed: reactive[float] = reactive(0.0)
    finished: reactive[bool] = reactive(False)
    source_label: reactive[str] = reactive("")
    memory: reactive[str] = reactive("")
    failed: reactive[str | None] = reactive(None)

    def render(self) -> Text:
        top = Text(no_wrap=True, overflow="ellipsis")
        top.append(" COMPASS ", style="bold reverse")
        if self.source_label.startswith("demo"):
            top.append(" DEMO ", style="bold reverse yellow")
        top.append(f" {self.title}", style="bold")
        top.append("  alerting: ", style="dim")
        top.append(self.service or "unknown", style="bold")
        if self.window:
            top.append("  window ", style="dim")
            top.append(f"{when(self.window[0])[:5]}–{when(self.window[1])[:5]} UTC")
        bottom = Text(no_wrap=True, overflow="ellipsis")
        bottom.append(" phase ", style="dim")
        for p in PHASES:
            if p == self.phase and not self.finished:
                bottom.append(f"▸{p}", style="bold reverse")
            elif self.phase and PHASES.index(p) < PHASES.index(self.phase) or self.finished:
                bottom.append(f" {p}", style="")
            else:
                bottom.append(f" {p}", style="dim")
            bottom.append(" ")
        if self.failed:
            bottom.append(f" stopped: {self.failed}", style=style("bold $error"))
        else:
            state = "done" if self.finished else "running"
            bottom.append(f" {state} {self.elapsed:5.1f}s", style="bold" if not self.finished else "")
        bottom.append("  · ", style="dim")
        bottom.append(self.memory, style=style("bold $warning") if "unavailable" in self.memory else "dim")
        bottom.append("  · ", style="dim")
        bottom.append(self.source_label, style="bold" if "demo" in self.source_label else "dim")
        both = Text("\n").join([top, bottom])
        both.no_wrap = True
        both.overflow = "ellipsis"
        return both

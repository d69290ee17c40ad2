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
    investigation_id: reactive[str | None] = reactive(None)

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
        width = self.size.width or 200
        core = Text(no_wrap=True, overflow="ellipsis")
        if not self.finished or self.failed:
            core.append(" phase ", style="dim")
            for p in PHASES:
                if p == self.phase and not self.finished:
                    core.append(f"▸{p}", style="bold reverse")
                elif self.phase and PHASES.index(p) < PHASES.index(self.phase) or self.finished:
                    core.append(f" {p}", style="")
                else:
                    core.append(f" {p}", style="dim")
                core.append(" ")
        if self.failed:
            core.append(f" stopped: {self.failed}", style=style("bold $error"))
        else:
            if self.finished:
                core.append(f" done {self.elapsed:.1f}s")
            else:
                core.append(f" running {self.elapsed:5.1f}s", style="bold")
        if self.investigation_id and not self.failed:
            # the id is what `compass feedback` and `y` need: it is never cut
            core.append("  ")
            core.append(self.investigation_id, style="bold")
        memory = Text("  · ", style="dim")
        memory.append(self.memory, style=style("bold $warning") if "unavailable" in self.memory else "dim")
        source = Text("  · ", style="dim")
        source.append(self.source_label, style="bold" if "demo" in self.source_label else "dim")
        # what gives way when the line is short: the source, then the memory, never the id
        room = width - core.cell_len
        if room < memory.cell_len:
            memory.truncate(max(0, room), overflow="ellipsis")
        room -= memory.cell_len
        if room < source.cell_len:
            source.truncate(max(0, room), overflow="ellipsis")
        bottom = core + memory + source
        both = Text("\n").join([top, bottom])
        both.no_wrap = True
        both.overflow = "ellipsis"
        return both

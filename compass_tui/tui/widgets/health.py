"""Integration health: which sources answered, which signals are degraded, and the fix."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from compass_tui.models import Degraded
from compass_tui.tui.render import style


class HealthPane(Static):
    """Rendered from the degraded signals, query outcomes per source and the health checks."""

    def update_health(
        self,
        memory: str,
        degraded: list[Degraded],
        sources: dict[str, tuple[int, int]],
        checks: list[tuple[str, bool | None, str]],
        notes: list[str],
    ) -> None:
        """Redraw; ``sources`` maps a source to (queries answered, queries failed)."""
        text = Text()
        text.append("memory  ", style="bold")
        text.append(memory + "\n", style=style("bold $warning") if "unavailable" in memory else "")
        text.append("sources\n", style="bold")
        if not sources:
            text.append("  no query has run yet\n", style="dim")
        for name in sorted(sources):
            ok, bad = sources[name]
            mark = "✔" if bad == 0 else ("✘" if ok == 0 else "!")
            text.append(f"  {mark} {name}: {ok} answered")
            if bad:
                text.append(f", {bad} failed", style=style("bold $error"))
            text.append("\n")
        text.append("signals\n", style="bold")
        if not degraded:
            text.append("  no degraded signal reported\n", style="dim")
        for d in degraded:
            text.append(f"  ! {d.signal}: {d.reason}\n", style=style("$warning"))
            if d.fix:
                text.append(f"      fix: {d.fix}\n")
        text.append("checks\n", style="bold")
        if not checks:
            text.append("  running…\n", style="dim")
        for name, ok, detail in checks:
            mark = {True: "✔", False: "✘", None: "-"}[ok if ok in (True, False) else None]
            text.append(f"  {mark} {name}: {detail}\n")
        for note in notes:
            text.append(f"  ! {note}\n", style=style("$warning"))
        self.update(text)

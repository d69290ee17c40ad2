"""Where the trouble started: the localisation's ranking of services, before any fault kind."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from compass_tui.models import Suspect
from compass_tui.tui.render import style


class SuspectsPane(Static):
    """Rendered from the report's ``suspects``: score bar, onset, the signals that placed each
    service, and the dependencies it only echoes."""

    def update_suspects(self, suspects: list[Suspect], onset: str | None = None) -> None:
        text = Text()
        if onset:
            text.append("symptom began ", style="bold")
            text.append(onset.replace("T", " ").rstrip("Z") + " UTC\n")
        if not suspects:
            text.append("no service's signals left their baseline\n", style="dim")
            self.update(text)
            return
        for s in suspects[:12]:
            bar = "█" * max(1, round(s.score * 10))
            text.append(f"{s.rank:>2}. ", style="bold")
            text.append(f"{bar:<10} ", style=style("$accent") if s.rank == 1 else "")
            text.append(f"{s.score:.2f} {s.service}", style="bold" if s.rank == 1 else "")
            if s.pod:
                text.append(f" (pod {s.pod})", style="dim")
            if s.onset:
                text.append(f"  from {s.onset[11:19]}", style="dim")
            text.append("\n")
            for sig in s.signals[:3]:
                who = {"callers": "callers see", "outbound": "its calls"}.get(sig.view, "own")
                text.append(f"      {who} {sig.kind}: {sig.signal}, {sig.z:.0f} sd", style="dim")
                text.append("\n")
            if s.inherited_from:
                text.append(f"      partly echoes {', '.join(s.inherited_from)}\n", style=style("$warning"))
        self.update(text)

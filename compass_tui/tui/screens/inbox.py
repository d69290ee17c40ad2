"""The inbox: investigations `compass watch` ran while nobody was looking, newest first.
Enter opens one with its full evidence, as recorded (nothing re-runs); Esc goes on to what
`compass` would open without it."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from compass_tui.service import AppOptions, SourceError, recorded_options


def age(recorded_unix: float | None, now: float | None = None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` since the investigation was recorded."""
    if recorded_unix is None:
        return "-"
    s = max(0.0, (time.time() if now is None else now) - recorded_unix)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s"


def row_text(item: dict[str, Any], now: float | None = None) -> Text:
    """One inbox line: age, alert on service, top hypothesis with confidence, alert state."""
    top = item.get("top_hypothesis")
    cause = f"{top['fault']}@{top['service']} {top['confidence']:.0%}" if top else "no hypothesis survived"
    state = item.get("alert_status") or "firing"
    alert = f"{item.get('alert') or item.get('incident')} on {item.get('service') or '?'}"
    line = Text()
    line.append(f"{age(item.get('recorded_at_unix'), now):>4}  ", style="dim")
    line.append(f"{alert[:38]:<38} ", style="bold")
    line.append(f"{cause[:44]:<44} ")
    line.append(state, style="green" if state == "resolved" else "bold red")
    return line


class InboxScreen(Screen[None]):
    """Waiting investigations; Enter opens the highlighted one."""

    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("escape", "skip", "skip inbox"),
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
        Binding("q", "app.quit", "quit"),
    ]
    DEFAULT_CSS = """
    InboxScreen #inbox-title { padding: 0 1; background: $panel; }
    InboxScreen OptionList { height: 1fr; border: round $primary; }
    """

    def __init__(self, options: AppOptions, items: list[dict[str, Any]]) -> None:
        super().__init__()
        self.options = options
        self.items = items

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Inbox: {len(self.items)} investigation(s) by compass watch waiting for you "
                          "(Enter opens, Esc skips)", style="bold"), id="inbox-title")
        yield OptionList(*(Option(row_text(it), id=it["investigation_id"]) for it in self.items), id="inbox")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def action_cursor_down(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(OptionList).action_cursor_up()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._open(event.option.id)

    def action_open(self) -> None:
        ol = self.query_one(OptionList)
        if ol.highlighted is not None:
            self._open(ol.get_option_at_index(ol.highlighted).id)

    def _open(self, investigation_id: str | None) -> None:
        from compass_tui.tui.screens.investigation import InvestigationScreen  # noqa: PLC0415

        if investigation_id is None:
            return
        try:
            options = recorded_options(self.options, investigation_id)
        except SourceError as e:
            self.notify(str(e), severity="error")
            return
        self.app.push_screen(InvestigationScreen(options))

    def action_skip(self) -> None:
        from compass_tui.tui.screens.investigation import InvestigationScreen  # noqa: PLC0415

        self.app.switch_screen(InvestigationScreen(self.options))

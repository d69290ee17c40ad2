"""The prompts behind `x` (reject, with a reason) and `a` (it was actually X, with a note)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static


@dataclass
class Correction:
    """What the engineer said it actually was."""

    fault: str
    service: str
    note: str | None


class RejectScreen(ModalScreen[str | None]):
    """Ask why a hypothesis is wrong; dismisses with the reason, or None when cancelled."""

    CSS_PATH = "verdict.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, cause: str) -> None:
        super().__init__()
        self.cause = cause

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt-box"):
            yield Label(f"Reject [b]{self.cause}[/b]: why is it wrong?")
            yield Input(placeholder="reason, e.g. pool was fine, the DB was slow", id="reason")
            yield Static("Enter saves · Esc cancels", classes="prompt-hint")

    @on(Input.Submitted, "#reason")
    def submitted(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if not reason:
            self.query_one(".prompt-hint", Static).update("A reason helps the memory: type one, or Esc to cancel.")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReplaceScreen(ModalScreen[bool]):
    """Ask before a second answer replaces the first: one investigation has one answer."""

    CSS_PATH = "verdict.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "replace"),
        Binding("n,escape", "answer(False)", "keep"),
    ]

    def __init__(self, current: str, new: str) -> None:
        super().__init__()
        self.current, self.new = current, new

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt-box"):
            yield Label(f"This investigation's answer is [b]{self.current}[/b].")
            yield Label(f"Replace it with [b]{self.new}[/b]?")
            yield Static("y replaces it · n or Esc keeps the current answer", classes="prompt-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class CauseSuggester(Suggester):
    """Completes FAULT@SERVICE: catalog faults (and ``other:``) before the @, services after."""

    def __init__(self, faults: list[str], services: list[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self.faults = faults + ["other:"]
        self.services = services

    async def get_suggestion(self, value: str) -> str | None:
        low = value.lower()
        if "@" in low:
            fault, _, svc = value.rpartition("@")
            for s in self.services:
                if s.lower().startswith(svc.lower()) and s.lower() != svc.lower():
                    return f"{fault}@{s}"
            return None
        for f in self.faults:
            if f.startswith(low) and f != low:
                return f
        return None


class ActualScreen(ModalScreen[Correction | None]):
    """Ask what it actually was (FAULT@SERVICE, completed) and, optionally, what fixed it."""

    CSS_PATH = "verdict.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("tab", "complete", "complete", show=False, priority=True),
    ]

    def __init__(self, faults: list[str], services: list[str], initial: str = "") -> None:
        super().__init__()
        self.faults = list(faults)
        # in the order given (most suspect first), each once
        self.services = list(dict.fromkeys(services))
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt-box"):
            yield Label("It was actually [b]FAULT@SERVICE[/b] (→ completes; other:<slug> for a cause outside the catalog)")
            yield Input(
                value=self.initial,
                placeholder="e.g. db_slow_queries@payments-db",
                suggester=CauseSuggester(self.faults, self.services),
                id="cause",
            )
            yield Label("What fixed it? (optional)")
            yield Input(placeholder="e.g. rolled back payments to v41", id="note")
            shown = self.services[:8]
            more = f" (+{len(self.services) - len(shown)} more: type after @, → completes)" if len(self.services) > len(shown) else ""
            yield Static(
                "services, most suspect first: " + (", ".join(shown) or "none yet") + more + "\nEnter saves · Esc cancels",
                classes="prompt-hint",
            )

    def _parse(self) -> tuple[str, str] | str:
        from compass_tui.tui.verdicts import parse_cause  # noqa: PLC0415

        try:
            return parse_cause(self.query_one("#cause", Input).value)
        except ValueError as e:
            return str(e)

    @on(Input.Submitted, "#cause")
    def cause_submitted(self) -> None:
        parsed = self._parse()
        if isinstance(parsed, str):
            self.query_one(".prompt-hint", Static).update(parsed)
            return
        self.query_one("#note", Input).focus()

    @on(Input.Submitted, "#note")
    def note_submitted(self) -> None:
        parsed = self._parse()
        if isinstance(parsed, str):
            self.query_one(".prompt-hint", Static).update(parsed)
            self.query_one("#cause", Input).focus()
            return
        note = self.query_one("#note", Input).value.strip() or None
        self.dismiss(Correction(parsed[0], parsed[1], note))

    def action_cancel(self) -> None:
        self.dismiss(None)

    async def action_complete(self) -> None:
        """Tab accepts the completion shown in the cause, as a shell would; else next field."""
        cause = self.query_one("#cause", Input)
        if self.focused is cause:
            suggestion = await CauseSuggester(self.faults, self.services).get_suggestion(cause.value)
            if suggestion:
                cause.value = suggestion
                cause.cursor_position = len(suggestion)
                return
        self.focus_next()

"""Messages the workers post to the screen; the screen's handlers own every state change."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from compass_tui.models import CostSpent, Event, Progress


class EngineEvent(Message):
    """One event from the engine's stream."""

    def __init__(self, event: Event, run: int) -> None:
        self.event = event
        self.run = run
        """Which run this came from: events of a superseded run are dropped."""
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        # Progress and cost ticks are frequent and only the latest matters: merge them in the
        # queue so a fast engine cannot flood the screen.
        if not isinstance(message, EngineEvent) or message.run != self.run:
            return False
        mine, theirs = self.event, message.event
        if isinstance(mine, Progress) and isinstance(theirs, Progress):
            return True
        if isinstance(mine, CostSpent) and isinstance(theirs, CostSpent):
            return mine.agent == theirs.agent
        return False


class SourceOpened(Message):
    """The incident is open: the request is known and the backend ready (or absent)."""

    def __init__(self, opened: Any, run: int) -> None:
        self.opened = opened
        self.run = run
        super().__init__()


class MemoryOpened(Message):
    """The store was opened (or could not be: ``state.status`` says why)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        super().__init__()


class InvestigationFailed(Message):
    """The investigation could not run or stopped on an error; ``reason`` is one line."""

    def __init__(self, reason: str, run: int) -> None:
        self.reason = reason
        self.run = run
        super().__init__()


class HealthChecked(Message):
    """Rows from the integration health check: (name, ok, detail)."""

    def __init__(self, rows: list[tuple[str, bool | None, str]]) -> None:
        self.rows = rows
        super().__init__()


class ChatAnswer(Message):
    """Text (Rich renderable or str) for the chat log."""

    def __init__(self, renderable: Any) -> None:
        self.renderable = renderable
        super().__init__()

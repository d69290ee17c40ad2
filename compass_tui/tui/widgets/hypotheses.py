"""The ranked hypotheses, live: re-ordered as they arrive and change, disproven ones last."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from compass_tui.models import Hypothesis
from compass_tui.tui.render import hypothesis_prompt, ordered


class HypothesisList(OptionList):
    """An option list of hypotheses that keeps the selection on the same cause across updates."""

    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ranked: list[Hypothesis] = []

    def show_hypotheses(self, hypotheses: list[Hypothesis], verdicts: dict[str, str]) -> None:
        """Replace the list, keeping the highlighted hypothesis highlighted; a cursor on the
        first row stays on the first row, so the best cause is shown as the ranking changes."""
        keep = self.selected_id if self.highlighted not in (None, 0) else None
        self.ranked = ordered(hypotheses)
        options = [
            Option(hypothesis_prompt(h, i, verdicts.get(h.id)), id=h.id) for i, h in enumerate(self.ranked, 1)
        ]
        self.set_options(options)
        if not options:
            return
        ids = [h.id for h in self.ranked]
        self.highlighted = ids.index(keep) if keep in ids else 0

    @property
    def selected_id(self) -> str | None:
        """The id of the highlighted hypothesis."""
        option = self.highlighted_option
        return option.id if option is not None else None

    @property
    def selected(self) -> Hypothesis | None:
        """The highlighted hypothesis."""
        hid = self.selected_id
        return next((h for h in self.ranked if h.id == hid), None)

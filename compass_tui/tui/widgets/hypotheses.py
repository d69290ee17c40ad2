"""The ranked hypotheses, live: re-ordered as they arrive and change, disproven ones last."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from compass_tui.models import Hypothesis
from compass_tui.tui.keys import motion_bindings
from compass_tui.tui.render import hypothesis_prompt, ordered

NONE_SURVIVED = "Nothing survived the disproof checks. The strongest candidates, none of them proven:"


class HypothesisList(OptionList):
    """An option list of hypotheses that keeps the selection on the same cause across updates.

    Its keys are the verdicts (they act on the highlighted hypothesis), so the footer shows
    them while the list has focus."""

    BINDINGS = [
        *motion_bindings("cursor_down", "cursor_up", "first", "last", "page_down", "page_up"),
        Binding("c", "screen.confirm", "confirm"),
        Binding("x", "screen.reject", "reject"),
        Binding("a", "screen.actual", "actually…"),
        Binding("u", "screen.undo", "undo"),
        Binding("y", "screen.copy_id", "copy id"),
        Binding("slash", "screen.filter", "filter", key_display="/"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ranked: list[Hypothesis] = []
        self.filter_text = ""
        self.finished = False
        self.none_survived = False
        """The investigation is over and every hypothesis was disproven (the first row says so)."""

    def show_hypotheses(self, hypotheses: list[Hypothesis], verdicts: dict[str, str], finished: bool | None = None,
                        banner: str | None = None) -> None:
        """Replace the list, keeping the highlighted hypothesis highlighted; a cursor on the
        first row stays on the first row, so the best cause is shown as the ranking changes.
        When the investigation is over and every hypothesis was disproven, the first row says
        so: the ones listed are the strongest candidates, not answers."""
        if finished is not None:
            self.finished = finished
        first = self._first_row()
        keep = self.selected_id if self.highlighted not in (None, first) else None
        want = self.filter_text.lower()
        ranked = ordered(hypotheses)
        self.ranked = [h for h in ranked if not want or want in f"{h.fault}@{h.service} {h.title}".lower()]
        options: list[Option] = []
        self.none_survived = bool(self.finished and ranked and all(h.status == "disproven" for h in ranked))
        if self.none_survived:
            options.append(Option(Text(NONE_SURVIVED, style="bold"), disabled=True))
        if banner:
            options.append(Option(Text(banner, style="reverse"), disabled=True))
        options += [Option(hypothesis_prompt(h, i, verdicts.get(h.id)), id=h.id) for i, h in enumerate(self.ranked, 1)]
        self.set_options(options)
        if not self.ranked:
            return
        ids = [h.id for h in self.ranked]
        self.highlighted = self._first_row() + (ids.index(keep) if keep in ids else 0)

    def _first_row(self) -> int:
        """The index of the first hypothesis (after the banners, when there are)."""
        n = 0
        while n < self.option_count and self.get_option_at_index(n).disabled:
            n += 1
        return n

    def action_first(self) -> None:
        if self.ranked:
            self.highlighted = self._first_row()

    def action_last(self) -> None:
        if self.ranked:
            self.highlighted = self.option_count - 1

    def action_page_down(self) -> None:  # half a page, as Ctrl+D in less and vim
        self._move(max(1, self.size.height // 4))

    def action_page_up(self) -> None:
        self._move(-max(1, self.size.height // 4))

    def _move(self, rows: int) -> None:
        if not self.ranked:
            return
        now = self.highlighted if self.highlighted is not None else self._first_row()
        self.highlighted = min(max(self._first_row(), now + rows), self.option_count - 1)

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

"""The evidence pane: the selected hypothesis, each evidence item with its exact query, and a
small chart of the series it cites with the onset marked."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from compass_tui.models import Chart, Evidence, Hypothesis
from compass_tui.tui.keys import motion_bindings
from compass_tui.tui.render import chart_text, evidence_link, evidence_text, hypothesis_detail

CHART_HEIGHT = 10


class SeriesChart(Widget):
    """A plotext chart redrawn at the widget's width whenever it is resized."""

    DEFAULT_CSS = """
    SeriesChart { height: 10; width: 1fr; margin: 1 0 0 0; }
    """

    def __init__(self, chart: Chart, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chart = chart
        self._cache: tuple[tuple[int, bool], Text] | None = None

    def render(self) -> Text:
        width = max(self.size.width, 20)
        color = not self.app.no_color and self.app.theme != "compass-high-contrast"
        # A chart takes ~10 ms to build: rebuild only when the width or the colours change.
        key = (width, color)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, chart_text(self.chart.label, self.chart.points, self.chart.onset, width, CHART_HEIGHT, color))
        return self._cache[1]


class EvidenceItem(Vertical):
    """One evidence item and its chart; the pane's cursor sits on one item at a time."""

    DEFAULT_CSS = """
    EvidenceItem { height: auto; margin: 1 0 0 0; padding: 0 0 0 1; border-left: blank; }
    EvidenceItem.-current { border-left: thick $accent; }
    """

    def __init__(self, evidence: Evidence, index: int, grafana_url: str | None, window: tuple[float, float] | None) -> None:
        super().__init__()
        self.evidence = evidence
        self.index = index
        self.link = evidence_link(evidence, grafana_url, window)
        self.grafana_url, self.window = grafana_url, window

    def compose(self):
        yield Static(evidence_text(self.evidence, self.index, self.grafana_url, self.window), classes="evidence-item")
        if self.evidence.chart is not None:
            yield SeriesChart(self.evidence.chart)

    def matches(self, text: str) -> bool:
        """Whether the filter ``text`` is in its summary, query, source or link."""
        e = self.evidence
        return text.lower() in " ".join([e.summary, e.query, e.source, e.kind, self.link or ""]).lower()


class EvidencePane(VerticalScroll):
    """Shows one hypothesis; rebuilt when the selection or its evidence changes. ``j``/``k``
    move between its evidence items, ``y`` copies the current one's query, ``Y`` its link."""

    BINDINGS = [
        *motion_bindings("move(1)", "move(-1)", "edge(0)", "edge(-1)", "half(1)", "half(-1)",
                         down_keys="j,down", up_keys="k,up"),
        Binding("y", "screen.copy_query", "copy query"),
        Binding("Y", "screen.copy_link", "copy link", key_display="Y"),
        Binding("slash", "screen.filter", "filter", key_display="/"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple | None = None
        self.cursor = 0
        self.filter_text = ""

    def compose(self):
        yield Static("Select a hypothesis to see its evidence. Hypotheses appear as the agents propose them.", classes="placeholder")

    def show(
        self,
        h: Hypothesis | None,
        verdict: str | None,
        grafana_url: str | None,
        window: tuple[float, float] | None,
    ) -> None:
        """Render ``h`` unless exactly this content is already on screen."""
        key = (h.model_dump_json() if h else None, verdict, grafana_url)
        if key == self._shown:
            return
        same = self._shown is not None and h is not None and self._shown[0] is not None and \
            Hypothesis.model_validate_json(self._shown[0]).id == h.id
        self._shown = key
        if not same:
            self.cursor = 0
        widgets: list[Widget] = []
        if h is None:
            widgets.append(Static("No hypothesis yet.", classes="placeholder"))
        else:
            widgets.append(Static(hypothesis_detail(h, verdict), classes="detail"))
            if not h.evidence:
                widgets.append(Static("No evidence item for this hypothesis (yet).", classes="placeholder"))
            for i, e in enumerate(h.evidence, 1):
                widgets.append(EvidenceItem(e, i, grafana_url, window))
        with self.app.batch_update():
            self.remove_children()
            self.mount_all(widgets)
        self.call_after_refresh(self._apply)

    @property
    def items(self) -> list[EvidenceItem]:
        """The evidence items the filter lets through, in order."""
        return [w for w in self.query(EvidenceItem) if w.display]

    @property
    def current(self) -> EvidenceItem | None:
        """The item under the cursor."""
        items = self.items
        if not items:
            return None
        return items[min(self.cursor, len(items) - 1)]

    def set_filter(self, text: str) -> None:
        """Show only the items whose summary, query, source or link contain ``text``."""
        self.filter_text = text
        self.cursor = 0
        self._apply()

    def _apply(self) -> None:
        for item in self.query(EvidenceItem):
            item.display = not self.filter_text or item.matches(self.filter_text)
        current = self.current
        for item in self.query(EvidenceItem):
            item.set_class(item is current and self.has_focus, "-current")

    def on_focus(self) -> None:
        self._apply()

    def on_blur(self) -> None:
        self._apply()

    def action_move(self, step: int) -> None:
        items = self.items
        if not items:
            self.scroll_relative(y=step * 3)
            return
        self.cursor = min(max(0, self.cursor + step), len(items) - 1)
        self._apply()
        if self.cursor == 0 and step < 0:
            self.scroll_home()  # back up to the hypothesis and its checks
        else:
            self.scroll_to_widget(items[self.cursor], top=True)

    def action_edge(self, where: int) -> None:
        items = self.items
        if where == 0:
            self.cursor = 0
            self.scroll_home()
        else:
            self.cursor = max(0, len(items) - 1)
            self.scroll_end()
        self._apply()

    def action_half(self, direction: int) -> None:
        self.scroll_relative(y=direction * max(1, self.size.height // 2))

"""The evidence pane: the selected hypothesis, each evidence item with its exact query, and a
small chart of the series it cites with the onset marked."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from compass_tui.models import Chart, Hypothesis
from compass_tui.tui.render import chart_text, evidence_text, hypothesis_detail

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


class EvidencePane(VerticalScroll):
    """Shows one hypothesis; rebuilt when the selection or its evidence changes."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple | None = None

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
        self._shown = key
        widgets: list[Widget] = []
        if h is None:
            widgets.append(Static("No hypothesis yet.", classes="placeholder"))
        else:
            widgets.append(Static(hypothesis_detail(h, verdict), classes="detail"))
            if not h.evidence:
                widgets.append(Static("No evidence item for this hypothesis (yet).", classes="placeholder"))
            for i, e in enumerate(h.evidence, 1):
                widgets.append(Static(evidence_text(e, i, grafana_url, window), classes="evidence-item"))
                if e.chart is not None:
                    widgets.append(SeriesChart(e.chart))
        with self.app.batch_update():
            self.remove_children()
            self.mount_all(widgets)

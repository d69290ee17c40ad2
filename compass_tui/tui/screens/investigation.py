"""The one screen: header, ranked hypotheses, evidence/cost/health/chat tabs, chat line, keys.

Workers only post messages; the handlers here own every change of state.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.suggester import Suggester
from textual.widgets import Footer, Input, Label, RichLog, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from compass_tui.models import (
    AgentCost,
    CostSpent,
    Degraded,
    EvidenceFound,
    Finished,
    Hypothesis,
    HypothesisAdded,
    HypothesisUpdated,
    PhaseChanged,
    Progress,
    QueryRan,
    Report,
    SignalDegraded,
    SuspectsRanked,
)
from compass_tui.tui import chat
from compass_tui.tui.keys import motion_bindings
from compass_tui.tui.messages import (
    ChatAnswer,
    EngineEvent,
    HealthChecked,
    InvestigationFailed,
    MemoryOpened,
    SourceOpened,
)
from compass_tui.tui.screens.help import HelpScreen
from compass_tui.tui.screens.verdict import ActualScreen, Correction, RejectScreen, ReplaceScreen
from compass_tui.service import (
    AppOptions,
    SourceError,
    StoreState,
    integration_health,
    investigation_events,
    open_source,
    open_store,
    record,
)
from compass_tui.tui.verdicts import answer_of, catalog_faults, labels_for, ranked_services
from compass_tui.tui.widgets.cost import CostPane
from compass_tui.tui.widgets.evidence import EvidencePane
from compass_tui.tui.widgets.header import IncidentHeader
from compass_tui.tui.widgets.health import HealthPane
from compass_tui.tui.widgets.hypotheses import HypothesisList
from compass_tui.tui.widgets.suspects import SuspectsPane

MIN_WIDTH, MIN_HEIGHT = 80, 24

clock = time.monotonic
"""What the header's timer and the engineer's wait are read from (tests fix it for snapshots)."""


CHAT_PLACEHOLDER = "i to type: why 1 · why not fault@svc · show svc · promql … · help"
COMMANDS = ("history", "doctor", "theme dark", "theme light", "theme high-contrast", "rerun", "export", "help", "quit")


class KeyScroll(VerticalScroll):
    """A scrolling pane that answers j/k, g/G and Ctrl+D/U like the rest of the app."""

    BINDINGS = motion_bindings("scroll_down", "scroll_up", "scroll_home", "scroll_end", "half(1)", "half(-1)")

    def action_half(self, direction: int) -> None:
        self.scroll_relative(y=direction * max(1, self.size.height // 2))


class ChatLog(RichLog):
    """The chat's answers; scrolls with the same keys as every pane, and wraps them again
    whenever its width changes (a log written while its tab was hidden, or a resized
    terminal, would otherwise keep lines cut at the old width)."""

    BINDINGS = KeyScroll.BINDINGS

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.written: list[Any] = []
        self._wrapped_at = 0
        self._replaying = False

    def write(self, content: Any, *args: Any, **kwargs: Any) -> "ChatLog":  # type: ignore[override]
        if not self._replaying:
            self.written.append(content)
        if not self.scrollable_content_region.width:
            self._wrapped_at = 0  # written while hidden: wrap it again once shown
        return super().write(content, *args, **kwargs)

    def on_resize(self, event: Any) -> None:
        self._replaying = True  # the log's own deferred writes are already in `written`
        try:
            super().on_resize(event)
            width = event.size.width
            if width and width != self._wrapped_at:
                self._wrapped_at = width
                self.clear()
                for content in self.written:
                    super().write(content, scroll_end=True)
        finally:
            self._replaying = False

    def action_half(self, direction: int) -> None:
        self.scroll_relative(y=direction * max(1, self.size.height // 2))


class BarInput(Input):
    """The bottom line: chat, `:` commands or a `/` filter. ↑ ↓ recall earlier chat lines."""

    BINDINGS = [
        Binding("up", "screen.recall(-1)", "earlier", show=False),
        Binding("down", "screen.recall(1)", "later", show=False),
    ]


class CommandSuggester(Suggester):
    """Completes `:` commands."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=False)

    async def get_suggestion(self, value: str) -> str | None:
        low = value.lower()
        if not low:
            return None
        return next((c for c in COMMANDS if c.startswith(low) and c != low), None)


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class InvestigationScreen(Screen):
    """Renders one investigation's event stream and takes the engineer's verdicts."""

    CSS_PATH = "investigation.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    # Keys that act on the highlighted hypothesis live on the list, the evidence keys on the
    # evidence pane: the footer shows what the focused pane can do.
    BINDINGS = [
        Binding("enter", "open_evidence", "evidence", show=False),
        Binding("i", "chat", "chat", show=False),
        Binding("colon", "command", "command", key_display=":"),
        Binding("tab", "cycle(1)", "next pane", show=False, priority=True),
        Binding("shift+tab", "cycle(-1)", "previous pane", show=False, priority=True),
        Binding("escape", "back", "back", show=False),
        Binding("e", "export", "export", show=False),
        Binding("r", "rerun", "rerun", show=False),
        Binding("D", "draft_runbook", "draft runbook", show=False),
        Binding("1", "tab('evidence')", "evidence", show=False),
        Binding("2", "tab('cost')", "cost", show=False),
        Binding("3", "tab('health')", "health", show=False),
        Binding("4", "tab('chat')", "chat", show=False),
        Binding("5", "tab('suspects')", "suspects", show=False),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, options: AppOptions) -> None:
        super().__init__()
        self.options = options
        self.run_no = 0
        self.hypotheses: dict[str, Hypothesis] = {}
        self.verdict_log: list[dict] = []
        """The verdicts that count on this investigation, oldest first, as the memory has them."""
        self.verdicts_saved = True
        self.bar_mode = "chat"
        """What the bottom line is taking: ``chat``, ``command`` or ``filter``."""
        self.bar_return: Any = None
        self.chat_history: list[str] = []
        self.history_at: int | None = None
        self.launched_at: float = getattr(options, "launched_at", None) or clock()
        self.waited_s: float | None = None
        self.report: Report | None = None
        self.finished_event: Finished | None = None
        self.chat_queries: list[tuple[str, str]] = []
        self.correction: tuple[str, str] | None = None
        self.opened: Any = None
        self.request: Any = None
        self.backend: Any = None
        self.notes: list[str] = []
        self.store_state: StoreState | None = None
        self.by_agent: dict[str, AgentCost] = {}
        self.total_usd = 0.0
        self.budget_usd: float | None = getattr(options.budget, "max_usd", None)
        from compass_tui.service import load_models  # noqa: PLC0415  (cheap: litellm loads on the first call)

        self.models = load_models(options.config)
        self.queries = 0
        self.query_errors = 0
        self.sources: dict[str, list[int]] = {}
        self.degraded: list[Degraded] = []
        self.checks: list[tuple[str, bool | None, str]] = []
        self.t0 = clock()
        self.running = False
        self.failed: str | None = None
        self.recorded = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield IncidentHeader(id="header")
        with Container(id="main"):
            hyps = HypothesisList(id="hypotheses")
            hyps.border_title = "Hypotheses"
            yield hyps
            with TabbedContent(id="detail", initial="evidence"):
                with TabPane("Evidence", id="evidence"):
                    yield EvidencePane(id="evidence-pane")
                with TabPane("Cost", id="cost"):
                    yield CostPane(id="cost-pane")
                with TabPane("Health", id="health"):
                    with KeyScroll(id="health-scroll"):
                        yield HealthPane(id="health-pane")
                with TabPane("Chat", id="chat"):
                    # min_width 20: the log wraps to the pane, never renders wider and gets cut
                    yield ChatLog(id="chat-log", wrap=True, markup=False, highlight=False, min_width=20)
                with TabPane("Suspects", id="suspects"):
                    # where the trouble started, before any fault kind is named
                    with KeyScroll(id="suspects-scroll"):
                        yield SuspectsPane("the services are ranked once the signals are read",
                                           id="suspects-pane")
        with Horizontal(id="chat-bar"):
            yield Label("chat ›", id="chat-label")
            yield BarInput(placeholder=CHAT_PLACEHOLDER, id="chat-input")
        yield Footer(compact=True)
        yield Static("", id="too-small")

    def on_mount(self) -> None:
        header = self.query_one(IncidentHeader)
        header.source_label = self.options.source.label
        header.memory = "memory: opening…" if not self.options.no_store else "memory off (--no-store)"
        self._log(Text("Type `help` for the chat commands.", style="dim"))
        self._refresh_health()
        self._check_size()
        self.query_one(HypothesisList).focus()
        self.set_interval(0.25, self._tick)
        if self.options.config_error:
            self.notify(self.options.config_error, title="config", severity="error", timeout=10)
        self.start_investigation()
        self.check_health()

    def on_resize(self) -> None:
        self._check_size()

    def _check_size(self) -> None:
        width, height = self.app.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"The terminal is {width}x{height}; COMPASS needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
                "Enlarge the window: the investigation keeps running.\n(q quits)"
            )

    def _tick(self) -> None:
        if self.running:
            self.query_one(IncidentHeader).elapsed = clock() - self.t0

    # ------------------------------------------------------------------ workers

    def start_investigation(self) -> None:
        """Start (or restart) the investigation; a running one is cancelled."""
        self.run_no += 1
        self.hypotheses.clear()
        self.report = None
        self.finished_event = None
        self.by_agent.clear()
        self.total_usd = 0.0
        self.queries = self.query_errors = 0
        self.sources.clear()
        self.degraded.clear()
        self.failed = None
        self.recorded = False
        self.running = True
        self.t0 = clock()
        header = self.query_one(IncidentHeader)
        header.finished = False
        header.failed = None
        header.phase = None
        header.elapsed = 0.0
        header.investigation_id = None
        self.query_one(HypothesisList).finished = False
        self.query_one(SuspectsPane).update("the services are ranked once the signals are read")
        self._refresh_all()
        self.investigate(self.run_no)

    @work(exclusive=True, group="investigation", exit_on_error=False)
    async def investigate(self, run: int) -> None:
        """Open the incident and the memory, then stream the engine's events to the screen."""
        opened = self.opened
        if opened is None:
            try:
                opened = await open_source(self.options)
            except SourceError as e:
                self.post_message(InvestigationFailed(str(e), run))
                return
        # A rerun investigates the same incident through the same, already open, backend.
        self.post_message(SourceOpened(opened, run))
        if opened.backend is None and self.options.source.kind != "recorded":
            why = opened.notes[0] if opened.notes else "no source to query"
            self.post_message(InvestigationFailed(f"{why}; or open a bundle with --bundle", run))
            return
        state = self.store_state
        if state is None:
            import asyncio  # noqa: PLC0415

            # DuckDB opens in a thread so the first paint and the header do not wait on it.
            state = await asyncio.to_thread(open_store, self.options)
            self.post_message(MemoryOpened(state))
        # The service adds the configured runbooks, keeps a rerun's investigation id and puts
        # the timeline on the report.
        async for event in investigation_events(self.options, opened, state.store):
            self.post_message(EngineEvent(event, run))

    @work(thread=True, group="health", exit_on_error=False)
    def check_health(self) -> None:
        """Run the integration health checks off the UI thread (they may touch the network)."""
        self.post_message(HealthChecked(integration_health(self.options)))

    @work(group="chat", exit_on_error=False)
    async def run_chat_query(self, language: str, query: str) -> None:
        """Run the engineer's own PromQL/LogQL on the current backend."""
        self.chat_queries.append(({"logql": "logql"}.get(language, "promql"), query))  # for a learnt runbook
        self.post_message(ChatAnswer(await chat.run_query(self.backend, self.request, language, query)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker error ends up here, as one line, never a traceback."""
        worker = event.worker
        if event.state != WorkerState.ERROR:
            if worker.group == "investigation" and event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED):
                if event.state == WorkerState.SUCCESS and self.running and self.report is None and not self.failed:
                    self.post_message(InvestigationFailed("the engine stopped without a report", self.run_no))
            return
        reason = _one_line(worker.error) if worker.error else "unknown error"
        if worker.group == "investigation":
            self.post_message(InvestigationFailed(reason, self.run_no))
        elif worker.group in ("chat", "model-chat"):
            self.post_message(ChatAnswer(Text(f"error: {reason}", style="bold red")))
        elif worker.group == "health":
            self.post_message(HealthChecked([("health", False, reason)]))

    # ------------------------------------------------------------------ messages

    @on(SourceOpened)
    def source_opened(self, message: SourceOpened) -> None:
        if message.run != self.run_no:
            return
        opened = message.opened
        self.opened = opened
        self.request = opened.request
        self.backend = opened.backend
        self.notes = list(opened.notes)
        header = self.query_one(IncidentHeader)
        header.title = opened.request.title
        header.service = opened.request.service
        header.window = (opened.request.window_start, opened.request.window_end)
        self._refresh_health()

    @on(MemoryOpened)
    def memory_opened(self, message: MemoryOpened) -> None:
        self.store_state = message.state
        self.query_one(IncidentHeader).memory = message.state.status
        self._refresh_health()

    @on(InvestigationFailed)
    def investigation_failed(self, message: InvestigationFailed) -> None:
        if message.run != self.run_no:
            return
        self.running = False
        self.failed = message.reason
        header = self.query_one(IncidentHeader)
        header.failed = message.reason
        if self.request is None:
            header.title = "could not open the incident"
        self.notify(message.reason, title="investigation stopped", severity="error", timeout=8)
        self._refresh_health()
        if not self.hypotheses:
            self.query_one(EvidencePane).remove_children()
            self.query_one(EvidencePane).mount(Static(Text(f"The investigation stopped: {message.reason}", style="bold")))

    @on(HealthChecked)
    def health_checked(self, message: HealthChecked) -> None:
        self.checks = list(message.rows)
        self._refresh_health()

    @on(ChatAnswer)
    def chat_answer(self, message: ChatAnswer) -> None:
        self._log(message.renderable)

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        if message.run != self.run_no:
            return  # a superseded run
        event = message.event
        header = self.query_one(IncidentHeader)
        if isinstance(event, PhaseChanged):
            header.phase = event.phase
        elif isinstance(event, (HypothesisAdded, HypothesisUpdated)):
            h = event.hypothesis
            previous = self.hypotheses.get(h.id)
            if previous is not None and not h.evidence and previous.evidence:
                # An update without evidence keeps what EvidenceFound already delivered.
                h = h.model_copy(update={"evidence": previous.evidence})
            self.hypotheses[h.id] = h
            self._refresh_hypotheses()
            if self.waited_s is None:
                # launch to the first hypothesis on screen: what the engineer waited
                self.call_after_refresh(self._first_on_screen)
        elif isinstance(event, EvidenceFound):
            h = self.hypotheses.get(event.hypothesis_id)
            if h is not None:
                self.hypotheses[h.id] = h.model_copy(update={"evidence": [*h.evidence, event.evidence]})
                self._refresh_hypotheses()
        elif isinstance(event, QueryRan):
            self.queries += 1
            counts = self.sources.setdefault(event.source, [0, 0])
            if event.status == "error":
                self.query_errors += 1
                counts[1] += 1
            else:
                counts[0] += 1
            self._refresh_costs()
            self._refresh_health()
        elif isinstance(event, CostSpent):
            self.by_agent[event.agent] = event.cost
            self.total_usd = event.total_usd
            if event.budget_usd is not None:
                self.budget_usd = event.budget_usd
            self._refresh_costs()
        elif isinstance(event, SignalDegraded):
            self.degraded.append(event.degraded)
            self._refresh_health()
            if event.degraded.signal.startswith("source:"):
                self._source_failed(event.degraded)
        elif isinstance(event, SuspectsRanked):
            self.query_one(SuspectsPane).update_suspects(event.suspects, event.onset)
        elif isinstance(event, Progress):
            self.query_one("#hypotheses", HypothesisList).border_subtitle = event.message[:60]
        elif isinstance(event, Finished):
            self._finished(event)

    def _source_failed(self, d: Degraded) -> None:
        """A source that failed midway: one line saying what failed and where the log is."""
        from compass_tui.logs import failure_notices, where  # noqa: PLC0415

        server = d.signal.split(":", 1)[1]
        lines = [n for n in failure_notices(self.backend) if n.startswith(f"the MCP server {server} ")]
        text = lines[0] if lines else f"{d.reason.split('; ')[0]}; details in {where()}"
        self.notify(text, title="source failed", severity="error", timeout=15)

    def _log(self, renderable: Any) -> None:
        """Write to the chat log (it wraps to its pane, whenever that is shown)."""
        self.query_one("#chat-log", RichLog).write(renderable)

    def _first_on_screen(self) -> None:
        if self.waited_s is None:
            self.waited_s = round(clock() - self.launched_at, 3)

    def _finished(self, event: Finished) -> None:
        report = event.report
        self.report = report
        self.finished_event = event
        self.running = False
        # the report's ranking is the final one (a recorded investigation reopened has no stream)
        self.query_one(SuspectsPane).update_suspects(report.suspects, report.incident.onset)
        # The report is the final word: its ranking, statuses and evidence replace the stream's.
        if report.hypotheses:
            merged = {}
            for h in report.hypotheses:
                streamed = self.hypotheses.get(h.id)
                if streamed is not None and streamed.evidence and not h.evidence:
                    h = h.model_copy(update={"evidence": streamed.evidence})
                merged[h.id] = h
            self.hypotheses = merged
        if report.cost.by_agent:
            self.by_agent = dict(report.cost.by_agent)
        self.total_usd = report.cost.usd
        known = {(d.signal, d.reason) for d in self.degraded}
        self.degraded.extend(d for d in report.degraded if (d.signal, d.reason) not in known)
        header = self.query_one(IncidentHeader)
        header.finished = True
        # the time the engineer watched, never less than what the header already showed
        header.elapsed = max(header.elapsed, clock() - self.t0)
        header.investigation_id = report.investigation_id
        hyps = self.query_one("#hypotheses", HypothesisList)
        hyps.finished = True
        hyps.border_subtitle = f"{len(report.hypotheses)} hypotheses"
        self._record(report, event)
        self._load_verdicts()
        self._refresh_all()
        if report.hypotheses and all(h.status == "disproven" for h in report.hypotheses):
            self.notify("Nothing survived the disproof checks: the strongest candidates are listed, none proven.",
                        severity="warning", timeout=10)

    def _record(self, report: Report, event: Finished) -> None:
        """Write the finished investigation to the memory, once."""
        store = self.store_state.store if self.store_state else None
        if store is None or self.recorded:
            return
        try:
            record(store, report, self.request, self.options.source, waited_s=self.waited_s)
            self.recorded = True
        except Exception as e:
            self._memory_failed(e)

    def _memory_failed(self, e: BaseException) -> None:
        status = f"memory unavailable: {_one_line(e)}"
        if self.store_state is not None:
            self.store_state = StoreState(None, status)
        self.query_one(IncidentHeader).memory = status
        self.notify(status, severity="error", timeout=8)
        self._refresh_health()

    # ------------------------------------------------------------------ refresh

    def _refresh_all(self) -> None:
        self._refresh_hypotheses()
        self._refresh_costs()
        self._refresh_health()

    @property
    def verdicts(self) -> dict[str, str]:
        """What each row shows of what was recorded, keyed by hypothesis id."""
        return labels_for(self.verdict_log, self.verdicts_saved)

    def _load_verdicts(self) -> None:
        """Read this investigation's verdicts back from the memory (a rerun keeps them)."""
        store = self.store_state.store if self.store_state else None
        if store is None or self.report is None:
            return
        try:
            self.verdict_log = store.verdicts(self.report.investigation_id)
            self.verdicts_saved = True
        except Exception as e:
            self._memory_failed(e)

    def _refresh_hypotheses(self) -> None:
        hyps = self.query_one("#hypotheses", HypothesisList)
        answer = answer_of(self.verdict_log)
        hyps.show_hypotheses(list(self.hypotheses.values()), self.verdicts)
        if answer is not None and f"{answer[0]}@{answer[1]}" not in self.hypotheses:
            # the engineer named a cause no agent proposed: it is this investigation's answer
            hyps.border_subtitle = f"answer: {answer[0]}@{answer[1]}" + ("" if self.verdicts_saved else " (not saved)")
        elif self.report is not None:
            hyps.border_subtitle = f"{len(self.report.hypotheses)} hypotheses"
        title = f"Hypotheses ({len(self.hypotheses)})"
        if hyps.filter_text:
            title += f" · filter: {hyps.filter_text}"
        hyps.border_title = title
        self._refresh_evidence()

    def _refresh_evidence(self) -> None:
        h = self.query_one("#hypotheses", HypothesisList).selected
        window = (self.request.window_start, self.request.window_end) if self.request else None
        self.query_one(EvidencePane).show(h, self.verdicts.get(h.id) if h else None, self.options.grafana_url, window)

    def _refresh_costs(self) -> None:
        self.query_one(CostPane).update_costs(self.by_agent, self.total_usd + getattr(self, "_chat_usd", 0.0), self.budget_usd,
                                              self.queries, self.query_errors)

    def _refresh_health(self) -> None:
        memory = self.store_state.status if self.store_state else ("memory off (--no-store)" if self.options.no_store else "opening…")
        notes = list(self.notes)
        if self.options.config_error:
            notes.append(f"config: {self.options.config_error}")
        if self.failed:
            notes.append(f"investigation stopped: {self.failed}")
        sources = {k: (v[0], v[1]) for k, v in self.sources.items()}
        self.query_one(HealthPane).update_health(memory, self.degraded, sources, self.checks, notes)

    @on(HypothesisList.OptionHighlighted, "#hypotheses")
    def highlighted(self) -> None:
        self._refresh_evidence()

    @on(HypothesisList.OptionSelected, "#hypotheses")
    def selected(self) -> None:
        self.action_open_evidence()

    # ------------------------------------------------------------------ actions

    def action_open_evidence(self) -> None:
        """Show the evidence tab for the highlighted hypothesis and move focus there."""
        self.query_one(TabbedContent).active = "evidence"
        self._refresh_evidence()
        self.query_one(EvidencePane).focus()

    def _bar(self) -> Input:
        return self.query_one("#chat-input", Input)

    def _set_bar(self, mode: str) -> None:
        """Put the bottom line in ``mode`` (chat, command, filter)."""
        self.bar_mode = mode
        bar = self._bar()
        label = self.query_one("#chat-label", Label)
        if mode == "command":
            label.update(":")
            bar.placeholder = "history · doctor · theme NAME · rerun · export · help · quit (Tab completes)"
            bar.suggester = CommandSuggester()
        elif mode == "filter":
            label.update("filter /")
            bar.placeholder = "type to filter the list · Enter keeps it · Esc clears it"
            bar.suggester = None
        else:
            label.update("chat ›")
            bar.placeholder = CHAT_PLACEHOLDER
            bar.suggester = None

    def _panes(self) -> list[Any]:
        """The panes Tab cycles through: the list, the open tab's content, the bottom line."""
        tab = self.query_one(TabbedContent).active
        content = {
            "evidence": self.query_one(EvidencePane),
            "cost": self.query_one("#cost-table"),
            "health": self.query_one("#health-scroll"),
            "chat": self.query_one("#chat-log"),
            "suspects": self.query_one("#suspects-scroll"),
        }.get(tab, self.query_one(EvidencePane))
        return [self.query_one(HypothesisList), content, self._bar()]

    async def action_cycle(self, step: int) -> None:
        """Tab / Shift+Tab: the next or previous pane; in command mode Tab completes first."""
        bar = self._bar()
        if self.focused is bar and self.bar_mode == "command" and step > 0 and bar.value:
            suggestion = await CommandSuggester().get_suggestion(bar.value)
            if suggestion:
                bar.value = suggestion
                bar.cursor_position = len(suggestion)
                return
        panes = self._panes()
        try:
            at = panes.index(self.focused)
        except ValueError:
            at = 0 if step > 0 else 1
        target = panes[(at + step) % len(panes)]
        if target is bar and self.bar_mode != "chat":
            self._set_bar("chat")
        target.focus()

    def action_back(self) -> None:
        """Esc backs out of whatever mode is on: a filter is cleared, a command or a chat line
        dropped, and the focus returns to the pane it came from (else the hypotheses)."""
        running = [w for w in self.workers if w.group == "model-chat" and w.is_running]
        if running:
            self.workers.cancel_group(self, "model-chat")
            self._log(Text("cancelled", style="dim"))
            return
        bar = self._bar()
        back_to = self.bar_return if self.focused is bar and self.bar_return is not None else None
        if self.bar_mode == "filter" or (self.focused is not bar and self._filter_on()):
            self._apply_filter("")
        if self.focused is bar:
            bar.value = ""
        self._set_bar("chat")
        self.bar_return = None
        (back_to or self.query_one(HypothesisList)).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_chat(self) -> None:
        self.query_one(TabbedContent).active = "chat"
        self._set_bar("chat")
        self.bar_return = self.focused if self.focused is not self._bar() else self.bar_return
        self._bar().focus()

    def action_toggle_chat(self) -> None:
        if self.focused is self._bar():
            self.action_back()
        else:
            self.action_chat()

    def action_command(self) -> None:
        """`:` opens command mode on the bottom line."""
        self.bar_return = self.focused if self.focused is not self._bar() else self.bar_return
        self._set_bar("command")
        bar = self._bar()
        bar.value = ""
        bar.focus()

    def action_filter(self) -> None:
        """`/` filters the focused list: the hypotheses, or the evidence items."""
        target = self.focused if isinstance(self.focused, (HypothesisList, EvidencePane)) else self.query_one(HypothesisList)
        self.bar_return = target
        self._set_bar("filter")
        bar = self._bar()
        bar.value = target.filter_text
        bar.focus()

    def _filter_on(self) -> bool:
        return bool(self.query_one(HypothesisList).filter_text or self.query_one(EvidencePane).filter_text)

    def _apply_filter(self, text: str) -> None:
        target = self.bar_return if isinstance(self.bar_return, (HypothesisList, EvidencePane)) else None
        if target is None:  # Esc from a pane: clear every filter
            for pane in (self.query_one(HypothesisList), self.query_one(EvidencePane)):
                self._filter(pane, "")
            return
        self._filter(target, text)

    def _filter(self, pane: Any, text: str) -> None:
        if isinstance(pane, HypothesisList):
            pane.filter_text = text
            self._refresh_hypotheses()
        else:
            pane.set_filter(text)

    @on(Input.Changed, "#chat-input")
    def bar_changed(self, event: Input.Changed) -> None:
        if self.bar_mode == "filter":
            self._apply_filter(event.value)

    def action_recall(self, step: int) -> None:
        """↑ ↓ on the chat line: earlier and later lines typed there."""
        if self.bar_mode != "chat" or not self.chat_history:
            return
        at = len(self.chat_history) if self.history_at is None else self.history_at
        at = min(max(0, at + step), len(self.chat_history))
        self.history_at = at
        bar = self._bar()
        bar.value = self.chat_history[at] if at < len(self.chat_history) else ""
        bar.cursor_position = len(bar.value)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_quit(self) -> None:
        self.app.exit()

    def action_rerun(self) -> None:
        self._log(Text("— rerun —", style="dim"))
        self.start_investigation()

    def action_export(self) -> None:
        """Write the report as JSON into the current directory and say where."""
        if self.report is None:
            self.notify("Nothing to export yet: the investigation is still running.", severity="warning")
            return
        # Ids carry RFC3339 times; colons make awkward file names on some systems.
        name = re.sub(r"[^A-Za-z0-9._-]", "-", self.report.investigation_id)
        path = Path(self.options.export_dir) / f"compass-{name}.json"
        try:
            path.write_text(json.dumps(self.report.to_json_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            self.notify(f"{path}: cannot write: {e.strerror or e}", severity="error")
            return
        md_path = path.with_name(f"compass-{name}.postmortem.md")
        try:
            md_path.write_text(self._postmortem(), encoding="utf-8")
        except OSError as e:
            self.notify(f"{md_path}: cannot write: {e.strerror or e}", severity="error")
            md_path = None
        self.notify(f"Report written to {path}" + (f", post-mortem to {md_path}" if md_path else ""), title="exported", timeout=8)
        self._log(Text(f"report exported to {path}" + (f"; post-mortem: {md_path}" if md_path else "")))

    def _postmortem(self) -> str:
        """The Learning Teams post-mortem of this investigation, with the verdicts recorded."""
        import time  # noqa: PLC0415

        from compass_tui.commands.postmortem import postmortem_narrator  # noqa: PLC0415
        from compass_tui.report.postmortem import Facts, postmortem_markdown  # noqa: PLC0415

        store = self.store_state.store if self.store_state else None
        facts = Facts(report=self.report, recorded_at=time.time())
        if store is not None:
            try:
                inv = store.investigation(self.report.investigation_id)
                facts = Facts(report=self.report, recorded_at=inv["recorded_at"], verdicts=inv["verdicts"])
            except Exception:
                pass
        return postmortem_markdown(facts, postmortem_narrator(self.options.config))

    def action_draft_runbook(self) -> None:
        """Save the queries that showed the corrected cause as a draft runbook."""
        from compass_tui.commands.postmortem import draft_path  # noqa: PLC0415
        from compass_tui.runbooks import draft_runbook  # noqa: PLC0415

        if self.report is None or self.correction is None:
            self.notify("Say what it actually was first (a), with a cause outside the catalog.", severity="warning")
            return
        fault, service = self.correction
        text = draft_runbook(self.report, fault, service, self.chat_queries or None,
                             alert=self.request.alertname if self.request else None)
        path = draft_path(fault)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            self.notify(f"{path}: cannot write: {e.strerror or e}", severity="error")
            return
        self.notify(f"Draft runbook written to {path}", title="runbook draft", timeout=10)
        self._log(Text(f"draft runbook saved: {path} (review it, then `compass runbook test`)"))

    # ------------------------------------------------------------------ copying

    def _copy(self, what: str, text: str | None) -> None:
        """Copy to the terminal's clipboard (OSC 52: it works over SSH too)."""
        if not text:
            self.notify(f"No {what} to copy here.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {what}: {text if len(text) <= 60 else text[:59] + '…'}", timeout=4)

    def action_copy_id(self) -> None:
        self._copy("investigation id", self.report.investigation_id if self.report else None)

    def action_copy_query(self) -> None:
        item = self.query_one(EvidencePane).current
        self._copy("query", item.evidence.query if item else None)

    def action_copy_link(self) -> None:
        item = self.query_one(EvidencePane).current
        self._copy("link", item.link if item else None)

    # ------------------------------------------------------------------ verdicts

    def _verdict_target(self) -> Hypothesis | None:
        h = self.query_one("#hypotheses", HypothesisList).selected
        if h is None:
            self.notify("No hypothesis selected.", severity="warning")
            return None
        if self.report is None:
            self.notify("The investigation is still running: verdicts are taken once it has finished.", severity="warning")
            return None
        return h

    def _save_feedback(self, verdict: str, fault: str, service: str, reason: str | None = None,
                       note: str | None = None, replace: bool = False) -> bool:
        """Write one verdict to the memory now; False (and a message) when it could not be.
        Either way the row shows it (marked "not saved" when it was not)."""
        store = self.store_state.store if self.store_state else None
        if store is None or self.report is None:
            status = self.store_state.status if self.store_state else "memory off"
            self.notify(f"Not saved: {status}", severity="warning", timeout=8)
            self._local_verdict(verdict, fault, service, reason, note, replace)
            return False
        try:
            store.feedback(self.report.investigation_id, verdict, fault, service, reason=reason, note=note, replace=replace)
        except ValueError as e:  # a cause the memory refuses (unknown fault or service): say why
            self.notify(str(e).splitlines()[0], severity="error", timeout=8)
            return False
        except Exception as e:
            self._memory_failed(e)
            self._local_verdict(verdict, fault, service, reason, note, replace)
            return False
        self._load_verdicts()
        self._refresh_hypotheses()
        return True

    def _local_verdict(self, verdict: str, fault: str, service: str, reason: str | None, note: str | None, replace: bool) -> None:
        """Keep a verdict the memory could not take, with the same one-answer rule."""
        if replace:
            answer = answer_of(self.verdict_log)
            self.verdict_log = [v for v in self.verdict_log if not (
                answer and v["verdict"] in ("confirm", "actual") and (v["fault"], v["service"]) == answer[:2])]
        next_id = max((v["id"] for v in self.verdict_log), default=0) + 1
        self.verdict_log.append({"id": next_id, "verdict": verdict, "fault": fault, "service": service,
                                 "reason": reason, "note": note})
        self.verdicts_saved = False
        self._refresh_hypotheses()

    def _answer(self, fault: str, service: str, verdict: str, note: str | None, done_text: str) -> None:
        """Give the investigation its answer; asks first when it already has another one."""
        answer = answer_of(self.verdict_log)

        def save(replace: bool) -> None:
            if self._save_feedback(verdict, fault, service, note=note, replace=replace):
                self.notify(f"{done_text}: saved to memory.")

        if answer is None or answer[:2] == (fault, service):
            save(False)
            return

        def decided(yes: bool | None) -> None:
            if yes:
                save(True)
            else:
                self.notify(f"Kept the answer {answer[0]}@{answer[1]}.")

        self.app.push_screen(ReplaceScreen(f"{answer[0]}@{answer[1]}", f"{fault}@{service}"), decided)

    def action_confirm(self) -> None:
        h = self._verdict_target()
        if h is None:
            return
        self._answer(h.fault, h.service, "confirm", None, f"Confirmed {h.fault}@{h.service}")

    def action_reject(self) -> None:
        h = self._verdict_target()
        if h is None:
            return

        def done(reason: str | None) -> None:
            if reason is None:
                return
            if self._save_feedback("reject", h.fault, h.service, reason=reason):
                self.notify(f"Rejected {h.fault}@{h.service}: saved to memory.")

        self.app.push_screen(RejectScreen(f"{h.fault}@{h.service}"), done)

    def action_undo(self) -> None:
        """`u`: withdraw the latest verdict on the highlighted hypothesis, else the latest."""
        if self.report is None:
            self.notify("Nothing to undo: the investigation is still running.", severity="warning")
            return
        h = self.query_one("#hypotheses", HypothesisList).selected
        mine = [v for v in self.verdict_log if h is not None and (v["fault"], v["service"]) == (h.fault, h.service)]
        pick = (mine or self.verdict_log or [None])[-1]
        if pick is None:
            self.notify("No verdict to undo on this investigation.", severity="warning")
            return
        what = f"{pick['verdict']} {pick['fault']}@{pick['service']}"
        store = self.store_state.store if self.store_state else None
        if store is not None and self.verdicts_saved:
            try:
                store.withdraw(self.report.investigation_id, pick["id"])
            except Exception as e:
                self._memory_failed(e)
                return
            self._load_verdicts()
        else:
            self.verdict_log = [v for v in self.verdict_log if v is not pick]
        self._refresh_hypotheses()
        self.notify(f"Undone: {what}.")

    def action_actual(self) -> None:
        if self.report is None:
            self.notify("The investigation is still running: verdicts are taken once it has finished.", severity="warning")
            return
        services = ranked_services(self.report, list(self.hypotheses.values()),
                                   self.request.service if self.request is not None else None)

        def done(correction: Correction | None) -> None:
            if correction is None:
                return
            cause = f"{correction.fault}@{correction.service}"
            self._answer(correction.fault, correction.service, "actual", correction.note, f"It was actually {cause}")
            self._log(
                Text(f"it was actually {cause}" + (f" (fixed by: {correction.note})" if correction.note else ""))
            )
            if correction.fault.startswith("other:"):
                self.correction = (correction.fault, correction.service)
                src = "the queries you ran in the chat" if self.chat_queries else "the evidence queries on " + correction.service
                self._log(
                    Text(f"press D to save {src} as a draft runbook for {cause}", style="bold"))

        self.app.push_screen(ActualScreen(catalog_faults(), services), done)

    # ------------------------------------------------------------------ the bottom line

    @on(Input.Submitted, "#chat-input")
    def bar_submitted(self, event: Input.Submitted) -> None:
        if self.bar_mode == "filter":
            target = self.bar_return or self.query_one(HypothesisList)
            self._set_bar("chat")
            event.input.value = ""
            target.focus()
            return
        if self.bar_mode == "command":
            line = event.value.strip()
            event.input.value = ""
            back = self.bar_return
            self._set_bar("chat")
            self.bar_return = None
            (back or self.query_one(HypothesisList)).focus()
            self.run_command(line)
            return
        self.chat_submitted(event)

    def run_command(self, line: str) -> None:
        """Run one `:` command."""
        verb, _, arg = line.lstrip(":").strip().partition(" ")
        verb, arg = verb.lower(), arg.strip()
        if verb == "history":
            self._show_history()
        elif verb == "doctor":
            self.query_one(TabbedContent).active = "health"
            self.notify("Checking every configured source (compass doctor)…", timeout=4)
            self.check_health()
        elif verb == "theme":
            from compass_tui.tui.render import set_palette  # noqa: PLC0415
            from compass_tui.tui.session import THEMES  # noqa: PLC0415

            if arg not in THEMES:
                self.notify(f"unknown theme {arg!r}: one of {', '.join(THEMES)}", severity="error")
                return
            self.app.theme = f"compass-{arg}"
            set_palette(self.app.current_theme)
            self.query_one(EvidencePane)._shown = None
            self._refresh_all()
            self.notify(f"Theme {arg}.")
        elif verb == "rerun":
            self.action_rerun()
        elif verb == "export":
            self.action_export()
        elif verb == "help":
            self.action_help()
        elif verb in ("quit", "q"):
            self.app.exit()
        elif verb:
            self.notify(f"unknown command :{verb} (try :history :doctor :theme NAME :rerun)", severity="error")

    def _show_history(self) -> None:
        """`:history`: the latest investigations in the memory, in the chat pane."""
        self.query_one(TabbedContent).active = "chat"
        store = self.store_state.store if self.store_state else None
        if store is None:
            self._log(Text(f"history: {self.store_state.status if self.store_state else 'memory off'}", style="dim"))
            return
        try:
            items = store.history(limit=10)
        except Exception as e:
            self._memory_failed(e)
            return
        self._log(Text(":history (newest first)", style="bold"))
        if not items:
            self._log(Text("no investigations recorded yet", style="dim"))
        for it in items:
            top = it["top_hypothesis"]
            line = Text(f"{(it['recorded_at'] or '-').replace('T', ' ').rstrip('Z')}  ")
            line.append(it["investigation_id"], style="bold")
            line.append(f"  {it['incident']}  ")
            line.append(f"{top['fault']}@{top['service']} {top['confidence']:.2f}" if top else "-")
            line.append(f"  {it['verdict']}", style="italic")
            self._log(line)

    def chat_submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        event.input.value = ""
        self.history_at = None
        if not line:
            return
        if not self.chat_history or self.chat_history[-1] != line:
            self.chat_history.append(line)
        self.query_one(TabbedContent).active = "chat"
        self._log(Text(f"› {line}", style="bold"))
        cmd = chat.parse(line)
        hyps = list(self.hypotheses.values())
        if cmd.verb == "help":
            self._log(Text(chat.HELP))
        elif cmd.verb == "why":
            window = (self.request.window_start, self.request.window_end) if self.request else None
            self._log(chat.answer_why(hyps, cmd.arg, self.options.grafana_url, window))
        elif cmd.verb == "why not":
            self._log(chat.answer_why_not(hyps, cmd.arg))
        elif cmd.verb == "show":
            self._log(chat.answer_show(hyps, cmd.arg))
        elif cmd.verb in ("promql", "logql"):
            self._log(Text(f"running {cmd.verb} over the incident window…", style="dim"))
            self.run_chat_query(cmd.verb, cmd.arg)
        elif cmd.verb == "rerun":
            self.action_rerun()
        elif self.models is not None and self.models.model_for("chat"):
            self._log(Text(f"asking {self.models.model_for('chat')}… (Esc cancels)", style="dim"))
            self.ask_model(line)
        else:
            self._log(Text(f"I don't understand {line!r} without a model. " + chat.HELP.splitlines()[0] + " type `help`.\n"
                           "With a chat model in the config ([models] chat = \"...\"), free-text questions are answered "
                           "from the data, citing the queries run.", style=""))

    # ------------------------------------------------------------------ the chat's model path

    @work(group="model-chat", exclusive=True, exit_on_error=False)
    async def ask_model(self, question: str) -> None:
        """Answer a free-text question with the chat model and read-only tools, streamed line by line."""
        from compass_tui.llm import chat as model_chat  # noqa: PLC0415
        from compass_tui.llm.client import Caps, ModelError  # noqa: PLC0415

        if getattr(self, "_chat_session", None) is None:
            from compass_tui.engine.deps import Budget  # noqa: PLC0415

            b = self.options.budget or Budget()
            caps = Caps(max_calls=b.max_llm_calls, max_usd=b.usd_cap((self.request.labels if self.request else {}).get("severity")),
                        max_tokens=b.max_tokens)

            def on_cost(role, cost, total):
                self.by_agent[role] = cost
                self._chat_usd = total
                self._refresh_costs()

            self._chat_session = self.models.session(caps, on_cost)
            self._chat_history: list = []
        buf: list[str] = []

        def on_delta(text: str) -> None:
            buf.append(text)
            joined = "".join(buf)
            if "\n" in joined:
                done, _, rest = joined.rpartition("\n")
                buf[:] = [rest]
                self.post_message(ChatAnswer(Text(done)))

        try:
            result = await model_chat.answer(self._chat_session, question, hypotheses=list(self.hypotheses.values()),
                                             backend=self.backend, request=self.request, history=self._chat_history,
                                             on_delta=on_delta)
        except ModelError as e:
            self.post_message(ChatAnswer(Text(f"model: {e}", style="bold red")))
            return
        if "".join(buf).strip():
            self.post_message(ChatAnswer(Text("".join(buf))))
        cited = "\n".join(f"  ran: {q}" for q in result.queries) or "  (no query ran for this answer)"
        self.post_message(ChatAnswer(Text(cited, style="dim")))

    async def on_unmount(self) -> None:
        backend = self.backend
        if backend is not None:
            try:
                await backend.aclose()
            except Exception:
                pass
        store = self.store_state.store if self.store_state else None
        if store is not None:
            try:
                store.close()
            except Exception:
                pass

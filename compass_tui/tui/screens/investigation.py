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
)
from compass_tui.tui import chat
from compass_tui.tui.messages import (
    ChatAnswer,
    EngineEvent,
    HealthChecked,
    InvestigationFailed,
    MemoryOpened,
    SourceOpened,
)
from compass_tui.tui.screens.help import HelpScreen
from compass_tui.tui.screens.verdict import ActualScreen, Correction, RejectScreen
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
from compass_tui.tui.verdicts import catalog_faults
from compass_tui.tui.widgets.cost import CostPane
from compass_tui.tui.widgets.evidence import EvidencePane
from compass_tui.tui.widgets.header import IncidentHeader
from compass_tui.tui.widgets.health import HealthPane
from compass_tui.tui.widgets.hypotheses import HypothesisList

MIN_WIDTH, MIN_HEIGHT = 80, 24


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class InvestigationScreen(Screen):
    """Renders one investigation's event stream and takes the engineer's verdicts."""

    CSS_PATH = "investigation.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    BINDINGS = [
        Binding("enter", "open_evidence", "evidence", show=False),
        Binding("c", "confirm", "confirm"),
        Binding("x", "reject", "reject"),
        Binding("a", "actual", "actually…"),
        Binding("slash", "chat", "chat", key_display="/"),
        Binding("tab", "toggle_chat", "chat", show=False, priority=True),
        Binding("escape", "back", "back", show=False),
        Binding("e", "export", "export"),
        Binding("r", "rerun", "rerun"),
        Binding("D", "draft_runbook", "draft runbook", show=False),
        Binding("1", "tab('evidence')", "evidence", show=False),
        Binding("2", "tab('cost')", "cost", show=False),
        Binding("3", "tab('health')", "health", show=False),
        Binding("4", "tab('chat')", "chat", show=False),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, options: AppOptions) -> None:
        super().__init__()
        self.options = options
        self.run_no = 0
        self.hypotheses: dict[str, Hypothesis] = {}
        self.verdicts: dict[str, str] = {}
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
        self.t0 = time.monotonic()
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
                    with VerticalScroll(id="health-scroll"):
                        yield HealthPane(id="health-pane")
                with TabPane("Chat", id="chat"):
                    yield RichLog(id="chat-log", wrap=True, markup=False, highlight=False)
        with Horizontal(id="chat-bar"):
            yield Label("chat ›", id="chat-label")
            yield Input(placeholder="/ to type: why 1 · why not fault@svc · show svc · promql … · help", id="chat-input")
        yield Footer()
        yield Static("", id="too-small")

    def on_mount(self) -> None:
        header = self.query_one(IncidentHeader)
        header.source_label = self.options.source.label
        header.memory = "memory: opening…" if not self.options.no_store else "memory off (--no-store)"
        self.query_one("#chat-log", RichLog).write(Text("Type `help` for the chat commands.", style="dim"))
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
            self.query_one(IncidentHeader).elapsed = time.monotonic() - self.t0

    # ------------------------------------------------------------------ workers

    def start_investigation(self) -> None:
        """Start (or restart) the investigation; a running one is cancelled."""
        self.run_no += 1
        self.hypotheses.clear()
        self.verdicts.clear()
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
        self.t0 = time.monotonic()
        header = self.query_one(IncidentHeader)
        header.finished = False
        header.failed = None
        header.phase = None
        header.elapsed = 0.0
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
        # The service adds the configured runbooks and puts the timeline on the report.
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
        self.query_one("#chat-log", RichLog).write(message.renderable)

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
        elif isinstance(event, Progress):
            self.query_one("#hypotheses", HypothesisList).border_subtitle = event.message[:60]
        elif isinstance(event, Finished):
            self._finished(event)

    def _finished(self, event: Finished) -> None:
        report = event.report
        self.report = report
        self.finished_event = event
        self.running = False
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
        header.elapsed = report.timings.total_s
        hyps = self.query_one("#hypotheses", HypothesisList)
        hyps.border_subtitle = f"{len(report.hypotheses)} hypotheses · {report.investigation_id}"
        self._refresh_all()
        self._record(report, event)

    def _record(self, report: Report, event: Finished) -> None:
        """Write the finished investigation to the memory, once."""
        store = self.store_state.store if self.store_state else None
        if store is None or self.recorded:
            return
        try:
            record(store, report, self.request, self.options.source)
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

    def _refresh_hypotheses(self) -> None:
        hyps = self.query_one("#hypotheses", HypothesisList)
        hyps.show_hypotheses(list(self.hypotheses.values()), self.verdicts)
        hyps.border_title = f"Hypotheses ({len(self.hypotheses)})"
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

    def action_back(self) -> None:
        running = [w for w in self.workers if w.group == "model-chat" and w.is_running]
        if running:
            self.workers.cancel_group(self, "model-chat")
            self.query_one("#chat-log", RichLog).write(Text("cancelled", style="dim"))
            return
        self.query_one(HypothesisList).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_chat(self) -> None:
        self.query_one(TabbedContent).active = "chat"
        self.query_one("#chat-input", Input).focus()

    def action_toggle_chat(self) -> None:
        if self.focused is self.query_one("#chat-input", Input):
            self.query_one(HypothesisList).focus()
        else:
            self.action_chat()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_quit(self) -> None:
        self.app.exit()

    def action_rerun(self) -> None:
        self.query_one("#chat-log", RichLog).write(Text("— rerun —", style="dim"))
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
        self.query_one("#chat-log", RichLog).write(Text(f"report exported to {path}" + (f"; post-mortem: {md_path}" if md_path else "")))

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
        self.query_one("#chat-log", RichLog).write(Text(f"draft runbook saved: {path} (review it, then `compass runbook test`)"))

    def _verdict_target(self) -> Hypothesis | None:
        h = self.query_one("#hypotheses", HypothesisList).selected
        if h is None:
            self.notify("No hypothesis selected.", severity="warning")
            return None
        if self.report is None:
            self.notify("The investigation is still running: verdicts are taken once it has finished.", severity="warning")
            return None
        return h

    def _save_feedback(self, verdict: str, fault: str, service: str, reason: str | None = None, note: str | None = None) -> bool:
        """Write one verdict to the memory now; False (and a message) when it could not be."""
        store = self.store_state.store if self.store_state else None
        if store is None or self.report is None:
            status = self.store_state.status if self.store_state else "memory off"
            self.notify(f"Not saved: {status}", severity="warning", timeout=8)
            return False
        try:
            store.feedback(self.report.investigation_id, verdict, fault, service, reason=reason, note=note)
        except Exception as e:
            self._memory_failed(e)
            return False
        return True

    def action_confirm(self) -> None:
        h = self._verdict_target()
        if h is None:
            return
        saved = self._save_feedback("confirm", h.fault, h.service)
        self.verdicts[h.id] = "confirmed" + ("" if saved else " (not saved)")
        self._refresh_hypotheses()
        if saved:
            self.notify(f"Confirmed {h.fault}@{h.service}: saved to memory.")

    def action_reject(self) -> None:
        h = self._verdict_target()
        if h is None:
            return

        def done(reason: str | None) -> None:
            if reason is None:
                return
            saved = self._save_feedback("reject", h.fault, h.service, reason=reason)
            self.verdicts[h.id] = f"rejected: {reason}" + ("" if saved else " (not saved)")
            self._refresh_hypotheses()
            if saved:
                self.notify(f"Rejected {h.fault}@{h.service}: saved to memory.")

        self.app.push_screen(RejectScreen(f"{h.fault}@{h.service}"), done)

    def action_actual(self) -> None:
        if self.report is None:
            self.notify("The investigation is still running: verdicts are taken once it has finished.", severity="warning")
            return
        services = {h.service for h in self.hypotheses.values()}
        if self.request is not None and self.request.service:
            services.add(self.request.service)

        def done(correction: Correction | None) -> None:
            if correction is None:
                return
            saved = self._save_feedback("actual", correction.fault, correction.service, note=correction.note)
            cause = f"{correction.fault}@{correction.service}"
            key = next((h.id for h in self.hypotheses.values() if (h.fault, h.service) == (correction.fault, correction.service)), None)
            if key is not None:
                self.verdicts[key] = "actual cause" + ("" if saved else " (not saved)")
                self._refresh_hypotheses()
            self.query_one("#chat-log", RichLog).write(
                Text(f"recorded: it was actually {cause}" + (f" (fixed by: {correction.note})" if correction.note else "") + ("" if saved else " (not saved)"))
            )
            if saved:
                self.notify(f"It was actually {cause}: saved to memory.")
            if correction.fault.startswith("other:"):
                self.correction = (correction.fault, correction.service)
                src = "the queries you ran in the chat" if self.chat_queries else "the evidence queries on " + correction.service
                self.query_one("#chat-log", RichLog).write(
                    Text(f"press D to save {src} as a draft runbook for {cause}", style="bold"))

        self.app.push_screen(ActualScreen(catalog_faults(), sorted(services)), done)

    # ------------------------------------------------------------------ chat

    @on(Input.Submitted, "#chat-input")
    def chat_submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        event.input.value = ""
        if not line:
            return
        self.query_one(TabbedContent).active = "chat"
        log = self.query_one("#chat-log", RichLog)
        log.write(Text(f"› {line}", style="bold"))
        cmd = chat.parse(line)
        hyps = list(self.hypotheses.values())
        if cmd.verb == "help":
            log.write(Text(chat.HELP))
        elif cmd.verb == "why":
            window = (self.request.window_start, self.request.window_end) if self.request else None
            log.write(chat.answer_why(hyps, cmd.arg, self.options.grafana_url, window))
        elif cmd.verb == "why not":
            log.write(chat.answer_why_not(hyps, cmd.arg))
        elif cmd.verb == "show":
            log.write(chat.answer_show(hyps, cmd.arg))
        elif cmd.verb in ("promql", "logql"):
            log.write(Text(f"running {cmd.verb} over the incident window…", style="dim"))
            self.run_chat_query(cmd.verb, cmd.arg)
        elif cmd.verb == "rerun":
            self.action_rerun()
        elif self.models is not None and self.models.model_for("chat"):
            log.write(Text(f"asking {self.models.model_for('chat')}… (Esc cancels)", style="dim"))
            self.ask_model(line)
        else:
            log.write(Text(f"I don't understand {line!r} without a model. " + chat.HELP.splitlines()[0] + " type `help`.\n"
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

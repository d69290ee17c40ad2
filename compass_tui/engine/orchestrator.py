"""The investigation loop: observe -> orient -> act (disproof) -> decide, streamed as events.

Agents and queries run as tasks that post events to one queue; the generator yields them as
they arrive, so the first hypothesis is on screen long before the last check finishes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator

import numpy as np

from compass_tui.engine import agents as agents_mod
from compass_tui.engine.context import Candidate, Ctx, rate_lag
from compass_tui.engine.deps import EngineDeps
from compass_tui.engine.discovery import Discovery
from compass_tui.engine.disproof import rank, run_checks, to_hypothesis
from compass_tui.engine.graph import ServiceGraph, add_traces
from compass_tui.engine.localise import localise, series_services, suspect_out, symptom_series
from compass_tui.engine.origin import origin
from compass_tui.engine.logfacts import ERRORISH, TRACE_ERRORS_QUERY, analyse, error_span_lines
from compass_tui.engine.queries import BudgetExhausted, QueryRunner
from compass_tui.engine.request import format_time
from compass_tui.engine.timeseries import Grid, change
from compass_tui.models import (
    AgentCost,
    Cost,
    CostSpent,
    Degraded,
    Event,
    Evidence,
    Finished,
    HypothesisAdded,
    HypothesisUpdated,
    Incident,
    InvestigationRequest,
    PhaseChanged,
    Progress,
    Report,
    Signature,
    SignalDegraded,
    Suspect,
    SuspectsRanked,
    Timings,
)

LOG_SERVICE_LABELS = ("service_name", "service", "app", "job", "container", "app_kubernetes_io_name", "k8s_deployment_name")


def new_investigation_id(request: InvestigationRequest) -> str:
    svc = re.sub(r"[^A-Za-z0-9_.-]", "-", request.service or "unknown")
    return f"inv-{format_time(request.started_at)}-{svc}-{secrets.token_hex(2)}"


class _Run:
    """State of one investigation."""

    def __init__(self, request: InvestigationRequest, deps: EngineDeps):
        self.request = request
        self.deps = deps
        self.t0 = deps.t0 if deps.t0 is not None else time.perf_counter()
        self.events: asyncio.Queue = asyncio.Queue()
        self.runner = QueryRunner(deps.backend, deps.budget, self.events, self.t0)
        self.degraded: list[Degraded] = []
        self.first_hypothesis_s: float | None = None
        self.signature: Signature | None = None
        self.report: Report | None = None
        self.suspects: list[Suspect] = []
        self.onset: float | None = None
        self.model_session = None
        """The model account (compass_tui.llm.client.ModelSession) once a model was asked."""

    def at(self) -> float:
        return time.perf_counter() - self.t0

    def degrade(self, signal: str, reason: str, fix: str | None = None) -> None:
        if any(d.signal == signal for d in self.degraded):
            return
        d = Degraded(signal=signal, reason=reason, fix=fix)
        self.degraded.append(d)
        self.events.put_nowait(SignalDegraded(degraded=d))

    def phase(self, name: str) -> None:
        self.events.put_nowait(PhaseChanged(phase=name, at_s=self.at()))

    def progress(self, msg: str) -> None:
        self.events.put_nowait(Progress(message=msg, at_s=self.at()))

    # -------------------------------------------------------------- the work

    async def work(self) -> None:
        req = self.request
        backend = self.deps.backend
        step = max(float(req.step_s), 1.0)
        start = req.window_start
        end = max(req.window_end, start + step)
        alert = min(max(req.started_at, start), end)
        baseline_end = start + 0.5 * max(alert - start, step)
        grid = Grid(start=start, end=end, step=step, alert_at=alert, baseline_end=baseline_end)
        if alert - start < 900:
            self.degrade("baseline", f"only {(alert - start) / 60:.0f} min of data before the alert; changes are judged against a short baseline",
                         "widen the window (compass investigate --baseline SECONDS)")

        # ---------------- observe
        self.phase("observe")
        try:
            caps = await backend.capabilities()
        except Exception as e:  # a dead source is a degraded investigation, not a crash
            caps = None
            self.degrade("all", f"{backend.source}: capabilities unavailable: {e}")
        if caps is not None:
            for signal, reason in caps.missing.items():
                self.degrade(signal, reason)
        for signal, reason in getattr(backend, "degraded", []) or []:
            self.degrade(signal, reason)
        have_metrics = caps is None or caps.metrics
        have_logs = caps is not None and caps.logs
        have_traces = caps is not None and caps.traces
        have_ann = caps is not None and caps.annotations

        names: list[str] = []
        if have_metrics:
            try:
                names = await backend.metric_names()
            except Exception as e:
                self.degrade("metrics", f"{backend.source}: listing metric names failed: {e}")
        self.progress(f"{len(names)} metric names")

        spans_task = asyncio.create_task(self._traces(grid)) if have_traces else None
        logs_label_task = asyncio.create_task(self._log_label()) if have_logs else None
        ann_task = asyncio.create_task(self._annotations(grid)) if have_ann else None

        spans = await spans_task if spans_task else []
        trace_services = {s.service for s in spans}
        log_label, log_services = await logs_label_task if logs_label_task else (None, set())
        disc = Discovery(self.runner, grid)
        self.discovery = disc
        stack = await disc.discover(names, trace_services | log_services)
        await disc.compute()
        failures = self._source_failures()
        for sig, reason in stack.missing.items():
            if failures and disc.unchecked(sig, names_listed=bool(names)):
                # the source failed before it could say: never blame the instrumentation for it
                self.degrade(sig, f"not checked: {failures[0].short()}; whether the stack has it is unknown",
                             f"see source:{failures[0].server}")
            else:
                self.degrade(sig, reason)
        self._source_degraded()
        annotations = await ann_task if ann_task else []

        # ---------------- orient
        self.phase("orient")
        ctx = Ctx(request=req, grid=grid, stack=stack, graph=ServiceGraph(), logs=None, annotations=annotations,
                  source=backend.source, log_source=backend.source, grafana_url=self.deps.grafana_url)
        self._symptom(ctx)
        known = stack.services | trace_services | log_services
        self.services = sorted(known)
        add_traces(ctx.graph, spans, ctx.onset, known)
        for sig, how in (("client_rate", "client metrics"), ("sg_rate", "service graph metrics")):
            for key in stack.signals.get(sig, {}):
                svc, _, peer = key.partition("|")
                ctx.graph.add(svc, peer, how)
        for key, s in stack.signals.get("pool_util", {}).items():
            if s.sub and s.sub in known:
                ctx.graph.add(s.service, s.sub, "pool labels")
        span_lines = error_span_lines(spans, log_label or "service")
        if log_label:
            ctx.logs = await self._logs(ctx, log_label, known, span_lines)
        elif span_lines:
            # no logs: the error messages on failed spans still say what went wrong
            g = ctx.grid
            split = ctx.onset - ctx.tol
            ctx.logs = analyse(span_lines, "service", split, min(g.baseline_end, split) - g.start, g.end - split, known)
            ctx.logs.synthetic = True
            ctx.logs.query = TRACE_ERRORS_QUERY
        if ctx.logs:
            for tp in ctx.logs.templates.values():
                for p in tp.peers:
                    if p in known and (tp.inherited or "peer" in tp.example or "http" in tp.example):
                        ctx.graph.add(tp.service, p, "log peers")
        for sig, meta in stack.generic.items():
            if meta.view == "callers":
                for s in stack.signals.get(sig, {}).values():
                    if s.sub and s.sub in known:
                        ctx.graph.add(s.service, s.sub, "client metrics")
        self._affected(ctx)
        self.onset = ctx.onset
        ctx.suspects = localise(ctx)
        self.suspects = [suspect_out(s, i) for i, s in enumerate(ctx.suspects[:20], 1)]
        self.events.put_nowait(SuspectsRanked(suspects=self.suspects, onset=format_time(ctx.onset), at_s=self.at()))
        failures = self._source_failures()
        if not ctx.graph.known and failures:
            self.degrade("service_graph", f"no service graph: {failures[0].short()}, so its traces, client "
                         "metrics or log peers could not be read; scope checks are skipped", f"see source:{failures[0].server}")
        elif not ctx.graph.known:
            self.degrade("service_graph", "no traces, client metrics or log peers to build the service graph: scope checks are skipped "
                         "and suspects are ordered by when and how far their signals moved",
                         "send traces (Tempo) or client-side request metrics with a peer label")

        # ---------------- act: agents propose, then disproof
        self.phase("act")
        cands: list[Candidate] = []
        for name, fn in {**agents_mod.AGENTS, "origin": origin}.items():
            t_agent = time.perf_counter()
            try:
                found = fn(ctx)
            except Exception as e:  # one agent failing must not lose the others' work
                logging.getLogger("compass.engine").error("the %s agent failed", name, exc_info=e)
                self.degrade(f"agent:{name}", f"the {name} agent failed: {type(e).__name__}: {e}")
                found = []
            self.runner.costs[name].wall_s += time.perf_counter() - t_agent
            cands += found
            shown = [c for c in found if c.strength >= 0.3]
            for c in shown:
                self._emit_added(c)
            if shown:
                # agents are plain functions: let the screen show this one's hypotheses
                # before the next agent starts, so they stream in rather than arrive at once
                await asyncio.sleep(0.005)
        # --- runbooks: the engineer's own checks (compass_tui/runbooks.py), same runner and disproof
        if self.deps.runbooks is not None:
            from compass_tui import runbooks as runbooks_mod

            t_rb = time.perf_counter()
            cands += await runbooks_mod.propose(ctx, self.runner, self.deps.runbooks, self._emit_added, self.degrade)
            self.runner.costs["runbooks"].wall_s += time.perf_counter() - t_rb
        # --- end runbooks
        self.signature = self._signature(ctx)
        cands += self._memory_candidates()
        run_checks(ctx, cands)
        hyps = self._with_memory(cands)
        ranked = rank(hyps, {s.service: i for i, s in enumerate(ctx.suspects)})[:40]
        await self._verify_log_evidence(ranked[:6])
        # ---- model hypotheses (compass_tui.llm), only when a model is configured: claims the data must bear out
        if self.deps.llm is not None:
            from compass_tui.llm.hypotheses import model_hypotheses

            ranked = await model_hypotheses(self, ctx, cands, ranked)
        # ---- end model hypotheses
        for h in ranked:
            self.events.put_nowait(HypothesisUpdated(hypothesis=h, at_s=self.at()))
        if self.runner.budget_note:
            self.degrade("budget", f"stopped early: {self.runner.budget_note}; ranked what was checked")
        self._source_degraded()

        # ---------------- decide
        self.phase("decide")
        for agent, cost in self.runner.costs.items():
            self.events.put_nowait(CostSpent(agent=agent, cost=cost, total_usd=self.model_session.usd if self.model_session else 0.0,
                                             budget_usd=self.model_session.caps.max_usd if self.model_session else self.deps.budget.max_usd))
        self.report = self._report(ranked)

    def _source_failures(self) -> list:
        """How the backend's sources failed so far (``SourceFailure``-like), [] when none did."""
        fn = getattr(self.deps.backend, "source_failures", None)
        try:
            return list(fn()) if callable(fn) else []
        except Exception:  # a report on failures must not become one
            return []

    def _source_degraded(self) -> None:
        """One entry per failed source: how and since when, what could not be checked
        because of it, and that what was found before is kept. Refreshed at the end, so it
        counts what failed after discovery too."""
        failures = self._source_failures()
        if not failures:
            return
        disc = getattr(self, "discovery", None)
        lost = sorted(disc.failed) if disc is not None else []
        lost += [d.signal for d in self.degraded if d.reason.startswith("not checked: ") and d.signal not in lost]
        failed = {a: n for a, n in self.runner.failed.items() if n}
        for f in failures:
            parts = [f.detail()]
            if failed:
                by = ", ".join(f"{a} {n}" for a, n in sorted(failed.items(), key=lambda x: -x[1]))
                parts.append(f"{sum(failed.values())} queries could not run ({by})")
            if lost:
                parts.append(f"not checked: {_some(lost)}")
            unlooked = sorted(disc.unlooked) if disc is not None else []
            if unlooked:
                parts.append(f"metrics not looked up: {_some(unlooked)}")
            parts.append("what was found before is kept")
            reason = "; ".join(parts)
            fix = "the log file has the details; `compass doctor` checks the server"
            signal = f"source:{f.server}"
            for d in self.degraded:
                if d.signal == signal:
                    d.reason, d.fix = reason, fix  # the report's entry says the whole of it
                    break
            else:
                self.degrade(signal, reason, fix)

    async def _verify_log_evidence(self, hyps) -> None:
        """Run each cited log query of the leading hypotheses, so the evidence names a query
        that really ran and says what it returned."""
        g_start, g_end = self.request.window_start, self.request.window_end
        for h in hyps:
            for e in h.evidence:
                if e.kind == "trace" and e.query == TRACE_ERRORS_QUERY:
                    try:
                        r = await self.runner.traces(h.agent or "network", g_start, g_end, error_only=True, limit=50000)
                    except BudgetExhausted:
                        return
                    if r is not None and r.status != "error":
                        e.summary += f"; the search returns {len(r.spans)} failed spans in the window"
                    continue
                if e.kind != "log" or not e.query.startswith("{"):
                    continue
                try:
                    r = await self.runner.logs(h.agent or "application", e.query, g_start, g_end, limit=1000)
                except BudgetExhausted:
                    return
                if r is None or r.status == "error":
                    e.summary += " (the query could not be re-run)"
                else:
                    more = "+" if r.truncated else ""
                    e.summary += f"; the query returns {len(r.lines)}{more} lines in the window"

    def _emit_added(self, c: Candidate) -> None:
        if self.first_hypothesis_s is None:
            self.first_hypothesis_s = self.at()
        h = to_hypothesis(c)
        h.status = "inconclusive"  # not yet checked
        self.events.put_nowait(HypothesisAdded(hypothesis=h, at_s=self.at()))

    async def _traces(self, grid: Grid):
        try:
            r = await self.runner.traces("discovery", grid.start, grid.end, limit=50000)
        except BudgetExhausted:
            return []
        if r is None or r.status == "error":
            self.degrade("traces", f"trace search failed: {getattr(r, 'error', 'no answer')}")
            return []
        if r.truncated:
            self.degrade("traces", f"trace search cut at {len(r.spans)} spans; the graph may be incomplete")
        return r.spans

    async def _annotations(self, grid: Grid):
        try:
            r = await self.runner.annotations("application", grid.start, grid.end)
        except BudgetExhausted:
            return []
        if r is None or r.status == "error":
            self.degrade("annotations", f"annotations unavailable: {getattr(r, 'error', 'no answer')}")
            return []
        return r.annotations

    async def _log_label(self):
        backend = self.deps.backend
        try:
            names = await backend.log_label_names()
        except Exception as e:
            self.degrade("logs", f"listing log labels failed: {e}")
            return None, set()
        for label in LOG_SERVICE_LABELS:
            if label in names:
                try:
                    vals = set(await backend.log_label_values(label))
                except Exception:
                    vals = set()
                return label, vals
        self.degrade("logs", "no log stream label names the service (service_name, service, app, job)")
        return None, set()

    async def _logs(self, ctx: Ctx, label: str, known: set[str], extra=()):
        g = ctx.grid
        q = f'{{{label}=~".+"}} |~ "{ERRORISH}"'
        try:
            r = await self.runner.logs("application", q, g.start, g.end, limit=100000)
        except BudgetExhausted:
            return None
        if r is None or r.status == "error":
            self.degrade("logs", f"log query failed: {getattr(r, 'error', 'no answer')}")
            return None
        if r.truncated:
            self.degrade("logs", f"log query cut at {len(r.lines)} lines; older lines were not read")
        split = ctx.onset - ctx.tol
        base_end = min(g.baseline_end, split)
        facts = analyse(list(r.lines) + list(extra), label, split, base_end - g.start, g.end - split, known)
        facts.query = q
        return facts

    # -------------------------------------------------------------- the symptom

    def _symptom(self, ctx: Ctx) -> None:
        g = ctx.grid
        req = self.request
        svc = req.service
        services = ctx.stack.services
        if svc and svc not in services:
            # the alert may name the service differently (label order); try a loose match
            loose = [s for s in services if s.lower() == svc.lower()] or [s for s in services if svc in s or s in svc]
            svc = loose[0] if len(loose) == 1 else svc
        ctx.symptom_service = svc
        onsets = []
        if svc:
            min_run = max(2, min(3, int(round(600 / g.step)))) if g.step < 600 else 1
            for s, direction, kw in symptom_series(ctx, svc):
                lag = rate_lag(s.query, g.step)
                ch = change(g, s.values, direction, anchor=g.alert_at, lag=lag, min_run=min_run, **kw)
                if ch.onset is None:
                    # bursts (crash loops, flapping) page too: a burst just before the alert, not
                    # the leftover of an earlier incident
                    ch = change(g, s.values, direction, anchor=g.alert_at, lag=lag, min_run=min(2, min_run),
                                must_hold=False, horizon=max(600.0, 3 * g.step), **kw)
                    if ch.end is not None and ch.end < g.alert_at - max(3 * g.step, 180.0):
                        # an alert fires while its condition holds: a burst that was over
                        # minutes before it fired did not fire it (a noisy service's spike)
                        continue
                if ch.onset is not None and ch.onset <= g.alert_at + 2 * g.step:
                    onsets.append(ch.onset)
        if not onsets:
            # the alerting service shows nothing: judge scope by nothing, and take the onset
            # from the services that did move around the alert
            if svc and (ctx.series("error_ratio", svc) is not None or ctx.series("latency_p99", svc) is not None):
                ctx.symptom_service = None
            for other in sorted(series_services(ctx)):
                for s, direction, kw in symptom_series(ctx, other):
                    ch = change(g, s.values, direction, anchor=g.alert_at, lag=rate_lag(s.query, g.step), **kw)
                    # only what moved right around the alert: earlier bursts are other incidents
                    if ch.onset is not None and g.alert_at - max(600.0, 2 * g.step) <= ch.onset <= g.alert_at + 2 * g.step:
                        onsets.append(ch.onset)
            if onsets:
                onsets = [float(np.median(onsets))]
        if onsets:
            onsets.sort()
            # a noisy quantile can jump early; trust the earliest only when another agrees
            if len(onsets) >= 2 and onsets[1] - onsets[0] > 3 * g.step:
                ctx.onset = onsets[1]
            else:
                ctx.onset = onsets[0]
        else:
            ctx.onset = g.alert_at - min(2 * g.step, 120.0)
            failed = self._source_failures()
            why = f" ({failed[0].short()})" if failed else ""
            self.degrade("symptom", f"could not see the symptom's onset in the alerting service's errors or latency{why}; using the alert time")

    def _affected(self, ctx: Ctx) -> None:
        for sig, kw in (("error_ratio", dict(abs_floor=0.002, rel_floor=0.3)), ("latency_p99", dict(rel_floor=0.2)),
                        ("latency_mean", dict(rel_floor=0.2))):
            for key, s in ctx.stack.signals.get(sig, {}).items():
                # anchored at the alert: a service that went bad between onset and alert counts
                ch = ctx.chg(sig, key, 1, anchor=ctx.grid.alert_at, **kw)
                if ch is not None and ch.onset is not None and ctx.onset - 900 <= ch.onset <= ctx.grid.alert_at + ctx.tol:
                    prev = ctx.affected.get(s.service)
                    ctx.affected[s.service] = ch.onset if prev is None else min(prev, ch.onset)

    def _signature(self, ctx: Ctx) -> Signature:
        shape = []
        svc = ctx.symptom_service
        if svc:
            e = ctx.chg("error_ratio", svc, 1, abs_floor=0.002, rel_floor=0.3)
            lat = ctx.chg("latency_p99", svc, 1, rel_floor=0.2) or ctx.chg("latency_mean", svc, 1, rel_floor=0.2)
            if e is not None and e.rose:
                shape.append("errors")
            if lat is not None and lat.rose:
                shape.append("latency")
        return Signature(alertname=self.request.alertname, service=svc, shape="+".join(shape) or "unknown",
                         moved=sorted(ctx.affected))

    # -------------------------------------------------------------- memory

    def _memory_candidates(self) -> list[Candidate]:
        mem = self.deps.memory
        if mem is None:
            return []
        try:
            props = mem.proposals(self.signature)
        except Exception as e:
            self.degrade("memory", f"memory unavailable: {e}")
            return []
        out = []
        for p in props:
            c = Candidate(p.fault, p.service, "memory", 0.55, f"{p.fault} on {p.service} (taught by an engineer)", None)
            c.evidence.append(Evidence(kind="memory", summary=p.note, supports=True, source="memory",
                                       query=f"signature {self.signature.key()}"))
            out.append(c)
            self._emit_added(c)
        return out

    def _with_memory(self, cands: list[Candidate]):
        mem = self.deps.memory
        recalls = {}
        if mem is not None and self.signature is not None:
            try:
                recalls = mem.recall(self.signature, [(c.fault, c.service) for c in cands])
            except Exception as e:
                self.degrade("memory", f"memory unavailable: {e}")
        # one hypothesis per fault@service: keep the strongest the data measured; the memory's
        # own proposal only when no agent proposed that cause
        best: dict[str, Candidate] = {}

        def weight(c: Candidate) -> tuple:
            return (c.agent != "memory", c.strength * c.factor)

        for c in cands:
            if c.id not in best or weight(c) > weight(best[c.id]):
                best[c.id] = c
        out = []
        for c in best.values():
            r = recalls.get((c.fault, c.service))
            out.append(to_hypothesis(c, memory_note=r.note if r else None, adjust=r.adjust if r else 0.0))
        return out

    # -------------------------------------------------------------- the report

    def _report(self, ranked) -> Report:
        req = self.request
        by_agent = {a: AgentCost(**c.model_dump()) for a, c in self.runner.costs.items()}
        return Report(
            investigation_id=self.deps.investigation_id or new_investigation_id(req),
            incident=Incident(title=req.title, service=req.service, started_at=format_time(req.started_at),
                              onset=format_time(self.onset) if self.onset is not None else None),
            hypotheses=ranked,
            timings=Timings(first_hypothesis_s=self.first_hypothesis_s, total_s=round(self.at(), 3)),
            cost=self._cost(by_agent),
            degraded=self.degraded,
            signature=self.signature.key() if self.signature else None,
            suspects=self.suspects,
            services=getattr(self, "services", []),
        )

    def _cost(self, by_agent: dict[str, AgentCost]) -> Cost:
        """Queries per agent, and every model call priced as the provider counted it."""
        ms = self.model_session
        if ms is None:
            return Cost(usd=0.0, prompt_tokens=0, completion_tokens=0, by_agent=by_agent)
        for role, c in ms.by_role.items():
            a = by_agent.setdefault(role, AgentCost())
            a.calls, a.prompt_tokens, a.completion_tokens = c.calls, c.prompt_tokens, c.completion_tokens
            a.usd, a.latency_s, a.model = c.usd, c.latency_s, c.model
        return Cost(usd=round(ms.usd, 10), prompt_tokens=sum(c.prompt_tokens for c in ms.calls),
                    completion_tokens=sum(c.completion_tokens for c in ms.calls), by_agent=by_agent,
                    calls=len(ms.calls), budget_hit=ms.budget_hit, budget_usd=ms.caps.max_usd,
                    model_calls=list(ms.calls))


def _some(names: list[str], n: int = 12) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


async def investigate(request: InvestigationRequest, deps: EngineDeps) -> AsyncIterator[Event]:
    """Run one investigation, yielding events as they happen; the last is ``Finished``.

    The Finished event's report carries the incident signature's key (``signature_of`` turns
    it back into a Signature)."""
    run = _Run(request, deps)
    task = asyncio.create_task(run.work())
    try:
        while True:
            get = asyncio.create_task(run.events.get())
            done, _ = await asyncio.wait({get, task}, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                yield get.result()
                continue
            get.cancel()
            while not run.events.empty():
                yield run.events.get_nowait()
            break
        exc = task.exception()
        if exc is not None:
            logging.getLogger("compass.engine").error("the investigation stopped early", exc_info=exc)
            run.degrade("engine", f"the investigation stopped early: {type(exc).__name__}: {exc}")
            while not run.events.empty():
                yield run.events.get_nowait()
            if run.report is None:
                run.report = run._report([])
        report = run.report
        assert report is not None
        report.degraded = run.degraded
        yield Finished(report=report)
    finally:
        if not task.done():
            task.cancel()


async def run_to_report(request: InvestigationRequest, deps: EngineDeps) -> Report:
    """Run an investigation to the end and return its report."""
    report = None
    async for event in investigate(request, deps):
        if isinstance(event, Finished):
            report = event.report
    assert report is not None
    return report


def signature_of(report: Report) -> Signature:
    """The Signature a report was made under (parsed back from its key)."""
    key = report.signature or "-|-||"
    alert, svc, shape, moved = (key.split("|") + ["", "", "", ""])[:4]
    return Signature(alertname=None if alert == "-" else alert, service=None if svc == "-" else svc,
                     shape=shape, moved=[m for m in moved.split(",") if m])

"""Every backend call of an investigation goes through here: the budget is checked before
the call, the call is charged to the agent that made it, and a QueryRan event says what ran."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from compass_tui.engine.deps import Budget
from compass_tui.models import AgentCost, QueryRan
from compass_tui.telemetry.backend import (
    AnnotationResult,
    Backend,
    LogResult,
    MetricResult,
    TraceResult,
)


class BudgetExhausted(Exception):
    """Raised before a call the budget does not allow."""


class QueryRunner:
    def __init__(self, backend: Backend, budget: Budget, events: asyncio.Queue, t0: float):
        self.backend = backend
        self.budget = budget
        self.events = events
        self.t0 = t0
        self.costs: dict[str, AgentCost] = defaultdict(AgentCost)
        self.queries = 0
        self._cache: dict[tuple, object] = {}
        self._inflight: dict[tuple, asyncio.Future] = {}
        self.budget_note: str | None = None
        self.failed: dict[str, int] = defaultdict(int)
        """agent -> its queries that could not run (the source answered an error or nothing)."""

    @property
    def source(self) -> str:
        return self.backend.source

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _check(self) -> None:
        if self.queries >= self.budget.max_queries:
            self.budget_note = f"query budget reached ({self.budget.max_queries} queries)"
            raise BudgetExhausted(self.budget_note)
        if self.elapsed() > self.budget.deadline_s:
            self.budget_note = f"deadline reached ({self.budget.deadline_s:.0f} s)"
            raise BudgetExhausted(self.budget_note)

    async def _run(self, agent: str, key: tuple, text: str, call):
        if key in self._cache:
            return self._cache[key]
        if key in self._inflight:
            return await self._inflight[key]
        self._check()
        self.queries += 1
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as e:  # a backend must not raise, but if it does the investigation goes on
            result = None
            error = f"{type(e).__name__}: {e}"
        else:
            error = getattr(result, "error", None)
        wall = time.perf_counter() - started
        cost = self.costs[agent]
        cost.queries += 1
        cost.wall_s += wall
        if isinstance(result, list):  # a label-set lookup answers a plain list
            status = "ok" if result else "no_data"
        else:
            status = getattr(result, "status", "error") if result is not None else "error"
        rows = _rows(result)
        if status == "error":
            self.failed[agent] += 1
        self.events.put_nowait(
            QueryRan(agent=agent, source=self.source, query=text, status=status, rows=rows, wall_s=wall, error=error)
        )
        self._cache[key] = result
        del self._inflight[key]
        fut.set_result(result)
        return result

    async def series(self, agent: str, selector: str, start: float, end: float) -> list[dict[str, str]] | None:
        """Label sets of the series a selector matches (Prometheus's /api/v1/series)."""
        return await self._run(
            agent, ("series", selector, start, end), f"match[]={selector}",
            lambda: self.backend.series(selector, start, end),
        )

    async def range(self, agent: str, promql: str, start: float, end: float, step: float) -> MetricResult | None:
        return await self._run(
            agent, ("range", promql, start, end, step), promql,
            lambda: self.backend.query_range(promql, start, end, step),
        )

    async def instant(self, agent: str, promql: str, t: float) -> MetricResult | None:
        return await self._run(agent, ("instant", promql, t), promql, lambda: self.backend.query_instant(promql, t))

    async def logs(self, agent: str, logql: str, start: float, end: float, limit: int = 5000) -> LogResult | None:
        return await self._run(
            agent, ("logs", logql, start, end, limit), logql,
            lambda: self.backend.query_logs(logql, start, end, limit),
        )

    async def log_metric(self, agent: str, logql: str, start: float, end: float, step: float) -> MetricResult | None:
        return await self._run(
            agent, ("logmetric", logql, start, end, step), logql,
            lambda: self.backend.query_log_metric(logql, start, end, step),
        )

    async def traces(self, agent: str, start: float, end: float, service: str | None = None,
                     error_only: bool = False, limit: int = 20000) -> TraceResult | None:
        text = "{ }" if not service else f'{{ resource.service.name = "{service}" }}'
        if error_only:
            text = text[:-1].rstrip() + (" && " if service else " ") + "status = error }"
        return await self._run(
            agent, ("traces", start, end, service, error_only, limit), text,
            lambda: self.backend.search_traces(start, end, service=service, error_only=error_only, limit=limit),
        )

    async def annotations(self, agent: str, start: float, end: float) -> AnnotationResult | None:
        return await self._run(
            agent, ("annotations", start, end), "annotations", lambda: self.backend.annotations(start, end)
        )


def _rows(result) -> int:
    if result is None:
        return 0
    if isinstance(result, list):
        return len(result)
    for attr in ("series", "lines", "spans", "annotations"):
        if hasattr(result, attr):
            return len(getattr(result, attr))
    return 0

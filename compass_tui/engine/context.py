"""What every agent reads: the grid, the discovered stack, the graph, the logs, the changes,
the symptom (who alerted, when it started) and how to cite a query as evidence."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

import numpy as np

from compass_tui.engine.discovery import SigSeries, Stack
from compass_tui.engine.faults.base import Facts
from compass_tui.engine.graph import ServiceGraph
from compass_tui.engine.logfacts import LogFacts
from compass_tui.engine.timeseries import Change, Grid, change
from compass_tui.models import Chart, Disproof, Evidence, InvestigationRequest
from compass_tui.telemetry.backend import Annotation


_RATE_WINDOW = re.compile(r"\b(?:rate|increase|changes|delta|deriv)\([^\[]*\[(\d+)([smh])\]")


def rate_lag(query: str, step: float) -> float:
    """How late a rate over a window shows a step change: about half the window (a gauge
    shows it at once). Onsets of rate signals are moved back by this much so that rates and
    gauges can be ordered in time."""
    m = _RATE_WINDOW.search(query)
    if not m:
        return 0.0
    window = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    return float(min(window / 2.0, 2 * step) // step * step)


@dataclass
class Candidate:
    fault: str
    service: str
    agent: str
    strength: float
    title: str
    cause_onset: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    checks: list[Disproof] = field(default_factory=list)
    from_lines: bool = False
    """The onset was read from log lines or failed spans: sampled, so it can lag the truth."""
    factor: float = 1.0
    """Multiplier from competing explanations (1 = none)."""
    facts: Facts | None = None
    """What the detector measured that the disproof rules reuse, typed per fault (a pool's
    name, a database's clients, a surge's upstream services...); None for candidates from
    the memory or runbooks."""
    why_not: str | None = None
    beaten: list[tuple[Candidate, Disproof, float]] = field(default_factory=list, repr=False, compare=False)
    """Each competing candidate that ruled this one out, with the failed check and its factor
    (see ``lose_to``): what lets two explanations that rule each other out be told apart."""

    @property
    def id(self) -> str:
        return f"{self.fault}@{self.service}"

    def lose_to(self, winner: Candidate | None, detail: str, factor: float) -> None:
        """``winner`` explains this candidate's signal better: fail the competing check and
        remember who did it (None when no candidate of the winner's was proposed)."""
        self.check("competing_explanation", False, detail, factor)
        if winner is not None and winner is not self:
            self.beaten.append((winner, self.checks[-1], factor))

    def check(self, strategy: str, ok: bool | None, detail: str, factor: float = 1.0) -> None:
        result = "skipped" if ok is None else ("survived" if ok else "failed")
        self.checks.append(Disproof(strategy=strategy, result=result, detail=detail))
        if ok is False:
            self.factor *= factor
            if self.why_not is None:
                self.why_not = detail


def confidence(c: Candidate) -> float:
    """A candidate's confidence: its strength times what the checks left of it."""
    return max(0.01, min(0.99, c.strength * c.factor))


@dataclass
class Ctx:
    request: InvestigationRequest
    grid: Grid
    stack: Stack
    graph: ServiceGraph
    logs: LogFacts | None
    annotations: list[Annotation]
    source: str
    log_source: str
    grafana_url: str | None = None
    onset: float = 0.0
    """Symptom onset."""
    symptom_service: str | None = None
    affected: dict[str, float] = field(default_factory=dict)
    """service -> when its errors or latency started rising."""
    suspects: list = field(default_factory=list)
    """The localisation's ranking (engine.localise.Suspect), the likeliest origin first."""
    _changes: dict[tuple, Change] = field(default_factory=dict)

    @property
    def tol(self) -> float:
        return max(2 * self.grid.step, 60.0)

    def series(self, signal: str, key: str) -> SigSeries | None:
        return self.stack.signals.get(signal, {}).get(key)

    def chg(self, signal: str, key: str, direction: int = 1, **kw) -> Change | None:
        s = self.series(signal, key)
        if s is None:
            return None
        ck = (signal, key, direction, tuple(sorted(kw.items())))
        if ck not in self._changes:
            kw.setdefault("anchor", self.onset if self.onset else None)
            kw.setdefault("horizon", max(1800.0, 0.5 * (self.onset - self.grid.start)) if self.onset else None)
            self._changes[ck] = change(self.grid, s.values, direction, lag=rate_lag(s.query, self.grid.step), **kw)
        return self._changes[ck]

    def link(self, query: str, kind: str = "metric") -> str | None:
        if not self.grafana_url:
            return None
        left = {
            "datasource": "prometheus" if kind == "metric" else "loki",
            "queries": [{"refId": "A", "expr": query}],
            "range": {"from": str(int(self.grid.start * 1000)), "to": str(int(self.grid.end * 1000))},
        }
        import json

        return f"{self.grafana_url.rstrip('/')}/explore?left=" + urllib.parse.quote(json.dumps(left, separators=(",", ":")))

    def metric_evidence(self, s: SigSeries, summary: str, supports: bool = True, onset: float | None = None) -> Evidence:
        t = self.grid.times
        ok = np.isfinite(s.values)
        pts = list(zip(t[ok].tolist(), s.values[ok].tolist()))
        if len(pts) > 240:
            stride = int(np.ceil(len(pts) / 240))
            pts = pts[::stride]
        return Evidence(
            kind="metric", summary=summary, supports=supports, source=self.source, query=s.query,
            link=self.link(s.query), chart=Chart(label=f"{s.signal} {s.service}" + (f" {s.sub}" if s.sub else ""),
                                                 points=pts, onset=onset if onset is not None else self.onset),
        )

    def log_evidence(self, query: str, summary: str, supports: bool = True) -> Evidence:
        if self.logs is not None and self.logs.synthetic:
            from compass_tui.engine.logfacts import TRACE_ERRORS_QUERY

            return Evidence(kind="trace", summary=summary.replace(" lines", " failed spans"), supports=supports,
                            source=self.source, query=TRACE_ERRORS_QUERY)
        return Evidence(kind="log", summary=summary, supports=supports, source=self.log_source, query=query,
                        link=self.link(query, "log"))

    def in_scope(self, service: str) -> bool | None:
        """Is the service the alerting one or downstream of it? None when the graph cannot tell."""
        s = self.symptom_service
        if not s or not self.graph.known or s not in self.graph.nodes():
            return None
        if service == s or service in self.graph.downstream(s):
            return True
        if service not in self.graph.nodes():
            return None
        if not self.graph_complete:
            return None  # client metrics and pool labels alone leave too many calls unseen
        return False

    @property
    def graph_complete(self) -> bool:
        """Whether the graph saw calls as they happen (traces or log peers), not only the
        client metrics and pool labels that leave most calls unseen."""
        return any("traces" in how or "log peers" in how for how in self.graph.sources.values())

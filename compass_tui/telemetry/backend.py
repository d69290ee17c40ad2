"""The one Backend protocol every telemetry source answers, and the result types.

The verbs are those of the real backends (Prometheus/Mimir, Loki, Tempo, Grafana
annotations), and queries are written in their real languages, so the text an evidence item
cites can be pasted into Grafana Explore. Every result carries a status, the exact query, the
source that answered and how long it took, so a failure can say what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

ResultStatus = Literal["ok", "error", "no_data"]


@dataclass
class Series:
    """One time series: its labels (``__name__`` included when the query kept it) and its
    samples as parallel arrays of unix seconds and float values (no NaN gaps: absent points
    are simply missing)."""

    labels: dict[str, str]
    t: np.ndarray
    v: np.ndarray


@dataclass
class MetricResult:
    query: str
    source: str
    status: ResultStatus = "ok"
    series: list[Series] = field(default_factory=list)
    scalar: float | None = None
    error: str | None = None
    wall_s: float = 0.0
    truncated: bool = False


@dataclass
class LogLine:
    t: float  # unix seconds (ns precision kept in t_ns)
    t_ns: int
    labels: dict[str, str]
    line: str


@dataclass
class LogResult:
    query: str
    source: str
    status: ResultStatus = "ok"
    lines: list[LogLine] = field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0
    truncated: bool = False


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: int  # OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer
    start: float  # unix seconds
    end: float
    error: bool  # status.code == 2
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass
class TraceResult:
    query: str
    source: str
    status: ResultStatus = "ok"
    spans: list[Span] = field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0
    truncated: bool = False


@dataclass
class Annotation:
    time: float  # unix seconds
    time_end: float | None
    tags: list[str]
    text: str


@dataclass
class AnnotationResult:
    query: str
    source: str
    status: ResultStatus = "ok"
    annotations: list[Annotation] = field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0


@dataclass
class Capabilities:
    """Which verbs this backend can answer, and why not where it cannot."""

    metrics: bool = False
    logs: bool = False
    traces: bool = False
    annotations: bool = False
    missing: dict[str, str] = field(default_factory=dict)
    """signal -> reason it is unavailable (and the fix, in words)."""


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a telemetry source. All verbs are read-only."""

    source: str
    """How evidence names this backend (``bundle:NAME``, ``grafana``, ``prometheus``...)."""

    async def capabilities(self) -> Capabilities: ...

    async def metric_names(self) -> list[str]: ...

    async def series(self, selector: str, start: float, end: float) -> list[dict[str, str]]:
        """Label sets of the series a selector matches within [start, end]."""
        ...

    async def query_range(self, promql: str, start: float, end: float, step: float) -> MetricResult: ...

    async def query_instant(self, promql: str, t: float) -> MetricResult: ...

    async def log_label_names(self) -> list[str]: ...

    async def log_label_values(self, label: str) -> list[str]: ...

    async def query_logs(self, logql: str, start: float, end: float, limit: int = 1000) -> LogResult:
        """A LogQL log query (stream selector + line filters)."""
        ...

    async def query_log_metric(self, logql: str, start: float, end: float, step: float) -> MetricResult:
        """A LogQL metric query (``count_over_time``, ``sum by (...) (count_over_time(...))``)."""
        ...

    async def search_traces(
        self,
        start: float,
        end: float,
        service: str | None = None,
        error_only: bool = False,
        limit: int = 5000,
    ) -> TraceResult: ...

    async def annotations(self, start: float, end: float) -> AnnotationResult: ...

    async def aclose(self) -> None: ...


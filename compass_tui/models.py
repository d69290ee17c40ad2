"""The pydantic types every part of COMPASS shares: the request, hypotheses, evidence,
the events the engine streams, and the final report (``compass-investigation/1``).

The report's JSON shape is a public contract (see the investigation report spec): fields
may be added, never renamed or removed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

REPORT_FORMAT = "compass-investigation/1"

Status = Literal["supported", "inconclusive", "disproven"]
Phase = Literal["observe", "orient", "act", "decide"]


class Incident(BaseModel):
    """What fired, as the report shows it."""

    title: str
    service: str | None = None
    started_at: str | None = None  # RFC3339
    onset: str | None = None
    """When the symptom began, as the investigation measured it (RFC3339)."""


class InvestigationRequest(BaseModel):
    """Everything the engine needs to know about the incident, whatever its source."""

    title: str
    service: str | None = None
    """The alerting service, as named in its telemetry (None when unknown)."""
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    started_at: float
    """Unix seconds when the alert fired."""
    window_start: float
    window_end: float
    step_s: float = 15.0
    text: str | None = None
    """The engineer's own words, when the investigation started from them."""


class Chart(BaseModel):
    """A small series an evidence item cites, for the terminal chart."""

    label: str
    points: list[tuple[float, float]]
    onset: float | None = None


class Evidence(BaseModel):
    kind: Literal["metric", "log", "trace", "annotation", "memory", "runbook", "model"]
    summary: str
    supports: bool
    source: str
    """Which backend answered: e.g. ``bundle:/path/x.tar.gz`` or ``grafana/query_prometheus``."""
    query: str
    """The exact query that ran (PromQL, LogQL, a trace search, an annotation lookup)."""
    link: str | None = None
    chart: Chart | None = Field(default=None, exclude=True)


class Disproof(BaseModel):
    strategy: Literal[
        "temporal_precedence", "scope", "magnitude", "competing_explanation", "signal_presence"
    ]
    result: Literal["survived", "failed", "skipped"]
    detail: str


class Hypothesis(BaseModel):
    id: str
    """Stable within an investigation: ``fault@service``."""
    rank: int = 0
    fault: str
    service: str
    title: str
    confidence: float = 0.0
    status: Status = "inconclusive"
    evidence: list[Evidence] = Field(default_factory=list)
    disproof: list[Disproof] = Field(default_factory=list)
    agent: str = ""
    memory_note: str | None = None
    """What the store recalls for this cause, e.g. "seen 3 times, usually confirmed"."""
    why_disproven: str | None = None
    memory_adjust: float = 0.0
    """How much the memory moved this hypothesis's confidence (0 when it did not)."""


class Degraded(BaseModel):
    signal: str
    reason: str
    fix: str | None = None


class AgentCost(BaseModel):
    queries: int = 0
    wall_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    model: str | None = None
    calls: int = 0
    """Model calls this agent (or model role) made."""
    latency_s: float = 0.0
    """Seconds spent waiting for those model calls."""


class ModelCall(BaseModel):
    """One model call as it was charged: who asked, which model, what it cost and did."""

    role: str
    model: str
    status: Literal["ok", "error"] = "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = False
    """True when the provider reported no usage and the tokens were counted locally."""
    usd: float = 0.0
    priced: bool = True
    """False when litellm's price table does not know the model (its usd is then 0)."""
    latency_s: float = 0.0
    error: str | None = None
    proposed: list[str] = Field(default_factory=list)
    """The hypotheses (``fault@service``) this call proposed."""
    changed_ranking: bool = False
    """Whether its output moved the ranking (a hypothesis it proposed ranks first)."""


class Cost(BaseModel):
    usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_agent: dict[str, AgentCost] = Field(default_factory=dict)
    calls: int = 0
    """Model calls the investigation made."""
    budget_hit: bool = False
    """Whether a budget (USD, calls, tokens) stopped a model call."""
    budget_usd: float | None = None
    """The spend cap this investigation ran under."""
    model_calls: list[ModelCall] = Field(default_factory=list)
    """Every model call, in order."""


class Timings(BaseModel):
    first_hypothesis_s: float | None = None
    total_s: float = 0.0


class SuspectSignal(BaseModel):
    """One series that placed a suspect: how far it moved and the query behind it."""

    signal: str
    kind: str
    view: Literal["own", "callers", "outbound"]
    z: float
    """Robust z-score of its excursion (median and IQR/MAD of the baseline)."""
    onset: str | None = None
    query: str


class Suspect(BaseModel):
    """A service ranked by where the trouble started (the localisation, before any fault kind)."""

    rank: int = 0
    service: str
    score: float
    """1.0 for the likeliest origin; the others relative to it."""
    onset: str | None = None
    pod: str | None = None
    inherited_from: list[str] = Field(default_factory=list)
    """Dependencies whose own trouble explains part of this service's."""
    signals: list[SuspectSignal] = Field(default_factory=list)
class TimelineEntry(BaseModel):
    """One moment of the investigation, for the post-mortem's timeline."""

    at_s: float
    """Seconds since the investigation started."""
    kind: Literal["phase", "raised", "tested", "ruled_out", "supported", "degraded"]
    hypothesis: str | None = None
    """``fault@service`` when it is about a hypothesis."""
    detail: str = ""


class Report(BaseModel):
    format: str = REPORT_FORMAT
    investigation_id: str
    incident: Incident
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    timings: Timings = Field(default_factory=Timings)
    cost: Cost = Field(default_factory=Cost)
    degraded: list[Degraded] = Field(default_factory=list)
    signature: str | None = None
    """The incident signature the store matches recurrences on."""
    suspects: list[Suspect] = Field(default_factory=list)
    """Every service that moved, ranked by where the trouble started (the localisation)."""
    timeline: list[TimelineEntry] = Field(default_factory=list)
    """When each hypothesis was raised, tested, ruled out or supported (filled by whoever
    consumed the event stream; empty in reports made before it existed)."""
    services: list[str] = Field(default_factory=list)
    """Every service the telemetry named (what a correction may name)."""

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------- events


class PhaseChanged(BaseModel):
    kind: Literal["phase"] = "phase"
    phase: Phase
    at_s: float


class HypothesisAdded(BaseModel):
    kind: Literal["hypothesis_added"] = "hypothesis_added"
    hypothesis: Hypothesis
    at_s: float


class HypothesisUpdated(BaseModel):
    kind: Literal["hypothesis_updated"] = "hypothesis_updated"
    hypothesis: Hypothesis
    at_s: float


class EvidenceFound(BaseModel):
    kind: Literal["evidence"] = "evidence"
    hypothesis_id: str
    evidence: Evidence
    at_s: float


class QueryRan(BaseModel):
    kind: Literal["query"] = "query"
    agent: str
    source: str
    query: str
    status: Literal["ok", "error", "no_data"]
    rows: int = 0
    wall_s: float = 0.0
    error: str | None = None


class CostSpent(BaseModel):
    kind: Literal["cost"] = "cost"
    agent: str
    cost: AgentCost
    """The agent's running total."""
    total_usd: float = 0.0
    budget_usd: float | None = None


class SignalDegraded(BaseModel):
    kind: Literal["degraded"] = "degraded"
    degraded: Degraded


class Progress(BaseModel):
    kind: Literal["progress"] = "progress"
    message: str
    at_s: float


class SuspectsRanked(BaseModel):
    """The localisation's ranking, as soon as it exists (before any fault kind is named)."""

    kind: Literal["suspects"] = "suspects"
    suspects: list[Suspect]
    onset: str | None = None
    at_s: float


class Finished(BaseModel):
    kind: Literal["finished"] = "finished"
    report: Report


Event = Annotated[
    Union[
        PhaseChanged,
        HypothesisAdded,
        HypothesisUpdated,
        EvidenceFound,
        QueryRan,
        CostSpent,
        SignalDegraded,
        Progress,
        SuspectsRanked,
        Finished,
    ],
    Field(discriminator="kind"),
]


class Signature(BaseModel):
    """What makes two incidents "the same" for the memory: the alert, the alerting service,
    the symptom's shape and the set of services that moved."""

    alertname: str | None = None
    service: str | None = None
    shape: str = ""
    """e.g. ``errors``, ``latency``, ``errors+latency``."""
    moved: list[str] = Field(default_factory=list)
    """Services whose golden signals changed at the onset, sorted."""

    def key(self) -> str:
        return f"{self.alertname or '-'}|{self.service or '-'}|{self.shape}|{','.join(self.moved)}"


class Recall(BaseModel):
    """What the memory says about one candidate cause under a signature."""

    adjust: float = 0.0
    """Added to the confidence before ranking (positive: confirmed before; negative: rejected)."""
    note: str | None = None
    """Shown on the hypothesis, e.g. "seen 3 times, usually confirmed"."""


class ProposedCause(BaseModel):
    """A cause the memory proposes itself for a recurring signature (often ``other:<slug>``)."""

    fault: str
    service: str
    note: str
    times_seen: int = 1

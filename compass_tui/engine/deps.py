"""What an investigation is given: the backend, the budget, the memory, the models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from compass_tui.models import ProposedCause, Recall, Signature
from compass_tui.telemetry.backend import Backend


@dataclass
class Budget:
    """Caps checked before each call, not after."""

    max_queries: int = 2000
    """Backend queries the whole investigation may run."""
    max_llm_calls: int = 20
    """Model calls the whole investigation may make."""
    max_usd: float | None = None
    """Model spend the whole investigation may reach, in USD; None: by severity (below)."""
    max_usd_routine: float = 10.0
    """The spend cap when ``max_usd`` is None and the alert is not critical."""
    max_usd_critical: float = 20.0
    """The spend cap when ``max_usd`` is None and the alert is critical."""
    max_tokens: int | None = None
    """Model tokens (prompt + completion) the whole investigation may spend; None: no cap."""
    deadline_s: float = 60.0
    """Wall-clock seconds after which the engine stops checking and ranks what it has."""

    def usd_cap(self, severity: str | None) -> float:
        """The spend cap for an alert of this severity: ``max_usd`` when set, else by severity."""
        if self.max_usd is not None:
            return self.max_usd
        critical = (severity or "").strip().lower() in ("critical", "page", "p1", "sev1", "emergency")
        return self.max_usd_critical if critical else self.max_usd_routine


class MemoryAdvisor(Protocol):
    """The store's view for the engine: recall past outcomes for a signature."""

    def recall(self, signature: Signature, candidates: list[tuple[str, str]]) -> dict[tuple[str, str], Recall]:
        """For each (fault, service) candidate, how past verdicts shift it."""
        ...

    def proposals(self, signature: Signature) -> list[ProposedCause]:
        """Causes the engineer taught for this signature that the catalog cannot propose."""
        ...


@dataclass
class EngineDeps:
    backend: Backend
    budget: Budget = field(default_factory=Budget)
    memory: MemoryAdvisor | None = None
    llm: Any | None = None
    """An ``compass_tui.llm`` client when a model is configured; None runs rules only."""
    grafana_url: str | None = None
    """For deep links (Grafana Explore) on evidence."""
    investigation_id: str | None = None
    runbooks: Any | None = None
    """A ``compass_tui.runbooks.RunbookSet`` to run as one more agent; None runs none."""
    t0: float | None = None
    """``time.perf_counter()`` when the user asked (before the source was opened), so timings
    count what the user waited for; None starts the clock with the engine."""

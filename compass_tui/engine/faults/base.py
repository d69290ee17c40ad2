"""What a fault is to the engine: its catalog id and title, the detectors the agents run, the
typed facts its detectors record, and the rules that support or disprove it. Light on
purpose (no numpy): the store, the app and the simulator read the registry's ids and titles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compass_tui.engine.context import Candidate, Ctx

Detector = Callable[["Ctx"], "list[Candidate]"]
"""Proposes candidates of its fault from what the context holds (one list, in a stable order)."""

RuleFn = Callable[["Ctx", "list[Candidate]", "dict[str, list[Candidate]]"], None]
"""A competing-explanation rule: reads every candidate (and the same grouped by fault id) and
records checks on the ones it judges."""


@dataclass
class Facts:
    """What a detector measured that the disproof rules reuse; each fault subclasses it."""


@dataclass(frozen=True)
class Rule:
    """A competing-explanation rule and when it runs. Rules run in ``stage`` order (ties in
    catalog order): a rule that reads other candidates' verdicts or factors runs after the
    rules that set them."""

    stage: int
    run: RuleFn


@dataclass(frozen=True)
class Fault:
    """One catalog fault: everything the engine knows about it, in its own module."""

    id: str
    """Catalog id (stable, never renamed)."""
    title: str
    """The culprit's own fault, as the catalog words it."""
    order: int
    """Position in the catalog (the registry's order)."""
    detectors: Mapping[str, Detector] = field(default_factory=dict)
    """agent name -> detector that agent runs (network_degradation has two)."""
    facts: type[Facts] = Facts
    """The typed facts its candidates carry."""
    rules: tuple[Rule, ...] = ()
    """Its competing-explanation rules (which may judge other faults' candidates too)."""
    scope: Callable[[Ctx, Candidate], bool] | None = None
    """Its own scope check; returns False to fall back to the generic one."""
    magnitude: Callable[[Ctx, Candidate], bool] | None = None
    """Its own magnitude check; returns False to fall back to the generic one."""
    load_driven: Callable[[Candidate], bool] | None = None
    """Set for what extra load can cause (saturation): True when load alone produces this
    candidate within a step."""
    final: Callable[[Ctx, list[Candidate]], None] | None = None
    """Runs after every other check (``unexplained`` places itself below specific faults)."""
    acute: bool = False
    """Shows within minutes: a cause that sat there long before the symptom explains less."""
    seen_by_others: bool = False
    """Its culprit often reports no telemetry of its own: judged by others' view of it."""
    under_everything: bool = False
    """Sits under every service (DNS): it explains everything that moved."""
    explained_by_downstream: bool = False
    """An earlier strong fault downstream of the culprit explains it, unless its trouble is
    its own (facts ``own`` >= 0.5)."""
    where_only: bool = False
    """Says where, not what: never shown as supported."""
    where_reading: bool = False
    """Read from where the trouble started rather than from a cause's own signature
    (code_defect, unexplained): ranks below a specific cause that survived on the same
    service and below a runbook that fired."""
    since: int = 1
    """The catalog version that added it."""
    simulated: bool = True
    """The simulator can inject it."""

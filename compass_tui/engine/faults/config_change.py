"""config_change: a configuration or feature-flag change on the culprit (application agent).

Supports: a config or flag change on the culprit just before onset (an annotation, a
config-reload line or timestamp metric) and trouble of its own right after it. Disproves: no
change; onset before the change; its new errors only inherited from a dependency; a new
version shipped at the same time (then it is bad_deploy); a specific fault of the same
service that began later; a strong fault downstream that started first."""

from __future__ import annotations

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._change import ChangeFacts, detect_changes, later_specific, magnitude, own_not_inherited
from compass_tui.engine.faults.base import Fault, Rule


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per service with a configuration change in the window."""
    return detect_changes(ctx, "config")


def not_the_deploy(ctx: Ctx, cands: list[Candidate], by_fault: dict[str, list[Candidate]]) -> None:
    """A new version shipped at the same time: the deploy, not the config."""
    deploys = {c.service: c for c in by_fault.get("bad_deploy", [])}
    for c in by_fault.get("config_change", []):
        d = deploys.get(c.service)
        if d is not None and d.cause_onset is not None and c.cause_onset is not None and abs(d.cause_onset - c.cause_onset) < 300:
            c.lose_to(d, "a new version shipped at the same time: the deploy, not the config", 0.6)


FAULT = Fault(
    id="config_change", title="a configuration or feature-flag change on the culprit", order=6,
    detectors={"application": detect}, facts=ChangeFacts, magnitude=magnitude,
    rules=(Rule(70, own_not_inherited("config_change")), Rule(80, later_specific("config_change")),
           Rule(90, not_the_deploy)),
    explained_by_downstream=True,
)

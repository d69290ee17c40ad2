"""The deterministic specialist agents: thin groupings of the registered fault detectors
(``engine/faults``). Each agent runs the detectors that name it, in catalog order, and lists
their candidates as the agent always has (per service where it scans services); what it
queried is charged to it. disproof.py then runs the generic checks and each fault's rules."""

from __future__ import annotations

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults import registry
from compass_tui.engine.faults._common import OWN_ERROR, change_events

__all__ = ["AGENTS", "OWN_ERROR", "application", "database", "dependencies", "detected_by", "infrastructure", "network"]


def detected_by(agent: str, ctx: Ctx) -> list[Candidate]:
    """The candidates of every registered fault whose detector for ``agent`` fired, in
    catalog order."""
    return [c for f in registry().values() if agent in f.detectors for c in f.detectors[agent](ctx)]


def infrastructure(ctx: Ctx) -> list[Candidate]:
    """CPU, memory, disk: per service (sorted), its faults in catalog order."""
    return sorted(detected_by("infrastructure", ctx), key=lambda c: c.service)


def database(ctx: Ctx) -> list[Candidate]:
    """Pools (metrics, then logs), then slow databases."""
    return detected_by("database", ctx)


def network(ctx: Ctx) -> list[Candidate]:
    """Retransmits and drops, certificates, DNS."""
    return detected_by("network", ctx)


def application(ctx: Ctx) -> list[Candidate]:
    """Deploys and config changes per changed service (in the order the changes were found),
    then traffic surges."""
    found = detected_by("application", ctx)
    changed = {svc: i for i, svc in enumerate(change_events(ctx))}
    changes = [c for c in found if c.fault in ("bad_deploy", "config_change")]
    rest = [c for c in found if c.fault not in ("bad_deploy", "config_change")]
    return sorted(changes, key=lambda c: changed.get(c.service, len(changed))) + rest


def dependencies(ctx: Ctx) -> list[Candidate]:
    """External dependencies, then caches."""
    return detected_by("dependencies", ctx)


AGENTS = {
    "infrastructure": infrastructure,
    "database": database,
    "network": network,
    "application": application,
    "dependencies": dependencies,
}

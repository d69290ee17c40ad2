"""Hypotheses stream in as each agent finishes, not all at once when the last one has."""

from __future__ import annotations

import asyncio

from compass_tui.engine import EngineDeps, investigate
from compass_tui.engine import agents as agents_mod
from compass_tui.engine.request import request_from_bundle_meta
from compass_tui.models import HypothesisAdded
from compass_tui.telemetry.bundle import open_bundle


def test_the_first_hypothesis_reaches_the_screen_before_the_last_agent_runs(sim_bundle_factory, monkeypatch):
    path = sim_bundle_factory("db_connection_pool_exhaustion", 3, services=10)
    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    ran: list[str] = []

    def watched(name, fn):
        def agent(ctx):
            ran.append(name)
            return fn(ctx)
        return agent

    monkeypatch.setattr(agents_mod, "AGENTS", {name: watched(name, fn) for name, fn in agents_mod.AGENTS.items()})

    async def consume() -> list[str] | None:
        async for event in investigate(req, EngineDeps(backend=backend)):
            if isinstance(event, HypothesisAdded):
                return list(ran)  # which agents had run when the consumer saw the first one
        return None

    seen_after = asyncio.run(consume())
    assert seen_after, "no hypothesis was proposed"
    assert len(seen_after) < len(agents_mod.AGENTS), f"the first hypothesis arrived only after all agents: {seen_after}"

"""The origin agent: explains the localisation's leading suspects with the faults that need no
catalog signature of their own: ``network_degradation`` read from the callers' view,
``code_defect`` (trouble that begins in the service's own code, with no change behind it),
and ``unexplained`` (where, not what) so the likely origin always has a hypothesis. The
detectors live with their faults (``engine/faults``); this groups them per suspect."""

from __future__ import annotations

from compass_tui.engine.agents import detected_by
from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._origin import MAX_SUSPECTS, origin_suspects

__all__ = ["MAX_SUSPECTS", "origin"]


def origin(ctx: Ctx) -> list[Candidate]:
    """Per leading suspect (likeliest first), its origin faults in catalog order."""
    order = {s.service: i for i, (s, _) in enumerate(origin_suspects(ctx))}
    return sorted(detected_by("origin", ctx), key=lambda c: order.get(c.service, len(order)))

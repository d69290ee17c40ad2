"""bad_deploy: a new version of the culprit brought errors or latency (application agent).

Supports: a deploy of the culprit shortly before onset (an annotation, a new version label,
a "starting ... version=" line) and errors, latency or new error templates of its own right
after it. Disproves: no deploy before onset; its errors already there before the deploy; its
new errors only inherited from a dependency; a specific fault of the same service that began
later; a strong fault downstream that started first."""

from __future__ import annotations

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.faults._change import ChangeFacts, detect_changes, later_specific, magnitude, own_not_inherited
from compass_tui.engine.faults.base import Fault, Rule


def detect(ctx: Ctx) -> list[Candidate]:
    """One candidate per service with a deploy in the window."""
    return detect_changes(ctx, "deploy")


FAULT = Fault(
    id="bad_deploy", title="a new version of the culprit brought errors or latency", order=5,
    detectors={"application": detect}, facts=ChangeFacts, magnitude=magnitude,
    rules=(Rule(70, own_not_inherited("bad_deploy")), Rule(80, later_specific("bad_deploy"))),
    explained_by_downstream=True,
)

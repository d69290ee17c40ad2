"""Shared parts of the app's tests: a small incident bundle written from scratch, an alert
payload, and a scripted event source standing in for the engine where a test needs exact,
repeatable events (the rest run the real engine on the bundle)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compass_tui.cli import build_parser
from compass_tui.engine.request import format_time
from compass_tui.models import (
    AgentCost,
    Chart,
    CostSpent,
    Degraded,
    Disproof,
    Evidence,
    EvidenceFound,
    Finished,
    Hypothesis,
    HypothesisAdded,
    HypothesisUpdated,
    Incident,
    PhaseChanged,
    Progress,
    QueryRan,
    Report,
    SignalDegraded,
    Timings,
)

ONSET = 1757355207.0  # 2025-09-08T18:13:27Z
START = ONSET - 1800
END = ONSET + 600
STEP = 15


def write_bundle(root: Path) -> Path:
    """A minimal but real bundle: checkout errors rise at the onset, payments' pool saturates."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bundle.json").write_text(json.dumps({
        "format": "compass-bundle/1", "title": "checkout 5xx",
        "window": {"start": format_time(START), "end": format_time(END)}, "step_seconds": STEP,
    }))
    (root / "incident.json").write_text(json.dumps(alert_payload()))
    t = START
    err = ok = 0.0
    samples_req, samples_pool = [], []
    while t <= END:
        ok += 10 * STEP
        err += (3 if t >= ONSET else 0.05) * STEP
        samples_req.append(f'http_requests_total{{service="checkout",code="200"}} {ok} {int(t)}')
        samples_req.append(f'http_requests_total{{service="checkout",code="500"}} {err} {int(t)}')
        samples_pool.append(f'hikaricp_connections_active{{service="payments",pool="main"}} {20 if t >= ONSET - 90 else 6} {int(t)}')
        t += STEP
    # OpenMetrics wants each family's samples together, series by series.
    lines = [
        "# TYPE http_requests counter", *samples_req[0::2], *samples_req[1::2],
        "# TYPE hikaricp_connections_active gauge", *samples_pool, "# EOF",
    ]
    (root / "metrics.om").write_text("\n".join(lines) + "\n")
    return root


def alert_payload() -> dict:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
            "annotations": {"summary": "checkout 5xx above 5%"},
            "startsAt": "2025-09-08T18:13:27Z",
        }],
    }


def write_alert(path: Path) -> Path:
    path.write_text(json.dumps(alert_payload()))
    return path


def parse(*argv: str) -> argparse.Namespace:
    """The same parser as the `compass` command."""
    return build_parser().parse_args(list(argv))


POOL = Hypothesis(
    id="db_connection_pool_exhaustion@payments", fault="db_connection_pool_exhaustion", service="payments",
    title="payments exhausted its connection pool", confidence=0.6, agent="database",
    memory_note="seen 3 times, usually confirmed",
)
DEPLOY = Hypothesis(
    id="bad_deploy@checkout", fault="bad_deploy", service="checkout",
    title="a checkout deploy brought errors", confidence=0.4, agent="application",
)
CPU = Hypothesis(
    id="cpu_saturation@checkout", fault="cpu_saturation", service="checkout",
    title="checkout is CPU bound", confidence=0.3, agent="infrastructure",
)
POOL_EVIDENCE = Evidence(
    kind="metric", summary="hikaricp_connections_active hit max (20/20) 90 s before onset", supports=True,
    source="bundle:test", query='max by (service) (hikaricp_connections_active{service="payments"})',
    chart=Chart(label="payments pool active", points=[(START + i * STEP, 20.0 if START + i * STEP >= ONSET - 90 else 6.0) for i in range(160)], onset=ONSET),
)


def scripted_events(*, with_report: bool = True):
    """The event stream of a small investigation, with fixed timings (snapshots stay stable)."""
    final_pool = POOL.model_copy(update={
        "rank": 1, "status": "supported", "confidence": 0.87, "evidence": [POOL_EVIDENCE],
        "disproof": [Disproof(strategy="temporal_precedence", result="survived", detail="pool saturated 90 s before the symptom")],
    })
    final_cpu = CPU.model_copy(update={"rank": 2, "status": "inconclusive", "confidence": 0.35})
    final_deploy = DEPLOY.model_copy(update={
        "rank": 3, "status": "disproven", "confidence": 0.05, "why_disproven": "no checkout deploy before the onset",
    })
    events = [
        PhaseChanged(phase="observe", at_s=0.01),
        SignalDegraded(degraded=Degraded(signal="traces", reason="no traces.json in the bundle", fix="capture traces with `compass snapshot`")),
        QueryRan(agent="database", source="bundle:test", query="hikaricp_connections_active", status="ok", rows=1, wall_s=0.01),
        QueryRan(agent="network", source="bundle:test", query="node_netstat_Tcp_RetransSegs", status="error", error="unknown metric"),
        PhaseChanged(phase="orient", at_s=0.1),
        HypothesisAdded(hypothesis=DEPLOY, at_s=0.2),
        HypothesisAdded(hypothesis=POOL, at_s=0.25),
        HypothesisAdded(hypothesis=CPU, at_s=0.3),
        Progress(message="checking 3 hypotheses", at_s=0.3),
        PhaseChanged(phase="act", at_s=0.35),
        EvidenceFound(hypothesis_id=POOL.id, evidence=POOL_EVIDENCE, at_s=0.4),
        HypothesisUpdated(hypothesis=final_pool, at_s=0.45),
        HypothesisUpdated(hypothesis=final_deploy, at_s=0.5),
        CostSpent(agent="database", cost=AgentCost(queries=12, wall_s=0.4), total_usd=0.0, budget_usd=0.5),
        CostSpent(agent="application", cost=AgentCost(queries=7, wall_s=0.2), total_usd=0.0, budget_usd=0.5),
        PhaseChanged(phase="decide", at_s=0.6),
    ]
    if with_report:
        report = Report(
            investigation_id="inv-2025-09-08T18:13:27Z-checkout-test",
            incident=Incident(title="checkout 5xx above 5%", service="checkout", started_at="2025-09-08T18:13:27Z"),
            hypotheses=[final_pool, final_cpu, final_deploy],
            timings=Timings(first_hypothesis_s=0.2, total_s=0.7),
            signature="HighErrorRate|checkout|errors|checkout,payments",
        )
        events.append(Finished(report=report))
    return events


def scripted(*, with_report: bool = True, hold=None):
    """An ``investigate`` replacement yielding ``scripted_events``; ``hold`` (an asyncio.Event)
    pauses the stream before the report so a test can act mid-investigation."""

    async def investigate(request, deps):
        for event in scripted_events(with_report=with_report):
            if isinstance(event, Finished) and hold is not None:
                await hold.wait()
            yield event

    return investigate


def simulated_bundle(out: Path, fault: str = "db_connection_pool_exhaustion", seed: int = 3) -> Path:
    """An incident from the project's own simulator (small: six services)."""
    from compass_tui.sim import SimOptions, generate
    from compass_tui.sim import write_bundle as write_sim_bundle

    return write_sim_bundle(generate(fault, seed, SimOptions(services=6)), out)

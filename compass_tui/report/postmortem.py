"""The Learning Teams post-mortem of an investigation, as Markdown.

In the Learning Teams spirit: what happened and in what order, the conditions that
contributed (never one person's error), what went well, what was lucky, what made sense at
the time, the evidence with the queries behind it, what the investigation cost, and action
items for the team to review. Every statement comes from the recorded facts: the report,
its timeline and the engineer's verdicts. With a ``postmortem`` model the narrative summary
is written by it from those facts only (``narrate``); without one, from templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from compass_tui.models import Hypothesis, Report


def _t(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    from compass_tui.engine.request import parse_time

    try:
        return parse_time(ts)
    except ValueError:
        return None


@dataclass
class Facts:
    """What the post-mortem may say, gathered from the record."""

    report: Report
    recorded_at: float | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def started(self) -> float | None:
        """When the investigation started (unix seconds)."""
        if self.recorded_at is None:
            return None
        return self.recorded_at - float(self.report.timings.total_s or 0.0)

    def cause(self) -> tuple[str, str, str] | None:
        """(fault, service, how the engineer said it) of the cause they confirmed or named."""
        from compass_tui.store.store import outcome

        c, _ = outcome({"verdicts": self.verdicts})
        if c is None:
            return None
        how = next((v["verdict"] for v in reversed(self.verdicts) if (v["fault"], v["service"]) == c), "confirm")
        return c[0], c[1], how

    def hypothesis(self, fault: str, service: str) -> Hypothesis | None:
        return next((h for h in self.report.hypotheses if (h.fault, h.service) == (fault, service)), None)


def _template_summary(f: Facts) -> str:
    r = f.report
    inc = r.incident
    cause = f.cause()
    top = r.hypotheses[0] if r.hypotheses else None
    parts = [f"{inc.title} paged at {inc.started_at or 'an unknown time'}" + (f" on {inc.service}." if inc.service else ".")]
    if cause:
        h = f.hypothesis(cause[0], cause[1])
        if h is not None:
            parts.append(f"The engineer {'confirmed' if cause[2] == 'confirm' else 'named'} {cause[0]} on {cause[1]} as the cause; "
                         f"COMPASS had ranked it {h.rank} of {len(r.hypotheses)} ({h.status}, confidence {h.confidence:.2f}).")
        else:
            parts.append(f"The engineer named {cause[0]} on {cause[1]} as the cause, which COMPASS had not proposed.")
    elif top is not None:
        parts.append(f"No verdict has been recorded yet; COMPASS ranked {top.fault} on {top.service} first "
                     f"({top.status}, confidence {top.confidence:.2f}).")
    ruled = [h for h in r.hypotheses if h.status == "disproven"]
    parts.append(f"{len(r.hypotheses)} hypotheses were considered and {len(ruled)} ruled out by queries against the telemetry.")
    return " ".join(parts)


def build_facts_text(f: Facts) -> str:
    """The facts a model may narrate, as plain text (no secrets: only what the report holds)."""
    r = f.report
    lines = [f"incident: {r.incident.title}; alerting service: {r.incident.service}; alert at {r.incident.started_at}"]
    c = f.cause()
    if c:
        lines.append(f"engineer's verdict: {c[2]} {c[0]}@{c[1]}")
    for h in r.hypotheses[:8]:
        lines.append(f"hypothesis {h.rank}: {h.fault}@{h.service} {h.status} {h.confidence:.2f}: {h.title}"
                     + (f"; ruled out: {h.why_disproven}" if h.why_disproven else ""))
    for d in r.degraded:
        lines.append(f"missing signal: {d.signal}: {d.reason}")
    return "\n".join(lines)


def narrative(f: Facts, narrate: Callable[[str], str] | None = None) -> tuple[str, str]:
    """The summary paragraph and who wrote it: the ``postmortem`` model when ``narrate`` is
    given and answers, else the template. A failing model falls back, saying so."""
    if narrate is not None:
        try:
            text = narrate(build_facts_text(f))
            if text and text.strip():
                return text.strip(), "the postmortem model, from the facts below"
        except Exception as e:  # a model fails like any source: the template still writes it
            return _template_summary(f), f"templates (the postmortem model failed: {type(e).__name__})"
    return _template_summary(f), "templates"


def postmortem_markdown(f: Facts, narrate: Callable[[str], str] | None = None) -> str:
    """The post-mortem of one investigation as Markdown."""
    r = f.report
    inc = r.incident
    out: list[str] = []
    w = out.append
    summary, author = narrative(f, narrate)
    w(f"# Post-incident review: {inc.title}")
    w("")
    w(f"Investigation `{r.investigation_id}`. A draft for the team's learning review, in the Learning Teams "
      "spirit: how the system and the people in it behaved, not whose fault it was. "
      f"Narrative written by {author}; every other line comes from the recorded investigation.")
    w("")
    w("## What happened")
    w("")
    w(summary)
    w("")

    # ------------------------------------------------------------ timeline
    w("## Timeline (UTC)")
    w("")
    events: list[tuple[float, str]] = []
    alert_t = _parse(inc.started_at)
    if alert_t is not None:
        events.append((alert_t, f"**Alert fired**{' on ' + inc.service if inc.service else ''}: {inc.title}"))
    cause = f.cause()
    ch = f.hypothesis(cause[0], cause[1]) if cause else (r.hypotheses[0] if r.hypotheses else None)
    if ch is not None:
        for d in ch.disproof:
            if d.strategy == "temporal_precedence" and d.result == "survived" and alert_t is not None:
                events.append((alert_t - 0.5, f"**Onset** of {ch.fault} on {ch.service}: {d.detail} (as measured)"))
    for h in r.hypotheses:
        for e in h.evidence:
            if e.kind == "annotation":
                events.append((alert_t - 1 if alert_t else 0.0, f"**Change**: {e.summary} (`{e.query}`)"))
    started = f.started
    seen_raised: set[str] = set()
    if started is not None:
        events.append((started, "COMPASS started investigating"))
        for te in r.timeline:
            at = started + te.at_s
            if te.kind == "raised" and te.hypothesis not in seen_raised:
                seen_raised.add(te.hypothesis or "")
                events.append((at, f"hypothesis raised: `{te.hypothesis}` ({te.detail})"))
            elif te.kind == "ruled_out":
                events.append((at, f"ruled out: `{te.hypothesis}`: {te.detail}"))
            elif te.kind == "supported":
                events.append((at, f"tested and supported: `{te.hypothesis}` ({te.detail})"))
        fh = r.timings.first_hypothesis_s
        if fh is not None and not r.timeline:
            events.append((started + fh, "first hypothesis on screen"))
        events.append((started + float(r.timings.total_s or 0.0), f"ranking done: {len(r.hypotheses)} hypotheses"))
    for v in f.verdicts:
        word = {"confirm": "confirmed", "reject": "rejected", "actual": "said it was actually"}[v["verdict"]]
        extra = f" ({v['reason']})" if v.get("reason") else ""
        extra += f"; fixed by: {v['note']}" if v.get("note") else ""
        events.append((v["at"], f"**Engineer {word}** `{v['fault']}@{v['service']}`{extra}"))
    if not r.timeline and started is None:
        w("_The investigation's own timeline was not recorded (an older report)._")
    for t, text in sorted(events, key=lambda x: x[0]):
        w(f"- {_t(t)}: {text}")
    w("")

    # ------------------------------------------------------------ contributing causes
    w("## Contributing causes")
    w("")
    if cause:
        w(f"- The cause the engineer identified: **{cause[0]}** on **{cause[1]}**.")
    supported = [h for h in r.hypotheses if h.status == "supported" and (not cause or (h.fault, h.service) != cause[:2])]
    for h in supported[:4]:
        w(f"- Also supported by the data, and possibly contributing: {h.fault} on {h.service} ({h.title}).")
    for d in r.degraded:
        w(f"- Visibility: {d.signal}: {d.reason}" + (f" (fix: {d.fix})" if d.fix else ""))
    if not cause and not supported and not r.degraded:
        w("- No cause has been confirmed yet; review the hypotheses below with the team.")
    w("")

    # ------------------------------------------------------------ went well / lucky / made sense
    w("## What went well")
    w("")
    fh = r.timings.first_hypothesis_s
    if fh is not None:
        w(f"- A first hypothesis was on screen {fh:.1f} s after the investigation started.")
    if ch is not None and ch.rank == 1 and cause:
        w(f"- The cause ranked first, with {sum(1 for e in ch.evidence if e.supports)} supporting evidence items.")
    survived = [d for d in (ch.disproof if ch else []) if d.result == "survived"]
    if survived:
        w(f"- It survived {len(survived)} attempts to disprove it: " + "; ".join(d.detail for d in survived) + ".")
    ruled = [h for h in r.hypotheses if h.status == "disproven"]
    if ruled:
        w(f"- {len(ruled)} alternative explanations were ruled out with queries, narrowing the search.")
    w("")
    w("## What was lucky")
    w("")
    lucky = []
    ranked = [h for h in r.hypotheses if h.status != "disproven"]
    if len(ranked) >= 2 and abs(ranked[0].confidence - ranked[1].confidence) < 0.1:
        lucky.append(f"The top two explanations were close ({ranked[0].fault}@{ranked[0].service} {ranked[0].confidence:.2f} "
                     f"against {ranked[1].fault}@{ranked[1].service} {ranked[1].confidence:.2f}): a little less signal and the order flips.")
    skipped = [d for d in (ch.disproof if ch else []) if d.result == "skipped"]
    for d in skipped:
        lucky.append(f"A check could not run ({d.strategy}: {d.detail}): the answer stands without it.")
    if ch is not None and ch.agent == "runbook":
        lucky.append("The cause is outside COMPASS's catalog: it was found only because someone had written a runbook for it.")
    if cause and f.hypothesis(cause[0], cause[1]) is None:
        lucky.append("COMPASS did not propose the cause; the engineer knew it.")
    for x in lucky or ["Nothing recorded points at luck; say what the team thinks was."]:
        w(f"- {x}")
    w("")
    w("## What made sense at the time")
    w("")
    w("Explanations that looked plausible from the first signals, and what the data said:")
    w("")
    for h in (ruled[:6] or []):
        w(f"- {h.fault} on {h.service}: {h.title}. Ruled out: {h.why_disproven or 'a check failed'}.")
    for v in f.verdicts:
        if v["verdict"] == "reject":
            w(f"- {v['fault']} on {v['service']} was rejected by the engineer: {v.get('reason') or 'no reason given'}.")
    if not ruled and not any(v["verdict"] == "reject" for v in f.verdicts):
        w("- Nothing was ruled out.")
    w("")

    # ------------------------------------------------------------ evidence
    w("## Evidence")
    w("")
    shown = [ch] if ch is not None else []
    shown += [h for h in r.hypotheses[:3] if h is not ch]
    for h in shown:
        w(f"### {h.rank}. {h.fault} on {h.service} ({h.status}, {h.confidence:.2f})")
        w("")
        for e in h.evidence:
            mark = "supports" if e.supports else "against"
            w(f"- {e.summary} ({mark}; {e.kind} from {e.source})")
            w("")
            w("  ```")
            for ln in e.query.splitlines() or [""]:
                w(f"  {ln}")
            w("  ```")
            if e.link:
                w(f"  [open in Grafana]({e.link})")
        w("")

    # ------------------------------------------------------------ cost
    w("## Cost of the investigation")
    w("")
    c = r.cost
    queries = sum(a.queries for a in c.by_agent.values())
    w(f"- {queries} queries, {r.timings.total_s:.1f} s, ${c.usd:.4f} in model spend "
      f"({c.prompt_tokens} prompt and {c.completion_tokens} completion tokens).")
    for agent, a in sorted(c.by_agent.items(), key=lambda x: -x[1].queries):
        if a.queries or a.usd:
            w(f"  - {agent}: {a.queries} queries, {a.wall_s:.2f} s" + (f", ${a.usd:.4f}" if a.usd else ""))
    w("")

    # ------------------------------------------------------------ actions
    w("## Action items to review")
    w("")
    actions = []
    for v in f.verdicts:
        if v.get("note"):
            actions.append(f"Make the fix stick: {v['note']}.")
    if ch is not None:
        for e in ch.evidence:
            if e.kind == "runbook" and ":" in e.summary:
                actions.append(f"Runbook advice: {e.summary.split(': ', 1)[1]}")
    if cause and cause[0].startswith("other:") and (ch is None or ch.agent != "runbook"):
        actions.append(f"Teach COMPASS this cause: `compass runbook draft {r.investigation_id}` saves the queries that showed it.")
    if ch is not None and ch.rank and ch.rank > 1:
        actions.append(f"Review why {ch.fault}@{ch.service} ranked {ch.rank}, not first.")
    for d in r.degraded:
        if d.fix:
            actions.append(f"Close a visibility gap: {d.fix} ({d.signal}).")
    actions.append("Discuss with the people involved what they saw, what they expected and what surprised them.")
    for a in actions:
        w(f"- [ ] {a}")
    w("")
    return "\n".join(out)

"""The investigation's own timeline, read off the event stream: when each hypothesis was
raised, when it was tested and what the test said. Kept in the report for the post-mortem."""

from __future__ import annotations

from compass_tui.models import (
    Finished,
    HypothesisAdded,
    HypothesisUpdated,
    PhaseChanged,
    Report,
    SignalDegraded,
    TimelineEntry,
)


class Timeline:
    """Feed it every event (``observe``); at the end ``attach`` puts the entries on the report."""

    def __init__(self) -> None:
        self.entries: list[TimelineEntry] = []
        self._raised: set[str] = set()
        self._last_at = 0.0

    def observe(self, ev) -> None:
        """Note one event of the stream."""
        at = getattr(ev, "at_s", None)
        if at is not None:
            self._last_at = float(at)
        if isinstance(ev, PhaseChanged):
            self.entries.append(TimelineEntry(at_s=ev.at_s, kind="phase", detail=ev.phase))
        elif isinstance(ev, HypothesisAdded):
            h = ev.hypothesis
            if h.id not in self._raised:
                self._raised.add(h.id)
                self.entries.append(TimelineEntry(at_s=ev.at_s, kind="raised", hypothesis=h.id,
                                                  detail=f"{h.title} (by the {h.agent or 'engine'} agent)"))
        elif isinstance(ev, HypothesisUpdated):
            h = ev.hypothesis
            if h.id not in self._raised:
                self._raised.add(h.id)
                self.entries.append(TimelineEntry(at_s=ev.at_s, kind="raised", hypothesis=h.id,
                                                  detail=f"{h.title} (by the {h.agent or 'engine'} agent)"))
            checks = ", ".join(f"{d.strategy} {d.result}" for d in h.disproof)
            self.entries.append(TimelineEntry(at_s=ev.at_s, kind="tested", hypothesis=h.id, detail=checks))
            if h.status == "disproven":
                self.entries.append(TimelineEntry(at_s=ev.at_s, kind="ruled_out", hypothesis=h.id,
                                                  detail=h.why_disproven or ""))
            elif h.status == "supported":
                self.entries.append(TimelineEntry(at_s=ev.at_s, kind="supported", hypothesis=h.id,
                                                  detail=f"confidence {h.confidence:.2f}"))
        elif isinstance(ev, SignalDegraded):
            self.entries.append(TimelineEntry(at_s=self._last_at, kind="degraded", detail=f"{ev.degraded.signal}: {ev.degraded.reason}"))
        elif isinstance(ev, Finished):
            self.attach(ev.report)

    def attach(self, report: Report) -> Report:
        """Put the timeline on the report (once) and return it."""
        if not report.timeline:
            report.timeline = list(self.entries)
        return report

"""``compass investigate``: one investigation headless, on a bundle or on an alert against the
configured live sources; prints the JSON report, a readable summary, or the event stream."""

from __future__ import annotations

import asyncio
import json
import sys

EXIT_OK = 0
EXIT_CANNOT_RUN = 2


def _err(msg: str) -> int:
    print(f"compass: {msg}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def summary_text(report) -> str:
    """The readable summary printed without --json."""
    lines = [f"{report.incident.title}  ({report.investigation_id})"]
    if report.incident.service:
        lines.append(f"alerting: {report.incident.service} since {report.incident.started_at}")
    lines.append("")
    shown = [h for h in report.hypotheses if h.status != "disproven"][:5]
    if not shown:
        lines.append("No hypothesis survived disproof.")
    for h in shown:
        bar = "#" * int(round(h.confidence * 10))
        lines.append(f"{h.rank:>2}. [{bar:<10}] {h.confidence:.2f} {h.status:<12} {h.fault} @ {h.service}")
        lines.append(f"      {h.title}")
        if h.memory_note:
            lines.append(f"      memory: {h.memory_note}")
        for e in h.evidence[:3]:
            mark = "+" if e.supports else "-"
            lines.append(f"      {mark} {e.summary}")
            lines.append(f"          {e.query.splitlines()[0][:150]}")
    ruled = [h for h in report.hypotheses if h.status == "disproven"]
    if ruled:
        lines.append("")
        lines.append("Ruled out:")
        for h in ruled[:8]:
            lines.append(f"   - {h.fault} @ {h.service}: {h.why_disproven or 'disproven'}")
    if report.degraded:
        lines.append("")
        lines.append("Degraded:")
        for d in report.degraded:
            lines.append(f"   - {d.signal}: {d.reason}" + (f" (fix: {d.fix})" if d.fix else ""))
    t = report.timings
    lines.append("")
    fh = f"{t.first_hypothesis_s:.2f} s" if t.first_hypothesis_s is not None else "none"
    lines.append(f"first hypothesis {fh}, total {t.total_s:.2f} s, {sum(c.queries for c in report.cost.by_agent.values())} queries, ${report.cost.usd:.4f}")
    return "\n".join(lines)


def run(args) -> int:
    """Investigate ``--bundle`` or ``--alert`` headless; print the report, summary or events."""
    import time

    t0 = time.perf_counter()
    from compass_tui.telemetry import preload

    # the bundle is parsed in a child while this process imports the engine
    preload.start(getattr(args, "bundle", None))
    from compass_tui.service import SourceError, open_source, open_store, resolve_options

    if not getattr(args, "bundle", None) and not getattr(args, "alert", None):
        return _err("say what to investigate: --bundle PATH or --alert FILE ('-' for stdin)")
    stdin_text = sys.stdin.read() if getattr(args, "alert", None) == "-" else None
    options = resolve_options(args, stdin_text=stdin_text)
    if options.source.kind == "alert" and options.config_error:
        return _err(options.config_error)

    async def go() -> int:
        from compass_tui.service import close_backend

        try:
            opened = await open_source(options)
        except SourceError as e:
            return _err(str(e))
        if opened.backend is None:
            why = opened.notes[0] if opened.notes else "none configured"
            # the service may have said it already (every configured server failed to start)
            return _err(why if why.startswith("no data source reachable") else f"no data source reachable: {why}")
        state = open_store(options)
        if state.store is None and not options.no_store:
            print(f"compass: {state.status}", file=sys.stderr)
        try:
            return await _run(options, opened, state.store, args, t0)
        finally:
            await close_backend(opened.backend)
            if state.store is not None:
                state.store.close()

    return asyncio.run(go())


async def _run(options, opened, store, args, t0, out=None) -> int:
    out = out if out is not None else sys.stdout  # looked up now: stdout may have been replaced
    from compass_tui.service import run_investigation

    def on_event(ev) -> None:
        if getattr(args, "events", False):
            out.write(ev.model_dump_json() + "\n")
            out.flush()

    report, memory_error = await run_investigation(options, opened, store, on_event=on_event, t0=t0)
    if report is None:
        return _err("the investigation produced no report")
    if memory_error:
        print(f"compass: {memory_error}", file=sys.stderr)
    from compass_tui.logs import failure_notices

    for line in failure_notices(opened.backend):  # a source that failed midway: one line each
        print(f"compass: {line}", file=sys.stderr)
    if getattr(args, "json", False):
        out.write(json.dumps(report.to_json_dict(), indent=2) + "\n")
    elif not getattr(args, "events", False):
        out.write(summary_text(report) + "\n")
    return EXIT_OK

"""``compass investigate``: one investigation headless, on a bundle or on an alert against the
configured live sources; prints the JSON report, a readable summary, or the event stream."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

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


def open_store(args):
    """The memory store, or None (with the reason on stderr) when off or unavailable."""
    if getattr(args, "no_store", False):
        return None
    try:
        from compass_tui.store import Store, StoreUnavailable
    except ImportError:
        return None
    path = getattr(args, "store", None)
    if path is None:
        try:
            from compass_tui.config import load_config

            cfg = load_config(getattr(args, "config", None))
            path = getattr(cfg, "store_path", None)
        except Exception:
            path = None
    try:
        return Store.open(path)
    except StoreUnavailable as e:
        print(f"compass: memory unavailable: {e}", file=sys.stderr)
        return None


def _runbooks(args):
    """The configured runbooks (shipped, personal, config folders); a bad config reads none."""
    from compass_tui.config import ConfigError, load_config
    from compass_tui.runbooks import load_configured

    try:
        cfg = load_config(getattr(args, "config", None))
    except ConfigError:
        cfg = None
    return load_configured(cfg)


async def unreachable(backend) -> str | None:
    """Why no live source can answer (one line), or None when at least one can. Bundles
    always can."""
    states = getattr(backend, "server_states", None)
    if not callable(states):
        return None
    await backend.start()
    servers = states()
    if not servers:
        return "no data source reachable: no MCP server is configured (run `compass init`)"
    if any(getattr(st, "status", None) == "ready" for st in servers):
        return None
    reasons = "; ".join(f"{st.name}: {st.error or st.status}" for st in servers)
    return f"no data source reachable: {reasons}"


async def _run(request, backend, args, store, out=None) -> int:
    out = out if out is not None else sys.stdout  # looked up now: stdout may have been replaced
    from compass_tui.engine import Budget, EngineDeps, investigate, signature_of
    from compass_tui.models import Finished

    why = await unreachable(backend)
    if why is not None:
        await backend.aclose()
        return _err(why)

    budget = Budget()
    if getattr(args, "deadline", None):
        budget.deadline_s = float(args.deadline)
    # a rerun of the same incident (same alert, same window) is the same investigation
    inv_id = store.investigation_id_for(request) if store is not None else None
    deps = EngineDeps(backend=backend, budget=budget, memory=store.advisor(exclude=inv_id) if store is not None else None,
                      grafana_url=getattr(args, "grafana_url", None), t0=getattr(args, "t0", None),
                      runbooks=_runbooks(args), investigation_id=inv_id)
    from compass_tui.report.timeline import Timeline

    report = None
    timeline = Timeline()
    async for ev in investigate(request, deps):
        timeline.observe(ev)
        if getattr(args, "events", False):
            out.write(ev.model_dump_json() + "\n")
            out.flush()
        if isinstance(ev, Finished):
            report = ev.report
    await backend.aclose()
    if report is None:
        return _err("the investigation produced no report")
    if store is not None:
        try:
            store.record_investigation(report, signature_of(report), request)
        except Exception as e:
            print(f"compass: could not record the investigation: {e}", file=sys.stderr)
    if getattr(args, "json", False):
        out.write(json.dumps(report.to_json_dict(), indent=2) + "\n")
    elif not getattr(args, "events", False):
        out.write(summary_text(report) + "\n")
    return EXIT_OK


def run(args) -> int:
    import time

    args.t0 = time.perf_counter()
    from compass_tui.engine.request import RequestError, load_alert_file, request_from_alert, request_from_bundle_meta

    if getattr(args, "bundle", None):
        from compass_tui.telemetry.bundle import BundleError, open_bundle

        try:
            backend = open_bundle(args.bundle)
        except BundleError as e:
            return _err(str(e))
        except OSError as e:
            return _err(f"{args.bundle}: {e.strerror or e}")
        try:
            request = request_from_bundle_meta(backend.manifest, backend.incident)
        except RequestError as e:
            return _err(f"{Path(args.bundle).name}: incident.json: {e}")
        if getattr(args, "baseline", None):
            request.window_start = max(request.window_start, request.started_at - float(args.baseline))
    elif getattr(args, "alert", None):
        try:
            payload = load_alert_file(args.alert, sys.stdin.read() if args.alert == "-" else None)
            import time

            from compass_tui.config import ConfigError, load_config

            cfg = load_config(getattr(args, "config", None))
            baseline = args.baseline or getattr(cfg, "baseline_s", None)
            request = request_from_alert(payload, baseline_s=baseline, now=time.time())
        except RequestError as e:
            return _err(str(e))
        except ConfigError as e:
            return _err(str(e))
        try:
            from compass_tui.live_sources import open_live_backend

            backend = open_live_backend(cfg, window=(request.window_start, request.window_end))
        except Exception as e:
            return _err(f"no data source reachable: {e}")
        args.grafana_url = cfg.deep_link_base() if hasattr(cfg, "deep_link_base") else getattr(cfg, "grafana_url", None)
    else:
        return _err("say what to investigate: --bundle PATH or --alert FILE ('-' for stdin)")
    store = open_store(args)
    try:
        return asyncio.run(_run(request, backend, args, store))
    finally:
        if store is not None:
            store.close()

"""``compass runbook test FILE --bundle B``, ``compass runbook new`` and ``compass runbook
list``: write, try and see the engineer's own checks (docs/runbooks.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

TEMPLATE = '''\
# A COMPASS runbook: one check of yours, run beside COMPASS's own agents on every matching
# alert, through the same query budget (read-only), and put through the same disproof
# (did it start before the symptom? is it on the alerting path? did it really move?).
# Docs: docs/runbooks.md. Try it: compass runbook test {path} --bundle INCIDENT.tar.gz

name = "{name}"

# The cause it points to: a catalog fault (db_connection_pool_exhaustion, bad_deploy, ...)
# or your own, as other:<slug>.
fault = "other:{slug}"

# The culprit: {{label}} of the series that fired (e.g. "{{consumergroup}}"), {{alert}} for the
# alerting service, or a fixed name. Left out: the series' service/job/app label, else the
# alerting service.
# service = "{{service}}"

# What fixes it, shown with the evidence.
note = "What to check and how to fix it."

# How strongly it proposes its cause before disproof (0-1, default 0.8).
# confidence = 0.8

# When it applies: every given field must match; globs; a list means any of them.
# Left out: every alert.
# [when]
# alertname = ["*Latency*", "*Error*"]
# service = ["checkout*", "payments"]
# labels = {{ severity = ["critical", "page"] }}

# The queries, run over the investigation window. Each may carry a condition on what it
# returned; the runbook fires when all of them hold (match = "any": when one does).
# Stats of a PromQL query, per series, over the part of the window after the baseline:
#   max min mean last; baseline (median before); rise (max - baseline);
#   drop (baseline - min); ratio (max / baseline)
# Of a LogQL query: lines, baseline_lines, ratio (rate after / rate before).
# Of a trace search: spans, baseline_spans, ratio.
# A condition: STAT OP NUMBER [and STAT OP NUMBER ...], OP one of > >= < <= == !=.
[[query]]
id = "signal"
promql = 'sum by (service) (rate(my_errors_total[5m]))'
condition = "max > 1 and ratio >= 5"

# [[query]]
# id = "logs"
# logql = '{{service_name=~".+"}} |= "my error text"'
# condition = "lines > 10"

# [[query]]
# id = "failed_spans"
# traceql = '{{ resource.service.name = "checkout" && status = error }}'
# condition = "spans > 20 and ratio >= 3"
'''


def run(args: argparse.Namespace) -> int:
    """Dispatch ``compass runbook ACTION``."""
    action = args.runbook_command
    if action == "draft":
        from compass_tui.commands.postmortem import run_draft

        return run_draft(args)
    return {"test": run_test, "new": run_new, "list": run_list}[action](args)


def _err(msg: str) -> int:
    print(f"compass runbook: {msg}", file=sys.stderr)
    return 2


def _slug(name: str) -> str:
    import re

    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "my-check"


def run_new(args: argparse.Namespace) -> int:
    """Write a commented template (to the personal folder unless --out), print where."""
    from compass_tui.runbooks import personal_dir

    name = (getattr(args, "name", None) or "My check").strip()
    slug = _slug(name)
    out = Path(args.out).expanduser() if getattr(args, "out", None) else personal_dir() / f"{slug}.toml"
    if str(out) == "-":
        sys.stdout.write(TEMPLATE.format(name=name, slug=slug, path="FILE"))
        return 0
    if out.exists() and not getattr(args, "force", False):
        return _err(f"{out}: already exists (use --force to overwrite, or --out FILE)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(TEMPLATE.format(name=name, slug=slug, path=out), encoding="utf-8")
    except OSError as e:
        return _err(f"{out}: cannot write: {e.strerror or e}")
    print(f"wrote {out}")
    print(f"edit it, then: compass runbook test {out} --bundle INCIDENT")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """The runbooks COMPASS would run, and the files it cannot load."""
    from compass_tui.config import ConfigError, load_config
    from compass_tui.runbooks import configured_dirs, load_dirs

    try:
        cfg = load_config(getattr(args, "config", None))
    except ConfigError as e:
        return _err(str(e))
    dirs = configured_dirs(cfg)
    rbs = load_dirs(dirs)
    print("folders: " + ", ".join(str(d) + ("" if d.is_dir() else " (absent)") for d in dirs))
    for rb in rbs.runbooks:
        print(f"  {rb.name:<32} {rb.fault:<36} {rb.path}" + ("  [draft]" if rb.draft else ""))
    for e in rbs.errors:
        print(f"  error: {e}")
    return 0


def _fmt_t(t: float | None) -> str:
    from compass_tui.engine.request import format_time

    return "-" if t is None else format_time(t)


def run_test(args: argparse.Namespace) -> int:
    """Run one runbook on a bundle: each query with what it returned, whether each
    condition held, whether the runbook fired, and where its hypothesis ranked."""
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.engine.request import RequestError, request_from_bundle_meta
    from compass_tui.runbooks import RunbookError, RunbookSet, fmt_stats, load_file
    from compass_tui.telemetry.bundle import BundleError, open_bundle

    try:
        rb = load_file(args.file)
    except RunbookError as e:
        print(str(e), file=sys.stderr)
        return 2
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
    rbs = RunbookSet(runbooks=[rb])
    report = asyncio.run(_run(run_to_report, request, EngineDeps(backend=backend, runbooks=rbs), backend))
    res = rbs.results.get(rb.name)
    print(f"{rb.label}")
    print(f"incident: {request.title} ({request.alertname or 'no alertname'} on {request.service or 'unknown service'}, "
          f"{_fmt_t(request.started_at)})")
    if res is None:
        print("not run (see degraded below)")
    elif not res.applies:
        print(f"does not apply: [when] does not match alert {request.alertname!r} on {request.service!r}")
    else:
        for o in res.queries:
            q = o.query
            print(f"\nquery {q.id} ({q.kind}, {Path(rb.path).name}:{q.line}): {q.text}")
            if o.status in ("error", "skipped"):
                print(f"  {o.status}: {o.error}")
                continue
            print(f"  {o.status}, {len(o.series)} series" if q.kind == "promql" else f"  {o.status}")
            for s in o.series[:20]:
                where = ", ".join(f"{k}={v}" for k, v in sorted(s.labels.items())) or "(all)"
                verdict = ""
                if q.condition is not None:
                    verdict = f"  -> `{q.condition.text}` {'HOLDS' if s.held else 'does not hold'}"
                    if s.held and s.onset is not None:
                        verdict += f" from {_fmt_t(s.onset)}"
                    if s.chronic:
                        verdict += " (but it already held before the incident)"
                print(f"  {where}: {fmt_stats(s.stats)}{verdict}")
            if len(o.series) > 20:
                print(f"  ... {len(o.series) - 20} more series")
            if not o.series:
                print("  nothing returned" + (f": `{q.condition.text}` cannot hold" if q.condition else ""))
    print()
    mine = [h for h in report.hypotheses if h.agent == "runbook"]
    if res is not None and res.fired:
        print(f"FIRED: {rb.fault} on {', '.join(res.services) or '?'}")
        for h in mine:
            print(f"  rank {h.rank} of {len(report.hypotheses)}: {h.fault}@{h.service} {h.status} {h.confidence:.2f}")
            for d in h.disproof:
                mark = {"survived": "ok", "failed": "FAILED", "skipped": "skipped"}[d.result]
                print(f"    {d.strategy:<22} {mark:<8} {d.detail}")
        top = report.hypotheses[0] if report.hypotheses else None
        if top is not None and top.agent != "runbook":
            print(f"  ranked first instead: {top.fault}@{top.service} {top.status} {top.confidence:.2f}")
    else:
        print(f"did not fire{': ' + res.why if res is not None and res.why else ''}")
    for d in report.degraded:
        if d.signal.startswith("runbook"):
            print(f"degraded: {d.reason}")
    return 0 if res is not None and res.fired else 1


async def _run(fn, request, deps, backend):
    try:
        return await fn(request, deps)
    finally:
        await backend.aclose()

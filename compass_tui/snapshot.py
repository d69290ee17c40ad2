"""``compass snapshot``: capture an incident window from the live sources into a bundle
(format 1), for later review, sharing, or replay.

Metrics are the raw samples of every discovered metric over the window (a range-vector
instant query keeps the original timestamps), written as OpenMetrics that promtool loads.
Logs are every stream's lines, read newest first in pages because Grafana's server caps
lines per call. Traces are the spans the trace search finds. Annotations as listed. No
secret from the config ever reaches the bundle.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compass_tui.telemetry.values import prom_value
from compass_tui.config import Config
from compass_tui.telemetry.backend import Backend, LogLine
from compass_tui.telemetry.mcp_backend import McpBackend, rfc3339

MAX_LOG_LINES = 500_000
"""Log lines one snapshot keeps at most."""
LOG_PAGE = 5000
"""Lines asked for per call (servers may answer fewer; paging continues)."""
MAX_TRACE_SPANS = 1_000_000
STREAM_LABEL_ORDER = ("service_name", "service", "app", "job", "container", "namespace")


class SnapshotError(Exception):
    """A snapshot that cannot be taken; one line. ``usage`` marks bad input (exit 2)."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage


@dataclass
class SnapshotSummary:
    out: str
    files: dict[str, str] = field(default_factory=dict)
    """file name -> what it holds (counts)."""
    notes: list[str] = field(default_factory=list)
    """What could not be captured, and why."""

    def text(self) -> str:
        lines = [f"wrote {self.out}"]
        for name, what in self.files.items():
            lines.append(f"  {name}: {what}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)


def default_step(start: float, end: float) -> float:
    """About 300 points over the window, on a round step of at least 15 s."""
    span = max(end - start, 60.0)
    return float(max(15.0, round(span / 300.0 / 15.0) * 15.0))


def synthesised_incident(start: float, end: float) -> dict[str, Any]:
    """An incident.json for a window without an alert: it 'fires' 10 minutes before the end
    (or at the midpoint of a shorter window)."""
    fired = max(start + (end - start) / 2, end - 600)
    return {
        "version": "4",
        "status": "firing",
        "receiver": "compass-snapshot",
        "groupLabels": {},
        "commonLabels": {"alertname": "Snapshot"},
        "commonAnnotations": {"summary": f"snapshot of {rfc3339(start)} to {rfc3339(end)}"},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Snapshot"},
                "annotations": {"summary": f"snapshot of {rfc3339(start)} to {rfc3339(end)}"},
                "startsAt": rfc3339(fired),
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


# ---------------------------------------------------------------- OpenMetrics


_NAME_OK = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_OK = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _om_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _om_ts(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else f"{t:.3f}".rstrip("0").rstrip(".")


def write_openmetrics(series_by_name: dict[str, list[Any]], fh) -> int:
    """Write series (``Series`` with ``__name__`` in labels) grouped by metric name, each in
    time order, ending ``# EOF``. Counters (``*_total``) get a ``# TYPE`` line; other
    families stay untyped, which promtool accepts. Returns samples written."""
    n = 0
    for name in sorted(series_by_name):
        if not _NAME_OK.match(name):
            continue  # a name OpenMetrics cannot carry (UTF-8 metric names) is skipped
        group = series_by_name[name]
        if name.endswith("_total") and len(name) > len("_total"):
            fh.write(f"# TYPE {name[:-6]} counter\n")
        for s in sorted(group, key=lambda s: sorted(s.labels.items())):
            labels = {k: v for k, v in s.labels.items() if k != "__name__" and _LABEL_OK.match(k)}
            body = ",".join(f'{k}="{_om_escape(v)}"' for k, v in sorted(labels.items()))
            head = f"{name}{{{body}}}" if body else name
            order = sorted(range(len(s.t)), key=lambda i: s.t[i])
            last = None
            for i in order:
                t = float(s.t[i])
                if last is not None and t <= last:
                    continue  # OpenMetrics needs strictly increasing timestamps per series
                last = t
                fh.write(f"{head} {prom_value(float(s.v[i]))} {_om_ts(t)}\n")
                n += 1
    fh.write("# EOF\n")
    return n


# ---------------------------------------------------------------- capture


async def _capture_metrics(backend: Backend, start: float, end: float, step: float, notes: list[str]) -> dict[str, list]:
    names = await backend.metric_names()
    if not names:
        return {}
    rng_ms = int(math.ceil((end - start) * 1000)) + 1  # (end - range, end] must include start

    async def one(name: str):
        sel = f'{{__name__="{name}"}}' if not _NAME_OK.match(name) else name
        res = await backend.query_instant(f"{sel}[{rng_ms}ms]", end)
        if res.status == "error":
            # a source that cannot answer a range-vector instant query gets the step grid instead
            res2 = await backend.query_range(sel, start, end, step)
            if res2.status == "error":
                notes.append(f"metric {name} skipped: {res.error}")
                return name, []
            res = res2
        if res.truncated:
            notes.append(f"metric {name}: only the first {len(res.series)} series were kept")
        out = []
        for s in res.series:
            mask = (s.t >= start - 1e-9) & (s.t <= end + 1e-9)
            if mask.any():
                s.labels.setdefault("__name__", name)
                s.t, s.v = s.t[mask], s.v[mask]
                out.append(s)
        return name, out

    got = await asyncio.gather(*(one(n) for n in names))
    by_name: dict[str, list] = {}
    for name, series in got:
        for s in series:
            by_name.setdefault(s.labels.get("__name__", name), []).append(s)
    return by_name


async def _capture_logs(backend: Backend, start: float, end: float, notes: list[str]) -> dict[tuple, list[LogLine]]:
    labels = await backend.log_label_names()
    if not labels:
        return {}
    ordered = [l for l in STREAM_LABEL_ORDER if l in labels] + sorted(l for l in labels if l not in STREAM_LABEL_ORDER)
    streams: dict[tuple, dict[tuple[int, str], LogLine]] = {}
    total = 0
    for i, label in enumerate(ordered):
        # disjoint selectors: streams with this label, and none of the earlier ones
        parts = [f'{prev}=""' for prev in ordered[:i]] + [f'{label}=~".+"']
        selector = "{" + ", ".join(parts) + "}"
        page_end = end
        while True:
            res = await backend.query_logs(selector, start, page_end, LOG_PAGE)
            if res.status == "error":
                notes.append(f"logs {selector}: {res.error}")
                break
            new = 0
            for ln in res.lines:
                key = tuple(sorted(ln.labels.items()))
                bucket = streams.setdefault(key, {})
                if (ln.t_ns, ln.line) not in bucket:
                    bucket[(ln.t_ns, ln.line)] = ln
                    new += 1
            total += new
            if total >= MAX_LOG_LINES:
                notes.append(f"logs: stopped at {MAX_LOG_LINES} lines")
                return {k: list(v.values()) for k, v in streams.items()}
            if not res.truncated or not res.lines:
                break
            oldest = min(ln.t_ns for ln in res.lines)
            # the next page ends just after the oldest line seen (end is exclusive in Loki);
            # no new line means one microsecond holds more lines than a page: give up there
            nxt = (oldest + 1000) / 1e9
            if new == 0 or nxt >= page_end:
                notes.append(f"logs {selector}: more lines share one instant than a page holds; some were left out")
                break
            page_end = nxt
    return {k: list(v.values()) for k, v in streams.items()}


async def capture(
    backend: Backend,
    out: str | Path,
    *,
    window: tuple[float, float],
    step: float,
    incident: dict[str, Any],
    title: str,
) -> SnapshotSummary:
    """Capture ``window`` from any Backend into a bundle at ``out`` (directory, or a
    ``.tar.gz`` when the name says so)."""
    from compass_tui.replay import otlp_resource_spans

    start, end = window
    out_p = Path(out)
    summary = SnapshotSummary(out=str(out_p))
    notes = summary.notes
    caps = await backend.capabilities()
    for sig, why in caps.missing.items():
        notes.append(f"{sig} not captured: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="compass-snapshot-"))
    try:
        manifest = {
            "format": "compass-bundle/1",
            "title": title,
            "window": {"start": rfc3339(start), "end": rfc3339(end)},
            "step_seconds": int(step) if float(step).is_integer() else step,
        }
        (tmp / "bundle.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        summary.files["bundle.json"] = f"window {manifest['window']['start']} to {manifest['window']['end']}, step {step:g}s"
        (tmp / "incident.json").write_text(json.dumps(incident, indent=1) + "\n", encoding="utf-8")
        summary.files["incident.json"] = str(incident.get("commonLabels", {}).get("alertname") or "alert")

        if caps.metrics:
            by_name = await _capture_metrics(backend, start, end, step, notes)
            if by_name:
                with open(tmp / "metrics.om", "w", encoding="utf-8") as fh:
                    n = write_openmetrics(by_name, fh)
                summary.files["metrics.om"] = f"{sum(len(v) for v in by_name.values())} series, {n} samples of {len(by_name)} metrics"
            else:
                notes.append("metrics: no series in the window")
        if caps.logs:
            streams = await _capture_logs(backend, start, end, notes)
            if streams:
                body = {
                    "streams": [
                        {"stream": dict(key), "values": [[str(ln.t_ns), ln.line] for ln in sorted(lines, key=lambda x: x.t_ns)]}
                        for key, lines in sorted(streams.items())
                    ]
                }
                (tmp / "logs.json").write_text(json.dumps(body), encoding="utf-8")
                summary.files["logs.json"] = f"{len(streams)} streams, {sum(len(v) for v in streams.values())} lines"
            else:
                notes.append("logs: no lines in the window")
        if caps.traces:
            res = await backend.search_traces(start, end, limit=MAX_TRACE_SPANS)
            if res.status == "error":
                notes.append(f"traces: {res.error}")
            elif res.spans:
                if res.truncated:
                    notes.append("traces: the search was capped; not every trace is in the bundle")
                (tmp / "traces.json").write_text(json.dumps({"resourceSpans": otlp_resource_spans(res.spans)}), encoding="utf-8")
                summary.files["traces.json"] = f"{len({s.trace_id for s in res.spans})} traces, {len(res.spans)} spans"
        if caps.annotations:
            res = await backend.annotations(start, end)
            if res.status == "error":
                notes.append(f"annotations: {res.error}")
            else:
                items = []
                for a in res.annotations:
                    item: dict[str, Any] = {"time": int(round(a.time * 1000)), "tags": a.tags, "text": a.text}
                    if a.time_end is not None:
                        item["timeEnd"] = int(round(a.time_end * 1000))
                    items.append(item)
                (tmp / "annotations.json").write_text(json.dumps(items, indent=1), encoding="utf-8")
                summary.files["annotations.json"] = f"{len(items)} annotations"
        _place(tmp, out_p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _place(tmp: Path, out: Path) -> None:
    name = out.name
    if name.endswith(".tar.gz") or name.endswith(".tgz"):
        out.parent.mkdir(parents=True, exist_ok=True)
        root = name[: -len(".tar.gz")] if name.endswith(".tar.gz") else name[: -len(".tgz")]
        with tarfile.open(out, "w:gz") as tar:
            for p in sorted(tmp.iterdir()):
                tar.add(p, arcname=f"{root}/{p.name}")
        return
    if out.exists() and any(out.iterdir()):
        raise SnapshotError(f"{out}: exists and is not empty (choose a new directory)", usage=True)
    out.mkdir(parents=True, exist_ok=True)
    for p in tmp.iterdir():
        shutil.copy2(p, out / p.name)


async def take_snapshot(
    config: Config,
    out: str | Path,
    *,
    alert: dict[str, Any] | None = None,
    window: tuple[float, float] | None = None,
    step_s: float | None = None,
    backend: Backend | None = None,
) -> SnapshotSummary:
    """Snapshot the window of an alert payload (or an explicit window) from the configured
    live sources (or ``backend``) into a bundle at ``out``."""
    from compass_tui.engine.request import RequestError, request_from_alert

    out_p = Path(out)
    if out_p.exists() and out_p.is_dir() and any(out_p.iterdir()):
        raise SnapshotError(f"{out_p}: exists and is not empty (choose a new directory)", usage=True)
    if alert is not None:
        try:
            req = request_from_alert(alert, step_s=step_s, baseline_s=config.baseline_s, now=time.time())
        except RequestError as e:
            raise SnapshotError(str(e), usage=True) from None
        win = (req.window_start, req.window_end)
        step = req.step_s
        incident = alert if "alerts" in alert else {"version": "4", "status": "firing", "alerts": [alert]}
        title = req.title
    elif window is not None:
        win = window
        step = step_s or default_step(*window)
        incident = synthesised_incident(*window)
        title = f"snapshot {rfc3339(window[0])}"
    else:
        raise SnapshotError("snapshot needs an alert or a window", usage=True)
    own = backend is None
    if backend is None:
        if not config.enabled_servers():
            raise SnapshotError("no MCP servers configured: run `compass init` and `compass doctor`", usage=True)
        backend = McpBackend.from_config(config, window=win)
    try:
        return await capture(backend, out_p, window=win, step=step, incident=incident, title=title)
    finally:
        if own:
            await backend.aclose()

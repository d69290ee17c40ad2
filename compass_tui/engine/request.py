"""Turning what fired (an Alertmanager webhook payload, a bundle, the engineer's words) into
an InvestigationRequest with a window long enough for a baseline."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from compass_tui.models import InvestigationRequest

SERVICE_LABELS = ("service", "service_name", "job", "app", "container")
DEFAULT_BASELINE_S = 3600.0
"""How far before the alert the window starts when nothing says otherwise."""
AFTER_ALERT_S = 600.0
"""How far past the alert the window runs (capped at now), so the symptom is visible."""


class RequestError(ValueError):
    """The alert payload cannot be read; the message is one line."""


def parse_time(value: str) -> float:
    """RFC3339 (with Z, offsets, fractional seconds of any length) to unix seconds."""
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    # Python 3.11's fromisoformat accepts at most 6 fractional digits
    if "." in v:
        head, _, tail = v.partition(".")
        digits = ""
        rest = tail
        while rest and rest[0].isdigit():
            digits += rest[0]
            rest = rest[1:]
        v = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def format_time(t: float) -> str:
    """Unix seconds to RFC3339 UTC with a Z."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_service(labels: dict[str, str]) -> str | None:
    """The service an alert names, by the same label order as telemetry."""
    for key in SERVICE_LABELS:
        if labels.get(key):
            return labels[key]
    return None


def _pick_alert(payload: dict[str, Any]) -> dict[str, Any]:
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        # A single alert object (not wrapped in a webhook payload) is accepted too.
        if "labels" in payload:
            return payload
        raise RequestError("the alert payload has no alerts[] (expected an Alertmanager webhook payload)")
    firing = [a for a in alerts if isinstance(a, dict) and a.get("status", "firing") == "firing"]
    candidates = firing or [a for a in alerts if isinstance(a, dict)]
    if not candidates:
        raise RequestError("alerts[] holds no alert objects")
    # The earliest firing alert is the one closest to the onset.
    def start_of(a: dict[str, Any]) -> float:
        try:
            return parse_time(str(a.get("startsAt", "")))
        except ValueError:
            return float("inf")

    return min(candidates, key=start_of)


def request_from_alert(
    payload: dict[str, Any],
    *,
    window: tuple[float, float] | None = None,
    step_s: float | None = None,
    baseline_s: float | None = None,
    now: float | None = None,
) -> InvestigationRequest:
    """Build a request from an Alertmanager webhook payload (version 4).

    ``window`` (a bundle's) wins; otherwise the window runs from ``baseline_s`` before the
    alert's ``startsAt`` to a little after it, capped at ``now``: alerts in the past work too.
    """
    if not isinstance(payload, dict):
        raise RequestError("the alert payload is not a JSON object")
    alert = _pick_alert(payload)
    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    common = {str(k): str(v) for k, v in (payload.get("commonLabels") or {}).items()}
    merged = {**common, **labels}
    annotations = {**(payload.get("commonAnnotations") or {}), **(alert.get("annotations") or {})}
    starts = alert.get("startsAt")
    if not starts:
        raise RequestError("the alert has no startsAt")
    try:
        started_at = parse_time(str(starts))
    except ValueError:
        raise RequestError(f"the alert's startsAt is not RFC3339: {starts!r}") from None
    if window is not None:
        w_start, w_end = window
    else:
        before = DEFAULT_BASELINE_S if baseline_s is None else baseline_s
        w_start = started_at - before
        w_end = started_at + AFTER_ALERT_S
        if now is not None:
            w_end = min(w_end, now)
        w_end = max(w_end, started_at)
    if step_s is None:
        # about 300 points over the window, on a round step of at least 15 s
        span = max(w_end - w_start, 60.0)
        step_s = max(15.0, round(span / 300.0 / 15.0) * 15.0)
    service = alert_service(merged)
    alertname = merged.get("alertname")
    title = str(annotations.get("summary") or (f"{alertname} on {service}" if service else alertname) or "incident")
    return InvestigationRequest(
        title=title,
        service=service,
        alertname=alertname,
        labels=merged,
        started_at=started_at,
        window_start=w_start,
        window_end=w_end,
        step_s=float(step_s),
    )


def load_alert_file(path: str, stdin_text: str | None = None) -> dict[str, Any]:
    """Read an alert payload from a file path, or from stdin text when the path is '-'."""
    try:
        if path == "-":
            text = stdin_text if stdin_text is not None else ""
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise RequestError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        name = "stdin" if path == "-" else path
        raise RequestError(f"{name}:{e.lineno}: not valid JSON: {e.msg}") from None


def request_from_bundle_meta(manifest: dict[str, Any], incident: dict[str, Any]) -> InvestigationRequest:
    """A bundle's incident.json with its manifest's window and step."""
    window = None
    w = manifest.get("window") if isinstance(manifest, dict) else None
    if isinstance(w, dict) and w.get("start") and w.get("end"):
        try:
            window = (parse_time(str(w["start"])), parse_time(str(w["end"])))
        except ValueError:
            raise RequestError(f"bundle.json: window is not RFC3339: {w!r}") from None
    step = manifest.get("step_seconds") if isinstance(manifest, dict) else None
    req = request_from_alert(incident, window=window, step_s=float(step) if step else None)
    if manifest.get("title") and not req.title:
        req.title = str(manifest["title"])
    return req

"""Live telemetry for an investigation: the MCP backend over the configured servers, and the
alerts firing right now (Alertmanager's API, or Grafana alerting through its MCP server)."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from compass_tui.config import Config
from compass_tui.telemetry.mcp_backend import McpBackend

ALERTMANAGER_TIMEOUT_S = 10.0


class LiveSourceError(RuntimeError):
    """A live source could not be asked; the message is one line naming it."""


def open_live_backend(config: Config, window: tuple[float, float] | None = None) -> McpBackend:
    """The Backend over every enabled MCP server of the config. Servers start on the first
    verb (or ``await backend.start()``); close with ``await backend.aclose()`` from the
    same event loop. ``window`` (unix seconds) bounds discovery calls that take a range."""
    return McpBackend.from_config(config, window=window)


async def fit_step_to_samples(backend: Any, request: Any) -> float | None:
    """Raise a live request's step to a whole number of the sources' scrape intervals.

    A step finer than the scrape interval only repeats each sample (Prometheus's lookback)
    and leaves a rate window of a few steps with one sample, so the series the engine judges
    are not the ones a bundle of the same data gives (its step is the interval). Returns the
    interval found, or None (the request unchanged) when the backend cannot tell."""
    probe = getattr(backend, "sample_interval", None)
    if probe is None:
        return None
    try:
        interval = await probe(request.started_at)
    except Exception:  # the step stays as asked: a probe must not stop the investigation
        return None
    if not interval or interval <= 0:
        return None
    ratio = float(request.step_s) / interval
    # a step already a whole number of scrapes (within jitter) stays; otherwise round up
    scrapes = max(1, round(ratio) if abs(ratio - round(ratio)) < 0.05 else math.ceil(ratio))
    request.step_s = float(scrapes * interval)
    return interval


async def firing_alerts(config: Config) -> list[dict[str, Any]]:
    """Alerts firing now, each shaped like an alert of an Alertmanager webhook payload
    (``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``,
    ``fingerprint``), oldest first. Wrap one as ``{"alerts": [alert]}`` for
    ``request_from_alert``. Sources: ``alertmanager_url``, then any MCP server with
    Grafana's ``alerting_rules_read`` tool. Raises LiveSourceError when no source can tell."""
    errors: list[str] = []
    if config.alertmanager_url:
        try:
            alerts = await asyncio.to_thread(_alertmanager_alerts, config.alertmanager_url)
            return sorted(alerts, key=lambda a: a.get("startsAt") or "")
        except LiveSourceError as e:
            errors.append(str(e))
    servers = config.enabled_servers()
    if servers:
        backend = McpBackend(servers, max_concurrency=config.mcp_max_concurrency, retries=config.mcp_retries)
        try:
            await backend.start()
            for st in backend.server_states():
                if st.status != "ready":
                    # a server that could not start is the real reason no alert can be read
                    errors.append(f"{st.name} did not start: {st.error or st.status}")
                    continue
                if "alerting_rules_read" not in st.tools:
                    continue
                out = await backend.call_tool(
                    st.name, "alerting_rules_read", {"operation": "list", "states": ["firing"], "limit_alerts": 200}
                )
                if out.error:
                    errors.append(out.error)
                    continue
                return sorted(grafana_firing(out.payload), key=lambda a: a.get("startsAt") or "")
        finally:
            await backend.aclose()
    if errors:
        raise LiveSourceError("; ".join(errors))
    raise LiveSourceError(
        "no source of firing alerts: set alertmanager_url, or configure mcp-grafana (alerting_rules_read)"
    )


def _alertmanager_alerts(base_url: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"active": "true", "silenced": "false", "inhibited": "false"})
    url = f"{base_url.rstrip('/')}/api/v2/alerts?{params}"
    try:
        with urllib.request.urlopen(url, timeout=ALERTMANAGER_TIMEOUT_S) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as e:
        raise LiveSourceError(f"alertmanager_url {base_url}: HTTP {e.code} from /api/v2/alerts") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise LiveSourceError(f"alertmanager_url {base_url}: cannot connect: {reason}") from None
    except json.JSONDecodeError:
        raise LiveSourceError(f"alertmanager_url {base_url}: /api/v2/alerts did not answer JSON") from None
    if not isinstance(body, list):
        raise LiveSourceError(f"alertmanager_url {base_url}: /api/v2/alerts answered {type(body).__name__}, expected a list")
    out = []
    for a in body:
        if not isinstance(a, dict):
            continue
        state = (a.get("status") or {}).get("state", "active") if isinstance(a.get("status"), dict) else a.get("status")
        if state not in ("active", "firing", None):
            continue
        out.append(
            {
                "status": "firing",
                "labels": {str(k): str(v) for k, v in (a.get("labels") or {}).items()},
                "annotations": {str(k): str(v) for k, v in (a.get("annotations") or {}).items()},
                "startsAt": a.get("startsAt"),
                "endsAt": a.get("endsAt", "0001-01-01T00:00:00Z"),
                "generatorURL": a.get("generatorURL", ""),
                "fingerprint": a.get("fingerprint", ""),
            }
        )
    return out


def grafana_firing(payload: Any) -> list[dict[str, Any]]:
    """Firing alert instances out of Grafana's alert-rule listing (shapes vary by version:
    rules with ``alerts`` instances carrying ``labels``, ``annotations``, ``state``, ``activeAt``)."""
    rules: list[Any] = []
    if isinstance(payload, list):
        rules = payload
    elif isinstance(payload, dict):
        for key in ("rules", "data", "items", "result"):
            if isinstance(payload.get(key), list):
                rules = payload[key]
                break
        else:
            groups = payload.get("groups")
            if isinstance(groups, list):
                for g in groups:
                    rules.extend((g or {}).get("rules") or [])
    out = []
    for r in rules:
        if not isinstance(r, dict):
            continue
        for inst in r.get("alerts") or []:
            if not isinstance(inst, dict):
                continue
            state = str(inst.get("state", "")).lower()
            if not state.startswith(("firing", "alerting")):
                continue
            labels = {str(k): str(v) for k, v in (inst.get("labels") or {}).items()}
            labels.setdefault("alertname", str(r.get("title") or r.get("name") or "alert"))
            out.append(
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {str(k): str(v) for k, v in (inst.get("annotations") or r.get("annotations") or {}).items()},
                    "startsAt": inst.get("activeAt") or inst.get("startsAt"),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": "",
                }
            )
    return out

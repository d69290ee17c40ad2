"""What the app investigates and with what: resolved from the command line before the first
paint (cheap), opened inside the investigation worker (the slow part: bundles, stores).

Every optional part (config, store, doctor, live alerts) is imported lazily and its failure
becomes a line in the health pane rather than a crash: the app must open whatever is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compass_tui.models import Event, InvestigationRequest

DEMO_BUNDLE = Path(__file__).resolve().parent.parent / "data" / "demo.tar.gz"
"""The built-in demo incident, shipped inside the package."""

THEMES = ("dark", "light", "high-contrast")

Investigate = Callable[..., AsyncIterator[Event]]


@dataclass
class Source:
    """Where the incident comes from, as the header says it."""

    kind: str
    """``bundle``, ``alert``, ``demo`` or ``live``."""
    path: str | None = None
    label: str = ""
    """One line for the header, e.g. ``demo incident (built-in bundle)``."""


@dataclass
class Opened:
    """The incident opened: the request, the backend to query, and what went wrong on the way."""

    request: InvestigationRequest
    backend: Any | None
    notes: list[str] = field(default_factory=list)


@dataclass
class AppOptions:
    """Everything the app needs, resolved from argparse without touching the slow parts."""

    source: Source
    theme: str = "dark"
    store_path: str | None = None
    no_store: bool = False
    config: Any | None = None
    config_error: str | None = None
    grafana_url: str | None = None
    budget: Any | None = None
    investigate: Investigate | None = None
    """The engine entry point; None means ``compass_tui.engine.investigate``."""
    stdin_text: str | None = None
    """The alert payload read from stdin before the app took over the terminal (``--alert -``)."""
    export_dir: Path = field(default_factory=Path.cwd)
    launched_at: float | None = None
    """``time.monotonic()`` when the command started: the engineer's wait is counted from it."""


class SourceError(Exception):
    """The incident cannot be opened; the message is one line."""


def _cfg_get(config: Any, *names: str) -> Any:
    """Read a config value by the first name that exists (attribute or mapping key)."""
    for name in names:
        if config is None:
            return None
        if isinstance(config, dict) and name in config:
            return config[name]
        if hasattr(config, name):
            return getattr(config, name)
    return None


def load_config(args: argparse.Namespace) -> tuple[Any | None, str | None]:
    """The user's config, or (None, reason) when it cannot be read (the app opens anyway)."""
    try:
        from compass_tui.config import load_config as read_config  # noqa: PLC0415
    except Exception as e:  # config support is optional for bundles and the demo
        return None, f"config support unavailable: {_one_line(e)}"
    try:
        return read_config(getattr(args, "config", None)), None
    except Exception as e:
        return None, _one_line(e)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _configured_live(config: Any) -> bool:
    """True when the config names at least one live source (MCP server, Prometheus...)."""
    enabled = getattr(config, "enabled_servers", None)
    if callable(enabled):
        try:
            return bool(enabled())
        except Exception:
            return False
    for name in ("sources", "servers", "mcp_servers", "mcp", "prometheus_url", "prometheus"):
        value = _cfg_get(config, name)
        if value:
            return True
    return False


def resolve_options(
    args: argparse.Namespace,
    *,
    demo: bool = False,
    investigate: Investigate | None = None,
    stdin_text: str | None = None,
) -> AppOptions:
    """Turn the parsed command line into AppOptions: cheap, no file is opened but the config."""
    config, config_error = load_config(args)
    theme = getattr(args, "theme", None) or _cfg_get(config, "theme") or "dark"
    if os.environ.get("NO_COLOR") is not None and not getattr(args, "theme", None):
        # Without colour, the high-contrast theme is the one whose meaning survives monochrome.
        theme = "high-contrast"
    if theme not in THEMES:
        theme = "dark"
    bundle = getattr(args, "bundle", None)
    alert = getattr(args, "alert", None)
    if demo:
        source = Source("demo", str(DEMO_BUNDLE), "demo incident (built-in bundle)")
    elif bundle:
        source = Source("bundle", bundle, f"bundle {Path(bundle).name}")
    elif alert:
        source = Source("alert", alert, f"alert {'stdin' if alert == '-' else Path(alert).name}")
    elif config is not None and _configured_live(config):
        source = Source("live", None, "live: first firing alert")
    elif config_error:
        source = Source("demo", str(DEMO_BUNDLE), "demo incident: the config could not be read (see Health)")
    else:
        source = Source("demo", str(DEMO_BUNDLE), "demo incident: nothing configured (run `compass init`)")
    store_path = getattr(args, "store", None) or _cfg_get(config, "store_path")
    return AppOptions(
        source=source,
        theme=theme,
        store_path=str(store_path) if store_path else None,
        no_store=bool(getattr(args, "no_store", False)),
        config=config,
        config_error=config_error,
        grafana_url=_grafana_url(config),
        budget=_budget_from(config),
        investigate=investigate,
        stdin_text=stdin_text,
        launched_at=getattr(args, "launched_at", None),
    )


def _grafana_url(config: Any) -> str | None:
    """Where Explore deep links point: the config's Grafana, else the first server's."""
    fn = getattr(config, "deep_link_base", None)
    if callable(fn):
        try:
            return fn()
        except Exception:
            return None
    return _cfg_get(config, "grafana_url")


def _budget_from(config: Any) -> Any | None:
    """The config's budget as an engine Budget (None: the engine's defaults)."""
    budget = _cfg_get(config, "budget")
    if budget is None:
        return None
    to_budget = getattr(budget, "to_budget", None)
    if callable(to_budget):
        try:
            return to_budget()
        except Exception:
            return None
    from compass_tui.engine.deps import Budget  # noqa: PLC0415

    if isinstance(budget, Budget):
        return budget
    fields = {}
    for name in ("max_queries", "max_llm_calls", "max_usd", "deadline_s"):
        value = _cfg_get(budget, name)
        if value is not None:
            fields[name] = value
    try:
        return Budget(**fields)
    except Exception:
        return None


async def open_source(options: AppOptions) -> Opened:
    """Open the incident: read the bundle or alert and build the request and backend.

    Blocking work (untarring, loading DuckDB) runs in a thread so the UI keeps painting.
    """
    from compass_tui.engine.request import (  # noqa: PLC0415
        RequestError,
        load_alert_file,
        request_from_alert,
        request_from_bundle_meta,
    )

    src = options.source
    if src.kind in ("bundle", "demo"):
        if src.kind == "demo" and not Path(src.path or "").exists():
            raise SourceError(f"the demo bundle is missing: {src.path}")
        try:
            from compass_tui.telemetry.bundle import open_bundle  # noqa: PLC0415
        except ImportError as e:
            raise SourceError(f"bundle support unavailable: {e}") from None
        try:
            # Loading a bundle (untar, DuckDB) takes a while: off the event loop, so the UI paints.
            result = await asyncio.to_thread(open_bundle, src.path)
            backend = await result if asyncio.iscoroutine(result) else result
        except Exception as e:
            raise SourceError(f"{src.path}: {_one_line(e)}") from None
        try:
            request = request_from_bundle_meta(backend.manifest, backend.incident)
        except RequestError as e:
            raise SourceError(f"{src.path}: {e}") from None
        return Opened(request=request, backend=backend)
    if src.kind == "alert":
        try:
            payload = load_alert_file(src.path or "-", options.stdin_text if src.path == "-" else None)
            request = request_from_alert(payload, baseline_s=_cfg_get(options.config, "baseline_s"), now=_now())
        except RequestError as e:
            raise SourceError(str(e)) from None
        backend, notes = await open_live_backend(options, request)
        return Opened(request=request, backend=backend, notes=notes)
    if src.kind == "live":
        request = await first_firing_alert(options)
        backend, notes = await open_live_backend(options, request)
        return Opened(request=request, backend=backend, notes=notes)
    raise SourceError(f"unknown source {src.kind}")


def _now() -> float:
    import time  # noqa: PLC0415

    return time.time()


async def open_live_backend(options: AppOptions, request: InvestigationRequest) -> tuple[Any | None, list[str]]:
    """The backend over the configured MCP servers, or (None, [why]) when there is none."""
    config = options.config
    if config is None or not _configured_live(config):
        return None, ["no live source configured (run `compass init`): queries cannot run"]
    try:
        from compass_tui.live_sources import open_live_backend as open_backend  # noqa: PLC0415
    except Exception as e:
        return None, [f"live sources unavailable: {_one_line(e)}"]
    try:
        backend = open_backend(config, window=(request.window_start, request.window_end))
        await backend.start()
    except Exception as e:
        return None, [f"live sources: {_one_line(e)}"]
    notes = []
    states = list(getattr(backend, "server_states", lambda: [])())
    for st in states:
        status = getattr(st, "status", "?")
        if status != "ready":
            notes.append(f"{getattr(st, 'name', '?')}: {status} {getattr(st, 'error', '') or ''}".strip())
    if states and len(notes) == len(states):
        # nothing can answer: say why rather than run an investigation of zero queries
        await backend.aclose()
        return None, [f"no data source reachable: {'; '.join(notes)}"]
    return backend, notes


async def first_firing_alert(options: AppOptions) -> InvestigationRequest:
    """The earliest alert firing now on the configured sources, as a request."""
    try:
        from compass_tui.live_sources import firing_alerts  # noqa: PLC0415
    except Exception as e:
        raise SourceError(f"live alerts unavailable: {_one_line(e)}") from None
    try:
        result = firing_alerts(options.config)
        alerts = await result if asyncio.iscoroutine(result) else result
    except Exception as e:
        raise SourceError(f"live alerts: {_one_line(e)}") from None
    if not alerts:
        raise SourceError("no alert is firing on the configured sources")
    first = alerts[0]
    if isinstance(first, InvestigationRequest):
        return first
    from compass_tui.engine.request import request_from_alert  # noqa: PLC0415

    return request_from_alert({"alerts": [first]}, baseline_s=_cfg_get(options.config, "baseline_s"), now=_now())


@dataclass
class StoreState:
    """The memory as the app sees it: open, off, or unavailable with a reason."""

    store: Any | None = None
    status: str = "memory off"


def open_store(options: AppOptions) -> StoreState:
    """Open the memory; a locked, corrupt or newer file gives a reason, never an exception."""
    if options.no_store:
        return StoreState(None, "memory off (--no-store)")
    try:
        from compass_tui.store import Store, StoreUnavailable  # noqa: PLC0415
    except Exception as e:
        return StoreState(None, f"memory unavailable: {_one_line(e)}")
    try:
        store = Store.open(options.store_path) if options.store_path else Store.open(None)
    except StoreUnavailable as e:
        return StoreState(None, f"memory unavailable: {_one_line(e)}")
    except Exception as e:  # a store bug must not stop the investigation
        return StoreState(None, f"memory unavailable: {_one_line(e)}")
    return StoreState(store, "memory on")


def integration_health(options: AppOptions) -> list[tuple[str, bool | None, str]]:
    """Rows (name, ok, detail) from ``compass_tui.doctor.health``; a failure is a row too."""
    if options.config is None:
        why = options.config_error or "no config"
        return [("config", None, f"{why}; only bundles can be investigated")]
    if not _configured_live(options.config):
        where = getattr(options.config, "source_path", None) or "no config file"
        return [("live sources", None, f"none configured ({where}); `compass init` writes a starting config")]
    try:
        from compass_tui.doctor import health  # noqa: PLC0415
    except Exception as e:
        return [("doctor", None, f"health checks unavailable: {_one_line(e)}")]
    try:
        rows = health(options.config)
        if asyncio.iscoroutine(rows):
            # Called from a thread worker: this thread has no running loop of its own.
            rows = asyncio.run(rows)
    except Exception as e:
        return [("doctor", False, _one_line(e))]
    return [_health_row(r) for r in (rows or [])]


def _health_row(row: Any) -> tuple[str, bool | None, str]:
    """Normalise one health row, whatever shape the doctor returns."""
    if isinstance(row, (tuple, list)):
        parts = list(row) + [None, None, None]
        return str(parts[0]), parts[1], str(parts[2] or "")
    source, check = _cfg_get(row, "source"), _cfg_get(row, "check")
    name = f"{source} {check}" if source and check else (_cfg_get(row, "name", "source", "check") or "?")
    ok = _cfg_get(row, "ok", "healthy", "status")
    if isinstance(ok, str):
        ok = ok.lower() in ("ok", "healthy", "up", "pass")
    detail = _cfg_get(row, "detail", "message", "reason") or ""
    fix = _cfg_get(row, "fix")
    if fix:
        detail = f"{detail} (fix: {fix})" if detail else f"fix: {fix}"
    return str(name), ok, str(detail)

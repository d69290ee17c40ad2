"""The one way COMPASS runs an investigation: resolve what to investigate from the command
line and the typed config, open the incident (a bundle, an alert against the live sources,
the demo) and the memory, build the engine's dependencies, run it, and record the result.

The CLI (``compass investigate``), the app, ``compass demo`` and ``compass watch`` all go
through here, so an investigation started any of these ways is opened, budgeted and
remembered the same way. Plain Python: nothing here imports Textual.

Every optional part (config, store, doctor, live alerts) is imported lazily and its failure
becomes a reason (a ``notes`` line or a ``StoreState.status``), never an exception the app
would crash on: the app must open whatever is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compass_tui import DEMO_BUNDLE
from compass_tui.models import Event, InvestigationRequest

if TYPE_CHECKING:
    from compass_tui.config import Config
    from compass_tui.engine.deps import Budget, EngineDeps
    from compass_tui.models import Report
    from compass_tui.store import Store

"""The built-in demo incident, shipped inside the package."""

THEMES = ("dark", "light", "high-contrast")

Investigate = Callable[..., AsyncIterator[Event]]


@dataclass
class Source:
    """Where the incident comes from, as the header says it."""

    kind: str
    """``bundle``, ``alert``, ``demo``, ``live`` or ``request`` (already built, e.g. by watch)."""
    path: str | None = None
    label: str = ""
    """One line for the header, e.g. ``demo incident (built-in bundle)``."""
    request: InvestigationRequest | None = None
    """For ``request``: the incident, already turned into a request (a webhook's alert group)."""


@dataclass
class Opened:
    """The incident opened: the request, the backend to query, and what went wrong on the way."""

    request: InvestigationRequest
    backend: Any | None
    notes: list[str] = field(default_factory=list)


@dataclass
class AppOptions:
    """Everything an investigation needs, resolved from argparse without touching the slow parts."""

    source: Source
    theme: str = "dark"
    store_path: str | None = None
    no_store: bool = False
    config: Config | None = None
    config_error: str | None = None
    grafana_url: str | None = None
    budget: Budget | None = None
    investigate: Investigate | None = None
    """The engine entry point; None means ``compass_tui.engine.investigate``."""
    stdin_text: str | None = None
    """The alert payload read from stdin before the app took over the terminal (``--alert -``)."""
    export_dir: Path = field(default_factory=Path.cwd)
    launched_at: float | None = None
    """``time.monotonic()`` when the command started: the engineer's wait is counted from it."""
    baseline_s: float | None = None
    """``--baseline``: how far before the alert the window starts (None: the config's)."""
    named: bool = False
    """The command line named what to open (``demo``, ``--bundle``, ``--alert``): no inbox."""


class SourceError(Exception):
    """The incident cannot be opened; the message is one line."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_config(args: argparse.Namespace) -> tuple[Config | None, str | None]:
    """The user's config, or (None, reason) when it cannot be read (the app opens anyway)."""
    try:
        from compass_tui.config import load_config as read_config  # noqa: PLC0415
    except Exception as e:  # config support is optional for bundles and the demo
        return None, f"config support unavailable: {_one_line(e)}"
    try:
        return read_config(getattr(args, "config", None)), None
    except Exception as e:
        return None, _one_line(e)


def configured_live(config: Config | None) -> bool:
    """True when the config names at least one enabled live source (an MCP server)."""
    if config is None:
        return False
    try:
        return bool(config.enabled_servers())
    except Exception:
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
    theme = getattr(args, "theme", None) or (config.theme if config is not None else None) or "dark"
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
    elif configured_live(config):
        source = Source("live", None, "live: first firing alert")
    elif config_error:
        source = Source("demo", str(DEMO_BUNDLE), "demo incident: the config could not be read (see Health)")
    else:
        source = Source("demo", str(DEMO_BUNDLE), "demo incident: nothing configured (run `compass init`)")
    store_path = getattr(args, "store", None) or (config.store_path if config is not None else None)
    budget = config.budget.to_budget() if config is not None else None
    deadline = getattr(args, "deadline", None)
    if deadline:
        from compass_tui.engine.deps import Budget  # noqa: PLC0415

        budget = budget or Budget()
        budget.deadline_s = float(deadline)
    baseline = getattr(args, "baseline", None)
    return AppOptions(
        source=source,
        theme=theme,
        store_path=str(store_path) if store_path else None,
        no_store=bool(getattr(args, "no_store", False)),
        config=config,
        config_error=config_error,
        grafana_url=config.deep_link_base() if config is not None else None,
        budget=budget,
        investigate=investigate,
        stdin_text=stdin_text,
        launched_at=getattr(args, "launched_at", None),
        baseline_s=float(baseline) if baseline else None,
        named=bool(demo or bundle or alert),
    )


def options_for_config(config: Config, *, store_path: str | None = None, no_store: bool = False) -> AppOptions:
    """AppOptions for a long-running process that investigates requests it builds itself
    (``compass watch``): the config's budget, deep links and memory."""
    return AppOptions(
        source=Source("request", None, "alert"),
        store_path=store_path or config.store_path,
        no_store=no_store,
        config=config,
        grafana_url=config.deep_link_base(),
        budget=config.budget.to_budget(),
    )


def _baseline(options: AppOptions) -> float | None:
    if options.baseline_s is not None:
        return options.baseline_s
    return options.config.baseline_s if options.config is not None else None


async def open_source(options: AppOptions) -> Opened:
    """Open the incident: read the bundle or alert and build the request and backend.

    Blocking work (untarring, loading DuckDB) runs in a thread so the UI keeps painting.
    Raises SourceError (one line) when the incident itself cannot be read; a live source
    that cannot be reached gives ``backend=None`` and the reason in ``notes``.
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
            from compass_tui.telemetry.bundle_reader import BundleError  # noqa: PLC0415
        except ImportError as e:
            raise SourceError(f"bundle support unavailable: {e}") from None
        try:
            # Loading a bundle (untar, DuckDB) takes a while: off the event loop, so the UI paints.
            from compass_tui.telemetry import preload  # noqa: PLC0415

            backend = await asyncio.to_thread(open_bundle, src.path, None, preload.claim(src.path))
        except BundleError as e:
            raise SourceError(_one_line(e)) from None
        except OSError as e:
            raise SourceError(f"{src.path}: {e.strerror or e}") from None
        except Exception as e:
            raise SourceError(f"{src.path}: {_one_line(e)}") from None
        try:
            request = request_from_bundle_meta(backend.manifest, backend.incident)
        except RequestError as e:
            raise SourceError(f"{Path(src.path or '').name}: incident.json: {e}") from None
        if options.baseline_s is not None:
            request.window_start = max(request.window_start, request.started_at - options.baseline_s)
        return Opened(request=request, backend=backend)
    if src.kind == "alert":
        try:
            payload = load_alert_file(src.path or "-", options.stdin_text if src.path == "-" else None)
            request = request_from_alert(payload, baseline_s=_baseline(options), now=time.time())
        except RequestError as e:
            raise SourceError(str(e)) from None
        backend, notes = await open_live_backend(options, request)
        return Opened(request=request, backend=backend, notes=notes)
    if src.kind == "live":
        request = await first_firing_alert(options)
        backend, notes = await open_live_backend(options, request)
        return Opened(request=request, backend=backend, notes=notes)
    if src.kind == "recorded" and src.request is not None:
        # A recorded investigation: the live sources, when configured, serve the chat's queries.
        backend, notes = ((await open_live_backend(options, src.request, fit_step=False))
                          if configured_live(options.config) else (None, []))
        return Opened(request=src.request, backend=backend, notes=notes)
    if src.kind == "request":
        if src.request is None:
            raise SourceError("no incident to investigate")
        backend, notes = await open_live_backend(options, src.request)
        return Opened(request=src.request, backend=backend, notes=notes)
    raise SourceError(f"unknown source {src.kind}")


async def open_live_backend(options: AppOptions, request: InvestigationRequest,
                            fit_step: bool = True) -> tuple[Any | None, list[str]]:
    """The backend over the configured MCP servers, started, or (None, [why]) when there is none.
    ``fit_step``: the request's step becomes a whole number of the sources' scrape intervals."""
    config = options.config
    if config is None or not configured_live(config):
        why = options.config_error or "no live source configured (run `compass init`)"
        return None, [f"{why}: queries cannot run"]
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
    if fit_step:
        from compass_tui.live_sources import fit_step_to_samples  # noqa: PLC0415

        await fit_step_to_samples(backend, request)
    return backend, notes


async def first_firing_alert(options: AppOptions) -> InvestigationRequest:
    """The earliest alert firing now on the configured sources, as a request."""
    try:
        from compass_tui.live_sources import firing_alerts  # noqa: PLC0415
    except Exception as e:
        raise SourceError(f"live alerts unavailable: {_one_line(e)}") from None
    try:
        alerts = await firing_alerts(options.config)
    except Exception as e:
        raise SourceError(f"live alerts: {_one_line(e)}") from None
    if not alerts:
        raise SourceError("no alert is firing on the configured sources")
    from compass_tui.engine.request import request_from_alert  # noqa: PLC0415

    return request_from_alert({"alerts": [alerts[0]]}, baseline_s=_baseline(options), now=time.time())


OPEN_WAIT_S = 2.0
"""How long opening the memory waits for another process before going on without it."""


@dataclass
class StoreState:
    """The memory as the app sees it: open, off, or unavailable with a reason."""

    store: Store | None = None
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
        # Opening waits only briefly for a file held by something else: the investigation
        # must not wait on the memory. Later writes wait their turn for longer.
        from compass_tui.store.store import LOCK_TIMEOUT_S  # noqa: PLC0415

        store = Store.open(options.store_path, lock_timeout_s=OPEN_WAIT_S)
        store.lock_timeout_s = LOCK_TIMEOUT_S
    except StoreUnavailable as e:
        return StoreState(None, f"memory unavailable: {_one_line(e)}")
    except Exception as e:  # a store bug must not stop the investigation
        return StoreState(None, f"memory unavailable: {_one_line(e)}")
    return StoreState(store, "memory on")


def build_deps(options: AppOptions, backend: Any, store: Store | None = None, *, t0: float | None = None,
               budget: Budget | None = None, request: InvestigationRequest | None = None) -> EngineDeps:
    """The engine's dependencies: the backend, the config's budget, the memory's advice,
    deep links. ``t0`` (``time.perf_counter()``) is when the user asked; ``budget``, when
    given, is used as it is (its owner may cut the deadline short while the engine runs).
    With ``request``, a rerun of an incident already in the memory (same alert, same window)
    keeps its investigation id, and the memory does not advise it from its own earlier run."""
    from compass_tui.engine.deps import Budget, EngineDeps  # noqa: PLC0415

    memory = inv_id = None
    if store is not None:
        try:
            inv_id = store.investigation_id_for(request) if request is not None else None
            memory = store.advisor(exclude=inv_id)
        except Exception:
            memory = None  # a memory that cannot advise still records
    if budget is None:
        # A copy per investigation: the engine may adjust its own budget as it runs.
        budget = Budget(**vars(options.budget)) if options.budget is not None else Budget()
    return EngineDeps(backend=backend, budget=budget, memory=memory, grafana_url=options.grafana_url, t0=t0,
                      runbooks=load_runbooks(options.config), llm=load_models(options.config),
                      investigation_id=inv_id)


def load_models(config: Config | None) -> Any | None:
    """The configured models (``[models]``), or None to run rules only; cheap: litellm is
    imported on the first model call, never here."""
    if config is None:
        return None
    from compass_tui.llm.client import models_from_config  # noqa: PLC0415

    return models_from_config(config)


def load_runbooks(config: Config | None) -> Any | None:
    """The configured runbooks (shipped, personal, ``runbook_dirs``), read afresh for each
    investigation so a runbook saved meanwhile counts; None when they cannot be read."""
    try:
        from compass_tui.runbooks import load_configured  # noqa: PLC0415

        return load_configured(config)
    except Exception:
        return None  # runbooks are one more agent: without them the investigation still runs


def source_name(source: Source) -> str:
    """Where an investigation came from, as the memory and ``compass history`` say it:
    ``bundle:NAME``, ``alert``, ``live``, ``demo`` or ``watch``."""
    if source.kind == "bundle" and source.path:
        return f"bundle:{Path(source.path).name}"
    if source.kind == "request":
        return "watch"
    return source.kind


INBOX_DAYS = 7
"""How far back the inbox looks for investigations waiting for the engineer."""


def waiting_investigations(options: AppOptions, limit: int = 50) -> list[dict[str, Any]]:
    """Investigations ``compass watch`` ran that wait for the engineer (no verdict yet, from
    the last week), newest first, as ``compass history --json`` gives them; [] when the
    memory is off, absent or unreadable."""
    if options.no_store:
        return []
    try:
        from compass_tui.store import Store, default_path  # noqa: PLC0415

        path = Path(options.store_path).expanduser() if options.store_path else default_path()
        if not path.exists():
            return []
        store = Store.open(path, read_only=True, lock_timeout_s=3)
        try:
            return store.history(limit=limit, source="watch", unjudged=True, since=time.time() - INBOX_DAYS * 86400)
        finally:
            store.close()
    except Exception:
        return []  # the inbox is a convenience: without it the app opens as before


def recorded_options(options: AppOptions, investigation_id: str) -> AppOptions:
    """Options that open a recorded investigation with its full evidence, without re-running
    it: the engine is replaced by the report as it was recorded. Raises SourceError."""
    import dataclasses  # noqa: PLC0415

    from compass_tui.models import Finished  # noqa: PLC0415

    try:
        from compass_tui.store import Store  # noqa: PLC0415

        store = Store.open(options.store_path, read_only=True)
        try:
            report, request = store.recorded(investigation_id)
        finally:
            store.close()
    except Exception as e:
        raise SourceError(f"cannot open {investigation_id}: {_one_line(e)}") from None
    if request is None:
        from compass_tui.engine.request import parse_time  # noqa: PLC0415

        started = parse_time(report.incident.started_at) if report.incident.started_at else time.time()
        request = InvestigationRequest(title=report.incident.title, service=report.incident.service,
                                       started_at=started, window_start=started - 3600, window_end=started + 600)

    async def replay(_request: InvestigationRequest, _deps: Any) -> AsyncIterator[Event]:
        yield Finished(report=report)

    return dataclasses.replace(
        options,
        source=Source("recorded", None, f"recorded by watch: {investigation_id}", request=request),
        investigate=replay,
    )


def record(store: Store | None, report: Report, request: InvestigationRequest | None,
           source: Source | None = None, *, waited_s: float | None = None) -> None:
    """Write a finished investigation to the memory (raises what the store raises);
    ``waited_s``: launch to the first hypothesis on screen, when the app measured it."""
    if store is None or (source is not None and source.kind == "recorded"):
        return  # a recorded investigation reopened is already in the memory
    from compass_tui.engine import signature_of  # noqa: PLC0415

    store.record_investigation(report, signature_of(report), request,
                               source=source_name(source) if source is not None else None, waited_s=waited_s)


async def investigation_events(
    options: AppOptions,
    opened: Opened,
    store: Store | None,
    *,
    t0: float | None = None,
    budget: Budget | None = None,
) -> AsyncIterator[Event]:
    """The engine's events on an opened incident, as they happen, with the configured
    runbooks as one more agent; the final report carries the investigation's own timeline
    (for the post-mortem). Recording is the caller's (``record``)."""
    from compass_tui.report.timeline import Timeline  # noqa: PLC0415

    investigate = options.investigate
    if investigate is None:
        from compass_tui.engine import investigate  # noqa: PLC0415
    deps = build_deps(options, opened.backend, store, t0=t0, budget=budget, request=opened.request)
    timeline = Timeline()  # puts itself on the report when Finished passes
    async for event in investigate(opened.request, deps):
        timeline.observe(event)
        yield event


async def run_investigation(
    options: AppOptions,
    opened: Opened,
    store: Store | None,
    *,
    on_event: Callable[[Event], Any] | None = None,
    t0: float | None = None,
    budget: Budget | None = None,
) -> tuple[Report | None, str | None]:
    """Run the engine on an opened incident to its end and record the report.

    Returns (report, why the memory did not take it, or None). ``on_event`` sees every
    event as it happens (the CLI's ``--events``)."""
    from compass_tui.models import Finished  # noqa: PLC0415

    report = None
    async for event in investigation_events(options, opened, store, t0=t0, budget=budget):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Finished):
            report = event.report
    if report is None:
        return None, None
    try:
        record(store, report, opened.request, options.source)
    except Exception as e:
        return report, f"could not record the investigation: {_one_line(e)}"
    return report, None


async def close_backend(backend: Any) -> None:
    """Close a backend, whatever it is; closing never fails an investigation."""
    if backend is None:
        return
    try:
        result = backend.aclose()
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        pass


def integration_health(options: AppOptions) -> list[tuple[str, bool | None, str]]:
    """Rows (name, ok, detail) from ``compass_tui.doctor.health``; a failure is a row too."""
    if options.config is None:
        why = options.config_error or "no config"
        return [("config", None, f"{why}; only bundles can be investigated")]
    if not configured_live(options.config):
        where = options.config.source_path or "no config file"
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
    """One doctor row as (name, ok, detail with its fix)."""
    if isinstance(row, (tuple, list)):
        parts = list(row) + [None, None, None]
        return str(parts[0]), parts[1], str(parts[2] or "")
    source, check = getattr(row, "source", None), getattr(row, "check", None)
    name = f"{source} {check}" if source and check else (source or check or "?")
    ok = getattr(row, "ok", None)
    detail = getattr(row, "detail", None) or ""
    fix = getattr(row, "fix", None)
    if fix:
        detail = f"{detail} (fix: {fix})" if detail else f"fix: {fix}"
    return str(name), ok, str(detail)

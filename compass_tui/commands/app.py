"""``compass`` (the app) and ``compass demo``: open the full-screen app, or, for the demo
without a terminal (or with ``--json``), print the report instead."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys


def _has_terminal(args: argparse.Namespace) -> bool:
    """Can the app draw and read keys? stdout must be a terminal, and so must stdin, unless
    the alert comes on stdin (the keys then come from /dev/tty)."""
    if not sys.stdout.isatty():
        return False
    if getattr(args, "alert", None) == "-":
        return os.path.exists("/dev/tty")
    return sys.stdin.isatty()


def run_headless(args: argparse.Namespace) -> int:
    """No terminal: investigate as ``compass investigate --json`` would, and exit."""
    print("compass: no terminal: running headless; the report goes to stdout", file=sys.stderr)
    if getattr(args, "bundle", None) or getattr(args, "alert", None):
        from compass_tui.commands import investigate  # noqa: PLC0415

        for name, value in (("json", True), ("events", False), ("baseline", None), ("deadline", None)):
            if not hasattr(args, name):
                setattr(args, name, value)
        return investigate.run(args)
    from compass_tui.service import resolve_options  # noqa: PLC0415 - no Textual headless

    if resolve_options(args).source.kind == "live":
        print("compass: with no terminal, say which alert: compass investigate --alert FILE --json", file=sys.stderr)
        return 2
    return _demo_json(args)


def run(args: argparse.Namespace) -> int:
    """Open the app on ``--bundle``, ``--alert``, the live sources, or the demo incident;
    headless when there is no terminal to draw on."""
    import time  # noqa: PLC0415

    args.launched_at = time.monotonic()  # what the engineer waits for starts now
    if not _has_terminal(args):
        return run_headless(args)
    from compass_tui.telemetry import preload  # noqa: PLC0415

    preload.start(getattr(args, "bundle", None))  # parsed while Textual loads
    from compass_tui.tui.app import build_app  # noqa: PLC0415 - Textual only when the app opens

    stdin_text = None
    if getattr(args, "alert", None) == "-":
        stdin_text = sys.stdin.read()
        if not _keyboard_from_tty():
            print("compass: --alert - read the alert, but there is no terminal for the app's keys", file=sys.stderr)
            return 1
    app = build_app(args, stdin_text=stdin_text)
    app.run()
    return int(app.return_code or 0)


def _keyboard_from_tty() -> bool:
    """After the alert was piped in, take the keys from the terminal (as `less` does)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    os.dup2(fd, 0)
    os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
    return True


def run_demo(args: argparse.Namespace) -> int:
    """``compass demo``: the app on the built-in demo bundle; headless JSON when asked or piped."""
    import time  # noqa: PLC0415

    args.launched_at = time.monotonic()
    from compass_tui import DEMO_BUNDLE  # noqa: PLC0415
    from compass_tui.telemetry import preload  # noqa: PLC0415

    preload.start(DEMO_BUNDLE)  # parsed while the app (or the headless engine) loads
    if getattr(args, "json", False) or not sys.stdout.isatty() or not sys.stdin.isatty():
        return _demo_json(args)
    from compass_tui.tui.app import build_app  # noqa: PLC0415

    app = build_app(args, demo=True)
    app.run()
    return int(app.return_code or 0)


def _demo_json(args: argparse.Namespace) -> int:
    """Run the demo investigation headless and print its compass-investigation/1 report."""
    # The service is plain Python: the headless demo never loads Textual.
    from compass_tui import service  # noqa: PLC0415

    options = service.resolve_options(args, demo=True)
    options.source = service.Source("demo", str(service.DEMO_BUNDLE), "demo")

    async def go() -> int:
        try:
            opened = await service.open_source(options)
        except service.SourceError as e:
            print(f"compass demo: {e}", file=sys.stderr)
            return 1
        state = service.open_store(options)
        if state.store is None and not options.no_store:
            print(f"compass demo: {state.status}", file=sys.stderr)
        try:
            report, memory_error = await service.run_investigation(options, opened, state.store)
        finally:
            await service.close_backend(opened.backend)
            if state.store is not None:
                state.store.close()
        if memory_error:
            print(f"compass demo: {memory_error}", file=sys.stderr)
        if report is None:
            print("compass demo: the investigation produced no report", file=sys.stderr)
            return 1
        print(json.dumps(report.to_json_dict(), indent=2))
        return 0

    return asyncio.run(go())

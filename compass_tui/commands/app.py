"""``compass`` (the app) and ``compass demo``: open the full-screen app, or, for the demo
without a terminal (or with ``--json``), print the report instead."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys


def run(args: argparse.Namespace) -> int:
    """Open the app on ``--bundle``, ``--alert``, the live sources, or the demo incident."""
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
    if getattr(args, "json", False) or not sys.stdout.isatty():
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

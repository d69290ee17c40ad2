"""``compass init``, ``compass doctor``, ``compass replay`` and ``compass snapshot``: the
commands that connect COMPASS to live telemetry (or stand a recorded incident in for it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from compass_tui.config import (
    ConfigError,
    default_config_path,
    import_mcp_json,
    load_config,
    servers_toml,
    starter_config,
)

EXIT_USAGE = 2


def _err(msg: str) -> None:
    print(f"compass: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- init


def run_init(args: argparse.Namespace) -> int:
    """Write a commented starting config (and import an mcpServers JSON file into it)."""
    path = Path(args.config) if getattr(args, "config", None) else default_config_path()
    if path.exists() and not getattr(args, "force", False):
        _err(f"{path}: already exists (use --force to overwrite)")
        return EXIT_USAGE
    text = starter_config()
    notes: list[str] = []
    if getattr(args, "import_mcp_json", None):
        try:
            servers, notes = import_mcp_json(args.import_mcp_json)
        except ConfigError as e:
            _err(str(e))
            return EXIT_USAGE
        # imported servers replace the two examples, which stay as comments
        text = _comment_examples(text) + "\n# --- Imported from " + str(args.import_mcp_json) + "\n" + servers_toml(servers)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        _err(f"{path}: cannot write: {e.strerror or e}")
        return 1
    # prove the file we wrote loads, so `init` never leaves a broken config behind
    try:
        load_config(path)
    except ConfigError as e:  # pragma: no cover - a bug in the template
        _err(f"wrote {path} but it does not load: {e}")
        return 1
    print(f"wrote {path}")
    for n in notes:
        print(f"note: {n}")
    print("next: export the tokens it names, then run `compass doctor`")
    return 0


def _comment_examples(text: str) -> str:
    """The starter with its example server tables commented out."""
    out = []
    in_server = False
    for line in text.splitlines():
        if line.startswith("[mcp_servers."):
            in_server = True
        elif line.startswith("# ---") or line.startswith("["):
            in_server = False
        out.append("# " + line if in_server and line.strip() and not line.startswith("#") else line)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- doctor


def run_doctor(args: argparse.Namespace) -> int:
    """Connect to every configured source and print what each can answer."""
    from compass_tui.doctor import health, render_table

    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as e:
        _err(str(e))
        return EXIT_USAGE
    rows = asyncio.run(health(config))
    if getattr(args, "json", False):
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(render_table(rows))
    return 0 if rows and all(r.ok for r in rows if r.required) else 1


# ---------------------------------------------------------------- replay


def run_replay(args: argparse.Namespace) -> int:
    """Serve a bundle as an MCP server speaking Grafana's tool names."""
    from compass_tui.replay import serve_http, serve_stdio
    from compass_tui.telemetry.bundle import open_bundle
    from compass_tui.telemetry.bundle_reader import BundleError

    try:
        backend = open_bundle(args.bundle)
    except BundleError as e:
        _err(str(e))
        return EXIT_USAGE
    except OSError as e:
        _err(f"{args.bundle}: {e.strerror or e}")
        return EXIT_USAGE
    try:
        if getattr(args, "http", None):
            port = int(args.http)
            print(f"serving {args.bundle} on http://127.0.0.1:{port}/mcp (Ctrl-C to stop)", file=sys.stderr)
            asyncio.run(serve_http(backend, backend.window, port, step=backend.step))
        else:
            asyncio.run(serve_stdio(backend, backend.window, step=backend.step))
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()
    return 0


# ---------------------------------------------------------------- snapshot


def run_snapshot(args: argparse.Namespace) -> int:
    """Capture an incident window from the live sources into a bundle."""
    from compass_tui.engine.request import RequestError, load_alert_file, parse_time
    from compass_tui.snapshot import SnapshotError, take_snapshot

    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as e:
        _err(str(e))
        return EXIT_USAGE
    alert = None
    window = None
    try:
        if getattr(args, "alert", None):
            stdin_text = sys.stdin.read() if args.alert == "-" else None
            alert = load_alert_file(args.alert, stdin_text)
        elif args.start and args.end:
            try:
                window = (parse_time(args.start), parse_time(args.end))
            except ValueError:
                _err(f"--start/--end: expected RFC3339 times, got {args.start!r} and {args.end!r}")
                return EXIT_USAGE
            if window[1] <= window[0]:
                _err("--end must be after --start")
                return EXIT_USAGE
        else:
            _err("snapshot needs --alert FILE, or --start and --end")
            return EXIT_USAGE
    except RequestError as e:
        _err(str(e))
        return EXIT_USAGE
    try:
        summary = asyncio.run(
            take_snapshot(config, args.out, alert=alert, window=window, step_s=getattr(args, "step", None))
        )
    except SnapshotError as e:
        _err(str(e))
        return EXIT_USAGE if e.usage else 1
    print(summary.text())
    return 0 if summary.files else 1


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")

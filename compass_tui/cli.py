"""The ``compass`` command line. Parsing only: each subcommand lives in ``commands/``
and is imported when used, so ``compass --help`` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> "module:function"; each function takes the parsed args and returns an exit code.
COMMANDS = {
    "app": "compass_tui.commands.app:run",
    "demo": "compass_tui.commands.app:run_demo",
    "investigate": "compass_tui.commands.investigate:run",
    "feedback": "compass_tui.commands.memory:run_feedback",
    "history": "compass_tui.commands.memory:run_history",
    "stats": "compass_tui.commands.memory:run_stats",
    "watch": "compass_tui.commands.watch:run",
    "init": "compass_tui.commands.live:run_init",
    "doctor": "compass_tui.commands.live:run_doctor",
    "replay": "compass_tui.commands.live:run_replay",
    "snapshot": "compass_tui.commands.live:run_snapshot",
}


def _common(p: argparse.ArgumentParser, top: bool = False) -> None:
    # on subcommands the defaults are suppressed, so `compass --store X history` keeps X
    d = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("--config", metavar="FILE", help="config file (default: $XDG_CONFIG_HOME/compass/config.toml)", **d)
    p.add_argument("--store", metavar="PATH", help="memory file (default: $XDG_DATA_HOME/compass/compass.duckdb)", **d)
    p.add_argument("--no-store", action="store_true", help="do not read or write the memory", **d)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compass",
        description="Investigate an incident: hypotheses, disproof, evidence, ranked.",
    )
    _common(parser, top=True)
    parser.add_argument("--bundle", metavar="PATH", help="open the app on an incident bundle (dir or .tar.gz)")
    parser.add_argument("--alert", metavar="FILE", help="open the app on an Alertmanager webhook payload ('-' for stdin)")
    parser.add_argument("--theme", help="dark, light or high-contrast")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="open the app on the built-in demo incident")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report instead of opening the app")
    p.add_argument("--theme", help="dark, light or high-contrast", default=argparse.SUPPRESS)

    p = sub.add_parser("investigate", help="run one investigation headless and print the report")
    _common(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--bundle", metavar="PATH", help="incident bundle (directory or .tar.gz)")
    src.add_argument("--alert", metavar="FILE", help="Alertmanager webhook payload; '-' reads stdin")
    p.add_argument("--json", action="store_true", help="print the compass-investigation/1 JSON report")
    p.add_argument("--events", action="store_true", help="stream events as JSON lines as they happen")
    p.add_argument("--baseline", metavar="SECONDS", type=float, help="how far before the alert the window starts")
    p.add_argument("--deadline", metavar="SECONDS", type=float, help="stop checking after this long and rank")

    p = sub.add_parser("feedback", help="confirm, reject or correct a past investigation's cause")
    _common(p)
    p.add_argument("investigation_id")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--confirm", metavar="FAULT@SERVICE")
    g.add_argument("--reject", metavar="FAULT@SERVICE")
    g.add_argument("--actual", metavar="FAULT@SERVICE")
    p.add_argument("--reason", help="why it was rejected")
    p.add_argument("--note", help="what fixed it")

    p = sub.add_parser("history", help="list past investigations")
    _common(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", help="accuracy as judged by the engineer, time to first hypothesis")
    _common(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("watch", help="receive Alertmanager webhooks and investigate each new alert group")
    _common(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: [watch] listen, 127.0.0.1:9095)")
    p.add_argument("--concurrency", type=int, metavar="N", help="investigations at once (default: [watch] concurrency, 2)")
    p.add_argument("--notify-url", metavar="URL", help="webhook told of each finished investigation (Slack-compatible)")

    p = sub.add_parser("init", help="write a commented starting config")
    p.add_argument("--config", metavar="FILE", help="where to write it", default=argparse.SUPPRESS)
    p.add_argument("--import-mcp-json", metavar="FILE", help="import servers from an mcpServers JSON file")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("doctor", help="check every configured source and print a health table")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("replay", help="serve a bundle as an MCP server (Grafana's tool names)")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--http", metavar="PORT", type=int, help="serve streamable HTTP on 127.0.0.1:PORT instead of stdio")

    p = sub.add_parser("snapshot", help="capture an incident window from the live sources into a bundle")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    p.add_argument("--alert", metavar="FILE", help="the alert whose window to capture ('-' for stdin)")
    p.add_argument("--start", help="window start (RFC3339), when no alert is given")
    p.add_argument("--end", help="window end (RFC3339), when no alert is given")
    p.add_argument("--step", type=float, default=None, help="sample step in seconds")
    p.add_argument("--out", metavar="PATH", required=True, help="bundle directory or .tar.gz to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "app"
    module_name, func_name = COMMANDS[command].split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

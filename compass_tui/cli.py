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
    "runbook": "compass_tui.commands.runbook:run",
    "report": "compass_tui.commands.postmortem:run_report",
    "eval": "compass_tui.commands.evaluate:run_eval",
}


THEMES = ("dark", "light", "high-contrast")


def _positive_int(text: str) -> int:
    """An integer of at least 1, or argparse's one-line error."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not at least 1")
    return n


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
    parser.add_argument("--theme", choices=THEMES, help="dark, light or high-contrast")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="open the app on the built-in demo incident")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report instead of opening the app")
    p.add_argument("--theme", choices=THEMES, help="dark, light or high-contrast", default=argparse.SUPPRESS)

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
    g.add_argument("--undo", action="store_true", help="withdraw the latest verdict on this investigation")
    p.add_argument("--reason", help="why it was rejected")
    p.add_argument("--note", help="what fixed it")
    p.add_argument("--minutes", type=float, metavar="N",
                   help="with --confirm/--actual: how long finding it would have taken you without COMPASS")
    p.add_argument("--replace", action="store_true", help="replace the investigation's answer with this one")

    p = sub.add_parser("history", help="list past investigations")
    _common(p)
    p.add_argument("--limit", type=_positive_int, default=20, help="how many (at least 1; default 20)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", help="accuracy as judged by the engineer, time to first hypothesis")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--cost", action="store_true", help="model spend, calls and latency per role and model, against what the engineer confirmed")

    p = sub.add_parser("watch", help="receive Alertmanager webhooks and investigate each new alert group")
    _common(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: [watch] listen, 127.0.0.1:9095)")
    p.add_argument("--concurrency", type=int, metavar="N", help="investigations at once (default: [watch] concurrency, 2)")
    p.add_argument("--notify-url", metavar="URL", help="webhook told of each finished investigation (Slack-compatible)")

    p = sub.add_parser("runbook", help="write, list and test your own checks (docs/runbooks.md)")
    rsub = p.add_subparsers(dest="runbook_command", metavar="ACTION", required=True)
    q = rsub.add_parser("test", help="run one runbook on a bundle: what each query returned, whether it fired")
    _common(q)
    q.add_argument("file", metavar="FILE")
    q.add_argument("--bundle", metavar="PATH", required=True, help="incident bundle (directory or .tar.gz)")
    q = rsub.add_parser("new", help="write a commented template to your runbook folder")
    _common(q)
    q.add_argument("name", nargs="?", help="the runbook's name (default: My check)")
    q.add_argument("--out", metavar="FILE", help="where to write it ('-' for stdout)")
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q = rsub.add_parser("list", help="the runbooks COMPASS would run, and files it cannot load")
    _common(q)
    q = rsub.add_parser("draft", help="a draft runbook from the queries of an investigation you corrected")
    _common(q)
    q.add_argument("investigation_id")
    q.add_argument("--out", metavar="FILE", help="where to write it (default: your runbook folder)")

    p = sub.add_parser("report", help="a past investigation as a Learning Teams post-mortem (Markdown)")
    _common(p)
    p.add_argument("investigation_id")
    p.add_argument("--postmortem", action="store_true", help="write the post-mortem (the only report kind so far)")
    p.add_argument("--out", metavar="FILE", help="write it there instead of stdout")

    p = sub.add_parser("eval", help="re-run your recorded incidents and score each config: top-1, top-3, speed, cost")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="bundles or folders of bundles (default: the snapshot folder)")
    p.add_argument("--config", action="append", metavar="FILE", default=argparse.SUPPRESS,
                   help="a config to score (repeat to compare several; default: the current one)")
    p.add_argument("--store", metavar="PATH", default=argparse.SUPPRESS, help="the memory holding your verdicts")
    p.add_argument("--json", action="store_true")

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
    from compass_tui import logs

    # libraries' warnings and tracebacks go to the log file, never over the report or the app
    logs.setup()
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug is one line and the log, not a traceback
        import logging

        logging.getLogger("compass").exception("compass %s failed", command)
        text = (str(e).strip().splitlines() or [""])[0]
        print(f"compass: {command} failed: {type(e).__name__}{': ' + text if text else ''} (details in {logs.where()})",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

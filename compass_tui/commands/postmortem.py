"""``compass report ID --postmortem [--out FILE]`` (the Learning Teams post-mortem of a
recorded investigation) and ``compass runbook draft ID`` (a runbook learnt from a correction)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def _err(command: str, msg: str, code: int = 2) -> int:
    print(f"compass {command}: error: {msg}", file=sys.stderr)
    return code


def _load(command: str, args: argparse.Namespace):
    from compass_tui.commands.memory import _store_path
    from compass_tui.store import Store, StoreUnavailable, UnknownInvestigation

    if getattr(args, "no_store", False):
        return None, _err(command, f"{command} reads the memory; drop --no-store")
    path = _store_path(args)
    if not path.exists():
        return None, _err(command, f"no investigation {args.investigation_id!r}: nothing recorded yet in {path}")
    try:
        store = Store.open(path, read_only=True)
    except StoreUnavailable as e:
        return None, _err(command, str(e), 1)
    try:
        return store.investigation(args.investigation_id), None
    except UnknownInvestigation as e:
        return None, _err(command, str(e))
    finally:
        store.close()


def postmortem_narrator(cfg) -> object | None:
    """The ``postmortem`` model as a function facts -> text, when one is configured and this
    build has a model client (``compass_tui.llm.narrate``); None writes from templates."""
    models = getattr(cfg, "models", None) or {}
    name = models.get("postmortem") if isinstance(models, dict) else getattr(models, "postmortem", None)
    if not name:
        return None
    try:
        from compass_tui import llm
    except ImportError:
        return None
    narrate = getattr(llm, "narrate", None)
    if narrate is None:
        return None
    return lambda facts: narrate(cfg, "postmortem", facts)


def run_report(args: argparse.Namespace) -> int:
    """Write the post-mortem of a recorded investigation."""
    from compass_tui.report.postmortem import Facts, postmortem_markdown

    if not getattr(args, "postmortem", False):
        return _err("report", "say which report: --postmortem (a Learning Teams post-mortem in Markdown)")
    inv, code = _load("report", args)
    if inv is None:
        return code
    cfg = None
    try:
        from compass_tui.config import load_config

        cfg = load_config(getattr(args, "config", None))
    except Exception:
        cfg = None
    md = postmortem_markdown(Facts(report=inv["report"], recorded_at=inv["recorded_at"], verdicts=inv["verdicts"]),
                             postmortem_narrator(cfg))
    if getattr(args, "out", None):
        out = Path(args.out).expanduser()
        try:
            out.write_text(md, encoding="utf-8")
        except OSError as e:
            return _err("report", f"{out}: cannot write: {e.strerror or e}")
        print(f"post-mortem written to {out}")
    else:
        sys.stdout.write(md)
    return 0


def draft_path(fault: str, out: str | None = None) -> Path:
    """Where a draft goes: ``--out``, else the personal runbook folder, never over a file."""
    from compass_tui.runbooks import personal_dir

    if out:
        return Path(out).expanduser()
    slug = re.sub(r"[^a-z0-9]+", "-", fault.split(":", 1)[-1].lower()).strip("-") or "draft"
    p = personal_dir() / f"{slug}.draft.toml"
    i = 2
    while p.exists():
        p = personal_dir() / f"{slug}.draft-{i}.toml"
        i += 1
    return p


def run_draft(args: argparse.Namespace) -> int:
    """Save the queries that showed the engineer's corrected cause as a draft runbook."""
    from compass_tui.runbooks import RunbookError, draft_runbook, parse_runbook
    from compass_tui.store.store import outcome

    inv, code = _load("runbook draft", args)
    if inv is None:
        return code
    cause, _ = outcome(inv)
    if cause is None:
        return _err("runbook draft", f"{args.investigation_id}: no cause recorded; first "
                    "`compass feedback ID --actual other:SLUG@SERVICE`")
    report = inv["report"]
    text = draft_runbook(report, cause[0], cause[1])
    out = draft_path(cause[0], getattr(args, "out", None))
    try:
        parse_runbook(text, str(out))
    except RunbookError as e:  # a draft we write must load
        return _err("runbook draft", f"the draft does not load: {e}", 1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        return _err("runbook draft", f"{out}: cannot write: {e.strerror or e}")
    print(f"draft runbook for {cause[0]}@{cause[1]} written to {out}")
    print(f"review it, then: compass runbook test {out} --bundle INCIDENT")
    return 0

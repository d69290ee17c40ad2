"""``compass feedback``, ``compass history`` and ``compass stats``: the engineer's side of
the memory. Errors are one line on stderr; exit 2 for bad input, 1 when the memory cannot
be opened."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _err(command: str, message: str) -> None:
    print(f"compass {command}: error: {message}", file=sys.stderr)


def _store_path(args: argparse.Namespace) -> Path:
    from compass_tui.store import default_path

    store = getattr(args, "store", None)
    return Path(store).expanduser() if store else default_path()


def run_feedback(args: argparse.Namespace) -> int:
    """Record the engineer's verdict on a past investigation's cause."""
    from compass_tui.store import AnswerExists, UnknownInvestigation, parse_cause

    if getattr(args, "no_store", False):
        _err("feedback", "feedback is kept in the memory; drop --no-store")
        return 2
    if getattr(args, "undo", False):
        return _undo(args)
    if args.confirm:
        verdict, text = "confirm", args.confirm
    elif args.reject:
        verdict, text = "reject", args.reject
    else:
        verdict, text = "actual", args.actual
    try:
        fault, service = parse_cause(text)
    except ValueError as e:
        _err("feedback", f"--{verdict}: {e}")
        return 2
    reason = (args.reason or "").strip() or None
    if verdict == "reject" and reason is None:
        _err("feedback", "--reject needs --reason TEXT (what ruled it out)")
        return 2
    store = _open_for_feedback(args)
    if isinstance(store, int):
        return store
    minutes = getattr(args, "minutes", None)
    if minutes is not None and verdict == "reject":
        _err("feedback", "--minutes goes with --confirm or --actual (how long finding the cause would have taken you)")
        return 2
    try:
        store.feedback(args.investigation_id, verdict, fault, service, reason=reason,
                       note=(args.note or "").strip() or None, minutes_estimate=minutes,
                       replace=bool(getattr(args, "replace", False)))
    except AnswerExists as e:
        _err("feedback", f"{args.investigation_id} is already answered {e.cause[0]}@{e.cause[1]}; "
                         "one investigation has one answer: add --replace to make it this one")
        return 2
    except UnknownInvestigation as e:
        _err("feedback", str(e))
        return 2
    except ValueError as e:
        _err("feedback", str(e))
        return 2
    finally:
        store.close()
    cause = f"{fault}@{service}"
    said = {
        "confirm": f"confirmed {cause}",
        "reject": f"rejected {cause} ({reason})",
        "actual": f"recorded {cause} as the actual cause",
    }[verdict]
    print(f"{args.investigation_id}: {said}; the next matching incident will be ranked with it")
    if verdict == "actual" and fault.startswith("other:"):
        print(f"save the queries that showed it as a runbook draft: compass runbook draft {args.investigation_id}")
    return 0


def _open_for_feedback(args: argparse.Namespace):
    """The memory a verdict goes into, or the exit status (with the one-line error said)."""
    from compass_tui.store import Store, StoreUnavailable

    path = _store_path(args)
    if not path.exists():
        _err("feedback", f"no investigation {args.investigation_id!r}: nothing recorded yet in {path}")
        return 2
    try:
        return Store.open(path)
    except StoreUnavailable as e:
        _err("feedback", str(e))
        return 1


def _undo(args: argparse.Namespace) -> int:
    """``feedback ID --undo``: withdraw the latest verdict on the investigation."""
    store = _open_for_feedback(args)
    if isinstance(store, int):
        return store
    try:
        undone = store.withdraw(args.investigation_id)
    finally:
        store.close()
    if undone is None:
        _err("feedback", f"no verdict to undo on {args.investigation_id!r}")
        return 2
    print(f"{args.investigation_id}: withdrew {undone['verdict']} {undone['fault']}@{undone['service']}")
    return 0


def _open_read_only(command: str, args: argparse.Namespace) -> tuple[Any, int | None]:
    """The memory for reading, or (None, exit code) after saying why not. A missing file is
    simply an empty memory."""
    from compass_tui.store import Store, StoreUnavailable

    if getattr(args, "no_store", False):
        _err(command, f"{command} reads the memory; drop --no-store")
        return None, 2
    path = _store_path(args)
    if not path.exists():
        return None, None
    try:
        return Store.open(path, read_only=True), None
    except StoreUnavailable as e:
        _err(command, str(e))
        return None, 1


def _fmt_cause(top: dict[str, Any] | None) -> str:
    if not top:
        return "-"
    return f"{top['fault']}@{top['service']} {top['confidence']:.2f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run_history(args: argparse.Namespace) -> int:
    """List past investigations, newest first: id, when, incident, top hypothesis, verdict,
    source; ``--json``: each with ``investigation_id``, ``alert``, ``service``,
    ``started_at``, ``top`` (``fault@service``), ``verdicts`` and ``source``."""
    store, code = _open_read_only("history", args)
    if code is not None:
        return code
    try:
        items = store.history(limit=args.limit) if store else []
    finally:
        if store:
            store.close()
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print(f"no investigations recorded yet ({_store_path(args)})")
        return 0
    rows = [["ID", "WHEN", "INCIDENT", "TOP HYPOTHESIS", "VERDICT", "SOURCE"]]
    for it in items:
        rows.append([
            it["investigation_id"],
            (it["recorded_at"] or "-").replace("T", " ").rstrip("Z"),
            it["incident"] if len(it["incident"]) <= 40 else it["incident"][:39] + "…",
            _fmt_cause(it["top_hypothesis"]),
            it["verdict"],
            it["source"] or "-",
        ])
    print(_table(rows))
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def run_stats(args: argparse.Namespace) -> int:
    """Accuracy as judged by the engineer and time to first hypothesis, last 7 and 30 days."""
    from compass_tui.store.store import window_stats

    store, code = _open_read_only("stats", args)
    if code is not None:
        return code
    if getattr(args, "cost", False):
        return _cost_stats(store, args)
    baseline = None
    try:
        from compass_tui.config import load_config

        baseline = load_config(getattr(args, "config", None)).baseline_minutes
    except Exception:
        baseline = None  # a bad config must not hide the figures; `compass doctor` says why
    try:
        if store:
            stats = store.stats(baseline_minutes=baseline)
        else:
            from compass_tui.store.store import time_saved

            empty = window_stats([])
            empty["time_saved"] = time_saved([], baseline)
            stats = {"now": None, "windows": {"7d": empty, "30d": empty}}
    finally:
        if store:
            store.close()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    w7, w30 = stats["windows"]["7d"], stats["windows"]["30d"]
    rows = [
        ["", "LAST 7 DAYS", "LAST 30 DAYS"],
        ["investigations", str(w7["investigations"]), str(w30["investigations"])],
        ["judged by the engineer", str(w7["judged"]), str(w30["judged"])],
        ["top-1 right", _pct(w7["top1"]), _pct(w30["top1"])],
        ["answer in top 3", _pct(w7["top3"]), _pct(w30["top3"])],
        ["corrected", _pct(w7["corrected"]), _pct(w30["corrected"])],
        ["first hypothesis, median", _secs(w7["first_hypothesis_s"]["median"]),
         _secs(w30["first_hypothesis_s"]["median"])],
        ["first hypothesis, mean", _secs(w7["first_hypothesis_s"]["mean"]),
         _secs(w30["first_hypothesis_s"]["mean"])],
        # from launching the app to the first hypothesis on screen
        ["engineer waited, median", _secs(w7["waited_s"]["median"]), _secs(w30["waited_s"]["median"])],
        ["engineer waited, mean", _secs(w7["waited_s"]["mean"]), _secs(w30["waited_s"]["mean"])],
    ]
    print(_table(rows))
    ts7, ts30 = w7["time_saved"], w30["time_saved"]
    print()
    if ts7["investigations"]:
        print(f"COMPASS saved you {ts7['minutes']:.0f} minutes this week "
              f"({ts7['investigations']} confirmed causes; {ts30['minutes']:.0f} minutes over 30 days)")
    elif ts30["investigations"]:
        print(f"COMPASS saved you {ts30['minutes']:.0f} minutes over the last 30 days (none confirmed this week)")
    else:
        print("time saved: no confirmed cause with an estimate yet; give one with "
              "`compass feedback ID --confirm F@S --minutes N` or set baseline_minutes in the config")
    if ts30["investigations"]:
        src = []
        if ts30["from_estimates"]:
            src.append(f"{ts30['from_estimates']} from your estimates")
        if ts30["from_baseline"]:
            src.append(f"{ts30['from_baseline']} from baseline_minutes = {ts30['baseline_minutes']:g}")
        print(f"method: {ts30['method']} ({', '.join(src)})")
    return 0


def _cost_stats(store: Any, args: argparse.Namespace) -> int:
    """``compass stats --cost``: per role and model, spend against effectiveness against speed."""
    try:
        rows = store.model_costs() if store else []
    finally:
        if store:
            store.close()
    if args.json:
        print(json.dumps({"days": 30, "models": rows}, indent=2))
        return 0
    if not rows:
        print("no model calls recorded in the last 30 days (configure [models] to use one)")
        return 0
    table = [["ROLE", "MODEL", "SPEND", "CALLS", "FAILED", "TOKENS", "LATENCY", "MOVED RANKING", "CONFIRMED"]]
    for r in rows:
        conf = f"{r['confirmed']}/{r['judged']}" if r["judged"] else "-"
        table.append([r["role"], r["model"], f"${r['usd']:.4f}", str(r["calls"]), str(r["failed"]),
                      f"{r['prompt_tokens']}+{r['completion_tokens']}", _secs(r["latency_mean_s"]),
                      str(r["changed_ranking"]), conf])
    print("last 30 days; LATENCY is the mean per call; CONFIRMED counts calls whose proposals held the cause the engineer confirmed")
    print(_table(table))
    return 0

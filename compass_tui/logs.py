"""COMPASS's log file: where the details of what failed go, so the terminal gets one line.

Libraries log on their own (the MCP SDK logs a server's non-JSON output with a traceback,
httpx every request, litellm its retries, asyncio a task that died); without a handler
Python prints their warnings and tracebacks on stderr, over the report and the app. ``setup``
sends every record to ``$XDG_STATE_HOME/compass/compass.log`` (default
``~/.local/state/compass/compass.log``), rotated, and keeps stderr for COMPASS's own lines.
``compass watch`` still logs its one line per event to stderr (its own logger).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024
"""Size at which the log is rotated (two old files are kept)."""

QUIET = {"httpx": logging.WARNING, "httpx2": logging.WARNING, "httpcore": logging.WARNING,
         "LiteLLM": logging.WARNING, "litellm": logging.WARNING, "markdown_it": logging.WARNING,
         "asyncio": logging.WARNING}
"""Libraries that log every request at INFO: only their warnings are worth keeping."""

_handler: logging.Handler | None = None
_path: Path | None = None


def state_dir(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/compass`` (default ``~/.local/state/compass``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "compass"


def default_log_path(environ: dict[str, str] | None = None) -> Path:
    """Where the log file goes."""
    return state_dir(environ) / "compass.log"


def log_path() -> Path | None:
    """The log file in use, or None when it could not be opened (nothing is logged then)."""
    return _path


def where() -> str:
    """The log file as the one-line messages name it (``~`` for the home directory)."""
    if _path is None:
        return "no log file"
    home = os.path.expanduser("~")
    text = str(_path)
    return "~" + text[len(home):] if home not in ("", "/") and text.startswith(home + os.sep) else text


def setup(path: str | os.PathLike[str] | None = None, level: int = logging.INFO) -> Path | None:
    """Send all logging to the log file (idempotent; a second call re-points it). Returns
    the file, or None when it cannot be written, in which case logging is dropped rather
    than printed: the terminal never gets a library's traceback."""
    global _handler, _path
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
        _handler = None
    target = Path(path) if path is not None else default_log_path()
    handler: logging.Handler
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(target, maxBytes=MAX_BYTES, backupCount=2, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        _path = target
    except OSError:
        handler, _path = logging.NullHandler(), None
    _handler = handler
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    for name, lvl in QUIET.items():
        logging.getLogger(name).setLevel(lvl)
    logging.captureWarnings(True)  # warnings.warn from libraries: to the file, not the terminal
    _hook_uncaught()
    return _path


def _hook_uncaught() -> None:
    """Exceptions nobody catches in threads, and ones raised where Python can only report
    them ("Exception ignored in ..."), go to the log instead of stderr."""
    log = logging.getLogger("compass")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        log.error("uncaught in thread %s", getattr(args.thread, "name", "?"),
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def unraisable_hook(u) -> None:  # sys.UnraisableHookArgs
        log.warning("%s: %s", u.err_msg or "exception ignored", getattr(u.object, "__qualname__", repr(u.object))[:200],
                    exc_info=(u.exc_type, u.exc_value, u.exc_traceback) if u.exc_type else None)

    threading.excepthook = thread_hook
    sys.unraisablehook = unraisable_hook


def failure_notices(backend: object) -> list[str]:
    """One line per source that failed during an investigation: what failed, that the
    report keeps what was found before, and where the log is; [] when nothing failed."""
    fn = getattr(backend, "source_failures", None)
    try:
        failures = list(fn()) if callable(fn) else []
    except Exception:  # noqa: BLE001 - a notice must not fail the command
        return []
    return [f"{f.headline()}; the report keeps what was found before; details in {where()}" for f in failures]

"""Parse a bundle's large files in a child process while the command imports the engine.

Opening a bundle is mostly parsing ``metrics.om``, ``traces.json`` and ``logs.json``, and a
command spends about as long again importing numpy, DuckDB, pydantic and the engine before
it needs them. On Linux, :func:`start` forks a child before those imports; the child parses
what it can and hands the results back through a pipe, and :func:`claim` gives them to
``open_bundle`` instead of parsing a second time. On two cores the two halves overlap.

The child only ever saves work. A file it cannot parse, a crash, a bundle changed on disk
after it was read: in each case the parent parses that file itself, as it would have
without the child, so every error and warning is the parent's own. ``COMPASS_PRELOAD=0``
turns it off.

This module imports nothing heavy: it runs before numpy is loaded.
"""

from __future__ import annotations

import atexit
import os
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

PARSED = ("metrics.om", "logs.json", "traces.json")

_pending: dict[str, Preload] = {}


def _key(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def stamp(path: Path) -> tuple | None:
    """What the bundle at ``path`` is on disk: size and modification time of an archive, or
    of every file in a directory bundle (and its one sub-folder). None if it cannot be read."""
    try:
        if path.is_dir():
            out = []
            for p in sorted(path.iterdir()):
                for f in sorted(p.iterdir()) if p.is_dir() else [p]:
                    st = f.stat()
                    out.append((str(f.relative_to(path)), st.st_size, st.st_mtime_ns))
            return tuple(out)
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    except OSError:
        return None


class Preload:
    """A child parsing one bundle; :meth:`result` waits for it and reads what it parsed."""

    def __init__(self, path: str, pid: int, fd: int):
        self.path = path
        self.pid = pid
        self._fd: int | None = fd
        self._out: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def result(self) -> dict[str, Any]:
        """File name -> parsed result, for the files the child parsed from the bundle as it
        still is on disk; empty if the child failed or the bundle changed. Waits for the child."""
        with self._lock:
            if self._out is None:
                self._out = self._read()
            return self._out

    def _read(self) -> dict[str, Any]:
        fd, self._fd = self._fd, None
        if fd is None:
            return {}
        chunks: list[bytes] = []
        try:
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            chunks = []
        finally:
            os.close(fd)
            self._reap()
        try:
            when, out = pickle.loads(b"".join(chunks))
        except Exception:  # the child died part way: parse in this process instead
            return {}
        if when is None or when != stamp(Path(self.path)):
            return {}
        return out

    def _reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def cancel(self) -> None:
        """Stop the child if it is still running (the bundle was never opened)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        os.close(fd)
        self._reap()


def _child(path: str, w: int) -> None:
    """In the forked child: parse the bundle's large files and write them to ``w``; never
    print, never raise, never run the parent's exit handlers."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        from compass_tui.telemetry import bundle_reader as br  # noqa: PLC0415

        parsers = {"metrics.om": br.parse_openmetrics, "logs.json": br.parse_logs, "traces.json": br.parse_traces}
        p = Path(path)
        when = stamp(p)
        loc = br.locate_bundle(p)
        out: dict[str, Any] = {}
        try:
            for name in PARSED:
                f = loc.root / name
                if not f.is_file():
                    continue
                try:
                    out[name] = parsers[name](f.read_bytes())
                except Exception:  # the parent parses it again and reports the problem
                    continue
        finally:
            loc.cleanup()
        payload = pickle.dumps((when, out), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(payload)
        while view:
            n = os.write(w, view[: 1 << 20])
            view = view[n:]
    except BaseException:  # noqa: BLE001 - whatever happened, the parent parses instead
        pass
    finally:
        os._exit(0)


def enabled() -> bool:
    """Fork only where it is safe and cheap: Linux, this process has no other thread yet,
    and the user has not turned it off."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get("COMPASS_PRELOAD", "1") != "0" and threading.active_count() == 1)


def start(path: str | os.PathLike | None, force: bool = False) -> Preload | None:
    """Begin parsing the bundle at ``path`` in a child process; None when that is not done
    (no path, not enabled, the fork failed). ``force`` forks even with other threads running
    (the tests do; the child then touches nothing those threads hold)."""
    if not path or not (enabled() or force and hasattr(os, "fork")) or not os.path.exists(path):
        return None
    key = _key(path)
    if key in _pending:
        return _pending[key]
    try:
        r, w = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(r)
        _child(key, w)
    os.close(w)
    pre = Preload(key, pid, r)
    _pending[key] = pre
    return pre


def claim(path: str | os.PathLike | None) -> Preload | None:
    """The preload started for ``path``, handed over once (None if there is none)."""
    if not path:
        return None
    return _pending.pop(_key(path), None)


@atexit.register
def _cancel_unclaimed() -> None:
    for pre in list(_pending.values()):
        pre.cancel()
    _pending.clear()

"""The memory file: every investigation, its hypotheses and the engineer's verdicts, in DuckDB.

Many processes share one file: each operation opens it, runs one short transaction and
closes it, waiting its turn while another process is in its own (DuckDB lets one process at a
time have a file open for writing). A file this COMPASS cannot safely use (locked by another process, not a DuckDB
file, not a COMPASS memory, or written by a newer version) raises ``StoreUnavailable`` and is
never modified.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from compass_tui.models import InvestigationRequest, Report, Signature
from compass_tui.store.causes import check_cause
from compass_tui.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import duckdb

    from compass_tui.store.memory import StoreAdvisor

Verdict = Literal["confirm", "reject", "actual"]
VERDICTS: tuple[str, ...] = ("confirm", "reject", "actual")
DAY_S = 86400.0


class StoreUnavailable(Exception):
    """The memory file cannot be used; the message is one line saying why and what to do."""


class _NeedsMigration(Exception):
    """An older memory was opened read-only; it must be migrated by a read-write open first."""


class UnknownInvestigation(KeyError):
    """No investigation with that id is in the memory."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown investigation"


class UnknownService(ValueError):
    """The verdict names a service the investigation's telemetry never mentioned."""


class AnswerExists(ValueError):
    """The investigation already has another answer; replacing it must be asked for."""

    def __init__(self, cause: tuple[str, str]) -> None:
        self.cause = cause
        super().__init__(f"already answered {cause[0]}@{cause[1]}; one investigation has one answer (replace it explicitly)")


def incident_key(request: InvestigationRequest) -> str:
    """What makes two runs the same incident: the alert (name, service, labels, when it
    fired) and the window's start. The window's end is left out: on a live alert it is
    "now", and a rerun a minute later is still the same incident."""
    labels = ",".join(f"{k}={v}" for k, v in sorted((request.labels or {}).items()))
    return "|".join([request.alertname or "-", request.service or "-", labels,
                     f"{request.started_at:.0f}", f"{request.window_start:.0f}"])


def default_path() -> Path:
    """``$XDG_DATA_HOME/compass/compass.duckdb``, read from the environment at call time."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "compass" / "compass.duckdb"
    import platformdirs

    return platformdirs.user_data_path("compass") / "compass.duckdb"


def _rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def signature_from_key(key: str) -> Signature:
    """The inverse of ``Signature.key()``: ``alert|service|shape|moved,moved``."""
    parts = key.split("|")
    if len(parts) != 4:
        raise ValueError(f"not a signature key (alert|service|shape|moved): {key!r}")
    alert, service, shape, moved = parts
    return Signature(
        alertname=None if alert == "-" else alert,
        service=None if service == "-" else service,
        shape=shape,
        moved=[m for m in moved.split(",") if m],
    )


DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file."""


def _looks_like_duckdb(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return True  # let DuckDB report why it cannot read it
    return head[8:12] == DUCKDB_MAGIC


def _why_unavailable(path: Path, err: Exception, waited_s: float | None = None) -> str:
    """Turn a DuckDB open error into one line an engineer can act on."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    low = msg.lower()
    if "lock" in low:
        m = re.search(r"PID (\d+)", msg)
        who = f"another process (pid {m.group(1)})" if m else "another process"
        held = f" for over {waited_s:g} s" if waited_s else ""
        return (
            f"{path}: held{held} by {who}, which is not letting go (a compass keeps it only "
            "for one write); close that process, or use --store PATH or --no-store"
        )
    if "not a valid duckdb database" in low:
        return f"{path}: not a DuckDB file (corrupt or something else); move it aside, it was left untouched"
    if "different configuration" in low:
        return f"{path}: already open in this process with other settings (read-only vs read-write)"
    if "version" in low or "serializ" in low:
        return f"{path}: written by a newer DuckDB than this compass has; upgrade compass ({msg})"
    if "read-only mode" in low and "does not exist" in low:
        return f"{path}: no memory there yet (nothing recorded)"
    if "permission" in low or "read-only file system" in low:
        return f"{path}: cannot write there ({msg}); use --store PATH or --no-store"
    return f"{path}: cannot open the memory: {msg}"


LOCK_TIMEOUT_S = 60.0
"""How long an operation waits for another process's turn on the file before saying who holds it."""

_PATH_LOCKS: dict[str, threading.RLock] = {}
_PATH_LOCKS_LOCK = threading.Lock()
_GENERATIONS: dict[str, int] = {}


def _path_lock(key: str) -> threading.RLock:
    """One lock per file per process: DuckDB shares one instance per file within a process,
    and a read-only and a read-write connection to it cannot coexist."""
    with _PATH_LOCKS_LOCK:
        lock = _PATH_LOCKS.get(key)
        if lock is None:
            lock = _PATH_LOCKS[key] = threading.RLock()
        return lock


def _is_lock_error(err: Exception) -> bool:
    low = str(err).lower()
    return "lock" in low and ("conflicting" in low or "could not set" in low)


class Store:
    """The memory. Open with ``Store.open()``; close when done.

    Many processes share one file (the app, ``watch``, ``feedback``, ``history``...): DuckDB
    lets one process at a time have it open for writing, so each operation opens the file,
    runs one short transaction and closes it again, waiting its turn (with backoff, up to
    ``lock_timeout_s``) while another process holds it. Nothing holds the file between
    operations, so no process blocks another for longer than one transaction.
    """

    def __init__(self, path: Path, read_only: bool, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = path
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s
        self._key = str(path.resolve())
        self._lock = _path_lock(self._key)
        self._closed = False
        self.waits = 0
        """Times an operation of this Store found the file held by another process."""

    @property
    def generation(self) -> int:
        """Changes whenever anything in this process writes to the memory."""
        return _GENERATIONS.get(self._key, 0)

    def _bump(self) -> None:
        _GENERATIONS[self._key] = _GENERATIONS.get(self._key, 0) + 1

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path | None = None, *, read_only: bool = False,
             lock_timeout_s: float = LOCK_TIMEOUT_S) -> "Store":
        """Open (creating it when absent and writable) the memory at ``path``, default
        ``$XDG_DATA_HOME/compass/compass.duckdb``: check it is a memory this version can use,
        migrate it when older. Raises ``StoreUnavailable``."""
        import duckdb

        p = Path(path).expanduser() if path is not None else default_path()
        if p.exists() and p.is_dir():
            raise StoreUnavailable(f"{p}: is a directory, expected a memory file")
        if not read_only:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreUnavailable(
                    f"{p.parent}: cannot create the memory's directory: {e.strerror or e}; "
                    "use --store PATH or --no-store"
                ) from None
            if not os.access(p.parent, os.W_OK):
                raise StoreUnavailable(f"{p.parent}: not writable; use --store PATH or --no-store")
        elif not p.exists():
            raise StoreUnavailable(f"{p}: no memory there yet (nothing recorded)")
        if p.exists() and not _looks_like_duckdb(p):
            raise StoreUnavailable(
                f"{p}: not a DuckDB file (corrupt or something else); move it aside, it was left untouched"
            )
        store = cls(p, read_only, lock_timeout_s)
        try:
            try:
                with store._connect() as con:
                    store._prepare(con)
            except _NeedsMigration:
                # An older memory opened for reading (`compass history` after an upgrade):
                # migrate it forward once, in its own short read-write turn, then read.
                cls.open(p, lock_timeout_s=lock_timeout_s).close()
                with store._connect() as con:
                    store._prepare(con)
        except duckdb.Error as e:
            raise StoreUnavailable(f"{p}: cannot read the memory: {str(e).splitlines()[0]}") from None
        return store

    @contextmanager
    def _connect(self) -> Iterator["duckdb.DuckDBPyConnection"]:
        """The file, open for one short piece of work; waits while another process holds it."""
        import duckdb

        if self._closed:
            raise StoreUnavailable(f"{self.path}: the memory was closed")
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.01
        with self._lock:
            while True:
                try:
                    # Never fetch or load extensions: a memory file needs none, and DuckDB would
                    # otherwise try the network to read a file that merely looks like SQLite.
                    con = duckdb.connect(str(self.path), read_only=self.read_only, config={
                        "autoinstall_known_extensions": False,
                        "autoload_known_extensions": False,
                    })
                    break
                except (duckdb.Error, OSError) as e:
                    if isinstance(e, duckdb.Error) and _is_lock_error(e) and time.monotonic() < deadline:
                        # Another process is in its transaction: wait a little and try again.
                        self.waits += 1
                        time.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, 0.25)
                        continue
                    raise StoreUnavailable(_why_unavailable(self.path, e, self.lock_timeout_s)) from None
            try:
                yield con
            finally:
                con.close()

    def _prepare(self, con: "duckdb.DuckDBPyConnection") -> None:
        """Check the file is a COMPASS memory this version understands; create or migrate it."""
        cur = con
        tables = {r[0] for r in cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()}
        if not tables:
            version = 0
        elif "meta" not in tables:
            raise StoreUnavailable(
                f"{self.path}: a DuckDB file but not a compass memory (no meta table); left untouched"
            )
        else:
            row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            try:
                version = int(row[0]) if row else -1
            except ValueError:
                version = -1
            if version < 0:
                raise StoreUnavailable(f"{self.path}: meta.schema_version is missing or not a number; left untouched")
            if version in (2, 3) and not cur.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'investigations' AND column_name = 'source'"
            ).fetchone()[0]:
                # An earlier build numbered the estimate column 2 (and the incident columns 3),
                # before source and alert groups: such a file is at 1 plus those columns, so it
                # takes every step from 2 here (their ADD COLUMN IF NOT EXISTS skip what it has).
                version = 1
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{self.path}: memory schema version {version} is newer than this compass "
                f"understands ({SCHEMA_VERSION}); upgrade compass. The file was left untouched"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            if version == 0:
                return  # an empty file: nothing recorded, nothing to migrate
            raise _NeedsMigration(version)
        cur.execute("BEGIN TRANSACTION")
        try:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[step]:
                    cur.execute(stmt)
            cur.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise

    @staticmethod
    def _empty(con: "duckdb.DuckDBPyConnection") -> bool:
        # An empty file opened read-only has no tables yet.
        return not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'investigations'"
        ).fetchone()[0]

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreUnavailable(f"{self.path}: opened read-only")

    # ------------------------------------------------------------------ writing

    def record_investigation(
        self,
        report: Report,
        signature: Signature | None = None,
        request: InvestigationRequest | None = None,
        *,
        recorded_at: float | None = None,
        source: str | None = None,
        waited_s: float | None = None,
        services: list[str] | None = None,
    ) -> None:
        """Save a finished investigation and its ranked hypotheses. Recording the same
        ``investigation_id`` again replaces its hypotheses and keeps the engineer's verdicts
        (and the first ``waited_s``: a rerun is not what the engineer waited for when paged).

        Without ``signature`` it is read back from ``report.signature`` (``Signature.key()``).
        ``source`` says where it came from: ``bundle:NAME``, ``alert``, ``live``, ``demo``,
        ``watch``. ``waited_s``: launch to the first hypothesis on screen, as the app measured
        it. ``services``: every service the telemetry named, so verdicts can be checked against it.
        """
        self._require_writable()
        if signature is None:
            signature = signature_from_key(report.signature or "")
        when = time.time() if recorded_at is None else recorded_at
        started = request.started_at if request is not None else None
        # Stored exactly as the engine described it, so a recurrence finds it again.
        alertname, service = signature.alertname, signature.service
        moved = sorted(set(signature.moved))
        named = set(services or getattr(report, "services", None) or [])
        if named:  # what the hypotheses name is in the telemetry too
            named |= {h.service for h in report.hypotheses} | set(moved) | ({service} if service else set())
        services = sorted(named) or None
        hyps = sorted(report.hypotheses, key=lambda h: h.rank if h.rank else 10**6)
        rows = [
            (report.investigation_id, i + 1, h.fault, h.service, h.title, float(h.confidence), h.status)
            for i, h in enumerate(hyps)
        ]
        with self._connect() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                prior = cur.execute(
                    "SELECT recorded_at, source, waited_s, services FROM investigations WHERE id = ?",
                    [report.investigation_id],
                ).fetchone()
                if prior is not None and recorded_at is None:
                    when = prior[0]  # re-recording keeps the original time
                if prior is not None and source is None:
                    source = prior[1]
                if prior is not None and prior[2] is not None:
                    waited_s = prior[2]
                if prior is not None and prior[3] and not services:
                    services = list(prior[3])
                cur.execute("DELETE FROM hypotheses WHERE investigation_id = ?", [report.investigation_id])
                cur.execute("DELETE FROM investigations WHERE id = ?", [report.investigation_id])
                cur.execute(
                    "INSERT INTO investigations (id, recorded_at, started_at, title, alertname, service, shape, "
                    "moved, signature, first_hypothesis_s, total_s, report_json, source, request_json, "
                    "incident_key, waited_s, services) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        report.investigation_id,
                        when,
                        started,
                        report.incident.title,
                        alertname,
                        service,
                        signature.shape,
                        moved,
                        report.signature or Signature(alertname=alertname, service=service,
                                                      shape=signature.shape, moved=moved).key(),
                        report.timings.first_hypothesis_s,
                        report.timings.total_s,
                        json.dumps(report.to_json_dict(), separators=(",", ":")),
                        source,
                        request.model_dump_json() if request is not None else None,
                        incident_key(request) if request is not None else None,
                        waited_s,
                        sorted(set(services)) if services else None,
                    ],
                )
                if rows:
                    cur.executemany("INSERT INTO hypotheses VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
        self._bump()

    def feedback(
        self,
        investigation_id: str,
        verdict: Verdict,
        fault: str,
        service: str,
        reason: str | None = None,
        note: str | None = None,
        *,
        at: float | None = None,
        minutes_estimate: float | None = None,
        replace: bool = False,
    ) -> int:
        """Record the engineer's verdict on a cause of a past investigation, committed at once;
        returns the verdict's id (for ``withdraw``).

        ``confirm``: it was this cause. ``reject``: it was not (a reason is kept).
        ``actual``: it was this cause, which COMPASS may not have proposed (catalog id or
        ``other:<slug>``). ``minutes_estimate``: how long the engineer says finding it would
        have taken without COMPASS (for the time saved in ``stats``). An investigation has one
        answer: a ``confirm`` or ``actual`` naming another cause than the current answer raises
        ``AnswerExists`` unless ``replace``, which withdraws the previous answer. Raises
        ``UnknownInvestigation`` for an id not in the memory, ``UnknownService`` for a service
        its telemetry never named, and ``ValueError`` for a bad verdict or cause.
        """
        self._require_writable()
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
        check_cause(fault, service)
        if minutes_estimate is not None and not (0 < float(minutes_estimate) < 100000):
            raise ValueError(f"the estimate must be a positive number of minutes, got {minutes_estimate!r}")
        with self._connect() as cur:
            # One transaction: the checks and the write see the same memory, whoever else writes.
            cur.execute("BEGIN TRANSACTION")
            try:
                row = cur.execute("SELECT services FROM investigations WHERE id = ?", [investigation_id]).fetchone()
                if row is None:
                    raise UnknownInvestigation(
                        f"no investigation {investigation_id!r} in {self.path} (see `compass history`)"
                    )
                known = list(row[0] or [])
                if known and service not in known:
                    near = [s for s in known if service.lower() in s.lower() or s.lower() in service.lower()][:3]
                    hint = (f"; did you mean {', '.join(near)}?" if near else
                            f"; it has {len(known)}: {', '.join(known[:8])}" + ("…" if len(known) > 8 else ""))
                    raise UnknownService(f"service {service!r} appears nowhere in this investigation's telemetry{hint}")
                answer = None
                if verdict in ("confirm", "actual"):
                    answer, _ = outcome({"verdicts": self._verdicts(cur, investigation_id)})
                    if answer is not None and answer != (fault, service) and not replace:
                        raise AnswerExists(answer)
                now = time.time() if at is None else at
                if answer is not None and answer != (fault, service):
                    # one investigation, one answer: the new one takes the old one's place
                    cur.execute(
                        "UPDATE feedback SET withdrawn_at = ? WHERE investigation_id = ? AND withdrawn_at IS NULL "
                        "AND verdict IN ('confirm', 'actual') AND fault = ? AND service = ?",
                        [now, investigation_id, answer[0], answer[1]],
                    )
                new_id = cur.execute(
                    "INSERT INTO feedback (investigation_id, given_at, verdict, fault, service, reason, note, "
                    "minutes_estimate) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [investigation_id, now, verdict, fault, service, reason, note,
                     None if minutes_estimate is None else float(minutes_estimate)],
                ).fetchone()[0]
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
        self._bump()
        return int(new_id)

    def withdraw(self, investigation_id: str, feedback_id: int | None = None) -> dict[str, Any] | None:
        """Undo a verdict: the one with ``feedback_id``, else the investigation's latest. It is
        kept, marked withdrawn, and no longer counts. Returns what was undone (None: nothing)."""
        self._require_writable()
        with self._connect() as cur:
            if self._empty(cur):
                return None
            cur.execute("BEGIN TRANSACTION")
            try:
                live = self._verdicts(cur, investigation_id)
                pick = [v for v in live if feedback_id is None or v["id"] == feedback_id]
                v = pick[-1] if pick else None
                if v is not None:
                    cur.execute("UPDATE feedback SET withdrawn_at = ? WHERE id = ?", [time.time(), v["id"]])
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
        if v is not None:
            self._bump()
        return v

    @staticmethod
    def _verdicts(cur: "duckdb.DuckDBPyConnection", investigation_id: str) -> list[dict[str, Any]]:
        rows = cur.execute(
            "SELECT id, given_at, verdict, fault, service, reason, note FROM feedback "
            "WHERE investigation_id = ? AND withdrawn_at IS NULL ORDER BY given_at, id",
            [investigation_id],
        ).fetchall()
        return [{"id": i, "at": at, "verdict": v, "fault": f, "service": s, "reason": r, "note": n}
                for i, at, v, f, s, r, n in rows]

    def verdicts(self, investigation_id: str) -> list[dict[str, Any]]:
        """The verdicts that count on one investigation, oldest first (withdrawn ones left out)."""
        with self._connect() as cur:
            if self._empty(cur):
                return []
            return self._verdicts(cur, investigation_id)

    def investigation_id_for(self, request: InvestigationRequest) -> str | None:
        """The id already given to this incident (same alert, same window), so a rerun of it
        is the same investigation rather than a new sighting; None for a new incident."""
        with self._connect() as cur:
            if self._empty(cur):
                return None
            row = cur.execute(
                "SELECT id FROM investigations WHERE incident_key = ? ORDER BY recorded_at LIMIT 1",
                [incident_key(request)],
            ).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ alert groups (watch)

    def alert_group_seen(
        self,
        group_key: str,
        status: str,
        *,
        alertname: str | None = None,
        service: str | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Note a webhook notification for an alert group and say what to do with it.

        Returns the group's row after this notification with ``new``: True when this is a
        new firing episode that should be investigated (first seen, or firing again after
        it resolved); repeats of a firing group and resolved notifications are False."""
        self._require_writable()
        now = time.time() if at is None else at
        with self._connect() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                row = cur.execute(
                    "SELECT status, notifications FROM alert_groups WHERE group_key = ?", [group_key]
                ).fetchone()
                new = False
                if row is None:
                    new = status == "firing"
                    cur.execute(
                        "INSERT INTO alert_groups (group_key, status, alertname, service, first_seen, last_seen, "
                        "resolved_at, investigation_id, notifications) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 1)",
                        [group_key, status, alertname, service, now, now, now if status == "resolved" else None],
                    )
                else:
                    was = row[0]
                    if status == "firing" and was == "resolved":
                        # Firing again after it resolved: a new episode, a new investigation.
                        new = True
                        cur.execute(
                            "UPDATE alert_groups SET status = 'firing', first_seen = ?, last_seen = ?, "
                            "resolved_at = NULL, investigation_id = NULL, notifications = notifications + 1 "
                            "WHERE group_key = ?",
                            [now, now, group_key],
                        )
                    else:
                        cur.execute(
                            "UPDATE alert_groups SET status = ?, last_seen = ?, notifications = notifications + 1, "
                            "resolved_at = CASE WHEN ? = 'resolved' THEN ? ELSE resolved_at END WHERE group_key = ?",
                            [status, now, status, now, group_key],
                        )
                out = cur.execute(
                    "SELECT group_key, status, alertname, service, first_seen, last_seen, resolved_at, "
                    "investigation_id, notifications FROM alert_groups WHERE group_key = ?",
                    [group_key],
                ).fetchone()
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
        self._bump()
        keys = ("group_key", "status", "alertname", "service", "first_seen", "last_seen", "resolved_at",
                "investigation_id", "notifications")
        return {**dict(zip(keys, out)), "new": new}

    def alert_group_investigated(self, group_key: str, investigation_id: str) -> None:
        """Link an alert group's current episode to the investigation that ran for it."""
        self._require_writable()
        with self._connect() as cur:
            cur.execute("UPDATE alert_groups SET investigation_id = ? WHERE group_key = ?", [investigation_id, group_key])
        self._bump()

    def alert_groups(self) -> list[dict[str, Any]]:
        """Every alert group watch has seen, latest first."""
        with self._connect() as cur:
            if self._empty(cur):
                return []
            rows = cur.execute(
                "SELECT group_key, status, alertname, service, first_seen, last_seen, resolved_at, "
                "investigation_id, notifications FROM alert_groups ORDER BY last_seen DESC"
            ).fetchall()
        keys = ("group_key", "status", "alertname", "service", "first_seen", "last_seen", "resolved_at",
                "investigation_id", "notifications")
        return [dict(zip(keys, r)) for r in rows]

    # ------------------------------------------------------------------ reading

    def advisor(self, exclude: str | None = None) -> "StoreAdvisor":
        """The engine's view of this memory (``compass_tui.engine.deps.MemoryAdvisor``);
        ``exclude`` is the investigation being run again, which is not its own past."""
        from compass_tui.store.memory import StoreAdvisor

        return StoreAdvisor(self, exclude=exclude)

    def _past(self, alertname: str | None, service: str | None, exclude: str | None = None) -> list[dict[str, Any]]:
        """Past investigations of this alert on this service, with their top hypotheses and
        verdicts, oldest first: what the memory matches a signature against."""
        with self._connect() as cur:
            if self._empty(cur):
                return []
            invs = cur.execute(
                "SELECT id, recorded_at, shape, moved FROM investigations "
                "WHERE alertname IS NOT DISTINCT FROM ? AND service IS NOT DISTINCT FROM ? "
                "AND id IS DISTINCT FROM ? ORDER BY recorded_at, id",
                [alertname, service, exclude],
            ).fetchall()
            return self._with_outcomes(
                cur, [{"id": i, "recorded_at": t, "shape": s, "moved": list(m or [])} for i, t, s, m in invs]
            )

    @staticmethod
    def _with_outcomes(cur: "duckdb.DuckDBPyConnection", invs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not invs:
            return invs
        ids = [i["id"] for i in invs]
        by_id = {i["id"]: i for i in invs}
        for i in invs:
            i.update(hypotheses=[], verdicts=[])
        for inv_id, rank, fault, service, conf, status in cur.execute(
            "SELECT investigation_id, rank, fault, service, confidence, status FROM hypotheses "
            "WHERE investigation_id IN (SELECT unnest(?)) ORDER BY investigation_id, rank",
            [ids],
        ).fetchall():
            by_id[inv_id]["hypotheses"].append(
                {"rank": rank, "fault": fault, "service": service, "confidence": conf, "status": status}
            )
        for inv_id, at, verdict, fault, service, reason, note, minutes in cur.execute(
            "SELECT investigation_id, given_at, verdict, fault, service, reason, note, minutes_estimate FROM feedback "
            "WHERE investigation_id IN (SELECT unnest(?)) AND withdrawn_at IS NULL ORDER BY given_at, id",
            [ids],
        ).fetchall():
            by_id[inv_id]["verdicts"].append(
                {"at": at, "verdict": verdict, "fault": fault, "service": service, "reason": reason, "note": note,
                 "minutes_estimate": minutes}
            )
        return invs

    def history(self, limit: int = 20, *, source: str | None = None, unjudged: bool = False,
                since: float | None = None) -> list[dict[str, Any]]:
        """The latest investigations, newest first: id, when, the alert and service, the top
        hypothesis (``top``: ``fault@service``), every verdict, and where it came from.
        ``source`` keeps only one source (e.g. ``watch``); ``unjudged`` only those without a
        verdict yet; ``since`` only those recorded after that unix time."""
        with self._connect() as cur:
            if self._empty(cur):
                return []
            where, params = [], []
            if source is not None:
                where.append("i.source = ?")
                params.append(source)
            if unjudged:
                where.append("NOT EXISTS (SELECT 1 FROM feedback f WHERE f.investigation_id = i.id AND f.withdrawn_at IS NULL)")
            if since is not None:
                where.append("i.recorded_at > ?")
                params.append(since)
            rows = cur.execute(
                "SELECT i.id, i.recorded_at, i.started_at, i.title, i.alertname, i.service, i.signature, "
                "i.first_hypothesis_s, i.total_s, i.source, g.status, i.request_json FROM investigations i "
                "LEFT JOIN alert_groups g ON g.investigation_id = i.id"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY i.recorded_at DESC, i.id DESC LIMIT ?",
                [*params, max(0, int(limit))],
            ).fetchall()
            invs = [
                {
                    "id": r[0], "recorded_at": r[1], "started_at": r[2], "title": r[3], "alertname": r[4],
                    # the service the alert named, even when its own signals showed nothing
                    "service": r[5] or _request_service(r[11]), "signature": r[6], "first_hypothesis_s": r[7],
                    "total_s": r[8], "source": r[9], "alert_status": r[10],
                }
                for r in rows
            ]
            self._with_outcomes(cur, invs)
        out = []
        for inv in invs:
            top = inv["hypotheses"][0] if inv["hypotheses"] else None
            out.append(
                {
                    "investigation_id": inv["id"],
                    "alert": inv["alertname"],
                    "service": inv["service"],
                    "started_at": _rfc3339(inv["started_at"]),
                    "top": f"{top['fault']}@{top['service']}" if top else None,
                    "verdicts": [
                        {"verdict": v["verdict"], "cause": f"{v['fault']}@{v['service']}", "at": _rfc3339(v["at"]),
                         "reason": v["reason"], "note": v["note"]}
                        for v in inv["verdicts"]
                    ],
                    "source": inv["source"],
                    "recorded_at": _rfc3339(inv["recorded_at"]),
                    "recorded_at_unix": inv["recorded_at"],
                    "incident": inv["title"],
                    "alertname": inv["alertname"],
                    "signature": inv["signature"],
                    "top_hypothesis": (
                        {"fault": top["fault"], "service": top["service"], "confidence": top["confidence"],
                         "status": top["status"]}
                        if top else None
                    ),
                    "verdict": verdict_summary(inv),
                    "first_hypothesis_s": inv["first_hypothesis_s"],
                    "total_s": inv["total_s"],
                    "alert_status": inv["alert_status"],
                }
            )
        return out

    def recorded(self, investigation_id: str) -> tuple[Report, InvestigationRequest | None]:
        """The recorded ``compass-investigation/1`` report of a past investigation, as it was
        when it finished, and the request it ran on (None when not recorded); raises
        ``UnknownInvestigation``."""
        with self._connect() as cur:
            row = None if self._empty(cur) else cur.execute(
                "SELECT report_json, request_json FROM investigations WHERE id = ?", [investigation_id]
            ).fetchone()
        if row is None:
            raise UnknownInvestigation(f"no investigation {investigation_id!r} in {self.path} (see `compass history`)")
        request = InvestigationRequest.model_validate_json(row[1]) if row[1] else None
        return Report.model_validate_json(row[0]), request

    def stats(self, now: float | None = None, baseline_minutes: float | None = None) -> dict[str, Any]:
        """Accuracy as judged by the engineer, and time to first hypothesis, over the last
        7 and 30 days (by when each investigation was recorded)."""
        now = time.time() if now is None else now
        out: dict[str, Any] = {"now": _rfc3339(now), "windows": {}}
        invs: list[dict[str, Any]] = []
        with self._connect() as cur:
            if not self._empty(cur):
                rows = cur.execute(
                    "SELECT id, recorded_at, first_hypothesis_s, total_s, waited_s FROM investigations "
                    "WHERE recorded_at > ? AND recorded_at <= ?",
                    [now - 30 * DAY_S, now],
                ).fetchall()
                invs = self._with_outcomes(cur, [{"id": i, "recorded_at": t, "first_s": f, "total_s": tt,
                                                  "waited_s": w} for i, t, f, tt, w in rows])
        for days in (7, 30):
            window = [i for i in invs if i["recorded_at"] > now - days * DAY_S]
            out["windows"][f"{days}d"] = window_stats(window)
            out["windows"][f"{days}d"]["time_saved"] = time_saved(window, baseline_minutes)
        return out

    def outcomes(self) -> list[dict[str, Any]]:
        """Every recorded investigation (id, alertname, service, started_at) with its ranked
        hypotheses and verdicts, read in one short transaction: what ``compass eval`` scores against."""
        with self._connect() as cur:
            if self._empty(cur):
                return []
            rows = cur.execute("SELECT id, alertname, service, started_at FROM investigations").fetchall()
            return self._with_outcomes(
                cur, [{"id": i, "alertname": a, "service": s, "started_at": t} for i, a, s, t in rows]
            )

    def investigation(self, investigation_id: str) -> dict[str, Any]:
        """One recorded investigation: its report, when it ran, and the engineer's verdicts.
        Raises ``UnknownInvestigation``."""
        with self._connect() as cur:
            row = None if self._empty(cur) else cur.execute(
                "SELECT id, recorded_at, started_at, report_json FROM investigations WHERE id = ?", [investigation_id]
            ).fetchone()
            if row is None:
                raise UnknownInvestigation(
                    f"no investigation {investigation_id!r} in {self.path} (see `compass history`)"
                )
            inv = {"id": row[0], "recorded_at": row[1], "started_at": row[2],
                   "report": Report.model_validate_json(row[3])}
            self._with_outcomes(cur, [inv])
        return inv

    def model_costs(self, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
        """Per role and model over the last ``days``: spend, calls, failures, tokens, latency,
        how often its output moved the ranking and how often what it proposed was the cause
        the engineer confirmed (read from each recorded report's ``cost.model_calls``)."""
        now = time.time() if now is None else now
        with self._connect() as cur:
            if self._empty(cur):
                return []
            rows = cur.execute(
                "SELECT id, report_json FROM investigations WHERE recorded_at > ? AND recorded_at <= ?",
                [now - days * DAY_S, now],
            ).fetchall()
            invs = self._with_outcomes(cur, [{"id": i, "report": r} for i, r in rows])
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for inv in invs:
            try:
                calls = (json.loads(inv["report"]).get("cost") or {}).get("model_calls") or []
            except (ValueError, TypeError):
                continue
            cause, _ = outcome(inv)
            for c in calls:
                key = (str(c.get("role")), str(c.get("model")))
                a = out.setdefault(key, {"role": key[0], "model": key[1], "usd": 0.0, "calls": 0, "failed": 0,
                                         "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0,
                                         "changed_ranking": 0, "judged": 0, "confirmed": 0})
                a["calls"] += 1
                a["failed"] += c.get("status") != "ok"
                a["usd"] += float(c.get("usd") or 0.0)
                a["prompt_tokens"] += int(c.get("prompt_tokens") or 0)
                a["completion_tokens"] += int(c.get("completion_tokens") or 0)
                a["latency_s"] += float(c.get("latency_s") or 0.0)
                a["changed_ranking"] += bool(c.get("changed_ranking"))
                if cause is not None and c.get("status") == "ok":
                    a["judged"] += 1
                    a["confirmed"] += f"{cause[0]}@{cause[1]}" in (c.get("proposed") or [])
        result = []
        for a in sorted(out.values(), key=lambda a: (-a["usd"], a["role"], a["model"])):
            a["usd"] = round(a["usd"], 8)
            a["latency_mean_s"] = round(a["latency_s"] / a["calls"], 3) if a["calls"] else None
            a["latency_s"] = round(a["latency_s"], 3)
            a["confirmed_share"] = round(a["confirmed"] / a["judged"], 4) if a["judged"] else None
            result.append(a)
        return result

    def close(self) -> None:
        """Close (idempotent). Nothing is held open between operations, so this only stops
        this Store from being used again."""
        self._closed = True

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- outcomes


def outcome(inv: dict[str, Any]) -> tuple[tuple[str, str] | None, set[tuple[str, str]]]:
    """What the engineer said an investigation's cause was, and which causes they rejected.

    The latest ``actual`` wins; otherwise the latest ``confirm``. A rejection is cancelled
    by a later confirmation of the same cause.
    """
    cause: tuple[str, str] | None = None
    actual_seen = False
    rejected: set[tuple[str, str]] = set()
    for v in inv["verdicts"]:
        c = (v["fault"], v["service"])
        if v["verdict"] == "actual":
            cause, actual_seen = c, True
            rejected.discard(c)
        elif v["verdict"] == "confirm":
            if not actual_seen:
                cause = c
            rejected.discard(c)
        elif v["verdict"] == "reject":
            rejected.add(c)
            if cause == c:
                cause, actual_seen = None, False
    return cause, rejected


def verdict_summary(inv: dict[str, Any]) -> str:
    """One word or two for the history table: confirmed, corrected to X, rejected, or none."""
    cause, rejected = outcome(inv)
    top = inv["hypotheses"][0] if inv["hypotheses"] else None
    top_cause = (top["fault"], top["service"]) if top else None
    if cause is not None:
        if cause == top_cause:
            return "confirmed"
        return f"corrected: {cause[0]}@{cause[1]}"
    if top_cause is not None and top_cause in rejected:
        return "top rejected"
    if rejected:
        return "rejected"
    return "-"


def window_stats(invs: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy as the engineer judged it: top-1 over every investigation with a verdict on
    its cause or its top hypothesis; top-3 and corrected over those with a named cause."""
    judged = named = top1 = top3 = corrected = 0
    for inv in invs:
        cause, rejected = outcome(inv)
        ranked = [(h["fault"], h["service"]) for h in inv["hypotheses"]]
        if cause is None:
            if ranked and ranked[0] in rejected:
                judged += 1  # the top one was wrong, and the engineer did not say what was right
            continue
        judged += 1
        named += 1
        if ranked[:1] == [cause]:
            top1 += 1
        else:
            corrected += 1
        if cause in ranked[:3]:
            top3 += 1
    firsts = [i["first_s"] for i in invs if i["first_s"] is not None]
    waits = [i["waited_s"] for i in invs if i.get("waited_s") is not None]

    def share(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    return {
        "investigations": len(invs),
        "judged": judged,
        "top1": share(top1, judged),
        "top3": share(top3, named),
        "corrected": share(corrected, named),
        "first_hypothesis_s": {
            "n": len(firsts),
            "median": round(statistics.median(firsts), 3) if firsts else None,
            "mean": round(statistics.fmean(firsts), 3) if firsts else None,
        },
        # what the engineer waited in the app: launch to the first hypothesis on screen
        "waited_s": {
            "n": len(waits),
            "median": round(statistics.median(waits), 3) if waits else None,
            "mean": round(statistics.fmean(waits), 3) if waits else None,
        },
    }


SAME_SITTING_S = 1800.0
"""A confirmation within this long of the investigation finishing was given while reading it."""


def time_saved(invs: list[dict[str, Any]], baseline_minutes: float | None = None) -> dict[str, Any]:
    """Minutes saved over investigations whose cause the engineer confirmed or named.

    For each: the engineer's own estimate of how long finding it would have taken without
    COMPASS (asked once at confirmation), else ``baseline_minutes`` from the config, minus
    COMPASS's time to the confirmed cause: from when it started to the confirmation when that
    came in the same sitting (within 30 min of the investigation finishing), else the
    investigation's own run time. Never negative per investigation."""
    saved = 0.0
    counted = estimated = by_baseline = 0
    compass_min: list[float] = []
    for inv in invs:
        cause, _ = outcome(inv)
        if cause is None:
            continue
        verdict = next((v for v in reversed(inv["verdicts"]) if (v["fault"], v["service"]) == cause
                        and v["verdict"] in ("confirm", "actual")), None)
        if verdict is None:
            continue
        est = next((v.get("minutes_estimate") for v in inv["verdicts"] if v.get("minutes_estimate")), None)
        if est is None:
            if baseline_minutes is None:
                continue
            est, by_baseline = baseline_minutes, by_baseline + 1
        else:
            estimated += 1
        total = float(inv.get("total_s") or 0.0)
        finished = float(inv["recorded_at"])
        started = finished - total
        took = (verdict["at"] - started) if verdict["at"] - finished <= SAME_SITTING_S else total
        took_min = max(0.0, took) / 60.0
        compass_min.append(took_min)
        saved += max(0.0, float(est) - took_min)
        counted += 1
    return {
        "minutes": round(saved, 1),
        "investigations": counted,
        "from_estimates": estimated,
        "from_baseline": by_baseline,
        "baseline_minutes": baseline_minutes,
        "compass_minutes_median": round(statistics.median(compass_min), 2) if compass_min else None,
        "method": "your estimate at confirmation (else the configured baseline_minutes) minus COMPASS's time "
                  "to the confirmed cause (to your confirmation when given within 30 min, else its run time)",
    }


def _request_service(request_json: str | None) -> str | None:
    """The alerting service recorded with an investigation's request."""
    if not request_json:
        return None
    try:
        return json.loads(request_json).get("service")
    except (ValueError, AttributeError):
        return None

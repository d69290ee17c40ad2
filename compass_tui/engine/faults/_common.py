"""Helpers that several fault modules share: how evidence says when, what an error line of a
service's own looks like, which names are databases, the change events of the window, and
how a client's pool and a database are tied together."""

from __future__ import annotations

import re

import numpy as np

from compass_tui.engine.context import Ctx, rate_lag
from compass_tui.engine.discovery import POD_HASH
from compass_tui.engine.timeseries import fmt_delta, fmt_time
from compass_tui.models import Evidence

OWN_ERROR = re.compile(r"error|exception|fail|fatal|panic|invalid|null|undefined|cannot|unsupported|illegal|not initialized|"
                       r"missing|traceback|segfault|assert|unexpected|denied|crash", re.I)
NOT_A_PEER = {"http", "https", "www", "localhost", "api", "svc", "default", "null", "none", "unknown", "true", "false",
              "error", "upstream", "server", "host", "peer", "cluster", "local", "internal", "prod", "production"}
DB_NAME = re.compile(r"(^|[-_])(pg|postgres|postgresql|mysql|mariadb|db|database|rds|aurora|cockroach|mongo)([-_]|$)|(db|sql)$", re.I)
DB_SIGNALS = ("db_tx_duration", "db_locks", "db_active", "db_slow_rate")


def rel(ctx: Ctx, t: float | None) -> str:
    """``t`` relative to the symptom's onset, for an evidence line."""
    if t is None:
        return "before the window"
    return fmt_delta(ctx.onset - t) + " the symptom"


def closeness(ctx: Ctx, t: float, before: float = 1800.0) -> float:
    """1 when a cause starts at/just before the onset, falling off over ``before`` seconds."""
    d = ctx.onset - t
    if d < -ctx.tol:
        return 0.0
    return float(max(0.0, 1.0 - max(d, 0.0) / before))


def frag(line: str) -> str:
    """A literal piece of the line that identifies its template (for a |= filter)."""
    pieces = re.findall(r"[A-Za-z][A-Za-z0-9.$_:;,()' -]{6,80}", line)
    pieces = [p.strip() for p in pieces if not re.match(r"(ts|time|level|msg)\b", p.strip(), re.I)]
    pieces = [p for p in pieces if len(p) >= 6 and '"' not in p]
    if not pieces:
        return line.strip()[:40].replace('"', "")
    return max(pieces, key=len)[:60].strip()


def trace_evidence(ctx: Ctx, svc: str, summary: str, supports: bool = True) -> Evidence:
    """Evidence read from spans to or from ``svc``."""
    return Evidence(kind="trace", summary=summary, supports=supports, source=ctx.source,
                    query=f'{{ span.peer.service = "{svc}" || resource.service.name = "{svc}" }}')


def change_events(ctx: Ctx) -> dict[str, list[tuple[float, str, str, str]]]:
    """service -> [(time, deploy|config, how we know, query)] within the window."""
    out: dict[str, list[tuple[float, str, str, str]]] = {}
    known = ctx.stack.services | ctx.graph.nodes()
    for a in ctx.annotations:
        tags = [t.lower() for t in a.tags]
        kind = "deploy" if any(t in ("deploy", "deployment", "release", "rollout") for t in tags) else \
            "config" if any(t in ("config", "configuration", "feature-flag", "flag", "feature_flag") for t in tags) else None
        if kind is None:
            txt = a.text.lower()
            kind = "deploy" if re.search(r"deploy|release|rolled out|rollout", txt) else \
                "config" if re.search(r"config|flag", txt) else None
        if kind is None:
            continue
        svc = None
        for t in a.tags:
            m = re.match(r"(?:service|svc|app|job)[:=](.+)", t)
            if m:
                svc = m.group(1)
        if svc is None:
            svc = next((k for k in sorted(known, key=len, reverse=True) if re.search(rf"\b{re.escape(k)}\b", a.text)), None)
        if svc:
            out.setdefault(svc, []).append((a.time, kind, f'annotation "{a.text}"', "annotations"))
    g = ctx.grid
    for key, s in ctx.stack.signals.get("version_present", {}).items():
        ok = np.isfinite(s.values)
        if not ok.any():
            continue
        first = float(g.times[np.argmax(ok)])
        if first > g.start + 2 * g.step:
            out.setdefault(s.service, []).append((first, "deploy", f"version {s.sub} appeared", s.query))
    for key, s in ctx.stack.signals.get("config_reload", {}).items():
        v = s.values
        ok = np.isfinite(v)
        if ok.sum() < 3:
            continue
        vv = v[ok]
        tt = g.times[ok]
        jumps = np.nonzero(np.diff(vv) > 0)[0]
        for j in jumps:
            t = float(vv[j + 1]) if g.start <= vv[j + 1] <= g.end else float(tt[j + 1])
            out.setdefault(s.service, []).append((t, "config", "config reloaded", s.query))
    for svc, t, how, query in rollouts(ctx):
        out.setdefault(svc, []).append((t, "deploy", how, query))
    if ctx.logs:
        for (svc, cls), ts in ctx.logs.class_hits.items():
            if cls not in ("deploy", "config"):
                continue
            post = [t for t in ts if t > g.baseline_end - 1800]
            base = [t for t in ts if t <= g.baseline_end - 1800]
            if post and len(base) <= 1:
                out.setdefault(svc, []).append((post[0], cls, f"{cls} log line", "logs"))
    return out


ROLLOUT = "new pods"
"""How a rollout read from pod names is told (a change event's "how we know")."""


def rollouts(ctx: Ctx) -> list[tuple[float, str, str, str]]:
    """(service, time, how we know, query) of each rollout seen in per-pod series: pods of a
    new ReplicaSet that appeared inside the window while an older one's were running."""
    from compass_tui.engine.localise import is_per_pod  # the localisation imports the agents that import this

    g = ctx.grid
    t = g.times
    seen: dict[tuple[str, str], list] = {}  # (service, hash) -> [first, last, query]
    for sig in sorted(ctx.stack.signals):  # in name order, so every backend cites the same series
        if not is_per_pod(sig):
            continue
        series = ctx.stack.signals[sig]
        for key in sorted(series):
            s = series[key]
            # a Deployment's pod; a new pod-template hash is a new ReplicaSet (a restart keeps it)
            m = POD_HASH.match(s.sub or "")
            ok = np.isfinite(s.values)
            if m is None or m.group("rs") is None or not s.service or not ok.any():
                continue
            # a rate's first point comes a little after the pod's first sample
            first = float(t[np.argmax(ok)]) - rate_lag(s.query, g.step)
            last = float(t[len(ok) - 1 - np.argmax(ok[::-1])])
            cur = seen.setdefault((s.service, m.group("rs")), [first, last, s.query])
            cur[0], cur[1] = min(cur[0], first), max(cur[1], last)
    out = []
    for (svc, rs), (first, _, query) in sorted(seen.items(), key=lambda kv: kv[1][0]):
        if first <= g.start + 2 * g.step:
            continue
        old = [r for (sv, r), (f0, l0, _) in seen.items() if sv == svc and r != rs and f0 < first - g.step and l0 >= first - 2 * g.step]
        if old:
            out.append((svc, first, f"{ROLLOUT} (ReplicaSet {rs}) replaced {old[0]}'s", query))
    return out


def pool_target(ctx: Ctx, svc: str, pool: str | None) -> str | None:
    """The database a client's pool points at: the pool's own name when it names a known
    database service, else the client's one database callee."""
    dbs = {s.service for sig in (*DB_SIGNALS, "db_up") for s in ctx.stack.signals.get(sig, {}).values()}
    if pool and pool in dbs:
        return pool
    if pool:
        for d in dbs:
            if d in pool or pool in d:
                return d
    callees = [c for c in ctx.graph.callees(svc) if c in dbs or DB_NAME.search(c)]
    if len(callees) == 1:
        return callees[0]
    # a generic pool name (HikariPool-1): the database named after its client
    named = [d for d in (callees or dbs) if svc in d or d.split("-")[0] in svc.split("-")]
    named = [d for d in named if svc in d] or named
    return named[0] if len(named) == 1 else None


def db_change(ctx: Ctx, db: str, slowness_only: bool = False):
    """The strongest rising database-server signal of a database: (z, onset, signal, change).
    Active-query counts rise with load too, so they count only when nothing better moved."""
    best = None
    sigs = ("db_tx_duration", "db_locks", "db_slow_rate") if slowness_only else ("db_tx_duration", "db_locks", "db_slow_rate", "db_active")
    for sig in sigs:
        if sig == "db_active" and best is not None:
            break
        # lock and query counts are small integers: one stray lock is not a slow database
        floor = 1.0 if sig in ("db_locks", "db_active") else 0.05
        ch = ctx.chg(sig, db, 1, rel_floor=0.2, abs_floor=floor)
        if ch is None or not ch.rose or ch.ratio < 1.5:
            continue
        if sig in ("db_locks", "db_active") and ch.after - ch.baseline < 2.0:
            continue
        if best is None or ch.z > best[0]:
            onset = aged_start(ctx, db, ch) if sig == "db_tx_duration" else ch.onset
            best = (ch.z, onset, sig, ch)
    return best


def aged_start(ctx: Ctx, db: str, ch) -> float | None:
    """The longest transaction's duration is its age: it grows steadily from the moment the
    transaction began, long before it crosses any threshold. Where the first points of the
    rise lie on one rising line, the slowness began where that line leaves the baseline (read
    as an age where it grows with the clock; at most an hour before the crossing); otherwise
    at the crossing."""
    s = ctx.series("db_tx_duration", db)
    if s is None or ch.onset is None:
        return ch.onset
    t = ctx.grid.times
    idx = [i for i in np.nonzero(t >= ch.onset)[0][:6] if np.isfinite(s.values[i])]
    if len(idx) < 3:
        return ch.onset
    x, y = t[idx] - ch.onset, s.values[idx]
    slope, icpt = np.polyfit(x, y, 1)
    fit = slope * x + icpt
    total = float(np.sum((y - y.mean()) ** 2))
    if slope <= 0 or total <= 0 or 1.0 - float(np.sum((y - fit) ** 2)) / total < 0.9:
        return ch.onset  # not one thing growing steadily: a gauge of something else
    if 0.5 <= slope <= 2.0:
        # it ages with the clock: read as an age, its first value says when it began
        start = ch.onset - (float(y[0]) - ch.baseline)
    else:
        start = ch.onset + (ch.baseline - icpt) / slope
    return max(min(float(start), ch.onset), ch.onset - 3600.0)

"""The deterministic specialist agents. Each proposes hypotheses for its faults of the
catalog from the signals that really exist, with the evidence that supports or contradicts
them; disproof.py then runs the generic checks and the competing explanations."""

from __future__ import annotations

import re

import numpy as np

from compass_tui.engine.context import Candidate, Ctx
from compass_tui.engine.graph import median
from compass_tui.models import Evidence
from compass_tui.engine.timeseries import first_crossing, fmt_delta, fmt_ratio, fmt_time, slope_per_s

OWN_ERROR = re.compile(r"error|exception|fail|fatal|panic|invalid|null|undefined|cannot|unsupported|illegal|not initialized|"
                       r"missing|traceback|segfault|assert|unexpected|denied|crash", re.I)
NOT_A_PEER = {"http", "https", "www", "localhost", "api", "svc", "default", "null", "none", "unknown", "true", "false",
              "error", "upstream", "server", "host", "peer", "cluster", "local", "internal", "prod", "production"}
DB_NAME = re.compile(r"(^|[-_])(pg|postgres|postgresql|mysql|mariadb|db|database|rds|aurora|cockroach|mongo)([-_]|$)|(db|sql)$", re.I)


def _rel(ctx: Ctx, t: float | None) -> str:
    if t is None:
        return "before the window"
    return fmt_delta(ctx.onset - t) + " the symptom"


def _closeness(ctx: Ctx, t: float, before: float = 1800.0) -> float:
    """1 when a cause starts at/just before the onset, falling off over ``before`` seconds."""
    d = ctx.onset - t
    if d < -ctx.tol:
        return 0.0
    return float(max(0.0, 1.0 - max(d, 0.0) / before))


# ------------------------------------------------------------------ infrastructure


def infrastructure(ctx: Ctx) -> list[Candidate]:
    out: list[Candidate] = []
    services = set()
    for sig in ("cpu_util", "cpu_cores", "cpu_throttle", "mem_util", "mem_bytes", "heap_util", "heap_bytes", "disk_free"):
        services |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    if ctx.logs:
        services |= {svc for (svc, cls) in ctx.logs.class_hits if cls == "disk"}
    for svc in sorted(services):
        c = _cpu(ctx, svc)
        if c:
            out.append(c)
        c = _memory(ctx, svc)
        if c:
            out.append(c)
        c = _disk(ctx, svc)
        if c:
            out.append(c)
    return out


def _cpu(ctx: Ctx, svc: str) -> Candidate | None:
    best = None
    for sig, level_ok in (("cpu_util", 0.8), ("cpu_throttle", 0.2), ("cpu_cores", None)):
        ch = ctx.chg(sig, svc, 1)
        if ch is None or not np.isfinite(ch.baseline):
            continue
        # without a limit, saturation can only be read from a large rise
        # it must matter in cores or against the limit: 20x of almost nothing is nothing
        small = (sig == "cpu_cores" and ch.after - ch.baseline < 0.05) or \
            (sig == "cpu_util" and ch.after < 0.3) or (sig == "cpu_throttle" and ch.after < 0.05)
        if ch.rose and not small and ch.ratio >= (1.3 if level_ok is not None else 1.6):
            level = (0.7 if ch.ratio < 2.0 else 1.0) if level_ok is None else min(1.0, ch.after / level_ok)
            score = min(1.0, 0.35 + 0.1 * min(ch.z, 6)) * (0.6 + 0.4 * level)
            if best is None or score > best[0]:
                best = (score, sig, ch)
    util = ctx.chg("cpu_util", svc, 1, rel_floor=0.02, abs_floor=0.01, k=3.0)
    if best is None and util is not None and np.isfinite(util.baseline) and util.onset is not None \
            and util.after >= 0.95 and util.baseline <= 0.9:
        # pinned at its limit: the rise may be small when it was already running hot
        best = (0.6 + min(0.3, (util.after - util.baseline) * 2), "cpu_util", util)
    if best is None:
        return None
    score, sig, ch = best
    s = ctx.series(sig, svc)
    what = {"cpu_util": "CPU usage against its limit", "cpu_throttle": "CPU throttling", "cpu_cores": "CPU usage"}[sig]
    c = Candidate("cpu_saturation", svc, "infrastructure", score,
                  f"{svc} is CPU-saturated ({what} {ch.baseline:.2f} -> {ch.after:.2f})", ch.onset)
    c.evidence.append(ctx.metric_evidence(s, f"{what} on {svc} rose from {ch.baseline:.2f} to {ch.after:.2f} at {fmt_time(ch.onset)}, {_rel(ctx, ch.onset)}", onset=ch.onset))
    load = None
    for lsig in ("ok_rate", "request_rate"):
        lc = ctx.chg(lsig, svc, 1, rel_floor=0.15, k=3.0, must_hold=False)
        if lc is not None and lc.rose and np.isfinite(lc.ratio):
            load = lc if load is None or lc.ratio > load.ratio else load
    load_series = ctx.series("request_rate", svc)
    if load is None and load_series is None:
        # a database or cache counts no requests of its own: its callers count them
        for key, cs in ctx.stack.signals.get("client_rate", {}).items():
            if key.endswith("|" + svc):
                lc = ctx.chg("client_rate", key, 1, rel_floor=0.15, k=3.0, must_hold=False)
                if lc is not None and lc.rose and np.isfinite(lc.ratio) and (load is None or lc.ratio > load.ratio):
                    load, load_series = lc, cs
    if load is not None and load.ratio >= 0.7 * min(ch.ratio, 3.0):
        # CPU per request did not change: the CPU follows the traffic, it does not lead
        c.strength *= 0.6
        c.evidence.append(ctx.metric_evidence(load_series or s, f"{svc}'s traffic rose {fmt_ratio(load.ratio)} with its CPU: the CPU follows the load", supports=False))
    lat = ctx.chg("latency_p99", svc, 1, rel_floor=0.2) or ctx.chg("latency_mean", svc, 1, rel_floor=0.2)
    err = ctx.chg("error_ratio", svc, 1, abs_floor=0.002, rel_floor=0.3)
    if (lat is not None and lat.rose) or svc in ctx.affected:
        c.strength = min(1.0, c.strength + 0.1)
    elif lat is not None or err is not None:
        # a saturated CPU shows in the service's own latency; this one's did not move
        c.strength *= 0.6
        c.evidence.append(ctx.metric_evidence(ctx.series("latency_p99", svc) or ctx.series("latency_mean", svc) or s,
                                              f"latency of {svc} did not rise with its CPU", supports=False))
    return c


def _mem_signal(ctx: Ctx, svc: str):
    for sig in ("mem_util", "heap_util", "mem_bytes", "heap_bytes"):
        s = ctx.series(sig, svc)
        if s is not None and np.isfinite(s.values).sum() > 5:
            return sig, s
    return None, None


def _memory(ctx: Ctx, svc: str) -> Candidate | None:
    sig, s = _mem_signal(ctx, svc)
    if s is None:
        return None
    g = ctx.grid
    lead = max(1800.0, 0.6 * (ctx.onset - g.start))
    t, v = g.times, s.values
    # up to the alert: a slow leak shows in latency long before the restarts that page
    win = (t >= ctx.onset - lead) & (t <= max(ctx.onset + 3 * ctx.tol, g.alert_at + ctx.tol)) & np.isfinite(v)
    if win.sum() < 4:
        return None
    idx = np.nonzero(win)[0]
    # Garbage collection saws memory up and down every few minutes; a leak lifts the whole
    # saw. Follow the envelope (the rolling max over ~5 min) and split only at restarts
    # (the envelope falls by a quarter or more).
    w = max(3, int(round(300.0 / g.step)))
    env = np.full_like(v, np.nan)
    for j in idx:
        lo = max(idx[0], j - w + 1)
        seg_vals = v[lo:j + 1]
        seg_vals = seg_vals[np.isfinite(seg_vals)]
        env[j] = seg_vals.max() if len(seg_vals) else np.nan
    segments, seg_start = [], idx[0]
    for a, b in zip(idx[:-1], idx[1:]):
        if v[b] < 0.75 * env[a]:
            segments.append((seg_start, a))
            seg_start = b
    segments.append((seg_start, idx[-1]))
    start_i, peak_i = max(segments, key=lambda ab: ab[1] - ab[0])
    # skip the envelope's warm-up at the segment start (it only sees part of a saw tooth)
    start_i = min(peak_i, start_i + w - 1)
    t_start, t_peak = float(t[start_i]), float(t[peak_i])
    span = t_peak - t_start
    if span < max(6 * g.step, 600.0):
        return None
    v_env = env
    slope, r2 = slope_per_s(g, v_env, t_start, t_peak)
    lvl0 = float(v_env[start_i])
    growth = slope * span / max(abs(lvl0), 1e-9)
    restarts = _restarts_near(ctx, svc)
    oom_lines = ctx.logs.hits(svc, "oom", ctx.onset - lead, ctx.onset + 600) if ctx.logs else []
    util = sig.endswith("_util")
    peak = float(np.nanmax(v[start_i:peak_i + 1]))
    score = 0.0
    rise = slope * span
    # near a limit a leak has little room left: a few points of the limit is growth enough
    near_limit = util and peak >= 0.9 and rise >= 0.06
    # a leak grows all along; one step (a restart to a higher level, a cache warming) is not one
    jumps = np.diff(v_env[start_i:peak_i + 1])
    jumps = jumps[np.isfinite(jumps)]
    one_step = rise > 0 and len(jumps) and float(jumps.max()) >= 0.5 * rise
    if slope > 0 and (growth >= 0.15 or near_limit) and r2 >= 0.5 and not one_step:
        score = 0.45 + min(0.25, growth * 0.3) + 0.1 * r2
        if util and peak >= 0.85:
            score += 0.15
    if restarts is not None and score > 0:
        score += 0.1
    if oom_lines and score > 0:
        score += 0.1
    if score <= 0:
        return None
    # the leak began with the first stretch that grew too (restarts only reset it)
    leak_start = t_start
    for a, b in segments:
        if b - a >= 3 and (a, b) != (start_i, peak_i):
            sl, rr = slope_per_s(g, v_env, float(t[a]), float(t[b]))
            if sl > 0 and rr >= 0.5 and float(t[a]) < leak_start:
                leak_start = float(t[a])
    c = Candidate("memory_leak", svc, "infrastructure", min(score, 1.0),
                  f"{svc} is leaking memory ({growth * 100:.0f}% growth before the symptom)", leak_start)
    level = f"peak {peak * 100:.0f}% of its limit" if util else f"peak {_bytes(peak)}" if "bytes" in sig else f"peak {peak:.2f}"
    c.evidence.append(ctx.metric_evidence(s, f"memory of {svc} grew steadily {growth * 100:.0f}% over {span / 60:.0f} min up to {fmt_time(t_peak)} (R² {r2:.2f}), {level}", onset=t_start))
    if restarts is not None:
        rs, rt = restarts
        c.evidence.append(ctx.metric_evidence(rs, f"{svc} restarted at {fmt_time(rt)} (OOM kill or crash)", onset=rt))
    if oom_lines and ctx.logs:
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)out ?of ?memory|oom|heap space|gc overhead"',
                                           f"{len(oom_lines)} out-of-memory lines from {svc}"))
    return c


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} PiB"


def _restarts_near(ctx: Ctx, svc: str):
    for sig in ("restarts", "process_restarts"):
        s = ctx.series(sig, svc)
        if s is None:
            continue
        g = ctx.grid
        m = (g.times >= ctx.onset - 1800) & (g.times <= ctx.onset + 3 * ctx.tol) & np.isfinite(s.values)
        base = s.values[(g.times < ctx.onset - 1800) & np.isfinite(s.values)]
        if m.any() and np.nanmax(s.values[m]) > 0.5 and (len(base) == 0 or np.nanmax(base) < 0.5):
            t = float(g.times[m][np.argmax(s.values[m] > 0.5)])
            return s, t
    return None


def _disk(ctx: Ctx, svc: str) -> Candidate | None:
    s = ctx.series("disk_free", svc)
    g = ctx.grid
    lines = ctx.logs.hits(svc, "disk", ctx.onset - 1800) if ctx.logs else []
    base_lines = ctx.logs.hits(svc, "disk", None, g.baseline_end) if ctx.logs else []
    new_lines = len(lines) >= 2 and len(lines) > 3 * len(base_lines)
    low, t = 1.0, None
    from_lines = False
    if s is not None:
        upto = (g.times <= ctx.onset + ctx.tol) & np.isfinite(s.values)
        if upto.any():
            low = float(np.min(s.values[upto]))
            t = first_crossing(g, s.values, 0.05, -1)
    if low > 0.1 and not new_lines:
        return None
    if s is not None and low <= 0.1:
        score = 0.9 if low <= 0.02 else 0.75 if low <= 0.05 else 0.45
    else:
        score = 0.6  # only the logs say so
        t = lines[0] if lines else None
        from_lines = True
    if new_lines:
        score = min(1.0, score + 0.1)
    c = Candidate("disk_full", svc, "infrastructure", score,
                  f"a filesystem of {svc} is full" + (f" ({low * 100:.1f}% free)" if s is not None else ""), t,
                  from_lines=from_lines)
    if s is not None:
        c.evidence.append(ctx.metric_evidence(s, f"free space on {svc} fell to {low * 100:.1f}%" + (f" at {fmt_time(t)}, {_rel(ctx, t)}" if t else ""),
                                              supports=low <= 0.1, onset=t))
    if lines and ctx.logs:
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)no space left|disk full"',
                                           f'{len(lines)} "no space left on device" lines from {svc} (baseline {len(base_lines)})'))
    return c


# ------------------------------------------------------------------ database


def database(ctx: Ctx) -> list[Candidate]:
    out: list[Candidate] = []
    for key, s in ctx.stack.signals.get("pool_util", {}).items():
        c = _pool(ctx, key, s)
        if c:
            out.append(c)
    # pool timeouts in the logs of a client whose pool metrics are not exported
    if ctx.logs:
        with_metrics = {s.service for s in ctx.stack.signals.get("pool_util", {}).values()}
        for (svc, cls), ts in ctx.logs.class_hits.items():
            if cls != "pool" or svc in with_metrics:
                continue
            post = [t for t in ts if t >= ctx.onset - 1800]
            base = [t for t in ts if t <= ctx.grid.baseline_end]
            if len(post) < 3 or len(post) <= 3 * len(base):
                continue
            score = 0.55 + (0.1 if svc in ctx.affected else 0.0) + min(0.1, len(post) / 500)
            c = Candidate("db_connection_pool_exhaustion", svc, "database", score,
                          f"{svc} cannot get connections from its pool (logs)", post[0], from_lines=True)
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)connection is not available|timeout acquiring|pool"',
                                               f"{len(post)} pool-timeout lines from {svc} from {fmt_time(post[0])} (baseline {len(base)}); no pool metrics exported"))
            out.append(c)
    dbs = set()
    for sig in ("db_tx_duration", "db_locks", "db_active", "db_slow_rate"):
        dbs |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    for db in sorted(dbs):
        c = _db_slow(ctx, db)
        if c:
            out.append(c)
    return out


def pool_target(ctx: Ctx, svc: str, pool: str | None) -> str | None:
    """The database a client's pool points at: the pool's own name when it names a known
    database service, else the client's one database callee."""
    dbs = {s.service for sig in ("db_tx_duration", "db_locks", "db_active", "db_slow_rate", "db_up")
           for s in ctx.stack.signals.get(sig, {}).values()}
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


def _pool(ctx: Ctx, key: str, s) -> Candidate | None:
    svc, pool = s.service, s.sub
    g = ctx.grid
    ch = ctx.chg("pool_util", key, 1, rel_floor=0.05)
    vals = s.values
    near = (g.times >= ctx.onset - 1800) & (g.times <= ctx.onset + 3 * ctx.tol) & np.isfinite(vals)
    if not near.any():
        return None
    peak = float(np.max(vals[near]))
    if peak < 0.85:
        return None
    t_sat = first_crossing(g, np.where(g.times >= ctx.onset - 1800, vals, np.nan), 0.95 if peak >= 0.95 else 0.85)
    if t_sat is None and (ch is None or ch.onset is None):
        return None  # touched the max now and then: not a pool that ran out
    # a pool fills over a while: it began when usage left its baseline (kept for ordering
    # against load), it ran out when it reached its max within that sustained rise (an
    # earlier brief touch of the max is not the exhaustion)
    ramp = ch.onset if ch is not None and ch.onset is not None else t_sat
    if ch is not None and ch.onset is not None:
        t_sat = first_crossing(g, np.where(g.times >= ch.onset - g.step, vals, np.nan), 0.95 if peak >= 0.95 else 0.85) or t_sat
    if t_sat is None:
        t_sat = ramp
    pend = ctx.chg("pool_pending", key, 1, abs_floor=0.5)
    tos = ctx.chg("pool_timeouts", key, 1, abs_floor=0.01)
    lines = ctx.logs.hits(svc, "pool", ctx.onset - 1800) if ctx.logs else []
    base_lines = ctx.logs.hits(svc, "pool", None, ctx.grid.baseline_end) if ctx.logs else []
    score = 0.5 + (0.15 if peak >= 0.97 else 0.0)
    if pend is not None and pend.rose:
        score += 0.1
    if tos is not None and tos.rose:
        score += 0.1
    if len(lines) >= 3 and len(lines) > 3 * len(base_lines):
        score += 0.15
    if svc in ctx.affected:
        score += 0.05
    c = Candidate("db_connection_pool_exhaustion", svc, "database", min(score, 1.0),
                  f"{svc} exhausted its connection pool" + (f" {pool}" if pool else ""), t_sat)
    c.evidence.append(ctx.metric_evidence(s, f"pool {pool or ''} of {svc} at {peak * 100:.0f}% of max from {fmt_time(t_sat)}, {_rel(ctx, t_sat)} (baseline {ch.baseline * 100:.0f}%)" if ch else f"pool of {svc} at {peak * 100:.0f}% of max", onset=t_sat))
    if pend is not None and pend.rose:
        c.evidence.append(ctx.metric_evidence(ctx.series("pool_pending", key), f"{pend.after:.0f} requests waiting for a connection (baseline {pend.baseline:.0f})", onset=pend.onset))
    if tos is not None and tos.rose:
        c.evidence.append(ctx.metric_evidence(ctx.series("pool_timeouts", key), f"connection acquisition timeouts on {svc}: {tos.after:.2f}/s", onset=tos.onset))
    if lines and ctx.logs:
        c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |~ "(?i)connection is not available|timeout acquiring|pool"',
                                           f"{len(lines)} pool-timeout lines from {svc} (baseline {len(base_lines)})"))
    c.facts["pool"] = pool
    c.facts["ramp_onset"] = ramp
    return c


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
            best = (ch.z, ch.onset, sig, ch)
    return best


def db_clients(ctx: Ctx, db: str) -> set[str]:
    out = set(ctx.graph.callers(db))
    for key, s in ctx.stack.signals.get("pool_util", {}).items():
        if pool_target(ctx, s.service, s.sub) == db:
            out.add(s.service)
    return out


def _db_slow(ctx: Ctx, db: str) -> Candidate | None:
    best = db_change(ctx, db)
    if best is None:
        return None
    z, onset, sig, ch = best
    clients = db_clients(ctx, db)
    slowed = [c for c in clients if c in ctx.affected]
    score = (0.5 if sig != "db_active" else 0.35) + min(0.25, 0.04 * z)
    if clients and len(slowed) >= max(1, len(clients) // 2):
        score += 0.15
    elif clients and not slowed:
        score *= 0.6  # a slow database slows its clients; none of these did
    elif len(clients) >= 3 and len(slowed) == 1:
        score *= 0.8  # one client of many: more likely that client's own problem
    slow_lines = ctx.logs.hits(db, "db_slow", ctx.onset - 1800) if ctx.logs else []
    base_slow = ctx.logs.hits(db, "db_slow", None, ctx.grid.baseline_end) if ctx.logs else []
    if len(slow_lines) > 2 * max(1, len(base_slow)):
        score += 0.1
    names = {"db_tx_duration": "longest transaction/query time", "db_locks": "locks", "db_active": "active queries",
             "db_slow_rate": "slow queries"}
    c = Candidate("db_slow_queries", db, "database", min(score, 1.0),
                  f"{db} is slow: {names[sig]} up {fmt_ratio(ch.ratio)}", onset)
    c.evidence.append(ctx.metric_evidence(ctx.series(sig, db), f"{names[sig]} on {db} rose {fmt_ratio(ch.ratio)} at {fmt_time(onset)}, {_rel(ctx, onset)}", onset=onset))
    if clients:
        c.evidence.append(ctx.metric_evidence(
            ctx.series("latency_p99", slowed[0]) or ctx.series("latency_mean", slowed[0]) or ctx.series(sig, db),
            f"{len(slowed)} of {len(clients)} clients of {db} slowed or failed: {', '.join(sorted(slowed)) or 'none'}",
            supports=bool(slowed)) if slowed else
            ctx.metric_evidence(ctx.series(sig, db), f"none of the {len(clients)} clients of {db} slowed", supports=False))
    c.facts["clients"] = clients
    c.facts["signal"] = sig
    c.facts["slowed"] = slowed
    return c


# ------------------------------------------------------------------ network


def network(ctx: Ctx) -> list[Candidate]:
    out: list[Candidate] = []
    for svc in {s.service for s in ctx.stack.signals.get("retrans_ratio", {}).values()} | \
               {s.service for s in ctx.stack.signals.get("net_drops", {}).values()}:
        c = _net(ctx, svc)
        if c:
            out.append(c)
    out += _certs(ctx)
    out += _dns(ctx)
    return out


def _net(ctx: Ctx, svc: str) -> Candidate | None:
    best = None
    for sig in ("retrans_ratio", "net_drops"):
        ch = ctx.chg(sig, svc, 1, rel_floor=0.3, abs_floor=1e-4)
        if ch is not None and ch.rose and ch.ratio >= 2.0:
            if best is None or ch.z > best[1].z:
                best = (sig, ch)
    gap = _client_server_gap(ctx, svc)
    if best is None and (gap is None or gap < 3.0):
        return None
    score = 0.0
    c = Candidate("network_degradation", svc, "network", 0.0, f"packet loss or delay on the path to {svc}", None)
    if best is not None:
        sig, ch = best
        score += 0.55 + min(0.2, 0.03 * ch.z)
        c.cause_onset = ch.onset
        what = "TCP retransmits" if sig == "retrans_ratio" else "dropped packets"
        c.evidence.append(ctx.metric_evidence(ctx.series(sig, svc), f"{what} on {svc} rose {fmt_ratio(ch.ratio)} at {fmt_time(ch.onset)}, {_rel(ctx, ch.onset)}", onset=ch.onset))
    if gap is not None and gap >= 3.0:
        score += 0.25
        c.evidence.append(_trace_ev(ctx, svc, f"client-side durations of calls to {svc} are {gap:.1f}x its server-side durations (after the onset vs before)"))
    c.strength = min(score, 1.0)
    return c


def _trace_ev(ctx: Ctx, svc: str, summary: str, supports: bool = True):
    return Evidence(kind="trace", summary=summary, supports=supports, source=ctx.source,
                    query=f'{{ span.peer.service = "{svc}" || resource.service.name = "{svc}" }}')


def _client_server_gap(ctx: Ctx, svc: str) -> float | None:
    """How much more the client-side minus server-side time of calls to svc grew after the
    onset, relative to before (traces)."""
    gaps_b, gaps_p = [], []
    for (a, b), st in ctx.graph.edge_stats.items():
        if b != svc or not st.post_client or not st.post_server:
            continue
        gaps_p.append(median(st.post_client) - median(st.post_server))
        if st.base_client and st.base_server:
            gaps_b.append(median(st.base_client) - median(st.base_server))
    if not gaps_p:
        return None
    gp = float(np.median(gaps_p))
    gb = float(np.median(gaps_b)) if gaps_b else 0.0
    return gp / max(gb, 0.005)


def _certs(ctx: Ctx) -> list[Candidate]:
    out = []
    g = ctx.grid
    for key, s in ctx.stack.signals.get("cert_ttl", {}).items():
        svc = s.service
        ok = np.isfinite(s.values)
        if not ok.any():
            continue
        t_exp = first_crossing(g, s.values, 0.0, -1)
        lines = _caller_lines(ctx, svc, "cert")
        if t_exp is None:
            continue
        already = t_exp <= g.start + g.step
        score = 0.55 + 0.3 * (_closeness(ctx, t_exp, 1800) if not already else 0.2)
        if lines:
            score += 0.15
        c = Candidate("certificate_expired", svc, "network", min(score, 1.0), f"the TLS certificate of {svc} expired at {fmt_time(t_exp)}", t_exp)
        c.evidence.append(ctx.metric_evidence(s, f"certificate of {svc} expired at {fmt_time(t_exp)}, {_rel(ctx, t_exp)}", onset=t_exp))
        if lines and ctx.logs:
            n, callers = lines
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |~ "(?i)certificate|x509|handshake" |= "{svc}"',
                                               f"{n} TLS handshake errors naming {svc} from {', '.join(sorted(callers))}"))
        out.append(c)
    # certificate errors in logs with no expiry metric for that service
    if ctx.logs:
        seen = {c.service for c in out}
        for svc, (n, callers) in _log_peer_faults(ctx, "cert").items():
            if svc in seen or n < 5:
                continue
            first = min((tp.first_post for tp in ctx.logs.templates.values()
                         if "cert" in tp.classes and svc in tp.peers and tp.first_post), default=None)
            c = Candidate("certificate_expired", svc, "network", 0.55 + min(0.3, n / 300),
                          f"TLS handshakes with {svc} fail (certificate)", first, from_lines=True)
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |~ "(?i)certificate|x509|handshake" |= "{svc}"',
                                               f"{n} new TLS certificate errors naming {svc} from {', '.join(sorted(callers))}"))
            out.append(c)
    return out


def _caller_lines(ctx: Ctx, svc: str, cls: str):
    """New lines of a fault class that name ``svc`` (from its callers) or come from it."""
    if not ctx.logs:
        return None
    n, callers = 0, set()
    for tp in ctx.logs.templates.values():
        if cls not in tp.classes or tp.post < 1:
            continue
        if tp.base and tp.post / ctx.logs.post_span < 4 * tp.base / ctx.logs.base_span:
            continue
        if svc in tp.peers or tp.service == svc or svc in tp.example:
            n += tp.post
            callers.add(tp.service)
    return (n, callers) if n else None


def _log_peer_faults(ctx: Ctx, cls: str) -> dict[str, tuple[int, set[str]]]:
    out: dict[str, tuple[int, set[str]]] = {}
    if not ctx.logs:
        return out
    for tp in ctx.logs.templates.values():
        if cls not in tp.classes or not tp.peers:
            continue
        if tp.base and tp.post / ctx.logs.post_span < 4 * tp.base / ctx.logs.base_span:
            continue
        for p in tp.peers:
            n, cs = out.get(p, (0, set()))
            out[p] = (n + tp.post, cs | {tp.service})
    return out


def dns_services(ctx: Ctx) -> set[str]:
    out = set()
    for sig in ("dns_fail_ratio", "dns_servfail_ratio", "dns_lookup"):
        out |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    return out


def _dns(ctx: Ctx) -> list[Candidate]:
    out = []
    new_nohost = 0
    callers: set[str] = set()
    if ctx.logs:
        for tp in ctx.logs.templates.values():
            if "dns" in tp.classes and tp.post >= 2 and (tp.base == 0 or tp.post / ctx.logs.post_span > 4 * tp.base / ctx.logs.base_span):
                new_nohost += tp.post
                callers.add(tp.service)
    for svc in sorted(dns_services(ctx)):
        best = None
        for sig in ("dns_servfail_ratio", "dns_fail_ratio", "dns_lookup"):
            ch = ctx.chg(sig, svc, 1, rel_floor=0.3, abs_floor=0.005 if "ratio" in sig else 0.01)
            if ch is not None and ch.rose and ch.ratio >= 2.0:
                if best is None or ch.z > best[1].z:
                    best = (sig, ch)
        if best is None and not new_nohost:
            continue
        score = 0.0
        c = Candidate("dns_failure", svc, "network", 0.0, f"name resolution through {svc} fails", None)
        if best is not None:
            sig, ch = best
            score += 0.6 + min(0.2, 0.03 * ch.z)
            c.cause_onset = ch.onset
            what = {"dns_servfail_ratio": "SERVFAIL share", "dns_fail_ratio": "failed-lookup share", "dns_lookup": "lookup time"}[sig]
            c.evidence.append(ctx.metric_evidence(ctx.series(sig, svc), f"DNS {what} on {svc} rose {fmt_ratio(ch.ratio)} at {fmt_time(ch.onset)}, {_rel(ctx, ch.onset)}", onset=ch.onset))
        if new_nohost and ctx.logs:
            # resolution errors appearing in many services at once point at DNS itself
            score += 0.55 if (new_nohost >= 20 and len(callers) >= 2 and best is None) else 0.25
            if c.cause_onset is None:
                c.cause_onset = min((tp.first_post for tp in ctx.logs.templates.values()
                                     if "dns" in tp.classes and tp.first_post), default=None)
                c.from_lines = True
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |~ "(?i)no such host|could not resolve|name resolution"',
                                               f'{new_nohost} new "no such host" lines from {", ".join(sorted(callers))}'))
        c.strength = min(score, 1.0)
        out.append(c)
    return out


# ------------------------------------------------------------------ application


def application(ctx: Ctx) -> list[Candidate]:
    out: list[Candidate] = []
    changes = change_events(ctx)
    for svc, events in changes.items():
        for kind in ("deploy", "config"):
            evs = [e for e in events if e[1] == kind]
            c = _change_candidate(ctx, svc, kind, evs)
            if c:
                out.append(c)
    out += _surge(ctx)
    return out


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
    if ctx.logs:
        for (svc, cls), ts in ctx.logs.class_hits.items():
            if cls not in ("deploy", "config"):
                continue
            post = [t for t in ts if t > g.baseline_end - 1800]
            base = [t for t in ts if t <= g.baseline_end - 1800]
            if post and len(base) <= 1:
                out.setdefault(svc, []).append((post[0], cls, f"{cls} log line", "logs"))
    return out


def _change_candidate(ctx: Ctx, svc: str, kind: str, evs) -> Candidate | None:
    if not evs:
        return None
    # the change closest before the onset (or just after, within tolerance)
    before = [e for e in evs if e[0] <= ctx.onset + ctx.tol]
    if not before:
        t, _, how, q = min(evs, key=lambda e: e[0])
        c = Candidate("bad_deploy" if kind == "deploy" else "config_change", svc, "application", 0.2,
                      f"{kind} of {svc} at {fmt_time(t)}", t)
        c.evidence.append(_change_ev(ctx, q, f"{how} at {fmt_time(t)}, {_rel(ctx, t)}", False))
        return c
    # the latest change before the onset; an annotation, a new version label and a
    # "starting" line minutes apart are one rollout: date it by its first sign
    before.sort(key=lambda e: e[0])
    pick = len(before) - 1
    while pick > 0 and before[pick][0] - before[pick - 1][0] <= 300:
        pick -= 1
    t, _, how, q = before[pick]
    close = _closeness(ctx, t, 1800)
    own = _own_errors(ctx, svc, t)
    if own[3] is not None and own[3] - t > 600:
        # trouble that starts long after a rollout is less likely the rollout's doing
        own = (own[0] * max(0.3, 1.0 - (own[3] - t - 600) / 1800), *own[1:])
    fault = "bad_deploy" if kind == "deploy" else "config_change"
    score = 0.25 + 0.3 * close + 0.35 * own[0]
    c = Candidate(fault, svc, "application", min(score, 1.0),
                  f"{'a new version' if kind == 'deploy' else 'a configuration change'} of {svc} brought {own[2]}", t)
    c.evidence.append(_change_ev(ctx, q, f"{how} at {fmt_time(t)}, {_rel(ctx, t)}", True))
    for ev in own[1]:
        c.evidence.append(ev)
    c.facts["own"] = own[0]
    c.facts["err_onset"] = own[3]
    return c


def _change_ev(ctx: Ctx, q: str, summary: str, supports: bool):
    kind = "annotation" if q == "annotations" else "log" if q == "logs" else "metric"
    query = f"annotations(from={int(ctx.grid.start * 1000)}, to={int(ctx.grid.end * 1000)})" if q == "annotations" else \
        (f'{{{ctx.logs.label}=~".+"}} |~ "(?i)starting|version|config|reload|flag"' if q == "logs" and ctx.logs else q)
    return Evidence(kind=kind, summary=summary, supports=supports, source=ctx.log_source if kind == "log" else ctx.source, query=query)


def _own_errors(ctx: Ctx, svc: str, t_change: float):
    """How much of svc's trouble after a change is its own: (0..1, evidence, words, onset)."""
    evidence = []
    score = 0.0
    words = "errors"
    err = ctx.chg("error_ratio", svc, 1, abs_floor=0.002, rel_floor=0.3)
    lat = ctx.chg("latency_p99", svc, 1, rel_floor=0.2) or ctx.chg("latency_mean", svc, 1, rel_floor=0.2)
    onset = None
    soon = t_change + 1800  # a canary or a slow rollout can take a while to bite
    if err is not None and err.rose:
        onset = err.onset
        if onset is not None and t_change - ctx.tol <= onset <= soon:
            score += 0.45
            evidence.append(ctx.metric_evidence(ctx.series("error_ratio", svc), f"error ratio of {svc} rose from {err.baseline * 100:.1f}% to {err.after * 100:.1f}% at {fmt_time(onset)}", onset=onset))
    if lat is not None and lat.rose and lat.onset is not None and t_change - ctx.tol <= lat.onset <= soon:
        score += 0.2 if score else 0.35
        words = "errors and latency" if score > 0.4 else "latency"
        onset = onset or lat.onset
        s = ctx.series("latency_p99", svc) or ctx.series("latency_mean", svc)
        evidence.append(ctx.metric_evidence(s, f"latency of {svc} rose {fmt_ratio(lat.ratio)} at {fmt_time(lat.onset)}", onset=lat.onset))
    if ctx.logs:
        new = [tp for tp in ctx.logs.new_templates(svc) if not tp.inherited and OWN_ERROR.search(tp.example)
               and t_change - ctx.tol <= (tp.first_post or 0) <= soon + 300]
        inh = [tp for tp in ctx.logs.new_templates(svc) if tp.inherited]
        if new:
            score += 0.35
            evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}} |= "{_frag(new[0].example)}"',
                                             f'{len(new)} new error template(s) of its own in {svc}, e.g. "{new[0].example[:120]}" ({new[0].post} lines, none before)'))
        elif inh:
            evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}="{svc}"}}',
                                             f"the new errors of {svc} are inherited from its dependencies (e.g. \"{inh[0].example[:100]}\")", supports=False))
            score *= 0.6
    g = ctx.graph.own_errors.get(svc)
    if g and g[3] >= 10 and g[1] >= 10:
        rate_b, rate_p = g[0] / g[1], g[2] / g[3]
        if rate_p > max(0.02, 3 * rate_b):
            score += 0.15
    return min(score, 1.0), evidence, words, onset


def _frag(line: str) -> str:
    """A literal piece of the line that identifies its template (for a |= filter)."""
    pieces = re.findall(r"[A-Za-z][A-Za-z0-9.$_:;,()' -]{6,80}", line)
    pieces = [p.strip() for p in pieces if not re.match(r"(ts|time|level|msg)\b", p.strip(), re.I)]
    pieces = [p for p in pieces if len(p) >= 6 and '"' not in p]
    if not pieces:
        return line.strip()[:40].replace('"', "")
    return max(pieces, key=len)[:60].strip()


def _surge(ctx: Ctx) -> list[Candidate]:
    rising: dict[str, object] = {}
    sig_of: dict[str, str] = {}
    for svc in ctx.stack.signals.get("request_rate", {}):
        # Successful throughput, and the raw rate unless only errors grew (an error or retry
        # storm inflates the raw rate without more useful load). A ramp need not hold at the
        # symptom's onset; the earliest credible start wins.
        kw = dict(rel_floor=0.15, k=3.0, must_hold=False)
        ok = ctx.chg("ok_rate", svc, 1, **kw) if ctx.series("ok_rate", svc) is not None else None
        tot = ctx.chg("request_rate", svc, 1, **kw)
        options = []
        if ok is not None and ok.rose and ok.ratio >= 1.5:
            options.append(("ok_rate", ok))
        entry = ctx.graph.known and not ctx.graph.callers(svc)
        # at an entry the offered load is what arrives, failing or not; elsewhere the raw
        # rate counts when no caller was failing (and retrying) before it rose
        callers_failing_first = tot is not None and tot.onset is not None and any(
            u in ctx.affected and ctx.affected[u] <= tot.onset + ctx.grid.step * 0.5 for u in ctx.graph.callers(svc))
        if tot is not None and tot.rose and tot.ratio >= 1.5 and (
                entry or ok is None or (np.isfinite(ok.ratio) and ok.ratio >= 1.3) or
                (ctx.graph.known and not callers_failing_first)):
            options.append(("request_rate", tot))
        # more load must matter against the service's usual load, in requests per second
        options = [o for o in options if o[1].onset <= ctx.onset + 600
                   and o[1].after - o[1].baseline >= 0.3 and o[1].baseline >= 0.05]
        if options:
            sig, ch = min(options, key=lambda o: o[1].onset)
            rising[svc] = ch
            sig_of[svc] = sig
    out = []
    for svc, ch in rising.items():
        sig = sig_of[svc]
        # retries: callers that were failing and whose own traffic did not grow resend
        # their failed calls; that is amplification, not new load
        retriers = [u for u in ctx.graph.callers(svc) if u in ctx.affected and u not in rising
                    and ctx.affected[u] < (ch.onset or 0) - ctx.grid.step * 0.5]
        ups = [u for u in ctx.graph.upstream(svc) if u in rising and (rising[u].onset or 0) <= (ch.onset or 0) + ctx.tol]
        score = 0.45 + min(0.3, 0.15 * (ch.ratio - 1.5)) + min(0.1, 0.01 * ch.z)
        if not ctx.graph.callers(svc):
            score += 0.05
        c = Candidate("traffic_surge", svc, "application", min(score, 1.0),
                      f"{svc} receives {fmt_ratio(ch.ratio)} its usual traffic", ch.onset)
        c.evidence.append(ctx.metric_evidence(ctx.series(sig, svc), f"{'successful ' if sig == 'ok_rate' else ''}request rate of {svc} rose {fmt_ratio(ch.ratio)} ({ch.baseline:.1f}/s -> {ch.after:.1f}/s) at {fmt_time(ch.onset)}, {_rel(ctx, ch.onset)}", onset=ch.onset))
        if retriers:
            c.strength *= 0.45
            c.evidence.append(ctx.metric_evidence(ctx.series("error_ratio", retriers[0]) or ctx.series(sig, svc),
                                                  f"its callers {', '.join(sorted(retriers))} were already failing and their own traffic did not grow: retries, not new load",
                                                  supports=False))
        c.facts["ups"] = ups
        out.append(c)
    return out


# ------------------------------------------------------------------ dependencies


def dependencies(ctx: Ctx) -> list[Candidate]:
    out: list[Candidate] = []
    out += _externals(ctx)
    out += _caches(ctx)
    return out


def internal_services(ctx: Ctx) -> set[str]:
    """Services that report their own telemetry (not third parties seen only by callers)."""
    own = set(ctx.stack.signals.get("request_rate", {}))
    for sig in ("cpu_cores", "cpu_util", "mem_bytes", "mem_util", "up", "db_up", "cache_up"):
        own |= {s.service for s in ctx.stack.signals.get(sig, {}).values()}
    own |= set(ctx.graph.own_errors)
    return own


def _externals(ctx: Ctx) -> list[Candidate]:
    internal = internal_services(ctx)
    per_peer: dict[str, list] = {}
    for key, s in ctx.stack.signals.get("client_error_ratio", {}).items():
        per_peer.setdefault(s.sub, []).append(("err", s))
    for key, s in ctx.stack.signals.get("client_latency", {}).items():
        per_peer.setdefault(s.sub, []).append(("lat", s))
    # calls seen only in traces
    for (a, b), st in ctx.graph.edge_stats.items():
        if b not in internal and (st.post_n >= 2):
            per_peer.setdefault(b, [])
    # third parties named only in callers' new error lines
    if ctx.logs:
        for tp in ctx.logs.templates.values():
            if tp.post < 3 or not tp.named or not OWN_ERROR.search(tp.example) and "timeout" not in tp.example.lower():
                continue
            if tp.base and tp.post / ctx.logs.post_span < 4 * tp.base / ctx.logs.base_span:
                continue
            for p in tp.named:
                if p not in internal and p not in ctx.stack.services and p not in NOT_A_PEER and len(p) > 2:
                    per_peer.setdefault(p, [])
    out = []
    for peer, items in per_peer.items():
        if not peer or peer in internal or DB_NAME.search(peer) or re.search(r"redis|cache|memcache|kafka|rabbit", peer, re.I):
            continue  # an uninstrumented database or cache is ours, not a third party
        best = None
        callers = set()
        for kind, s in items:
            ch = ctx.chg("client_error_ratio" if kind == "err" else "client_latency", f"{s.service}|{peer}", 1,
                         abs_floor=0.01 if kind == "err" else 0.005, rel_floor=0.3)
            if ch is not None and ch.rose and (ch.ratio >= 2.0 or kind == "err" and ch.after - ch.baseline > 0.05):
                callers.add(s.service)
                if best is None or ch.z > best[2].z:
                    best = (kind, s, ch)
        tr = _trace_peer(ctx, peer)
        peer_lines = _log_peer_errors(ctx, peer)
        if best is None and not tr and not (peer_lines and peer_lines[0] >= 5):
            continue
        score = 0.0
        c = Candidate("external_dependency_failure", peer, "dependencies", 0.0, f"the external dependency {peer} is failing", None)
        if best is not None:
            kind, s, ch = best
            score += 0.6 + min(0.15, 0.02 * ch.z) + (0.1 if len(callers) > 1 else 0.0)
            c.cause_onset = ch.onset
            what = "error ratio" if kind == "err" else "latency"
            c.evidence.append(ctx.metric_evidence(s, f"{what} of calls from {s.service} to {peer} rose {'from %.1f%% to %.1f%%' % (ch.baseline * 100, ch.after * 100) if kind == 'err' else '%.1fx' % ch.ratio} at {fmt_time(ch.onset)}, {_rel(ctx, ch.onset)}", onset=ch.onset))
            c.title = f"the external dependency {peer} is {'failing' if kind == 'err' else 'slow'} (called by {', '.join(sorted(callers))})"
        if tr:
            score += 0.2 if best is not None else 0.6
            c.evidence.append(_trace_ev(ctx, peer, tr))
            if best is None:
                c.cause_onset = ctx.onset  # traces are binned at the onset: no finer start
        if peer_lines:
            n, who = peer_lines
            if score == 0:
                score = 0.5 + min(0.2, n / 500) + (0.1 if len(who) > 1 else 0.0)
                c.cause_onset = min((tp.first_post for tp in ctx.logs.templates.values()
                                     if peer in tp.named and tp.first_post), default=None)
                c.from_lines = True
            else:
                score += 0.1
            c.evidence.append(ctx.log_evidence(f'{{{ctx.logs.label}=~".+"}} |= "{peer}"',
                                               f"{n} new error lines naming {peer} from {', '.join(sorted(who))}"))
        c.strength = min(score, 1.0)
        out.append(c)
    return out


def _log_peer_errors(ctx: Ctx, peer: str):
    """New error lines (any class) that name ``peer``, and who wrote them."""
    if not ctx.logs:
        return None
    n, who = 0, set()
    for tp in ctx.logs.templates.values():
        if peer in tp.peers or peer in tp.named:
            if tp.post >= 2 and (tp.base == 0 or tp.post / ctx.logs.post_span > 4 * tp.base / ctx.logs.base_span):
                n += tp.post
                who.add(tp.service)
    return (n, who) if n else None


def _trace_peer(ctx: Ctx, peer: str) -> str | None:
    for (a, b), st in ctx.graph.edge_stats.items():
        # traces are sampled: a handful of spans on each side is enough for a large change
        if b != peer or st.post_n < 3 or st.base_n < 3:
            continue
        er_b, er_p = st.base_err / st.base_n, st.post_err / st.post_n
        if er_p > max(0.2 if st.post_n < 10 else 0.05, 3 * er_b):
            return f"{er_p * 100:.0f}% of client spans from {a} to {peer} failed after the onset (before: {er_b * 100:.0f}%, {st.post_n} spans)"
        mb, mp = median(st.base_client), median(st.post_client)
        if mb > 0 and mp > (4.0 if st.post_n < 10 else 2.5) * mb:
            return f"client spans from {a} to {peer} took {mp / mb:.1f}x longer after the onset ({st.post_n} spans)"
    return None


def _caches(ctx: Ctx) -> list[Candidate]:
    out = []
    caches = {s.service for sig in ("cache_up", "cache_miss_ratio", "cache_evictions") for s in ctx.stack.signals.get(sig, {}).values()}
    for svc in sorted(caches):
        c = Candidate("cache_failure", svc, "dependencies", 0.0, f"the cache {svc} is down or useless", None)
        score = 0.0
        up = ctx.series("cache_up", svc)
        if up is not None:
            ch_up = ctx.chg("cache_up", svc, -1, abs_floor=0.1)
            t_down = ch_up.onset if ch_up is not None and ch_up.after < 0.5 else None
            if t_down is not None:
                score = 0.85
                c.cause_onset = t_down
                c.title = f"the cache {svc} is down"
                c.evidence.append(ctx.metric_evidence(up, f"{svc} went down at {fmt_time(t_down)}, {_rel(ctx, t_down)}", onset=t_down))
        ch = ctx.chg("cache_miss_ratio", svc, 1, abs_floor=0.02, rel_floor=0.2)
        if ch is not None and ch.rose and (ch.after >= 0.5 or ch.ratio >= 2.0):
            score = max(score, 0.6 + min(0.25, 0.03 * ch.z))
            c.cause_onset = c.cause_onset or ch.onset
            c.evidence.append(ctx.metric_evidence(ctx.series("cache_miss_ratio", svc), f"miss ratio of {svc} rose from {ch.baseline * 100:.0f}% to {ch.after * 100:.0f}% at {fmt_time(ch.onset)}, {_rel(ctx, ch.onset)}", onset=ch.onset))
        ev = ctx.chg("cache_evictions", svc, 1, abs_floor=0.5, rel_floor=0.5)
        if ev is not None and ev.rose and ev.ratio >= 3 and score:
            score += 0.05
        if score <= 0:
            continue
        c.strength = min(score, 1.0)
        out.append(c)
    return out


AGENTS = {
    "infrastructure": infrastructure,
    "database": database,
    "network": network,
    "application": application,
    "dependencies": dependencies,
}

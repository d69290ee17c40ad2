"""The numeric model of a simulated system: load flows down the call graph, latency and
errors flow up, resources follow load, and faults act on the drivers of that model.

Everything is a numpy array over the sample grid, per service or per edge. The writer turns
these into exporter-specific metric families, log lines and traces.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from compass_tui.sim.topology import APP, DATABASES, EXTERNAL, REDIS, Edge, Topology


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz–Stegun erf), vectorised without scipy."""
    z = np.asarray(x, dtype=float) / math.sqrt(2.0)
    sign = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return 0.5 * (1.0 + sign * y)


def lognormal_tail(median: np.ndarray, sigma: float, threshold: float) -> np.ndarray:
    """P(X > threshold) for X log-normal with ``median`` and ``sigma``."""
    return 1.0 - norm_cdf((math.log(threshold) - np.log(np.maximum(median, 1e-6))) / sigma)


@dataclass
class Pod:
    """One running instance of a service over part of the window."""

    service: str
    name: str  # pod name (kube) or instance address
    start: int  # first sample index it exists
    end: int  # one past the last sample index
    version: str
    node: str
    ip: str
    restarts: list[int] = field(default_factory=list)  # sample indices of container restarts
    version_changes: list[tuple[int, str]] = field(default_factory=list)  # in-place upgrades (VMs)

    def version_at(self, i: int) -> str:
        """The version this instance runs at sample ``i``."""
        v = self.version
        for at, new in self.version_changes:
            if i >= at:
                v = new
        return v


@dataclass
class Event:
    """A change or incident event: deploy, config, restart, oom, scale."""

    t: float  # unix seconds
    kind: str
    service: str
    text: str = ""
    data: dict = field(default_factory=dict)


class Model:
    """All drivers and derived signals of one simulated incident."""

    def __init__(self, topo: Topology, rng: random.Random, start: int, step: int, n: int,
                 entry_rps: float | None = None, low_rps: dict[str, float] | None = None):
        self.topo = topo
        # Low-traffic systems: the entries' mean rate, and services pinned to a small rate.
        self.entry_rps = entry_rps
        self.low_rps = low_rps or {}
        # Realism knobs and what they leave for the renderers (all empty on a clean scenario).
        self.knobs: object = frozenset()
        self.no_server: set[str] = set()  # services without server-side request metrics
        self.force_client: set[str] = set()  # callees whose callers always export client metrics
        self.client_all = False  # every call has a client metric
        self.pod_cpu_extra: dict[str, np.ndarray] = {}  # pod name -> extra cores (a stress process)
        self.pod_lat_factor: dict[str, np.ndarray] = {}  # pod name -> own-latency factor of that pod
        self.pod_lat_mean: dict[str, np.ndarray] = {}  # service -> mean of its pods' factors
        self.pod_bug: dict[str, str] = {}  # service -> the one pod whose code fails
        self.mem_step: dict[str, np.ndarray] = {}  # pod name -> memory offset after a restart
        self.prior_template: dict[str, str] = {}  # service -> error text of an earlier incident
        self.warn_template: dict[str, str] = {}  # service -> a new warning its own code logs
        self.no_limit: set[str] = set()  # services whose pods run without a CPU limit
        self.rng = rng
        self.nrng = np.random.default_rng(rng.getrandbits(63))
        self.start = start
        self.step = step
        self.n = n
        self.ts = start + step * np.arange(n)
        self.events: list[Event] = []
        self.edge_id = {id(e): i for i, e in enumerate(topo.edges)}
        s = topo.services
        ones = lambda: np.ones(n)  # noqa: E731
        zeros = lambda: np.zeros(n)  # noqa: E731
        # --- drivers (faults and decoys edit these) ---
        self.ext_rps = {nm: zeros() for nm in s}
        self.lat_mult = {nm: ones() for nm in s}
        self.lat_add = {nm: zeros() for nm in s}
        self.err_own: dict[str, dict[str, np.ndarray]] = {nm: {} for nm in s}  # cause -> ratio
        self.cpu_extra = {nm: zeros() for nm in s}
        self.down = {nm: zeros() for nm in s}  # share of capacity not serving
        ne = len(topo.edges)
        self.edge_lat_add = [zeros() for _ in range(ne)]
        self.edge_err_drv: list[dict[str, np.ndarray]] = [{} for _ in range(ne)]
        self.edge_block = [zeros() for _ in range(ne)]
        self.db_lat_mult = {nm: ones() for nm in s}
        self.db_locks_add = {nm: zeros() for nm in s}
        self.db_txdur_add = {nm: zeros() for nm in s}
        self.pool_leak = [zeros() for _ in range(ne)]
        self.pool_hold_mult = [ones() for _ in range(ne)]
        self.cache_hit = {nm: zeros() for nm in s}
        self.cache_up = {nm: ones() for nm in s}
        self.ext_lat_mult = {nm: ones() for nm in s}
        self.ext_err = {nm: zeros() for nm in s}
        self.dns_fail = zeros()
        self.dns_nx = zeros()
        self.dns_lat_mult = ones()
        self.retrans = {nm: zeros() for nm in s}
        self.drops = {nm: zeros() for nm in s}
        self.cert_expiry: dict[str, float] = {}
        self.cert_renewed: dict[str, tuple[int, float]] = {}
        self.volume_fill: dict[str, np.ndarray] = {}  # service -> used fraction of its volume
        self.mem_leak = {nm: zeros() for nm in s}  # extra bytes per pod from a leak
        self.mem_reset: dict[str, list[int]] = {}  # leak resets (OOM restarts) per service
        self.config_reloads: dict[str, list[float]] = {nm: [] for nm in s}
        self.pods: dict[str, list[Pod]] = {}
        self.versions: dict[str, str] = {}
        self.edge_dns_sens = [0.0] * ne
        self.chronic_err: dict[str, float] = {}
        self._baseline_params()

    # ------------------------------------------------------------------ baseline
    def _noise(self, scale: float, smooth: int = 3) -> np.ndarray:
        """Multiplicative noise around 1 with a little autocorrelation."""
        raw = self.nrng.normal(0.0, scale, self.n + smooth)
        kernel = np.ones(smooth) / smooth
        return 1.0 + np.convolve(raw, kernel, mode="valid")[: self.n] * math.sqrt(smooth)

    def _baseline_params(self) -> None:
        rng, topo = self.rng, self.topo
        hours = self.ts / 3600.0
        phase = rng.uniform(0, 2 * math.pi)
        diurnal = 1.0 + rng.uniform(0.05, 0.35) * np.sin(2 * math.pi * hours / 24.0 + phase)
        drift = 1.0 + rng.uniform(-0.15, 0.15) * (np.arange(self.n) / self.n)
        self.base_lat: dict[str, float] = {}
        self.sigma: dict[str, float] = {}
        self.cpu_per_req: dict[str, float] = {}
        self.cpu_idle: dict[str, float] = {}
        self.cpu_limit_pod: dict[str, float] = {}
        self.mem_base_pod: dict[str, float] = {}
        self.mem_limit_pod: dict[str, float] = {}
        for nm in topo.order:
            svc = topo.services[nm]
            if svc.kind == APP:
                self.base_lat[nm] = rng.uniform(0.003, 0.06) * (1.0 if svc.role != "entry" else 0.5)
                self.sigma[nm] = rng.uniform(0.35, 0.8)
                self.cpu_per_req[nm] = rng.uniform(0.0008, 0.006)
                self.cpu_idle[nm] = rng.uniform(0.02, 0.15)
                self.mem_limit_pod[nm] = rng.choice([256, 512, 512, 768, 1024, 1536, 2048, 4096]) * 2**20
                self.mem_base_pod[nm] = self.mem_limit_pod[nm] * rng.uniform(0.25, 0.6)
                if svc.role == "entry":
                    self.ext_rps[nm] = rng.uniform(40, 400) * diurnal * drift * self._noise(0.03)
                    if self.entry_rps:
                        self.ext_rps[nm] *= self.entry_rps / float(np.mean(self.ext_rps[nm]))
                    # Short bursts (crawlers, retries, a push notification) are part of normal life.
                    for _ in range(rng.choice([0, 0, 1, 2, 3])):
                        at = rng.randrange(self.n)
                        width = max(1, int(rng.uniform(30, 180) / self.step))
                        self.ext_rps[nm][at:at + width] *= rng.uniform(1.2, 1.8)
                # Chronic low-level errors in a few services are part of a healthy baseline.
                self.err_own[nm]["baseline"] = np.clip(
                    rng.choice([0.0005, 0.001, 0.002, 0.004]) * self._noise(0.3), 0, 1)
            elif svc.kind in DATABASES:
                self.base_lat[nm] = rng.uniform(0.0008, 0.006)
                self.sigma[nm] = rng.uniform(0.5, 0.9)
            elif svc.kind == REDIS:
                self.base_lat[nm] = rng.uniform(0.0002, 0.0012)
                self.sigma[nm] = 0.4
                self.cache_hit[nm] = np.clip(rng.uniform(0.8, 0.98) * self._noise(0.01), 0, 0.999)
            elif svc.kind == EXTERNAL:
                self.base_lat[nm] = rng.uniform(0.06, 0.4)
                self.sigma[nm] = rng.uniform(0.4, 0.7)
                self.ext_err[nm] = np.clip(rng.choice([0.0, 0.001, 0.003]) * self._noise(0.5), 0, 1)
            else:
                self.base_lat[nm] = rng.uniform(0.0005, 0.003)
                self.sigma[nm] = 0.5
        for i, e in enumerate(topo.edges):
            self.edge_dns_sens[i] = {"external": rng.uniform(0.6, 1.0), "rpc": rng.uniform(0.2, 0.9),
                                     "db": rng.uniform(0.05, 0.3), "cache": rng.uniform(0.05, 0.4)}[e.kind]
        # CPU limits sized so baseline use sits at 15-60 % of the limit.
        self._rates_only()
        if self.low_rps:
            # Rarely called services: their callers call them on a small share of requests.
            for nm, want in self.low_rps.items():
                have = float(np.mean(self.rps[nm]))
                if have > want:
                    for e in topo.in_edges(nm):
                        e.fanout *= want / have
            self._rates_only()
        for nm in topo.apps():
            svc = topo.services[nm]
            demand = self.cpu_idle[nm] + float(np.mean(self.rps[nm])) * self.cpu_per_req[nm]
            per_pod = demand / svc.replicas / rng.uniform(0.15, 0.6)
            self.cpu_limit_pod[nm] = max(0.1, round(per_pod * 4) / 4 if per_pod > 0.25 else round(per_pod, 2))
        self.base_rps = {nm: float(np.mean(v)) for nm, v in self.rps.items()}
        self._calibrate()

    def _calibrate(self) -> None:
        """Size pools and timeouts so the healthy baseline is healthy, as operators tune them."""
        rng, topo = self.rng, self.topo
        nice = [5, 8, 10, 12, 16, 20, 25, 30, 32, 40, 50, 64, 80, 100, 128, 150, 200, 256, 300, 400, 500]
        for e in topo.edges:
            if e.kind != "db":
                continue
            reps = topo.services[e.caller].replicas
            demand = float(np.percentile(self.edge_rps[self.eid(e)], 95)) * self.base_lat[e.callee] * 1.3 / reps + 0.4
            want = demand / rng.uniform(0.15, 0.6)
            e.pool_max = max(e.pool_max if e.pool_max >= want else 0, next((x for x in nice if x >= want), 500))
        self.recalibrate_timeouts()

    def recalibrate_timeouts(self) -> None:
        """Raise client timeouts that a healthy baseline would already trip."""
        topo = self.topo
        for _ in range(2):
            self.propagate()
            for e in topo.edges:
                if e.kind not in ("rpc", "external"):
                    continue
                lat = float(np.percentile(self.lat[e.callee], 95))
                p999 = lat * math.exp(3.1 * self.sigma.get(e.callee, 0.5))
                if e.timeout < p999 * 2:
                    e.timeout = next((x for x in [1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0] if x >= p999 * 2), 60.0)

    def add_err(self, name: str, cause: str, ratio: np.ndarray) -> None:
        """Add an error cause on a service's own code path."""
        cur = self.err_own[name].get(cause)
        self.err_own[name][cause] = ratio if cur is None else np.clip(cur + ratio, 0, 1)

    def add_edge_err(self, edge: Edge, cause: str, ratio: np.ndarray) -> None:
        """Add a failure cause on one call path (client side)."""
        d = self.edge_err_drv[self.edge_id[id(edge)]]
        d[cause] = ratio if cause not in d else np.clip(d[cause] + ratio, 0, 1)

    def eid(self, edge: Edge) -> int:
        """Index of ``edge`` in the topology's edge list."""
        return self.edge_id[id(edge)]

    # ------------------------------------------------------------------ propagation
    def _rates_only(self, err_for_retry: list[np.ndarray] | None = None) -> None:
        topo = self.topo
        rps = {nm: self.ext_rps[nm].copy() for nm in topo.services}
        edge_rps: list[np.ndarray] = [np.zeros(self.n) for _ in topo.edges]
        for nm in topo.order:
            served = rps[nm] * (1.0 - np.clip(self.down[nm], 0, 1))
            for e in topo.out_edges(nm):
                i = self.eid(e)
                fan = e.fanout
                if e.kind == "db" and hasattr(self, "cache_miss_extra"):
                    fan = fan + self.cache_miss_extra.get(i, 0.0)
                r = served * fan
                if err_for_retry is not None and e.retries:
                    r = r * (1.0 + e.retries * np.clip(err_for_retry[i], 0, 1) * 0.4)
                edge_rps[i] = r
                rps[e.callee] = rps[e.callee] + r * (1.0 - np.clip(self.edge_block[i], 0, 1))
        self.rps, self.edge_rps = rps, edge_rps

    def propagate(self) -> None:
        """Derive every observable signal from the drivers."""
        topo = self.topo
        n = self.n
        # Cache misses send extra reads to the cache's database.
        self.cache_miss_extra: dict[int, np.ndarray] = {}
        for e in topo.edges:
            if e.kind == "cache":
                cache = topo.services[e.callee]
                if cache.backing_db:
                    hit = self.cache_hit[e.callee] * self.cache_up[e.callee]
                    base_hit = float(np.median(self.cache_hit[e.callee]))
                    for de in topo.out_edges(e.caller):
                        if de.kind == "db" and de.callee == cache.backing_db:
                            self.cache_miss_extra[self.eid(de)] = e.fanout * np.maximum(0.0, (1 - hit) - (1 - base_hit)) * 2.0
        self._rates_only()
        # CPU demand and saturation.
        self.cpu_demand: dict[str, np.ndarray] = {}
        self.cpu_limit: dict[str, float] = {}
        self.util: dict[str, np.ndarray] = {}
        for nm in topo.apps():
            svc = topo.services[nm]
            demand = (self.cpu_idle[nm] + self.rps[nm] * self.cpu_per_req[nm]) * self._noise(0.04) + self.cpu_extra[nm]
            self.cpu_demand[nm] = demand
            self.cpu_limit[nm] = self.cpu_limit_pod[nm] * svc.replicas
            self.util[nm] = demand / self.cpu_limit[nm]
        # Databases: load and latency.
        self.db_qps: dict[str, np.ndarray] = {}
        self.db_lat: dict[str, np.ndarray] = {}
        if not hasattr(self, "db_rho0"):
            self.db_rho0: dict[str, float] = {}
            self.db_base_qps: dict[str, float] = {}
        for db in topo.of_kind(*DATABASES):
            qps = self.rps[db]
            base = self.db_base_qps.setdefault(db, max(1e-6, float(np.median(qps))))
            load = np.clip(qps / base, 0.2, 20)
            self.db_qps[db] = qps
            # Queueing: latency grows as utilisation approaches 1 (M/M/1-like), capped.
            rho0 = self.db_rho0.setdefault(db, self.rng.uniform(0.15, 0.45))
            rho = np.minimum(0.97, rho0 * load)
            self.db_lat[db] = self.base_lat[db] * self.db_lat_mult[db] * np.minimum(30.0, (1 - rho0) / (1 - rho)) * self._noise(0.05)
        # Latency and errors, callees first.
        self.lat: dict[str, np.ndarray] = {}
        self.err: dict[str, np.ndarray] = {}
        self.edge_lat: list[np.ndarray] = [np.zeros(n) for _ in topo.edges]
        self.edge_err: list[np.ndarray] = [np.zeros(n) for _ in topo.edges]
        self.edge_err_parts: list[dict[str, np.ndarray]] = [{} for _ in topo.edges]
        self.pool_active: dict[int, np.ndarray] = {}
        self.pool_pending: dict[int, np.ndarray] = {}
        self.pool_timeouts: dict[int, np.ndarray] = {}
        self.pool_max_total: dict[int, int] = {}
        self.sat_err: dict[str, np.ndarray] = {}
        self.own_lat: dict[str, np.ndarray] = {}
        for nm in reversed(topo.order):
            svc = topo.services[nm]
            if svc.kind == EXTERNAL:
                self.lat[nm] = self.base_lat[nm] * self.ext_lat_mult[nm] * self._noise(0.06)
                self.err[nm] = np.clip(self.ext_err[nm], 0, 1)
                continue
            if svc.kind in DATABASES:
                self.lat[nm] = self.db_lat[nm]
                self.err[nm] = np.clip(sum(self.err_own[nm].values(), np.zeros(n)), 0, 1)
                continue
            if svc.kind == REDIS:
                self.lat[nm] = self.base_lat[nm] * self._noise(0.05)
                self.err[nm] = 1.0 - self.cache_up[nm]
                continue
            if svc.kind != APP:
                self.lat[nm] = self.base_lat[nm] * self.dns_lat_mult
                self.err[nm] = self.dns_fail
                continue
            util = self.util[nm]
            sat = 1 + np.maximum(0, util - 0.75) * 2.5 + np.maximum(0, util - 1.0) * 8
            # CFS throttling parks runnable threads until the next 100 ms period: an absolute delay.
            throttle = np.clip((util - 0.8) / 0.4, 0, 0.98)
            lat = (self.base_lat[nm] * self._noise(0.05)) * self.lat_mult[nm] * sat + self.lat_add[nm] + throttle * 0.12
            self.own_lat[nm] = lat.copy()
            own = np.zeros(n)
            for arr in self.err_own[nm].values():
                own = own + arr
            shed = np.clip((util - 1.05) * 0.25, 0, 0.6)
            if shed.max() > 0:
                self.sat_err[nm] = shed
            ok = (1 - np.clip(own, 0, 1)) * (1 - shed)
            for e in topo.out_edges(nm):
                i = self.eid(e)
                callee = topo.services[e.callee]
                parts: dict[str, np.ndarray] = {}
                wait = None
                if e.kind == "db":
                    c_lat, c_err, wait = self._db_call(e, i)
                    parts_pool = self._pool_err
                    if parts_pool is not None:
                        parts["pool"] = parts_pool
                else:
                    c_lat = self.lat[e.callee].copy()
                    c_err = self.err[e.callee].copy()
                    if callee.kind == APP:
                        down = np.clip(self.down[e.callee], 0, 1)
                        parts["refused"] = down
                        c_err = np.clip(c_err * (1 - down), 0, 1)
                parts["upstream"] = c_err
                c_lat = c_lat + self.edge_lat_add[i]
                sig = self.sigma.get(e.callee, 0.5)
                # Statement/read timeouts count the call itself; a pool wait fails as a pool error.
                tmo = lognormal_tail(c_lat, sig, e.timeout)
                parts["timeout"] = tmo
                if wait is not None:
                    c_lat = c_lat + wait
                for cause, arr in self.edge_err_drv[i].items():
                    parts[cause] = arr
                if self.dns_fail.max() > 0:
                    parts["dns"] = self.dns_fail * self.edge_dns_sens[i]
                total_ok = np.ones(n)
                for arr in parts.values():
                    total_ok = total_ok * (1 - np.clip(arr, 0, 1))
                e_err = 1 - total_ok
                self.edge_err_parts[i] = parts
                self.edge_err[i] = e_err
                self.edge_lat[i] = np.minimum(c_lat, e.timeout * 1.05)
                retry_mult = 1 + e.retries * e_err
                eff = e_err ** (1 + 0.5 * e.retries) if e.retries else e_err
                # DB queries run one after another; RPC fan-out is partly parallel.
                fan = e.fanout if e.kind == "db" else min(e.fanout, 1.5)
                lat = lat + e.weight * fan * self.edge_lat[i] * retry_mult
                ok = ok * (1 - np.clip(e.propagate * eff * min(1.0, e.fanout), 0, 1))
            self.lat[nm] = lat
            self.err[nm] = np.clip(1 - ok, 0, 1)
        self._rates_only([np.clip(x, 0, 1) for x in self.edge_err])

    _pool_err: np.ndarray | None = None

    def _db_call(self, e: Edge, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Client-side query latency, errors, and pool wait through the client's connection pool."""
        db = e.callee
        q_lat = self.db_lat[db] * self.pool_hold_mult[i]
        reps = self.topo.services[e.caller].replicas
        pmax = e.pool_max * reps
        # Little's law: connections in use = query rate x hold time (+ app overhead).
        demand = self.edge_rps[i] * q_lat * 1.3 + self.pool_leak[i] * reps + 0.4 * reps * self._noise(0.1)
        demand = np.maximum(demand, 0)
        active = np.minimum(demand, pmax)
        over = np.maximum(0.0, demand / pmax - 0.97)
        pending = np.where(over > 0, over * pmax * 2.5, 0.0) * self._noise(0.1)
        timeout_frac = np.clip(over * 4.0, 0, 0.97)
        wait = np.clip(over * 10, 0, 1) * min(e.timeout, 30.0)
        self.pool_active[i] = active
        self.pool_pending[i] = np.maximum(0, pending)
        self.pool_timeouts[i] = self.edge_rps[i] * timeout_frac
        self.pool_max_total[i] = pmax
        self._pool_err = timeout_frac if timeout_frac.max() > 0.001 else None
        c_err = np.clip(self.err[db], 0, 1)
        return q_lat, c_err, wait


# Cause of a failure → the HTTP status a server returns for it.
CAUSE_STATUS = {
    "bug": "500", "config": "500", "chronic": "500", "baseline": "500", "transient": "500", "disk": "500",
    "oom": "500", "ratelimit": "429", "shed": "503", "timeout": "504", "config_timeout": "504",
    "refused": "503", "upstream": "502", "tls": "502", "dns": "502", "pool": "500", "cache_down": "500",
    "reset": "502", "db": "500", "prior": "500", "noise": "500",
}


def error_parts(m: Model, svc: str) -> dict[tuple[str, str | None], np.ndarray]:
    """Split a service's server-side error ratio into (cause, peer) shares that sum to it."""
    topo = m.topo
    raw: dict[tuple[str, str | None], np.ndarray] = {}
    for cause, arr in m.err_own[svc].items():
        raw[(cause, None)] = np.clip(arr, 0, 1)
    if svc in m.sat_err:
        raw[("shed", None)] = m.sat_err[svc]
    for e in topo.out_edges(svc):
        i = m.eid(e)
        total = m.edge_err[i]
        eff = total ** (1 + 0.5 * e.retries) if e.retries else total
        contrib = np.clip(e.propagate * eff * min(1.0, e.fanout), 0, 1)
        parts = m.edge_err_parts[i]
        ssum = sum(parts.values(), np.zeros(m.n)) + 1e-12
        for cause, arr in parts.items():
            c = "db" if (e.kind == "db" and cause == "upstream") else cause
            key = (c, e.callee)
            raw[key] = raw.get(key, 0) + contrib * np.clip(arr, 0, 1) / ssum
    total_raw = sum(raw.values(), np.zeros(m.n)) + 1e-12
    scale = m.err[svc] / total_raw
    return {k: v * np.minimum(scale, 1.0) for k, v in raw.items() if float(np.max(v)) > 0}

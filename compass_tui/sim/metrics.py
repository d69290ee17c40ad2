"""Render a simulated incident as OpenMetrics text in the exporters' own naming schemes."""

from __future__ import annotations

import math
import random

import numpy as np

from compass_tui.sim.scenario import SimIncident
from compass_tui.sim.signals import CAUSE_STATUS, Pod, error_parts
from compass_tui.sim.topology import APP, DATABASES, DNS, EXTERNAL, MYSQL, POSTGRES, REDIS

_Z = {"0.5": 0.0, "0.75": 0.6745, "0.9": 1.2816, "0.95": 1.6449, "0.99": 2.3263}
_GRPC_CODE = {"200": "OK", "500": "Internal", "503": "Unavailable", "504": "DeadlineExceeded",
              "429": "ResourceExhausted", "502": "Unavailable", "404": "NotFound"}
_CONN_ERR = {"tls": "tls_handshake", "dns": "dns_lookup", "refused": "connection_refused",
             "reset": "connection_reset", "timeout": "timeout", "config_timeout": "timeout",
             "cache_down": "connection_refused"}


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(d: dict) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in d.items()) + "}"


class OMWriter:
    """Collects families and their series; renders each family once, series contiguous, time ascending."""

    def __init__(self, ts: np.ndarray):
        self.ts = ts
        self.families: dict[str, tuple[str, list[str]]] = {}
        self.n_samples = 0

    def add(self, family: str, mtype: str, sample: str, labels: dict, values: np.ndarray,
            idx: np.ndarray | None = None, offset: int = 0, decimals: int = 4) -> None:
        """One series: ``values`` aligned with ``idx`` (sample indices), written at ts[idx]+offset."""
        if idx is None:
            idx = np.arange(len(self.ts))
        if len(idx) == 0:
            return
        vals = np.asarray(values, dtype=float)
        if vals.shape == ():
            vals = np.full(len(idx), float(vals))
        if decimals == 0:
            vs = [str(int(v)) for v in np.floor(vals)]
        else:
            vs = [repr(v) for v in np.round(vals, decimals).tolist()]
        tl = (self.ts[idx] + offset).tolist()
        head = sample + _labels(labels) + " "
        lines = "".join([f"{head}{v} {t}\n" for v, t in zip(vs, tl)])
        fam = self.families.get(family)
        if fam is None:
            fam = (mtype, [])
            self.families[family] = fam
        fam[1].append(lines)
        self.n_samples += len(idx)

    def render(self) -> str:
        """The whole exposition, ``# EOF`` last."""
        out = []
        for fam, (mtype, chunks) in self.families.items():
            out.append(f"# TYPE {fam} {mtype}\n")
            out.extend(chunks)
        out.append("# EOF\n")
        return "".join(out)


def _cum(inc: np.ndarray, resets: list[int], start_value: float) -> np.ndarray:
    """Cumulative counter from per-step increments; a restart resets it to 0."""
    c = np.cumsum(inc) + start_value
    for r in sorted(resets):
        if 0 < r < len(c):
            c[r:] = np.maximum(c[r:] - c[r - 1], 0)
    return c


class MetricsRenderer:
    """Turns the model of one incident into metric families following its style."""

    def __init__(self, inc: SimIncident, level: int = 0):
        self.inc = inc
        self.m = inc.model
        self.st = inc.style
        self.topo = inc.topo
        self.rng = random.Random(inc.rng_seed ^ 0x5EED)
        self.nrng = np.random.default_rng(inc.rng_seed & 0xFFFFFFFF)
        self.om = OMWriter(self.m.ts.astype(np.int64))
        self.n = self.m.n
        self.step = self.m.step
        self.offsets: dict[str, int] = {}
        self.svc_flavor: dict[str, str] = {}
        # Detail level: 0 keeps every pod and bucket; higher levels thin the series out so
        # large fleets stay a manageable size (fewer pods shown, coarser histograms).
        self.level = level
        self.lean = level >= 2
        self.medium = level == 1
        for nm, svc in self.topo.services.items():
            self.offsets[nm] = self.rng.randint(0, max(0, self.step - 1)) if self.step > 1 else 0
            if svc.kind == APP:
                if svc.protocol == "grpc":
                    self.svc_flavor[nm] = "grpc"
                elif self.st.flavor in ("classic", "micrometer", "otel"):
                    self.svc_flavor[nm] = self.st.flavor
                else:
                    self.svc_flavor[nm] = {"java": "micrometer", "go": "classic", "python": "classic", "node": "otel"}[svc.lang]
        # Summary or histogram is a per-family habit of the fleet (one type per family).
        self.summary_family = {"classic": self.rng.random() < self.st.summary_share,
                               "micrometer": self.lean or self.rng.random() < self.st.summary_share}
        self.client_label = self.rng.choice(["host", "peer", "target"])
        self.grpc_clients = self.rng.random() < 0.6
        self.max_pods = [99, 3, 2, 1, 1][level]
        self.buckets_classic = [[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                                [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
                                [0.01, 0.05, 0.25, 1.0, 2.5, 10.0],
                                [0.025, 0.1, 0.5, 2.5, 10.0], [0.1, 1.0, 10.0]][level]
        self.buckets_otel = [[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0],
                             [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                             [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
                             [0.025, 0.1, 0.5, 2.5, 10.0], [0.1, 1.0, 10.0]][level]
        self.buckets_micrometer = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0] if level < 2 else [0.1, 0.5, 2.0]
        # Realism knobs draw from their own streams so a clean scenario renders as before.
        self.kn = inc.realism
        self.krng = random.Random(self.kn.seed ^ 0x3E7)
        self.knp = np.random.default_rng(self.kn.seed & 0xFFFFFFFF)
        self.poisson = "low_traffic" in self.kn  # few requests per step: counts are samples
        self.svc_level = "real_like" in self.kn  # request metrics per service, resources per pod
        self.peer_label = self.kn.params["client_view"]["peer_label"] if "client_view" in self.kn else None

    # ------------------------------------------------------------------ labels
    def svc_labels(self, svc: str) -> dict:
        """Labels naming a service on service-level series (no instance)."""
        sc = self.st.scheme
        if sc == "container":
            return {"namespace": self.topo.namespace, "container": svc}
        d = {sc: svc}
        if self.st.kube and sc != "service_name":
            d["namespace"] = self.topo.namespace
        return d

    def pod_labels(self, pod: Pod) -> dict:
        """Labels naming one instance of a service, in this system's scheme."""
        sc = self.st.scheme
        svc = pod.service
        if sc == "container":
            return {"namespace": self.topo.namespace, "pod": pod.name, "container": svc}
        if sc == "service_name":
            return {"service_name": svc, "k8s_pod_name" if self.st.kube else "service_instance_id": pod.name}
        d = {sc: svc, "instance": f"{pod.name}:{self.topo.services[svc].port}" if self.st.kube else pod.name}
        if self.st.kube:
            d["namespace"] = self.topo.namespace
            d["pod"] = pod.name
        return d

    def infra_labels(self, svc: str, exporter_port: int) -> dict:
        """Labels of an exporter scraped on behalf of an infrastructure service."""
        sc = self.st.scheme
        if sc == "container":
            return {"namespace": self.topo.namespace, "pod": f"{svc}-0", "container": svc}
        return {sc: svc, "instance": f"{svc}:{exporter_port}"}

    # ------------------------------------------------------------------ helpers
    def pods(self, svc: str) -> list[Pod]:
        pods = self.m.pods.get(svc, [])
        bad = set(self.m.pod_lat_factor) | set(self.m.pod_cpu_extra) | set(self.m.pod_bug.values())
        # A service with one bad pod keeps a healthy sibling in view to compare with.
        most = max(2, self.max_pods) if bad and any(p.name in bad for p in pods) else self.max_pods
        if len(pods) <= most:
            return pods
        # Large fleets: keep the first instances, plus every pod that changed (deploys, restarts),
        # and always one that was there from the start: a rollout replaces pods, it does not
        # make the service appear from nothing.
        first = next((p for p in pods if p.start == 0 and p.name not in bad), None)
        keep = [p for p in pods if p.name in bad] + ([first] if first is not None else []) + \
            [p for p in pods if (p.restarts or p.start > 0) and p.name not in bad and p is not first]
        keep = keep[:most]
        for p in pods:
            if len(keep) >= most:
                break
            if p not in keep:
                keep.append(p)
        # ...and one that is still there at the end: after a rollout the new pods carry the
        # service's metrics, which must not stop with the old pod's
        if not any(p.end >= self.n for p in keep):
            last = next((p for p in pods if p.end >= self.n), None)
            if last is not None:
                keep.append(last)
        return keep

    def share(self, svc: str) -> dict[str, np.ndarray]:
        """Each pod's share of the service's traffic over time."""
        pods = self.m.pods.get(svc, [])
        alive = {}
        for p in pods:
            a = np.zeros(self.n)
            a[p.start:p.end] = 1.0
            for r in p.restarts:
                a[r:r + 1] = 0.0
            alive[p.name] = a
        count = np.maximum(sum(alive.values(), np.zeros(self.n)), 1.0)
        return {k: v / count * (1 + self.nrng.normal(0, 0.03, self.n)) for k, v in alive.items()}

    def idx(self, p: Pod, skip_restarts: bool = True) -> np.ndarray:
        i = np.arange(p.start, p.end)
        if skip_restarts and p.restarts:
            i = i[~np.isin(i, p.restarts)]
        return i

    def counter(self, family: str, labels: dict, inc: np.ndarray, p: Pod | None, offset: int,
                sample: str | None = None, start_value: float | None = None, ints: bool = False,
                first_nonzero: bool = False, mtype: str = "counter") -> None:
        """Write a counter from per-step increments, honouring a pod's life and restarts."""
        if p is not None:
            i = self.idx(p)
            resets = [r - p.start for r in p.restarts]
            fresh = p.start > 0
        else:
            i = np.arange(self.n)
            resets, fresh = [], False
        if start_value is None:
            start_value = 0.0 if fresh else float(np.sum(inc)) * self.rng.uniform(2, 40)
        full = _cum(np.maximum(inc[p.start:p.end] if p is not None else inc, 0), resets, start_value)
        vals = full[i - (p.start if p is not None else 0)]
        if ints:
            vals = np.floor(vals)
        if first_nonzero:
            nz = np.nonzero(vals >= 1)[0]
            if len(nz) == 0:
                return
            vals, i = vals[nz[0]:], i[nz[0]:]
        self.om.add(family, mtype, sample or family + "_total", labels, vals, i, offset,
                    decimals=0 if ints else 3)

    def gauge(self, family: str, labels: dict, values, idx=None, offset: int = 0, decimals: int = 4,
              mtype: str = "gauge") -> None:
        vals = np.asarray(values, dtype=float)
        if idx is not None and vals.ndim == 1 and len(vals) == self.n:
            vals = vals[idx]
        self.om.add(family, mtype, family, labels, vals, idx, offset, decimals)

    # ------------------------------------------------------------------ render
    def render(self) -> str:
        """All metric families of the incident."""
        apps = self.topo.apps()
        m = self.m
        for svc in apps:
            if svc not in m.no_server:
                self.server_metrics(svc)
        for svc in apps:
            self.process_metrics(svc)
        if self.svc_level:
            self.infra_container_metrics()
        if "pod_network" in self.kn:
            self.pod_network_metrics()
        forced = m.client_all or m.force_client or m.no_server
        if "client_metrics" not in self.st.missing or forced:
            for svc in apps:
                self.client_metrics(svc, only_forced="client_metrics" in self.st.missing)
        if "pools" not in self.st.missing:
            for svc in apps:
                self.pool_metrics(svc)
        if "db_exporter" not in self.st.missing:
            for db in self.topo.of_kind(*DATABASES):
                self.db_metrics(db)
        if "redis_exporter" not in self.st.missing:
            for c in self.topo.of_kind(REDIS):
                self.redis_metrics(c)
        if "node" not in self.st.missing:
            self.node_metrics()
        if "volumes" not in self.st.missing:
            self.volume_metrics()
        if "blackbox" not in self.st.missing:
            self.cert_metrics()
        if "dns_exporter" not in self.st.missing:
            self.dns_metrics()
        if "kube_state" not in self.st.missing:
            self.kube_state_metrics()
        self.up_metrics()
        return self.om.render()

    # ------------------------------------------------------------------ server side
    def _status_mix(self, svc: str) -> dict[str, np.ndarray]:
        m = self.m
        mix: dict[str, np.ndarray] = {}
        for (cause, _peer), arr in error_parts(m, svc).items():
            code = CAUSE_STATUS.get(cause, "500")
            if cause == "upstream" and self.rng.random() < 0.5:
                code = "500"
            mix[code] = mix.get(code, 0) + arr
        return mix

    def server_metrics(self, svc: str) -> None:
        m = self.m
        flavor = self.svc_flavor[svc]
        mix = self._status_mix(svc)
        if not hasattr(self, "_notfound"):
            self._notfound = {a: (self.rng.uniform(0.002, 0.02) if self.rng.random() < 0.4 else 0.0) for a in self.topo.apps()}
        if self._notfound[svc] and not self.lean:
            mix["404"] = np.full(self.n, self._notfound[svc])
        err_total = sum(mix.values(), np.zeros(self.n))
        mix["200"] = np.clip(1 - err_total, 0, 1)
        lat = m.lat[svc]
        sig = m.sigma[svc]
        shares = self.share(svc)
        off = self.offsets[svc]
        route = self.rng.choice(["/api/v1/", "/v1/", "/api/", "/"]) + svc.split("-")[0]
        grpc_svc = f"{svc.replace('-', '')}.v1.{''.join(w.title() for w in svc.split('-'))}Service"
        method = self.rng.choice(["Get", "List", "Create", "Process", "Check"]) + self.rng.choice(["Order", "Item", "Quote", "Status", "Profile"])
        summary = self.summary_family.get(flavor, False)
        http_method = self.rng.choice(["GET", "POST"])
        pods = self.pods(svc)
        if self.svc_level:
            # One series per service, as a mesh or an APM exporter reports it.
            pods = [Pod(svc, svc, 0, self.n, "", "", "")]
            shares = {svc: np.ones(self.n)}
        bug = error_parts(m, svc).get(("bug", None)) if svc in m.pod_bug else None
        for p in pods:
            sh = shares[p.name]
            req = m.rps[svc] * sh * self.step
            base = self.pod_labels(p) if not self.svc_level else self.svc_labels(svc)
            lat = self.pod_latency(svc, p, m.lat[svc])
            pmix = self.pod_mix(svc, p, mix, bug) if bug is not None else mix
            codes = ["200"] + sorted(c for c in pmix if c != "200")
            counts = {code: req * pmix[code] for code in codes}
            if self.poisson:
                counts, req, lat = self.sampled(counts, lat, sig)
            if flavor == "classic":
                for code in codes:
                    self.counter("http_requests", {**base, self.st.status_label: code}, counts[code], p, off,
                                 ints=True, first_nonzero=code != "200")
                self.latency("http_request_duration_seconds", base, req, lat, sig, p, off, summary, self.buckets_classic)
            elif flavor == "micrometer":
                for code in codes:
                    outcome = "SUCCESS" if code == "200" else "CLIENT_ERROR" if code.startswith("4") else "SERVER_ERROR"
                    lab = {**base, "method": http_method, "outcome": outcome, "status": code, "uri": route}
                    self.latency("http_server_requests_seconds", lab, counts[code], lat, sig, p, off,
                                 summary, self.buckets_micrometer if code == "200" else [],
                                 quantiles=code == "200", first_nonzero=code != "200")
                    if code == "200" and not self.lean:
                        mx = lat * math.exp(sig * 3.0) * (1 + np.abs(self.nrng.normal(0, 0.2, self.n)))
                        self.gauge("http_server_requests_seconds_max", lab, mx, self.idx(p), off)
            elif flavor == "otel":
                for code in codes:
                    lab = {**base, "http_request_method": "GET", "http_response_status_code": code, "http_route": route}
                    self.latency("http_server_request_duration_seconds", lab, counts[code], lat, sig, p, off,
                                 False, self.buckets_otel if code == "200" else [],
                                 first_nonzero=code != "200")
            else:
                gl = {**base, "grpc_service": grpc_svc, "grpc_method": method, "grpc_type": "unary"}
                self.counter("grpc_server_started", gl, req, p, off, ints=True)
                gcodes: dict[str, np.ndarray] = {}
                for code in codes:
                    g = _GRPC_CODE.get(code, "Unknown")
                    gcodes[g] = gcodes.get(g, 0) + (pmix[code] if not self.poisson else counts[code])
                for g, arr in gcodes.items():
                    self.counter("grpc_server_handled", {**gl, "grpc_code": g}, req * arr if not self.poisson else arr,
                                 p, off, ints=True, first_nonzero=g != "OK")
                self.latency("grpc_server_handling_seconds", gl, req, lat, sig, p, off, False, self.buckets_classic)

    def pod_latency(self, svc: str, p: Pod, lat: np.ndarray) -> np.ndarray:
        """A pod's latency when one pod of the service is slower than the rest (else ``lat``)."""
        m = self.m
        mean = m.pod_lat_mean.get(svc)
        if mean is None or self.svc_level:
            return lat
        own = m.own_lat[svc]
        healthy = lat - own + own / mean
        f = m.pod_lat_factor.get(p.name)
        return np.maximum(healthy if f is None else healthy + own / mean * (f - 1), 1e-6)

    def pod_mix(self, svc: str, p: Pod, mix: dict[str, np.ndarray], bug: np.ndarray) -> dict[str, np.ndarray]:
        """Status shares of one pod when only one pod's code fails."""
        if self.svc_level:
            return mix
        m = self.m
        k = max(1, len([q for q in m.pods[svc] if q.start <= self.inc.onset < q.end]))
        out = dict(mix)
        own = bug * k if p.name == self.m.pod_bug[svc] else np.zeros(self.n)
        out["500"] = np.clip(mix.get("500", 0) - bug + own, 0, 1)
        out["200"] = np.clip(1 - sum((v for c, v in out.items() if c != "200"), np.zeros(self.n)), 0, 1)
        return out

    def sampled(self, counts: dict[str, np.ndarray], lat: np.ndarray, sig: float
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Counts of a quiet service drawn as Poisson samples; its latency as the mean of few requests."""
        out = {code: self.knp.poisson(np.maximum(v, 0)).astype(float) for code, v in counts.items()}
        total = sum(out.values(), np.zeros(self.n))
        lat = lat * np.exp(sig * self.knp.normal(0, 1, self.n) / np.sqrt(np.maximum(total, 1)))
        return out, total, lat

    def latency(self, family: str, labels: dict, req: np.ndarray, median: np.ndarray, sigma: float, p: Pod,
                off: int, summary: bool, buckets: list[float], quantiles: bool = True,
                first_nonzero: bool = False) -> None:
        """A latency histogram (or summary) from request counts and a log-normal distribution."""
        mean = median * math.exp(sigma * sigma / 2)
        i = self.idx(p)
        resets = [r - p.start for r in p.restarts]
        start_scale = 0.0 if p.start > 0 else self.rng.uniform(2, 40)
        seg = slice(p.start, p.end)
        cnt_full = _cum(req[seg], resets, float(np.sum(req)) * start_scale)
        if first_nonzero:
            nz = np.nonzero(cnt_full >= 1)[0]
            if len(nz) == 0:
                return
            keep = i - p.start >= nz[0]
            i = i[keep]
        sel = i - p.start
        mtype = "summary" if summary else "histogram"
        if summary:
            if quantiles:
                for q in ("0.5", "0.9", "0.99"):
                    qv = median * math.exp(sigma * _Z[q]) * (1 + self.nrng.normal(0, 0.05, self.n))
                    self.om.add(family, mtype, family, {**labels, "quantile": q}, np.maximum(qv[i], 0), i, off, 5)
        else:
            lnm = np.log(np.maximum(median[seg], 1e-6))
            for le in buckets:
                frac = _ncdf((math.log(le) - lnm) / sigma)
                # A pod alive before the window starts with history; its buckets start ordered by le.
                b = np.floor(_cum(req[seg] * frac, resets, float(np.sum(req)) * start_scale * float(np.mean(frac))))
                self.om.add(family, mtype, family + "_bucket", {**labels, "le": _le(le)}, b[sel], i, off, 0)
            self.om.add(family, mtype, family + "_bucket", {**labels, "le": "+Inf"}, np.floor(cnt_full[sel]), i, off, 0)
        s_full = _cum(req[seg] * mean[seg], resets, float(np.sum(req * mean)) * start_scale)
        self.om.add(family, mtype, family + "_sum", labels, s_full[sel], i, off, 3)
        self.om.add(family, mtype, family + "_count", labels, np.floor(cnt_full[sel]), i, off, 0)

    # ------------------------------------------------------------------ process / container
    def process_metrics(self, svc: str) -> None:
        m, st = self.m, self.st
        s = self.topo.services[svc]
        off = self.offsets[svc]
        shares = self.share(svc)
        cpu_lim_pod = m.cpu_limit_pod[svc]
        for p in self.pods(svc):
            base = self.pod_labels(p)
            i = self.idx(p)
            sh = shares[p.name] * (m.topo.services[svc].replicas)
            demand = m.cpu_demand[svc] / s.replicas * sh
            stress = m.pod_cpu_extra.get(p.name)
            if stress is not None:
                demand = demand + stress
            # A process cannot use more CPU than its limit (kube) or its VM's cores.
            cap = cpu_lim_pod * 0.995 if svc not in m.no_limit else 8.0
            used = np.minimum(demand, cap) * (1 + self.nrng.normal(0, 0.01, self.n))
            mem = self.pod_memory(svc, p)
            if st.kube:
                cl = self.cadvisor_labels(p)
                self.counter("container_cpu_usage_seconds", cl, used * self.step, p, off)
                if self.svc_level:
                    self.gauge("container_memory_working_set_bytes", cl, np.round(mem), i, off, 0)
                    continue  # the real-like flavour: per-pod resources only
                if not self.lean and svc not in m.no_limit:
                    periods = np.full(self.n, self.step / 0.1)
                    thr = np.clip((demand / cpu_lim_pod - 0.75) / 0.4, 0, 0.98) + np.abs(self.nrng.normal(0, 0.004, self.n))
                    self.counter("container_cpu_cfs_periods", cl, periods, p, off, ints=True)
                    self.counter("container_cpu_cfs_throttled_periods", cl, periods * thr, p, off, ints=True)
                self.gauge("container_memory_working_set_bytes", cl, np.round(mem), i, off, 0)
            if self.svc_flavor[svc] == "micrometer" and not self.lean:
                cores = max(1.0, float(np.ceil(cpu_lim_pod)))
                self.gauge("system_cpu_count", base, np.full(self.n, cores), i, off, 0)
                self.gauge("process_cpu_usage", base, np.clip(used / cores, 0, 1), i, off, 4)
            if not st.kube or self.rng.random() < 0.3:
                self.counter("process_cpu_seconds", base, used * self.step, p, off)
                self.gauge("process_resident_memory_bytes", base, np.round(mem * 1.05), i, off, 0)
            st_time = np.zeros(self.n)
            born = float(m.ts[p.start]) - (self.rng.uniform(3600, 30 * 86400) if p.start == 0 else self.rng.uniform(0, self.step))
            st_time[:] = born
            for r in p.restarts:
                st_time[r:] = float(m.ts[r]) + self.rng.uniform(0, self.step)
            if not self.lean or p.restarts:
                self.gauge("process_start_time_seconds", base, st_time, i, off, 2)
            if s.lang == "java" and not self.lean:
                self.jvm_metrics(svc, p, base, mem, i, off)
            if "build_info" not in st.missing:
                flav = self.svc_flavor[svc]
                bounds = [(p.start, p.version)] + [(at, v) for at, v in p.version_changes]
                for k, (b0, ver) in enumerate(bounds):
                    b1 = bounds[k + 1][0] if k + 1 < len(bounds) else p.end
                    seg = i[(i >= b0) & (i < b1)]
                    if len(seg) == 0:
                        continue
                    if flav == "otel" or st.scheme == "service_name":
                        self.gauge("target_info", {**base, "service_version": ver,
                                                   "telemetry_sdk_language": {"node": "nodejs"}.get(s.lang, s.lang)},
                                   np.ones(len(seg)), seg, off, 0)
                    elif flav == "micrometer":
                        self.gauge("application_info", {**base, "version": ver}, np.ones(len(seg)), seg, off, 0)
                    else:
                        lab = {**base, "version": ver, "goversion": "go1.22.5"} if s.lang == "go" else {**base, "version": ver}
                        self.gauge("build_info", lab, np.ones(len(seg)), seg, off, 0)
            if "config_metric" not in st.missing and (m.config_reloads[svc] or self.rng.random() < 0.4):
                v = np.full(self.n, float(m.ts[p.start]) - (self.rng.uniform(600, 86400) if p.start == 0 else 0))
                for t in m.config_reloads[svc]:
                    k = int((t - m.start) // self.step)
                    v[k + 1:] = t
                self.gauge("config_last_reload_success_timestamp_seconds", base, v, i, off, 0)

    def cadvisor_labels(self, p: Pod) -> dict:
        d = {"namespace": self.topo.namespace, "pod": p.name, "container": p.service}
        if self.st.cadvisor_job:
            d = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", **d}
        return d

    def pod_memory(self, svc: str, p: Pod) -> np.ndarray:
        m = self.m
        base = m.mem_base_pod[svc] * (1 + self.nrng.normal(0, 0.01, self.n)) * (1 + 0.03 * np.sin(np.arange(self.n) / 9.0))
        leak = getattr(m, "leak", {}).get(p.name)
        if leak is not None:
            base = base + leak
        step = m.mem_step.get(p.name)
        if step is not None:
            base = base + step
        return np.minimum(base, m.mem_limit_pod[svc] * 0.999)

    def jvm_metrics(self, svc: str, p: Pod, base: dict, mem: np.ndarray, i: np.ndarray, off: int) -> None:
        m = self.m
        heap_max = m.mem_limit_pod[svc] * 0.75
        heap = np.minimum(mem * 0.7, heap_max * 0.999)
        fill = heap / heap_max
        flav = self.svc_flavor[svc]
        gc_rate_young = 0.2 + fill * 0.5
        gc_rate_old = np.clip((fill - 0.7) * 4, 0, 3) + (0.02 if svc in getattr(m, "gc_noisy", set()) else 0.0)
        if flav == "micrometer":
            hl = {**base, "area": "heap", "id": "G1 Old Gen"}
            self.gauge("jvm_memory_used_bytes", hl, np.round(heap), i, off, 0)
            self.gauge("jvm_memory_max_bytes", hl, np.full(self.n, heap_max), i, off, 0)
            for action, cause, rate, pause in (("end of minor GC", "G1 Evacuation Pause", gc_rate_young, 0.01),
                                               ("end of major GC", "G1 Compaction Pause", gc_rate_old, 0.3)):
                lab = {**base, "action": action, "cause": cause, "gc": "G1 Young Generation" if "minor" in action else "G1 Old Generation"}
                self.counter("jvm_gc_pause_seconds", lab, rate * self.step * 0.1, p, off, sample="jvm_gc_pause_seconds_count", mtype="summary")
                self.counter("jvm_gc_pause_seconds", lab, rate * self.step * 0.1 * pause, p, off, sample="jvm_gc_pause_seconds_sum", mtype="summary")
        elif flav == "otel":
            hl = {**base, "jvm_memory_type": "heap", "jvm_memory_pool_name": "G1 Old Gen"}
            self.gauge("jvm_memory_used_bytes", hl, np.round(heap), i, off, 0)
            self.gauge("jvm_memory_limit_bytes", hl, np.full(self.n, heap_max), i, off, 0)
        else:
            hl = {**base, "area": "heap"}
            self.gauge("jvm_memory_bytes_used", hl, np.round(heap), i, off, 0)
            self.gauge("jvm_memory_bytes_max", hl, np.full(self.n, heap_max), i, off, 0)
            for gc, rate, pause in (("G1 Young Generation", gc_rate_young, 0.01), ("G1 Old Generation", gc_rate_old, 0.3)):
                lab = {**base, "gc": gc}
                self.counter("jvm_gc_collection_seconds", lab, rate * self.step * 0.1, p, off, sample="jvm_gc_collection_seconds_count", mtype="summary")
                self.counter("jvm_gc_collection_seconds", lab, rate * self.step * 0.1 * pause, p, off, sample="jvm_gc_collection_seconds_sum", mtype="summary")

    # ------------------------------------------------------------------ client side
    def client_metrics(self, svc: str, only_forced: bool = False) -> None:
        m = self.m
        off = self.offsets[svc]
        flav = self.svc_flavor[svc]
        base = self.svc_labels(svc)
        for e in self.topo.out_edges(svc):
            if e.kind not in ("rpc", "external"):
                continue
            # Some calls always have a client-side view: every call (per-call client metrics),
            # calls to a service whose own metrics are absent, calls over a degraded path.
            forced = m.client_all or e.callee in m.force_client or e.callee in m.no_server
            if only_forced and not forced:
                continue
            if e.kind == "rpc" and (self.lean or self.rng.random() < 0.4) and not forced:
                continue
            i = m.eid(e)
            calls = m.edge_rps[i] * self.step
            parts = m.edge_err_parts[i]
            tot = sum(parts.values(), np.zeros(self.n)) + 1e-12
            err = m.edge_err[i]
            mix: dict[str, np.ndarray] = {}
            for cause, arr in parts.items():
                share = err * np.clip(arr, 0, 1) / tot
                key = _CONN_ERR.get(cause) or CAUSE_STATUS.get(cause, "500")
                if cause == "upstream":
                    key = "503" if self.topo.services[e.callee].kind == EXTERNAL else "500"
                mix[key] = mix.get(key, 0) + share
            mix["200"] = np.clip(1 - err, 0, 1)
            if flav == "micrometer":
                # Micrometer tags every I/O failure the same way (status IO_ERROR).
                conn = [k for k in mix if not k.isdigit()]
                if conn:
                    mix["io"] = sum((mix.pop(k) for k in conn), np.zeros(self.n))
            lat = m.edge_lat[i]
            sig = m.sigma.get(e.callee, 0.5)
            p = Pod(svc, svc, 0, self.n, "", "", "")
            plabel = self.peer_label or self.client_label
            cm = {key: calls * arr for key, arr in mix.items()}
            if self.poisson:
                cm, calls, lat = self.sampled(cm, lat, sig)
            if flav == "grpc" and self.topo.services[e.callee].protocol == "grpc" and self.grpc_clients and not forced:
                # go-grpc-prometheus client side: the peer is only named through its gRPC service.
                gsvc = f"{e.callee.replace('-', '')}.v1.{''.join(w.title() for w in e.callee.split('-'))}Service"
                gl = {**base, "grpc_service": gsvc, "grpc_method": "Handle", "grpc_type": "unary"}
                codes: dict[str, np.ndarray] = {}
                for key, arr in mix.items():
                    g = {"timeout": "DeadlineExceeded", "tls_handshake": "Unavailable", "dns_lookup": "Unavailable",
                         "connection_refused": "Unavailable", "connection_reset": "Unavailable"}.get(key) or _GRPC_CODE.get(key, "Unknown")
                    codes[g] = codes.get(g, 0) + arr
                for g in ["OK"] + sorted(x for x in codes if x != "OK"):
                    self.counter("grpc_client_handled", {**gl, "grpc_code": g}, calls * codes[g], None, off, ints=True,
                                 first_nonzero=g != "OK")
                self.latency("grpc_client_handling_seconds", gl, calls, lat, sig, p, off, False, self.buckets_classic)
                continue
            for key in ["200"] + sorted(k for k in mix if k != "200"):
                is_conn = not key.isdigit()
                if flav in ("otel", "grpc") or (flav == "classic" and e.kind == "external" and self.rng.random() < 0.5):
                    lab = {**base, "server_address": e.callee, "http_request_method": "POST"}
                    lab.update({"error_type": key} if is_conn else {"http_response_status_code": key})
                    self.latency("http_client_request_duration_seconds", lab, cm[key],
                                 lat if key != "timeout" else np.full(self.n, e.timeout), sig, p, off, False,
                                 self.buckets_otel if key == "200" and not self.lean else [], first_nonzero=key != "200")
                elif flav == "micrometer":
                    lab = {**base, "client_name": e.callee, "method": "POST",
                           "outcome": "SUCCESS" if key == "200" else "UNKNOWN" if is_conn else "SERVER_ERROR",
                           "status": "IO_ERROR" if is_conn else key, "uri": "/" + self.rng.choice(["v1/charges", "api/v1/items", "rpc", "v2/check"])}
                    self.latency("http_client_requests_seconds", lab, cm[key], lat, sig, p, off, True, [],
                                 quantiles=False, first_nonzero=key != "200")
                else:
                    if is_conn:
                        continue  # folded into code="0" below
                    lab = {**base, plabel: e.callee, "code": key}
                    self.counter("http_client_requests", lab, cm[key], None, off, ints=True,
                                 first_nonzero=key != "200")
                    conn = sum((v for k, v in (cm if self.poisson else mix).items() if not k.isdigit()), np.zeros(self.n))
                    if key == "200" and conn.max() > 0:
                        self.counter("http_client_requests", {**base, plabel: e.callee, "code": "0"},
                                     conn if self.poisson else calls * conn, None, off, ints=True, first_nonzero=True)
                    if key == "200":
                        self.latency("http_client_request_duration_seconds", {**base, plabel: e.callee},
                                     calls, lat, sig, p, off, False, self.buckets_classic)

    def pod_network_metrics(self) -> None:
        """cAdvisor's per-pod network counters: bytes and packets each way, drops."""
        m = self.m
        r = self.krng
        for nm in self.topo.order:
            s = self.topo.services[nm]
            if s.kind in (EXTERNAL,) or nm not in m.pods:
                continue
            pods = m.pods[nm] if s.kind != APP else self.pods(nm)
            if s.kind != APP and not self.svc_level:
                continue  # infrastructure pods appear with their resources in the real-like flavour
            req_b, resp_b = r.uniform(400, 3000), r.uniform(800, 20000)
            shares = self.share(nm) if s.kind == APP else {p.name: np.ones(self.n) for p in pods}
            out_calls = sum((m.edge_rps[m.eid(e)] for e in self.topo.out_edges(nm)), np.zeros(self.n))
            rx = (m.rps[nm] * req_b + out_calls * resp_b * 0.5) + r.uniform(200, 2000)
            tx = (m.rps[nm] * resp_b + out_calls * req_b) + r.uniform(200, 2000)
            loss = np.clip(m.retrans.get(nm, np.zeros(self.n)) * 0.3, 0, 1)
            off = self.offsets[nm]
            for p in pods:
                sh = shares[p.name]
                lab = {"namespace": self.topo.namespace, "pod": p.name, "interface": "eth0"}
                if self.st.cadvisor_job:
                    lab = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", **lab}
                jit = 1 + self.knp.normal(0, 0.03, self.n)
                rxp, txp = rx * sh * jit, tx * sh * jit
                self.counter("container_network_receive_bytes", lab, rxp * self.step, p, off)
                self.counter("container_network_transmit_bytes", lab, txp * self.step, p, off)
                self.counter("container_network_receive_packets", lab, rxp / 900 * self.step, p, off, ints=True)
                self.counter("container_network_transmit_packets", lab, txp / 900 * self.step, p, off, ints=True)
                drops = (txp / 900 * loss + m.drops.get(nm, np.zeros(self.n)) * sh) * self.step
                self.counter("container_network_transmit_packets_dropped", lab, drops, p, off, ints=True,
                             start_value=float(r.randint(0, 20)))

    def infra_container_metrics(self) -> None:
        """CPU and memory of database, cache and DNS pods (the real-like flavour has no exporters)."""
        m = self.m
        r = self.krng
        for nm in self.topo.order:
            s = self.topo.services[nm]
            if s.kind in (APP, EXTERNAL) or nm not in m.pods:
                continue
            load = m.rps.get(nm, np.zeros(self.n))
            lat = m.lat.get(nm, np.zeros(self.n))
            busy = r.uniform(0.02, 0.1) + load * lat * 0.8 + load * r.uniform(1e-5, 1e-4)
            mem = r.uniform(200, 2000) * 2**20
            for p in m.pods[nm]:
                cl = self.cadvisor_labels(p)
                i = self.idx(p)
                self.counter("container_cpu_usage_seconds", cl, busy * (1 + self.knp.normal(0, 0.03, self.n)) * self.step,
                             p, self.offsets[nm])
                self.gauge("container_memory_working_set_bytes", cl,
                           np.round(mem * (1 + self.knp.normal(0, 0.005, self.n))), i, self.offsets[nm], 0)

    def pool_metrics(self, svc: str) -> None:
        m = self.m
        off = self.offsets[svc]
        shares = self.share(svc)
        reps = self.topo.services[svc].replicas
        for e in self.topo.out_edges(svc):
            if e.kind != "db":
                continue
            i = m.eid(e)
            act, pend, tmo = m.pool_active[i], m.pool_pending[i], m.pool_timeouts[i]
            for p in self.pods(svc):
                sh = np.clip(shares[p.name] * reps, 0, 2)
                a = np.minimum(np.round(act / reps * sh * (1 + self.nrng.normal(0, 0.04, self.n))), e.pool_max)
                a = np.maximum(a, 0)
                pe = np.maximum(np.round(pend / reps * sh), 0)
                to = tmo / reps * sh * self.step
                idx = self.idx(p)
                base = self.pod_labels(p)
                if e.pool_lib == "hikaricp":
                    lab = {**base, "pool": e.pool_name}
                    self.gauge("hikaricp_connections_active", lab, a, idx, off, 0)
                    self.gauge("hikaricp_connections_idle", lab, np.maximum(0, np.minimum(e.pool_max, 10) - a), idx, off, 0)
                    self.gauge("hikaricp_connections_max", lab, np.full(self.n, e.pool_max), idx, off, 0)
                    self.gauge("hikaricp_connections_pending", lab, pe, idx, off, 0)
                    self.counter("hikaricp_connections_timeout", lab, to, p, off, ints=True)
                elif e.pool_lib == "go_sql":
                    lab = {**base, "db_name": e.pool_name}
                    self.gauge("go_sql_in_use_connections", lab, a, idx, off, 0)
                    self.gauge("go_sql_idle_connections", lab, np.maximum(0, 2 - a * 0), idx, off, 0)
                    self.gauge("go_sql_max_open_connections", lab, np.full(self.n, e.pool_max), idx, off, 0)
                    self.counter("go_sql_wait_count", lab, to + pe * self.step * 0.5, p, off, ints=True)
                    self.counter("go_sql_wait_duration_seconds", lab, pe * self.step * 0.8, p, off)
                else:
                    lab = {**base, "pool_name": e.pool_name}
                    self.gauge("db_client_connections_usage", {**lab, "state": "used"}, a, idx, off, 0)
                    self.gauge("db_client_connections_usage", {**lab, "state": "idle"}, np.maximum(0, np.minimum(e.pool_max, 4) - a), idx, off, 0)
                    self.gauge("db_client_connections_max", lab, np.full(self.n, e.pool_max), idx, off, 0)
                    self.gauge("db_client_connections_pending_requests", lab, pe, idx, off, 0)
                    self.counter("db_client_connections_timeouts", lab, to, p, off, ints=True)

    # ------------------------------------------------------------------ infrastructure
    def db_metrics(self, db: str) -> None:
        m = self.m
        s = self.topo.services[db]
        off = self.offsets[db]
        lab = self.infra_labels(db, 9187 if s.kind == POSTGRES else 9104)
        qps = m.db_qps[db]
        lat = m.db_lat[db]
        executing = qps * lat * (1 + self.nrng.normal(0, 0.08, self.n))
        held = np.zeros(self.n)
        total_pool = 0.0
        for e in self.topo.in_edges(db):
            i = m.eid(e)
            total_pool += float(np.median(m.pool_active[i]))
            held = held + np.maximum(0, m.pool_active[i] - m.edge_rps[i] * lat * 1.3)
        idle = max(3.0, total_pool * 0.8) + self.nrng.normal(0, 1, self.n)
        max_conn = self.rng.choice([100, 200, 300, 500])
        if s.kind == POSTGRES:
            self.gauge("pg_up", lab, np.ones(self.n), None, off, 0)
            d = {**lab, "datname": "app"}
            self.gauge("pg_stat_activity_count", {**d, "state": "active"}, np.maximum(1, np.round(executing + 1)), None, off, 0)
            self.gauge("pg_stat_activity_count", {**d, "state": "idle"}, np.maximum(0, np.round(idle)), None, off, 0)
            self.gauge("pg_stat_activity_count", {**d, "state": "idle in transaction"}, np.maximum(0, np.round(held * 0.6 + np.abs(self.nrng.normal(0, 0.5, self.n)))), None, off, 0)
            self.gauge("pg_settings_max_connections", lab, np.full(self.n, max_conn), None, off, 0)
            tx = np.abs(lat * 20 + self.nrng.gamma(1.0, 0.3, self.n)) + m.db_txdur_add[db]
            self.gauge("pg_stat_activity_max_tx_duration", {**d, "state": "active"}, tx, None, off, 3)
            locks = np.maximum(0, np.round(qps * lat * 3 + 2 + self.nrng.normal(0, 1, self.n) + m.db_locks_add[db]))
            self.gauge("pg_locks_count", {**d, "mode": "rowexclusivelock"}, locks, None, off, 0)
            self.gauge("pg_locks_count", {**d, "mode": "accesssharelock"}, np.maximum(0, np.round(executing * 2 + 5)), None, off, 0)
            if not self.lean:
                self.gauge("pg_locks_count", {**d, "mode": "exclusivelock"}, np.round(m.db_locks_add[db] * 0.3), None, off, 0)
            self.counter("pg_stat_database_xact_commit", d, qps * self.step * 0.4 * (1 - np.clip(m.err[db], 0, 1)), None, off, ints=True)
            self.counter("pg_stat_database_xact_rollback", d, qps * self.step * (0.001 + np.clip(m.err[db], 0, 1) * 0.4), None, off, ints=True)
            if self.rng.random() < 0.6:
                self.counter("pg_stat_statements_calls", d, qps * self.step, None, off, ints=True)
                self.counter("pg_stat_statements_seconds", d, qps * self.step * lat * 1.3, None, off)
        else:
            self.gauge("mysql_up", lab, np.ones(self.n), None, off, 0)
            self.gauge("mysql_global_status_threads_connected", lab, np.maximum(1, np.round(idle + executing + held)), None, off, 0)
            self.gauge("mysql_global_status_threads_running", lab, np.maximum(1, np.round(executing + 1)), None, off, 0)
            self.gauge("mysql_global_variables_max_connections", lab, np.full(self.n, max_conn), None, off, 0)
            slow_thr = 1.0
            slow = qps * lognormal_tail_np(lat, m.sigma[db], slow_thr) * self.step + 0.002 * self.step
            self.counter("mysql_global_status_slow_queries", lab, slow, None, off, ints=True)
            self.counter("mysql_global_status_questions", lab, qps * self.step, None, off, ints=True)
            self.gauge("mysql_global_status_innodb_row_lock_current_waits", lab,
                       np.maximum(0, np.round(m.db_locks_add[db] * 0.5 + np.abs(self.nrng.normal(0, 0.4, self.n)))), None, off, 0)
            self.counter("mysql_global_status_innodb_row_lock_time", lab, (m.db_locks_add[db] * 200 + 5) * self.step, None, off, ints=True)
            tx = np.abs(lat * 20 + self.nrng.gamma(1.0, 0.3, self.n)) + m.db_txdur_add[db]
            self.gauge("mysql_info_schema_processlist_seconds", {**lab, "command": "query", "state": "executing"}, tx, None, off, 2)
            if self.rng.random() < 0.5:
                self.counter("mysql_perf_schema_events_statements", {**lab, "schema": "app"}, qps * self.step, None, off, ints=True)
                self.counter("mysql_perf_schema_events_statements_seconds", {**lab, "schema": "app"}, qps * self.step * lat * 1.2, None, off)

    def redis_metrics(self, c: str) -> None:
        m = self.m
        off = self.offsets[c]
        lab = self.infra_labels(c, 9121)
        up = m.cache_up[c]
        ops = m.rps[c]
        hit = np.clip(m.cache_hit[c], 0, 1)
        live = np.nonzero(up > 0.5)[0]
        self.gauge("redis_up", lab, np.round(up), None, off, 0)
        if len(live) == 0:
            return
        clients = max(2, len(self.topo.in_edges(c)) * 8)
        self.gauge("redis_connected_clients", lab, np.round(clients + self.nrng.normal(0, 1, self.n)), live, off, 0)
        self.counter("redis_keyspace_hits", lab, ops * hit * self.step * up, None, off, ints=True)
        self.counter("redis_keyspace_misses", lab, ops * (1 - hit) * self.step * up, None, off, ints=True)
        base_hit = float(np.median(hit[: max(2, self.inc.onset // 2)]))
        evict = np.maximum(0, base_hit - hit) * ops * self.step * 0.7 + 0.01 * self.step
        self.counter("redis_evicted_keys", lab, evict * up, None, off, ints=True)
        maxmem = self.rng.choice([1, 2, 4, 8]) * 2**30
        used = maxmem * np.clip(0.6 + 0.3 * (evict > 0.05 * self.step) + self.nrng.normal(0, 0.01, self.n), 0, 0.99)
        self.gauge("redis_memory_used_bytes", lab, np.round(used[live]), live, off, 0)
        self.gauge("redis_memory_max_bytes", lab, np.full(len(live), maxmem), live, off, 0)
        self.counter("redis_commands_processed", lab, ops * self.step * 1.1 * up, None, off, ints=True)

    def hosts(self) -> dict[str, list[str]]:
        """Node name → services with a pod on it (current pods only)."""
        out: dict[str, list[str]] = {}
        for nm in self.topo.order:
            s = self.topo.services[nm]
            if s.kind in (EXTERNAL, DNS):
                continue
            for p in self.pods(nm):
                out.setdefault(p.node, [])
                if nm not in out[p.node]:
                    out[p.node].append(nm)
        return out

    def node_metrics(self) -> None:
        m = self.m
        st = self.st
        if st.node_labelled:
            # Dedicated hosts per service, relabelled with the service's name.
            targets = []
            for nm in self.topo.order:
                s = self.topo.services[nm]
                if s.kind in (EXTERNAL, DNS):
                    continue
                if self.lean and s.kind == APP and self.rng.random() < 0.0:
                    continue
                host = self.pods(nm)[0].node if self.pods(nm) else nm
                if st.scheme == "container":
                    lab = {"namespace": self.topo.namespace, "container": nm, "instance": f"{host}:9100"}
                else:
                    lab = {st.scheme: nm, "instance": f"{host}:9100"}
                targets.append((lab, [nm]))
        else:
            targets = [({"job": "node-exporter", "instance": f"{node}:9100", "node": node}, svcs)
                       for node, svcs in self.hosts().items()]
        for lab, svcs in targets:
            off = self.rng.randint(0, max(0, self.step - 1))
            rate = sum(float(np.mean(m.rps.get(s, np.zeros(1)))) for s in svcs) * 12 + self.rng.uniform(200, 2000)
            out = rate * (1 + self.nrng.normal(0, 0.05, self.n))
            ratio = 0.0005 + np.abs(self.nrng.normal(0, 0.0003, self.n)) + np.max([m.retrans[s] for s in svcs], axis=0)
            self.om.add("node_netstat_Tcp_OutSegs", st.counter_type_for_netstat, "node_netstat_Tcp_OutSegs", lab,
                        np.cumsum(out * self.step) + self.rng.uniform(1e8, 1e10), None, off, 0)
            self.om.add("node_netstat_Tcp_RetransSegs", st.counter_type_for_netstat, "node_netstat_Tcp_RetransSegs", lab,
                        np.floor(np.cumsum(out * ratio * self.step) + self.rng.uniform(1e5, 1e7)), None, off, 0)
            if not self.lean:
                drops = np.max([m.drops[s] for s in svcs], axis=0)
                self.counter("node_network_transmit_drop", {**lab, "device": "eth0"}, (drops + 0.0) * self.step, None, off, ints=True, start_value=float(self.rng.randint(0, 50)))
                self.gauge("node_memory_MemAvailable_bytes", lab, np.round(16 * 2**30 * (0.4 + self.nrng.normal(0, 0.01, self.n))), None, off, 0)

    def volume_metrics(self) -> None:
        m = self.m
        for nm in self.topo.order:
            s = self.topo.services[nm]
            if not s.has_volume:
                continue
            fill = m.volume_fill.get(nm)
            if fill is None:
                start = self.rng.uniform(0.2, 0.8)
                fill = start + np.linspace(0, self.rng.uniform(0, 0.02), self.n) + self.nrng.normal(0, 0.0005, self.n)
            size = self.rng.choice([20, 50, 100, 200, 500]) * 2**30
            avail = np.maximum(0, size * (1 - np.clip(fill, 0, 1)))
            off = self.offsets[nm]
            if self.st.kube and (s.kind == APP or self.rng.random() < 0.6):
                pvc = f"data-{nm}-0" if s.kind != APP else f"{nm}-{self.rng.choice(['data', 'spool', 'cache', 'uploads'])}"
                lab = {"namespace": self.topo.namespace, "persistentvolumeclaim": pvc}
                if self.st.scheme != "container":
                    lab = {self.st.scheme: nm, **lab}
                self.gauge("kubelet_volume_stats_available_bytes", lab, np.round(avail), None, off, 0)
                self.gauge("kubelet_volume_stats_capacity_bytes", lab, np.full(self.n, size), None, off, 0)
            else:
                mount = {POSTGRES: "/var/lib/postgresql/data", MYSQL: "/var/lib/mysql"}.get(s.kind, self.rng.choice(["/data", "/var/log", "/var/spool/app"]))
                host = self.pods(nm)[0].node if self.pods(nm) else nm
                lab = {"instance": f"{host}:9100", "device": "/dev/nvme1n1", "fstype": "ext4", "mountpoint": mount}
                lab = ({"namespace": self.topo.namespace, "container": nm, **lab} if self.st.scheme == "container"
                       else {self.st.scheme: nm, **lab})
                self.gauge("node_filesystem_avail_bytes", lab, np.round(avail), None, off, 0)
                self.gauge("node_filesystem_size_bytes", lab, np.full(self.n, size), None, off, 0)

    def cert_metrics(self) -> None:
        m = self.m
        use_x509 = self.rng.random() < 0.4
        for nm in self.topo.apps():
            s = self.topo.services[nm]
            if not s.tls:
                continue
            if self.lean and self.rng.random() < 0.5:
                continue  # big fleets probe only some endpoints
            expiry = m.cert_expiry.get(nm, float(m.ts[-1]) + self.rng.uniform(15, 300) * 86400)
            expiry = float(int(expiry))
            url = f"https://{nm}.{self.topo.namespace}.svc:443"
            sc = self.st.scheme
            name_lab = {"namespace": self.topo.namespace, "container": nm} if sc == "container" else {sc: nm}
            if use_x509:
                lab = {**name_lab, "subject_CN": f"{nm}.{self.topo.namespace}.svc", "secret_name": f"{nm}-tls"}
                self.gauge("x509_cert_not_after", lab, np.full(self.n, expiry), None, self.offsets[nm], 0)
            else:
                lab = {**name_lab, "instance": url}
                ok = (m.ts < expiry).astype(float)
                dur = 0.02 + m.lat[nm] * 0.5 + self.nrng.gamma(2, 0.005, self.n)
                self.gauge("probe_ssl_earliest_cert_expiry", lab, np.full(self.n, expiry), None, self.offsets[nm], 0)
                self.gauge("probe_success", lab, ok, None, self.offsets[nm], 0)
                self.gauge("probe_duration_seconds", lab, dur + (1 - ok) * 0.01, None, self.offsets[nm], 4)

    def dns_metrics(self) -> None:
        m = self.m
        dns = self.topo.dns
        off = self.offsets[dns]
        sc = self.st.scheme
        lab = ({"namespace": "kube-system", "pod": m.pods[dns][0].name, "container": dns} if sc == "container"
               else {sc if sc in ("job", "service", "app") else "job": dns, "instance": f"{m.pods[dns][0].ip}:9153"})
        total = sum(float(np.mean(m.rps[a])) for a in self.topo.apps()) * 0.05 + self.rng.uniform(50, 400)
        q = total * (1 + self.nrng.normal(0, 0.04, self.n))
        fail = np.clip(m.dns_fail - m.dns_nx, 0, 1)
        nx = 0.02 + m.dns_nx
        if hasattr(m, "legacy_host"):
            nx = nx + 0.01
        base = {**lab, "server": "dns://:53", "zone": "."}
        self.counter("coredns_dns_responses", {**base, "rcode": "NOERROR"}, q * (1 - fail - nx) * self.step, None, off, ints=True)
        self.counter("coredns_dns_responses", {**base, "rcode": "NXDOMAIN"}, q * nx * self.step, None, off, ints=True)
        self.counter("coredns_dns_responses", {**base, "rcode": "SERVFAIL"}, q * (fail + 0.0005) * self.step, None, off, ints=True)
        self.counter("coredns_dns_requests", {**base, "proto": "udp", "type": "A"}, q * self.step, None, off, ints=True)
        lk = m.lat[dns] * (1 + self.nrng.normal(0, 0.1, self.n)) + fail * 2.0
        if "blackbox" not in self.st.missing:
            plab = ({**lab, "instance": f"{m.pods[dns][0].ip}:53"} if sc != "container" else {**lab})
            self.gauge("probe_dns_lookup_time_seconds", plab, np.abs(lk), None, off, 5)

    def kube_state_metrics(self) -> None:
        m = self.m
        for nm in self.topo.apps():
            for p in self.pods(nm):
                lab = {"namespace": self.topo.namespace, "pod": p.name, "container": nm}
                if self.st.ksm_job:
                    lab = {"job": "kube-state-metrics", **lab}
                i = np.arange(p.start, p.end)
                rs = np.zeros(self.n)
                for r in p.restarts:
                    rs[r:] += 1
                self.om.add("kube_pod_container_status_restarts", "counter", "kube_pod_container_status_restarts_total",
                            lab, rs[i], i, 0, 0)
                if nm not in m.no_limit:
                    self.om.add("kube_pod_container_resource_limits", "gauge", "kube_pod_container_resource_limits",
                                {**lab, "resource": "cpu", "unit": "core"}, np.full(len(i), m.cpu_limit_pod[nm]), i, 0, 3)
                self.om.add("kube_pod_container_resource_limits", "gauge", "kube_pod_container_resource_limits",
                            {**lab, "resource": "memory", "unit": "byte"}, np.full(len(i), m.mem_limit_pod[nm]), i, 0, 0)
                if not self.st.node_labelled:
                    il = {k: v for k, v in lab.items() if k != "container"}
                    self.om.add("kube_pod_info", "gauge", "kube_pod_info", {**il, "node": p.node, "pod_ip": p.ip},
                                np.ones(len(i)), i, 0, 0)
                if any(p.restarts) and self.rng.random() < 0.9:
                    reason = [e.data.get("reason") for e in m.events if e.kind == "restart" and e.data.get("pod") == p.name]
                    if reason and reason[-1] == "OOMKilled":
                        last = np.zeros(self.n)
                        last[p.restarts[0]:] = 1
                        self.om.add("kube_pod_container_status_last_terminated_reason", "gauge",
                                    "kube_pod_container_status_last_terminated_reason",
                                    {**lab, "reason": "OOMKilled"}, last[i], i, 0, 0)

    def up_metrics(self) -> None:
        m = self.m
        for nm in self.topo.apps():
            for p in self.pods(nm):
                i = np.arange(p.start, p.end)
                v = np.ones(self.n)
                for r in p.restarts:
                    v[r] = 0
                self.om.add("up", "gauge", "up", self.pod_labels(p), v[i], i, self.offsets[nm], 0)
        for nm in self.topo.of_kind(*DATABASES, REDIS):
            if self.topo.services[nm].kind in DATABASES and "db_exporter" in self.st.missing:
                continue
            port = {POSTGRES: 9187, MYSQL: 9104, REDIS: 9121}[self.topo.services[nm].kind]
            self.om.add("up", "gauge", "up", self.infra_labels(nm, port), np.ones(self.n), None, self.offsets[nm], 0)


def _le(x: float) -> str:
    return repr(float(x))


def _ncdf(x: np.ndarray) -> np.ndarray:
    from compass_tui.sim.signals import norm_cdf
    return norm_cdf(x)


def lognormal_tail_np(median: np.ndarray, sigma: float, thr: float) -> np.ndarray:
    """Share of log-normal samples above ``thr``."""
    from compass_tui.sim.signals import lognormal_tail
    return lognormal_tail(median, sigma, thr)


def size_budget(n_services: int) -> int:
    """Largest ``metrics.om`` (bytes) we aim for: example-sized for small systems, bounded for big ones."""
    return int(min(100e6, max(12e6, n_services * 0.2e6)))


def render_metrics(inc: SimIncident) -> str:
    """The incident's ``metrics.om`` text, thinned level by level until it fits the size budget."""
    n = len(inc.topo.services)
    level = 0 if n <= 20 else 1 if n <= 60 else 2 if n <= 150 else 3
    budget = size_budget(n)
    while True:
        text = MetricsRenderer(inc, level).render()
        if len(text) <= budget or level >= 4:
            return text
        level += 1

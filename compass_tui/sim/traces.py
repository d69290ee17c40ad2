"""Render sampled traces of a simulated incident as an OTLP/JSON ExportTraceServiceRequest."""

from __future__ import annotations

import math
import random

import numpy as np

from compass_tui.sim.scenario import SimIncident
from compass_tui.sim.topology import APP, DATABASES, EXTERNAL, MYSQL, REDIS

_MAX_SPANS = 30
_MAX_DEPTH = 7


def _s(k: str, v: str) -> dict:
    return {"key": k, "value": {"stringValue": v}}


def _i(k: str, v: int) -> dict:
    return {"key": k, "value": {"intValue": str(v)}}


class TraceRenderer:
    """Walks the call graph from an entry service for each sampled request."""

    def __init__(self, inc: SimIncident):
        self.inc = inc
        self.m = inc.model
        self.topo = inc.topo
        self.rng = random.Random(inc.rng_seed ^ 0x7ACE)
        self.resources: dict[tuple[str, str], list[dict]] = {}
        self.pod_version: dict[tuple[str, str], str] = {}
        self.routes = {nm: f"/api/v1/{nm.split('-')[0]}" for nm in self.topo.apps()}
        n_apps = len(self.topo.apps())
        total = self.rng.uniform(100, 260) if n_apps < 60 else self.rng.uniform(60, 120)
        self.per_step = total / self.m.n
        self.sample_ratio = self.rng.choice([0.01, 0.05, 0.1, 0.25])

    def _hex(self, n: int) -> str:
        return "%0*x" % (n, self.rng.getrandbits(n * 4))

    def _pod(self, svc: str, i: int) -> str:
        pods = [p for p in self.m.pods.get(svc, []) if p.start <= i < p.end] or self.m.pods.get(svc, [])
        if not pods:
            return svc
        p = self.rng.choice(pods)
        self.pod_version[(svc, p.name)] = p.version_at(i)
        return p.name

    def _lat(self, median: float, sigma: float) -> float:
        return math.exp(math.log(max(median, 1e-6)) + sigma * self.rng.gauss(0, 1))

    def _add(self, svc: str, pod: str, span: dict) -> None:
        self.resources.setdefault((svc, pod), []).append(span)

    def server(self, svc: str, i: int, start: float, trace: str, parent: str, depth: int, budget: list[int]) -> tuple[float, bool]:
        """Emit a server span of ``svc`` and its children; returns (end, failed)."""
        m, rng = self.m, self.rng
        s = self.topo.services[svc]
        sid = self._hex(16)
        budget[0] -= 1
        own = self._lat(m.own_lat[svc][i], m.sigma[svc])
        cursor = start + own * 0.3
        failed = False
        err_msg = ""
        own_err = sum(float(a[i]) for a in m.err_own[svc].values()) + float(m.sat_err.get(svc, np.zeros(m.n))[i])
        if rng.random() < own_err:
            failed = True
            err_msg = getattr(m, "bug_template", {}).get(svc, "internal error")
        outs = list(self.topo.out_edges(svc))
        rng.shuffle(outs)  # so a span budget does not always starve the same branches
        for e in outs:
            if budget[0] <= 0 or depth >= _MAX_DEPTH:
                break
            calls = int(e.fanout) + (1 if rng.random() < e.fanout - int(e.fanout) else 0)
            calls = min(calls, 3)
            for _ in range(calls):
                if budget[0] <= 0:
                    break
                end, cfail = self.client(svc, e, i, cursor, trace, sid, depth, budget)
                cursor = end if rng.random() < e.weight else cursor + (end - cursor) * 0.2
                if cfail and rng.random() < e.propagate:
                    failed = True
                    err_msg = err_msg or f"call to {e.callee} failed"
        end = max(cursor, start + own) + own * 0.2
        code = 500 if failed else 200
        attrs = ([_s("rpc.system", "grpc"), _s("rpc.service", f"{svc.replace('-', '')}.v1.Service"), _s("rpc.method", "Handle"),
                  _i("rpc.grpc.status_code", 13 if failed else 0)] if s.protocol == "grpc" else
                 [_s("http.route", self.routes[svc]), _s("http.request.method", "POST" if depth else "GET"), _i("http.response.status_code", code)])
        span = {"traceId": trace, "spanId": sid, "parentSpanId": parent,
                "name": f"{'GET' if not depth else 'POST'} {self.routes[svc]}" if s.protocol != "grpc" else f"{svc.replace('-', '')}.v1.Service/Handle",
                "kind": 2, "startTimeUnixNano": str(int(start * 1e9)), "endTimeUnixNano": str(int(end * 1e9)),
                "attributes": attrs, "status": {"code": 2, "message": err_msg[:200]} if failed else {"code": 0}}
        self._add(svc, self._pod(svc, i), span)
        return end, failed

    def client(self, svc: str, e, i: int, start: float, trace: str, parent: str, depth: int, budget: list[int]) -> tuple[float, bool]:
        """Emit a client span for one call on edge ``e`` (and the callee's server span)."""
        m, rng = self.m, self.rng
        idx = m.eid(e)
        callee = self.topo.services[e.callee]
        sid = self._hex(16)
        budget[0] -= 1
        parts = m.edge_err_parts[idx]
        p_err = float(m.edge_err[idx][i])
        cause = None
        if parts and rng.random() < p_err:
            keys = list(parts)
            w = np.array([float(parts[k][i]) for k in keys])
            if w.sum() > 0:
                cause = keys[int(np.searchsorted(np.cumsum(w / w.sum()), rng.random()))]
                cause = keys[min(len(keys) - 1, keys.index(cause))]
        attrs = [_s("peer.service", e.callee)]
        name = "POST"
        failed = cause is not None
        msg = ""
        net = float(m.edge_lat_add[idx][i]) * rng.uniform(0.3, 1.7)
        if e.kind == "db" or e.kind == "cache":
            system = "redis" if callee.kind == REDIS else ("mysql" if callee.kind == MYSQL else "postgresql")
            attrs = [_s("db.system", system), _s("server.address", e.callee), _s("peer.service", e.callee)]
            if callee.kind in DATABASES:
                attrs.append(_s("db.name", "app"))
                name = rng.choice(["SELECT", "SELECT", "UPDATE", "INSERT"]) + " app." + rng.choice(["orders", "items", "accounts", "events"])
                dur = self._lat(float(m.edge_lat[idx][i]), m.sigma[e.callee])
            else:
                name = rng.choice(["GET", "GET", "SET", "MGET"])
                dur = self._lat(float(m.lat[e.callee][i]), 0.4)
            if cause == "pool":
                dur = e.timeout
                msg = "Connection is not available, request timed out" if e.pool_lib == "hikaricp" else "timeout acquiring a connection from the pool"
            elif cause == "cache_down":
                dur = rng.uniform(0.0005, 0.003)
                msg = f"dial tcp {e.callee}:6379: connect: connection refused"
            elif cause is not None:
                msg = "canceling statement due to statement timeout" if cause == "timeout" else "query failed"
                if cause == "timeout":
                    dur = e.timeout
            end = start + dur
        else:
            if callee.kind == EXTERNAL:
                attrs.append(_s("server.address", f"api.{e.callee}.com"))
            if cause in ("tls", "dns", "refused"):
                dur = rng.uniform(0.001, 0.03) if cause != "dns" else rng.uniform(0.005, 2.0)
                msg = {"tls": "x509: certificate has expired or is not yet valid",
                       "dns": f"dial tcp: lookup {e.callee}: no such host",
                       "refused": "connect: connection refused"}[cause]
                end = start + dur
            elif callee.kind == APP and budget[0] > 0 and depth + 1 < _MAX_DEPTH:
                child_start = start + net / 2 + rng.uniform(0.0002, 0.002)
                c_end, c_fail = self.server(e.callee, i, child_start, trace, sid, depth + 1, budget)
                end = c_end + net / 2 + rng.uniform(0.0002, 0.002)
                if cause in ("timeout", "config_timeout") or end - start > e.timeout:
                    end = start + e.timeout
                    failed, msg = True, "context deadline exceeded"
                elif c_fail:
                    failed, msg = True, "503 Service Unavailable"
                elif cause is not None:
                    msg = {"reset": "read: connection reset by peer"}.get(cause, "upstream error")
            else:
                dur = self._lat(float(m.edge_lat[idx][i]), m.sigma.get(e.callee, 0.5)) + net
                if cause in ("timeout", "config_timeout") or dur > e.timeout:
                    dur, failed, msg = e.timeout, True, "context deadline exceeded"
                elif cause is not None:
                    msg = "503 Service Unavailable"
                end = start + dur
            if e.kind != "db":
                code = 200 if not failed else (503 if "503" in msg else 0)
                if code:
                    attrs.append(_i("http.response.status_code", code))
        span = {"traceId": trace, "spanId": sid, "parentSpanId": parent, "name": name, "kind": 3,
                "startTimeUnixNano": str(int(start * 1e9)), "endTimeUnixNano": str(int(end * 1e9)),
                "attributes": attrs, "status": {"code": 2, "message": msg} if failed else {"code": 0}}
        self._add(svc, self._pod(svc, i), span)
        return end, failed

    def render(self) -> dict:
        """The OTLP/JSON request body."""
        m, rng = self.m, self.rng
        entries = self.topo.entries or self.topo.apps()[:1]
        counts = np.random.default_rng(self.inc.rng_seed & 0xFFFF).poisson(self.per_step, m.n)
        for i in range(m.n):
            for _ in range(int(counts[i])):
                # Most traces start at an entry; some at internal consumers and scheduled jobs.
                entry = rng.choice(entries) if rng.random() < 0.8 else rng.choice(self.topo.apps())
                start = float(m.ts[i]) + rng.random() * m.step
                self.server(entry, i, start, self._hex(32), "", 0, [_MAX_SPANS])
        out = []
        st = self.inc.style
        for (svc, pod), spans in sorted(self.resources.items()):
            s = self.topo.services[svc]
            attrs = [_s("service.name", svc), _s("service.version", self.pod_version.get((svc, pod), m.versions.get(svc, "1.0.0"))),
                     _s("deployment.environment", st.env),
                     _s("telemetry.sdk.language", {"node": "nodejs"}.get(s.lang, s.lang or "go"))]
            if st.kube:
                attrs += [_s("k8s.pod.name", pod), _s("k8s.namespace.name", self.topo.namespace)]
            else:
                attrs.append(_s("host.name", pod.split(":")[0]))
            spans.sort(key=lambda x: int(x["startTimeUnixNano"]))
            out.append({"resource": {"attributes": attrs},
                        "scopeSpans": [{"scope": {"name": "io.opentelemetry.auto" if s.lang != "go" else "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"},
                                        "spans": spans}]})
        return {"resourceSpans": out}


def render_traces(inc: SimIncident) -> dict:
    """The incident's ``traces.json`` content."""
    return TraceRenderer(inc).render()

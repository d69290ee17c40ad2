"""Render a simulated incident's log lines as a Loki push body, in each service's own format."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import numpy as np

from compass_tui.sim.scenario import SimIncident
from compass_tui.sim.signals import error_parts
from compass_tui.sim.topology import APP, DATABASES, EXTERNAL, POSTGRES, REDIS

_PATHS = ["/api/v1/orders", "/api/v1/items", "/api/v2/cart", "/api/v1/user", "/api/v1/search", "/api/v1/quote",
          "/api/v1/check", "/api/v1/batch", "/healthz", "/api/v1/status"]
_CHRONIC = ["validation failed: {f} must not be null", "invalid configuration: {f} out of range",
            "request rejected: missing header X-Request-Id", "could not parse {f} from payload",
            "{f} lookup returned no rows", "deprecated endpoint called: /api/v0/{f}"]
_FIELDS = ["locale", "currency", "sku", "customerId", "region", "items", "tier"]


def _iso(t: float, ms: bool = True) -> str:
    d = datetime.fromtimestamp(t, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{int(d.microsecond / 1000):03d}Z" if ms else "Z")


def _camel(svc: str) -> str:
    return "".join(w.title() for w in svc.replace("_", "-").split("-") if w and not w.isdigit())


class LogRenderer:
    """Builds log streams for apps, databases, caches and DNS."""

    def __init__(self, inc: SimIncident):
        self.inc = inc
        self.m = inc.model
        self.topo = inc.topo
        self.rng = random.Random(inc.rng_seed ^ 0x1095)
        self.nrng = np.random.default_rng((inc.rng_seed >> 7) & 0xFFFFFFFF)
        self.streams: dict[tuple, list[tuple[int, str]]] = {}
        self.stream_mode = self.rng.choice(["level", "level", "plain", "pod"] if inc.style.kube else ["level", "plain"])
        self.fmt: dict[str, str] = {}
        self.chronic: dict[str, str] = {}
        for nm in self.topo.apps():
            lang = self.topo.services[nm].lang
            choices = {"java": ["spring", "json", "logfmt"], "go": ["logfmt", "json", "slog"],
                       "python": ["python", "json"], "node": ["json", "pino", "logfmt"]}[lang]
            self.fmt[nm] = self.rng.choice(choices)
            if self.topo.services[nm].role == "entry" and self.rng.random() < 0.3:
                self.fmt[nm] = "nginx"
            self.chronic[nm] = self.rng.choice(_CHRONIC).format(f=self.rng.choice(_FIELDS))
        n_apps = max(1, len(self.topo.apps()))
        self.info_rate = float(np.clip(4000.0 / (n_apps * self.m.n), 0.01, 1.5))
        self.err_share = {nm: self.rng.uniform(0.002, 0.02) for nm in self.topo.apps()}
        self.err_cap = 1.0 + self.m.step / 20
        self.krng = random.Random(inc.realism.seed ^ 0x1095)  # lines only the realism knobs add

    # ------------------------------------------------------------------ formatting
    def emit(self, svc: str, t: float, level: str, msg: str, fields: dict | None = None, pod: str | None = None,
             raw: bool = False) -> None:
        """Format one line in ``svc``'s format and add it to the right stream."""
        fields = fields or {}
        line = msg if raw else self.format(svc, t, level, msg, fields)
        st = self.inc.style
        labels = {st.log_label: svc}
        if self.stream_mode == "level":
            labels["level"] = level
        elif self.stream_mode == "pod" and pod:
            labels["namespace"] = self.topo.namespace
            labels["pod"] = pod
        labels["env"] = st.env
        key = tuple(labels.items())
        self.streams.setdefault(key, []).append((int(t * 1e9) + self.rng.randint(0, 999), line))

    def format(self, svc: str, t: float, level: str, msg: str, fields: dict) -> str:
        fmt = self.fmt.get(svc, "logfmt")
        if fmt == "logfmt":
            extra = "".join(f" {k}={_lf(v)}" for k, v in fields.items())
            return f'ts={_iso(t)} level={level} msg={_lf(msg)}{extra}'
        if fmt == "slog":
            extra = "".join(f" {k}={_lf(v)}" for k, v in fields.items())
            return f'time={_iso(t)} level={level.upper()} msg={_lf(msg)}{extra}'
        if fmt == "json":
            return json.dumps({"ts": _iso(t), "level": level, "msg": msg, **fields})
        if fmt == "pino":
            lv = {"debug": 20, "info": 30, "warn": 40, "error": 50}[level]
            return json.dumps({"level": lv, "time": int(t * 1000), "pid": 1, "hostname": svc, "msg": msg, **fields})
        if fmt == "spring":
            d = datetime.fromtimestamp(t, tz=timezone.utc)
            ts = d.strftime("%Y-%m-%d %H:%M:%S") + f".{int(d.microsecond / 1000):03d}"
            lvl = {"warn": "WARN "}.get(level, level.upper().ljust(5))
            thread = f"nio-8080-exec-{self.rng.randint(1, 200)}"
            extra = "".join(f" {k}={v}" for k, v in fields.items() if k in ("peer", "url", "pool"))
            return f"{ts} {lvl} 1 --- [{thread}] c.{self.topo.vocab[:4]}.{svc.split('-')[0]}.{_camel(svc)}Controller : {msg}{extra}"
        if fmt == "python":
            d = datetime.fromtimestamp(t, tz=timezone.utc)
            ts = d.strftime("%Y-%m-%d %H:%M:%S") + f",{int(d.microsecond / 1000):03d}"
            extra = "".join(f" {k}={v}" for k, v in fields.items())
            return f"{ts} {level.upper()} [{svc.replace('-', '_')}.handlers] {msg}{extra}"
        # nginx-ish: access log for completions, error log otherwise
        d = datetime.fromtimestamp(t, tz=timezone.utc)
        if level == "info" and "status" in fields:
            return (f'{self._ip()} - - [{d.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET {fields.get("path", "/")} HTTP/1.1" '
                    f'{fields["status"]} {self.rng.randint(200, 9000)} "-" "{self.rng.choice(["okhttp/4.12.0", "Mozilla/5.0", "curl/8.5.0"])}" '
                    f'{fields.get("duration_ms", 10) / 1000:.3f}')
        lvl = {"warn": "warn", "error": "error", "info": "notice"}.get(level, level)
        extra = ", ".join(f"{k}: {v}" for k, v in fields.items())
        return f'{d.strftime("%Y/%m/%d %H:%M:%S")} [{lvl}] 31#31: *{self.rng.randint(1000, 999999)} {msg}' + (f", {extra}" if extra else "")

    def _ip(self) -> str:
        return f"10.{self.rng.randint(0, 40)}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 254)}"

    # ------------------------------------------------------------------ error texts
    def peer_url(self, peer: str, tls: bool = False) -> str:
        s = self.topo.services.get(peer)
        path = self.rng.choice(_PATHS[:8])
        if s is not None and s.kind == EXTERNAL:
            return f"https://api.{peer}.com/v1/{self.rng.choice(['charges', 'verify', 'quotes', 'events', 'lookup'])}"
        port = s.port if s else 8080
        return f"{'https' if tls else 'http'}://{peer}:{port if not tls else 443}{path}"

    def error_text(self, svc: str, cause: str, peer: str | None, t: float) -> tuple[str, dict]:
        """The message a service of this language logs for a failure of ``cause`` involving ``peer``."""
        lang = self.topo.services[svc].lang
        rng = self.rng
        m = self.m
        edge = next((e for e in self.topo.out_edges(svc) if e.callee == peer), None) if peer else None
        pk = self.topo.services[peer].kind if peer else None
        if cause in ("bug", "config") and svc in getattr(m, "bug_template", {}):
            return m.bug_template[svc], {}
        if cause == "prior" and svc in m.prior_template:
            return m.prior_template[svc], {}
        if cause in ("chronic", "baseline", "transient", "bug", "config", "prior", "noise"):
            return self.chronic[svc], {}
        if cause == "ratelimit":
            return rng.choice(["rate limit exceeded, rejecting request with 429", "too many requests: quota exhausted for client"]), {"client": rng.choice(["mobile", "partner-x", "web"])}
        if cause == "shed":
            return rng.choice(["request rejected: server overloaded", "503 Service Unavailable: too many in-flight requests",
                               "worker pool saturated, dropping request"]), {}
        if cause == "disk":
            path = rng.choice(["/data/spool/batch-0042.tmp", "/var/log/app/app.log", "/data/uploads/tmp-8812", "/var/lib/app/state.db"])
            return {"java": f"java.io.IOException: No space left on device (writing {path})",
                    "go": f"write {path}: no space left on device",
                    "python": f"OSError: [Errno 28] No space left on device: '{path}'",
                    "node": f"Error: ENOSPC: no space left on device, write '{path}'"}[lang], {}
        if cause == "oom":
            return "java.lang.OutOfMemoryError: Java heap space", {}
        if cause == "pool" and edge is not None:
            lib = edge.pool_lib
            if lib == "hikaricp":
                return (f"java.sql.SQLTransientConnectionException: {edge.pool_name} - Connection is not available, "
                        f"request timed out after {int(edge.timeout * 1000)}ms."), {"pool": edge.pool_name}
            if lib == "go_sql":
                return rng.choice([f"failed to acquire connection from pool: context deadline exceeded (db={peer})",
                                   f"sql: timeout waiting for a free connection (max_open={edge.pool_max}, db={peer})"]), {}
            if lang == "node":
                return "KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a .transacting(trx) call?", {"db": peer}
            return (f"sqlalchemy.exc.TimeoutError: QueuePool limit of size {edge.pool_max} overflow 0 reached, "
                    f"connection timed out, timeout {edge.timeout:.2f}"), {"db": peer}
        if pk in DATABASES:
            if cause in ("db", "upstream") and "disk" in m.err_own.get(peer, {}):
                return ({"postgres": 'ERROR: could not extend file "base/16384/24577": No space left on device',
                         "mysql": "Error 1114 (HY000): The table 'orders' is full"}[pk]), {"db": peer}
            if cause in ("timeout", "db", "upstream"):
                if pk == POSTGRES:
                    msg = "ERROR: canceling statement due to statement timeout"
                    msg = {"java": f"org.postgresql.util.PSQLException: {msg}", "go": f"pq: {msg[7:]}",
                           "python": f"psycopg2.errors.QueryCanceled: {msg[7:]}", "node": f"error: {msg[7:]}"}[lang]
                else:
                    msg = rng.choice(["Error 1205 (HY000): Lock wait timeout exceeded; try restarting transaction",
                                      "Error 3024 (HY000): Query execution was interrupted, maximum statement execution time exceeded"])
                return msg, {"db": peer}
        if pk == REDIS:
            return {"java": f"io.lettuce.core.RedisConnectionException: Unable to connect to {peer}:6379",
                    "go": f"redis: dial tcp {peer}:6379: connect: connection refused",
                    "python": f"redis.exceptions.ConnectionError: Error 111 connecting to {peer}:6379. Connection refused.",
                    "node": f"Error: connect ECONNREFUSED {peer}:6379"}[lang], {"cache": peer}
        url = self.peer_url(peer, tls=cause == "tls") if peer else "http://upstream"
        host = url.split("/")[2].split(":")[0]
        if self.fmt.get(svc) == "nginx" and peer:
            path = "/" + url.split("/", 3)[-1]
            up = {"client": self._ip(), "server": "_", "request": f'"POST {path} HTTP/1.1"', "upstream": f'"{url}"'}
            text = {"timeout": "upstream timed out (110: Connection timed out) while reading response header from upstream",
                    "config_timeout": "upstream timed out (110: Connection timed out) while reading response header from upstream",
                    "refused": "connect() failed (111: Connection refused) while connecting to upstream",
                    "reset": "recv() failed (104: Connection reset by peer) while reading response header from upstream",
                    "tls": "upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream",
                    "dns": f"{host} could not be resolved (2: Server failure)" if float(np.mean(m.dns_nx)) < 0.01 else f"{host} could not be resolved (3: Host not found)",
                    }.get(cause, "upstream prematurely closed connection while reading response header from upstream")
            return text, up
        if cause in ("timeout", "config_timeout"):
            tmo = edge.timeout if edge else 5
            return {"java": f"feign.RetryableException: Read timed out executing POST {url}",
                    "go": f'Post "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                    "python": f"requests.exceptions.ReadTimeout: HTTPConnectionPool(host='{host}', port=8080): Read timed out. (read timeout={tmo})",
                    "node": f"Error: timeout of {int(tmo * 1000)}ms exceeded"}[lang], {"peer": peer, "url": url}
        if cause == "refused":
            ip = self._ip()
            return {"java": f"java.net.ConnectException: Connection refused (Connection refused) calling {url}",
                    "go": f'Post "{url}": dial tcp {ip}:8080: connect: connection refused',
                    "python": f"requests.exceptions.ConnectionError: HTTPConnectionPool(host='{host}', port=8080): Max retries exceeded (Caused by NewConnectionError: [Errno 111] Connection refused)",
                    "node": f"Error: connect ECONNREFUSED {ip}:8080"}[lang], {"peer": peer}
        if cause == "reset":
            return {"java": f"java.net.SocketException: Connection reset (calling {url})",
                    "go": f'Post "{url}": read tcp {self._ip()}:{rng.randint(30000, 60000)}->{self._ip()}:8080: read: connection reset by peer',
                    "python": f"requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer')) url={url}",
                    "node": "Error: read ECONNRESET"}[lang], {"peer": peer, "url": url}
        if cause == "tls":
            exp = m.cert_expiry.get(peer, t - 60)
            exp_s = datetime.fromtimestamp(exp, tz=timezone.utc)
            return {"java": f"javax.net.ssl.SSLHandshakeException: PKIX path validation failed: java.security.cert.CertificateExpiredException: NotAfter: {exp_s.strftime('%a %b %d %H:%M:%S UTC %Y')}",
                    "go": f'Get "{url}": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time {_iso(t, False)} is after {_iso(exp, False)}',
                    "python": "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)",
                    "node": "Error: certificate has expired"}[lang], {"peer": peer, "url": url}
        if cause == "dns":
            fq = host if pk == EXTERNAL else f"{peer}.{self.topo.namespace}.svc.cluster.local"
            servfail = float(np.mean(m.dns_nx)) < 0.01
            return {"java": f"java.net.UnknownHostException: {fq}: Name or service not known" if not servfail else f"java.net.UnknownHostException: {fq}: Temporary failure in name resolution",
                    "go": f'Post "{url}": dial tcp: lookup {fq} on 10.96.0.10:53: ' + ("server misbehaving" if servfail and rng.random() < 0.5 else "no such host"),
                    "python": "socket.gaierror: [Errno -3] Temporary failure in name resolution" if servfail else "socket.gaierror: [Errno -2] Name or service not known",
                    "node": f"Error: getaddrinfo {'EAI_AGAIN' if servfail else 'ENOTFOUND'} {fq}"}[lang], {"peer": peer, "host": fq}
        code = rng.choice(["503 Service Unavailable", "502 Bad Gateway", "500 Internal Server Error"])
        if pk == EXTERNAL:
            code = rng.choice(["503 Service Unavailable", "502 Bad Gateway", "500 Internal Server Error", "504 Gateway Timeout"])
        if pk == APP and self.topo.services[peer].protocol == "grpc":
            return _grpc_status(lang, code, getattr(m, "bug_template", {}).get(peer), peer), {}
        return {"java": f"feign.FeignException$ServiceUnavailable: [{code}] during [POST] to [{url}]",
                "go": f"unexpected status {code} from {url}",
                "python": f"requests.exceptions.HTTPError: {code[:3]} Server Error: {code[4:]} for url: {url}",
                "node": f"Error: Request failed with status code {code[:3]}"}[lang], {"peer": peer, "url": url}

    # ------------------------------------------------------------------ app logs
    def app_logs(self, svc: str) -> None:
        m = self.m
        s = self.topo.services[svc]
        step = m.step
        rng = self.rng
        parts = error_parts(m, svc)
        keys = list(parts)
        mat = np.array([parts[k] for k in keys]) if keys else np.zeros((0, m.n))
        rps = m.rps[svc]
        lat = m.lat[svc]
        base_lat = float(np.median(lat[: max(2, self.inc.onset // 2)]))
        slow_thr = base_lat * 5 + 0.2
        from compass_tui.sim.signals import lognormal_tail
        slow_frac = lognormal_tail(lat, m.sigma[svc], slow_thr)
        info_n = self.nrng.poisson(self.info_rate, m.n)
        warn_n = self.nrng.poisson(np.minimum(3, self.info_rate * 4 * slow_frac + 0.002))
        err_total = mat.sum(axis=0) if len(keys) else np.zeros(m.n)
        err_n = self.nrng.poisson(np.minimum(self.err_cap, err_total * rps * step * self.err_share[svc]))
        pods = m.pods.get(svc, [])
        for i in range(m.n):
            t0 = float(m.ts[i])
            live = [p for p in pods if p.start <= i < p.end] or pods
            for _ in range(int(info_n[i])):
                t = t0 + rng.random() * step
                path = rng.choice(_PATHS)
                dur = int(np.exp(np.log(max(lat[i], 1e-4)) + m.sigma[svc] * rng.gauss(0, 1)) * 1000)
                if self.fmt[svc] == "spring":
                    self.emit(svc, t, "info", f"Completed {rng.choice(['GET', 'POST'])} {path} 200 in {dur} ms", pod=rng.choice(live).name)
                else:
                    self.emit(svc, t, "info", "request completed", {"path": path, "status": 200, "duration_ms": dur}, pod=rng.choice(live).name)
            for _ in range(int(warn_n[i])):
                t = t0 + rng.random() * step
                dur = int(slow_thr * 1000 * (1 + rng.expovariate(1.0)))
                if svc in m.warn_template and i >= self.inc.onset and self.krng.random() < 0.7:
                    # The slow path names itself: a new warning template of the culprit's own code.
                    text = m.warn_template[svc].replace("{ms}", str(dur)).replace("{q}", str(self.krng.randint(20, 900)))
                    self.emit(svc, t, "warn", text, pod=self.bug_pod(svc, live))
                elif rng.random() < 0.25 and self.topo.out_edges(svc):
                    e = rng.choice(self.topo.out_edges(svc))
                    self.emit(svc, t, "warn", "retrying request", {"attempt": 2, "peer": e.callee}, pod=rng.choice(live).name)
                else:
                    self.emit(svc, t, "warn", "slow request", {"path": rng.choice(_PATHS), "duration_ms": dur}, pod=rng.choice(live).name)
            k = int(err_n[i])
            if k and len(keys):
                w = mat[:, i]
                if w.sum() <= 0:
                    continue
                choice = self.nrng.choice(len(keys), size=k, p=w / w.sum())
                for c in choice:
                    cause, peer = keys[c]
                    msg, f = self.error_text(svc, cause, peer, t0)
                    t = t0 + rng.random() * step
                    pod = rng.choice(live).name
                    if cause == "bug" and svc in m.pod_bug:
                        pod = m.pod_bug[svc]  # only one pod's code fails
                    self.emit(svc, t, "error", msg, f, pod=pod)
        self.lifecycle_logs(svc)
        self.side_logs(svc)

    def bug_pod(self, svc: str, live: list) -> str:
        """The pod a culprit's own new lines come from (its one bad pod, when only one is bad)."""
        return self.m.pod_bug.get(svc) or next((n for n in self.m.pod_lat_factor if any(p.name == n for p in live)), None) \
            or self.krng.choice(live).name

    def lifecycle_logs(self, svc: str) -> None:
        """Start-up lines with versions, config reloads, OOM deaths, GC chatter."""
        m = self.m
        s = self.topo.services[svc]
        rng = self.rng
        for p in m.pods.get(svc, []):
            starts = ([(p.start, p.version)] if p.start > 0 else []) + [(r, p.version_at(r)) for r in p.restarts]
            for idx, ver in starts:
                if idx >= m.n:
                    continue
                t = float(m.ts[idx]) + rng.uniform(1, max(2, m.step * 0.8))
                if s.lang == "java":
                    self.emit(svc, t, "info", f"Starting {_camel(svc)}Application v{ver.lstrip('v')} using Java 17.0.{rng.randint(2, 12)} with PID 1", pod=p.name)
                    self.emit(svc, t + rng.uniform(5, 12), "info", f"Started {_camel(svc)}Application in {rng.uniform(5, 14):.3f} seconds (process running for {rng.uniform(6, 16):.3f})", pod=p.name)
                else:
                    self.emit(svc, t, "info", rng.choice([f"starting {svc}", "starting server", "service starting"]),
                              {"version": ver, "addr": f":{s.port}"}, pod=p.name)
            for r in p.restarts:
                reason = next((e.data.get("reason") for e in m.events if e.kind == "restart" and e.data.get("pod") == p.name
                               and abs(e.t - float(m.ts[r])) <= m.step), None)
                if reason == "OOMKilled":
                    t = float(m.ts[r]) - rng.uniform(1, m.step)
                    msg = {"java": "java.lang.OutOfMemoryError: Java heap space", "go": "fatal error: runtime: out of memory",
                           "node": "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
                           "python": "MemoryError"}[s.lang]
                    self.emit(svc, t, "error", msg, pod=p.name)
        for t in m.config_reloads[svc]:
            rev = rng.randint(10, 900)
            self.emit(svc, t + rng.uniform(0.5, 5), "info",
                      rng.choice(["configuration reloaded", "config reloaded", f"Reloaded configuration from /etc/{svc}/config.yaml",
                                  "feature flags refreshed"]), {"revision": rev})
        if s.lang == "java":
            leak = getattr(m, "leak", {})
            noisy = svc in getattr(m, "gc_noisy", set())
            heap_max = int(m.mem_limit_pod[svc] * 0.75 / 2**20)
            gc_no = rng.randint(100, 9000)
            every = max(1, int(120 / m.step))
            for p in m.pods.get(svc, [])[:3]:
                extra = leak.get(p.name)
                for i in range(p.start, p.end, every):
                    used = (m.mem_base_pod[svc] + (extra[i] if extra is not None else 0)) * 0.7 / 2**20
                    fill = used / heap_max
                    t = float(m.ts[i]) + rng.uniform(0, m.step)
                    gc_no += rng.randint(5, 40)
                    if fill > 0.85 or (noisy and rng.random() < 0.3):
                        after = int(used * rng.uniform(0.85, 0.98))
                        self.emit(svc, t, "warn", f"[{_iso(t)}][warning][gc] GC({gc_no}) Pause Full (G1 Compaction Pause) {int(used)}M->{after}M({heap_max}M) {rng.uniform(120, 900):.3f}ms", pod=p.name, raw=True)
                    elif rng.random() < 0.5:
                        self.emit(svc, t, "info", f"[{_iso(t)}][info][gc] GC({gc_no}) Pause Young (Normal) (G1 Evacuation Pause) {int(used)}M->{int(used * 0.4)}M({heap_max}M) {rng.uniform(2, 12):.3f}ms", pod=p.name, raw=True)

    def side_logs(self, svc: str) -> None:
        """Red-herring chatter and server-side TLS errors."""
        m = self.m
        rng = self.rng
        legacy = getattr(m, "legacy_host", {}).get(svc)
        if legacy:
            for i in range(0, m.n, max(1, int(rng.uniform(60, 300) / m.step))):
                t = float(m.ts[i]) + rng.uniform(0, m.step)
                self.emit(svc, t, "warn", f"lookup {legacy} on 10.96.0.10:53: no such host", {"component": "reporter"})
        exp = m.cert_expiry.get(svc)
        if exp is not None:
            if exp > float(m.ts[-1]):
                days = (exp - float(m.ts[-1])) / 86400
                for i in range(0, m.n, max(1, int(1800 / m.step))):
                    self.emit(svc, float(m.ts[i]) + 5, "warn", f"TLS certificate for {svc}.{self.topo.namespace}.svc expires in {days:.1f} days")
            else:
                lang = self.topo.services[svc].lang
                for i in range(self.inc.onset, m.n):
                    for _ in range(self.nrng.poisson(0.8)):
                        t = float(m.ts[i]) + rng.uniform(0, m.step)
                        msg = {"go": f"http: TLS handshake error from {self._ip()}:{rng.randint(30000, 60000)}: remote error: tls: bad certificate",
                               "java": "javax.net.ssl.SSLHandshakeException: Received fatal alert: certificate_unknown",
                               "node": "Error: socket hang up (tlsClientError: certificate_unknown)",
                               "python": "ssl.SSLError: [SSL: SSLV3_ALERT_CERTIFICATE_UNKNOWN] sslv3 alert certificate unknown"}[lang]
                        self.emit(svc, t, "warn", msg)

    # ------------------------------------------------------------------ infra logs
    def db_logs(self, db: str) -> None:
        m = self.m
        s = self.topo.services[db]
        rng = self.rng
        lat = m.db_lat[db]
        base = float(np.median(lat[: max(2, self.inc.onset // 2)]))
        disk = m.err_own[db].get("disk")
        for i in range(m.n):
            t0 = float(m.ts[i])
            n_slow = self.nrng.poisson(min(4.0, 0.03 + 0.4 * max(0.0, lat[i] / base - 2)))
            n_lock = self.nrng.poisson(min(3.0, m.db_locks_add[db][i] * 0.05))
            for _ in range(int(n_slow)):
                t = t0 + rng.random() * m.step
                dur = lat[i] * 1000 * rng.uniform(50, 400)
                self.db_line(db, t, "slow", dur)
            for _ in range(int(n_lock)):
                self.db_line(db, t0 + rng.random() * m.step, "lock", 1000 + rng.random() * 4000)
            if disk is not None and disk[i] > 0 and rng.random() < 0.7:
                self.db_line(db, t0 + rng.random() * m.step, "disk", 0)
            if rng.random() < 0.02:
                self.db_line(db, t0 + rng.random() * m.step, "checkpoint", 0)

    def db_line(self, db: str, t: float, kind: str, dur_ms: float) -> None:
        s = self.topo.services[db]
        rng = self.rng
        d = datetime.fromtimestamp(t, tz=timezone.utc)
        table = rng.choice(["orders", "items", "accounts", "sessions", "events", "payments"])
        if s.kind == POSTGRES:
            ts = d.strftime("%Y-%m-%d %H:%M:%S") + f".{int(d.microsecond / 1000):03d} UTC"
            pid = rng.randint(100, 9999)
            text = {"slow": f"LOG:  duration: {dur_ms:.3f} ms  statement: SELECT * FROM {table} WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50",
                    "lock": f"LOG:  process {pid} still waiting for ShareLock on transaction {rng.randint(10**6, 10**7)} after {dur_ms:.3f} ms",
                    "disk": f'ERROR:  could not extend file "base/16384/{rng.randint(16000, 30000)}": No space left on device',
                    "checkpoint": f"LOG:  checkpoint complete: wrote {rng.randint(100, 5000)} buffers ({rng.uniform(0.1, 3):.1f}%); 0 WAL file(s) added, 0 removed, 1 recycled"}[kind]
            line = f"{ts} [{pid}] {text}"
        else:
            ts = d.strftime("%Y-%m-%dT%H:%M:%S") + f".{d.microsecond:06d}Z"
            tid = rng.randint(10, 999)
            text = {"slow": f"[Warning] [MY-010914] [Server] slow query: Query_time: {dur_ms / 1000:.6f} Lock_time: 0.000120 Rows_examined: {rng.randint(10**4, 10**6)}",
                    "lock": f"[Note] [MY-012345] [InnoDB] Lock wait timeout on table `app`.`{table}` after {dur_ms / 1000:.1f}s",
                    "disk": f"[ERROR] [MY-000035] [Server] Disk is full writing './binlog.{rng.randint(100, 999):06d}' (OS errno 28 - No space left on device). Waiting for someone to free space...",
                    "checkpoint": "[System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections."}[kind]
            line = f"{ts} {tid} {text}"
        level = {"slow": "warn", "lock": "warn", "disk": "error", "checkpoint": "info"}[kind]
        self.emit(db, t, level, line, raw=True)

    def redis_logs(self, c: str) -> None:
        m = self.m
        rng = self.rng
        up = m.cache_up[c]
        for i in range(0, m.n, max(1, int(rng.uniform(300, 900) / m.step))):
            if up[i] > 0.5:
                t = float(m.ts[i]) + rng.uniform(0, m.step)
                self.emit(c, t, "info", f"1:M {_iso(t, False)} * Background saving started by pid {rng.randint(1000, 9999)}", raw=True)
        down = np.nonzero(up < 0.5)[0]
        if len(down):
            t = float(m.ts[down[0]]) - rng.uniform(1, m.step)
            self.emit(c, t, "warn", f"1:signal-handler ({int(t)}) Received SIGTERM scheduling shutdown...", raw=True)
            self.emit(c, t + 0.5, "warn", f"1:M {_iso(t + 0.5, False)} # Redis is now ready to exit, bye bye...", raw=True)

    def dns_logs(self) -> None:
        m = self.m
        rng = self.rng
        dns = self.topo.dns
        for i in range(0, m.n, max(1, int(rng.uniform(600, 1800) / m.step))):
            self.emit(dns, float(m.ts[i]) + 3, "info", f"[INFO] plugin/reload: Running configuration SHA512 = {rng.getrandbits(64):016x}", raw=True)
        names = [e.callee for e in self.topo.edges if e.kind in ("rpc", "external")]
        for i in range(m.n):
            k = self.nrng.poisson(min(5.0, m.dns_fail[i] * 8))
            for _ in range(int(k)):
                t = float(m.ts[i]) + rng.random() * m.step
                peer = rng.choice(names) if names else "upstream"
                fq = f"api.{peer}.com." if self.topo.services.get(peer) and self.topo.services[peer].kind == EXTERNAL else f"{peer}.{self.topo.namespace}.svc.cluster.local."
                if m.dns_nx[i] > 0.01:
                    line = f'[INFO] {self._ip()}:{rng.randint(30000, 60000)} - {rng.randint(1, 65000)} "A IN {fq} udp 60 false 512" NXDOMAIN qr,aa,rd 153 0.000{rng.randint(100, 999)}s'
                else:
                    line = f"[ERROR] plugin/errors: 2 {fq} A: read udp {self._ip()}:{rng.randint(30000, 60000)}->10.0.0.2:53: i/o timeout"
                self.emit(dns, t, "error", line, raw=True)

    def render(self) -> dict:
        """The Loki push body."""
        for svc in self.topo.apps():
            self.app_logs(svc)
        for db in self.topo.of_kind(*DATABASES):
            self.db_logs(db)
        for c in self.topo.of_kind(REDIS):
            self.redis_logs(c)
        self.dns_logs()
        streams = []
        for key, vals in self.streams.items():
            vals.sort(key=lambda x: x[0])
            streams.append({"stream": dict(key), "values": [[str(t), line] for t, line in vals]})
        streams.sort(key=lambda s: sorted(s["stream"].items()))
        return {"streams": streams}


def _lf(v) -> str:
    s = str(v)
    if s and all(c.isalnum() or c in "-_./:" for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_logs(inc: SimIncident) -> dict:
    """The incident's ``logs.json`` content."""
    return LogRenderer(inc).render()


def _grpc_status(lang: str, http_code: str, callee_error: str | None, peer: str) -> str:
    """A failed gRPC call as the caller's runtime reports it. A server that failed in its own
    code sends its error text back as the status message, so the caller's line repeats it; the
    callee is seldom named (the client knows a method, not a host)."""
    code = "UNKNOWN" if callee_error else "UNAVAILABLE" if http_code[:3] in ("502", "503") else "INTERNAL"
    desc = callee_error or {"UNAVAILABLE": "connection error: desc = \"transport: Error while dialing\"",
                            "INTERNAL": "server closed the stream without sending trailers"}[code]
    method = peer.replace("-", " ").title().replace(" ", "")
    return {"go": f"failed to call {method}: rpc error: code = {code.title()} desc = {desc}",
            "java": f"io.grpc.StatusRuntimeException: {code}: {desc}",
            "python": f'grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with: status = StatusCode.{code} details = "{desc}">',
            "node": f"Error: {dict(UNKNOWN=2, INTERNAL=13, UNAVAILABLE=14)[code]} {code}: {desc}"}[lang]

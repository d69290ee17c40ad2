"""Observe: find out what this stack has and turn it into per-service signals.

Nothing is assumed about naming: metric names are listed, each relevant metric's label sets
are discovered, the label that names the service is chosen per metric by how well its
values match the services seen elsewhere (request metrics, traces, logs), and every signal
is computed by a PromQL query an engineer could paste into Grafana Explore.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import numpy as np

from compass_tui.engine.queries import BudgetExhausted, QueryRunner
from compass_tui.engine.request import SERVICE_LABELS
from compass_tui.engine.timeseries import Grid

EXTRA_SERVICE_LABELS = ("app_kubernetes_io_name", "k8s_deployment_name", "deployment", "workload", "application", "name")
"""Labels that may name the service, after SERVICE_LABELS. ``name`` (Sock Shop's, among others)
comes last: it names many other things, and is only read where no other label names services."""
POD_LABELS = ("pod", "k8s_pod_name", "pod_name")
HOST_LABELS = ("node", "nodename", "kubernetes_node", "host", "hostname", "instance")
HOST_FAMILIES = {"retrans", "outsegs", "net_drop", "fs_avail", "fs_size"}
OBJECT_LABELS = ("persistentvolumeclaim", "pvc", "deployment", "statefulset", "daemonset", "pod", "volume")
STATUS_LABELS = ("code", "status", "status_code", "http_response_status_code", "http_status_code", "response_code", "grpc_code", "outcome")
PEER_LABELS = ("server_address", "peer_service", "net_peer_name", "client_name", "remote_service", "rpc_service", "target_service",
               "destination_service", "upstream", "peer", "server", "target", "http_host", "host")
POOL_LABELS = ("pool", "pool_name", "db_name", "name", "datasource")
GRPC_ERROR_CODES = "Unknown|DeadlineExceeded|Internal|Unavailable|DataLoss|ResourceExhausted|Aborted"
EXPORTER_JOBS = re.compile(r"(kube-state-metrics|cadvisor|kubelet|node-exporter|node_exporter|blackbox|prometheus|otel-collector|opentelemetry-collector|alloy|agent)", re.I)
POD_HASH = re.compile(r"^(?P<svc>.+?)-(?:(?P<rs>[a-z0-9]{6,10})-[a-z0-9]{5}|[a-z0-9]{5}|\d+)$")
"""A pod's name: its workload's, then a Deployment's pod-template hash (``rs``: a new one is a
new ReplicaSet) and suffix, a bare suffix, or a StatefulSet ordinal."""

# family -> metric name patterns (full match). Order inside a family is preference.
FAMILIES: dict[str, list[str]] = {
    "requests": [
        r"http_requests_total", r"http_server_requests_seconds_count", r"http_server_request_duration_seconds_count",
        r"http_server_duration_seconds_count", r"http_server_duration_milliseconds_count", r"grpc_server_handled_total",
        r"http_server_requests_total", r"[a-z0-9_]*_http_requests_total", r"requests_total",
        # a summary or histogram named for requests alone counts them (Sock Shop's); a prefixed
        # one (http_request_duration_seconds) is counted by its own requests metric already
        r"request_duration_seconds_count",
    ],
    "latency_hist": [
        r"http_request_duration_seconds_bucket", r"http_server_requests_seconds_bucket",
        r"http_server_request_duration_seconds_bucket", r"http_server_duration_seconds_bucket",
        r"http_server_duration_milliseconds_bucket", r"grpc_server_handling_seconds_bucket",
        r"(?:[a-z0-9_]*_)?request_duration_seconds_bucket",
    ],
    "latency_summary": [
        r"http_request_duration_seconds", r"http_server_requests_seconds", r"http_server_request_duration_seconds",
        r"grpc_server_handling_seconds", r"(?:[a-z0-9_]*_)?request_duration_seconds", r"(?:[a-z0-9_]*_)?request_latency_seconds",
    ],
    "latency_sum": [
        r"http_request_duration_seconds_sum", r"http_server_requests_seconds_sum", r"http_server_request_duration_seconds_sum",
        r"http_server_duration_seconds_sum", r"http_server_duration_milliseconds_sum", r"grpc_server_handling_seconds_sum",
        r"(?:[a-z0-9_]*_)?request_duration_seconds_sum",
    ],
    "cpu": [r"container_cpu_usage_seconds_total", r"process_cpu_seconds_total"],
    "cpu_throttle": [r"container_cpu_cfs_throttled_periods_total"],
    "cpu_periods": [r"container_cpu_cfs_periods_total"],
    "limits": [r"kube_pod_container_resource_limits"],
    "memory": [r"container_memory_working_set_bytes", r"process_resident_memory_bytes", r"container_memory_rss",
               r"container_memory_usage_bytes"],
    "jvm_used": [r"jvm_memory_used_bytes", r"jvm_memory_bytes_used"],
    "jvm_max": [r"jvm_memory_max_bytes", r"jvm_memory_bytes_max"],
    "restarts": [r"kube_pod_container_status_restarts_total"],
    "oom": [r"kube_pod_container_status_last_terminated_reason", r"container_oom_events_total"],
    "start_time": [r"process_start_time_seconds"],
    "hikari_active": [r"hikaricp_connections_active"], "hikari_max": [r"hikaricp_connections_max"],
    "hikari_pending": [r"hikaricp_connections_pending"], "hikari_timeout": [r"hikaricp_connections_timeout_total"],
    "otel_pool_usage": [r"db_client_connections_usage"], "otel_pool_max": [r"db_client_connections_max"],
    "otel_pool_pending": [r"db_client_connections_pending_requests"], "otel_pool_timeout": [r"db_client_connections_timeouts_total"],
    "gosql_inuse": [r"go_sql_in_use_connections", r"go_sql_stats_connections_in_use"],
    "gosql_max": [r"go_sql_max_open_connections", r"go_sql_stats_connections_max_open"],
    "gosql_wait": [r"go_sql_wait_count_total", r"go_sql_stats_connections_waited_for_total"],
    "pg_tx": [r"pg_stat_activity_max_tx_duration"], "pg_locks": [r"pg_locks_count"],
    "pg_activity": [r"pg_stat_activity_count"], "pg_max_conn": [r"pg_settings_max_connections"],
    "pg_up": [r"pg_up"],
    "mysql_slow": [r"mysql_global_status_slow_queries_total", r"mysql_global_status_slow_queries"],
    "mysql_running": [r"mysql_global_status_threads_running"],
    "mysql_proc": [r"mysql_info_schema_processlist_seconds"],
    "mysql_lockwaits": [r"mysql_global_status_innodb_row_lock_current_waits"],
    "mysql_up": [r"mysql_up"],
    "fs_avail": [r"node_filesystem_avail_bytes", r"node_filesystem_free_bytes"], "fs_size": [r"node_filesystem_size_bytes"],
    "vol_avail": [r"kubelet_volume_stats_available_bytes"], "vol_cap": [r"kubelet_volume_stats_capacity_bytes"],
    "retrans": [r"node_netstat_Tcp_RetransSegs"], "outsegs": [r"node_netstat_Tcp_OutSegs"],
    "net_drop": [r"node_network_transmit_drop_total", r"node_network_receive_drop_total"],
    "probe_success": [r"probe_success"], "probe_duration": [r"probe_duration_seconds", r"probe_http_duration_seconds"],
    "cert_expiry": [r"probe_ssl_earliest_cert_expiry", r"x509_cert_not_after", r"ssl_certificate_expiry_seconds", r"cert_exporter_cert_expires_in_seconds"],
    "dns_responses": [r"coredns_dns_responses_total", r"coredns_dns_response_rcode_count_total"],
    "dns_lookup": [r"probe_dns_lookup_time_seconds"],
    "redis_up": [r"redis_up"], "redis_hits": [r"redis_keyspace_hits_total"], "redis_misses": [r"redis_keyspace_misses_total"],
    "redis_evicted": [r"redis_evicted_keys_total"],
    "cache_generic_hits": [r"[a-z0-9_]*cache_hits_total"], "cache_generic_misses": [r"[a-z0-9_]*cache_misses_total"],
    "up": [r"up"],
    "pod_info": [r"kube_pod_info"],
    "client_count": [r"http_client_request_duration_seconds_count", r"http_client_requests_seconds_count", r"http_client_duration_milliseconds_count", r"http_client_duration_seconds_count", r"grpc_client_handled_total"],
    "client_sum": [r"http_client_request_duration_seconds_sum", r"http_client_requests_seconds_sum", r"http_client_duration_milliseconds_sum", r"http_client_duration_seconds_sum"],
    # Tempo's metrics generator (service graphs from spans): one series per call edge
    "sg_requests": [r"traces_service_graph_request_total"], "sg_failed": [r"traces_service_graph_request_failed_total"],
    "sg_client_sum": [r"traces_service_graph_request_client_seconds_sum"],
    "sg_client_count": [r"traces_service_graph_request_client_seconds_count"],
    "build_info": [r"build_info", r"[a-z0-9_]+_build_info", r"target_info", r"app_info", r"service_info", r"version_info"],
    "config_reload": [r"config_last_reload_success_timestamp_seconds", r"[a-z0-9_]*config_last_reload_success_timestamp_seconds", r"[a-z0-9_]*config_hash", r"[a-z0-9_]*feature_flag[a-z0-9_]*"],
}
_COMPILED = {fam: [re.compile(p) for p in pats] for fam, pats in FAMILIES.items()}
MISSING_FAMILIES: dict[str, tuple[str, ...]] = {
    "requests": ("requests",), "latency": ("latency_hist", "latency_summary", "latency_sum"), "cpu": ("cpu",),
    "memory": ("memory", "jvm_used"), "restarts": ("restarts", "start_time"),
    "pools": ("hikari_active", "hikari_max", "otel_pool_usage", "otel_pool_max", "gosql_inuse", "gosql_max"),
    "db_server": ("pg_tx", "pg_locks", "pg_activity", "mysql_slow", "mysql_running", "mysql_proc", "mysql_lockwaits"),
    "disk": ("fs_avail", "fs_size", "vol_avail", "vol_cap"), "network": ("retrans", "outsegs", "net_drop"),
    "tls": ("cert_expiry",), "dns": ("dns_responses", "dns_lookup"),
    "cache": ("redis_up", "redis_hits", "redis_misses", "cache_generic_hits", "cache_generic_misses"), "liveness": ("up",),
}
"""A missing-signal entry -> the families whose metrics would have filled it (so a metric the
source could not look up is not reported as one the stack lacks)."""
VERSION_LABELS = ("version", "service_version", "app_version", "image_tag", "revision", "git_commit", "image")


_TOKEN = re.compile(r"[^-_.]+")
"""A token of a Kubernetes object's name."""
OWN_FAMILIES = {"requests", "latency_hist", "latency_sum", "latency_summary"}
"""Families read as the reporting service's own (server-side) traffic and latency."""
_CLIENT_SIDE = re.compile(r"(^|_)client(_|$)")


def classify(name: str) -> list[str]:
    """Families a metric name belongs to. A client-side metric (``http_client_request_duration_seconds``)
    is the callers' view of their peers, never the reporting service's own latency or traffic."""
    client = bool(_CLIENT_SIDE.search(name))
    out = []
    for fam, pats in _COMPILED.items():
        if client and fam in OWN_FAMILIES:
            continue
        if any(p.fullmatch(name) for p in pats):
            out.append(fam)
    return out


@dataclass
class MetricInfo:
    name: str
    label_values: dict[str, set[str]] = field(default_factory=dict)
    svc_label: str | None = None
    families: list[str] = field(default_factory=list)

    @property
    def labels(self) -> set[str]:
        return set(self.label_values)


def pod_label(info: MetricInfo) -> str | None:
    """The pod label of a per-service metric when some service runs several pods (more pods
    than services), else None: with one pod each, the pod is the service."""
    svc = info.svc_label
    for label in POD_LABELS:
        if label != svc and label in info.label_values and svc in info.label_values \
                and len(info.label_values[label]) > len(info.label_values[svc]):
            return label
    return None


@dataclass
class SigSeries:
    """One signal of one service (or of one service and a sub-key: a pool, a peer)."""

    signal: str
    service: str
    values: np.ndarray
    query: str
    sub: str | None = None

    @property
    def key(self) -> str:
        """Its key in the stack: the service, or ``service|sub``."""
        return self.service if self.sub is None else f"{self.service}|{self.sub}"


@dataclass
class Stack:
    """What this stack has, as discovered."""

    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)
    """Services seen in request metrics, traces or logs."""
    signals: dict[str, dict[str, SigSeries]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    """signal -> why it is missing and the fix."""
    generic: dict[str, "GenericMeta"] = field(default_factory=dict)
    """Signals read from metrics no family knows (``g:NAME`` own, ``e:NAME`` callers' view)."""

    def first(self, family: str) -> MetricInfo | None:
        for pat in _COMPILED.get(family, []):
            for name, info in self.metrics.items():
                if pat.fullmatch(name) and family in info.families:
                    return info
        return None

    def all(self, family: str) -> list[MetricInfo]:
        """Metrics of a family, in the family's order of preference."""
        pats = _COMPILED.get(family, [])

        def pref(m: MetricInfo) -> tuple[int, str]:
            return (next((i for i, p in enumerate(pats) if p.fullmatch(m.name)), len(pats)), m.name)

        return sorted((m for m in self.metrics.values() if family in m.families), key=pref)

    def add(self, s: SigSeries) -> None:
        self.signals.setdefault(s.signal, {})[s.key] = s

    def get(self, signal: str, service: str) -> SigSeries | None:
        return self.signals.get(signal, {}).get(service)


def service_from_pod(pod: str) -> str:
    m = POD_HASH.match(pod)
    return m.group("svc") if m else pod


def choose_service_label(info: MetricInfo, known: set[str]) -> str | None:
    """The label naming the service on this metric: the candidate whose values best match
    the services seen elsewhere; failing that the first present in the usual order that is
    not an exporter's own job name."""
    candidates = [l for l in SERVICE_LABELS + EXTRA_SERVICE_LABELS if l in info.label_values]
    if not candidates:
        return None
    if known:
        best, best_score = None, 0.0
        for l in candidates:
            vals = info.label_values[l]
            if not vals:
                continue
            score = len(vals & known) / len(vals)
            if score > best_score + 1e-9:
                best, best_score = l, score
        if best is not None and best_score > 0:
            return best
    for l in candidates:
        vals = info.label_values[l]
        if len(vals) == 1 and EXPORTER_JOBS.search(next(iter(vals))):
            continue
        return l
    return None


def share(part: np.ndarray | None, total: np.ndarray) -> np.ndarray:
    """part / total point by point (no part: none of it), NaN where nothing was counted."""
    part = np.zeros_like(total) if part is None else np.nan_to_num(part)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, part / total, np.nan)


def svc_name(labels: dict[str, str], svc_label: str) -> str | None:
    """The service a series names: the first non-empty of the (comma-joined) labels."""
    for l in svc_label.split(", "):
        v = labels.get(l)
        if v:
            return v
    return None


def sel(name: str, matchers: str = "") -> str:
    return f"{name}{{{matchers}}}" if matchers else name


class Discovery:
    """Runs the discovery queries and computes the per-service signals."""

    def __init__(self, runner: QueryRunner, grid: Grid):
        self.runner = runner
        self.grid = grid
        self.stack = Stack()
        step = grid.step
        self.rw = f"{int(max(4 * step, 60))}s"
        self.agent = "discovery"
        self.pod_info: list[dict[str, str]] = []
        self.host_map: dict[str, set[str]] = {}
        self.unlooked: set[str] = set()
        """Metric names whose label lookup failed (the source could not answer)."""
        self.failed: dict[str, str] = {}
        """signal -> the error of its query that could not run."""

    # ---------------------------------------------------------------- metadata

    async def discover(self, names: list[str], extra_services: set[str]) -> Stack:
        st = self.stack
        relevant = [(n, classify(n)) for n in names]
        relevant = [(n, f) for n, f in relevant if f] + [(n, ["generic"]) for n in generic_names(names)]
        sem = asyncio.Semaphore(8)

        async def one(name: str, fams: list[str]):
            async with sem:
                try:
                    got = await self.runner.series(self.agent, name, self.grid.start, self.grid.end)
                except BudgetExhausted:
                    return
            if got is None:  # the lookup failed: unknown, not absent
                self.unlooked.add(name)
            labelsets = got or []
            info = MetricInfo(name=name, families=fams)
            for ls in labelsets[:20000]:
                for k, v in ls.items():
                    if k == "__name__":
                        continue
                    info.label_values.setdefault(k, set()).add(v)
            if "latency_summary" in fams and "quantile" not in info.label_values and generic_kind(name) is not None:
                # named like a summary but with no quantiles (one series per statistic, or a
                # plain gauge): read as any other measure of latency
                info.families = [f for f in fams if f != "latency_summary"] + ["generic"]
            if "pod_info" in fams:
                self.pod_info = labelsets[:50000]
            if info.label_values or labelsets:
                st.metrics[name] = info

        await asyncio.gather(*(one(n, f) for n, f in relevant))
        # Services named by the request metrics (first present label, the spec's order), plus traces/logs.
        known = set(extra_services)
        for fam in ("requests", "latency_hist", "latency_sum", "latency_summary"):
            for info in st.all(fam):
                # the service label of request metrics: in the usual order, but a label with a
                # single value (a scrape job like "kubernetes-pods") yields to one naming many
                cands = [l for l in SERVICE_LABELS + EXTRA_SERVICE_LABELS if l in info.label_values
                         and not (len(info.label_values[l]) == 1 and EXPORTER_JOBS.search(next(iter(info.label_values[l]))))]
                if not cands:
                    continue
                most = max(len(info.label_values[l]) for l in cands)
                pick = next(l for l in cands if len(info.label_values[l]) == most or len(info.label_values[l]) > 1)
                known |= info.label_values[pick]
        if len(known) < 2:
            # a stack measured only under names no family knows: its metrics name the services
            for info in st.metrics.values():
                if "generic" in info.families:
                    l = choose_service_label(info, set())
                    vals = info.label_values.get(l, set()) if l in SERVICE_LABELS + EXTRA_SERVICE_LABELS else set()
                    known |= {v for v in vals if not EXPORTER_JOBS.search(v)}
                    # a mesh names both ends of every call
                    src = next((x for x in SOURCE_LABELS if x in info.label_values), None)
                    dst = next((x for x in DEST_LABELS[:len(DEST_LABELS) - len(PEER_LABELS)] if x in info.label_values), None)
                    if src and dst:
                        known |= {v for x in (src, dst) for v in info.label_values[x] if v and v != "unknown"}
        for info in st.metrics.values():
            info.svc_label = choose_service_label(info, known)
            if info.svc_label is None:
                info.svc_label = next((l for l in OBJECT_LABELS if l in info.label_values), None)
            if info.svc_label is None and HOST_FAMILIES & set(info.families):
                info.svc_label = next((l for l in HOST_LABELS if l in info.label_values), None)
        # services named only by infrastructure exporters (databases, caches) are services too
        for info in st.metrics.values():
            if info.svc_label in SERVICE_LABELS + EXTRA_SERVICE_LABELS:
                vals = info.label_values.get(info.svc_label, set())
                if not any(EXPORTER_JOBS.search(v) for v in vals):
                    known |= vals
        # a stack in the middle of a migration names some services one way and some another:
        # group by every label that names known services, the first present wins per series
        for info in st.metrics.values():
            if info.svc_label not in SERVICE_LABELS + EXTRA_SERVICE_LABELS:
                continue
            alts = [l for l in SERVICE_LABELS + EXTRA_SERVICE_LABELS if l != info.svc_label and l in info.label_values
                    and len(info.label_values[l] & known) >= max(1, len(info.label_values[l]) // 2)]
            if alts:
                info.svc_label = ", ".join([info.svc_label] + alts)
        st.services = known
        self._host_map(known)
        return st

    def _host_map(self, known: set[str]) -> None:
        """host (node name, pod IP) -> services running there, from kube_pod_info-like series."""
        hm: dict[str, set[str]] = {}
        for ls in self.pod_info:
            pod = next((ls[l] for l in POD_LABELS if ls.get(l)), None)
            if not pod:
                continue
            svc = next((ls[l] for l in ("container", "created_by_name", "app") if ls.get(l) in known), None)
            svc = svc or service_from_pod(pod)
            for hl in ("node", "host_ip", "pod_ip", "nodename"):
                if ls.get(hl):
                    hm.setdefault(ls[hl], set()).add(svc)
        self.host_map = hm

    def object_service(self, name: str) -> str:
        """The service a Kubernetes object (PVC, pod, deployment) belongs to: the longest known
        service name inside it, else the name without its pod hash."""
        # every run of whole tokens (split at - _ .) is a candidate: linear in the services
        # seen, not in their number times the objects' (500 services, 2500 objects)
        services = self.stack.services
        spans = [m.span() for m in _TOKEN.finditer(name)]
        best = ""
        for i in range(len(spans)):
            for j in range(i, len(spans)):
                k = name[spans[i][0]:spans[j][1]]
                if len(k) > len(best) and k in services:
                    best = k
        own = service_from_pod(name)
        if best and own != name and own != best and own.startswith(best) and own[len(best)] in "-_.":
            # a pod of its own workload named after the service (carts-db-5h2l5bf8cj-cmj47 of
            # the Deployment carts-db, not of carts): the service's database, its worker
            return own
        return best or own

    def host_services(self, host: str) -> set[str]:
        h = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return self.host_map.get(h) or self.host_map.get(host) or set()

    # ---------------------------------------------------------------- signal queries

    async def _series(self, promql: str, signal: str = "metrics") -> list:
        try:
            r = await self.runner.range(self.agent, promql, self.grid.start, self.grid.end, self.grid.step)
        except BudgetExhausted:
            return []
        if r is None or r.status == "error":
            self.failed.setdefault(signal, getattr(r, "error", None) or "no answer")
        if r is None or r.status != "ok":
            return []
        return r.series

    def unchecked(self, missing: str, names_listed: bool = True) -> bool:
        """True when a missing-signal entry may be wrong because the source could not
        answer: the metric names were not listed, or a metric that would fill it was listed
        but could not be looked up."""
        if not names_listed:
            return True
        fams = set(MISSING_FAMILIES.get(missing, ()))
        if any(fams & set(classify(n)) for n in self.unlooked):
            return True
        # its metrics exist but came back with nothing: the queries that failed are why
        return bool(self.failed) and any(fams & set(m.families) for m in self.stack.metrics.values())

    async def _per_service(self, signal: str, promql: str, svc_label: str, sub_label: str | tuple | None = None,
                           keep_existing: bool = False) -> dict[str, SigSeries]:
        out: dict[str, SigSeries] = {}
        by_host = svc_label in HOST_LABELS and svc_label not in SERVICE_LABELS
        by_object = svc_label in OBJECT_LABELS
        for s in await self._series(promql, signal):
            name = svc_name(s.labels, svc_label)
            if not name:
                continue
            if isinstance(sub_label, tuple):  # several labels may carry it: the first present
                sub = next((s.labels[x] for x in sub_label if s.labels.get(x)), None)
            else:
                sub = s.labels.get(sub_label) if sub_label else None
            vals = self.grid.align(s.t, s.v)
            # a host-level series speaks for every service on that host; keep the worst host
            names = sorted(self.host_services(name)) if by_host else [self.object_service(name)] if by_object else [name]
            for svc in names:
                key = svc if sub is None else f"{svc}|{sub}"
                if keep_existing and key not in out and key in self.stack.signals.get(signal, {}):
                    continue
                prev = out.get(key)
                if prev is not None and np.nanmax(np.abs(np.nan_to_num(prev.values))) >= np.nanmax(np.abs(np.nan_to_num(vals))):
                    continue
                ss = SigSeries(signal, svc, vals, promql, sub)
                self.stack.add(ss)
                out[key] = ss
        return out

    def _svc(self, info: MetricInfo) -> str | None:
        return info.svc_label

    async def compute(self) -> Stack:
        """All signal queries, concurrently."""
        st = self.stack
        tasks = [
            self._requests(), self._latency(), self._cpu(), self._memory(), self._restarts(), self._pools(),
            self._db_servers(), self._disk(), self._network(), self._tls(), self._dns(), self._cache(),
            self._liveness(), self._calls(), self._versions(), self._config_reload(), self._generic(),
        ]
        await asyncio.gather(*tasks)
        self._cpu_from_generic()
        return st

    def _cpu_from_generic(self) -> None:
        """A CPU gauge under a name no family knows that says how much of its limit a service
        or pod uses (a fraction, or a percentage): its ``cpu_util``, when no CPU metric the
        engine knows measured it."""
        st = self.stack
        if any(st.signals.get(x) for x in ("cpu_util", "cpu_util_pod", "cpu_cores", "cpu_cores_pod")):
            return
        for sig, meta in list(st.generic.items()):
            if meta.kind != "cpu" or meta.view != "own" or not _CPU_SHARE.search(meta.metric) or _NOT_CPU_SHARE.search(meta.metric):
                continue
            series = list(st.signals.get(sig, {}).values())
            if not series or any("rate(" in x.query for x in series):
                continue
            top = max((float(np.nanmax(x.values)) for x in series if np.isfinite(x.values).any()), default=float("nan"))
            if not np.isfinite(top) or top > 100.0 + 1e-6:
                continue
            scale = 1.0 if top <= 1.0 + 1e-9 else 0.01
            for x in series:
                out = "cpu_util_pod" if x.sub else "cpu_util"
                st.add(SigSeries(out, x.service, x.values * scale, x.query if scale == 1.0 else f"{x.query} / 100", x.sub))

    async def _requests(self) -> None:
        infos = self.stack.all("requests")
        if not infos:
            self.stack.missing["requests"] = "no request-count metric found (http_requests_total, http_server_requests_seconds_count, grpc_server_handled_total...): instrument the services or add the exporter"
            return
        # a service may be counted by several families (HTTP and gRPC, two client libraries):
        # each service keeps the family that carries most of its traffic
        chosen: dict[str, tuple[float, list[SigSeries]]] = {}
        for info in infos:
            svc = self._svc(info)
            if not svc:
                continue
            status = next((l for l in STATUS_LABELS if l in info.label_values), None)
            total_q = f"sum by ({svc}) (rate({info.name}[{self.rw}]))"
            err_sel = None
            if status == "grpc_code":
                err_sel = f'{status}=~"{GRPC_ERROR_CODES}"'
            elif status == "outcome":
                err_sel = 'outcome="SERVER_ERROR"'
            elif status:
                err_sel = f'{status}=~"5.."'
            totals = {svc_name(s.labels, svc): s for s in await self._series(total_q, "request_rate") if svc_name(s.labels, svc)}
            errs, oks = {}, {}
            if err_sel:
                err_q = (f"sum by ({svc}) (rate({info.name}{{{err_sel}}}[{self.rw}])) / "
                         f"sum by ({svc}) (rate({info.name}[{self.rw}]))")
                errs = {svc_name(s.labels, svc): s for s in await self._series(err_q, "error_ratio")}
                ok_sel = err_sel.replace("=~", "!~", 1) if "=~" in err_sel else err_sel.replace("=", "!=", 1)
                ok_q = f"sum by ({svc}) (rate({info.name}{{{ok_sel}}}[{self.rw}]))"
                oks = {svc_name(s.labels, svc): s for s in await self._series(ok_q, "ok_rate")}
            for name, tot in totals.items():
                tv = self.grid.align(tot.t, tot.v)
                level = float(np.nanmedian(tv)) if np.isfinite(tv).any() else 0.0
                if name in chosen and chosen[name][0] >= level:
                    continue
                sigs = [SigSeries("request_rate", name, tv, total_q)]
                if err_sel:
                    e = errs.get(name)
                    ev = self.grid.align(e.t, e.v) if e is not None else np.zeros_like(tv)
                    # no error series at a point where requests flowed means no errors
                    ev = np.where(np.isfinite(ev), ev, np.where(np.isfinite(tv), 0.0, np.nan))
                    sigs.append(SigSeries("error_ratio", name, ev, err_q))
                    o = oks.get(name)
                    if o is not None:
                        sigs.append(SigSeries("ok_rate", name, self.grid.align(o.t, o.v), ok_q))
                chosen[name] = (level, sigs)
        for _, sigs in chosen.values():
            for ss in sigs:
                self.stack.add(ss)

    async def _latency(self) -> None:
        got: set[str] = set()
        for info in self.stack.all("latency_hist"):
            svc = self._svc(info)
            if not svc or "le" not in info.label_values:
                continue
            q = f"histogram_quantile(0.99, sum by ({svc}, le) (rate({info.name}[{self.rw}])))"
            # the first histogram in order of preference speaks for a service; others fill gaps
            for name in await self._per_service("latency_p99", q, svc, keep_existing=True):
                got.add(name)
        for info in self.stack.all("latency_summary"):
            svc = self._svc(info)
            if not svc or "quantile" not in info.label_values:
                continue
            qs = sorted(info.label_values["quantile"], key=lambda x: float(x) if _isnum(x) else 0.0)
            q_hi = next((q for q in qs if q in ("0.99", "0.95")), qs[-1] if qs else None)
            if q_hi is None:
                continue
            q = f'max by ({svc}) ({info.name}{{quantile="{q_hi}"}})'
            res = await self._per_service("latency_q", q, svc)
            for name, s in res.items():
                if name not in got:
                    self.stack.add(SigSeries("latency_p99", name, s.values, q))
                    got.add(name)
        for info in self.stack.all("latency_sum"):
            svc = self._svc(info)
            if not svc:
                continue
            count = info.name[: -len("_sum")] + "_count"
            if count not in self.stack.metrics:
                continue
            q = f"sum by ({svc}) (rate({info.name}[{self.rw}])) / sum by ({svc}) (rate({count}[{self.rw}]))"
            await self._per_service("latency_mean", q, svc, keep_existing=True)
        if not got and not self.stack.signals.get("latency_mean"):
            self.stack.missing["latency"] = "no request-duration histogram, summary or sum/count found: export *_duration_seconds"

    async def _cpu(self) -> None:
        infos = self.stack.all("cpu")
        if not infos:
            self.stack.missing["cpu"] = "no CPU metric (container_cpu_usage_seconds_total or process_cpu_seconds_total): add cAdvisor/kubelet scraping or the client's process collector"
            return
        limits = self.stack.first("limits")
        for info in infos:
            svc = self._svc(info)
            if not svc:
                continue
            flt = 'container!="",container!="POD"' if "container" in info.label_values and info.name.startswith("container_") else ""
            if limits is not None and info.name.startswith("container_") and limits.svc_label == svc:
                q = (f"sum by ({svc}) (rate({sel(info.name, flt)}[{self.rw}])) / "
                     f'sum by ({svc}) ({limits.name}{{resource="cpu"}})')
                await self._per_service("cpu_util", q, svc)
            q = f"sum by ({svc}) (rate({sel(info.name, flt)}[{self.rw}]))"
            await self._per_service("cpu_cores", q, svc)
            pod = pod_label(info)
            if pod is not None:
                # one pod pinned at its limit hides in its service's sum: read each pod too
                if limits is not None and info.name.startswith("container_") and limits.svc_label == svc and pod in limits.labels:
                    q = (f"sum by ({svc}, {pod}) (rate({sel(info.name, flt)}[{self.rw}])) / "
                         f'sum by ({svc}, {pod}) ({limits.name}{{resource="cpu"}})')
                    await self._per_service("cpu_util_pod", q, svc, pod)
                q = f"sum by ({svc}, {pod}) (rate({sel(info.name, flt)}[{self.rw}]))"
                await self._per_service("cpu_cores_pod", q, svc, pod)
        thr, per = self.stack.first("cpu_throttle"), self.stack.first("cpu_periods")
        if thr is not None and per is not None and thr.svc_label:
            s = thr.svc_label
            q = f"sum by ({s}) (rate({thr.name}[{self.rw}])) / sum by ({s}) (rate({per.name}[{self.rw}]))"
            await self._per_service("cpu_throttle", q, s)

    async def _memory(self) -> None:
        limits = self.stack.first("limits")
        any_mem = False
        for info in self.stack.all("memory"):
            svc = self._svc(info)
            if not svc:
                continue
            any_mem = True
            flt = 'container!="",container!="POD"' if "container" in info.label_values and info.name.startswith("container_") else ""
            if limits is not None and info.name.startswith("container_") and limits.svc_label == svc:
                q = (f"max by ({svc}) ({sel(info.name, flt)}) / "
                     f'max by ({svc}) ({limits.name}{{resource="memory"}})')
                await self._per_service("mem_util", q, svc)
            q = f"max by ({svc}) ({sel(info.name, flt)})"
            await self._per_service("mem_bytes", q, svc)
        used, mx = self.stack.first("jvm_used"), self.stack.first("jvm_max")
        if used is not None and used.svc_label:
            any_mem = True
            area = next((l for l, vals in used.label_values.items() if "heap" in vals), None)
            f = f'{area}="heap"' if area else ""
            s = used.svc_label
            if mx is not None and mx.svc_label == s:
                q = f"max by ({s}) ({sel(used.name, f)}) / max by ({s}) ({sel(mx.name, f)})"
                await self._per_service("heap_util", q, s)
            else:
                await self._per_service("heap_bytes", f"max by ({s}) ({sel(used.name, f)})", s)
        if not any_mem:
            self.stack.missing["memory"] = "no memory metric (container_memory_working_set_bytes, process_resident_memory_bytes, jvm_memory_used_bytes)"

    async def _restarts(self) -> None:
        info = self.stack.first("restarts")
        if info is not None and info.svc_label:
            s = info.svc_label
            await self._per_service("restarts", f"sum by ({s}) (increase({info.name}[{self.rw}]))", s)
        st = self.stack.first("start_time")
        if st is not None and st.svc_label:
            s = st.svc_label
            await self._per_service("process_restarts", f"sum by ({s}) (changes({st.name}[{self.rw}]))", s)
        if info is None and st is None:
            self.stack.missing["restarts"] = "no restart signal (kube_pod_container_status_restarts_total or process_start_time_seconds)"

    async def _pools(self) -> None:
        found = False
        specs = [
            ("hikari_active", "hikari_max", "hikari_pending", "hikari_timeout", None),
            ("otel_pool_usage", "otel_pool_max", "otel_pool_pending", "otel_pool_timeout", 'state="used"'),
            ("gosql_inuse", "gosql_max", None, "gosql_wait", None),
        ]
        for used_f, max_f, pend_f, to_f, used_flt in specs:
            used, mx = self.stack.first(used_f), self.stack.first(max_f)
            if used is None or mx is None or not used.svc_label:
                continue
            found = True
            s = used.svc_label
            pool = next((l for l in POOL_LABELS if l in used.label_values), None)
            by = f"{s}, {pool}" if pool else s
            q = f"max by ({by}) ({sel(used.name, used_flt or '')}) / max by ({by}) ({mx.name})"
            await self._per_service("pool_util", q, s, pool)
            if pend_f and (p := self.stack.first(pend_f)) is not None:
                await self._per_service("pool_pending", f"max by ({by}) ({p.name})", s, pool)
            if to_f and (t := self.stack.first(to_f)) is not None:
                await self._per_service("pool_timeouts", f"sum by ({by}) (rate({t.name}[{self.rw}]))", s, pool)
        if not found:
            self.stack.missing["pools"] = "no client connection-pool metrics (hikaricp_*, db_client_connections_*, go_sql_*)"

    async def _db_servers(self) -> None:
        found = False
        simple = [
            ("pg_tx", "db_tx_duration", "max by ({s}) ({m})"),
            ("pg_locks", "db_locks", "sum by ({s}) ({m})"),
            ("pg_activity", "db_active", 'sum by ({s}) ({m}{{state="active"}})'),
            ("mysql_slow", "db_slow_rate", "sum by ({s}) (rate({m}[{rw}]))"),
            ("mysql_running", "db_active", "max by ({s}) ({m})"),
            ("mysql_proc", "db_tx_duration", "max by ({s}) ({m})"),
            ("mysql_lockwaits", "db_locks", "max by ({s}) ({m})"),
        ]
        for fam, signal, tmpl in simple:
            info = self.stack.first(fam)
            if info is None or not info.svc_label:
                continue
            found = True
            q = tmpl.format(s=info.svc_label, m=info.name, rw=self.rw)
            # Postgres and MySQL answer the same question differently: the first family wins
            await self._per_service(signal, q, info.svc_label, keep_existing=True)
        for fam in ("pg_up", "mysql_up"):
            info = self.stack.first(fam)
            if info is not None and info.svc_label:
                await self._per_service("db_up", f"min by ({info.svc_label}) ({info.name})", info.svc_label)
        if not found:
            self.stack.missing["db_server"] = "no database server metrics (postgres_exporter pg_*, mysqld_exporter mysql_*)"

    async def _disk(self) -> None:
        found = False
        for avail_f, size_f in (("fs_avail", "fs_size"), ("vol_avail", "vol_cap")):
            a, c = self.stack.first(avail_f), self.stack.first(size_f)
            if a is None or c is None or not a.svc_label:
                continue
            found = True
            s = a.svc_label
            flt = 'fstype!~"tmpfs|overlay|squashfs"' if "fstype" in a.label_values else ""
            q = f"min by ({s}) ({sel(a.name, flt)} / {sel(c.name, flt)})"
            await self._per_service("disk_free", q, s)
        if not found:
            self.stack.missing["disk"] = "no filesystem metrics (node_filesystem_avail_bytes, kubelet_volume_stats_available_bytes)"

    async def _network(self) -> None:
        r, o = self.stack.first("retrans"), self.stack.first("outsegs")
        found = False
        if r is not None and o is not None and r.svc_label:
            found = True
            s = r.svc_label
            q = f"sum by ({s}) (rate({r.name}[{self.rw}])) / sum by ({s}) (rate({o.name}[{self.rw}]))"
            await self._per_service("retrans_ratio", q, s)
        d = self.stack.first("net_drop")
        if d is not None and d.svc_label:
            found = True
            await self._per_service("net_drops", f"sum by ({d.svc_label}) (rate({d.name}[{self.rw}]))", d.svc_label)
        p = self.stack.first("probe_success")
        if p is not None and p.svc_label:
            await self._per_service("probe_success", f"min by ({p.svc_label}) ({p.name})", p.svc_label)
        pd = self.stack.first("probe_duration")
        if pd is not None and pd.svc_label:
            await self._per_service("probe_duration", f"max by ({pd.svc_label}) ({pd.name})", pd.svc_label)
        if not found:
            self.stack.missing["network"] = "no TCP retransmit or drop metrics (node_exporter netstat/network collectors)"

    async def _tls(self) -> None:
        infos = [i for i in self.stack.all("cert_expiry") if i.svc_label]
        if not infos:
            self.stack.missing["tls"] = "no certificate expiry metric (blackbox probe_ssl_earliest_cert_expiry or x509_cert_not_after)"
            return
        for info in infos:
            s = info.svc_label
            if "expires_in" in info.name:
                q = f"min by ({s}) ({info.name})"
            else:
                q = f"min by ({s}) ({info.name}) - time()"
            await self._per_service("cert_ttl", q, s)

    async def _dns(self) -> None:
        found = False
        d = self.stack.first("dns_responses")
        if d is not None:
            found = True
            s = d.svc_label
            rc = next((l for l in ("rcode", "rcode_name") if l in d.label_values), None)
            if rc and s:
                q = (f'sum by ({s}) (rate({d.name}{{{rc}=~"SERVFAIL|REFUSED|NXDOMAIN"}}[{self.rw}])) / '
                     f"sum by ({s}) (rate({d.name}[{self.rw}]))")
                await self._per_service("dns_fail_ratio", q, s)
                q2 = (f'sum by ({s}) (rate({d.name}{{{rc}="SERVFAIL"}}[{self.rw}])) / '
                      f"sum by ({s}) (rate({d.name}[{self.rw}]))")
                await self._per_service("dns_servfail_ratio", q2, s)
        lk = self.stack.first("dns_lookup")
        if lk is not None and lk.svc_label:
            found = True
            await self._per_service("dns_lookup", f"max by ({lk.svc_label}) ({lk.name})", lk.svc_label)
        if not found:
            self.stack.missing["dns"] = "no DNS metrics (coredns_dns_responses_total or blackbox probe_dns_lookup_time_seconds)"

    async def _cache(self) -> None:
        found = False
        u = self.stack.first("redis_up")
        if u is not None and u.svc_label:
            found = True
            await self._per_service("cache_up", f"min by ({u.svc_label}) ({u.name})", u.svc_label)
        h, m = self.stack.first("redis_hits"), self.stack.first("redis_misses")
        if h is None or m is None:
            h, m = self.stack.first("cache_generic_hits"), self.stack.first("cache_generic_misses")
        if h is not None and m is not None and h.svc_label:
            found = True
            s = h.svc_label
            q = (f"sum by ({s}) (rate({m.name}[{self.rw}])) / (sum by ({s}) (rate({h.name}[{self.rw}])) + "
                 f"sum by ({s}) (rate({m.name}[{self.rw}])))")
            await self._per_service("cache_miss_ratio", q, s)
        e = self.stack.first("redis_evicted")
        if e is not None and e.svc_label:
            await self._per_service("cache_evictions", f"sum by ({e.svc_label}) (rate({e.name}[{self.rw}]))", e.svc_label)
        if not found:
            self.stack.missing["cache"] = "no cache metrics (redis_exporter redis_up/redis_keyspace_*)"

    async def _liveness(self) -> None:
        u = self.stack.first("up")
        if u is None or not u.svc_label:
            self.stack.missing["liveness"] = "no up metric: is Prometheus scraping the targets?"
            return
        await self._per_service("up", f"min by ({u.svc_label}) (up)", u.svc_label)

    async def _clients(self) -> None:
        # a polyglot stack counts its calls with several client libraries (OTel in one service,
        # Micrometer in another): every family speaks for the calls the ones before it did not
        for i, c in enumerate(self.stack.all("client_count")):
            await self._client_family(c, keep_existing=i > 0)

    async def _client_family(self, c: MetricInfo, keep_existing: bool) -> None:
        if not c.svc_label:
            return
        s = c.svc_label
        peers = tuple(l for l in PEER_LABELS if l in c.label_values)
        if not peers:
            return
        peer = peers if len(peers) > 1 else peers[0]
        by = ", ".join((s,) + peers)
        status = next((l for l in STATUS_LABELS if l in c.label_values), None)
        total_q = f"sum by ({by}) (rate({c.name}[{self.rw}]))"
        totals = await self._per_service("client_rate", total_q, s, peer, keep_existing=keep_existing)
        err_parts = []
        if "outcome" in c.label_values:
            err_parts.append('outcome=~"SERVER_ERROR|UNKNOWN"')
        elif status == "grpc_code":
            err_parts.append(f'{status}=~"{GRPC_ERROR_CODES}"')
        elif status:
            err_parts.append(f'{status}=~"5..|IO_ERROR|CLIENT_ERROR|[A-Z_]*ERROR"')
        for l in ("error_type", "error"):
            if l in c.label_values:
                err_parts.append(f'{l}!=""')
        if err_parts:
            qs = [f"sum by ({by}) (rate({c.name}{{{p}}}[{self.rw}]))" for p in err_parts]
            acc: dict[str, np.ndarray] = {}
            texts = []
            for q in qs:
                texts.append(q)
                for ser in await self._series(q, "client_error_ratio"):
                    pv = next((ser.labels[x] for x in peers if ser.labels.get(x)), "")
                    key = f"{svc_name(ser.labels, s)}|{pv}"
                    v = self.grid.align(ser.t, ser.v)
                    acc[key] = np.nan_to_num(acc.get(key, 0.0)) + np.nan_to_num(v)
            text = "\n".join(texts)
            for key, tot in totals.items():
                client_svc, _, peer_name = key.partition("|")
                self.stack.add(SigSeries("client_error_ratio", client_svc, share(acc.get(key), tot.values),
                                         text + f"\n/ {total_q}", peer_name))
        sm = self.stack.metrics.get(c.name.removesuffix("_count") + "_sum")
        if sm is not None and "client_sum" in sm.families and sm.svc_label == s:
            q = f"sum by ({by}) (rate({sm.name}[{self.rw}])) / sum by ({by}) (rate({c.name}[{self.rw}]))"
            await self._per_service("client_latency", q, s, peer, keep_existing=keep_existing)

    async def _calls(self) -> None:
        await self._clients()
        await self._service_graph()  # after the client metrics: they say it first where both exist

    async def _service_graph(self) -> None:
        """Tempo's service-graph metrics: every call edge ``client`` -> ``server`` seen in spans
        (``sg_rate``, which the graph reads), and where no client metric says it already, the
        callers' view of the server: the share of its calls that failed and their latency."""
        r = self.stack.first("sg_requests")
        if r is None or not {"client", "server"} <= set(r.label_values):
            return
        total_q = f"sum by (client, server) (rate({r.name}[{self.rw}]))"
        totals = await self._per_service("sg_rate", total_q, "client", "server")
        f = self.stack.first("sg_failed")
        if f is not None:
            fail_q = f"sum by (client, server) (rate({f.name}[{self.rw}]))"
            failed = await self._per_service("sg_failed_rate", fail_q, "client", "server")
            for key, tot in totals.items():
                if key not in self.stack.signals.get("client_error_ratio", {}):
                    part = failed[key].values if key in failed else None
                    self.stack.add(SigSeries("client_error_ratio", tot.service, share(part, tot.values),
                                             f"{fail_q}\n/ {total_q}", tot.sub))
        sm, cn = self.stack.first("sg_client_sum"), self.stack.first("sg_client_count")
        if sm is not None and cn is not None:
            q = (f"sum by (client, server) (rate({sm.name}[{self.rw}])) / "
                 f"sum by (client, server) (rate({cn.name}[{self.rw}]))")
            await self._per_service("client_latency", q, "client", "server", keep_existing=True)

    async def _versions(self) -> None:
        for info in self.stack.all("build_info"):
            s = info.svc_label
            vl = next((l for l in VERSION_LABELS if l in info.label_values), None)
            if not s or not vl:
                continue
            q = f"count by ({s}, {vl}) ({info.name})"
            await self._per_service("version_present", q, s, vl)
            return

    async def _config_reload(self) -> None:
        for info in self.stack.all("config_reload"):
            s = info.svc_label
            if not s:
                continue
            await self._per_service("config_reload", f"max by ({s}) ({info.name})", s)
            return


    async def _generic(self) -> None:
        """Every other metric that names a service, per service (and per pod): the localisation
        reads what this stack measures even under names no family knows. A metric with a
        caller and a callee label is the callers' view of the callee."""
        sem = asyncio.Semaphore(8)

        async def one(info: MetricInfo) -> None:
            for signal, q, svc_label, sub_label, kind, direction, view in generic_specs(info, self.stack.services):
                async with sem:
                    got = await self._per_service(signal, q.replace("$RW", self.rw), svc_label, sub_label)
                if got:
                    self.stack.generic[signal] = GenericMeta(info.name, kind, direction, view)

        await asyncio.gather(*(one(i) for i in list(self.stack.metrics.values()) if "generic" in i.families))


@dataclass
class GenericMeta:
    """What a generic signal measures, read from its name."""

    metric: str
    kind: str
    direction: int
    """+1: bad when it rises; -1: bad when it falls; 0: either way."""
    view: str
    """``own`` (the service's own measure) or ``callers`` (keyed caller|callee)."""


# (kind, direction, pattern): the first match names what an unknown metric measures
GENERIC_KINDS: list[tuple[str, int, re.Pattern]] = [
    ("success", -1, re.compile(r"success|availab|succeeded|(^|_)ok(_|$)|apdex", re.I)),
    ("latency", 1, re.compile(r"latenc|duration|response_?time|(^|_)rt(_|$)|elapsed|wait_?time|delay|lag", re.I)),
    ("errors", 1, re.compile(r"error|fail|exception|fault|5xx|reject|timeout|panic|crash", re.I)),
    ("cpu", 1, re.compile(r"cpu|throttl|load_?average", re.I)),
    ("memory", 1, re.compile(r"mem|heap|rss|working_?set|gc_", re.I)),
    ("network", 0, re.compile(r"network|(^|_)net_|receive|transmit|(^|_)[rt]x_|packet|retrans|tcp|socket|bytes_(sent|received)", re.I)),
    ("traffic", 0, re.compile(r"request|workload|(^|_)ops|qps|throughput|calls|(^|_)rps|(^|_)tps|(^|_)hits", re.I)),
    ("disk", 0, re.compile(r"disk|filesystem|(^|_)fs_|(^|_)io_|iops|syscall|(^|_)read|(^|_)write|block", re.I)),
    ("saturation", 1, re.compile(r"queue|pending|backlog|inflight|in_flight|active|busy|threads|connections|saturat", re.I)),
]
_GENERIC_SKIP = re.compile(r"_bucket$|_created$|_info$|start_time|^scrape_|^prometheus_|^promhttp_|^go_(gc|memstats|threads|goroutines|info)|"
                           r"^process_(open|max)_fds|^net_conntrack|^up$|_limit|_max$|_capacity|_quota|_spec_|^kube_", re.I)
SOURCE_LABELS = ("source_workload", "source_app", "source_service", "source_canonical_service", "source", "src", "client", "caller",
                 "from_service", "src_service")
DEST_LABELS = ("destination_workload", "destination_app", "destination_service", "destination_canonical_service",
               "destination_service_name", "destination", "dst", "callee", "to_service", "dst_service") + PEER_LABELS
MAX_GENERIC = 150


_CPU_SHARE = re.compile(r"util|percent|pct|ratio|usage_rate|usage_fraction", re.I)
_NOT_CPU_SHARE = re.compile(r"throttl|load|seconds|cores", re.I)


def generic_kind(name: str) -> tuple[str, int] | None:
    """What an unknown metric measures and which way is bad, from its name; None: not read."""
    if _GENERIC_SKIP.search(name):
        return None
    for kind, direction, pat in GENERIC_KINDS:
        if pat.search(name):
            return kind, direction
    return "other", 0


def generic_names(names: list[str]) -> list[str]:
    """Metric names no family knows that the localisation reads (the most telling first, capped)."""
    order = {k: i for i, (k, _, _) in enumerate(GENERIC_KINDS)}
    picked = []
    for n in names:
        if classify(n):
            continue
        gk = generic_kind(n)
        if gk is None:
            continue
        if n.endswith("_sum") and n[: -len("_sum")] + "_count" in names:
            continue  # read as a mean with its _count
        if n.endswith("_count") and (classify(n[: -len("_count")] + "_sum") or classify(n[: -len("_count")] + "_bucket")):
            continue  # a family already reads it
        picked.append((order.get(gk[0], len(order)), n))
    picked.sort()
    return [n for _, n in picked[:MAX_GENERIC]]


STAT_LABELS = ("statistic", "stat", "aggregation", "agg")
"""Labels that say which statistic of one measure a series is (avg, p99, ...)."""
STAT_PREFERENCE = ("avg", "average", "mean", "p50", "median", "50")


def generic_specs(info: MetricInfo, known: set[str]) -> list[tuple[str, str, str | None, str, int, str, str]]:
    """How to read a generic metric: (signal suffix, query with $RW for the rate window, service
    label, sub label, kind, direction, view) for each view of it; empty when nothing in it
    names a service. A counter with a status label also gives its error ratio; a mesh metric
    reported by both ends gives the callers' view and the callee's own."""
    name = info.name
    kind, direction = generic_kind(name) or ("other", 0)
    labels = info.label_values
    if "le" in labels:
        return []
    base_m = []
    # one statistic of a measure, never the max across different statistics of it: the mean
    # (least noisy), else the median, else the first
    stat = next((l for l in STAT_LABELS if l in labels and len(labels[l]) > 1), None)
    if stat is not None:
        vals = sorted(labels[stat])
        pick = next((v for pref in STAT_PREFERENCE for v in vals if v.lower() == pref), vals[0])
        base_m.append(f'{stat}="{pick}"')
    if "quantile" in labels:
        qs = sorted((q for q in labels["quantile"] if _isnum(q)), key=float)
        if qs:
            q_hi = next((q for q in qs if q in ("0.99", "0.95", "0.9")), qs[-1])
            base_m.append(f'quantile="{q_hi}"')
    is_counter = name.endswith(("_total", "_count"))
    mean_of = None
    if name.endswith("_count") and kind in ("latency", "other", "traffic") and re.search(r"seconds|duration|latenc|milliseconds", name):
        mean_of = name[: -len("_count")] + "_sum"
        kind, direction = "latency", 1
    elif name.endswith("_count"):
        kind, direction = ("errors", 1) if kind == "errors" else ("traffic", 0)
    status = next((l for l in STATUS_LABELS if l in labels), None) if is_counter and mean_of is None else None
    # a caller and a callee label naming services: the callers' view of the callee
    src = next((l for l in SOURCE_LABELS if l in labels and labels[l] & known), None)
    dst = next((l for l in DEST_LABELS if l in labels and l != src and labels[l] & known), None)
    if src is None and dst is not None and info.svc_label and info.svc_label != dst and dst not in SERVICE_LABELS:
        src = info.svc_label
    views = []
    if src and dst:
        reporters = labels.get("reporter", set())
        views.append(("e", src, dst, "callers", ['reporter="source"'] if "source" in reporters else []))
        if "destination" in reporters:
            views.append(("g", dst, None, "own", ['reporter="destination"']))
    elif info.svc_label:
        sub = next((l for l in POD_LABELS if l in labels and l != info.svc_label and len(labels[l]) > 1), None)
        # a client-side measure naming no peer is the service waiting on its dependencies
        # (which one is not said): its outbound view, never its own latency or errors
        outbound = bool(_CLIENT_SIDE.search(name)) and kind in ("latency", "errors")
        views.append(("g", info.svc_label, sub, "outbound" if outbound else "own", []))
    out = []
    for prefix, svc_label, sub_label, view, extra in views:
        m = ",".join(base_m + extra)
        by = ", ".join(x for x in (svc_label, sub_label) if x)
        sel_ = sel(name, m)
        if mean_of is not None:
            q = f"sum by ({by}) (rate({sel(mean_of, m)}[$RW])) / sum by ({by}) (rate({sel_}[$RW]))"
        elif is_counter:
            q = f"sum by ({by}) (rate({sel_}[$RW]))"
        elif kind == "success":
            q = f"min by ({by}) ({sel_})"
        elif kind in ("latency", "errors", "cpu", "memory", "saturation"):
            q = f"max by ({by}) ({sel_})"
        else:
            q = f"sum by ({by}) ({sel_})"
        out.append((f"{prefix}:{name}", q, svc_label, sub_label, kind, direction, view))
        if status:
            bad = f'{status}=~"5..|[A-Z_]*ERROR|Unknown|DeadlineExceeded|Internal|Unavailable"'
            err_sel = sel(name, ",".join(base_m + extra + [bad]))
            q = f"sum by ({by}) (rate({err_sel}[$RW])) / sum by ({by}) (rate({sel_}[$RW]))"
            out.append((f"{prefix}:{name}:errors", q, svc_label, sub_label, "errors", 1, view))
    return out


def _isnum(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False

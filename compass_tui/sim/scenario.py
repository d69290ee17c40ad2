"""One simulated incident: the system, its telemetry style, the fault, and the alert."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from compass_tui.sim import faults as F
from compass_tui.sim import names
from compass_tui.sim import realism as R
from compass_tui.sim.signals import Model
from compass_tui.sim.topology import APP, Topology, build_topology

SCHEMES = ["service", "service_name", "job", "app", "container"]
FLAVORS = ["classic", "micrometer", "otel", "grpc", "mixed"]
LOG_LABELS = ["service_name", "service", "app", "job"]
# Signal groups that a real stack may simply not have.
OPTIONAL_SIGNALS = ["traces", "logs", "annotations", "pools", "client_metrics", "node", "blackbox",
                    "db_exporter", "build_info", "config_metric", "kube_state"]

# Which optional groups carry each fault's primary evidence; one of them is always kept.
_EVIDENCE = {
    "cpu_saturation": [],
    "memory_leak": [],
    "db_connection_pool_exhaustion": ["pools", "logs"],
    "db_slow_queries": ["db_exporter"],
    "bad_deploy": ["annotations", "build_info", "logs"],
    "config_change": ["annotations", "config_metric", "logs"],
    "external_dependency_failure": ["client_metrics", "traces"],
    "network_degradation": ["node"],
    "disk_full": [],
    "certificate_expired": ["blackbox", "logs"],
    "dns_failure": [],
    "traffic_surge": [],
    "cache_failure": [],
    "code_defect": [],
}
# What the real-like flavour drops beyond the optional groups: exporters of infrastructure.
_REAL_LIKE_DROP = ["dns_exporter", "redis_exporter", "volumes"]
_REAL_LIKE_EVIDENCE = {"dns_failure": ["dns_exporter"], "cache_failure": ["redis_exporter"], "disk_full": ["volumes"]}


@dataclass
class SimOptions:
    """Knobs a caller may pin; ``None`` means drawn at random from the seed."""

    services: int | None = None
    step: int | None = None
    scheme: str | None = None
    # Realism knobs (see compass_tui.sim.realism): "random", "off" or "real"; ``force`` turns knobs on.
    realism: str = "random"
    force: tuple[str, ...] = ()


@dataclass
class Style:
    """How this system's telemetry is named and which parts of it exist."""

    scheme: str
    flavor: str
    kube: bool
    log_label: str
    missing: set[str]
    summary_share: float
    detail: str  # full, medium, lean
    node_labelled: bool
    ksm_job: bool
    cadvisor_job: bool
    status_label: str
    node_style: str
    env: str
    counter_type_for_netstat: str


@dataclass
class SimIncident:
    """Everything ``write_bundle`` needs to render a bundle."""

    fault: str
    seed: int
    options: SimOptions
    topo: Topology
    model: Model
    style: Style
    culprit: str
    onset: int  # sample index
    severity: str
    fault_params: dict
    decoys: list[dict]
    alerted: str
    alert_name: str
    alert_at: float
    title: str
    rng_seed: int
    extra: dict = field(default_factory=dict)
    realism: R.Realism = field(default_factory=R.Realism)
    realism_done: dict = field(default_factory=dict)

    @property
    def start(self) -> int:
        """Window start, unix seconds."""
        return self.model.start

    @property
    def end(self) -> int:
        """Window end, unix seconds."""
        return self.model.start + self.model.n * self.model.step

    @property
    def onset_time(self) -> float:
        """Fault onset, unix seconds."""
        return float(self.model.ts[self.onset])


def _seed_for(fault: str, seed: int, options: SimOptions) -> int:
    key = f"{fault}|{seed}|{options.services}|{options.step}|{options.scheme}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def generate(fault: str, seed: int, options: SimOptions | None = None) -> SimIncident:
    """Simulate one incident of catalog fault ``fault``; deterministic per (fault, seed, options)."""
    if fault not in F.ALL_FAULTS:
        raise ValueError(f"unknown fault {fault!r}; expected one of: {', '.join(F.ALL_FAULTS)}")
    options = options or SimOptions()
    if options.scheme is not None and options.scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {options.scheme!r}; expected one of: {', '.join(SCHEMES)}")
    if options.services is not None and not 5 <= options.services <= 2000:
        raise ValueError(f"services must be between 5 and 2000, got {options.services}")
    if options.step is not None and not 5 <= options.step <= 300:
        raise ValueError(f"step must be between 5 and 300 seconds, got {options.step}")
    rs = _seed_for(fault, seed, options)
    rng = random.Random(rs)
    # The knobs come from their own stream: with every knob off the scenario is the clean one.
    kn = R.draw_realism(fault, f"{fault}|{seed}|{options.services}|{options.step}|{options.scheme}",
                        options.realism, tuple(options.force))
    krng = random.Random(kn.seed ^ 0x5CE)  # knob parameters drawn while the scenario is built

    n_services = options.services or _draw_size(rng)
    vocab = rng.choice(names.vocabulary_names())
    topo = build_topology(rng, n_services, vocab, require=("redis",) if fault == "cache_failure" else ())
    if "per_pod" in kn:
        for nm in topo.apps():
            if topo.services[nm].replicas < 2:
                topo.services[nm].replicas = krng.choice([2, 2, 3, 4])
    detail = "full" if len(topo.services) <= 20 else "medium" if len(topo.services) <= 80 else "lean"

    # Window and step: 45-180 minutes, with the sample count bounded by the fleet size so a
    # bundle stays example-sized (a few MB to ~15 MB for 8-30 services).
    n_svc = len(topo.services)
    max_samples = int(min(360, max(90 if detail != "lean" else 48, 3600 / max(8, n_svc))))
    longest = {"full": 180, "medium": 150, "lean": 90}[detail]
    window_min: float | None = None
    if options.step:
        step = options.step
    elif rng.random() < 0.25 and longest > 90:
        # A long look-back: coarser steps keep the size in bounds.
        step = next((x for x in (30, 60) if 90 * 60 / x <= max_samples * 1.15), 60)
        window_min = rng.uniform(90, max(90.0, min(longest, max_samples * step / 60)))
    else:
        steps = [15, 15, 15, 20, 30, 30, 60] if detail != "lean" else [30, 60, 60]
        fitting = [x for x in steps if 45 * 60 / x <= max_samples * 1.15]
        step = rng.choice(fitting or [60])
    if window_min is None:
        window_min = rng.uniform(45, max(45.0, min(longest, max_samples * step / 60)))
    coarse = kn.params["real_like"]["step"] if "real_like" in kn else kn.params.get("coarse_step")
    if coarse and not options.step:
        # 1-minute and 5-minute scrapes; a 5-minute grid needs hours of look-back.
        step = coarse
        window_min = krng.uniform(180, 360) if step >= 300 else max(window_min, krng.uniform(60, 150))
    n = max(20, int(window_min * 60 / step))
    onset = int(n * rng.uniform(0.55, 0.85))
    # Past dates across two years, aligned to the step like a real scrape grid.
    start = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()) + rng.randint(0, 640 * 86400)
    start -= start % step
    date = datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y.%m.%d")

    scheme = options.scheme or rng.choice(SCHEMES)
    flavor = rng.choice(FLAVORS)
    if flavor == "grpc":
        for nm in topo.apps():
            if topo.services[nm].role != "entry":
                topo.services[nm].protocol = "grpc"
    elif flavor != "mixed" and rng.random() < 0.6:
        for nm in topo.apps():
            topo.services[nm].protocol = "http"
    kube = scheme == "container" or rng.random() < (0.6 if scheme == "service_name" else 0.5)
    missing = {g for g in OPTIONAL_SIGNALS if rng.random() < {"traces": 0.15, "logs": 0.08, "annotations": 0.25,
                                                                "pools": 0.12, "client_metrics": 0.2, "node": 0.12,
                                                                "blackbox": 0.2, "db_exporter": 0.08,
                                                                "build_info": 0.2, "config_metric": 0.5,
                                                                "kube_state": 0.15}[g]}
    if "per_pod" in kn or "pod_network" in kn:
        kube = True  # per-pod series come from Kubernetes (cAdvisor, kube-state-metrics)
    if not kube:
        missing.add("kube_state")
    keep = _EVIDENCE[fault]
    if "real_like" in kn:
        # Only per-pod resources and per-service request metrics, as real RCA data sets have.
        missing |= set(OPTIONAL_SIGNALS) | set(_REAL_LIKE_DROP)
        if kn.params["real_like"]["limits"]:
            missing.discard("kube_state")
        if kn.params["real_like"]["client_metrics"]:
            missing.discard("client_metrics")
        keep = [] if fault in R.REAL_LIKE_FAULTS else _REAL_LIKE_EVIDENCE.get(fault, keep)
    if "client_view" in kn:
        missing.discard("client_metrics")
        if not kn.params["client_view"]["traces"]:
            missing.add("traces")
    if "net_caller_view" in kn:
        missing.discard("client_metrics")
        keep = []
        opts = kn.params["net_caller_view"]
        if not opts["traces"]:
            missing.add("traces")
        if opts["retransmits"]:
            missing.discard("node")
        elif krng.random() < 0.5:
            missing.add("node")
    if keep and all(g in missing for g in keep):
        missing.discard(rng.choice(keep))
    status_label = {"classic": rng.choice(["code", "code", "status_code", "status"]), "micrometer": "status",
                    "otel": "http_response_status_code", "grpc": "code", "mixed": "code"}[flavor]
    style = Style(scheme=scheme, flavor=flavor, kube=kube, log_label=rng.choice(LOG_LABELS), missing=missing,
                  summary_share=rng.choice([0.0, 0.0, 0.0, 0.3, 1.0]), detail=detail,
                  node_labelled=(not kube) or rng.random() < 0.6, ksm_job=rng.random() < 0.5,
                  cadvisor_job=rng.random() < 0.3, status_label=status_label,
                  node_style=rng.choice(["aws", "gke", "aks", "onprem"]),
                  env=rng.choice(["prod", "production", "prd", "live"]),
                  counter_type_for_netstat="unknown")

    # Build the system, add noise and the fault. A fault that pages nobody is not an incident:
    # if nothing crosses an alerting threshold, the same scenario is replayed one notch more severe.
    import copy
    severity = rng.choices(["subtle", "moderate", "severe"], [0.25, 0.5, 0.25])[0]
    vscheme = names.version_scheme(rng)
    levels = ["subtle", "moderate", "severe"]
    base_topo = copy.deepcopy(topo)
    sub_seed = rng.getrandbits(63)
    entry_rps, low_rps = R.low_traffic_targets(kn, base_topo)
    for attempt in range(3):
        topo = copy.deepcopy(base_topo)
        srng = random.Random(sub_seed)
        model = Model(topo, srng, start, step, n, entry_rps=entry_rps, low_rps=low_rps)
        model.knobs = kn
        F.init_pods(model, kube, vscheme, style.node_style, date)
        culprit = F.pick_culprit(model, fault, srng)
        if "net_caller_view" in kn and (topo.services[culprit].kind != APP or not topo.in_edges(culprit)):
            # The callers' view needs callers: the path to a called application service.
            called = [a for a in topo.apps() if topo.in_edges(a)]
            culprit = random.Random(kn.seed ^ 0xC0).choice(called) if called else culprit
        decoys = F.add_decoys(model, fault, culprit, onset, srng)
        # Operators tuned timeouts around chronically slow services long ago.
        model.recalibrate_timeouts()
        # Earlier incidents, noise and restarts come after: timeouts were tuned long before them.
        done = R.apply_overlays(model, kn, fault, culprit, onset)
        model.propagate()  # a first pass so faults can size themselves against the baseline
        fault_params = F.inject(model, fault, culprit, onset, severity, srng)
        model.propagate()
        found = _alert(model, topo, culprit, onset, srng)
        if found is None and "real_like" in kn:
            # Recorded fault-injection data sets page a synthetic alert on the entry service a
            # few minutes into the injection, whether or not the entry moved much.
            ar = random.Random(kn.seed ^ 0xA1)
            entry = ar.choice(topo.entries or topo.apps()[:1])
            found = (entry, ar.choice(["HighLatency", "HighErrorRate"]),
                     min(float(model.ts[-1]), float(model.ts[onset]) + ar.uniform(120, 600)))
        if found is not None or severity == "severe":
            break
        severity = levels[levels.index(severity) + 1]
    if found is None:
        found = _fallback_alert(model, topo, onset, srng)
    alerted, alert_name, alert_at = found
    title = f"{vocab if vocab != 'generic' else topo.namespace} incident {seed}"
    return SimIncident(fault=fault, seed=seed, options=options, topo=topo, model=model, style=style,
                       culprit=culprit, onset=onset, severity=severity, fault_params=fault_params,
                       decoys=decoys, alerted=alerted, alert_name=alert_name, alert_at=alert_at,
                       title=title, rng_seed=rs, realism=kn, realism_done=done)


def _draw_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.55:
        return rng.randint(8, 18)
    if r < 0.85:
        return rng.randint(18, 35)
    if r < 0.95:
        return rng.randint(5, 8)
    return rng.randint(35, 80)


def _fallback_alert(m: Model, topo: Topology, onset: int, rng: random.Random) -> tuple[str, str, float]:
    """A page for the most changed service when no threshold was crossed."""
    nm = max([a for a in topo.apps() if a not in m.no_server] or topo.apps(), key=lambda a: float(np.mean(m.lat[a][onset:]) / max(1e-9, np.mean(m.lat[a][:onset]))))
    return nm, "HighLatency", min(float(m.ts[-1]), float(m.ts[onset]) + rng.uniform(180, 600))


def _alert(m: Model, topo: Topology, culprit: str, onset: int, rng: random.Random) -> tuple[str, str, float] | None:
    """Pick the service an alert rule fires on and when (``for:`` after the condition holds)."""
    pre = slice(max(0, onset - int(1800 / m.step)), max(1, onset - 1))
    cands: list[tuple[float, str, str, int]] = []
    # Alert rules live on the metrics a service exports; real-like data sets page on the entry.
    pageable = [a for a in topo.apps() if a not in m.no_server]
    if "real_like" in m.knobs:
        pageable = [a for a in pageable if topo.services[a].role == "entry"] or pageable
    for nm in pageable:
        err, lat = m.err[nm], m.lat[nm]
        e0 = float(np.mean(err[pre]))
        l0 = float(np.median(lat[pre]))
        e_thr = max(0.02, 3 * e0 + 0.005)
        l_thr = max(2.0 * l0, l0 + 0.1)
        # Alert rules evaluate a short rate window: the condition must hold for a couple of minutes.
        width = max(2, int(120 / m.step))
        kernel = np.ones(width) / width
        for kind, raw, thr in (("HighErrorRate", err, e_thr), ("HighLatency", lat, l_thr)):
            series = np.convolve(raw, kernel, mode="full")[: len(raw)]
            # Pages come within minutes of the onset; a blip much later is another story.
            hit = np.nonzero(series[onset:onset + max(3, int(900 / m.step))] > thr)[0]
            if len(hit):
                first = onset + int(hit[0])
                strength = float(np.mean(series[first:first + max(2, int(600 / m.step))])) / thr
                cands.append((strength, nm, kind, first))
    if not cands:
        return None
    weights = []
    for strength, nm, kind, first in cands:
        w = min(3.0, strength)
        if topo.services[nm].role == "entry":
            w *= 3
        if nm == culprit:
            w *= 1.5
        weights.append(w)
    strength, nm, kind, first = rng.choices(cands, weights)[0]
    # Same service with both conditions: errors page first more often.
    for_s = rng.choice([60, 120, 120, 180, 300])
    at = float(m.ts[min(first, m.n - 1)]) + for_s + rng.uniform(0, m.step)
    at = max(at, float(m.ts[onset]) + 30)
    return nm, kind, min(at, float(m.ts[-1]))

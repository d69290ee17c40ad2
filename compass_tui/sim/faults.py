"""Fault injection and red herrings.

Each fault edits the model's drivers the way the real failure acts on a system, and the
observable symptoms then come out of the same propagation as everything else. The catalog
column "what supports it" is followed physically, not as a checklist for a detector.

Culprit naming conventions (recorded in ``truth.json``):

* ``external_dependency_failure``: the culprit is the third-party API's name exactly as the
  callers' telemetry names it: ``server_address`` / ``peer.service`` / client ``client_name``
  / the gRPC client target (e.g. ``stripe-api``).
* ``dns_failure``: the culprit is the cluster DNS service as its own metrics name it (the
  service label of ``coredns_dns_responses_total``: ``coredns``, ``kube-dns``, ``dns`` or
  ``node-local-dns``).
* ``db_slow_queries`` / ``cache_failure``: the database or cache service (its exporter's
  service label, e.g. ``pg-orders``, ``catalog-redis``).
* ``db_connection_pool_exhaustion``: the client service whose pool is exhausted.
* ``traffic_surge``: the most upstream service whose request rate rose.
* ``code_defect``: the application service whose own code fails or slows (no deploy or
  config change of it in the window).
* every other fault: the application service that owns the fault.
"""

from __future__ import annotations

import random

import numpy as np

from compass_tui.engine.faults import REGISTRY
from compass_tui.sim import names
from compass_tui.sim.signals import Event, Model, Pod
from compass_tui.sim.topology import APP, DATABASES, EXTERNAL, REDIS

# From the engine's fault registry, in catalog order: the faults the simulator injects (one
# injector each in ``_INJECTORS``; ``unexplained`` is a ranking outcome, not a fault to inject).
FAULTS: list[str] = [f.id for f in REGISTRY.values() if f.simulated and f.since == 1]
"""Catalog version 1: the set the engine's tests cover."""
V2_FAULTS: list[str] = [f.id for f in REGISTRY.values() if f.simulated and f.since == 2]
"""Added by catalog version 2 (code_defect)."""
ALL_FAULTS: list[str] = FAULTS + V2_FAULTS

SEVERITY_SCALE = {"subtle": 0.45, "moderate": 1.0, "severe": 2.0}


def ramp(n: int, start: int, width: int) -> np.ndarray:
    """0 before ``start``, rising linearly to 1 over ``width`` samples, then 1."""
    idx = np.arange(n, dtype=float)
    width = max(1, width)
    return np.clip((idx - start + 1) / width, 0.0, 1.0)


def window_mask(n: int, start: int, end: int) -> np.ndarray:
    """1 on ``[start, end)``, else 0."""
    m = np.zeros(n)
    m[max(0, start):max(0, min(n, end))] = 1.0
    return m


# ---------------------------------------------------------------------- pods and changes
def init_pods(m: Model, kube: bool, vscheme: str, node_style: str, date: str) -> None:
    """Create the instances of every service that exists at the start of the window."""
    rng = m.rng
    nodes = [names.node_name(rng, node_style) for _ in range(max(2, min(40, len(m.topo.services) // 3 + 2)))]
    m.nodes = nodes
    m.kube = kube
    m.vscheme = vscheme
    m.date = date
    for nm, svc in m.topo.services.items():
        if svc.kind in (EXTERNAL,):
            continue
        m.versions[nm] = names.first_version(rng, vscheme, _earlier(date, rng))
        reps = svc.replicas
        pods = []
        if kube:
            if svc.kind == APP:
                h = names.pod_template_hash(rng)
                for _ in range(reps):
                    pods.append(Pod(nm, f"{nm}-{h}-{names.pod_suffix(rng)}", 0, m.n, m.versions[nm],
                                    rng.choice(nodes), names.private_ip(rng)))
            else:
                pods.append(Pod(nm, f"{nm}-0" if svc.kind != "dns" else f"{nm}-{names.pod_template_hash(rng)}-{names.pod_suffix(rng)}",
                                0, m.n, m.versions[nm], rng.choice(nodes), names.private_ip(rng)))
        else:
            for _ in range(reps if svc.kind == APP else 1):
                ip = names.private_ip(rng)
                pods.append(Pod(nm, f"{ip}:{svc.port}", 0, m.n, m.versions[nm], rng.choice(nodes), ip))
        m.pods[nm] = pods


def _earlier(date: str, rng: random.Random) -> str:
    y, mo, d = (int(x) for x in date.split("."))
    d = max(1, d - rng.randint(1, 9))
    return f"{y:04d}.{mo:02d}.{d:02d}"


def deploy(m: Model, svc: str, t_idx: int, who: str | None = None, annotate: bool = True,
           rollout: int | None = None) -> str:
    """Roll out a new version of ``svc`` at sample ``t_idx``: new pods replace old ones."""
    rng = m.rng
    old = m.versions[svc]
    new = names.next_version(rng, m.vscheme, old, m.date)
    m.versions[svc] = new
    rollout = rollout if rollout is not None else max(1, int(rng.uniform(30, 150) / m.step))
    new_pods = []
    live = [p for p in m.pods[svc] if p.start <= t_idx < p.end]
    h = names.pod_template_hash(rng)
    for k, p in enumerate(live):
        at = min(m.n, t_idx + (k * rollout) // max(1, len(live)))
        if m.kube:
            np_ = Pod(svc, f"{svc}-{h}-{names.pod_suffix(rng)}", at, m.n, new, rng.choice(m.nodes), names.private_ip(rng))
            p.end = min(p.end, at + 1)
            new_pods.append(np_)
        elif at < m.n:
            # VMs keep their address: the process restarts in place with the new version.
            p.version_changes.append((at, new))
            p.restarts.append(at)
    m.pods[svc].extend(new_pods)
    t = float(m.ts[min(t_idx, m.n - 1)]) + rng.uniform(0, m.step)
    m.events.append(Event(t, "deploy", svc, data={"version": new, "old": old, "annotate": annotate,
                                                 "by": who or rng.choice(["ci-bot", "argocd", "jenkins", "deploy-pipeline", "flux", "spinnaker", "gha-release"]),
                                                 "duration": rollout * m.step + rng.uniform(5, 40)}))
    return new


def restart(m: Model, svc: str, pod: Pod, t_idx: int, reason: str, down_samples: int = 1) -> None:
    """A container restart of ``pod``: counters reset, a short gap, a restart counter bump."""
    pod.restarts.append(t_idx)
    reps = max(1, len([p for p in m.pods[svc] if p.start <= t_idx < p.end]))
    m.down[svc][t_idx:t_idx + down_samples] += 1.0 / reps
    m.events.append(Event(float(m.ts[min(t_idx, m.n - 1)]) + m.rng.uniform(0, m.step), "restart", svc,
                          data={"pod": pod.name, "reason": reason}))


def config_reload(m: Model, svc: str, t_idx: int, text: str, annotate: bool) -> float:
    """A configuration or feature-flag change on ``svc`` at sample ``t_idx``."""
    t = float(m.ts[min(t_idx, m.n - 1)]) + m.rng.uniform(0, m.step)
    m.config_reloads[svc].append(t)
    m.events.append(Event(t, "config", svc, text=text, data={"annotate": annotate}))
    return t


# ---------------------------------------------------------------------- culprits
def pick_culprit(m: Model, fault: str, rng: random.Random) -> str:
    """A plausible culprit for ``fault`` in this topology."""
    topo = m.topo
    apps = topo.apps()
    non_entry = [a for a in apps if topo.services[a].role != "entry"] or apps
    with_callers = [a for a in non_entry if topo.in_edges(a)] or non_entry
    if fault == "db_connection_pool_exhaustion":
        return rng.choice(sorted({e.caller for e in topo.edges if e.kind == "db"}))
    if fault == "db_slow_queries":
        return rng.choice(topo.of_kind(*DATABASES))
    if fault == "cache_failure":
        return rng.choice(topo.of_kind(REDIS))
    if fault == "external_dependency_failure":
        return rng.choice(topo.of_kind(EXTERNAL))
    if fault == "dns_failure":
        return topo.dns
    if fault == "certificate_expired":
        tls = [a for a in with_callers if topo.services[a].tls and any(e.tls for e in topo.in_edges(a))]
        if not tls:
            target = rng.choice(with_callers)
            topo.services[target].tls = True
            for e in topo.in_edges(target):
                e.tls = True
            return target
        return rng.choice(tls)
    if fault == "traffic_surge":
        if rng.random() < 0.7:
            return rng.choice(topo.entries)
        return rng.choice(with_callers)
    if fault == "disk_full":
        vol = [a for a in topo.order if topo.services[a].has_volume and topo.services[a].kind in (APP, *DATABASES)]
        return rng.choice(vol) if vol and rng.random() < 0.85 else rng.choice(topo.of_kind(*DATABASES))
    if fault == "network_degradation":
        cands = with_callers + (topo.of_kind(*DATABASES) if rng.random() < 0.3 else [])
        return rng.choice(cands)
    if fault in ("cpu_saturation", "memory_leak"):
        return rng.choice(apps if rng.random() < 0.25 else with_callers)
    return rng.choice(with_callers if rng.random() < 0.85 else apps)


# ---------------------------------------------------------------------- faults
def inject(m: Model, fault: str, culprit: str, onset: int, severity: str, rng: random.Random) -> dict:
    """Apply ``fault`` on ``culprit`` from sample ``onset``; returns the fault's parameters."""
    k = SEVERITY_SCALE[severity]
    return _INJECTORS[fault](m, culprit, onset, k, rng)


def _cpu_saturation(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    if "pod_culprit" in m.knobs:
        return _cpu_stress_pod(m, c, o, k, rng)
    variant = rng.choice(["hot-loop", "expensive-requests", "background-job", "gc-thrash"])
    lead = rng.randint(0, max(1, int(240 / m.step)))
    target = {0.45: rng.uniform(0.97, 1.08), 1.0: rng.uniform(1.1, 1.5), 2.0: rng.uniform(1.6, 2.6)}[k]
    base_util = float(np.median(m.cpu_idle[c] + m.rps[c] * m.cpu_per_req[c])) / (m.cpu_limit_pod[c] * m.topo.services[c].replicas)
    limit = m.cpu_limit_pod[c] * m.topo.services[c].replicas
    width = rng.randint(1, max(2, int(300 / m.step)))
    extra = max(0.0, target - base_util) * limit * ramp(m.n, o - lead, width)
    if variant == "expensive-requests":
        # A costlier code path: the extra CPU follows the request rate.
        extra = extra * m.rps[c] / max(1e-6, float(np.median(m.rps[c])))
    m.cpu_extra[c] = m.cpu_extra[c] + extra
    return {"variant": variant, "target_util": round(target, 3), "lead_s": lead * m.step}


def _bad_pod(m: Model, c: str, o: int, rng: random.Random) -> tuple[Pod, int]:
    """One live pod of ``c`` at ``o`` and how many pods share its traffic."""
    live = [p for p in m.pods[c] if p.start <= o < p.end]
    return rng.choice(live), len(live)


def _pod_latency(m: Model, c: str, pod: Pod, pods: int, factor: np.ndarray) -> None:
    """One pod's own latency scaled by ``factor``: the service's mean moves by its share."""
    m.pod_lat_factor[pod.name] = factor
    mean = (pods - 1 + factor) / pods
    m.pod_lat_mean[c] = mean
    m.lat_mult[c] = m.lat_mult[c] * mean


def _cpu_stress_pod(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    """CPU contention on one pod from a stress process: its CPU rises a lot, its latency with it."""
    pod, pods = _bad_pod(m, c, o, rng)
    lead = rng.randint(0, max(1, int(120 / m.step)))
    r = ramp(m.n, o - lead, rng.randint(1, max(2, int(120 / m.step))))
    workers = {0.45: rng.uniform(0.8, 1.5), 1.0: rng.uniform(1.5, 3.0), 2.0: rng.uniform(3.0, 6.0)}[k]
    limited = bool(m.knobs.params.get("pod_culprit", {}).get("limit_metric", True))
    if not limited:
        m.no_limit.add(c)
    m.pod_cpu_extra[pod.name] = workers * r * m._noise(0.05)
    # Runnable threads wait behind the stress workers (and the CFS quota, when there is one).
    slow = {0.45: rng.uniform(1.8, 3.0), 1.0: rng.uniform(3.0, 6.0), 2.0: rng.uniform(6.0, 12.0)}[k]
    if limited:
        slow *= 1.3
    _pod_latency(m, c, pod, pods, 1 + (slow - 1) * r * m._noise(0.08))
    base = float(np.median(m.cpu_demand[c][: max(2, o - 2)])) / max(1, m.topo.services[c].replicas)
    return {"variant": "stress-process", "pod": pod.name, "stress_cores": round(workers, 3),
            "baseline_cores": round(base, 4), "pod_latency_mult": round(slow, 2), "cpu_limit": limited,
            "lead_s": lead * m.step}


def _memory_leak(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    svc = m.topo.services[c]
    lim = m.mem_limit_pod[c]
    base = m.mem_base_pod[c]
    grow_min = rng.uniform(15, 60) / (k ** 0.3)
    rate = (lim - base) / (grow_min * 60)  # bytes per second
    leak_start = o - int(grow_min * 60 / m.step)
    pods = [p for p in m.pods[c] if p.start <= o < p.end]
    ooms = []
    m.leak = getattr(m, "leak", {})
    crash = np.zeros(m.n)
    # After a restart the pod refills faster: it takes back its share of traffic at once.
    refill = rng.uniform(1.5, 4.0) * k ** 0.5
    for j, p in enumerate(pods):
        # Pods started at different times, so they reach the limit a few minutes apart (the first at onset).
        shift = 0 if j == 0 else rng.randint(0, max(1, int(480 / m.step)))
        start = leak_start + shift
        extra = np.zeros(m.n)
        cur, r_ = start, rate
        while cur < m.n:
            full = cur + max(1, int((lim - base) / r_ / m.step))
            seg_end = min(m.n, full)
            idx = np.arange(max(0, cur), seg_end)
            extra[idx] = r_ * (idx - cur) * m.step
            if full >= m.n:
                break
            down = max(1, int(rng.uniform(20, 90) * (1 + len(ooms) * 0.5) / m.step))
            restart(m, c, p, full, "OOMKilled", down_samples=down)
            crash[full:full + 1] += 0.5 / max(1, len(pods))
            ooms.append(int(full))
            cur = full + down
            r_ = rate * refill
        m.leak[p.name] = extra
    # Requests in flight on a killed pod fail; GC pressure slows the service as memory fills.
    m.add_err(c, "oom", np.clip(crash, 0, 1))
    fill = np.zeros(m.n)
    for p in pods:
        fill = np.maximum(fill, (base + m.leak[p.name]) / lim)
    gc = 3 if svc.lang in ("java", "node") else 1.5
    m.lat_mult[c] = m.lat_mult[c] * (1 + np.clip((fill - 0.75) * gc * 4 * k, 0, 6))
    return {"variant": rng.choice(["unbounded-cache", "listener-leak", "goroutine-leak" if svc.lang == "go" else "session-map"]),
            "grow_minutes": round(grow_min, 1), "oom_at": [int(m.ts[i]) for i in sorted(ooms)[:6]]}


def _pool_exhaustion(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    edges = [e for e in m.topo.out_edges(c) if e.kind == "db"]
    e = rng.choice(edges)
    i = m.eid(e)
    variant = rng.choice(["connection-leak", "held-during-remote-call", "long-transactions-in-app"])
    rho = {0.45: rng.uniform(1.02, 1.1), 1.0: rng.uniform(1.15, 1.4), 2.0: rng.uniform(1.5, 2.5)}[k]
    if variant == "connection-leak":
        lead = int(rng.uniform(8, 40) * 60 / m.step)
        reps = m.topo.services[c].replicas
        used = float(np.percentile(m.pool_active.get(i, np.zeros(1)), 90)) / reps if i in m.pool_active else 0.0
        # Leaked connections climb so the pool fills exactly at onset, then keep leaking.
        r = np.clip((np.arange(m.n) - (o - lead)) / max(1, lead), 0, None)
        room = max(1.0, e.pool_max - used)
        m.pool_leak[i] = m.pool_leak[i] + room * np.where(r <= 1, r * 0.97, 0.97 + (rho - 0.97) * np.minimum(1, (r - 1) * 4))
    else:
        # Connections held while the app does slow work outside the database.
        hold = rho * 6 * max(1.0, e.pool_max * m.topo.services[c].replicas / max(1e-6, float(np.median(m.edge_rps[i] * m.db_lat[e.callee]))) / 6)
        m.pool_hold_mult[i] = 1 + (hold - 1) * ramp(m.n, o, rng.randint(1, 3))
        # The wait is inside the app, not the database: the DB server sees no slower queries.
    return {"variant": variant, "db": e.callee, "pool": e.pool_name, "pool_lib": e.pool_lib,
            "pool_max": e.pool_max, "rho": round(rho, 3)}


def _db_slow(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    variant = rng.choice(["lock-contention", "missing-index", "long-running-report", "vacuum-io"])
    mult = {0.45: rng.uniform(3, 6), 1.0: rng.uniform(8, 25), 2.0: rng.uniform(30, 120)}[k]
    width = rng.randint(1, max(2, int(180 / m.step)))
    r = ramp(m.n, o, width)
    m.db_lat_mult[c] = m.db_lat_mult[c] * (1 + (mult - 1) * r * m._noise(0.08))
    locks = {"lock-contention": rng.uniform(30, 200), "missing-index": rng.uniform(0, 10),
             "long-running-report": rng.uniform(10, 60), "vacuum-io": rng.uniform(5, 30)}[variant] * k
    m.db_locks_add[c] = m.db_locks_add[c] + locks * r * m._noise(0.2)
    tx = {"lock-contention": rng.uniform(20, 120), "missing-index": rng.uniform(5, 30),
          "long-running-report": rng.uniform(300, 1800), "vacuum-io": rng.uniform(10, 60)}[variant]
    m.db_txdur_add[c] = m.db_txdur_add[c] + tx * k * r * np.clip(np.arange(m.n) - o, 1, None) / max(1, int(600 / m.step)) ** 0.3
    return {"variant": variant, "latency_mult": round(mult, 2), "clients": sorted({e.caller for e in m.topo.in_edges(c)})}


_BUG_TEMPLATES = {
    "java": ["java.lang.NullPointerException: Cannot invoke \"{cls}.get{field}()\" because \"{var}\" is null",
             "java.lang.IllegalStateException: {field} must not be empty",
             "com.fasterxml.jackson.databind.exc.MismatchedInputException: Cannot deserialize value of type `{cls}` from Array value",
             "java.lang.ClassCastException: class {cls} cannot be cast to class java.lang.String"],
    "go": ["panic: runtime error: invalid memory address or nil pointer dereference",
           "json: cannot unmarshal string into Go struct field {cls}.{field} of type int64",
           "handler error: {field}: index out of range [3] with length 3",
           "unexpected nil {field} in {cls}"],
    "python": ["KeyError: '{field}'",
               "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'",
               "AttributeError: 'NoneType' object has no attribute '{field}'",
               "pydantic_core._pydantic_core.ValidationError: 1 validation error for {cls}"],
    "node": ["TypeError: Cannot read properties of undefined (reading '{field}')",
             "RangeError: Invalid array length",
             "ReferenceError: {field} is not defined",
             "SyntaxError: Unexpected token u in JSON at position 0"],
}
_FIELDS = ["currency", "customerId", "sku", "locale", "itemCount", "region", "tier", "discountCode", "userId", "sessionToken"]
_CLASSES = ["OrderRequest", "PriceQuote", "CartItem", "AccountSummary", "Booking", "Shipment", "PlayerState", "Entitlement"]


def bug_template(rng: random.Random, lang: str) -> str:
    """A new exception message a faulty release of a service in ``lang`` starts logging."""
    tpl = rng.choice(_BUG_TEMPLATES.get(lang, _BUG_TEMPLATES["go"]))
    return tpl.format(cls=rng.choice(_CLASSES), field=rng.choice(_FIELDS), var=rng.choice(["item", "req", "quote", "ctx"]))


def _bad_deploy(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    variant = rng.choice(["errors", "errors", "latency", "both"])
    rollout = max(1, int(rng.uniform(40, 180) / m.step))
    lead = rng.randint(1, max(2, int(360 / m.step)))
    t_dep = max(1, o - lead)
    annotate = rng.random() < 0.7
    version = deploy(m, c, t_dep, annotate=annotate, rollout=rollout)
    # Symptoms start at onset, as the new pods take their share of traffic.
    r = ramp(m.n, o, rollout)
    err = {0.45: rng.uniform(0.01, 0.04), 1.0: rng.uniform(0.05, 0.3), 2.0: rng.uniform(0.35, 0.9)}[k]
    lat = {0.45: rng.uniform(1.5, 2.5), 1.0: rng.uniform(3, 8), 2.0: rng.uniform(8, 30)}[k]
    tpl = bug_template(rng, m.topo.services[c].lang)
    if variant in ("errors", "both"):
        m.add_err(c, "bug", err * r * m._noise(0.1))
    if variant in ("latency", "both"):
        m.lat_mult[c] = m.lat_mult[c] * (1 + (lat - 1) * r)
        m.lat_template = getattr(m, "lat_template", {})
    m.bug_template = getattr(m, "bug_template", {})
    m.bug_template[c] = tpl
    return {"variant": variant, "bad_version": version, "err": round(err, 4) if variant != "latency" else 0,
            "lat_mult": round(lat, 3) if variant != "errors" else 1, "template": tpl, "annotated": annotate}


_SLOW_TEMPLATES = {
    "java": ["Thread pool '{pool}' exhausted: active={n}, queued tasks={q}, rejecting={field}",
             "Slow operation in {cls}Service.process: took {ms} ms (threshold 500 ms)"],
    "go": ["worker queue full: waited {ms}ms for a free worker (pool={pool})",
           "lock contention on {cls} cache: waited {ms}ms"],
    "python": ["ThreadPoolExecutor saturated: {q} tasks queued for {pool}",
               "slow handler {cls}: {ms} ms spent in {field} normalisation"],
    "node": ["event loop blocked for {ms}ms in {cls} handler",
             "request queue for {pool} is full ({q} waiting)"],
}


def _code_defect(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    """A latent bug, bad input or an exhausted internal resource in the culprit's own code."""
    variant = rng.choice(["errors", "errors", "latency", "both"])
    cause = {"errors": rng.choice(["latent-bug", "bad-input"]), "latency": "internal-resource",
             "both": rng.choice(["latent-bug", "internal-resource"])}[variant]
    width = rng.randint(1, max(2, int(180 / m.step)))
    r = ramp(m.n, o, width)
    err = {0.45: rng.uniform(0.02, 0.06), 1.0: rng.uniform(0.06, 0.3), 2.0: rng.uniform(0.35, 0.85)}[k]
    lat = {0.45: rng.uniform(2.0, 3.0), 1.0: rng.uniform(3, 8), 2.0: rng.uniform(8, 25)}[k]
    lang = m.topo.services[c].lang or "go"
    params: dict = {"variant": variant, "cause": cause}
    pod, pods = None, 1
    if "pod_culprit" in m.knobs:
        pod, pods = _bad_pod(m, c, o, rng)
        params["pod"] = pod.name
    if variant in ("errors", "both"):
        tpl = bug_template(rng, lang)
        if pod is not None:
            # One pod in a bad state: its share of the service's requests fails.
            m.pod_bug[c] = pod.name
            m.add_err(c, "bug", np.clip(err * r * m._noise(0.1), 0, 1) / pods)
        else:
            m.add_err(c, "bug", err * r * m._noise(0.1))
        m.bug_template = getattr(m, "bug_template", {})
        m.bug_template[c] = tpl
        params.update(err=round(err, 4), template=tpl)
    if variant in ("latency", "both"):
        factor = 1 + (lat - 1) * r * m._noise(0.05)
        if pod is not None:
            _pod_latency(m, c, pod, pods, factor)
        else:
            m.lat_mult[c] = m.lat_mult[c] * factor
        slow = rng.choice(_SLOW_TEMPLATES.get(lang, _SLOW_TEMPLATES["go"]))
        m.warn_template[c] = slow.format(pool=rng.choice(["worker", "io", "render", "pricing"]), n=rng.choice([16, 32, 64, 200]),
                                         q="{q}", field=rng.choice(_FIELDS), cls=rng.choice(_CLASSES), ms="{ms}")
        params.update(lat_mult=round(lat, 3), warning=m.warn_template[c])
    return params


_CONFIG_TEXTS = [
    ("feature-flag", "Feature flag '{flag}' enabled on {svc}"),
    ("feature-flag", "LaunchDarkly: flag {flag} rolled out to 100% ({svc})"),
    ("configmap", "ConfigMap {svc}-config updated ({key})"),
    ("configmap", "Config change on {svc}: {key} changed"),
    ("runtime", "{svc}: runtime config {key} updated via consul"),
]


def _config_change(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    # (A lowered client timeout would only show as inherited timeouts, which the catalog
    # counts against config_change, so it is not simulated here.)
    variant = rng.choice(["feature-flag-errors", "feature-flag-errors", "rate-limit", "bad-routing", "cache-disabled"])
    lead = rng.randint(1, max(2, int(300 / m.step)))
    kind, tpl = rng.choice(_CONFIG_TEXTS)
    flag = rng.choice(["new-pricing-engine", "checkout-v3", "async-writes", "strict-validation", "legacy-api-off", "batch-mode"])
    key = rng.choice(["upstream.timeout_ms", "ratelimit.rps", "routing.rules", "cache.enabled", "retry.max_attempts", "pool.size"])
    text = tpl.format(flag=flag, svc=c, key=key)
    annotate = rng.random() < 0.65
    t_cfg = max(1, o - lead)
    config_reload(m, c, t_cfg, text, annotate)
    r = ramp(m.n, o, rng.randint(1, 2))  # the change takes effect at onset (flag caches expire)
    sev = {0.45: rng.uniform(0.01, 0.05), 1.0: rng.uniform(0.06, 0.3), 2.0: rng.uniform(0.35, 0.9)}[k]
    params: dict = {"variant": variant, "change": text, "annotated": annotate}
    if variant == "feature-flag-errors" or variant == "bad-routing":
        m.add_err(c, "config", sev * r * m._noise(0.1))
        m.bug_template = getattr(m, "bug_template", {})
        m.bug_template[c] = (f"feature flag evaluation failed for {flag}: " + rng.choice(_FIELDS)
                             if variant == "feature-flag-errors" else
                             f"no route matched for path /api/v{rng.randint(1, 3)}/{rng.choice(['orders', 'quote', 'items', 'search'])} (rules revision {rng.randint(10, 400)})")
        params["template"] = m.bug_template[c]
    elif variant == "timeout-lowered":
        outs = [e for e in m.topo.out_edges(c) if e.kind in ("rpc", "external", "db")]
        if outs:
            e = rng.choice(outs)
            med = float(np.median(m.lat[e.callee])) if hasattr(m, "lat") else m.base_lat.get(e.callee, 0.05)
            new_tmo = max(0.001, med * rng.uniform(0.8, 2.0) / max(0.5, k))
            m.add_edge_err(e, "config_timeout", sev * r)
            params["peer"] = e.callee
            params["timeout_s"] = round(new_tmo, 4)
        else:
            m.add_err(c, "config", sev * r)
    elif variant == "rate-limit":
        m.add_err(c, "ratelimit", sev * r * m._noise(0.1))
    else:
        m.lat_mult[c] = m.lat_mult[c] * (1 + (2 + 10 * k) * r)
    return params


def _external(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    variant = rng.choice(["errors", "timeouts", "slow", "errors"])
    width = rng.randint(1, max(2, int(120 / m.step)))
    r = ramp(m.n, o, width)
    if variant == "errors":
        e = {0.45: rng.uniform(0.05, 0.15), 1.0: rng.uniform(0.2, 0.6), 2.0: rng.uniform(0.7, 1.0)}[k]
        m.ext_err[c] = np.clip(m.ext_err[c] + e * r * m._noise(0.1), 0, 1)
        m.ext_lat_mult[c] = m.ext_lat_mult[c] * (1 + 0.5 * r)
        return {"variant": variant, "err": round(e, 3), "callers": sorted({x.caller for x in m.topo.in_edges(c)})}
    mult = {0.45: rng.uniform(3, 6), 1.0: rng.uniform(8, 20), 2.0: rng.uniform(25, 80)}[k]
    if variant == "timeouts":
        mult *= 3
    m.ext_lat_mult[c] = m.ext_lat_mult[c] * (1 + (mult - 1) * r * m._noise(0.1))
    return {"variant": variant, "lat_mult": round(mult, 2), "callers": sorted({x.caller for x in m.topo.in_edges(c)})}


def _network(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    if "net_caller_view" in m.knobs:
        return _network_caller_view(m, c, o, k, rng)
    variant = rng.choice(["packet-loss", "latency", "nic-drops"])
    width = rng.randint(1, max(2, int(120 / m.step)))
    r = ramp(m.n, o, width)
    loss = {0.45: rng.uniform(0.01, 0.03), 1.0: rng.uniform(0.03, 0.08), 2.0: rng.uniform(0.08, 0.2)}[k]
    m.retrans[c] = m.retrans[c] + loss * r * m._noise(0.15)
    if variant == "nic-drops":
        m.drops[c] = m.drops[c] + loss * 50 * r
    extra = {0.45: rng.uniform(0.05, 0.2), 1.0: rng.uniform(0.25, 1.0), 2.0: rng.uniform(1.0, 3.0)}[k]
    for e in m.topo.in_edges(c):
        i = m.eid(e)
        m.edge_lat_add[i] = m.edge_lat_add[i] + extra * r * m._noise(0.2)
        m.add_edge_err(e, "reset", loss * 0.5 * r)
    return {"variant": variant, "retrans_ratio": round(loss, 4), "extra_latency_s": round(extra, 3)}


def _network_caller_view(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    """Delay (and maybe loss) on the path to ``c``: its callers' client latency to it rises
    20-200x while its own server-side latency stays flat."""
    opts = m.knobs.params.get("net_caller_view", {})
    variant = rng.choice(["netem-delay", "netem-delay", "packet-loss"])
    r = ramp(m.n, o, rng.randint(1, max(2, int(120 / m.step))))
    own = float(np.median(m.lat[c][: max(2, o - 2)]))
    mult = {0.45: rng.uniform(20, 40), 1.0: rng.uniform(40, 100), 2.0: rng.uniform(100, 200)}[k]
    extra = own * (mult - 1)
    loss = {0.45: rng.uniform(0.01, 0.03), 1.0: rng.uniform(0.03, 0.08), 2.0: rng.uniform(0.08, 0.2)}[k]
    for e in m.topo.in_edges(c):
        i = m.eid(e)
        m.edge_lat_add[i] = m.edge_lat_add[i] + extra * r * m._noise(0.15)
        if variant == "packet-loss":
            m.add_edge_err(e, "reset", loss * 0.5 * r)
    if opts.get("retransmits"):
        m.retrans[c] = m.retrans[c] + loss * r * m._noise(0.15)
    m.force_client.add(c)
    return {"variant": variant, "view": "caller", "client_over_server": round(mult, 1),
            "extra_latency_s": round(extra, 4), "retransmits": bool(opts.get("retransmits")),
            "traces": bool(opts.get("traces"))}


def _disk_full(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    lead = int(rng.uniform(10, 50) * 60 / m.step)
    start_fill = rng.uniform(0.6, 0.9)
    idx = np.arange(m.n, dtype=float)
    grow = np.clip((idx - (o - lead)) / max(1, lead), 0, None)
    fill = start_fill + (1.0 - start_fill) * grow
    fill = np.minimum(fill, 0.99995)
    m.volume_fill[c] = np.where(idx < o - lead, start_fill + m._noise(0.002) - 1, fill)
    after = (idx >= o).astype(float)
    e = {0.45: rng.uniform(0.03, 0.1), 1.0: rng.uniform(0.15, 0.5), 2.0: rng.uniform(0.6, 0.95)}[k]
    m.add_err(c, "disk", e * after * m._noise(0.1))
    what = rng.choice(["log-growth", "wal-growth", "temp-files", "upload-spool"]) if m.topo.services[c].kind == APP else rng.choice(["wal-growth", "binlog-growth", "table-bloat"])
    return {"variant": what, "fill_start": round(start_fill, 3), "err": round(e, 3)}


def _cert(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    expiry = float(m.ts[o]) - rng.uniform(0, m.step)
    m.cert_expiry[c] = expiry
    after = (np.arange(m.n) >= o).astype(float)
    edges = [e for e in m.topo.in_edges(c) if e.tls] or m.topo.in_edges(c)
    variant = rng.choice(["all-callers", "all-callers", "some-callers"])
    verifying = edges if variant == "all-callers" or len(edges) == 1 else rng.sample(edges, max(1, len(edges) // 2))
    for e in verifying:
        e.tls = True
        m.edge_block[m.eid(e)] = np.maximum(m.edge_block[m.eid(e)], after)
        m.add_edge_err(e, "tls", after)
    return {"variant": variant, "expiry": int(expiry), "verifying": sorted({e.caller for e in verifying})}


def _dns(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    variant = rng.choice(["servfail-upstream", "coredns-overloaded", "nxdomain-after-zone-change"])
    width = rng.randint(1, max(2, int(120 / m.step)))
    r = ramp(m.n, o, width)
    f = {0.45: rng.uniform(0.05, 0.15), 1.0: rng.uniform(0.2, 0.5), 2.0: rng.uniform(0.6, 0.95)}[k]
    if variant == "nxdomain-after-zone-change":
        m.dns_nx = m.dns_nx + f * r
    m.dns_fail = np.clip(m.dns_fail + f * r * m._noise(0.1), 0, 1)
    if variant == "coredns-overloaded":
        m.dns_lat_mult = m.dns_lat_mult * (1 + 40 * k * r)
    return {"variant": variant, "fail_ratio": round(f, 3)}


def _surge(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    mult = {0.45: rng.uniform(1.6, 2.2), 1.0: rng.uniform(2.5, 4.5), 2.0: rng.uniform(5, 10)}[k]
    width = rng.randint(1, max(2, int(240 / m.step)))
    r = ramp(m.n, o, width)
    base = max(m.base_rps.get(c, 0.0), 5.0)
    m.ext_rps[c] = m.ext_rps[c] + base * (mult - 1) * r * m._noise(0.05)
    source = rng.choice(["marketing campaign", "bot traffic", "partner batch job", "retry storm from mobile clients", "viral event"])
    return {"variant": source, "rate_mult": round(mult, 2)}


def _cache(m: Model, c: str, o: int, k: float, rng: random.Random) -> dict:
    variant = rng.choice(["down", "evictions", "flushed"])
    idx = np.arange(m.n)
    if variant == "down":
        down = (idx >= o).astype(float)
        m.cache_up[c] = 1 - down
        for e in m.topo.in_edges(c):
            m.add_edge_err(e, "cache_down", down)
        m.cache_hit[c] = m.cache_hit[c] * (1 - down)
    elif variant == "evictions":
        low = {0.45: rng.uniform(0.5, 0.65), 1.0: rng.uniform(0.2, 0.45), 2.0: rng.uniform(0.02, 0.15)}[k]
        r = ramp(m.n, o, rng.randint(1, 3))
        m.cache_hit[c] = m.cache_hit[c] * (1 - r) + low * r * m._noise(0.05)
    else:
        # A flush: the hit ratio collapses then slowly recovers as the cache refills.
        rec = int(rng.uniform(20, 60) * 60 / m.step)
        depth = np.where(idx >= o, np.clip(1 - (idx - o) / rec, 0, 1), 0.0)
        m.cache_hit[c] = m.cache_hit[c] * (1 - depth * rng.uniform(0.8, 0.98))
    return {"variant": variant, "backing_db": m.topo.services[c].backing_db,
            "clients": sorted({e.caller for e in m.topo.in_edges(c)})}


_INJECTORS = {
    "cpu_saturation": _cpu_saturation,
    "memory_leak": _memory_leak,
    "db_connection_pool_exhaustion": _pool_exhaustion,
    "db_slow_queries": _db_slow,
    "bad_deploy": _bad_deploy,
    "config_change": _config_change,
    "external_dependency_failure": _external,
    "network_degradation": _network,
    "disk_full": _disk_full,
    "certificate_expired": _cert,
    "dns_failure": _dns,
    "traffic_surge": _surge,
    "cache_failure": _cache,
    "code_defect": _code_defect,
}


# ---------------------------------------------------------------------- red herrings
DECOYS = ["deploy_near_onset", "restart_after_onset", "cpu_high_flat", "pool_high_flat", "mem_high_flat",
          "cert_soon", "cache_dip", "retrans_blip", "gc_warnings", "legacy_no_such_host", "chronic_slow",
          "chronic_errors", "config_bystander", "early_error_burst", "early_deploys"]


def add_decoys(m: Model, fault: str, culprit: str, onset: int, rng: random.Random) -> list[dict]:
    """Add background changes and misleading-but-innocent signals; returns their descriptions."""
    topo = m.topo
    apps = topo.apps()
    bystanders = [a for a in apps if a != culprit] or apps
    out: list[dict] = []
    n_decoys = rng.choice([1, 2, 2, 3, 3, 4, 5])
    kinds = rng.sample(DECOYS, n_decoys)
    if "early_deploys" not in kinds and rng.random() < 0.7:
        kinds.append("early_deploys")
    iso = lambda i: int(m.ts[max(0, min(m.n - 1, i))])  # noqa: E731
    for kind in kinds:
        svc = rng.choice(bystanders)
        if kind == "deploy_near_onset":
            t = max(1, onset - rng.randint(0, max(2, int(600 / m.step))))
            v = deploy(m, svc, t, annotate=rng.random() < 0.8)
            out.append({"kind": kind, "svc": svc, "t": iso(t), "version": v})
        elif kind == "early_deploys":
            # A code defect has no change of its own behind it, early or late.
            pool = bystanders if fault == "code_defect" else apps
            for _ in range(rng.randint(1, 3)):
                s2 = rng.choice(pool)
                t = rng.randint(1, max(2, onset - int(900 / m.step)))
                deploy(m, s2, t, annotate=rng.random() < 0.8)
            out.append({"kind": kind})
        elif kind == "restart_after_onset":
            t = min(m.n - 2, onset + rng.randint(1, max(2, int(600 / m.step))))
            live = [p for p in m.pods.get(svc, []) if p.start <= t < p.end]
            if live:
                p = rng.choice(live)
                restart(m, svc, p, t, rng.choice(["Error", "Completed", "liveness probe failed"]))
                out.append({"kind": kind, "svc": svc, "t": iso(t), "pod": p.name})
        elif kind == "cpu_high_flat":
            limit = m.cpu_limit_pod[svc] * topo.services[svc].replicas
            now = float(np.percentile(m.util[svc], 95)) if hasattr(m, "util") else 0.5
            m.cpu_extra[svc] = m.cpu_extra[svc] + max(0.0, rng.uniform(0.72, 0.85) - now) * limit
            out.append({"kind": kind, "svc": svc})
        elif kind == "pool_high_flat":
            dbe = [e for e in topo.edges if e.kind == "db" and e.caller != culprit]
            if dbe:
                e = rng.choice(dbe)
                i = m.eid(e)
                used = float(np.percentile(m.pool_active[i], 90)) / m.topo.services[e.caller].replicas if i in m.pool_active else 0.0
                # Busy but not full: the pool sits at 60-75 % of its size the whole window.
                m.pool_leak[i] = m.pool_leak[i] + max(0.0, e.pool_max * rng.uniform(0.6, 0.75) - used)
                out.append({"kind": kind, "svc": e.caller, "db": e.callee})
        elif kind == "mem_high_flat":
            m.mem_base_pod[svc] = m.mem_limit_pod[svc] * rng.uniform(0.8, 0.9)
            out.append({"kind": kind, "svc": svc})
        elif kind == "cert_soon":
            tls = [a for a in bystanders if topo.services[a].tls] or bystanders
            s2 = rng.choice(tls)
            topo.services[s2].tls = True
            m.cert_expiry[s2] = float(m.ts[-1]) + rng.uniform(1.5, 6) * 86400
            out.append({"kind": kind, "svc": s2, "expiry": int(m.cert_expiry[s2])})
        elif kind == "cache_dip":
            caches = [x for x in topo.of_kind(REDIS) if x != culprit]
            if caches and onset > int(1200 / m.step):
                cch = rng.choice(caches)
                t = rng.randint(1, onset - int(900 / m.step))
                w = max(1, int(rng.uniform(60, 300) / m.step))
                hit = rng.uniform(0.4, 0.7)
                mask = window_mask(m.n, t, t + w)
                m.cache_hit[cch] = m.cache_hit[cch] * (1 - mask) + hit * mask
                out.append({"kind": kind, "svc": cch, "t": iso(t), "hit": round(hit, 3)})
        elif kind == "retrans_blip":
            t = rng.randint(1, m.n - 2)
            ratio = rng.uniform(0.01, 0.04)
            m.retrans[svc] = m.retrans[svc] + ratio * window_mask(m.n, t, t + max(1, int(60 / m.step)))
            out.append({"kind": kind, "svc": svc, "t": iso(t), "ratio": round(ratio, 4)})
        elif kind == "gc_warnings":
            m.gc_noisy = getattr(m, "gc_noisy", set()) | {svc}
            out.append({"kind": kind, "svc": svc})
        elif kind == "legacy_no_such_host":
            host = rng.choice(["legacy-reports.internal", "old-billing.corp.local", "metrics-v1.svc", "ldap-backup.internal"])
            m.legacy_host = getattr(m, "legacy_host", {})
            m.legacy_host[svc] = host
            out.append({"kind": kind, "svc": svc, "host": host})
        elif kind == "chronic_slow":
            m.lat_mult[svc] = m.lat_mult[svc] * rng.uniform(4, 12)
            m.base_lat[svc] = m.base_lat[svc]
            out.append({"kind": kind, "svc": svc})
        elif kind == "chronic_errors":
            ratio = rng.uniform(0.01, 0.05)
            m.add_err(svc, "chronic", ratio * m._noise(0.3))
            m.chronic_err[svc] = ratio
            out.append({"kind": kind, "svc": svc, "ratio": round(ratio, 4)})
        elif kind == "config_bystander":
            t = rng.randint(1, max(2, onset - 1))
            text = rng.choice(["Config change on {s}: log level set to debug", "ConfigMap {s}-config updated (tracing.sample_rate)",
                               "Feature flag 'dark-mode' enabled on {s}"]).format(s=svc)
            config_reload(m, svc, t, text, rng.random() < 0.7)
            out.append({"kind": kind, "svc": svc, "t": iso(t)})
        elif kind == "early_error_burst":
            if onset > int(1200 / m.step):
                t = rng.randint(1, onset - int(900 / m.step))
                w = max(1, int(rng.uniform(60, 240) / m.step))
                ratio = rng.uniform(0.03, 0.15)
                m.add_err(svc, "transient", ratio * window_mask(m.n, t, t + w))
                out.append({"kind": kind, "svc": svc, "t": iso(t), "ratio": round(ratio, 3)})
    return out

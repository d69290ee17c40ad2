"""Incidents whose cause is outside the fault catalog, for runbook tests and benchmarks.

Each one is a simulated system (the same topologies, naming schemes and noise as
``generate``) whose symptom comes from a cause the catalog has no agent for: a Kafka consumer
falling behind, a JVM thread pool at its maximum, a feature flag flipped, a node gone
NotReady, an external API throttling its callers, a burst of cron jobs. The symptom is
injected through the model's drivers; the cause's own telemetry is written as extra series
into the bundle, the way its exporter would expose it. ``truth.json`` names ``other:<slug>``.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compass_tui.sim import faults as F
from compass_tui.sim.faults import ramp
from compass_tui.sim.metrics import OMWriter
from compass_tui.sim.scenario import SimIncident, SimOptions, generate

CAUSES = ("kafka_consumer_lag", "jvm_threadpool_exhaustion", "feature_flag_flipped", "node_not_ready",
          "external_api_rate_limited", "cron_job_stampede")
"""The out-of-catalog causes, as ``other:<slug>`` slugs (with dashes)."""


@dataclass
class OutsideIncident:
    """A simulated incident plus the extra series of its out-of-catalog cause."""

    cause: str
    inc: SimIncident
    culprit: str
    extra: list[tuple[str, str, dict, np.ndarray]]
    """(family, type, labels, values on the model's grid)."""

    @property
    def fault(self) -> str:
        return "other:" + self.cause.replace("_", "-")


def _svc_key(inc: SimIncident) -> str:
    return "container" if inc.style.scheme == "container" else inc.style.scheme


def _inject(cause: str, state: dict):
    """An injector for ``generate`` that applies the out-of-catalog symptom instead."""

    def inject(m, fault, culprit, onset, severity, rng):
        k = F.SEVERITY_SCALE[severity]
        n, step = m.n, m.step
        r = ramp(n, onset, max(1, int(90 / step)))
        topo = m.topo
        if cause in ("kafka_consumer_lag", "jvm_threadpool_exhaustion", "cron_job_stampede"):
            mult = {0.45: rng.uniform(2.5, 4), 1.0: rng.uniform(4, 9), 2.0: rng.uniform(9, 20)}[k]
            m.lat_mult[culprit] = m.lat_mult[culprit] * (1 + (mult - 1) * r)
            m.add_err(culprit, "timeout", {0.45: 0.02, 1.0: 0.08, 2.0: 0.25}[k] * r * m._noise(0.1))
            state.update(culprit=culprit, lat_mult=mult)
        elif cause == "feature_flag_flipped":
            m.add_err(culprit, "bug", {0.45: rng.uniform(0.03, 0.06), 1.0: rng.uniform(0.08, 0.3), 2.0: rng.uniform(0.3, 0.7)}[k]
                      * r * m._noise(0.1))
            state.update(culprit=culprit, flag=rng.choice(["new-pricing-engine", "checkout_v2", "async-inventory",
                                                          "enable_batch_writes", "recs.model-b"]))
        elif cause == "node_not_ready":
            # the node carrying most of the culprit's pods goes NotReady: those pods stop serving
            live = [p for p in m.pods[culprit] if p.start <= onset < p.end]
            nodes = sorted({p.node for p in live})
            node = max(nodes, key=lambda nd: sum(1 for p in live if p.node == nd)) if nodes else "node-1"
            hit: dict[str, float] = {}
            for svc, pods in m.pods.items():
                lp = [p for p in pods if p.start <= onset < p.end]
                if lp:
                    share = sum(1 for p in lp if p.node == node) / len(lp)
                    if share > 0:
                        m.down[svc] = np.clip(m.down[svc] + share * r, 0, 1)
                        m.add_err(svc, "unavailable", min(0.9, share) * 0.5 * r * m._noise(0.1))
                        hit[svc] = share
            state.update(culprit=node, service=culprit, node=node, hit=hit,
                         nodes=sorted({p.node for pods in m.pods.values() for p in pods}))
        elif cause == "external_api_rate_limited":
            exts = topo.of_kind("external")
            ext = rng.choice(exts) if exts else None
            callers = sorted({e.caller for e in topo.in_edges(ext)}) if ext else [culprit]
            for c in callers:
                # callers back off and retry: slower, and some requests give up
                m.lat_add[c] = m.lat_add[c] + {0.45: 0.4, 1.0: 1.2, 2.0: 3.0}[k] * r
                m.add_err(c, "throttled", {0.45: 0.03, 1.0: 0.08, 2.0: 0.2}[k] * r * m._noise(0.1))
            state.update(culprit=ext or culprit, callers=callers)
        return {"outside": cause}

    return inject


@contextlib.contextmanager
def _patched(cause: str, state: dict):
    orig = F.inject
    F.inject = _inject(cause, state)
    try:
        yield
    finally:
        F.inject = orig


def generate_outside(cause: str, seed: int, options: SimOptions | None = None) -> OutsideIncident:
    """Simulate one incident of an out-of-catalog ``cause`` (one of ``CAUSES``)."""
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r}; expected one of: {', '.join(CAUSES)}")
    # the catalog fault whose culprit choice fits: a called application, or one with an external
    base = "external_dependency_failure" if cause == "external_api_rate_limited" else "bad_deploy"
    state: dict = {}
    # Clean scenarios unless asked otherwise: the cause's own series are what these incidents test.
    options = options or SimOptions(realism="off")
    with _patched(cause, state):
        inc = generate(base, seed + 7919 * (CAUSES.index(cause) + 1), options)
    m = inc.model
    rng = random.Random(inc.rng_seed ^ 0x0C5D)
    n, ts, onset, step = m.n, m.ts, inc.onset, m.step
    culprit = state.get("culprit", inc.culprit)
    if cause == "external_api_rate_limited":
        culprit = inc.culprit  # the external API generate picked
    key = _svc_key(inc)
    noise = lambda s: np.clip(1 + m.nrng.normal(0, s, n), 0.2, None)  # noqa: E731
    lead = max(1, int(rng.uniform(30, 150) / step))
    r = ramp(n, onset - lead, max(1, int(120 / step)))
    extra: list[tuple[str, str, dict, np.ndarray]] = []
    if cause == "kafka_consumer_lag":
        topic = rng.choice(["orders", "events", "payments.v1", "inventory-updates", "clickstream"])
        for part in range(3):
            base = rng.uniform(5, 120)
            vals = base * noise(0.3) + rng.uniform(2e4, 2e5) / 3 * r * np.linspace(0.5, 1.5, n) ** 2
            extra.append(("kafka_consumergroup_lag", "gauge",
                          {"consumergroup": culprit, "topic": topic, "partition": str(part), "job": "kafka-exporter"},
                          np.round(vals)))
    elif cause == "jvm_threadpool_exhaustion":
        mx = float(rng.choice([50, 100, 200, 250]))
        active = np.minimum(mx, mx * rng.uniform(0.1, 0.35) * noise(0.15) + mx * r)
        queued = np.round(rng.uniform(0, 3) * noise(0.5) + rng.uniform(200, 3000) * r)
        lbl = {key: culprit, "name": rng.choice(["applicationTaskExecutor", "http-nio-8080-exec", "taskScheduler"])}
        extra += [("executor_active_threads", "gauge", lbl, np.round(active)),
                  ("executor_pool_max_threads", "gauge", lbl, np.full(n, mx)),
                  ("executor_queued_tasks", "gauge", lbl, queued)]
    elif cause == "feature_flag_flipped":
        on = (np.arange(n) >= onset - lead).astype(float)
        extra.append(("feature_flag_state", "gauge", {key: culprit, "flag": state["flag"]}, on))
        other = rng.choice(["dark-mode", "beta_search", "legacy-export"])
        extra.append(("feature_flag_state", "gauge", {key: culprit, "flag": other}, np.full(n, float(rng.random() < 0.5))))
    elif cause == "node_not_ready":
        for node in state["nodes"]:
            down = (np.arange(n) >= onset - lead) if node == state["node"] else np.zeros(n, dtype=bool)
            for status, val in (("true", 1.0 - down), ("false", down.astype(float)), ("unknown", np.zeros(n))):
                extra.append(("kube_node_status_condition", "gauge",
                              {"job": "kube-state-metrics", "node": node, "condition": "Ready", "status": status},
                              val.astype(float)))
    elif cause == "external_api_rate_limited":
        for c in state.get("callers", []):
            limit = float(rng.choice([100, 500, 1000]))
            remaining = np.clip(limit * rng.uniform(0.5, 0.9) * noise(0.1) * (1 - r), 0, limit)
            throttled = np.cumsum(rng.uniform(5, 40) * r * noise(0.2) * step)
            lbl = {key: c, "api": culprit}
            extra += [("external_api_ratelimit_remaining", "gauge", lbl, np.round(remaining)),
                      ("external_api_throttled_requests_total", "counter", lbl, np.round(throttled))]
    elif cause == "cron_job_stampede":
        task = rng.choice(["reconcile", "report", "sync", "export", "reindex"])
        jobs = rng.randint(8, 20)
        start = onset - lead
        for j in range(jobs):
            js = start + rng.randint(0, max(1, int(60 / step)))
            je = min(n, js + rng.randint(int(600 / step), int(1800 / step) + 1))
            active = np.zeros(n)
            active[js:je] = 1.0
            extra.append(("kube_job_status_active", "gauge",
                          {"job": "kube-state-metrics", "namespace": inc.topo.namespace,
                           "job_name": f"{culprit}-{task}-{int(ts[js]) // 60 + j}"}, active))
        # the usual schedule: one job at a time, now and then
        for j in range(rng.randint(2, 4)):
            js = rng.randint(0, max(1, onset // 2))
            active = np.zeros(n)
            active[js:min(n, js + int(300 / step))] = 1.0
            extra.append(("kube_job_status_active", "gauge",
                          {"job": "kube-state-metrics", "namespace": inc.topo.namespace,
                           "job_name": f"{culprit}-{task}-{int(ts[js]) // 60}"}, active))
    return OutsideIncident(cause=cause, inc=inc, culprit=culprit, extra=extra)


def _extra_text(oi: OutsideIncident) -> str:
    om = OMWriter(oi.inc.model.ts)
    for fam, mtype, labels, vals in oi.extra:
        sample = fam if mtype != "counter" else fam
        om.add(fam[:-6] if mtype == "counter" and fam.endswith("_total") else fam, mtype, sample, labels, vals)
    text = om.render()
    return text[: -len("# EOF\n")]


def write_outside(oi: OutsideIncident, out: str | Path) -> Path:
    """Write the incident as a bundle directory: the simulated files, the cause's series added
    to ``metrics.om`` and ``truth.json`` naming ``other:<slug>``."""
    from compass_tui.sim.writer import render_files

    out = Path(out)
    files = render_files(oi.inc)
    metrics = files["metrics.om"].decode()
    assert metrics.endswith("# EOF\n")
    files["metrics.om"] = (metrics[: -len("# EOF\n")] + _extra_text(oi) + "# EOF\n").encode()
    truth = json.loads(files["truth.json"])
    truth["culprit"] = {"service": oi.culprit, "fault": oi.fault}
    truth["meta"]["outside_catalog"] = oi.cause
    files["truth.json"] = json.dumps(truth, indent=1).encode()
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out


__all__ = ["CAUSES", "OutsideIncident", "generate_outside", "write_outside"]

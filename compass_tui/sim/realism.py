"""What recorded incidents on real systems have that a clean simulation lacks.

Each knob is drawn per scenario from its own random stream (never the scenario's), so a
scenario with every knob off is exactly the clean one, and forcing one knob does not reshuffle
the others. ``SimOptions.realism`` picks the mode: ``"random"`` (each knob at its rate below),
``"off"`` (none) or ``"real"`` (the real-like flavour forced, the rest at their rates);
``SimOptions.force`` turns named knobs on.

The knobs:

* ``back_to_back``: an earlier, unrelated incident (a latency and/or error burst on some other
  or the same service, recovered) inside the baseline window;
* ``low_traffic``: the whole system, or a few services, at 0.1-1 req/s, with counts drawn as
  Poisson samples so ratios are noisy; tiny absolute moves (a "surge" from 0 to 0.1 req/s, a
  CPU rise of 0.02 cores) on bystanders;
* ``client_view``: every call has a per-call client latency metric with a peer label, and
  traces are usually absent;
* ``noisy_entry``: the entry (alerting) services have high-variance latency and error spikes;
* ``missing_server``: some services export no server-side request metrics (only their callers'
  client view of them and their resources);
* ``coarse_step``: 1-minute or 5-minute sample steps;
* ``per_pod``: Kubernetes with several pods per service; with ``pod_culprit`` only one pod of
  the culprit is bad (CPU contention from a stress process, or a code defect on one pod);
* ``mem_step``: a pod restarted in the baseline and its memory settled at a new level (a step,
  not a leak);
* ``pod_network``: per-pod network counters (cAdvisor ``container_network_*``);
* ``net_caller_view`` (network_degradation only): the delay is seen from the callers' client
  latency to the culprit (20-200x) while its own server-side latency stays flat, with or
  without retransmit metrics and traces;
* ``real_like``: the shape of real RCA benchmarks: no traces, logs or annotations, only per-pod
  CPU/memory/network and per-service latency/request/error metrics, 1-minute steps, an alert on
  the entry service.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np

# How often each knob is on in "random" mode.
KNOB_RATES: dict[str, float] = {
    "back_to_back": 0.3,
    "low_traffic": 0.12,
    "client_view": 0.25,
    "noisy_entry": 0.2,
    "missing_server": 0.12,
    "coarse_step": 0.15,
    "per_pod": 0.25,
    "pod_culprit": 0.4,
    "mem_step": 0.15,
    "pod_network": 0.25,
    "net_caller_view": 0.5,
    "real_like": 0.1,
}
KNOBS = list(KNOB_RATES)
MODES = ["random", "off", "real"]
# Faults that a culprit's pod can carry alone (the rest act on the whole service).
POD_FAULTS = ("cpu_saturation", "code_defect")
# Faults whose evidence survives the real-like flavour (per-pod resources, per-service RED metrics).
REAL_LIKE_FAULTS = ("cpu_saturation", "memory_leak", "network_degradation", "code_defect", "traffic_surge",
                    "bad_deploy")
# Peer labels of per-call client latency metrics in the wild.
PEER_LABELS = ["server_address", "peer_service", "destination_service", "upstream", "host", "peer", "target"]


@dataclass
class Realism:
    """The knobs of one scenario and their drawn parameters."""

    on: set[str] = field(default_factory=set)
    params: dict = field(default_factory=dict)
    seed: int = 0

    def __contains__(self, knob: str) -> bool:
        return knob in self.on

    def rng(self) -> random.Random:
        """A fresh stream for this scenario's knobs (the same on every attempt)."""
        return random.Random(self.seed)

    def summary(self) -> dict:
        """What ``truth.json`` records about the knobs."""
        return {k: self.params.get(k, True) for k in sorted(self.on)}


def draw_realism(fault: str, key: str, mode: str, force: tuple[str, ...] = ()) -> Realism:
    """The knobs of scenario ``key`` (fault, seed and options) in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown realism mode {mode!r}; expected one of: {', '.join(MODES)}")
    bad = [k for k in force if k not in KNOB_RATES]
    if bad:
        raise ValueError(f"unknown realism knob {bad[0]!r}; expected one of: {', '.join(KNOBS)}")
    seed = int.from_bytes(hashlib.sha256(f"{key}|realism".encode()).digest()[:8], "big")
    r = random.Random(seed)
    # Every roll and parameter is drawn whatever the mode, so one knob never moves another.
    rolls = {k: r.random() for k in KNOBS}
    params = {
        "coarse_step": r.choice([60, 60, 300]),
        "low_traffic": r.choice(["all", "all", "some"]),
        "client_view": {"peer_label": r.choice(PEER_LABELS[:4]), "traces": r.random() < 0.35},
        "net_caller_view": {"retransmits": r.random() < 0.5, "traces": r.random() < 0.5},
        "real_like": {"client_metrics": r.random() < 0.4, "limits": r.random() < 0.5,
                      "step": r.choice([60, 60, 60, 300])},
        "pod_culprit": {"limit_metric": r.random() < 0.5},
    }
    out = Realism(seed=r.getrandbits(63))
    if mode == "off":
        on: set[str] = set()
    else:
        on = {k for k in KNOBS if rolls[k] < KNOB_RATES[k]}
        if mode == "real":
            on.add("real_like")
    on |= set(force)
    if fault != "network_degradation":
        on.discard("net_caller_view")
    if fault not in POD_FAULTS:
        on.discard("pod_culprit")
    if "real_like" in on:
        on |= {"per_pod", "pod_network"}
        on -= {"client_view"}
        if fault == "network_degradation":
            on.add("net_caller_view")
    if "pod_culprit" in on:
        on.add("per_pod")
    out.on = on
    out.params = {k: v for k, v in params.items() if k in on}
    return out


def noise(nrng: np.random.Generator, n: int, scale: float, smooth: int = 3) -> np.ndarray:
    """Multiplicative noise around 1 with a little autocorrelation (the knobs' own stream)."""
    raw = nrng.normal(0.0, scale, n + smooth)
    return 1.0 + np.convolve(raw, np.ones(smooth) / smooth, mode="valid")[:n] * np.sqrt(smooth)


def low_traffic_targets(kn: Realism, topo) -> tuple[float | None, dict[str, float]]:
    """The entries' mean rate (whole system quiet) or services pinned to 0.1-1 req/s."""
    if "low_traffic" not in kn:
        return None, {}
    r = random.Random(kn.seed ^ 0x10)
    if kn.params["low_traffic"] == "all":
        return r.uniform(0.4, 2.5), {}
    apps = [a for a in topo.apps() if topo.services[a].role != "entry" and topo.in_edges(a)]
    chosen = r.sample(apps, min(len(apps), r.randint(1, 3))) if apps else []
    return None, {a: r.uniform(0.1, 1.0) for a in chosen}


def apply_overlays(m, kn: Realism, fault: str, culprit: str, onset: int) -> dict:
    """Edit the model's drivers for the knobs that act on the system; returns what was done."""
    from compass_tui.sim.faults import bug_template, ramp
    from compass_tui.sim.signals import Event
    from compass_tui.sim.topology import APP

    m.knobs = kn
    if not kn.on:
        return {}
    r = kn.rng()
    nrng = np.random.default_rng(r.getrandbits(63))
    topo = m.topo
    apps = topo.apps()
    entries = topo.entries or apps[:1]
    bystanders = [a for a in apps if a != culprit] or apps
    n, step = m.n, m.step
    iso = lambda i: int(m.ts[max(0, min(n - 1, i))])  # noqa: E731
    done: dict = {}

    if "back_to_back" in kn:
        # An earlier incident, recovered at least ten minutes before this one began.
        own = topo.services.get(culprit) is not None and topo.services[culprit].kind == APP
        svc = culprit if own and r.random() < 0.25 else r.choice(bystanders)
        width = max(2, int(r.uniform(180, 900) / step))
        latest = onset - max(3, int(600 / step)) - width
        if latest >= 2:
            t0 = r.randint(max(2, latest // 4), latest)
            shape = ramp(n, t0, r.randint(1, 2)) * (1 - ramp(n, t0 + width, r.randint(1, 3)))
            kind = r.choice(["latency", "errors", "both"])
            info = {"svc": svc, "start": iso(t0), "end": iso(t0 + width), "kind": kind}
            if kind in ("latency", "both"):
                mult = r.uniform(3, 25)
                # The service's whole response time (own work and calls) grows that much.
                m.lat_add[svc] = m.lat_add[svc] + float(np.median(m.lat[svc])) * (mult - 1) * shape
                info["lat_mult"] = round(mult, 2)
            if kind in ("errors", "both"):
                ratio = r.uniform(0.05, 0.5)
                m.add_err(svc, "prior", ratio * shape * noise(nrng, n, 0.1))
                m.prior_template[svc] = bug_template(r, topo.services[svc].lang or "go")
                info["err"] = round(ratio, 3)
            if r.random() < 0.3:
                m.cpu_extra[svc] = m.cpu_extra[svc] + m.cpu_limit_pod[svc] * r.uniform(0.2, 0.5) * shape
            done["back_to_back"] = info

    if "noisy_entry" in kn:
        noisy = []
        for e in entries:
            s = r.uniform(0.25, 0.6)
            jitter = np.exp(np.convolve(nrng.normal(0, s, n + 2), np.ones(3) / 3, mode="valid")[:n] * np.sqrt(3) - s * s / 2)
            spikes = np.zeros(n)
            for _ in range(r.randint(2, 6)):
                at = r.randrange(n)
                spikes[at:at + r.randint(1, 4)] = r.uniform(2, 6)
            # Whole response times swing (a noisy mix of endpoints and clients), not just own work.
            med = float(np.median(m.lat[e]))
            m.lat_add[e] = m.lat_add[e] + med * np.maximum(jitter * (1 + spikes) - 1, -0.5)
            errs = np.abs(nrng.normal(0, r.uniform(0.002, 0.01), n))
            for _ in range(r.randint(1, 5)):
                at = r.randrange(n)
                errs[at:at + r.randint(1, 2)] += r.uniform(0.01, 0.08)
            m.add_err(e, "noise", np.clip(errs, 0, 1))
            noisy.append(e)
        done["noisy_entry"] = noisy

    if "mem_step" in kn:
        pool = bystanders if fault == "memory_leak" else apps
        svc = r.choice(pool)
        t = r.randint(2, max(2, onset - int(900 / step)))
        live = [p for p in m.pods.get(svc, []) if p.start <= t < p.end]
        if live:
            p = r.choice(live)
            base = m.mem_base_pod[svc]
            delta = min(base * r.uniform(0.2, 0.5), m.mem_limit_pod[svc] * 0.85 - base)
            tau = max(1.0, r.uniform(60, 300) / step)
            k = np.arange(n, dtype=float) - t
            after = k >= 0
            # A fresh process starts small, warms its caches and settles higher than before.
            off = np.where(after, delta * (1 - np.exp(-(k + 1) / tau)) - base * 0.5 * np.exp(-(k + 1) / tau), 0.0)
            m.mem_step[p.name] = off
            p.restarts.append(t)
            reps = max(1, len(live))
            m.down[svc][t:t + 1] += 1.0 / reps
            m.events.append(Event(float(m.ts[t]) + r.uniform(0, step), "restart", svc,
                                  data={"pod": p.name, "reason": r.choice(["Completed", "Error"])}))
            done["mem_step"] = {"svc": svc, "pod": p.name, "t": iso(t), "step_bytes": int(delta)}

    if "missing_server" in kn:
        cands = [a for a in apps if a not in entries and topo.in_edges(a)]
        if cands:
            chosen = set(r.sample(cands, max(1, min(len(cands), round(len(cands) * r.uniform(0.1, 0.35))))))
            if culprit in cands and r.random() < 0.4:
                chosen.add(culprit)
            m.no_server = chosen
            done["missing_server"] = sorted(chosen)

    if "client_view" in kn or "real_like" in kn and kn.params["real_like"]["client_metrics"]:
        m.client_all = True

    if "low_traffic" in kn:
        # Tiny absolute moves near the onset on quiet bystanders: a "surge" of a tenth of a
        # request per second, a CPU rise of a few hundredths of a core.
        quiet = sorted((a for a in bystanders if a not in entries), key=lambda a: m.base_rps.get(a, 0.0))
        moves = []
        if quiet:
            a = quiet[0]
            at = max(1, onset - r.randint(0, max(1, int(300 / step))))
            add = r.uniform(0.05, 0.2)
            m.ext_rps[a] = m.ext_rps[a] + add * ramp(n, at, 1)
            moves.append({"kind": "tiny_surge", "svc": a, "t": iso(at), "rps": round(add, 3)})
            b = r.choice(quiet)
            at = max(1, onset - r.randint(0, max(1, int(300 / step))))
            cores = r.uniform(0.01, 0.03)
            m.cpu_extra[b] = m.cpu_extra[b] + cores * ramp(n, at, 1)
            moves.append({"kind": "tiny_cpu", "svc": b, "t": iso(at), "cores": round(cores, 3)})
        done["low_traffic"] = {"scope": kn.params["low_traffic"], "moves": moves,
                               "entry_rps": round(float(np.mean([np.mean(m.rps[e]) for e in entries])), 3)}
    return done

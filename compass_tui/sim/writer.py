"""Freeze a simulated incident to an incident bundle (format 1): a directory or a .tar.gz."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from compass_tui.sim.scenario import SimIncident

GENERATOR = "compass-sim 1"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bundle_manifest(inc: SimIncident) -> dict:
    """``bundle.json``."""
    return {"format": "compass-bundle/1", "title": inc.title,
            "window": {"start": _rfc3339(inc.start), "end": _rfc3339(inc.end)},
            "step_seconds": inc.model.step}


def incident_payload(inc: SimIncident) -> dict:
    """``incident.json``: an Alertmanager webhook (version 4) for the alert that paged."""
    rng = random.Random(inc.rng_seed ^ 0xA1E7)
    svc = inc.alerted
    st = inc.style
    label_key = st.scheme if st.scheme != "container" else rng.choice(["service", "container"])
    if inc.alert_name == "HighErrorRate":
        name = rng.choice(["HighErrorRate", "HighErrorRate", "ErrorBudgetBurn", "HTTP5xxRateHigh"])
        thr = rng.choice(["1%", "2%", "5%"])
        summary = f"Error rate above {thr} on {svc}"
        desc = f"Error rate above {thr} on {svc} for the last {rng.choice([2, 3, 5])} minutes."
    else:
        name = rng.choice(["HighLatency", "HighLatencyP99", "SLOLatencyBurn"])
        thr = rng.choice(["500ms", "1s", "2s", "300ms"])
        summary = f"p99 latency above {thr} on {svc}"
        desc = f"99th percentile latency of {svc} has been above {thr} for {rng.choice([2, 5, 10])} minutes."
    labels = {"alertname": name, label_key: svc, "severity": rng.choice(["critical", "critical", "page", "warning"]),
              "namespace": inc.topo.namespace}
    starts = _rfc3339(inc.alert_at)
    fp = hashlib.sha256(f"{name}{svc}{starts}".encode()).hexdigest()[:16]
    return {"version": "4", "groupKey": f'{{}}:{{alertname="{name}"}}', "truncatedAlerts": 0, "status": "firing",
            "receiver": rng.choice(["oncall", "pagerduty-critical", "team-sre"]),
            "groupLabels": {"namespace": inc.topo.namespace}, "commonLabels": labels,
            "commonAnnotations": {"summary": summary},
            "externalURL": "http://alertmanager.internal:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": summary, "description": desc},
                        "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus.internal:9090/graph", "fingerprint": fp}]}


def annotations(inc: SimIncident) -> list[dict]:
    """``annotations.json``: deploys and config changes that someone recorded."""
    rng = random.Random(inc.rng_seed ^ 0xA770)
    out = []
    for ev in sorted(inc.model.events, key=lambda e: e.t):
        if not ev.data.get("annotate"):
            continue
        if ev.kind == "deploy":
            v = ev.data["version"]
            text = rng.choice([f"Deployed {ev.service} {v}", f"{ev.service} {v} rolled out (helm upgrade, revision {rng.randint(10, 400)})",
                               f"Release {v} of {ev.service} by {ev.data.get('by', 'ci-bot')}", f"deploy {ev.service}@{v} finished",
                               f"argocd: sync {ev.service} to {v}"])
            out.append({"time": int(ev.t * 1000), "timeEnd": int((ev.t + ev.data.get("duration", 60)) * 1000),
                        "tags": ["deploy", f"service:{ev.service}"], "text": text})
        elif ev.kind == "config":
            out.append({"time": int(ev.t * 1000), "timeEnd": int((ev.t + rng.uniform(2, 30)) * 1000),
                        "tags": ["config", f"service:{ev.service}"], "text": ev.text})
    # Scaling noise: operators resize things during incidents and outside them.
    if rng.random() < 0.3 and inc.topo.apps():
        svc = rng.choice(inc.topo.apps())
        t = inc.start + rng.uniform(0.1, 0.9) * (inc.end - inc.start)
        out.append({"time": int(t * 1000), "timeEnd": int((t + 30) * 1000), "tags": ["scale", f"service:{svc}"],
                    "text": f"HPA scaled {svc} from {rng.randint(2, 4)} to {rng.randint(5, 8)} replicas"})
        out.sort(key=lambda a: a["time"])
    return out


def truth(inc: SimIncident, files: list[str]) -> dict:
    """``truth.json``: the answer plus how the incident was made."""
    return {"culprit": {"service": inc.culprit, "fault": inc.fault},
            "meta": {"generator": GENERATOR, "seed": inc.seed, "flavor": inc.style.flavor,
                     "service_label": inc.style.scheme, "log_label": inc.style.log_label,
                     "step": inc.model.step, "onset": _rfc3339(inc.onset_time), "alerted": inc.alerted,
                     "entry": inc.topo.entries[0] if inc.topo.entries else inc.topo.apps()[0],
                     "severity": inc.severity, "fault_params": _jsonable(inc.fault_params),
                     "decoys": _jsonable(inc.decoys), "files": files,
                     "services": len(inc.topo.services), "vocabulary": inc.topo.vocab, "kube": inc.style.kube,
                     "missing": sorted(inc.style.missing), "dns_service": inc.topo.dns,
                     "databases": inc.topo.of_kind("postgres", "mysql"), "caches": inc.topo.of_kind("redis"),
                     "externals": inc.topo.of_kind("external"),
                     **({"realism": _jsonable({**inc.realism.summary(), **inc.realism_done})} if inc.realism.on else {})}}


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return round(x, 6)
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, int) and x > 10**9 and x < 4 * 10**9:
        return _rfc3339(x)
    return x


def render_files(inc: SimIncident) -> dict[str, bytes]:
    """Every file of the bundle, name → content."""
    from compass_tui.sim.logs import render_logs
    from compass_tui.sim.metrics import render_metrics
    from compass_tui.sim.traces import render_traces

    files: dict[str, bytes] = {}
    files["bundle.json"] = json.dumps(bundle_manifest(inc), indent=1).encode()
    files["incident.json"] = json.dumps(incident_payload(inc), indent=1).encode()
    files["metrics.om"] = render_metrics(inc).encode()
    if "logs" not in inc.style.missing:
        files["logs.json"] = json.dumps(render_logs(inc), separators=(",", ":")).encode()
    if "traces" not in inc.style.missing:
        files["traces.json"] = json.dumps(render_traces(inc), separators=(",", ":")).encode()
    if "annotations" not in inc.style.missing:
        files["annotations.json"] = json.dumps(annotations(inc), indent=1).encode()
    files["truth.json"] = json.dumps(truth(inc, list(files)), indent=1).encode()
    return files


def write_bundle(incident: SimIncident, out: str | Path) -> Path:
    """Write ``incident`` as a bundle directory, or a ``.tar.gz`` when ``out`` ends with it."""
    out = Path(out)
    files = render_files(incident)
    if out.name.endswith(".tar.gz"):
        out.parent.mkdir(parents=True, exist_ok=True)
        top = out.name[: -len(".tar.gz")]
        tmp = out.with_name(out.name + ".part")
        mtime = int(incident.end)
        # A fixed gzip timestamp keeps the archive byte-identical across runs.
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                                                   mtime=mtime) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            d = tarfile.TarInfo(top)
            d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(d)
            for name, data in files.items():
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                info.mtime = mtime
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        tmp.replace(out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out

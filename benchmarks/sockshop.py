"""Real-data benchmark: Sock Shop CPU and memory hogs, converted to incident bundles.

    python benchmarks/sockshop.py PATH [--out DIR] [--step 5] [--alert-after 60] [--by-pod] [--json]
                                       [--cases carts-cpu/1,...] [--convert-only] [--jobs 1]

PATH is a local copy of github.com/azamikram/rcd (the data of "Root Cause Analysis of Failures
in Microservices through Causal Discovery", NeurIPS 2022), or its ``sock-shop-data/`` folder:
Sock Shop on Kubernetes, a CPU hog or a memory hog injected into one of five services (carts,
catalogue, orders, payment, user), five runs each, 50 cases. Each case is two recordings
from the cluster's Prometheus at 1-second resolution, ``normal.csv`` (no fault) and
``anomalous.csv`` (the hog running throughout), of per-container CPU (``rate`` over 45 s, in
percent of a core) and memory, and per-service request rate and p50/p90/p99 latency for the
three services that export them (carts, catalogue, shipping). No traces, no logs, no errors,
no call graph. The data set carries no licence of its own, so nothing of it is committed:
the benchmark reads the local copy each time.

How a case becomes a bundle (what that Prometheus would serve):

- One timeline: the normal recording, then the anomalous one moved to follow it directly
  (the two were recorded on different days). One sample per ``--step`` seconds, taken as a
  scrape would (no averaging).
- CPU becomes the counter ``container_cpu_usage_seconds_total{namespace, container}`` whose
  rate is the recorded one; memory the gauge ``container_memory_usage_bytes``; request rate
  the counter ``request_duration_seconds_count{kubernetes_namespace, name}`` and the latency
  quantiles the summary ``request_duration_seconds{name, quantile}``, under the labels the
  recording queried. ``--by-pod`` labels the container metrics by the pod alone instead
  (``pod="carts-7c9f6d8b5d-x4k2p"``, a name made up in the Deployment's pattern), as stacks that
  export per-pod series name them.
- The alert is ``HighLatency`` on the entry service, ``front-end``, ``--alert-after`` seconds
  after the hog began (a rule with ``for: 1m``). No change events are invented.
- ``truth.json`` names the hogged service, with fault ``cpu_saturation`` or ``memory_leak``
  (the catalog's nearest; a hog is no leak, so the fault is reported but scoring is by
  service, as for PetShop).

The same statistical baseline as ``realdata.py`` ranks every bundle in the same run.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.realdata import _esc, _fmt, _rfc3339, run_args, run_benchmark  # noqa: E402

SOURCE = "github.com/azamikram/rcd (sock-shop-data)"
NAMESPACE = "sock-shop"
ENTRY = "front-end"
FAULTS = {"cpu": "cpu_saturation", "mem": "memory_leak"}
_HELP = {
    "container_cpu_usage_seconds_total": "Cumulative CPU time consumed by the container, in seconds.",
    "container_memory_usage_bytes": "Current memory usage of the container, in bytes.",
    "request_duration_seconds": "Time taken to serve requests, by service name.",
}


class SockShopError(Exception):
    """The local copy is not the Sock Shop data (or a file of it is unreadable)."""


def data_root(path: str | Path) -> Path:
    p = Path(path)
    for cand in (p / "sock-shop-data", p):
        if cand.is_dir() and any(cand.glob("*-cpu/*/anomalous.csv")):
            return cand
    raise SockShopError(f"{path}: no sock-shop-data/<service>-<cpu|mem>/<run>/anomalous.csv in it")


def cases(root: Path, only: list[str] | None = None) -> list[Path]:
    """Every case folder (``carts-cpu/1``...) in a stable order."""
    out = sorted((d for d in root.glob("*-*/*") if (d / "normal.csv").is_file() and (d / "anomalous.csv").is_file()),
                 key=lambda d: (d.parent.name, int(d.name) if d.name.isdigit() else 0, d.name))
    if only is not None:
        keys = {f"{d.parent.name}/{d.name}": d for d in out}
        missing = sorted(set(only) - set(keys))
        if missing:
            raise SockShopError(f"no such case: {', '.join(missing)} (cases look like carts-cpu/1)")
        out = [keys[k] for k in only]
    return out


def read_csv(path: Path) -> tuple[list[str], list[float], list[list[float | None]]]:
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or rows[0][:1] != ["time"]:
        raise SockShopError(f"{path}: not a recording (expected a header starting with 'time')")
    cols = rows[0][1:]
    times, vals = [], []
    for r in rows[1:]:
        times.append(float(r[0]))
        vals.append([float(x) if x not in ("", "nan", "NaN") else None for x in r[1:]])
    return cols, times, vals


def timeline(case: Path, step: int) -> tuple[list[str], list[float], list[list[float | None]], float]:
    """The normal recording followed by the anomalous one, one sample per ``step`` seconds;
    returns (columns, times, rows, when the hog began)."""
    cols_n, t_n, v_n = read_csv(case / "normal.csv")
    cols_a, t_a, v_a = read_csv(case / "anomalous.csv")
    if cols_n != cols_a:
        raise SockShopError(f"{case}: normal.csv and anomalous.csv have different columns")
    if not t_n or not t_a:
        raise SockShopError(f"{case}: an empty recording")
    shift = t_n[-1] + 1 - t_a[0]
    times = t_n + [t + shift for t in t_a]
    rows = v_n + v_a
    onset = t_a[0] + shift
    keep = [i for i, t in enumerate(times) if int(t) % step == 0]
    return cols_n, [times[i] for i in keep], [rows[i] for i in keep], onset


def pod_of(svc: str) -> str:
    """A pod name in a Deployment's pattern, the same for a service every time."""
    h = hashlib.sha256(svc.encode()).hexdigest()
    alnum = "bcdfghjklmnpqrstvwxz2456789"
    pick = lambda start, n: "".join(alnum[int(h[start + 2 * i:start + 2 * i + 2], 16) % len(alnum)] for i in range(n))  # noqa: E731
    return f"{svc}-{pick(0, 10)}-{pick(20, 5)}"


def openmetrics_text(cols: list[str], times: list[float], rows: list[list[float | None]], by_pod: bool = False) -> str:
    series: dict[str, dict[tuple, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    types: dict[str, str] = {}
    for j, col in enumerate(cols):
        svc, _, metric = col.partition("_")
        vals = [(t, r[j]) for t, r in zip(times, rows) if r[j] is not None and math.isfinite(r[j])]
        where = {"namespace": NAMESPACE, **({"pod": pod_of(svc)} if by_pod else {"container": svc})}
        if metric == "cpu":
            fam, labels, kind = "container_cpu_usage_seconds_total", where, "counter"
        elif metric == "mem":
            fam, labels, kind = "container_memory_usage_bytes", where, "gauge"
        elif metric == "lod":
            fam, labels, kind = "request_duration_seconds", {"kubernetes_namespace": NAMESPACE, "name": svc}, "summary"
        elif metric.startswith("lat_"):
            q = {"50": "0.5", "90": "0.9", "99": "0.99"}.get(metric[4:])
            if q is None:
                continue
            fam, labels, kind = "request_duration_seconds", {"kubernetes_namespace": NAMESPACE, "name": svc, "quantile": q}, "summary"
        else:
            continue
        types[fam] = kind
        if metric in ("cpu", "lod"):  # a rate: the counter it is the rate of
            total, prev, pts = 0.0, None, []
            for t, v in vals:
                if prev is not None:
                    total += max(v, 0.0) * (t - prev) * (0.01 if metric == "cpu" else 1.0)
                pts.append((t, total))
                prev = t
            vals = pts
        name = fam + ("_count" if metric == "lod" else "")
        series[fam][(name, tuple(sorted(labels.items())))] = vals
    out = []
    for fam in sorted(series):
        out.append(f"# TYPE {fam} {types[fam]}")
        out.append(f"# HELP {fam} {_HELP[fam]}")
        for name, key in sorted(series[fam]):
            body = ",".join(f'{k}="{_esc(v)}"' for k, v in key)
            out += [f"{name}{{{body}}} {_fmt(v)} {int(t)}" for t, v in series[fam][(name, key)]]
    out.append("# EOF")
    return "\n".join(out) + "\n"


def incident_payload(key: str, starts: float) -> dict:
    labels = {"alertname": "HighLatency", "service": ENTRY, "namespace": NAMESPACE, "severity": "critical"}
    summary = f"{ENTRY} latency above its usual level"
    alert = {"status": "firing", "labels": labels, "annotations": {"summary": summary},
             "startsAt": _rfc3339(starts), "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus.sock-shop.internal:9090/graph",
             "fingerprint": hashlib.sha256(key.encode()).hexdigest()[:16]}
    return {"version": "4", "groupKey": '{}:{alertname="HighLatency"}', "truncatedAlerts": 0, "status": "firing",
            "receiver": "oncall", "groupLabels": {"alertname": "HighLatency"}, "commonLabels": labels,
            "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager.sock-shop.internal:9093",
            "alerts": [alert]}


def convert_case(case: Path, out_dir: str | Path, step: int = 5, alert_after: float = 60.0, by_pod: bool = False) -> Path:
    cols, times, rows, onset = timeline(case, step)
    svc, _, kind = case.parent.name.rpartition("-")
    key = f"{case.parent.name}-{case.name}"
    path = Path(out_dir) / key
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "compass-bundle/1", "title": f"Sock Shop {kind} hog in {svc}, run {case.name}",
                "window": {"start": _rfc3339(times[0]), "end": _rfc3339(times[-1] + step)}, "step_seconds": step}
    truth = {"culprit": {"service": svc, "fault": FAULTS.get(kind, f"other:{kind}")},
             "meta": {"source": SOURCE, "case": f"{case.parent.name}/{case.name}", "hog": kind,
                      "hog_began": _rfc3339(onset), "converted_by": "benchmarks/sockshop.py"}}
    (path / "bundle.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (path / "incident.json").write_text(json.dumps(incident_payload(key, onset + alert_after), indent=1) + "\n")
    (path / "metrics.om").write_text(openmetrics_text(cols, times, rows, by_pod))
    (path / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="local copy of github.com/azamikram/rcd, or its sock-shop-data/ folder")
    ap.add_argument("--out", default=None, help="write the bundles here and keep them (default: a temporary folder)")
    ap.add_argument("--step", type=int, default=5, help="seconds between samples (default 5)")
    ap.add_argument("--alert-after", type=float, default=60.0, help="seconds from the hog to the alert (default 60)")
    ap.add_argument("--by-pod", action="store_true", help="label container metrics by pod name only")
    ap.add_argument("--cases", default=None, help="only these cases, comma-separated (carts-cpu/1,...)")
    run_args(ap)
    a = ap.parse_args(argv)
    only = [k for k in a.cases.split(",") if k] if a.cases else None
    return run_benchmark(a, "sockshop", lambda out: [convert_case(c, out, a.step, a.alert_after, a.by_pod)
                                                     for c in cases(data_root(a.path), only)],
                         (SockShopError, OSError, ValueError, IndexError), "Sock Shop", SOURCE,
                         {"step_seconds": a.step, "alert_after_s": a.alert_after}, fault_line=True)


if __name__ == "__main__":
    sys.exit(main())

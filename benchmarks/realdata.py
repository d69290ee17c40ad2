"""Real-data benchmark: the PetShop root-cause data set, converted to incident bundles.

    python benchmarks/realdata.py PATH_TO_PETSHOP [--out DIR] [--limit N] [--json]
                                  [--baseline-hours 3] [--issues KEY,...] [--convert-only] [--jobs 1]

PATH_TO_PETSHOP is a local copy of github.com/amazon-science/petshop-root-cause-analysis
(CC-BY-4.0): 68 performance issues injected into a real AWS application (PetSite and its
services), each labelled with the culprit node, recorded as AWS X-Ray service-map node
statistics at 5-minute steps (latency average and p50/p90/p95/p99, requests, availability),
plus the call graph between the nodes.

Every labelled issue becomes a bundle (``bundle.json``, ``incident.json``, ``metrics.om``,
``truth.json``), then each bundle is investigated in-process exactly as ``compass investigate
--bundle B --json`` does, and ranked by a BARO-like statistical baseline on the same bundle.
Printed: a per-issue table, service-level top-1/top-3 for both, how many bundles were
answered, and the median time per investigation; ``--json`` prints the same as one object.

How the data becomes telemetry (what an exporter of these statistics would produce):

- A node ``name_TYPE`` (``payforadoption_AWS::ECS::Container``, ``PetSite``,
  ``servi-searc.…elb.amazonaws.com_remote``) is the service ``name`` with ``node_type`` TYPE,
  so the Lambda service node and the Lambda function node of one function are one service.
- Nodes that record their own requests (applications, containers, functions, API stages,
  state machines) give server-side gauges ``request_latency_seconds{statistic}``,
  ``requests_per_second`` and ``request_availability_ratio`` labelled ``service``.
- Nodes X-Ray only sees through their callers (remote endpoints, AWS-managed resources,
  databases) with exactly one caller in the call graph give the same gauges from the
  caller's side: ``client_request_latency_seconds{service=CALLER, server_address=PEER}``
  and so on. With several callers the data holds one aggregate that cannot be split per
  caller, so the node keeps server-side gauges of its own. X-Ray's ``client`` nodes (the
  users in front of a service) are the caller ``service="client"``.
- The window is the real recording before the issue: every recorded window of the same
  scenario that starts up to ``--baseline-hours`` earlier, on its own timestamps, gaps left
  as gaps. The issues of a scenario were injected back to back, so that baseline holds
  earlier incidents, as real baselines do. It ends where the data set's issue window ends.
- The alert is the data set's own target: ``HighLatency`` or ``LowAvailability`` on the
  target service (PetSite) at the target timestamp. No change events are invented: the data
  set records none.
- ``truth.json`` names the culprit service with fault ``other:petshop`` (scored by service);
  the injected mechanism (feature-flag change, code deploy, extra load) is kept in ``meta``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCENARIOS = ("low_traffic", "high_traffic", "temporal_traffic1", "temporal_traffic2")
SPLITS = ("train", "test")
STEP_S = 300  # the data set's 5-minute statistics
FAULT = "other:petshop"
SOURCE = "github.com/amazon-science/petshop-root-cause-analysis"

# X-Ray node types whose statistics are recorded by the node itself (server side).
_OWN_TYPES = ("service", "AWS::ECS::Fargate", "AWS::ECS::Container", "AWS::EC2::Instance",
              "AWS::EKS::Container", "AWS::Lambda", "AWS::Lambda::Function",
              "AWS::ApiGateway::Stage", "AWS::StepFunctions::StateMachine")
_STATISTICS = {"Average": "avg", "p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99"}


class PetshopError(Exception):
    """The local copy is not a PetShop data set (or a file of it is unreadable)."""


# ----------------------------------------------------------------------------- reading

@dataclass
class Issue:
    """One labelled issue of the data set."""

    scenario: str
    split: str
    name: str  # issue_N
    target: dict  # the data set's target.json
    times: list[float]
    columns: list[tuple[str, str, str]]  # (node, metric, statistic)
    rows: list[list[float | None]]  # per time, per column

    @property
    def key(self) -> str:
        """A stable id: scenario-split-issue_N."""
        return f"{self.scenario}-{self.split}-{self.name}"


@dataclass
class Scenario:
    """One traffic scenario: its call graph and its labelled issues."""

    name: str
    edges: list[tuple[str, str]]  # (caller node, callee node)
    issues: list[Issue] = field(default_factory=list)


def _read_metrics_csv(path: Path) -> tuple[list[float], list[tuple[str, str, str]], list[list[float | None]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 4 or rows[0][:1] != ["microservice"] or rows[3][:1] != ["unix_timestamp"]:
        raise PetshopError(f"{path}: not a PetShop metrics.csv (expected a 3-row header and unix_timestamp)")
    columns = list(zip(rows[0][1:], rows[1][1:], rows[2][1:]))
    times: list[float] = []
    values: list[list[float | None]] = []
    for r in rows[4:]:
        if not r or not r[0]:
            continue
        times.append(float(r[0]))
        values.append([float(x) if x not in ("", "nan", "NaN") else None for x in r[1:]])
    return times, columns, values


def _read_graph(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    callees = rows[0][1:]
    edges = []
    for r in rows[1:]:
        for callee, v in zip(callees, r[1:]):
            if v and float(v) != 0.0:
                edges.append((r[0], callee))
    return edges


def load_dataset(root: str | Path) -> list[Scenario]:
    """The scenarios and labelled issues under a local copy of the data set (the repository
    root or its ``dataset`` folder), issues in a stable order."""
    root = Path(root)
    if (root / "dataset").is_dir():
        root = root / "dataset"
    found = [s for s in SCENARIOS if (root / s / "graph.csv").is_file()]
    if not found:
        raise PetshopError(f"{root}: no PetShop scenario found (expected dataset/<scenario>/graph.csv)")
    out = []
    for s in found:
        sc = Scenario(s, _read_graph(root / s / "graph.csv"))
        for split in SPLITS:
            d = root / s / split
            if not d.is_dir():
                continue
            for issue_dir in sorted(d.glob("issue_*"), key=lambda p: int(p.name.split("_")[1])):
                tj, mc = issue_dir / "target.json", issue_dir / "metrics.csv"
                if not (tj.is_file() and mc.is_file()):
                    continue
                times, columns, rows = _read_metrics_csv(mc)
                sc.issues.append(Issue(s, split, issue_dir.name, json.loads(tj.read_text()), times, columns, rows))
        out.append(sc)
    return out


# ----------------------------------------------------------------------------- mapping

def split_node(node: str) -> tuple[str, str]:
    """(service name, X-Ray node type) of a node as the data set names it."""
    for suffix in ("_remote", "_client"):
        if node.endswith(suffix):
            return node[: -len(suffix)], suffix[1:]
    for marker in ("_AWS::", "_Database::"):
        i = node.find(marker)
        if i > 0:
            return node[:i], node[i + 1:]
    if node.startswith("AWS::"):
        return node, node
    return node, "service"


def culprit_service(node: str) -> str:
    """The service a culprit node of the data set is scored as."""
    return split_node(node)[0]


@dataclass
class NodeView:
    """Where one node's statistics go in the exposition."""

    family_prefix: str  # "" (server side) or "client_"
    labels: dict[str, str]


def node_views(edges: list[tuple[str, str]], nodes: list[str]) -> dict[str, NodeView]:
    """How each node's statistics are exposed: server-side under its own service, or
    client-side under its single caller with the node as ``server_address``."""
    callers: dict[str, set[str]] = defaultdict(set)
    callees: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        callers[b].add(a)
        callees[a].add(b)
    views = {}
    for node in nodes:
        name, ntype = split_node(node)
        if ntype == "client":
            # X-Ray's client node: the users in front of the service it calls.
            peer = sorted(callees.get(node, {node}))[0]
            pname, ptype = split_node(peer)
            views[node] = NodeView("client_", {"service": "client", "server_address": pname, "server_type": ptype})
            continue
        own_callers = {c for c in callers.get(node, set()) if split_node(c)[0] != name}
        if ntype not in _OWN_TYPES and len(own_callers) == 1:
            caller = split_node(next(iter(own_callers)))[0]
            views[node] = NodeView("client_", {"service": caller, "server_address": name, "server_type": ntype})
        else:
            views[node] = NodeView("", {"service": name, "node_type": ntype})
    return views


def graph_edges(edges: list[tuple[str, str]], views: dict[str, NodeView]) -> dict[str, str]:
    """callee node -> calling service, for the calls a service-graph exporter would count and
    the node statistics alone can give: between two services that record their own requests,
    into a callee that exactly one service calls (so all of its requests are that caller's)."""
    callers: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        va, vb = views.get(a), views.get(b)
        if va is None or vb is None or va.family_prefix or vb.family_prefix:
            continue
        if va.labels["service"] != vb.labels["service"]:
            callers[b].add(va.labels["service"])
    return {b: next(iter(cs)) for b, cs in callers.items() if len(cs) == 1}


def service_graph_lines(times: list[float], columns: list[tuple[str, str, str]], rows: list[list[float | None]],
                        edges: list[tuple[str, str]], views: dict[str, NodeView]) -> list[str]:
    """Tempo-style service-graph counters (``traces_service_graph_request_total``, labelled
    ``client`` and ``server``) for the edges ``graph_edges`` gives: the callee's own request
    count, accumulated; gaps stay gaps. Its failures are not written as the calls' failures:
    they are the callee's own availability already, and would count twice as a callers' view."""
    into = graph_edges(edges, views)
    req = {c[0]: j for j, c in enumerate(columns) if c[1] == "requests" and c[2] == "Sum" and c[0] in into}
    counts: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for node, j in sorted(req.items()):
        key = (into[node], views[node].labels["service"])
        if key in counts:
            continue  # one node of the callee speaks for it (a Lambda and its function)
        total = 0.0
        pts = []
        for t, row in zip(times, rows):
            n = row[j]
            if n is not None and math.isfinite(n):
                total += n
                pts.append((t, total))
        counts[key] = pts
    if not counts:
        return []
    name = "traces_service_graph_request"
    out = [f"# TYPE {name} counter", f"# HELP {name} Calls from client to server, counted from the server's own request statistics."]
    for (cl, sv), pts in sorted(counts.items()):
        out += [f'{name}_total{{client="{_esc(cl)}",server="{_esc(sv)}"}} {_fmt(round(v, 3))} {int(t)}' for t, v in pts]
    return out


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(v: float) -> str:
    return repr(float(round(v, 9)))


_HELP = {
    "request_latency_seconds": "Request latency recorded by the service itself over each 5-minute period (statistic: avg, p50, p90, p95, p99).",
    "requests_per_second": "Requests the service recorded, per second over each 5-minute period.",
    "request_availability_ratio": "Share of the service's requests without a fault over each 5-minute period.",
    "client_request_latency_seconds": "Latency of calls to server_address as the calling service measured it (statistic: avg, p50, p90, p95, p99).",
    "client_requests_per_second": "Calls to server_address per second, as the calling service recorded them.",
    "client_request_availability_ratio": "Share of calls to server_address without a fault, as the calling service recorded them.",
}


def openmetrics_text(times: list[float], columns: list[tuple[str, str, str]], rows: list[list[float | None]],
                     views: dict[str, NodeView], edges: list[tuple[str, str]] = ()) -> str:
    """The OpenMetrics exposition (explicit timestamps, ending ``# EOF``) of the rows."""
    series: dict[str, dict[tuple, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for j, (node, metric, stat) in enumerate(columns):
        view = views.get(node)
        if view is None:
            continue
        labels = dict(view.labels)
        if metric == "latency":
            if stat not in _STATISTICS:
                continue
            family = view.family_prefix + "request_latency_seconds"
            labels["statistic"] = _STATISTICS[stat]
            scale = 1.0
        elif metric == "requests" and stat == "Sum":
            family = view.family_prefix + "requests_per_second"
            scale = 1.0 / STEP_S
        elif metric == "availability":
            family = view.family_prefix + "request_availability_ratio"
            scale = 0.01
        else:
            continue
        key = tuple(sorted(labels.items()))
        for t, row in zip(times, rows):
            v = row[j]
            if v is not None and math.isfinite(v):
                series[family][key].append((t, v * scale))
    out = []
    for family in sorted(series):
        out.append(f"# TYPE {family} gauge")
        out.append(f"# HELP {family} {_HELP[family]}")
        for key in sorted(series[family]):
            body = ",".join(f'{k}="{_esc(v)}"' for k, v in key)
            for t, v in sorted(series[family][key]):
                out.append(f"{family}{{{body}}} {_fmt(v)} {int(t)}")
    out += service_graph_lines(times, columns, rows, list(edges), views)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mechanism(command: str) -> str:
    if "ssm put-parameter" in command:
        return "feature-flag change (SSM parameter)"
    if "cdk deploy" in command:
        return "code change deployed"
    if "dynamo_db_requests" in command:
        return "extra load on the table"
    return "unknown"


def incident_payload(issue: Issue) -> dict:
    """The Alertmanager v4 webhook payload of the issue's synthetic alert."""
    tgt = issue.target["target"]
    service = split_node(tgt["node"])[0]
    latency = tgt["metric"] == "latency"
    alertname = "HighLatency" if latency else "LowAvailability"
    summary = (f"{service} average latency above its usual level" if latency
               else f"{service} availability below its usual level")
    expr = (f'request_latency_seconds{{service="{service}",statistic="avg"}}' if latency
            else f'request_availability_ratio{{service="{service}"}}')
    labels = {"alertname": alertname, "service": service, "severity": "critical"}
    alert = {
        "status": "firing", "labels": labels,
        "annotations": {"summary": summary, "description": f"{summary} (5-minute {tgt.get('agg', 'Average')})."},
        "startsAt": _rfc3339(float(tgt["timestamp"])), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.petshop.internal:9090/graph?g0.expr=" + expr.replace('"', "%22"),
        "fingerprint": hashlib.sha256(f"{issue.key}|{alertname}".encode()).hexdigest()[:16],
    }
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="{alertname}"}}', "truncatedAlerts": 0,
        "status": "firing", "receiver": "oncall", "groupLabels": {"alertname": alertname},
        "commonLabels": labels, "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.petshop.internal:9093", "alerts": [alert],
    }


def issue_timeline(scenario: Scenario, issue: Issue, baseline_hours: float) -> tuple[list[float], list[tuple[str, str, str]], list[list[float | None]]]:
    """The issue's own window with the recorded windows of the same scenario that start up to
    ``baseline_hours`` before it, merged on their own timestamps (the issue's own samples win
    where windows overlap)."""
    start = issue.times[0] - baseline_hours * 3600
    columns = list(issue.columns)
    index = {c: j for j, c in enumerate(columns)}
    by_time: dict[float, list[float | None]] = {}
    earlier = [o for o in scenario.issues if o is not issue and start <= o.times[0] < issue.times[0]]
    for o in sorted(earlier, key=lambda o: o.times[0]) + [issue]:
        for c in o.columns:
            if c not in index:
                index[c] = len(columns)
                columns.append(c)
        for t, row in zip(o.times, o.rows):
            if t > issue.times[-1]:
                continue
            dest = by_time.setdefault(t, [None] * len(columns))
            for c, v in zip(o.columns, row):
                dest.extend([None] * (len(columns) - len(dest)))
                if v is not None:
                    dest[index[c]] = v
    times = sorted(by_time)
    rows = [by_time[t] + [None] * (len(columns) - len(by_time[t])) for t in times]
    return times, columns, rows


def convert_issue(scenario: Scenario, issue: Issue, out_dir: str | Path, baseline_hours: float = 3.0) -> Path:
    """Write one issue as a bundle directory under out_dir; returns its path."""
    times, columns, rows = issue_timeline(scenario, issue, baseline_hours)
    nodes = sorted({c[0] for c in columns})
    views = node_views(scenario.edges, nodes)
    path = Path(out_dir) / issue.key
    path.mkdir(parents=True, exist_ok=True)
    tgt, rc = issue.target["target"], issue.target["root_cause"]
    manifest = {
        "format": "compass-bundle/1",
        "title": f"PetShop {issue.scenario} {issue.split}/{issue.name}: {tgt['node']} {tgt['metric']}",
        "window": {"start": _rfc3339(times[0]), "end": _rfc3339(times[-1] + STEP_S)},
        "step_seconds": STEP_S,
    }
    command = (issue.target.get("metadata") or {}).get("reproducibility", {}).get("command", "")
    truth = {
        "culprit": {"service": culprit_service(rc["node"]), "fault": FAULT},
        "meta": {"source": SOURCE, "license": "CC-BY-4.0", "scenario": issue.scenario, "split": issue.split,
                 "issue": issue.name, "root_cause_node": rc["node"], "target": tgt,
                 "mechanism": _mechanism(command), "injection": command,
                 "baseline_hours": baseline_hours, "converted_by": "benchmarks/realdata.py"},
    }
    (path / "bundle.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (path / "incident.json").write_text(json.dumps(incident_payload(issue), indent=1) + "\n")
    (path / "metrics.om").write_text(openmetrics_text(times, columns, rows, views, scenario.edges))
    (path / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return path


def convert_all(root: str | Path, out_dir: str | Path, limit: int | None = None, baseline_hours: float = 3.0,
                only: list[str] | None = None) -> list[Path]:
    """Convert every labelled issue (or those whose key is in ``only``; the first ``limit``
    in a stable order) to bundles."""
    paths = []
    for sc in load_dataset(root):
        for issue in sc.issues:
            if limit is not None and len(paths) >= limit:
                return paths
            if only is not None and issue.key not in only:
                continue
            paths.append(convert_issue(sc, issue, out_dir, baseline_hours))
    if only is not None and len(paths) < len(set(only)):
        missing = sorted(set(only) - {p.name for p in paths})
        raise PetshopError(f"no such issue: {', '.join(missing)} (keys look like high_traffic-test-issue_0)")
    return paths


# ----------------------------------------------------------------------------- baseline

def _is_counter(name: str, types: dict[str, str]) -> bool:
    family = next((name[: -len(sfx)] for sfx in ("_total", "_count", "_sum", "_bucket") if name.endswith(sfx)), name)
    return types.get(name) == "counter" or types.get(family) == "counter" or name.endswith("_total") or (
        types.get(family) in ("summary", "histogram") and name != family)


def baro_ranking(bundle: str | Path) -> list[tuple[str, float]]:
    """A BARO-like ranking of the bundle's services (FSE'24, simplified): for every series,
    the largest robust z-score |x - median| / IQR of the samples from the alert on, against
    the samples before it (IQR 0 counts as 1, as BARO's RobustScaler does); a service scores
    the largest of its series. A counter is read as its rate between samples. Services named
    by the bundle's service labels."""
    import numpy as np

    from compass_tui.telemetry.bundle_reader import parse_openmetrics

    p = Path(bundle)
    incident = json.loads((p / "incident.json").read_text())
    alert_t = datetime.fromisoformat(incident["alerts"][0]["startsAt"].replace("Z", "+00:00")).timestamp()
    md = parse_openmetrics((p / "metrics.om").read_bytes())
    best: dict[str, float] = {}
    for sid, labels in enumerate(md.labels):
        svc = next((labels[k] for k in ("service", "service_name", "job", "app", "container", "name") if k in labels), None)
        if svc is None and "pod" in labels:  # a Deployment's pod: its name without the hashes
            svc = re.sub(r"-(?:[a-z0-9]{6,10}-[a-z0-9]{5}|[a-z0-9]{5}|\d+)$", "", labels["pod"])
        if svc is None:
            continue
        lo, hi = int(md.offsets[sid]), int(md.offsets[sid + 1])
        t, v = md.t[lo:hi], md.v[lo:hi]
        if _is_counter(labels["__name__"], md.types):  # a counter's rate, as BARO reads counters
            if len(t) < 3:
                continue
            v = np.maximum(np.diff(v), 0.0) / np.maximum(np.diff(t), 1e-9)
            t = t[1:]
        pre, post = v[t < alert_t], v[t >= alert_t]
        if len(pre) < 2 or len(post) == 0:
            continue
        q1, med, q3 = statistics.quantiles(pre.tolist(), n=4, method="inclusive")
        med = statistics.median(pre.tolist())
        iqr = (q3 - q1) or 1.0
        score = float(max(abs(x - med) for x in post.tolist()) / iqr)
        best[svc] = max(best.get(svc, 0.0), score)
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))


# ----------------------------------------------------------------------------- running

def ranked_services(services: list[str]) -> list[str]:
    """Services in rank order, each once."""
    seen: list[str] = []
    for s in services:
        if s and s not in seen:
            seen.append(s)
    return seen


def investigate_bundle(bundle: str | Path) -> dict:
    """Investigate one bundle in-process as ``compass investigate --bundle B --json`` does;
    returns the report's JSON dict and the wall time (bundle load plus engine)."""
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.telemetry.bundle import open_bundle

    t0 = time.perf_counter()
    backend = open_bundle(bundle)
    try:
        req = request_from_bundle_meta(backend.manifest, backend.incident)
        report = asyncio.run(run_to_report(req, EngineDeps(backend=backend)))
    finally:
        try:
            asyncio.run(backend.aclose())
        except Exception:
            pass
    return {"report": report.to_json_dict(), "wall_s": time.perf_counter() - t0}


def evaluate_bundle(bundle: str | Path) -> dict:
    """COMPASS and the baseline on one bundle, scored against its truth.json."""
    p = Path(bundle)
    truth = json.loads((p / "truth.json").read_text())
    want = truth["culprit"]["service"]
    row: dict = {"issue": p.name, "truth": want, "root_cause_node": truth.get("meta", {}).get("root_cause_node"),
                 "fault_truth": truth["culprit"].get("fault")}
    try:
        res = investigate_bundle(p)
        hyps = res["report"].get("hypotheses") or []
        row["compass"] = ranked_services([h.get("service") for h in hyps])
        row["hypotheses"] = [f"{h.get('fault')}@{h.get('service')}" for h in hyps[:5]]
        row["wall_s"] = res["wall_s"]
        row["error"] = None
    except Exception as e:  # a crash is a result to report, not the end of the run
        row["compass"], row["hypotheses"], row["wall_s"] = [], [], None
        row["error"] = f"{type(e).__name__}: {e}"
    t0 = time.perf_counter()
    base = baro_ranking(p)
    row["baseline"] = [s for s, _ in base]
    row["baseline_s"] = time.perf_counter() - t0
    for who in ("compass", "baseline"):
        ranked = row[who]
        row[f"{who}_rank"] = ranked.index(want) + 1 if want in ranked else None
    row["fault_top1"] = row["hypotheses"][:1] == [f"{row['fault_truth']}@{want}"]
    return row


def run_all(bundles: list[Path], jobs: int = 1) -> list[dict]:
    """evaluate_bundle on every bundle, ``jobs`` at a time."""
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as ex:
            return list(ex.map(evaluate_bundle, bundles))
    return [evaluate_bundle(b) for b in bundles]


def summarise(rows: list[dict]) -> dict:
    """Top-1/top-3 for COMPASS and the baseline, counts and timings."""
    n = len(rows)

    def top(who: str, k: int) -> int:
        return sum(1 for r in rows if r[f"{who}_rank"] is not None and r[f"{who}_rank"] <= k)

    walls = [r["wall_s"] for r in rows if r["wall_s"] is not None]
    return {
        "bundles": n,
        "answered": sum(1 for r in rows if r["error"] is None),
        "with_hypotheses": sum(1 for r in rows if r["compass"]),
        "crashed": [{"issue": r["issue"], "error": r["error"]} for r in rows if r["error"]],
        "compass": {"top1": top("compass", 1), "top3": top("compass", 3),
                    "absent": sum(1 for r in rows if r["compass_rank"] is None),
                    "fault_top1": sum(1 for r in rows if r["fault_top1"])},
        "baseline": {"top1": top("baseline", 1), "top3": top("baseline", 3)},
        "median_investigation_s": statistics.median(walls) if walls else None,
        "max_investigation_s": max(walls) if walls else None,
    }


def table(rows: list[dict], summary: dict, dataset: str = "PetShop") -> str:
    """The per-issue table and the summary line."""
    def short(xs: list[str]) -> str:
        return ", ".join(xs[:3]) or "-"

    lines = [f"{'issue':34} {'true culprit':20} {'COMPASS top-3':52} {'baseline top-3'}"]
    for r in rows:
        mark = lambda who: "*" if r[f"{who}_rank"] == 1 else ("+" if r[f"{who}_rank"] and r[f"{who}_rank"] <= 3 else " ")
        comp = short(r["compass"]) if r["error"] is None else f"CRASH {r['error'][:44]}"
        lines.append(f"{r['issue']:34} {r['truth']:20} {mark('compass')}{comp[:51]:51} {mark('baseline')}{short(r['baseline'])}")
    n = summary["bundles"] or 1
    c, b = summary["compass"], summary["baseline"]
    med = summary["median_investigation_s"]
    lines.append("(* culprit first, + culprit in the top 3)")
    lines.append(
        f"{dataset} {summary['bundles']} bundles, answered {summary['answered']}/{summary['bundles']} "
        f"({summary['with_hypotheses']} with hypotheses): COMPASS top-1 {c['top1']}/{n} ({c['top1'] / n:.2f}) "
        f"top-3 {c['top3']}/{n} ({c['top3'] / n:.2f}), culprit absent {c['absent']}; "
        f"baseline top-1 {b['top1']}/{n} ({b['top1'] / n:.2f}) top-3 {b['top3']}/{n} ({b['top3'] / n:.2f}); "
        f"median investigation {med:.2f} s" if med is not None else "no investigation finished")
    return "\n".join(lines)


def run_args(ap: argparse.ArgumentParser) -> None:
    """The options every real-data benchmark takes after its own."""
    ap.add_argument("--convert-only", action="store_true", help="write the bundles (needs --out) and stop")
    ap.add_argument("--jobs", type=int, default=1, help="investigations in parallel (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run_benchmark(a: argparse.Namespace, name: str, convert, errors: tuple, dataset: str, source: str,
                  meta: dict, fault_line: bool = False) -> int:
    """What every real-data benchmark does once its options are read: ``convert(out)`` into
    ``--out`` (or a temporary folder), stop there with ``--convert-only``, else investigate every
    bundle and print the table (and, with ``fault_line``, how often fault and service were both
    first) or one JSON object holding ``meta``. A conversion error in ``errors`` is one line."""
    if a.convert_only and not a.out:
        print(f"{name}: --convert-only needs --out DIR", file=sys.stderr)
        return 2
    with (tempfile.TemporaryDirectory(prefix=f"{name}-bundles-") if a.out is None else contextlib.nullcontext(a.out)) as out:
        try:
            bundles = convert(out)
        except errors as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 2
        if a.convert_only:
            print("\n".join(str(b) for b in bundles))
            return 0
        rows = run_all(bundles, a.jobs)
        summary = summarise(rows)
        if a.json:
            print(json.dumps({"format": "compass-realdata/1", "dataset": source, **meta, "summary": summary,
                              "issues": rows}, indent=1))
        else:
            print(table(rows, summary, dataset))
            if fault_line:
                print(f"fault and service first: {summary['compass']['fault_top1']}/{len(rows)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Convert, investigate, compare; prints the table or, with --json, one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="local copy of the PetShop data set (repository root or its dataset/ folder)")
    ap.add_argument("--out", default=None, help="write the bundles here and keep them (default: a temporary folder)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N issues")
    ap.add_argument("--baseline-hours", type=float, default=3.0, help="hours of recording before each issue (default 3)")
    ap.add_argument("--issues", default=None, help="only these issues, comma-separated keys (high_traffic-test-issue_0,...)")
    run_args(ap)
    a = ap.parse_args(argv)
    only = [k for k in a.issues.split(",") if k] if a.issues else None
    return run_benchmark(a, "realdata", lambda out: convert_all(a.path, out, a.limit, a.baseline_hours, only),
                         (PetshopError, OSError, ValueError, KeyError), "PetShop", SOURCE,
                         {"baseline_hours": a.baseline_hours})


if __name__ == "__main__":
    sys.exit(main())

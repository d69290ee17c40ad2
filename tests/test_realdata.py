"""The PetShop converter of benchmarks/realdata.py and the bundles it made.

The committed fixtures (tests/fixtures/petshop, CC-BY-4.0, see its README) must load with the
bundle loader, backfill into Prometheus with promtool, and be investigated to a report. Whether
the engine names the right culprit on them is the benchmark's business, not these tests'.
The converter itself is tested on a small data set in the PetShop layout written here.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "petshop").glob("*.tar.gz"))


def _realdata():
    spec = importlib.util.spec_from_file_location("realdata", ROOT / "benchmarks" / "realdata.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["realdata"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


rd = _realdata()


def _investigate(path):
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.telemetry.bundle import open_bundle

    backend = open_bundle(path)
    req = request_from_bundle_meta(backend.manifest, backend.incident)
    report = asyncio.run(run_to_report(req, EngineDeps(backend=backend)))
    asyncio.run(backend.aclose())
    return backend, req, report


def test_fixtures_are_committed_with_attribution():
    assert 3 <= len(FIXTURES) <= 5
    assert sum(f.stat().st_size for f in FIXTURES) < 400_000
    readme = (ROOT / "tests" / "fixtures" / "petshop" / "README.md").read_text()
    assert "CC-BY-4.0" in readme and "amazon-science/petshop-root-cause-analysis" in readme


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name.removesuffix(".tar.gz"))
def test_fixture_loads_and_is_investigated(fixture):
    from compass_tui.telemetry.bundle_reader import parse_openmetrics

    backend, req, report = _investigate(fixture)
    with tarfile.open(fixture) as tar:
        name = fixture.name.removesuffix(".tar.gz")
        truth = json.load(tar.extractfile(f"{name}/truth.json"))
        incident = json.load(tar.extractfile(f"{name}/incident.json"))
        om = tar.extractfile(f"{name}/metrics.om").read()
    md = parse_openmetrics(om)
    assert not md.warnings
    services = {lab.get("service") for lab in md.labels}
    # The alert is on the data set's target service, the culprit is a service of the bundle.
    assert req.service == "PetSite" == incident["alerts"][0]["labels"]["service"]
    assert truth["culprit"]["service"] in services | {lab.get("server_address") for lab in md.labels}
    assert truth["culprit"]["fault"] == "other:petshop"
    # The alert fires inside the window, after some baseline.
    assert req.window_start < req.started_at < req.window_end
    assert md.t.min() < req.started_at
    body = report.to_json_dict()
    assert body["format"] == "compass-investigation/1"
    assert isinstance(body["hypotheses"], list)
    assert body["incident"]["service"] == "PetSite"


@pytest.mark.parametrize("fixture", FIXTURES[:2], ids=lambda p: p.name.removesuffix(".tar.gz"))
def test_fixture_backfills_into_prometheus(fixture, tmp_path):
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    with tarfile.open(fixture) as tar:
        tar.extractall(tmp_path, filter="data")
    om = next(tmp_path.glob("*/metrics.om"))
    res = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ----------------------------------------------------------------------------- the converter

NODES = ["Front", "Api_AWS::ECS::Fargate", "Table_AWS::DynamoDB::Table", "db.example.com_remote", "Api_client"]
EDGES = [("Front", "Api_AWS::ECS::Fargate"), ("Api_AWS::ECS::Fargate", "Table_AWS::DynamoDB::Table"),
         ("Front", "Table_AWS::DynamoDB::Table"), ("Api_AWS::ECS::Fargate", "db.example.com_remote"),
         ("Api_client", "Api_AWS::ECS::Fargate")]
STATS = [("latency", "Average"), ("latency", "p99"), ("requests", "Sum"), ("availability", "Average")]


def _write_issue(d: Path, t0: int, target_t: int, culprit: str, bad: str | None, metric: str = "latency"):
    d.mkdir(parents=True)
    cols = [(n, m, s) for n in NODES for m, s in STATS]
    with (d / "metrics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["microservice"] + [c[0] for c in cols])
        w.writerow(["metric"] + [c[1] for c in cols])
        w.writerow(["statistic"] + [c[2] for c in cols])
        w.writerow(["unix_timestamp"] + [""] * len(cols))
        for k in range(5):
            t = t0 + 300 * k
            row = []
            for n, m, s in cols:
                v = {"latency": 0.05 + 0.001 * (k % 2), "requests": 600.0 + k, "availability": 100.0}[m]
                if n == bad and t >= target_t and m == "latency":
                    v *= 20
                row.append("" if (n == "db.example.com_remote" and k == 0) else repr(v))
            w.writerow([f"{t}.0"] + row)
    (d / "target.json").write_text(json.dumps({
        "target": {"node": "Front", "metric": metric, "agg": "Average", "timestamp": target_t},
        "root_cause": {"node": culprit, "metric": None},
        "metadata": {"reproducibility": {"command": "aws ssm put-parameter --name '/x' --value '1'"}}}))


@pytest.fixture()
def tiny_dataset(tmp_path):
    sc = tmp_path / "dataset" / "low_traffic"
    sc.mkdir(parents=True)
    with (sc / "graph.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + NODES)
        for a in NODES:
            w.writerow([a] + ["1.0" if (a, b) in EDGES else "0.0" for b in NODES])
    base = 1_700_000_000
    # Two issues 30 minutes apart (the earlier one inside the later one's baseline), one 10 h later.
    _write_issue(sc / "train" / "issue_0", base, base + 500, "Api_AWS::ECS::Fargate", "Api_AWS::ECS::Fargate")
    _write_issue(sc / "test" / "issue_0", base + 1800, base + 2300, "Table_AWS::DynamoDB::Table",
                 "Table_AWS::DynamoDB::Table", metric="availability")
    _write_issue(sc / "test" / "issue_1", base + 36000, base + 36500, "Api_AWS::ECS::Fargate", None)
    return tmp_path


def test_split_node_names_services_as_xray_does():
    assert rd.split_node("payforadoption_AWS::ECS::Container") == ("payforadoption", "AWS::ECS::Container")
    assert rd.split_node("lambdastatusupdater_AWS::Lambda") == ("lambdastatusupdater", "AWS::Lambda")
    assert rd.split_node("adoptions@db.example.com_Database::SQL") == ("adoptions@db.example.com", "Database::SQL")
    assert rd.split_node("servi-searc.elb.amazonaws.com_remote") == ("servi-searc.elb.amazonaws.com", "remote")
    assert rd.split_node("PetSearch_client") == ("PetSearch", "client")
    assert rd.split_node("PetSite") == ("PetSite", "service")
    assert rd.culprit_service("petInfo_AWS::DynamoDB::Table") == "petInfo"


def test_node_views_put_single_caller_nodes_on_the_caller():
    views = rd.node_views(EDGES, NODES)
    # A remote endpoint with one caller is that caller's client-side view of it.
    assert views["db.example.com_remote"].family_prefix == "client_"
    assert views["db.example.com_remote"].labels == {"service": "Api", "server_address": "db.example.com",
                                                      "server_type": "remote"}
    # Two callers: one aggregate that cannot be split, so the node is a service of its own.
    assert views["Table_AWS::DynamoDB::Table"].labels == {"service": "Table", "node_type": "AWS::DynamoDB::Table"}
    # An instrumented service keeps its own server-side series even with one caller.
    assert views["Api_AWS::ECS::Fargate"].family_prefix == ""
    assert views["Api_client"].labels["service"] == "client"
    assert views["Api_client"].labels["server_address"] == "Api"


def test_convert_writes_a_valid_bundle_with_earlier_recording_as_baseline(tiny_dataset, tmp_path):
    from compass_tui.telemetry.bundle_reader import parse_openmetrics

    out = tmp_path / "bundles"
    paths = rd.convert_all(tiny_dataset, out)
    assert sorted(p.name for p in paths) == ["low_traffic-test-issue_0", "low_traffic-test-issue_1",
                                              "low_traffic-train-issue_0"]
    b = out / "low_traffic-test-issue_0"
    text = (b / "metrics.om").read_text()
    assert text.endswith("# EOF\n")
    md = parse_openmetrics(text.encode())
    base = 1_700_000_000
    # Baseline: the earlier window (30 min before) is in, the later issue's window is not.
    assert md.t.min() == base and md.t.max() == base + 1800 + 1200
    names = {lab["__name__"] for lab in md.labels}
    assert names == {"request_latency_seconds", "requests_per_second", "request_availability_ratio",
                     "client_request_latency_seconds", "client_requests_per_second",
                     "client_request_availability_ratio",
                     "traces_service_graph_request_total"}
    # Service-graph counters only where the callee's own counts are all one caller's calls:
    # Front -> Api (the client node is not a service); Table has two callers, so no edge.
    edges = [(i, lab) for i, lab in enumerate(md.labels) if lab["__name__"] == "traces_service_graph_request_total"]
    assert [(lab["client"], lab["server"]) for _, lab in edges] == [("Front", "Api")]
    i = edges[0][0]
    assert list(md.v[md.offsets[i]:md.offsets[i] + 2]) == pytest.approx([600.0, 1201.0])
    lat = [lab for lab in md.labels if lab["__name__"] == "client_request_latency_seconds"]
    assert {(lab["service"], lab["server_address"]) for lab in lat} == {("Api", "db.example.com"), ("client", "Api")}
    rps = next(i for i, lab in enumerate(md.labels) if lab["__name__"] == "requests_per_second" and lab["service"] == "Front")
    assert md.v[md.offsets[rps]] == pytest.approx(600.0 / 300)
    avail = next(i for i, lab in enumerate(md.labels) if lab["__name__"] == "request_availability_ratio")
    assert md.v[md.offsets[avail]] == pytest.approx(1.0)
    incident = json.loads((b / "incident.json").read_text())
    assert incident["version"] == "4"
    alert = incident["alerts"][0]
    assert alert["labels"] == {"alertname": "LowAvailability", "service": "Front", "severity": "critical"}
    assert alert["startsAt"] == "2023-11-14T22:51:40Z"  # base + 2300
    truth = json.loads((b / "truth.json").read_text())
    assert truth["culprit"] == {"service": "Table", "fault": "other:petshop"}
    assert truth["meta"]["mechanism"].startswith("feature-flag")
    manifest = json.loads((b / "bundle.json").read_text())
    assert manifest["format"] == "compass-bundle/1" and manifest["step_seconds"] == 300
    # The far issue has no recording within three hours: only its own window.
    far = parse_openmetrics((out / "low_traffic-test-issue_1" / "metrics.om").read_bytes())
    assert far.t.min() == base + 36000


def test_baseline_ranks_the_service_that_jumped_after_the_alert(tiny_dataset, tmp_path):
    out = tmp_path / "bundles"
    rd.convert_all(tiny_dataset, out, baseline_hours=0.1)
    ranking = rd.baro_ranking(out / "low_traffic-train-issue_0")
    assert ranking[0][0] == "Api"
    assert ranking[0][1] > 100 * max(s for svc, s in ranking[1:] if svc != "client")


def test_benchmark_runs_end_to_end(tiny_dataset, capsys):
    assert rd.main([str(tiny_dataset), "--json", "--limit", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    s = out["summary"]
    assert s["bundles"] == 2 and s["answered"] == 2 and not s["crashed"]
    assert out["issues"][0]["baseline"][0] == "Api"
    assert out["issues"][0]["baseline_rank"] == 1
    assert s["baseline"]["top1"] >= 1
    assert s["median_investigation_s"] is not None
    assert rd.main([str(tiny_dataset / "nowhere")]) == 2
    assert "no PetShop scenario" in capsys.readouterr().err

"""The incident simulator: determinism, file formats, fault physics and options."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from compass_tui.sim import FAULTS, SimOptions, generate, write_bundle
from compass_tui.sim.__main__ import main as sim_main
from compass_tui.sim.writer import render_files

SMALL = SimOptions(services=8, step=60)
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+) (\d+(?:\.\d+)?)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "unknown": ("",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("", "_sum", "_count")}


def parse_om(text: str) -> dict[str, list[tuple[float, float]]]:
    """Strict-enough OpenMetrics check; returns series → [(t, v)]. Raises AssertionError on a violation."""
    lines = text.splitlines()
    assert lines[-1] == "# EOF", "metrics.om must end with # EOF"
    series: dict[str, list[tuple[float, float]]] = {}
    families: dict[str, str] = {}
    current: tuple[str, str] | None = None
    last_key = None
    for no, line in enumerate(lines[:-1], 1):
        if line.startswith("# TYPE "):
            _, _, fam, mtype = line.split(" ")
            assert fam not in families, f"line {no}: family {fam} declared twice"
            assert mtype in _SUFFIXES, f"line {no}: unknown type {mtype}"
            families[fam] = mtype
            current = (fam, mtype)
            continue
        assert not line.startswith("#"), f"line {no}: unexpected comment {line!r}"
        m = _SAMPLE.match(line)
        assert m, f"line {no}: not a sample line: {line!r}"
        name, labels, value, ts = m.groups()
        assert current is not None, f"line {no}: sample before any # TYPE"
        fam, mtype = current
        assert any(name == fam + s for s in _SUFFIXES[mtype]), f"line {no}: {name} does not belong to {mtype} {fam}"
        v = float(value)
        key = name + (labels or "")
        if labels:
            names = [k for k, _ in _LABEL.findall(labels)]
            assert len(names) == len(set(names)), f"line {no}: duplicate label name"
        if key != last_key:
            assert key not in series, f"line {no}: series {key} is not contiguous"
            series[key] = []
            last_key = key
        pts = series[key]
        assert not pts or float(ts) > pts[-1][0], f"line {no}: timestamps of {key} not increasing"
        if mtype == "counter" or name.endswith(("_bucket", "_count")):
            assert v >= 0, f"line {no}: negative counter"
        pts.append((float(ts), v))
    return series


def labels_of(key: str) -> dict[str, str]:
    """Label dict of a series key."""
    return dict(_LABEL.findall(key[key.index("{"):])) if "{" in key else {}


@pytest.fixture(scope="module")
def small_bundles() -> dict[str, dict[str, bytes]]:
    """Every fault rendered once on a small system."""
    return {f: render_files(generate(f, 11, SMALL)) for f in FAULTS}


def test_catalog_has_thirteen_faults():
    assert len(FAULTS) == 13 and len(set(FAULTS)) == 13
    assert "db_connection_pool_exhaustion" in FAULTS and "dns_failure" in FAULTS


@pytest.mark.parametrize("fault", FAULTS)
def test_generation_is_deterministic(fault, small_bundles):
    again = render_files(generate(fault, 11, SMALL))
    assert again.keys() == small_bundles[fault].keys()
    for name, data in again.items():
        assert data == small_bundles[fault][name], f"{fault}: {name} differs between two runs"


def test_different_seeds_give_different_systems():
    a, b = generate("bad_deploy", 1), generate("bad_deploy", 2)
    assert set(a.topo.services) != set(b.topo.services) or a.style != b.style


@pytest.mark.parametrize("fault", FAULTS)
def test_bundle_files_parse_and_truth_matches(fault, small_bundles):
    files = small_bundles[fault]
    manifest = json.loads(files["bundle.json"])
    assert manifest["format"] == "compass-bundle/1" and manifest["step_seconds"] == 60
    start = datetime.fromisoformat(manifest["window"]["start"].replace("Z", "+00:00")).timestamp()
    end = datetime.fromisoformat(manifest["window"]["end"].replace("Z", "+00:00")).timestamp()
    truth = json.loads(files["truth.json"])
    assert truth["culprit"]["fault"] == fault and truth["culprit"]["service"]
    meta = truth["meta"]
    assert set(meta["files"]) == set(files) - {"truth.json"}
    onset = datetime.fromisoformat(meta["onset"].replace("Z", "+00:00")).timestamp()
    assert 0.5 <= (onset - start) / (end - start) <= 0.9
    alert = json.loads(files["incident.json"])
    assert alert["version"] == "4" and alert["alerts"]
    fired = datetime.fromisoformat(alert["alerts"][0]["startsAt"].replace("Z", "+00:00")).timestamp()
    assert onset < fired <= end
    assert meta["alerted"] in alert["alerts"][0]["labels"].values()

    series = parse_om(files["metrics.om"].decode())
    assert len(series) > 50
    for pts in series.values():
        assert all(start <= t <= end for t, _ in pts)
    if "logs.json" in files:
        logs = json.loads(files["logs.json"])
        assert logs["streams"]
        for s in logs["streams"]:
            assert isinstance(s["stream"], dict) and s["values"]
            ts = [int(v[0]) for v in s["values"]]
            assert ts == sorted(ts) and all(isinstance(v[1], str) for v in s["values"])
            assert start * 1e9 <= ts[0] and ts[-1] <= end * 1e9 + 60e9
    if "traces.json" in files:
        traces = json.loads(files["traces.json"])
        assert traces["resourceSpans"]
        ids = set()
        for rs in traces["resourceSpans"]:
            keys = {a["key"] for a in rs["resource"]["attributes"]}
            assert "service.name" in keys
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    assert len(sp["traceId"]) == 32 and len(sp["spanId"]) == 16
                    assert int(sp["endTimeUnixNano"]) >= int(sp["startTimeUnixNano"])
                    assert sp["kind"] in (2, 3) and sp["status"]["code"] in (0, 2)
                    ids.add(sp["spanId"])
    if "annotations.json" in files:
        for a in json.loads(files["annotations.json"]):
            assert a["timeEnd"] >= a["time"] and any(t.startswith("service:") for t in a["tags"])


def _values(series, name, **want):
    return [pts for key, pts in series.items()
            if key.split("{")[0] == name and all(labels_of(key).get(k) == v for k, v in want.items())]


def test_pool_exhaustion_fills_the_culprits_pool_while_the_database_stays_fast():
    inc = generate("db_connection_pool_exhaustion", 5, SimOptions(services=12, step=30))
    m, c = inc.model, inc.culprit
    db = inc.fault_params["db"]
    edge = next(e for e in inc.topo.out_edges(c) if e.callee == db)
    i = m.eid(edge)
    o = inc.onset
    assert m.pool_active[i][o + 3:].mean() >= 0.95 * m.pool_max_total[i]
    assert m.pool_active[i][: o - 20].mean() < 0.9 * m.pool_max_total[i]
    assert m.pool_pending[i][o + 3:].mean() > 0
    assert m.db_lat[db][o + 3:].mean() < 1.5 * m.db_lat[db][: o - 5].mean()
    files = render_files(inc)
    logs = files.get("logs.json", b"").decode()
    assert "Connection is not available" in logs or "acquir" in logs or "timeout waiting for a free connection" in logs or "QueuePool limit" in logs


def test_db_slow_queries_slows_every_client_of_the_database():
    inc = generate("db_slow_queries", 4, SimOptions(services=14, step=30))
    m, db, o = inc.model, inc.culprit, inc.onset
    assert inc.topo.services[db].kind in ("postgres", "mysql")
    assert m.db_lat[db][o + 3:].mean() > 2.5 * m.db_lat[db][: o - 5].mean()
    for e in inc.topo.in_edges(db):
        assert m.edge_lat[m.eid(e)][o + 3:].mean() > 1.5 * m.edge_lat[m.eid(e)][: o - 5].mean()


def test_certificate_expiry_passes_at_onset_and_callers_fail_handshakes():
    inc = generate("certificate_expired", 2, SimOptions(services=10, step=30))
    expiry = inc.model.cert_expiry[inc.culprit]
    assert inc.start < expiry <= inc.onset_time
    logs = render_files(inc).get("logs.json", b"").decode()
    assert "certificate has expired" in logs or "CertificateExpiredException" in logs


def test_dns_failure_names_the_dns_service_and_raises_servfail():
    inc = generate("dns_failure", 6, SimOptions(services=10, step=30, scheme="job"))
    assert inc.culprit == inc.topo.dns
    series = parse_om(render_files(inc)["metrics.om"].decode())
    bad = [pts for key, pts in series.items() if key.startswith("coredns_dns_responses_total")
           and labels_of(key).get("rcode") in ("SERVFAIL", "NXDOMAIN")]
    assert bad and all(labels_of(k).get("job") == inc.culprit for k in series if k.startswith("coredns_dns_responses_total"))
    onset = inc.onset_time
    before = sum(_rate(p, inc.start, onset - 300) for p in bad)
    after = sum(_rate(p, onset + 120, inc.end) for p in bad)
    assert after > 3 * before


def _rate(pts, t0, t1):
    sel = [(t, v) for t, v in pts if t0 <= t <= t1]
    return (sel[-1][1] - sel[0][1]) / max(1.0, sel[-1][0] - sel[0][0]) if len(sel) > 1 else 0.0


def test_external_dependency_culprit_is_the_name_callers_use():
    inc = generate("external_dependency_failure", 3, SimOptions(services=12, step=30))
    ext = inc.culprit
    assert inc.topo.services[ext].kind == "external"
    files = render_files(inc)
    assert f'"{ext}"' in files["metrics.om"].decode() or ext in files.get("traces.json", b"").decode()


def test_traffic_surge_raises_the_culprits_request_rate():
    inc = generate("traffic_surge", 8, SimOptions(services=10, step=30))
    rps, o = inc.model.rps[inc.culprit], inc.onset
    assert rps[o + 8:].mean() > 1.4 * rps[: o - 5].mean()


def test_memory_leak_grows_then_restarts():
    inc = generate("memory_leak", 9, SimOptions(services=10, step=30))
    pods = inc.model.pods[inc.culprit]
    assert any(p.restarts for p in pods)
    assert any(e.kind == "restart" and e.data.get("reason") == "OOMKilled" for e in inc.model.events)


@pytest.mark.parametrize("scheme", ["service", "service_name", "job", "app", "container"])
def test_scheme_option_names_services_with_that_label(scheme):
    inc = generate("cpu_saturation", 21, SimOptions(services=8, step=60, scheme=scheme))
    series = parse_om(render_files(inc)["metrics.om"].decode())
    apps = set(inc.topo.apps())
    up = [labels_of(k) for k in series if k.startswith("up{")]
    named = {lab.get(scheme) for lab in up}
    assert apps <= named
    assert json.loads(render_files(inc)["truth.json"])["meta"]["service_label"] == scheme


def test_services_and_step_options_are_honoured():
    inc = generate("cache_failure", 4, SimOptions(services=40, step=45))
    assert len(inc.topo.services) == 40
    assert inc.model.step == 45
    assert json.loads(render_files(inc)["bundle.json"])["step_seconds"] == 45


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown fault"):
        generate("cosmic_rays", 1)
    with pytest.raises(ValueError, match="scheme"):
        generate("bad_deploy", 1, SimOptions(scheme="labelz"))
    with pytest.raises(ValueError, match="services"):
        generate("bad_deploy", 1, SimOptions(services=2))


def test_write_bundle_as_directory_and_tarball(tmp_path):
    inc = generate("bad_deploy", 12, SMALL)
    d = write_bundle(inc, tmp_path / "b")
    assert (d / "bundle.json").is_file() and (d / "truth.json").is_file() and (d / "metrics.om").is_file()
    tgz = write_bundle(inc, tmp_path / "b.tar.gz")
    with tarfile.open(tgz) as tar:
        names = tar.getnames()
    assert "b/bundle.json" in names and "b/metrics.om" in names
    assert (d / "metrics.om").read_bytes() == _extract(tgz, "b/metrics.om")


def _extract(tgz: Path, name: str) -> bytes:
    with tarfile.open(tgz) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_cli_writes_a_bundle_and_rejects_bad_input(tmp_path, capsys):
    assert sim_main(["--fault", "disk_full", "--seed", "3", "--services", "8", "--step", "60",
                     "--out", str(tmp_path / "x.tar.gz")]) == 0
    assert (tmp_path / "x.tar.gz").is_file()
    assert sim_main(["--seed", "3", "--out", str(tmp_path / "y")]) == 2
    assert "--fault is required" in capsys.readouterr().err
    assert sim_main(["--fault", "disk_full", "--services", "3", "--out", str(tmp_path / "z")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
@pytest.mark.parametrize("fault,scheme", [("db_connection_pool_exhaustion", "job"), ("network_degradation", "container")])
def test_promtool_loads_metrics_unchanged(tmp_path, fault, scheme):
    inc = generate(fault, 31, SimOptions(services=9, step=30, scheme=scheme))
    d = write_bundle(inc, tmp_path / "b")
    out = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(d / "metrics.om"), str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "data").iterdir()), "promtool wrote no block"


def test_demo_bundle_ships_and_is_small():
    demo = Path(__file__).resolve().parent.parent / "compass_tui" / "data" / "demo.tar.gz"
    assert demo.is_file() and demo.stat().st_size < 2 * 1024 * 1024
    with tarfile.open(demo) as tar:
        names = [n.split("/", 1)[-1] for n in tar.getnames()]
        top = tar.getnames()[0].split("/")[0]
        truth = json.loads(_extract(demo, f"{top}/truth.json"))
    assert {"bundle.json", "incident.json", "metrics.om"} <= set(names)
    assert truth["culprit"]["fault"] in FAULTS


def test_shipped_demo_matches_the_simulator(tmp_path):
    from compass_tui.sim.demo import DEMO_PATH, build_demo

    fresh = build_demo(tmp_path / "demo.tar.gz")
    with tarfile.open(DEMO_PATH) as old, tarfile.open(fresh) as new:
        assert old.getnames() == new.getnames()
        for name in new.getnames():
            if new.getmember(name).isfile():
                assert _extract(DEMO_PATH, name) == _extract(fresh, name), (
                    f"{name} is stale: regenerate with `python -m compass_tui.sim.demo`")


def test_large_fleet_stays_valid_and_bounded():
    inc = generate("traffic_surge", 13, SimOptions(services=120))
    files = render_files(inc)
    assert len(inc.topo.services) == 120
    series = parse_om(files["metrics.om"].decode())
    named = {labels_of(k).get(inc.style.scheme) for k in series if k.startswith("up{")}
    assert set(inc.topo.apps()) <= named
    assert sum(len(v) for v in files.values()) < 150e6

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

from compass_tui.sim import ALL_FAULTS, FAULTS, KNOB_RATES, SimOptions, generate, write_bundle
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
    return {f: render_files(generate(f, 11, SMALL)) for f in ALL_FAULTS}


def test_catalog_has_thirteen_faults_and_the_version_two_fault():
    assert len(FAULTS) == 13 and len(set(FAULTS)) == 13
    assert "db_connection_pool_exhaustion" in FAULTS and "dns_failure" in FAULTS
    assert ALL_FAULTS == FAULTS + ["code_defect"]


@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_generation_is_deterministic(fault, small_bundles):
    again = render_files(generate(fault, 11, SMALL))
    assert again.keys() == small_bundles[fault].keys()
    for name, data in again.items():
        assert data == small_bundles[fault][name], f"{fault}: {name} differs between two runs"


def test_different_seeds_give_different_systems():
    a, b = generate("bad_deploy", 1), generate("bad_deploy", 2)
    assert set(a.topo.services) != set(b.topo.services) or a.style != b.style


@pytest.mark.parametrize("fault", ALL_FAULTS)
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
    inc = generate("db_connection_pool_exhaustion", 5, SimOptions(services=12, step=30, realism="off"))
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
    assert sim_main(["--fault", "code_defect", "--seed", "3", "--services", "8", "--realism", "off",
                     "--force", "mem_step", "--out", str(tmp_path / "cd")]) == 0
    assert set(json.loads((tmp_path / "cd" / "truth.json").read_text())["meta"]["realism"]) == {"mem_step"}
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


def test_a_rollout_in_a_trimmed_fleet_keeps_the_service_in_view_from_the_start():
    """Fewer pods are written than run; a deploy replaces them. The written pods must still
    cover the whole window, or the service appears from nothing at the rollout."""
    inc = generate("db_slow_queries", 2, SimOptions(realism="off"))
    deploys = [d for d in inc.decoys if d["kind"] == "deploy_near_onset"]
    assert deploys, "this seed rolls out a bystander near the onset"
    svc = deploys[0]["svc"]
    series = parse_om(render_files(inc)["metrics.om"].decode())
    cpu = [pts for k, pts in series.items() if k.startswith("container_cpu_usage_seconds_total{")
           and labels_of(k).get("container") == svc]
    assert len(cpu) >= 2
    first = min(t for pts in cpu for t, _ in pts)
    assert first <= inc.start + inc.model.step


# ---------------------------------------------------------------------- realism knobs
_SERVER_FAMILIES = ("http_request_duration_seconds", "http_server_requests_seconds",
                    "http_server_request_duration_seconds", "grpc_server_handling_seconds")
_CLIENT_FAMILIES = ("http_client_request_duration_seconds", "http_client_requests_seconds")
_PEER_LABELS = ("server_address", "peer_service", "destination_service", "upstream", "host", "peer", "target",
                "client_name")


def _deltas(pts):
    """Per-step increases of a counter, a reset counted from zero."""
    return [(t1, v1 - v0 if v1 >= v0 else v1) for (_, v0), (t1, v1) in zip(pts, pts[1:])]


def _sum_by_t(lists):
    out: dict[float, float] = {}
    for pts in lists:
        for t, v in _deltas(pts):
            out[t] = out.get(t, 0.0) + v
    return out


def _mean_latency(series, select) -> list[tuple[float, float]]:
    """Mean latency per step (sum over count) of the series ``select(name, labels)`` keeps."""
    sums = [p for k, p in series.items() if k.endswith("_sum") is False and k.split("{")[0].endswith("_sum")
            and select(k.split("{")[0][:-4], labels_of(k))]
    counts = [p for k, p in series.items() if k.split("{")[0].endswith("_count") and select(k.split("{")[0][:-6], labels_of(k))]
    s, c = _sum_by_t(sums), _sum_by_t(counts)
    return sorted((t, s[t] / c[t]) for t in s if c.get(t, 0) > 0)


def _server_latency(series, inc, svc):
    lab = inc.style.scheme
    return _mean_latency(series, lambda fam, ls: fam in _SERVER_FAMILIES and ls.get(lab) == svc)


def _client_latency(series, inc, caller, callee):
    lab = inc.style.scheme
    return _mean_latency(series, lambda fam, ls: fam in _CLIENT_FAMILIES and ls.get(lab) == caller
                         and any(ls.get(p) == callee for p in _PEER_LABELS))


def _avg(pts, t0, t1):
    vals = [v for t, v in pts if t0 <= t < t1]
    assert vals, f"no points in [{t0}, {t1})"
    return sum(vals) / len(vals)


def _first(fault, pred, force=(), realism="off", **opts):
    """The first seed whose incident satisfies ``pred`` (the knobs' own parameters vary by seed)."""
    for seed in range(1, 40):
        inc = generate(fault, seed, SimOptions(realism=realism, force=force, **opts))
        if pred(inc):
            return inc
    raise AssertionError("no seed in 1..39 gives the wanted shape")


def test_knob_rates_and_modes():
    from compass_tui.sim.realism import draw_realism

    draws = [draw_realism("cpu_saturation", f"k{i}", "random") for i in range(600)]
    for knob, rate in KNOB_RATES.items():
        if knob in ("net_caller_view", "pod_culprit"):
            continue  # fault-specific
        share = sum(knob in d.on for d in draws) / len(draws)
        assert share >= rate * 0.6, f"{knob} on in {share:.2f} of scenarios, rate {rate}"
    assert not any(draw_realism("bad_deploy", f"k{i}", "off").on for i in range(50))
    assert all("real_like" in draw_realism("bad_deploy", f"k{i}", "real") for i in range(50))
    # Forcing a knob keeps every other knob as drawn.
    for i in range(50):
        base = draw_realism("code_defect", f"k{i}", "random")
        forced = draw_realism("code_defect", f"k{i}", "random", ("mem_step",))
        assert forced.on - {"mem_step"} == base.on - {"mem_step"}
    with pytest.raises(ValueError, match="realism"):
        generate("bad_deploy", 1, SimOptions(realism="sometimes"))
    with pytest.raises(ValueError, match="knob"):
        generate("bad_deploy", 1, SimOptions(force=("gremlins",)))


def test_clean_scenarios_record_no_knobs_and_knobs_are_recorded():
    clean = json.loads(render_files(generate("bad_deploy", 3, SimOptions(services=8, realism="off")))["truth.json"])
    assert "realism" not in clean["meta"]
    inc = generate("bad_deploy", 3, SimOptions(services=8, realism="off", force=("back_to_back", "noisy_entry")))
    meta = json.loads(render_files(inc)["truth.json"])["meta"]
    assert {"back_to_back", "noisy_entry"} <= set(meta["realism"])


def test_code_defect_starts_in_the_culprits_code_without_a_change():
    inc = _first("code_defect", lambda i: i.fault_params["variant"] in ("errors", "both")
                 and not {"logs", "annotations"} & i.style.missing, services=10, step=30)
    c = inc.culprit
    assert inc.topo.services[c].kind == "app"
    files = render_files(inc)
    # No deploy or config change of the culprit anywhere in the window.
    for a in json.loads(files["annotations.json"]):
        assert f"service:{c}" not in a["tags"] or "scale" in a["tags"], a
    assert not [e for e in inc.model.events if e.service == c and e.kind in ("deploy", "config")]
    # Its new exception template is absent before the onset and present after.
    tpl = inc.fault_params["template"]
    onset_ns = inc.onset_time * 1e9
    lines = [(int(t), line) for s in json.loads(files["logs.json"])["streams"] for t, line in s["values"]]
    assert not [ln for t, ln in lines if t < onset_ns and tpl in ln]
    assert [ln for t, ln in lines if t >= onset_ns and tpl in ln]
    # The culprit's own errors rise; its dependencies stay healthy.
    m, o = inc.model, inc.onset
    assert m.err[c][o + 4:].mean() > 3 * m.err[c][: o - 4].mean() + 0.01
    for e in inc.topo.out_edges(c):
        assert m.err[e.callee][o + 4:].mean() < m.err[e.callee][: o - 4].mean() + 0.01


def test_code_defect_latency_variant_slows_only_the_culprit_and_logs_a_new_warning():
    inc = _first("code_defect", lambda i: i.fault_params["variant"] == "latency" and "logs" not in i.style.missing,
                 services=10, step=30)
    c, m, o = inc.culprit, inc.model, inc.onset
    assert m.own_lat[c][o + 6:].mean() > 1.8 * m.own_lat[c][: o - 4].mean()
    assert m.util[c][o + 6:].mean() < 1.3 * m.util[c][: o - 4].mean() + 0.05  # resources healthy
    logs = json.loads(render_files(inc)["logs.json"])
    stem = inc.fault_params["warning"].split("{")[0][:25]
    onset_ns = inc.onset_time * 1e9
    hits = [int(t) for s in logs["streams"] for t, line in s["values"] if stem in line]
    assert hits and min(hits) >= onset_ns


@pytest.mark.parametrize("retransmits", [True, False])
def test_network_degradation_from_the_callers_view(retransmits):
    inc = _first("network_degradation", lambda i: i.fault_params["retransmits"] == retransmits,
                 force=("net_caller_view",), services=10, step=30)
    assert inc.fault_params["view"] == "caller"
    c = inc.culprit
    series = parse_om(render_files(inc)["metrics.om"].decode())
    t0, on, t1 = inc.start, inc.onset_time, inc.end
    own = _server_latency(series, inc, c)
    assert _avg(own, on + 300, t1) < 1.5 * _avg(own, t0, on - 120), "the culprit's own latency must stay flat"
    callers = sorted({e.caller for e in inc.topo.in_edges(c)})
    assert callers
    for caller in callers:
        view = _client_latency(series, inc, caller, c)
        assert view, f"no client latency series from {caller} with a peer label naming {c}"
        assert _avg(view, on + 300, t1) > 15 * _avg(view, t0, on - 120)
    retr = [k for k in series if k.startswith("node_netstat_Tcp_RetransSegs")]
    if retransmits:
        assert retr
    else:
        assert c not in inc.model.retrans or inc.model.retrans[c].max() < 0.05  # no retransmit rise


def test_back_to_back_burst_sits_in_the_baseline_and_recovers():
    inc = _first("bad_deploy", lambda i: i.realism_done.get("back_to_back", {}).get("kind") in ("latency", "both")
                 and i.realism_done["back_to_back"]["svc"] not in i.model.no_server,
                 force=("back_to_back",), services=10, step=30)
    b = inc.realism_done["back_to_back"]
    meta = json.loads(render_files(inc)["truth.json"])["meta"]["realism"]["back_to_back"]
    assert meta["svc"] == b["svc"]
    series = parse_om(render_files(inc)["metrics.om"].decode())
    lat = _server_latency(series, inc, b["svc"])
    start, end = b["start"], b["end"]
    assert end < inc.onset_time - 300, "the earlier incident ends well before this one"
    calm = _avg(lat, inc.start, start - 60)
    assert _avg(lat, start + 60, end - 30) > 2.5 * calm
    assert _avg(lat, end + 240, inc.onset_time - 60) < 1.6 * calm, "it recovered"


def test_low_traffic_services_are_quiet_and_their_counts_noisy():
    inc = _first("cpu_saturation", lambda i: i.realism.params.get("low_traffic") == "all",
                 force=("low_traffic",), services=10, step=30)
    series = parse_om(render_files(inc)["metrics.om"].decode())
    m = inc.model
    for e in inc.topo.entries:
        assert float(m.rps[e][: inc.onset].mean()) < 3.0
    quiet = [a for a in inc.topo.apps() if 0.05 < float(m.rps[a][: inc.onset].mean()) < 1.5]
    assert quiet
    # Counts are whole requests: per-step increases are integers and vary like Poisson samples.
    lab = inc.style.scheme
    entry = inc.topo.entries[0]
    counts = _sum_by_t([p for k, p in series.items() if k.split("{")[0].endswith("_count")
                        and k.split("{")[0][:-6] in _SERVER_FAMILIES and labels_of(k).get(lab) == entry])
    vals = [v for t, v in sorted(counts.items()) if t < inc.onset_time]
    assert all(float(v).is_integer() for v in vals)
    mean = sum(vals) / len(vals)
    sd = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
    assert sd > 0.5 * mean ** 0.5
    moves = json.loads(render_files(inc)["truth.json"])["meta"]["realism"]["low_traffic"]["moves"]
    assert {mv["kind"] for mv in moves} == {"tiny_surge", "tiny_cpu"}


def test_client_view_gives_every_call_a_client_latency_series_with_a_peer_label():
    inc = _first("db_slow_queries", lambda i: not i.realism.params["client_view"]["traces"],
                 force=("client_view",), services=12, step=60)
    files = render_files(inc)
    assert "traces.json" not in files
    series = parse_om(files["metrics.om"].decode())
    for e in inc.topo.edges:
        if e.kind == "rpc":
            assert _client_latency(series, inc, e.caller, e.callee), f"{e.caller} -> {e.callee}"


def test_noisy_entry_has_a_high_variance_baseline():
    def cv(inc):
        series = parse_om(render_files(inc)["metrics.om"].decode())
        lat = [v for t, v in _server_latency(series, inc, inc.topo.entries[0]) if t < inc.onset_time - 60]
        mean = sum(lat) / len(lat)
        return (sum((v - mean) ** 2 for v in lat) / len(lat)) ** 0.5 / mean

    opts = dict(services=8, step=30)
    clean = generate("memory_leak", 4, SimOptions(realism="off", **opts))
    noisy = generate("memory_leak", 4, SimOptions(realism="off", force=("noisy_entry",), **opts))
    assert cv(noisy) > 2 * cv(clean)


def test_missing_server_metrics_leave_the_client_view_and_resources():
    inc = _first("code_defect", lambda i: bool(i.model.no_server), force=("missing_server",), services=12, step=60)
    series = parse_om(render_files(inc)["metrics.om"].decode())
    lab = inc.style.scheme
    for svc in inc.model.no_server:
        assert not [k for k in series if k.split("{")[0].rsplit("_", 1)[0] in _SERVER_FAMILIES
                    and labels_of(k).get(lab) == svc], f"{svc} still has server-side series"
        assert [k for k in series if k.startswith(("container_cpu_usage_seconds_total", "process_cpu_seconds_total"))
                and svc in (labels_of(k).get(lab), labels_of(k).get("container"))]
        for e in inc.topo.in_edges(svc):
            if e.kind == "rpc":
                assert _client_latency(series, inc, e.caller, svc)
    assert json.loads(render_files(inc)["incident.json"])["alerts"][0]["labels"] and inc.alerted not in inc.model.no_server


@pytest.mark.parametrize("step", [60, 300])
def test_coarse_steps(step):
    inc = _first("traffic_surge", lambda i: i.realism.params["coarse_step"] == step, force=("coarse_step",), services=10)
    files = render_files(inc)
    assert json.loads(files["bundle.json"])["step_seconds"] == step
    assert inc.end - inc.start >= (3 * 3600 if step == 300 else 3600)
    series = parse_om(files["metrics.om"].decode())
    up = next(p for k, p in series.items() if k.startswith("up{"))
    assert {b[0] - a[0] for a, b in zip(up, up[1:])} == {step}


@pytest.mark.parametrize("limit", [True, False])
def test_stress_process_on_one_pod(limit):
    inc = _first("cpu_saturation", lambda i: i.fault_params["cpu_limit"] == limit, force=("pod_culprit",),
                 services=10, step=30)
    c, bad = inc.culprit, inc.fault_params["pod"]
    series = parse_om(render_files(inc)["metrics.om"].decode())
    cpu = {labels_of(k)["pod"]: p for k, p in series.items() if k.startswith("container_cpu_usage_seconds_total")
           and labels_of(k).get("container") == c}
    pods = sorted(cpu)  # big bundles show some pods of a service, always the bad one
    assert len(pods) >= 2 and bad in pods
    t0, on, t1 = inc.start, inc.onset_time, inc.end

    def rate(pts, a, b):
        d = [(t, v) for t, v in _deltas(pts) if a <= t < b]
        return sum(v for _, v in d) / (len(d) * inc.model.step)

    if limit:
        # Pinned at its CPU limit (the stress workers share the container's quota).
        assert rate(cpu[bad], on + 240, t1) > 0.9 * inc.model.cpu_limit_pod[c] * 0.995
        assert rate(cpu[bad], on + 240, t1) > 1.3 * rate(cpu[bad], t0, on - 300)
    else:
        assert rate(cpu[bad], on + 240, t1) > 5 * rate(cpu[bad], t0, on - 300)
    for name in pods:
        if name != bad:
            assert rate(cpu[name], on + 240, t1) < 1.5 * rate(cpu[name], t0, on - 300)
    limits = [k for k in series if k.startswith("kube_pod_container_resource_limits") and 'resource="cpu"' in k
              and labels_of(k).get("container") == c]
    assert bool(limits) == (limit and "kube_state" not in inc.style.missing)
    # The bad pod's own latency rises far more than its siblings'.
    lab = inc.style.scheme
    pod_key = "k8s_pod_name" if lab == "service_name" else "pod"
    lat = {n: _mean_latency(series, lambda fam, ls, n=n: fam in _SERVER_FAMILIES and ls.get(pod_key) == n) for n in pods}
    ratio = {n: _avg(v, on + 240, t1) / _avg(v, t0, on - 300) for n, v in lat.items()}
    assert ratio[bad] > 1.5 and all(ratio[bad] > 1.4 * r for n, r in ratio.items() if n != bad)


def test_memory_step_after_an_earlier_restart_is_flat_not_a_leak():
    inc = _first("bad_deploy", lambda i: "mem_step" in i.realism_done, force=("mem_step",), services=10, step=30)
    d = inc.realism_done["mem_step"]
    series = parse_om(render_files(inc)["metrics.om"].decode())
    key = "container_memory_working_set_bytes" if inc.style.kube else "process_resident_memory_bytes"
    pts = next(p for k, p in series.items() if k.startswith(key) and d["pod"] in k)
    t_restart = d["t"]
    before = _avg(pts, inc.start, t_restart - 60)
    settled = [v for t, v in pts if t > t_restart + 900]
    assert t_restart < inc.onset_time - 600
    assert sum(settled) / len(settled) > before * 1.12  # a step up...
    half = len(settled) // 2
    first, last = sum(settled[:half]) / half, sum(settled[half:]) / (len(settled) - half)
    assert abs(last - first) < 0.05 * first  # ...that stays flat
    assert any(e.kind == "restart" and e.data.get("pod") == d["pod"] for e in inc.model.events)


def test_real_like_flavour_has_only_per_pod_resources_and_per_service_red_metrics():
    inc = generate("cpu_saturation", 7, SimOptions(services=10, realism="real"))
    files = render_files(inc)
    assert set(files) == {"bundle.json", "incident.json", "metrics.om", "truth.json"}
    assert inc.model.step in (60, 300) and inc.topo.services[inc.alerted].role == "entry"
    series = parse_om(files["metrics.om"].decode())
    allowed = ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_network_",
               "kube_pod_container_resource_limits", "kube_pod_container_status_restarts_total", "up",
               "http_requests_total", "grpc_server_", *_SERVER_FAMILIES, *_CLIENT_FAMILIES, "http_client_requests_total")
    names = {k.split("{")[0] for k in series}
    assert all(n.startswith(allowed) for n in names), sorted(n for n in names if not n.startswith(allowed))
    assert any(n.startswith("container_network_transmit_bytes") for n in names)
    lab = inc.style.scheme
    server = [labels_of(k) for k in series if k.split("{")[0].rsplit("_", 1)[0] in _SERVER_FAMILIES]
    assert server and not any("pod" in ls or "instance" in ls for ls in server)  # per service
    cpu_pods = {labels_of(k)["pod"] for k in series if k.startswith("container_cpu_usage_seconds_total")}
    assert len(cpu_pods) > len(inc.topo.apps())  # per pod, databases and caches included
    assert lab


def test_pod_network_counters_exist_per_pod():
    inc = generate("network_degradation", 4, SimOptions(services=8, step=60, realism="off", force=("pod_network",)))
    series = parse_om(render_files(inc)["metrics.om"].decode())
    pods = {labels_of(k)["pod"] for k in series if k.startswith("container_network_receive_bytes_total")}
    cpu = {labels_of(k)["pod"] for k in series if k.startswith("container_cpu_usage_seconds_total")}
    assert inc.style.kube and pods == cpu and len(pods) > len(inc.topo.apps())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_loads_a_bundle_with_every_knob(tmp_path):
    from compass_tui.sim.realism import KNOBS

    knobs = tuple(k for k in KNOBS if k not in ("real_like", "client_view"))
    for i, (fault, mode) in enumerate([("code_defect", "off"), ("network_degradation", "real")]):
        inc = generate(fault, 5, SimOptions(services=9, realism=mode, force=knobs if mode == "off" else ()))
        d = write_bundle(inc, tmp_path / f"b{i}")
        out = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(d / "metrics.om"),
                              str(tmp_path / f"data{i}")], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr


def test_a_trimmed_fleet_still_shows_the_service_after_a_rollout(tmp_path):
    """A large fleet is shown through a few pods; after a rollout the new pods carry the
    service's request metrics, so they do not stop with the old pod's."""
    inc = generate("bad_deploy", 5, SimOptions(realism="random"))
    svc = inc.culprit
    assert len(inc.model.pods[svc]) > 2 and any(p.start > 0 for p in inc.model.pods[svc])  # rolled out, more pods than shown
    path = write_bundle(inc, tmp_path / "b")
    last = max(int(line.rsplit(" ", 1)[1]) for line in (Path(path) / "metrics.om").read_text().splitlines()
               if line.startswith("http_requests_total{") and f'"{svc}"' in line)
    assert last >= inc.end - 2 * inc.model.step

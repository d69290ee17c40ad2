"""`compass replay`: a simulated bundle served over MCP with Grafana's tool names must answer
exactly as the bundle does, rank exactly as `--bundle` does, and snapshot back to a bundle
that investigates the same."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from compass_tui.cli import main as cli_main
from compass_tui.config import Config, McpServerConfig
from compass_tui.replay import TOOLS, ReplayTools, ToolError, parse_traceql
from compass_tui.telemetry.bundle import open_bundle
from compass_tui.telemetry.mcp_backend import McpBackend

# Tool names and required arguments of mcp-grafana 2.1.x, as its server lists them.
GRAFANA_REQUIRED = {
    "query_prometheus": ["datasourceUid", "expr", "endTime"],
    "list_prometheus_metric_names": ["datasourceUid"],
    "list_prometheus_label_names": ["datasourceUid"],
    "list_prometheus_label_values": ["datasourceUid", "labelName"],
    "query_loki_logs": ["datasourceUid", "logql"],
    "list_loki_label_names": ["datasourceUid"],
    "list_loki_label_values": ["datasourceUid", "labelName"],
    "search_tempo_traces": ["datasourceUid", "query"],
    "get_tempo_trace": ["datasourceUid", "trace_id"],
    "list_datasources": [],
}

FAULTS = ["bad_deploy", "db_connection_pool_exhaustion"]


def replay_server(bundle) -> McpServerConfig:
    return McpServerConfig(command=sys.executable, args=["-m", "compass_tui.cli", "replay", str(bundle)])


def same_series(a, b) -> bool:
    ka = {tuple(sorted(s.labels.items())): s for s in a.series}
    kb = {tuple(sorted(s.labels.items())): s for s in b.series}
    if ka.keys() != kb.keys():
        return False
    return all(
        np.array_equal(ka[k].t, kb[k].t) and np.allclose(ka[k].v, kb[k].v, rtol=0, atol=1e-9, equal_nan=True)
        for k in ka
    )


def span_keys(res):
    return sorted(
        (s.trace_id, s.span_id, s.parent_span_id, s.service, s.name, s.kind, s.start, s.end, s.error,
         tuple(sorted(s.attributes.items())))
        for s in res.spans
    )


async def assert_same_answers(direct, other, window, step):
    """Every verb, a spread of queries: same status, same labels, same numbers."""
    w0, w1 = window
    ca, cb = await direct.capabilities(), await other.capabilities()
    assert (ca.metrics, ca.logs, ca.traces, ca.annotations) == (cb.metrics, cb.logs, cb.traces, cb.annotations)
    assert await other.metric_names() == await direct.metric_names()
    names = await direct.metric_names()
    assert names
    queries = names[:25] + [f"sum by (job) (rate({n}[5m]))" for n in names if n.endswith("_total")][:10]
    queries += ["count(up)", "scalar(count(up))", "up == 0", "nonexistent_metric_x"]
    for q in queries:
        a, b = await direct.query_range(q, w0, w1, step), await other.query_range(q, w0, w1, step)
        assert a.status == b.status, (q, a.error, b.error)
        assert same_series(a, b), q
    a, b = await direct.query_instant("count(up)", w1), await other.query_instant("count(up)", w1)
    assert same_series(a, b)
    def labelsets(ls):
        return sorted(tuple(sorted(d.items())) for d in ls)

    assert labelsets(await direct.series("up", w0, w1)) == labelsets(await other.series("up", w0, w1))
    labels = await direct.log_label_names()
    assert labels and await other.log_label_names() == labels
    for label in labels:
        assert await other.log_label_values(label) == await direct.log_label_values(label)
    label = next(l for l in ("service_name", "service", "app", "job") if l in labels)
    value = (await direct.log_label_values(label))[0]
    for q in (f'{{{label}="{value}"}}', f'{{{label}=~".+"}} |~ "(?i)error|timeout"'):
        a, b = await direct.query_logs(q, w0, w1, 500), await other.query_logs(q, w0, w1, 500)
        assert a.status == b.status and a.truncated == b.truncated
        assert [(x.t_ns, x.line, x.labels) for x in a.lines] == [(x.t_ns, x.line, x.labels) for x in b.lines]
    q = f'sum by ({label}) (count_over_time({{{label}=~".+"}} |= "error" [1m]))'
    assert same_series(await direct.query_log_metric(q, w0, w1, 60), await other.query_log_metric(q, w0, w1, 60))
    a, b = await direct.search_traces(w0, w1), await other.search_traces(w0, w1)
    assert a.status == b.status and a.query == b.query
    assert span_keys(a) == span_keys(b)
    if a.spans:
        svc = a.spans[0].service
        a, b = await direct.search_traces(w0, w1, svc, True), await other.search_traces(w0, w1, svc, True)
        assert span_keys(a) == span_keys(b)
    a, b = await direct.annotations(w0, w1), await other.annotations(w0, w1)
    assert a.status == b.status and a.annotations == b.annotations and a.query == b.query


def ranked(report):
    return [(h.fault, h.service, h.status) for h in report.hypotheses]


async def investigate(backend, bundle):
    from compass_tui.engine.deps import EngineDeps
    from compass_tui.engine.orchestrator import run_to_report
    from compass_tui.engine.request import request_from_bundle_meta

    req = request_from_bundle_meta(bundle.manifest, bundle.incident)
    return await run_to_report(req, EngineDeps(backend=backend))


def test_replay_lists_grafanas_tool_names_and_argument_shapes():
    assert set(GRAFANA_REQUIRED) | {"get_annotations"} == set(TOOLS)
    for name, required in GRAFANA_REQUIRED.items():
        schema = TOOLS[name][2]
        assert schema["required"] == required, name
        assert schema["additionalProperties"] is False
    qp = TOOLS["query_prometheus"][2]["properties"]
    assert {"datasourceUid", "expr", "startTime", "endTime", "stepSeconds", "queryType"} <= set(qp)
    assert qp["stepSeconds"]["type"] == "integer"
    ql = TOOLS["query_loki_logs"][2]["properties"]
    assert {"logql", "startRfc3339", "endRfc3339", "limit", "direction"} <= set(ql)
    assert set(TOOLS["get_annotations"][2]["properties"]) >= {"from", "to", "tags", "limit"}


def test_traceql_subset():
    assert parse_traceql("{ }") == (None, False)
    assert parse_traceql('{ resource.service.name = "api" && status = error }') == ("api", True)
    with pytest.raises(ToolError, match="unsupported TraceQL"):
        parse_traceql('{ span.http.status_code >= 500 }')


@pytest.mark.parametrize("fault", FAULTS)
async def test_replay_over_stdio_answers_like_the_bundle_and_ranks_the_same(sim_bundle_factory, fault):
    path = sim_bundle_factory(fault, 7)
    direct = open_bundle(path)
    try:
        async with McpBackend({"replay": replay_server(path)}, window=direct.window) as mb:
            st = mb.servers["replay"]
            assert st.status == "ready", st.error
            assert st.family == "grafana" and st.datasources["metrics"] == "prometheus"
            await assert_same_answers(direct, mb, direct.window, direct.step)
            r_direct = await investigate(direct, direct)
            r_replay = await investigate(mb, direct)
            assert r_direct.hypotheses, "the engine proposed nothing on the bundle"
            assert ranked(r_replay) == ranked(r_direct)
            # the same evidence, citing the same queries, but naming the MCP source
            def evidence(r):
                return sorted((h.id, e.kind, e.query, e.supports) for h in r.hypotheses for e in h.evidence)

            assert evidence(r_replay) == evidence(r_direct)
            assert not any(direct.source in e.source for h in r_replay.hypotheses for e in h.evidence)
    finally:
        direct.close()


async def test_replay_tools_directly(sim_bundle_factory):
    path = sim_bundle_factory("bad_deploy", 7)
    b = open_bundle(path)
    try:
        tools = ReplayTools(b, b.window, b.step)
        ds, _ = await tools.call("list_datasources", {})
        assert {d["uid"] for d in ds["datasources"]} >= {"prometheus", "loki"}
        with pytest.raises(ToolError, match="datasource with UID 'nope' not found"):
            await tools.call("query_prometheus", {"datasourceUid": "nope", "expr": "up", "endTime": "now"})
        with pytest.raises(ToolError, match="bad_data"):
            await tools.call("query_prometheus", {"datasourceUid": "prometheus", "expr": "sum(", "endTime": "now",
                                                  "startTime": "now-1h", "stepSeconds": 60, "queryType": "range"})
        # relative times are relative to the end of the recording, so they land on the incident
        got, structured = await tools.call("query_prometheus", {"datasourceUid": "prometheus", "expr": "count(up)",
                                                                "endTime": "now", "queryType": "instant"})
        assert structured and got["data"][0]["value"][0] == int(b.window[1])
        empty, _ = await tools.call("query_prometheus", {"datasourceUid": "prometheus", "expr": "absent_metric_zz",
                                                         "endTime": "now", "queryType": "instant"})
        assert empty["data"] is None and "hints" in empty
        names, _ = await tools.call("list_prometheus_metric_names", {"datasourceUid": "prometheus"})
        assert len(names) == 10  # Grafana's default page size
        vals, _ = await tools.call("list_prometheus_label_values", {
            "datasourceUid": "prometheus", "labelName": "__name__",
            "matches": [{"filters": [{"name": "__name__", "value": "up", "type": "="}]}]})
        assert vals == ["up"]
        with pytest.raises(ToolError, match="querying Loki"):
            await tools.call("query_loki_logs", {"datasourceUid": "loki", "logql": "{"})
        with pytest.raises(ToolError, match="not found"):
            await tools.call("get_tempo_trace", {"datasourceUid": "tempo", "trace_id": "0" * 32})
    finally:
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_replay_over_streamable_http(sim_bundle_factory, tmp_path):
    path = sim_bundle_factory("bad_deploy", 7)
    port = _free_port()
    log = open(tmp_path / "replay.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "compass_tui.cli", "replay", str(path), "--http", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    direct = open_bundle(path)
    try:
        for _ in range(200):  # wait for the port to accept connections
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        cfg = McpServerConfig(url=f"http://127.0.0.1:{port}/mcp")
        async with McpBackend({"http": cfg}) as mb:
            assert mb.servers["http"].status == "ready", mb.servers["http"].error
            w0, w1 = direct.window
            q = "sum by (job) (rate(http_requests_total[5m]))"
            names = await direct.metric_names()
            q = q if "http_requests_total" in names else f"count({names[0]})"
            assert same_series(await direct.query_range(q, w0, w1, direct.step), await mb.query_range(q, w0, w1, direct.step))
            assert (await mb.annotations(w0, w1)).annotations == (await direct.annotations(w0, w1)).annotations
    finally:
        direct.close()
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def test_snapshot_of_a_replay_is_the_same_incident(sim_bundle_factory, tmp_path):
    from compass_tui.snapshot import take_snapshot

    path = sim_bundle_factory("db_connection_pool_exhaustion", 7)
    original = open_bundle(path)
    out = tmp_path / "snap"
    try:
        cfg = Config(mcp_servers={"replay": replay_server(path)})
        summary = await take_snapshot(cfg, out, window=original.window, step_s=original.step)
        assert {"bundle.json", "incident.json", "metrics.om"} <= set(summary.files)
        if shutil.which("promtool"):  # promtool loads it unchanged
            proc = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(out / "metrics.om"),
                                   str(tmp_path / "tsdb")], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        snap = open_bundle(out)
        try:
            assert snap.window == original.window and snap.step == original.step
            await assert_same_answers(original, snap, original.window, original.step)
            # a window snapshot synthesises its alert: rank both under the original alert so
            # only the telemetry could differ
            assert ranked(await investigate(snap, original)) == ranked(await investigate(original, original))
        finally:
            snap.close()
    finally:
        original.close()


async def test_snapshot_from_an_alert_keeps_the_alert(sim_bundle_factory, tmp_path):
    from compass_tui.snapshot import take_snapshot

    path = sim_bundle_factory("bad_deploy", 7)
    original = open_bundle(path)
    try:
        # any Backend can be snapshotted; the bundle itself is the quickest
        cfg = Config(baseline_s=original.window[1] - original.window[0])
        out = tmp_path / "snap.tar.gz"
        summary = await take_snapshot(cfg, out, alert=original.incident, backend=original)
        assert "metrics.om" in summary.files and str(out) in summary.text()
        snap = open_bundle(out)
        try:
            assert snap.incident == original.incident
            assert await snap.metric_names()
        finally:
            snap.close()
    finally:
        original.close()


def test_replay_of_a_bad_bundle_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert cli_main(["replay", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(tmp_path / "x") in err


def test_snapshot_needs_a_window_or_alert(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    assert cli_main(["snapshot", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "--alert" in capsys.readouterr().err
    assert cli_main(["snapshot", "--config", str(cfg), "--out", str(tmp_path / "o"),
                     "--start", "2025-01-01T00:00:00Z", "--end", "2025-01-01T01:00:00Z"]) == 2
    assert "no MCP servers" in capsys.readouterr().err
    bad = tmp_path / "alert.json"
    bad.write_text(json.dumps({"alerts": [{"labels": {}}]}))
    assert cli_main(["snapshot", "--config", str(cfg), "--out", str(tmp_path / "o"), "--alert", str(bad)]) == 2
    assert "startsAt" in capsys.readouterr().err


async def test_doctor_over_a_replay_and_a_broken_server(sim_bundle_factory, tmp_path, monkeypatch):
    from compass_tui.doctor import health, render_table

    monkeypatch.delenv("ABSENT_TOKEN", raising=False)
    path = sim_bundle_factory("bad_deploy", 7)
    cfg = Config(
        mcp_servers={
            "replay": replay_server(path),
            "grafana": McpServerConfig(command="mcp-grafana", args=["-t", "stdio"],
                                       env={"GRAFANA_SERVICE_ACCOUNT_TOKEN": "${ABSENT_TOKEN}"}),
        }
    )
    rows = await health(cfg)
    by = {(r.source, r.check): r for r in rows}
    assert by[("replay", "connect")].ok and "tools" in by[("replay", "connect")].detail
    assert by[("replay", "metrics")].ok and "query_prometheus" in by[("replay", "metrics")].detail
    assert by[("replay", "logs")].ok
    bad = by[("grafana", "connect")]
    assert not bad.ok and "ABSENT_TOKEN" in bad.detail and "export" in bad.fix
    caps = await open_bundle(path).capabilities()
    if not caps.annotations:  # a recording without annotations: doctor says so and how to fix it
        assert not by[("(none)", "annotations")].ok and by[("(none)", "annotations")].fix
    table = render_table(rows)
    assert "fix: export the environment variable it names" in table
    assert table.splitlines()[0].split() == ["SOURCE", "CHECK", "STATUS", "DETAIL"]


def test_doctor_cli_json_and_exit_code(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[mcp_servers.gone]\ncommand = "/nonexistent/mcp-server"\n')
    proc = subprocess.run([sys.executable, "-m", "compass_tui.cli", "doctor", "--config", str(conf), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    rows = json.loads(proc.stdout)
    gone = next(r for r in rows if r["source"] == "gone")
    assert not gone["ok"] and "command not found" in gone["detail"] and gone["fix"]
    assert any(r["source"] == "(none)" and r["check"] == "metrics" and not r["ok"] for r in rows)
    proc = subprocess.run([sys.executable, "-m", "compass_tui.cli", "doctor", "--config", str(conf)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "command not found" in proc.stdout and "fix:" in proc.stdout

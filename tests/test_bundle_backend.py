"""The bundle backend answers every verb of the Backend protocol from a bundle's files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compass_tui.telemetry.backend import Backend
from compass_tui.telemetry.bundle import BundleBackend, open_bundle, parse_series_selector
from compass_tui.telemetry.logql import StreamMatcher

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
NS = 10**9


def _metrics() -> str:
    lines = ["# TYPE http_requests counter"]
    for i in range(41):  # 10 minutes at 15 s
        t = T0 + 15 * i
        lines.append(f'http_requests_total{{service="api",code="200"}} {100 * i} {t}')
        lines.append(f'http_requests_total{{service="api",code="500"}} {5 * i if i > 20 else 0} {t}')
        lines.append(f'http_requests_total{{service="db",code="200"}} {10 * i} {t}')
    lines.append(f'up{{service="api"}} 1 {T0}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _logs() -> dict:
    api_err = [
        [str((T0 + 10 * i) * NS), json.dumps({"level": "error", "msg": "db timeout", "status": 503, "ctx": {"user": f"u{i}"}})]
        for i in range(1, 7)
    ]
    api_info = [[str((T0 + 10 * i + 5) * NS), f'level=info msg="request ok" status=200 path=/p{i}'] for i in range(6)]
    db = [[str((T0 + 30) * NS), "connection pool exhausted"], [str((T0 + 90) * NS), "slow query 2.5s"]]
    return {
        "streams": [
            {"stream": {"service_name": "api", "level": "error"}, "values": api_err},
            {"stream": {"service_name": "api", "level": "info"}, "values": api_info},
            {"stream": {"service_name": "db", "level": "warn"}, "values": db},
        ]
    }


def _span(tid: str, sid: str, parent: str | None, name: str, kind: int, start: float, dur: float, code: int) -> dict:
    sp = {
        "traceId": tid,
        "spanId": sid,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(int(start * NS)),
        "endTimeUnixNano": str(int((start + dur) * NS)),
        "attributes": [
            {"key": "http.response.status_code", "value": {"intValue": "503" if code == 2 else "200"}},
            {"key": "retry", "value": {"boolValue": False}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "peer.service", "value": {"stringValue": "db"}},
        ],
        "status": {"code": code},
    }
    if parent:
        sp["parentSpanId"] = parent
    return sp


def _traces() -> dict:
    def res(service: str, spans: list[dict]) -> dict:
        return {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
        }

    api = [_span(f"{i:032x}", f"{i:016x}", None, "GET /checkout", 2, T0 + 60 * i, 0.2, 2 if i % 3 == 0 else 0) for i in range(6)]
    db = [_span(f"{i:032x}", f"{100 + i:016x}", f"{i:016x}", "SELECT", 3, T0 + 60 * i + 0.01, 0.1, 0) for i in range(6)]
    return {"resourceSpans": [res("api", api), res("db", db)]}


ANNOTATIONS = [
    {"time": (T0 + 120) * 1000, "timeEnd": (T0 + 150) * 1000, "tags": ["deploy", "service:api"], "text": "api 1.2.3"},
    {"time": (T0 + 900) * 1000, "tags": ["config", "service:db"], "text": "pool size 10"},
]


def make_bundle(root: Path, **override: object) -> Path:
    files: dict[str, object] = {
        "bundle.json": {
            "format": "compass-bundle/1",
            "title": "t",
            "window": {"start": "2023-11-14T22:13:20Z", "end": "2023-11-14T22:23:20Z"},
            "step_seconds": 15,
        },
        "incident.json": {"version": "4", "alerts": [{"labels": {"alertname": "HighErrorRate", "service": "api"}}]},
        "metrics.om": _metrics(),
        "logs.json": _logs(),
        "traces.json": _traces(),
        "annotations.json": ANNOTATIONS,
    }
    files.update({k.replace("_", "."): v for k, v in override.items()})
    root.mkdir(parents=True)
    for name, content in files.items():
        if content is not None:
            (root / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return root


@pytest.fixture
async def backend(tmp_path):
    b = open_bundle(make_bundle(tmp_path / "inc"))
    yield b
    await b.aclose()


async def test_is_a_backend_with_every_signal(backend: BundleBackend):
    assert isinstance(backend, Backend)
    caps = await backend.capabilities()
    assert (caps.metrics, caps.logs, caps.traces, caps.annotations) == (True, True, True, True)
    assert caps.missing == {}
    assert backend.degraded == []


async def test_metric_names_and_series(backend):
    assert await backend.metric_names() == ["http_requests_total", "up"]
    got = await backend.series('http_requests_total{code=~"5.."}', T0, T0 + 600)
    assert got == [{"__name__": "http_requests_total", "service": "api", "code": "500"}]
    got = await backend.series('{__name__=~"http_.*", service!="db"}', T0, T0 + 600)
    assert sorted(s["code"] for s in got) == ["200", "500"]
    # `up` has one sample at T0 only: outside the window asked, it is not listed
    assert await backend.series("up", T0 + 60, T0 + 600) == []
    assert await backend.series("up{", T0, T0 + 600) == []
    with pytest.raises(ValueError, match="bad series selector"):
        parse_series_selector("up{")


def test_series_selector_parsing():
    ms = parse_series_selector('up{job="a", x!~"b.*"}')
    assert {(m.name, m.op, m.value) for m in ms} == {("__name__", "=", "up"), ("job", "=", "a"), ("x", "!~", "b.*")}


async def test_series_source_windows_and_protects_its_arrays(backend):
    src = backend._metrics
    sel = src.select([StreamMatcher("__name__", "=", "http_requests_total"), StreamMatcher("code", "=", "500")], T0 + 300, T0 + 330)
    assert len(sel) == 1
    labels, t, v = sel[0]
    assert labels == {"__name__": "http_requests_total", "service": "api", "code": "500"}
    assert list(t) == [T0 + 300, T0 + 315, T0 + 330]  # both ends included
    assert list(v) == [0, 5 * 21, 5 * 22]
    with pytest.raises(ValueError):
        v[0] = 42  # cached arrays are shared between queries: read-only
    assert src.select([StreamMatcher("__name__", "=", "nope")], T0, T0 + 600) == []


async def test_bad_promql_is_an_error_result_not_an_exception(backend):
    r = await backend.query_range("rate(http_requests_total[5m]", T0, T0 + 600, 15)
    assert r.status == "error" and r.error
    assert r.query == "rate(http_requests_total[5m]" and r.source == "bundle:inc"
    r = await backend.query_instant("sum by (", T0 + 300)
    assert r.status == "error" and r.error


async def test_promql_range_and_instant_evaluate_over_the_bundle(backend):
    pytest.importorskip("compass_tui.telemetry.promql", exc_type=ImportError)
    r = await backend.query_range('sum by (code) (rate(http_requests_total{service="api"}[1m]))', T0 + 300, T0 + 600, 60)
    assert r.status == "ok", r.error
    by_code = {s.labels["code"]: s for s in r.series}
    assert np.allclose(by_code["200"].v, 100 / 15)
    r = await backend.query_instant('http_requests_total{service="db"}', T0 + 600)
    assert r.status == "ok" and [float(s.v[-1]) for s in r.series] == [400.0]
    r = await backend.query_range('nothing_here{service="x"}', T0, T0 + 600, 60)
    assert r.status == "no_data"


async def test_log_labels(backend):
    assert await backend.log_label_names() == ["level", "service_name"]
    assert await backend.log_label_values("service_name") == ["api", "db"]
    assert await backend.log_label_values("absent") == []


async def test_query_logs_newest_first_with_limit(backend):
    r = await backend.query_logs('{service_name="api"}', T0, T0 + 600, limit=5)
    assert r.status == "ok" and r.truncated and len(r.lines) == 5
    ts = [x.t_ns for x in r.lines]
    assert ts == sorted(ts, reverse=True) and ts[0] == (T0 + 60) * NS
    assert r.lines[0].labels == {"service_name": "api", "level": "error"}
    r = await backend.query_logs('{service_name="api"}', T0, T0 + 600)
    assert len(r.lines) == 12 and not r.truncated


async def test_query_logs_line_filters(backend):
    async def lines(q: str) -> list[str]:
        r = await backend.query_logs(q, T0, T0 + 600)
        assert r.status in ("ok", "no_data"), r.error
        return [x.line for x in r.lines]

    assert await lines('{service_name="db"} |= "pool"') == ["connection pool exhausted"]
    assert await lines('{service_name="db"} != "pool"') == ["slow query 2.5s"]
    assert await lines('{service_name=~"d.*"} |~ "[0-9]\\\\.[0-9]s"') == ["slow query 2.5s"]
    assert len(await lines('{service_name=~"api|db"} !~ "timeout|pool" |= "o"')) == 7
    assert await lines('{level="warn", service_name!="db"}') == []
    assert (await backend.query_logs('{service_name="nobody"}', T0, T0 + 600)).status == "no_data"


async def test_query_logs_time_window_is_respected(backend):
    r = await backend.query_logs('{service_name="api", level="error"}', T0 + 20, T0 + 40)
    assert [x.t for x in r.lines] == [T0 + 40, T0 + 30, T0 + 20]


async def test_query_logs_json_and_logfmt_label_filters(backend):
    r = await backend.query_logs('{service_name="api"} | json | status >= 500 | ctx_user=~"u[1-3]"', T0, T0 + 600)
    assert r.status == "ok"
    assert sorted(x.labels["ctx_user"] for x in r.lines) == ["u1", "u2", "u3"]
    assert r.lines[0].labels["msg"] == "db timeout"
    r = await backend.query_logs('{service_name="api"} | logfmt | path="/p2"', T0, T0 + 600)
    assert [x.labels["msg"] for x in r.lines] == ["request ok"]
    assert r.lines[0].labels["level_extracted"] == "info"  # clashes with the stream label, as in Loki


async def test_query_logs_bad_query_is_an_error_result(backend):
    r = await backend.query_logs('{service_name="api"', T0, T0 + 600)
    assert r.status == "error" and "column" in r.error and r.query == '{service_name="api"'
    r = await backend.query_logs('count_over_time({service_name="api"}[1m])', T0, T0 + 600)
    assert r.status == "error" and "query_log_metric" in r.error


async def test_count_over_time_per_stream_on_the_step_grid(backend):
    r = await backend.query_log_metric('count_over_time({service_name="api", level="error"}[30s])', T0, T0 + 120, 30)
    assert r.status == "ok"
    (s,) = r.series
    assert s.labels == {"service_name": "api", "level": "error"}
    # lines at T0+10..T0+60; a point at t counts lines in (t-30s, t]; no point without lines
    assert list(s.t) == [T0 + 30, T0 + 60]
    assert list(s.v) == [3.0, 3.0]
    assert s.t.dtype == np.float64


async def test_sum_by_rate_and_bytes(backend):
    r = await backend.query_log_metric('sum by (service_name) (count_over_time({level=~"error|warn"}[10m]))', T0, T0 + 600, 600)
    assert {s.labels["service_name"]: list(s.v) for s in r.series} == {"api": [6.0], "db": [2.0]}
    r = await backend.query_log_metric('sum(rate({service_name="db"}[1m]))', T0 + 60, T0 + 120, 60)
    assert r.series[0].labels == {} and list(r.series[0].v) == [1 / 60, 1 / 60]
    r = await backend.query_log_metric('bytes_over_time({service_name="db"} |= "slow" [5m])', T0 + 300, T0 + 300, 60)
    assert list(r.series[0].v) == [len("slow query 2.5s")]
    r = await backend.query_log_metric('sum by (status) (count_over_time({service_name="api"} | json | status > 0 [10m]))', T0 + 600, T0 + 600, 60)
    assert {s.labels.get("status"): s.v[0] for s in r.series} == {"503": 6.0}


async def test_log_metric_errors(backend):
    r = await backend.query_log_metric('{service_name="api"}', T0, T0 + 60, 15)
    assert r.status == "error" and "not a metric query" in r.error
    r = await backend.query_log_metric('count_over_time({service_name="zzz"}[1m])', T0, T0 + 60, 15)
    assert r.status == "no_data"


async def test_search_traces_by_service_and_status(backend):
    r = await backend.search_traces(T0, T0 + 600, service="api", error_only=True)
    assert r.query == '{ resource.service.name = "api" && status = error }'
    assert r.status == "ok" and [s.start for s in r.spans] == [T0, T0 + 180]
    sp = r.spans[0]
    assert (sp.service, sp.name, sp.kind, sp.error, sp.parent_span_id) == ("api", "GET /checkout", 2, True, None)
    assert sp.attributes == {"http.response.status_code": 503, "retry": False, "ratio": 0.5, "peer.service": "db"}
    assert sp.duration_s == pytest.approx(0.2)
    r = await backend.search_traces(T0, T0 + 600)
    assert r.query == "{ }" and len(r.spans) == 12
    db = [s for s in r.spans if s.service == "db"]
    assert db[0].parent_span_id == f"{0:016x}"
    r = await backend.search_traces(T0, T0 + 600, limit=4)
    assert r.truncated and len(r.spans) == 4
    r = await backend.search_traces(T0 + 1000, T0 + 2000)
    assert r.status == "no_data"


async def test_annotations_in_seconds_within_window(backend):
    r = await backend.annotations(T0, T0 + 600)
    assert r.query == f"annotations(from={T0 * 1000}, to={(T0 + 600) * 1000})"
    assert [(a.time, a.time_end, a.tags, a.text) for a in r.annotations] == [
        (T0 + 120, T0 + 150, ["deploy", "service:api"], "api 1.2.3")
    ]
    r = await backend.annotations(T0, T0 + 1000)
    assert r.annotations[1].time_end is None


async def test_persistent_database_file(tmp_path):
    db = tmp_path / "bundle.duckdb"
    b = open_bundle(make_bundle(tmp_path / "inc"), db_path=str(db))
    await b.aclose()
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 3 * 41 + 1
    assert con.execute("SELECT count(*) FROM spans WHERE error").fetchone()[0] == 2
    con.close()


async def test_partly_bad_traces_and_annotations_are_degraded(tmp_path):
    traces = _traces()
    traces["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = "yesterday"
    anns = ANNOTATIONS + [{"time": "noon", "text": "x"}]
    b = open_bundle(make_bundle(tmp_path / "inc", traces_json=traces, annotations_json=anns))
    try:
        d = dict(b.degraded)
        assert d["traces"] == "traces.json: span 2 of service 'api' has a bad id, time or kind; 1 span skipped"
        assert d["annotations"] == "annotations.json: entry 3 has no numeric time; 1 skipped"
        assert len((await b.search_traces(T0, T0 + 600)).spans) == 11
        caps = await b.capabilities()
        assert caps.traces and caps.annotations
    finally:
        await b.aclose()


@pytest.mark.live
async def test_promql_answers_match_a_real_prometheus(tmp_path):
    """The same bundle loaded into Prometheus 2.42 (promtool backfill) gives the same
    numbers as the bundle backend, so evidence from replay is evidence from Prometheus."""
    import shutil
    import socket
    import subprocess
    import time
    import urllib.parse
    import urllib.request

    if not (shutil.which("promtool") and shutil.which("prometheus")):
        pytest.skip("prometheus and promtool are not installed")
    root = make_bundle(tmp_path / "inc")
    data = tmp_path / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(root / "metrics.om"), str(data)],
        check=True, capture_output=True,
    )
    (tmp_path / "p.yml").write_text("global: {scrape_interval: 1m}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'p.yml'}", f"--storage.tsdb.path={data}",
         "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    b = open_bundle(root)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "prometheus did not become ready"
                time.sleep(0.1)
        queries = [
            "sum by (code) (rate(http_requests_total[1m]))",
            'sum(rate(http_requests_total{code="500"}[2m])) / sum(rate(http_requests_total[2m]))',
            "max_over_time(up[10m])",
        ]
        for q in queries:
            mine = await b.query_range(q, T0 + 60, T0 + 600, 30)
            url = f"http://127.0.0.1:{port}/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": q, "start": T0 + 60, "end": T0 + 600, "step": 30}
            )
            with urllib.request.urlopen(url, timeout=10) as resp:
                theirs = json.load(resp)["data"]["result"]
            assert mine.status == "ok", (q, mine.error)
            got = {json.dumps(s.labels, sort_keys=True): s for s in mine.series}
            assert len(got) == len(theirs), q
            for r in theirs:
                s = got[json.dumps(r["metric"], sort_keys=True)]
                assert [float(t) for t, _ in r["values"]] == list(s.t), q
                assert np.allclose([float(v) for _, v in r["values"]], s.v, rtol=1e-9, equal_nan=True), q
    finally:
        await b.aclose()
        proc.terminate()
        proc.wait(timeout=10)

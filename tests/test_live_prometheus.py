"""A real Prometheus (loaded with a simulated incident's metrics.om) behind the real
prometheus-mcp-server over stdio: COMPASS's MCP backend must answer as the bundle backend
does, and an investigation through it must find the culprit of metric-visible faults."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from compass_tui.config import McpServerConfig
from compass_tui.telemetry.bundle import open_bundle
from compass_tui.telemetry.mcp_backend import McpBackend

try:
    from tests.prometheus_server import PrometheusServer
except ImportError:  # pragma: no cover - run from inside tests/
    from prometheus_server import PrometheusServer  # type: ignore[no-redef]

pytestmark = pytest.mark.live


def prometheus_mcp_command() -> list[str]:
    """The prometheus-mcp-server of this virtualenv (console script next to the interpreter)."""
    script = Path(sys.executable).parent / "prometheus-mcp-server"
    if script.exists():
        return [str(script)]
    found = shutil.which("prometheus-mcp-server")
    if found:
        return [found]
    try:
        import prometheus_mcp_server  # noqa: F401
    except ImportError:
        pytest.skip("prometheus-mcp-server is not installed (pip install prometheus-mcp-server)")
    return [sys.executable, "-c", "import sys; from prometheus_mcp_server.main import run_server; sys.exit(run_server())"]


@asynccontextmanager
async def live_stack(bundle: Path, tmp_path: Path):
    """(BundleBackend, McpBackend over prometheus-mcp-server over a real Prometheus)."""
    direct = open_bundle(bundle)
    try:
        with PrometheusServer((bundle / "metrics.om").read_text(), tmp_path / "prom") as url:
            cmd = prometheus_mcp_command()
            # cwd: the server reads a .env from its working directory; give it an empty one
            cfg = McpServerConfig(command=cmd[0], args=cmd[1:], env={"PROMETHEUS_URL": url}, cwd=str(tmp_path))
            async with McpBackend({"prometheus": cfg}, window=direct.window) as mb:
                st = mb.servers["prometheus"]
                assert st.status == "ready", st.error
                assert st.family == "prometheus"
                yield direct, mb
    finally:
        direct.close()


def keyed(res):
    return {tuple(sorted(s.labels.items())): s for s in res.series}


def assert_close(a, b, query):
    assert a.status == b.status, (query, a.status, b.status, a.error, b.error)
    if a.scalar is not None or b.scalar is not None:
        assert a.scalar == pytest.approx(b.scalar, rel=1e-6, abs=1e-6), query
        return
    ka, kb = keyed(a), keyed(b)
    assert ka.keys() == kb.keys(), query
    for k in ka:
        assert np.array_equal(ka[k].t, kb[k].t), (query, k)
        assert np.allclose(ka[k].v, kb[k].v, rtol=1e-6, atol=1e-6, equal_nan=True), (query, k)


def queries_for(names: list[str]) -> list[str]:
    qs = ["up", "count(up)", "sum by (job) (up)", "up == 0"]
    counters = [n for n in names if n.endswith("_total")]
    gauges = [n for n in names if not n.endswith(("_total", "_bucket", "_sum", "_count"))]
    buckets = [n for n in names if n.endswith("_bucket")]
    qs += counters[:12] + gauges[:12]
    qs += [f"rate({n}[5m])" for n in counters[:12]]
    qs += [f"sum by (job) (increase({n}[2m]))" for n in counters[:6]]
    qs += [f"max_over_time({n}[10m])" for n in gauges[:6]]
    qs += [f"avg by (job) ({n})" for n in gauges[:6]]
    qs += [f"histogram_quantile(0.99, sum by (le, job) (rate({n}[5m])))" for n in buckets[:3]]
    if counters and len(counters) > 1:
        qs.append(f"sum(rate({counters[0]}[5m])) / sum(rate({counters[1]}[5m]))")
    return qs


@pytest.mark.parametrize("fault", ["cpu_saturation", "db_connection_pool_exhaustion"])
async def test_live_prometheus_through_mcp_answers_like_the_bundle(sim_bundle_factory, tmp_path, fault):
    path = Path(sim_bundle_factory(fault, 1))
    async with live_stack(path, tmp_path) as (direct, mb):
        w0, w1 = direct.window
        names = await direct.metric_names()
        assert await mb.metric_names() == names
        caps = await mb.capabilities()
        assert caps.metrics and not caps.logs and "query_loki_logs" in caps.missing["logs"]
        qs = queries_for(names)
        assert len(qs) >= 40
        for q in qs:
            assert_close(await direct.query_range(q, w0, w1, direct.step), await mb.query_range(q, w0, w1, direct.step), q)
        mid = (w0 + w1) / 2
        for q in ("count(up)", "scalar(count(up))", names[0]):
            assert_close(await direct.query_instant(q, mid), await mb.query_instant(q, mid), q)
        for n in names[:10]:
            want = sorted(tuple(sorted(d.items())) for d in await direct.series(n, w0, w1))
            got = sorted(tuple(sorted(d.items())) for d in await mb.series(n, w0, w1))
            assert got == want, n
        bad = await mb.query_range("sum(rate(", w0, w1, 15)
        assert bad.status == "error" and "prometheus/execute_range_query" in bad.error
        assert all(c.wall_s > 0 for c in mb.calls)


# Seeds whose incident the engine solves from metrics alone today; the engine's accuracy over
# many seeds is measured by the benchmark, not here.
@pytest.mark.parametrize("fault, seed", [("cpu_saturation", 2), ("memory_leak", 2), ("disk_full", 2), ("cache_failure", 2), ("dns_failure", 3)])
async def test_investigation_through_prometheus_mcp_finds_the_culprit(sim_bundle_factory, tmp_path, fault, seed):
    from compass_tui.engine.deps import EngineDeps
    from compass_tui.engine.orchestrator import run_to_report
    from compass_tui.engine.request import request_from_bundle_meta

    path = Path(sim_bundle_factory(fault, seed, realism="off"))  # the clean scenarios these seeds were picked on
    truth = json.loads((path / "truth.json").read_text())["culprit"]
    # the same telemetry offline: only what this stack has (metrics), nothing else
    metrics_only = tmp_path / "metrics-only"
    metrics_only.mkdir()
    for name in ("bundle.json", "incident.json", "metrics.om"):
        shutil.copy(path / name, metrics_only / name)
    async with live_stack(path, tmp_path) as (direct, mb):
        req = request_from_bundle_meta(direct.manifest, direct.incident)
        live = await run_to_report(req, EngineDeps(backend=mb))
        survivors = [(h.fault, h.service) for h in live.hypotheses if h.status != "disproven"]
        assert survivors and survivors[0] == (truth["fault"], truth["service"]), (live.hypotheses[:3], live.degraded, len(mb.calls), [c for c in mb.calls if not c.ok][:3])
        assert any(d.signal in ("logs", "traces") for d in live.degraded)  # says what it could not see
        offline = open_bundle(metrics_only)
        try:
            ref = await run_to_report(req, EngineDeps(backend=offline))
        finally:
            offline.close()
        assert [(h.fault, h.service, h.status) for h in live.hypotheses] == [
            (h.fault, h.service, h.status) for h in ref.hypotheses
        ]


def metrics_only_copy(bundle: Path, dest: Path) -> Path:
    """The bundle as the live stack has it: its metrics, nothing else."""
    dest.mkdir()
    for name in ("bundle.json", "incident.json", "metrics.om"):
        shutil.copy(bundle / name, dest / name)
    return dest


METRIC_VISIBLE_FAULTS = ["cpu_saturation", "memory_leak", "disk_full", "cache_failure", "dns_failure",
                         "db_slow_queries", "db_connection_pool_exhaustion", "traffic_surge"]
# Per fault: two scenarios with the realism knobs drawn as usual, one clean one. Whatever the
# engine concludes (right or wrong), the live path must conclude the same from the same data.
PARITY_CASES = [(f, seed, realism) for f in METRIC_VISIBLE_FAULTS
                for seed, realism in ((11, "random"), (12, "random"), (13, "off"))]


@pytest.mark.parametrize("fault, seed, realism", PARITY_CASES)
async def test_live_path_ranks_as_the_bundle_path(sim_bundle_factory, tmp_path, fault, seed, realism):
    """The live path as `compass investigate --alert` and `compass watch` take it (the request
    built from the alert, the backend opened by the application service, which fits the step to
    the scrape interval it finds) ranks exactly as the bundle path does on the same metrics."""
    from compass_tui import service
    from compass_tui.config import Config
    from compass_tui.engine.deps import EngineDeps
    from compass_tui.engine.orchestrator import run_to_report
    from compass_tui.engine.request import request_from_alert, request_from_bundle_meta

    path = Path(sim_bundle_factory(fault, seed, realism=realism))
    incident = json.loads((path / "incident.json").read_text())
    manifest = json.loads((path / "bundle.json").read_text())
    ref_req = request_from_bundle_meta(manifest, incident)
    # the alert's window pinned to the bundle's (the data there is the same); the step is the live path's own
    req = request_from_alert(incident, window=(ref_req.window_start, ref_req.window_end))
    with PrometheusServer((path / "metrics.om").read_text(), tmp_path / "prom") as url:
        cmd = prometheus_mcp_command()
        cfg = McpServerConfig(command=cmd[0], args=cmd[1:], env={"PROMETHEUS_URL": url}, cwd=str(tmp_path))
        options = service.options_for_config(Config(mcp_servers={"prometheus": cfg}), no_store=True)
        # the server starts (a process of its own) while the bundle path runs here
        opening = asyncio.create_task(service.open_live_backend(options, req))
        offline = await asyncio.to_thread(open_bundle, metrics_only_copy(path, tmp_path / "metrics-only"))
        try:
            ref = await run_to_report(ref_req, EngineDeps(backend=offline))
        finally:
            offline.close()
        backend, notes = await opening
        assert backend is not None, notes
        try:
            assert req.step_s == ref_req.step_s  # the step the live path chose: the data's scrape interval
            live = await run_to_report(req, EngineDeps(backend=backend))
        finally:
            await service.close_backend(backend)
    failed = [c.error for c in backend.calls if not c.ok]
    assert not failed, failed[:3]
    want = [(h.fault, h.service, h.status) for h in ref.hypotheses]
    got = [(h.fault, h.service, h.status) for h in live.hypotheses]
    assert got[:1] == want[:1]
    assert got == want


async def test_the_live_step_is_a_whole_number_of_scrapes():
    from types import SimpleNamespace

    from compass_tui.live_sources import fit_step_to_samples

    class Probe:
        def __init__(self, interval):
            self.interval = interval

        async def sample_interval(self, at):
            if isinstance(self.interval, Exception):
                raise self.interval
            return self.interval

    for step, interval, want in [(15.0, 60.0, 60.0), (75.0, 60.0, 120.0), (60.0, 59.99, 59.99), (30.0, 10.0, 30.0),
                                 (15.0, None, 15.0), (15.0, RuntimeError("down"), 15.0)]:
        req = SimpleNamespace(step_s=step, started_at=0.0)
        await fit_step_to_samples(Probe(interval), req)
        assert req.step_s == pytest.approx(want), (step, interval)
    req = SimpleNamespace(step_s=15.0, started_at=0.0)
    assert await fit_step_to_samples(object(), req) is None and req.step_s == 15.0  # a backend that cannot tell


def mcp_grafana_binary() -> str | None:
    """Grafana's MCP server when installed (pip install mcp-grafana), else None."""
    import os

    found = os.environ.get("MCP_GRAFANA") or shutil.which("mcp-grafana")
    if not found:
        candidate = Path(sys.executable).parent / "mcp-grafana"
        found = str(candidate) if candidate.exists() else None
    return found


class GrafanaApi:
    """The slice of Grafana's HTTP API that mcp-grafana's Prometheus and annotation tools use
    (datasource lookup, the datasource resource proxy, annotations), in front of a real
    Prometheus. No Grafana is installable here; everything behind this is real."""

    def __init__(self, prometheus_url: str, annotations: list[dict]):
        import http.server
        import threading
        import urllib.error
        import urllib.request

        ds = {"id": 1, "uid": "prom", "name": "Prometheus", "type": "prometheus", "url": prometheus_url,
              "access": "proxy", "isDefault": True, "jsonData": {}}

        class H(http.server.BaseHTTPRequestHandler):
            def _json(self, obj, code=200):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else None
                p = self.path
                if p.startswith("/api/datasources/uid/prom/resources/"):
                    req = urllib.request.Request(prometheus_url + "/" + p.split("/resources/", 1)[1], data=body,
                                                 method=self.command,
                                                 headers={"Content-Type": self.headers.get("content-type") or
                                                          "application/x-www-form-urlencoded"})
                    try:
                        with urllib.request.urlopen(req, timeout=30) as r:
                            code, data = r.status, r.read()
                    except urllib.error.HTTPError as e:
                        code, data = e.code, e.read()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif p.startswith("/api/datasources/uid/prom"):
                    self._json(ds)
                elif p.startswith("/api/datasources/uid/"):
                    self._json({"message": "Data source not found"}, 404)
                elif p.startswith("/api/datasources"):
                    self._json([ds])
                elif p.startswith("/api/annotations"):
                    from urllib.parse import parse_qs, urlparse

                    q = parse_qs(urlparse(p).query)
                    lo, hi = int(q.get("from", ["0"])[0]), int(q.get("to", [str(2**62)])[0])
                    self._json([a for a in annotations if a["time"] <= hi and a.get("timeEnd", a["time"]) >= lo])
                elif p.startswith("/api/frontend/settings"):
                    self._json({"buildInfo": {"version": "11.0.0"}})
                else:
                    self._json({"message": "not found"}, 404)

            do_GET = do_POST = _serve

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_grafanas_own_mcp_server_answers_like_the_bundle(sim_bundle_factory, tmp_path):
    binary = mcp_grafana_binary()
    if binary is None:
        pytest.skip("mcp-grafana is not installed (pip install mcp-grafana); Grafana's server path not checked")
    path = Path(sim_bundle_factory("bad_deploy", 7))
    direct = open_bundle(path)
    ann_file = path / "annotations.json"
    annotations = json.loads(ann_file.read_text()) if ann_file.exists() else []
    try:
        with PrometheusServer((path / "metrics.om").read_text(), tmp_path / "prom") as url:
            api = GrafanaApi(url, annotations)
            try:
                cfg = McpServerConfig(command=binary, args=["-t", "stdio", "--disable-write"],
                                      env={"GRAFANA_URL": api.url, "GRAFANA_SERVICE_ACCOUNT_TOKEN": "glsa_test"})
                async with McpBackend({"grafana": cfg}, window=direct.window) as mb:
                    st = mb.servers["grafana"]
                    assert st.status == "ready", st.error
                    assert st.datasources.get("metrics") == "prom"
                    assert not any(t.startswith(("create_", "update_", "delete_")) for t in st.tools)
                    w0, w1 = direct.window
                    names = await direct.metric_names()
                    assert await mb.metric_names() == names
                    for q in queries_for(names)[:30]:
                        assert_close(await direct.query_range(q, w0, w1, direct.step),
                                     await mb.query_range(q, w0, w1, direct.step), q)
                    mid = (w0 + w1) / 2 + 0.25  # fractional times must reach Grafana in a form it parses
                    assert_close(await direct.query_instant("count(up)", mid), await mb.query_instant("count(up)", mid), "count(up)")
                    a, b = await direct.annotations(w0, w1), await mb.annotations(w0, w1)
                    if annotations:
                        assert [x.text for x in a.annotations] == [x.text for x in b.annotations]
                    bad = await mb.query_range("sum(", w0, w1, 15)
                    assert bad.status == "error" and "parse error" in bad.error
            finally:
                api.close()
    finally:
        direct.close()

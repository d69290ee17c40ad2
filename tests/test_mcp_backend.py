"""The MCP backend against real MCP servers over stdio: a server that misbehaves on purpose
(hangs, dies, answers garbage or too much, rejects queries, offers a write tool), servers
that will not start, and the allow-list that keeps write tools from ever being called."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import pytest

from compass_tui.config import McpServerConfig
from compass_tui.telemetry import mcp_backend
from compass_tui.telemetry.backend import Backend
from compass_tui.telemetry.mcp_backend import READ_TOOLS, McpBackend, ToolRefused, parse_prom_payload

# A real MCP server (the SDK's low-level server over stdio) whose query_prometheus does what
# the expression says: "hang", "die", "malformed", "huge", "reject", "slow" (tracks how many
# calls are in flight at once), anything else answers one series. create_annotation is a write
# tool: if it is ever called it leaves a marker file behind.
SERVER = textwrap.dedent(
    '''
    import asyncio, json, os, sys
    import anyio
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    MARKER = sys.argv[1]
    state = {"inflight": 0, "max": 0}
    obj = {"type": "object", "properties": {"datasourceUid": {"type": "string"}, "expr": {"type": "string"}}}

    def text(s, err=False):
        return types.CallToolResult(content=[types.TextContent(text=s)], is_error=err)

    async def list_tools(ctx, params):
        names = ["query_prometheus", "list_datasources", "create_annotation", "stats"]
        return types.ListToolsResult(tools=[types.Tool(name=n, input_schema=obj) for n in names])

    async def call_tool(ctx, params):
        args = params.arguments or {}
        if params.name == "create_annotation":
            open(MARKER, "w").write("called")
            return text("{}")
        if params.name == "list_datasources":
            return text(json.dumps({"datasources": [{"uid": "p1", "name": "P", "type": "prometheus", "isDefault": True}]}))
        if params.name == "stats":
            return text(json.dumps(state))
        expr = args.get("expr", "")
        if expr == "hang":
            await anyio.sleep(3600)
        if expr == "die":
            os._exit(3)
        if expr == "malformed":
            return text("<html>502 Bad Gateway</html>")
        if expr == "leak":
            return text("401 for token " + os.environ.get("GRAFANA_SERVICE_ACCOUNT_TOKEN", ""), err=True)
        if expr == "reject":
            return text("querying Prometheus range: bad_data: parse error: unexpected end of input", err=True)
        if expr.startswith("huge"):
            n = int(expr[4:] or 20000)
            data = [{"metric": {"i": str(i)}, "values": [[1700000000, "1"]]} for i in range(n)]
            return text(json.dumps({"data": data}))
        if expr == "slow":
            state["inflight"] += 1
            state["max"] = max(state["max"], state["inflight"])
            await anyio.sleep(0.3)
            state["inflight"] -= 1
        if args.get("datasourceUid") != "p1":
            return text("datasource not found", err=True)
        return text(json.dumps({"data": [{"metric": {"job": "a"}, "values": [[1700000000, "1.5"], [1700000015, "NaN"]]}]}))

    async def main():
        server = Server("misbehaving", on_list_tools=list_tools, on_call_tool=call_tool)
        async with stdio_server() as (r, w):
            await server.run(r, w, server.create_initialization_options())

    anyio.run(main)
    '''
)


@pytest.fixture
def server_cfg(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    marker = tmp_path / "write-tool-was-called"

    def make(**kw) -> McpServerConfig:
        return McpServerConfig(command=sys.executable, args=[str(script), str(marker)], **kw)

    make.marker = marker
    return make


async def test_is_a_backend_and_answers_through_discovered_tools(server_cfg):
    async with McpBackend({"m": server_cfg()}) as b:
        assert isinstance(b, Backend)
        st = b.servers["m"]
        assert st.status == "ready" and st.family == "grafana"
        assert st.datasources == {"metrics": "p1"}  # found through list_datasources
        caps = await b.capabilities()
        assert caps.metrics and not caps.logs
        assert "query_loki_logs" in caps.missing["logs"]  # names the tool that would fill the gap
        r = await b.query_range("up", 1700000000, 1700000015, 15)
        assert r.status == "ok" and r.source == "m/query_prometheus"
        assert r.series[0].labels == {"job": "a"}
        assert r.series[0].v[0] == 1.5 and r.series[0].v[1] != r.series[0].v[1]  # NaN kept
        assert b.calls[-1].tool == "query_prometheus" and b.calls[-1].wall_s > 0


async def test_write_tools_are_refused_before_reaching_the_server(server_cfg):
    assert not any(t.startswith(("create_", "update_", "delete_", "add_")) for t in READ_TOOLS)
    async with McpBackend({"m": server_cfg()}) as b:
        assert "create_annotation" in b.servers["m"].tools  # the server offers it...
        with pytest.raises(ToolRefused):
            await b.call_tool("m", "create_annotation", {"text": "x"})
        out = await b._call("m", "create_annotation", {"text": "x"})
        assert out.error and "allow-list" in out.error
    assert not server_cfg.marker.exists()  # ...and it was never called


async def test_rejected_malformed_and_huge_results_are_errors_not_exceptions(server_cfg, monkeypatch):
    async with McpBackend({"m": server_cfg()}, max_result_bytes=200_000) as b:
        r = await b.query_range("reject", 0, 60, 15)
        assert r.status == "error" and "parse error" in r.error and r.error.startswith("m/query_prometheus")
        r = await b.query_instant("malformed", 0)
        assert r.status == "error" and "malformed" in r.error
        r = await b.query_range("huge20000", 0, 60, 15)
        assert r.status == "error" and "cap" in r.error
        monkeypatch.setattr(mcp_backend, "MAX_SERIES", 100)
        r = await b.query_range("huge500", 0, 60, 15)
        assert r.status == "ok" and r.truncated and len(r.series) == 100
        # the server is still fine after all that
        assert (await b.query_range("up", 0, 60, 15)).status == "ok"


async def test_a_hung_server_times_out_then_is_degraded(server_cfg):
    async with McpBackend({"m": server_cfg(tool_timeout_sec=0.5)}, retries=2) as b:
        r = await b.query_range("hang", 0, 60, 15)
        assert r.status == "error" and "no answer within 0.5s" in r.error
        r2 = await b.query_range("up", 0, 60, 15)
        assert r2.status == "error" and "hung" in r2.error  # fails fast instead of queueing
        caps = await b.capabilities()
        assert not caps.metrics and "hung" in caps.missing["metrics"]


async def test_a_server_dying_mid_investigation_gives_errors(server_cfg):
    async with McpBackend({"m": server_cfg()}) as b:
        assert (await b.query_range("up", 0, 60, 15)).status == "ok"
        r = await b.query_range("die", 0, 60, 15)
        assert r.status == "error"
        for _ in range(2):
            r = await b.query_range("up", 0, 60, 15)
            assert r.status == "error"
        assert b.servers["m"].status in ("dead", "hung")


async def test_servers_that_will_not_start_are_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('cannot reach Grafana at http://x: connection refused', file=sys.stderr)\nsys.exit(1)\n")
    servers = {
        "missing": McpServerConfig(command=str(tmp_path / "no-such-binary")),
        "crash": McpServerConfig(command=sys.executable, args=[str(crash)], startup_timeout_sec=10),
        "nosecret": McpServerConfig(command=sys.executable, env={"TOKEN": "${NOT_SET_TOKEN}"}),
        "nohttp": McpServerConfig(url="http://127.0.0.1:9/mcp", startup_timeout_sec=5),
    }
    async with McpBackend(servers) as b:
        st = b.servers
        assert st["missing"].status == "failed" and "command not found" in st["missing"].error
        assert st["crash"].status == "failed" and "connection refused" in st["crash"].error
        assert st["nosecret"].status == "failed" and "NOT_SET_TOKEN" in st["nosecret"].error
        assert st["nohttp"].status == "failed"
        caps = await b.capabilities()
        assert not caps.metrics
        assert "missing failed" in caps.missing["metrics"]
        r = await b.query_range("up", 0, 60, 15)
        assert r.status == "error" and "no source for metrics" in r.error
        assert await b.metric_names() == []
        assert (await b.query_logs('{job="a"}', 0, 60)).status == "error"
        assert (await b.search_traces(0, 60)).status == "error"
        assert (await b.annotations(0, 60)).status == "error"


async def test_no_servers_at_all():
    b = McpBackend({})
    caps = await b.capabilities()
    assert not (caps.metrics or caps.logs or caps.traces or caps.annotations)
    assert "compass init" in caps.missing["metrics"]
    await b.aclose()


async def test_calls_run_concurrently_within_the_limit(server_cfg):
    async with McpBackend({"m": server_cfg()}, max_concurrency=2) as b:
        results = await asyncio.gather(*(b.query_range("slow", 0, 60, 15) for _ in range(6)))
        assert all(r.status == "ok" for r in results)
        # "stats" is not a tool COMPASS may call, so the test asks the session directly
        res = await b.servers["m"].session.call_tool("stats", {})
        assert json.loads(res.content[0].text)["max"] == 2


async def test_verbs_racing_at_the_start_all_wait_for_the_servers(server_cfg):
    b = McpBackend({"m": server_cfg()})
    try:
        results = await asyncio.gather(*(b.query_range("up", 0, 60, 15) for _ in range(4)), b.capabilities())
        assert all(r.status == "ok" for r in results[:4]) and results[4].metrics
    finally:
        await b.aclose()
    r = await b.query_range("up", 0, 60, 15)
    assert r.status == "error" and "closed" in r.error


async def test_sessions_close_from_their_owner_whatever_task_calls(server_cfg):
    b = McpBackend({"m": server_cfg()})
    await asyncio.create_task(b.start())  # started from another task
    r = await asyncio.create_task(b.query_range("up", 0, 60, 15))
    assert r.status == "ok"
    await b.aclose()
    await b.aclose()  # idempotent
    assert b.servers["m"].session is None


def test_parse_prom_payload_shapes():
    # mcp-grafana: {"data": matrix}; prometheus-mcp-server: {"resultType", "result"}; scalar pairs
    m = parse_prom_payload({"data": [{"metric": {"a": "1"}, "values": [[1, "2"], [2, "+Inf"]]}]}, "q", "s")
    assert m.status == "ok" and list(m.series[0].v) == [2.0, float("inf")]
    v = parse_prom_payload({"resultType": "vector", "result": [{"metric": {}, "value": [5, "3"]}]}, "q", "s")
    assert v.series[0].t[0] == 5 and v.series[0].v[0] == 3
    assert parse_prom_payload({"resultType": "scalar", "result": [5, "7"]}, "q", "s").scalar == 7
    assert parse_prom_payload({"data": [5, "7"]}, "q", "s").scalar == 7
    assert parse_prom_payload({"data": None, "hints": {}}, "q", "s").status == "no_data"
    with pytest.raises(ValueError):
        parse_prom_payload({"unexpected": 1}, "q", "s")


class _Alertmanager:
    """Alertmanager's v2 alerts API on 127.0.0.1 (the real one is not installed here)."""

    def __init__(self, alerts):
        import http.server
        import threading

        body = json.dumps(alerts).encode()

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                ok = self.path.startswith("/api/v2/alerts")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if ok else b"{}")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_firing_alerts_from_alertmanager_feed_the_request_builder():
    from compass_tui.config import Config
    from compass_tui.engine.request import request_from_alert
    from compass_tui.live_sources import LiveSourceError, firing_alerts

    am = _Alertmanager([
        {"labels": {"alertname": "HighLatency", "service": "checkout"}, "annotations": {"summary": "p99 up"},
         "startsAt": "2025-10-07T08:34:39Z", "endsAt": "2025-10-07T09:34:39Z", "status": {"state": "active"},
         "fingerprint": "b", "generatorURL": "http://prom/graph"},
        {"labels": {"alertname": "Silenced"}, "startsAt": "2025-10-07T08:00:00Z", "status": {"state": "suppressed"}},
        {"labels": {"alertname": "HighErrorRate", "job": "api"}, "startsAt": "2025-10-07T08:30:00Z",
         "status": {"state": "active"}},
    ])
    try:
        alerts = await firing_alerts(Config(alertmanager_url=am.url))
    finally:
        am.close()
    assert [a["labels"]["alertname"] for a in alerts] == ["HighErrorRate", "HighLatency"]  # oldest first
    req = request_from_alert({"alerts": [alerts[1]]})
    assert req.service == "checkout" and req.title == "p99 up"
    with pytest.raises(LiveSourceError, match="cannot connect"):
        await firing_alerts(Config(alertmanager_url="http://127.0.0.1:9"))
    with pytest.raises(LiveSourceError, match="no source of firing alerts"):
        await firing_alerts(Config())


def test_open_live_backend_uses_the_config(tmp_path):
    from compass_tui.config import Config
    from compass_tui.live_sources import open_live_backend

    cfg = Config(mcp_servers={"a": McpServerConfig(command="x"), "off": McpServerConfig(command="y", enabled=False)},
                 mcp_max_concurrency=3)
    b = open_live_backend(cfg, window=(1.0, 2.0))
    assert isinstance(b, Backend) and set(b.servers) == {"a"} and b.window == (1.0, 2.0)


async def test_secrets_from_the_environment_are_redacted_from_errors(server_cfg, monkeypatch):
    monkeypatch.setenv("MY_GRAFANA_TOKEN", "glsa_verysecret_123")
    cfg = server_cfg(env={"GRAFANA_SERVICE_ACCOUNT_TOKEN": "${MY_GRAFANA_TOKEN}"})
    async with McpBackend({"m": cfg}) as b:
        r = await b.query_range("leak", 0, 60, 15)
        assert r.status == "error" and "401 for token ***" in r.error
        assert "glsa_verysecret_123" not in r.error


def test_times_sent_to_servers_are_rfc3339_with_at_most_milliseconds():
    from compass_tui.telemetry.mcp_backend import rfc3339

    assert rfc3339(1759824000) == "2025-10-07T08:00:00Z"
    assert rfc3339(1759824000.5) == "2025-10-07T08:00:00.500Z"
    assert rfc3339(1759824000.9996) == "2025-10-07T08:00:01Z"

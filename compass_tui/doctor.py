"""``compass doctor``: connect to every configured source, say what each can answer, run one
cheap query per signal, and give the fix for every gap. The app's integration-health pane
shows the same rows (``await health(config)``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

from compass_tui.config import Config
from compass_tui.telemetry.mcp_backend import McpBackend, rfc3339

SIGNALS = ("metrics", "logs", "traces", "annotations")
FIX_NO_SOURCE = {
    "metrics": "add mcp-grafana with a Prometheus datasource, or prometheus-mcp-server (`compass init` shows both)",
    "logs": "add mcp-grafana with a Loki datasource (`compass init`)",
    "traces": "add mcp-grafana with a Tempo datasource (`compass init`)",
    "annotations": "add mcp-grafana so deploys and config changes (annotations) are visible",
    "alerts": "set alertmanager_url, or add mcp-grafana (Grafana alerting)",
}


@dataclass
class HealthRow:
    """One line of the health table."""

    source: str
    """Server name (``grafana``), ``alertmanager``, or ``(none)`` for a signal nobody serves."""
    check: str
    """``connect``, a signal (``metrics``, ``logs``, ``traces``, ``annotations``) or ``alerts``."""
    ok: bool
    detail: str
    fix: str | None = None
    wall_s: float = 0.0
    required: bool = True
    """Whether a failure here means COMPASS cannot investigate as configured (exit 1)."""
    tools: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _fix_for(error: str, server: str, transport: str) -> str:
    e = error.lower()
    if "command not found" in e:
        return f"install the server or fix mcp_servers.{server}.command"
    if "not set" in e:
        return "export the environment variable it names"
    if "401" in e or "403" in e or "unauthor" in e or "forbidden" in e:
        return "check the token (a Grafana service account with the Viewer role)"
    if "no answer within" in e or "did not start" in e:
        return f"check the server can reach its backend; raise mcp_servers.{server}.tool_timeout_sec if it is slow"
    if "connect" in e or "refused" in e:
        return "check the URL the server points at (GRAFANA_URL / PROMETHEUS_URL) is reachable from here"
    if transport == "http":
        return f"check mcp_servers.{server}.url is up (e.g. `compass replay BUNDLE --http PORT`)"
    return f"run the server by hand to see its error: {server}"


async def _check_server(name: str, backend: McpBackend, now: float) -> list[HealthRow]:
    st = backend.servers[name]
    rows: list[HealthRow] = []
    transport = st.config.transport
    if st.status != "ready":
        rows.append(HealthRow(name, "connect", False, st.error or st.status, _fix_for(st.error or "", name, transport)))
        return rows
    what = st.family or "unknown tools"
    rows.append(
        HealthRow(name, "connect", True, f"{st.server_info or 'server'} over {transport}: {len(st.tools)} tools ({what})",
                  tools=sorted(st.tools))
    )
    checks: list[tuple[str, str, dict]] = []
    ds = st.datasources
    if st.family == "prometheus":
        checks.append(("metrics", "execute_query", {"query": "count(up)", "time": str(int(now))}))
    elif st.family == "grafana":
        if ds.get("metrics"):
            checks.append(("metrics", "query_prometheus", {"datasourceUid": ds["metrics"], "expr": "count(up)",
                                                           "endTime": rfc3339(now), "queryType": "instant"}))
        if ds.get("logs"):
            checks.append(("logs", "list_loki_label_names", {"datasourceUid": ds["logs"], "startRfc3339": rfc3339(now - 3600),
                                                             "endRfc3339": rfc3339(now)}))
        if ds.get("traces") and "search_tempo_traces" in st.tools:
            checks.append(("traces", "search_tempo_traces", {"datasourceUid": ds["traces"], "query": "{ }",
                                                             "start": rfc3339(now - 900), "end": rfc3339(now)}))
    if "get_annotations" in st.tools:
        checks.append(("annotations", "get_annotations", {"from": int((now - 86400) * 1000), "to": int(now * 1000), "limit": 1}))

    async def run(signal: str, tool: str, args: dict) -> HealthRow:
        if tool not in st.tools:
            return HealthRow(name, signal, False, f"no {tool} tool", "upgrade the server", required=False)
        out = await backend.call_tool(name, tool, args, timeout_s=min(st.config.tool_timeout_s, 15.0))
        if out.error:
            return HealthRow(name, signal, False, out.error, _fix_for(out.error, name, transport), out.wall_s)
        uid = ds.get(signal)
        via = f" (datasource {uid})" if uid else ""
        return HealthRow(name, signal, True, f"{tool} answered in {out.wall_s * 1000:.0f} ms{via}", wall_s=out.wall_s)

    rows.extend(await asyncio.gather(*(run(*c) for c in checks)))
    if st.family == "grafana":
        for sig, key in (("metrics", "prometheus"), ("logs", "loki"), ("traces", "tempo")):
            if not ds.get(sig):
                rows.append(HealthRow(name, sig, False, f"Grafana lists no {key.capitalize()} datasource",
                                      f"add one in Grafana, or set mcp_servers.{name}.{key}_datasource_uid", required=False))
    return rows


async def _check_alertmanager(url: str) -> HealthRow:
    from compass_tui.live_sources import LiveSourceError, _alertmanager_alerts

    t0 = time.perf_counter()
    try:
        alerts = await asyncio.to_thread(_alertmanager_alerts, url)
    except LiveSourceError as e:
        return HealthRow("alertmanager", "alerts", False, str(e), "check alertmanager_url", time.perf_counter() - t0)
    return HealthRow("alertmanager", "alerts", True, f"{len(alerts)} firing", wall_s=time.perf_counter() - t0)


async def health(config: Config, now: float | None = None) -> list[HealthRow]:
    """Health rows for every configured source, plus one row per signal nobody serves."""
    now = time.time() if now is None else now
    servers = config.enabled_servers()
    rows: list[HealthRow] = []
    if servers:
        backend = McpBackend.from_config(config, window=(now - 3600, now))
        try:
            await backend.start()
            per = await asyncio.gather(*(_check_server(n, backend, now) for n in backend.servers))
            for r in per:
                rows.extend(r)
        finally:
            await backend.aclose()
    else:
        rows.append(HealthRow("(none)", "connect", False, "no MCP servers configured",
                              "run `compass init`, then edit the file it writes"))
    if config.alertmanager_url:
        rows.append(await _check_alertmanager(config.alertmanager_url))
    served = {r.check for r in rows if r.ok}
    for sig in SIGNALS:
        if sig not in served:
            rows.append(HealthRow("(none)", sig, False, f"no source answers {sig}", FIX_NO_SOURCE[sig],
                                  required=sig == "metrics"))
    if "alerts" not in served and not any(r.check == "alerts" for r in rows):
        alerting = any("alerting_rules_read" in r.tools for r in rows)
        if not alerting:
            rows.append(HealthRow("(none)", "alerts", False, "no source lists firing alerts", FIX_NO_SOURCE["alerts"],
                                  required=False))
    return rows


def render_table(rows: list[HealthRow]) -> str:
    """A plain-text table: SOURCE, CHECK, STATUS, DETAIL, and the FIX under each failure."""
    head = ("SOURCE", "CHECK", "STATUS", "DETAIL")
    body = [(r.source, r.check, "ok" if r.ok else ("FAIL" if r.required else "missing"), r.detail) for r in rows]
    w = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head[:3])]
    lines = [f"{head[0]:<{w[0]}}  {head[1]:<{w[1]}}  {head[2]:<{w[2]}}  {head[3]}"]
    for r, b in zip(rows, body):
        lines.append(f"{b[0]:<{w[0]}}  {b[1]:<{w[1]}}  {b[2]:<{w[2]}}  {b[3]}")
        if not r.ok and r.fix:
            lines.append(f"{'':<{w[0]}}  {'':<{w[1]}}  {'':<{w[2]}}  fix: {r.fix}")
    return "\n".join(lines)

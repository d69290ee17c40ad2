"""Models the user owns: config, litellm over real HTTP to a scripted server (OpenAI and
Ollama APIs), exact costs and budgets, redaction, failures, and the hypothesis agent's
evidence discipline on simulated incidents."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from model_server import ModelServer, Scripted  # noqa: E402
from test_tui_app import wait_for_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OPENAI = "openai/gpt-4o-mini"
OLLAMA = "ollama_chat/llama3.1"


def models(base: str, model: str = OPENAI, role: str = "hypotheses", timeout: float = 10.0, **cfg):
    from compass_tui.config import ModelsConfig
    from compass_tui.llm.client import Models

    api = base + "/v1" if model.startswith("openai/") else base
    mc = ModelsConfig(**{role: model}, endpoints={model: {"api_base": api, "timeout_s": timeout}}, **cfg)
    return Models(mc, environ={})


def litellm_price(model: str, p: int, c: int) -> float:
    from compass_tui.llm.client import load_litellm

    a, b = load_litellm().cost_per_token(model=model, prompt_tokens=p, completion_tokens=c)
    return a + b


# ---------------------------------------------------------------------- config


def test_models_config_roles_endpoints_and_key_references(tmp_path, monkeypatch):
    from compass_tui.config import ConfigError, load_config

    p = tmp_path / "config.toml"
    p.write_text('[models]\ndefault = "ollama_chat/llama3.1"\nhypotheses = "openai/gpt-4o-mini"\n'
                 '[models.endpoints."openai/gpt-4o-mini"]\napi_base = "http://127.0.0.1:8000/v1"\n'
                 'api_key = "${MY_OPENAI_KEY}"\n[budget]\nmax_tokens = 5000\n')
    cfg = load_config(p)
    assert cfg.models.for_role("hypotheses") == "openai/gpt-4o-mini"
    assert cfg.models.for_role("chat") == "ollama_chat/llama3.1"  # default serves the others
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-test-1234567890abcdefghij")
    assert cfg.models.endpoints["openai/gpt-4o-mini"].resolved_key("openai/gpt-4o-mini") == "sk-test-1234567890abcdefghij"
    b = cfg.budget.to_budget()
    assert b.max_tokens == 5000 and b.usd_cap("warning") == 10.0 and b.usd_cap("critical") == 20.0
    p.write_text('[models]\ndefault = "openai/gpt-4o-mini"\n[models.endpoints."openai/gpt-4o-mini"]\napi_key = "sk-literal"\n')
    with pytest.raises(ConfigError, match="environment reference"):
        load_config(p)
    p.write_text('[models]\nnarrator = "x"\n')
    with pytest.raises(ConfigError, match="models.narrator: unknown key"):
        load_config(p)


def test_no_model_runs_rules_only_without_importing_litellm(sim_bundle_factory, tmp_path):
    bundle = sim_bundle_factory("db_slow_queries", 3)
    code = ("import sys, runpy; sys.argv=['compass','investigate','--bundle',%r,'--json','--no-store'];"
            "from compass_tui.cli import main\ntry:\n  main()\nexcept SystemExit: pass\n"
            "print('LITELLM', 'litellm' in sys.modules, file=sys.stderr)") % str(bundle)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    report = json.loads(out.stdout)
    assert "LITELLM False" in out.stderr
    assert report["cost"]["calls"] == 0 and report["cost"]["usd"] == 0.0 and report["cost"]["budget_hit"] is False


# ---------------------------------------------------------------------- the client over real HTTP


@pytest.mark.parametrize("stream", [False, True])
def test_openai_compatible_tokens_and_usd_are_the_servers_priced_by_litellm(stream):
    from compass_tui.llm.client import Caps

    tool = {"name": "run_promql", "arguments": {"query": 'up{job="x"}'}}
    with ModelServer([Scripted(content="the answer", tool_calls=[tool], prompt_tokens=1234, completion_tokens=56)]) as srv:
        s = models(srv.base).session(Caps())
        r = asyncio.run(s.complete("hypotheses", [{"role": "user", "content": "why?"}], stream=stream, tools=[
            {"type": "function", "function": {"name": "run_promql", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]))
        sent = srv.chat_requests()[-1]
    assert r.content == "the answer"
    assert r.tool_calls[0]["name"] == "run_promql" and r.tool_calls[0]["arguments"] == {"query": 'up{job="x"}'}
    assert (r.call.prompt_tokens, r.call.completion_tokens, r.call.tokens_estimated) == (1234, 56, False)
    assert r.call.usd == pytest.approx(litellm_price(OPENAI, 1234, 56), rel=1e-9) and r.call.usd > 0
    if stream:
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    c = s.by_role["hypotheses"]
    assert (c.calls, c.prompt_tokens, c.completion_tokens) == (1, 1234, 56) and c.latency_s > 0


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_chat_api_tokens_reported_and_local_cost_zero(stream):
    from compass_tui.llm.client import Caps

    with ModelServer([Scripted(content="a local answer, streamed in parts", prompt_tokens=321, completion_tokens=45)]) as srv:
        s = models(srv.base, OLLAMA).session(Caps())
        deltas: list[str] = []
        r = asyncio.run(s.complete("hypotheses", [{"role": "user", "content": "hi"}], stream=stream, on_delta=deltas.append))
        assert srv.chat_requests()[-1]["model"] == "llama3.1"
    assert r.content == "a local answer, streamed in parts" and (r.call.prompt_tokens, r.call.completion_tokens) == (321, 45)
    assert r.call.usd == 0.0 and r.call.priced
    if stream:
        assert "".join(deltas) == "a local answer, streamed in parts" and len(deltas) > 1


def test_tokens_estimated_only_when_the_provider_reports_none():
    from compass_tui.llm.client import Caps

    with ModelServer([Scripted(content="an answer of a few words", report_usage=False)]) as srv:
        r = asyncio.run(models(srv.base).session(Caps()).complete("hypotheses", [{"role": "user", "content": "hello there"}]))
    assert r.call.tokens_estimated and r.call.prompt_tokens > 0 and r.call.completion_tokens > 0


@pytest.mark.parametrize("reply,kind", [
    (Scripted(status=429), "rate_limit"), (Scripted(status=500), "server"), (Scripted(garbage=True), "invalid"),
    (Scripted(hang_s=6), "timeout"), (None, "unreachable"),
])
def test_failures_are_one_line_errors_naming_role_and_model(reply, kind):
    from compass_tui.llm.client import Caps, ModelError

    if reply is None:
        m = models("http://127.0.0.1:9", timeout=2)
        s = m.session(Caps())
        with pytest.raises(ModelError) as e:
            asyncio.run(s.complete("hypotheses", [{"role": "user", "content": "x"}]))
    else:
        with ModelServer([reply]) as srv:
            s = models(srv.base, timeout=1.5).session(Caps())
            with pytest.raises(ModelError) as e:
                asyncio.run(s.complete("hypotheses", [{"role": "user", "content": "x"}]))
    assert e.value.kind == kind
    assert str(e.value).startswith(f"hypotheses model {OPENAI}: ") and "\n" not in str(e.value)
    assert s.calls[0].status == "error" and s.calls[0].usd == 0.0


def test_budgets_are_checked_before_each_call():
    from compass_tui.llm.client import BudgetStop, Caps

    msgs = [{"role": "user", "content": "x " * 200}]
    with ModelServer([Scripted(content="ok", prompt_tokens=1000, completion_tokens=1000)]) as srv:
        s = models(srv.base).session(Caps(max_calls=2))
        asyncio.run(s.complete("hypotheses", msgs))
        asyncio.run(s.complete("hypotheses", msgs))
        with pytest.raises(BudgetStop, match="call budget"):
            asyncio.run(s.complete("hypotheses", msgs))
        assert len(srv.chat_requests()) == 2 and s.budget_hit
        # a spend cap below what the prompt alone costs: refused before anything is sent
        s = models(srv.base).session(Caps(max_usd=1e-7))
        with pytest.raises(BudgetStop, match="spend budget"):
            asyncio.run(s.complete("hypotheses", msgs))
        assert len(srv.chat_requests()) == 2 and s.calls == []
        s = models(srv.base).session(Caps(max_usd=0.0004))  # allows one call of ~$0.00075, not a second
        asyncio.run(s.complete("hypotheses", msgs))
        with pytest.raises(BudgetStop):
            asyncio.run(s.complete("hypotheses", msgs))
        s = models(srv.base).session(Caps(max_tokens=1500))
        asyncio.run(s.complete("hypotheses", msgs))
        with pytest.raises(BudgetStop, match="token budget"):
            asyncio.run(s.complete("hypotheses", msgs))


# ---------------------------------------------------------------------- redaction

SECRETS = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "slack": "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    "stripe": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "openai": "sk-proj-Xy7Tq3Lm9Pz2Kc8Vb4Nw6Rj1Hs5Df0Ga",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "bearer": "mF_9.B5f-4.1JqM",
    "password": "Tr0ub4dor&3horse",
    "dsn_password": "s3cr3tPassw0rd",
    "email": "jane.doe@example.com",
    "ip": "10.42.7.19",
    "google": "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "grafana": "glsa_abcdefghijklmnopqrstuvwxyz012345_0a1b2c3d",
}
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n"
               "7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh\n"
               "-----END RSA PRIVATE KEY-----")


def secret_lines() -> list[str]:
    s = SECRETS
    return [
        f"level=error msg=\"s3 upload failed\" aws_access_key_id={s['aws']} aws_secret_access_key={s['aws_secret']}",
        f"level=error msg=\"git fetch failed\" url=https://{s['github']}@github.com/acme/app.git",
        f"level=error msg=\"notify failed\" token={s['slack']} stripe_key={s['stripe']}",
        f"level=error msg=\"upstream 401\" header=\"Authorization: Bearer {s['bearer']}\" jwt={s['jwt']}",
        f"level=error msg=\"db connect failed\" password={s['password']} dsn=postgres://app:{s['dsn_password']}@db:5432/app",
        f"level=error msg=\"login failed for {s['email']} from {s['ip']}\" key={s['openai']} g={s['google']} sa={s['grafana']}",
        "level=error msg=\"tls setup failed\" key=\"" + PRIVATE_KEY.replace("\n", "\\n") + "\"",
    ]


def test_redaction_removes_real_secret_formats():
    from compass_tui.llm.redact import Redactor

    r = Redactor(redact_ips=True)
    out = r.redact("\n".join(secret_lines()) + "\n" + PRIVATE_KEY)
    for name, value in SECRETS.items():
        assert value not in out, name
    assert "PRIVATE KEY-----\nMII" not in out and "MIIEowIBAAKCAQEA" not in out
    assert "db connect failed" in out and "s3 upload failed" in out  # the message stays readable
    kept = Redactor(redact_ips=False).redact(f"from {SECRETS['ip']}")
    assert SECRETS["ip"] in kept


# ---------------------------------------------------------------------- the hypothesis agent


def _plant_secrets(bundle: Path, out: Path) -> Path:
    """The bundle with error lines carrying secrets on every stream after the alert."""
    import shutil

    shutil.copytree(bundle, out)
    doc = json.loads((out / "logs.json").read_text())
    inc = json.loads((out / "incident.json").read_text())
    for st in doc["streams"][:8]:
        last = int(st["values"][-1][0]) if st["values"] else 0
        for i, line in enumerate(secret_lines()):
            for k in range(4):
                st["values"].append([str(last - (k * 60 + i) * 1_000_000_000), line])
        st["values"].sort(key=lambda v: int(v[0]))
    (out / "logs.json").write_text(json.dumps(doc))
    assert inc
    return out


def _run(bundle: Path, llm=None, budget=None):
    from compass_tui.engine import Budget, EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.telemetry.bundle import open_bundle

    async def go():
        backend = open_bundle(bundle)
        req = request_from_bundle_meta(backend.manifest, backend.incident)
        try:
            return await run_to_report(req, EngineDeps(backend=backend, llm=llm, budget=budget or Budget()))
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _truth(bundle: Path) -> tuple[str, str]:
    t = json.loads((bundle / "truth.json").read_text())["culprit"]
    return t["fault"], t["service"]


def made_up_claim(req, path):
    body = json.dumps({"hypotheses": [
        {"fault": "other:cosmic-rays", "service": "ghost-service", "title": "cosmic rays hit ghost-service", "why": "certain",
         "predictions": [{"language": "promql", "query": "up", "expect": "present"}]},
        {"fault": "memory_leak", "service": "ghost-db", "title": "ghost-db leaks", "why": "certain",
         "predictions": [{"language": "promql", "query": 'process_resident_memory_bytes{service="ghost-db"}', "expect": "rises"}]},
    ]})
    return Scripted(content=body, prompt_tokens=2000, completion_tokens=150)


def test_made_up_service_never_supported_culprit_stays_first_no_secret_sent(sim_bundle_factory, tmp_path):
    bundle = _plant_secrets(sim_bundle_factory("db_connection_pool_exhaustion", 2), tmp_path / "planted")
    fault, culprit = _truth(bundle)
    rules = _run(bundle)
    assert (rules.hypotheses[0].fault, rules.hypotheses[0].service) == (fault, culprit)
    with ModelServer(made_up_claim) as srv:
        report = _run(bundle, models(srv.base))
        raw = b"".join(srv.raw).decode()
    assert len(srv.chat_requests()) == 1
    assert "level=error" in raw or "Services in the telemetry" in raw  # the model really got the incident
    for name, value in SECRETS.items():
        assert value not in raw, f"{name} reached the model"
    assert "MIIEowIBAAKCAQEA" not in raw
    top = report.hypotheses[0]
    assert (top.fault, top.service) == (fault, culprit) and top.status == "supported"
    ghosts = [h for h in report.hypotheses if h.service.startswith("ghost-")]
    assert len(ghosts) == 2 and all(h.status != "supported" for h in ghosts)
    assert "does not appear in the telemetry" in ghosts[0].title
    c = report.cost
    assert (c.calls, c.prompt_tokens, c.completion_tokens) == (1, 2000, 150)
    assert c.usd == pytest.approx(litellm_price(OPENAI, 2000, 150), rel=1e-9)
    assert c.by_agent["hypotheses"].calls == 1 and c.by_agent["hypotheses"].usd == c.usd
    assert c.model_calls[0].proposed == ["other:cosmic-rays@ghost-service", "memory_leak@ghost-db"]
    assert c.model_calls[0].changed_ranking is False


@pytest.mark.parametrize("reply", [Scripted(garbage=True), Scripted(status=500), Scripted(hang_s=8),
                                   Scripted(content="I think it is the database, probably."), Scripted(status=429)])
def test_failing_model_degrades_and_the_culprit_stays_first(sim_bundle_factory, reply):
    bundle = sim_bundle_factory("db_connection_pool_exhaustion", 2)
    fault, culprit = _truth(bundle)
    with ModelServer([reply]) as srv:
        report = _run(bundle, models(srv.base, timeout=2))
    assert (report.hypotheses[0].fault, report.hypotheses[0].service) == (fault, culprit)
    d = [x for x in report.degraded if x.signal == "model:hypotheses"]
    assert d and OPENAI in d[0].reason and "hypotheses" in d[0].reason
    call = report.cost.model_calls[0]
    assert report.cost.calls == 1 and call.status == ("ok" if reply.content else "error")
    # a failed call costs nothing; an answer that is not the JSON asked for is still paid for
    assert report.cost.usd == (pytest.approx(litellm_price(OPENAI, 100, 20)) if reply.content else 0.0)


def test_unreachable_model_degrades(sim_bundle_factory):
    bundle = sim_bundle_factory("db_connection_pool_exhaustion", 2)
    report = _run(bundle, models("http://127.0.0.1:9", timeout=2))
    d = [x for x in report.degraded if x.signal == "model:hypotheses"]
    assert d and "unreachable" in d[0].reason and d[0].fix
    assert report.hypotheses[0].status == "supported"


def test_tiny_budget_stops_before_spending_and_says_so(sim_bundle_factory):
    from compass_tui.engine import Budget

    bundle = sim_bundle_factory("db_connection_pool_exhaustion", 2)
    with ModelServer(made_up_claim) as srv:
        report = _run(bundle, models(srv.base), Budget(max_usd=1e-6))
        assert len(srv.chat_requests()) <= 1
    assert report.cost.budget_hit and report.cost.usd <= 1e-6 + report.cost.usd * (report.cost.calls > 0)
    assert any(d.signal == "model:hypotheses" and "budget" in d.reason for d in report.degraded)
    assert report.hypotheses[0].status == "supported"


def test_correct_claim_outside_the_catalog_is_supported_and_a_wrong_one_is_not(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import models as bench  # benchmarks/models.py

    bundle, culprit, label = bench.outside_catalog(1, tmp_path)
    rules = _run(bundle)
    others = sorted({h.service for h in rules.hypotheses if h.service != culprit})
    with ModelServer(bench.script_for(culprit, label, others[0], True)) as srv:
        good = _run(bundle, models(srv.base))
    h = next(h for h in good.hypotheses if h.agent == "model:hypotheses")
    assert (h.fault, h.service, h.status) == (bench.SLUG, culprit, "supported")
    ran = [e for e in h.evidence if e.kind == "metric"]
    assert ran and ran[0].supports and bench.NEW_NAME in ran[0].query and "as the model predicted" in ran[0].summary
    # a specific cause borne out ranks above the engine's where-only readings of the same service
    where = [x for x in good.hypotheses if x.service == culprit and x.fault in ("code_defect", "unexplained")]
    assert all(x.rank > h.rank for x in where)
    assert good.hypotheses[0].service == rules.hypotheses[0].service
    assert good.cost.model_calls[0].changed_ranking is (h.rank == 1)
    with ModelServer(bench.script_for(culprit, label, others[0], False)) as srv:
        bad = _run(bundle, models(srv.base))
    mine = [h for h in bad.hypotheses if h.agent == "model:hypotheses"]
    assert mine and all(h.status == "inconclusive" for h in mine)
    assert all("not borne out" in h.title for h in mine)
    alive = [h for h in bad.hypotheses if h.status != "disproven"]
    assert all(h.agent == "model:hypotheses" for h in alive[len(alive) - len(mine):])  # after the engine's own


def test_stats_cost_per_role_and_model_against_confirmed_causes(tmp_path, capsys):
    from compass_tui.cli import main
    from compass_tui.models import Cost, Hypothesis, Incident, ModelCall, Report
    from compass_tui.store import Store

    store_path = tmp_path / "m.duckdb"
    with Store.open(store_path) as st:
        for i, (proposed, usd) in enumerate(((["other:worker-pool-saturation@api"], 0.002), (["other:gc@db"], 0.003))):
            calls = [ModelCall(role="hypotheses", model=OPENAI, prompt_tokens=1000, completion_tokens=100, usd=usd,
                               latency_s=0.5 + i, proposed=proposed, changed_ranking=i == 0)]
            rep = Report(investigation_id=f"inv-{i}", incident=Incident(title="t", service="api"),
                         hypotheses=[Hypothesis(id="other:worker-pool-saturation@api", rank=1, fault="other:worker-pool-saturation",
                                                service="api", title="x", confidence=0.7, status="supported")],
                         cost=Cost(usd=usd, calls=1, model_calls=calls), signature="A|api|errors|api")
            st.record_investigation(rep)
        st.feedback("inv-0", "confirm", "other:worker-pool-saturation", "api")
        st.feedback("inv-1", "confirm", "other:worker-pool-saturation", "api")
    assert main(["stats", "--cost", "--json", "--store", str(store_path)]) in (0, None)
    rows = json.loads(capsys.readouterr().out)["models"]
    assert len(rows) == 1
    r = rows[0]
    assert (r["role"], r["model"], r["calls"], r["confirmed"], r["judged"], r["changed_ranking"]) == ("hypotheses", OPENAI, 2, 1, 2, 1)
    assert r["usd"] == pytest.approx(0.005) and r["latency_mean_s"] == pytest.approx(1.0)
    assert main(["stats", "--cost", "--store", str(store_path)]) in (0, None)
    out = capsys.readouterr().out
    assert "hypotheses" in out and "$0.0050" in out and "1/2" in out


def test_chat_answers_with_read_only_tools_streamed_and_cites_its_queries(sim_bundle_factory):
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.llm import chat as model_chat
    from compass_tui.llm.client import Caps
    from compass_tui.telemetry.bundle import open_bundle

    bundle = sim_bundle_factory("db_connection_pool_exhaustion", 2)
    rules = _run(bundle)
    fault, culprit = _truth(bundle)
    seen: list[dict] = []

    def script(req, path):
        seen.append(req)
        if not any(m.get("role") == "tool" for m in req["messages"]):
            return Scripted(tool_calls=[{"name": "run_promql", "arguments": {"query": "up"}},
                                        {"name": "show_evidence", "arguments": {"hypothesis": "1"}}],
                            prompt_tokens=500, completion_tokens=30)
        return Scripted(content=f"The pool of {culprit} ran out first.\nSee the pool metric.", prompt_tokens=900, completion_tokens=40)

    async def go(srv):
        backend = open_bundle(bundle)
        req = request_from_bundle_meta(backend.manifest, backend.incident)
        s = models(srv.base, role="chat").session(Caps())
        deltas: list[str] = []
        try:
            a = await model_chat.answer(s, "what broke first?", hypotheses=rules.hypotheses, backend=backend,
                                        request=req, history=[], on_delta=deltas.append)
        finally:
            await backend.aclose()
        return a, s, deltas

    with ModelServer(script) as srv:
        a, s, deltas = asyncio.run(go(srv))
    assert a.text.startswith(f"The pool of {culprit}") and "".join(deltas) == a.text and len(deltas) > 1
    assert a.queries == ["up"]
    tool_msgs = [m for m in seen[-1]["messages"] if m["role"] == "tool"]
    assert "series" in tool_msgs[0]["content"] and f"{fault}@{culprit}" in tool_msgs[1]["content"]
    c = s.by_role["chat"]
    assert (c.calls, c.prompt_tokens, c.completion_tokens) == (2, 1400, 70)
    assert c.usd == pytest.approx(litellm_price(OPENAI, 500, 30) + litellm_price(OPENAI, 900, 40), rel=1e-9)


async def test_app_chat_answers_free_text_with_a_model_and_esc_cancels(tmp_path):
    from test_tui_support import parse, scripted, write_bundle
    from textual.widgets import Input, RichLog

    from compass_tui.tui.app import build_app

    bundle = write_bundle(tmp_path / "bundle")
    hang = {"on": False}

    def script(req, path):
        if hang["on"]:
            return Scripted(content="too late", hang_s=20)
        if not any(m.get("role") == "tool" for m in req["messages"]):
            return Scripted(tool_calls=[{"name": "explain_ranking", "arguments": {}},
                                        {"name": "run_promql", "arguments": {"query": 'sum(rate(http_requests_total{service="checkout"}[1m]))'}}])
        return Scripted(content="payments ran out of pool connections first;\nthen checkout failed.", prompt_tokens=700, completion_tokens=25)

    with ModelServer(script) as srv:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[models]\nchat = "{OPENAI}"\n[models.endpoints."{OPENAI}"]\napi_base = "{srv.base}/v1"\ntimeout_s = 30\n')
        app = build_app(parse("--bundle", str(bundle), "--no-store", "--config", str(cfg)), investigate=scripted())
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for_report(pilot, 5)
            screen = app.investigation
            log = screen.query_one("#chat-log", RichLog)
            await pilot.press("i")
            screen.query_one("#chat-input", Input).value = "what broke first?"
            await pilot.press("enter")

            def text() -> str:
                return "\n".join(s.text for s in log.lines)

            for _ in range(600):
                await pilot.pause(0.1)
                if "ran: " in text():
                    break
            t = text()
            assert "payments ran out of pool connections first;" in t and "then checkout failed." in t
            assert 'ran: sum(rate(http_requests_total{service="checkout"}[1m]))' in t
            assert screen.by_agent["chat"].calls == 2
            hang["on"] = True
            screen.query_one("#chat-input", Input).value = "and then?"
            await pilot.press("enter")
            await pilot.pause(0.5)
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert "cancelled" in text() and "too late" not in text()


def test_postmortem_narrative_from_the_postmortem_model(tmp_path):
    from compass_tui.commands.postmortem import postmortem_narrator
    from compass_tui.config import load_config

    with ModelServer([Scripted(content="The pool ran dry; the team restored it.", prompt_tokens=300, completion_tokens=12)]) as srv:
        p = tmp_path / "config.toml"
        p.write_text(f'[models]\npostmortem = "{OPENAI}"\n[models.endpoints."{OPENAI}"]\napi_base = "{srv.base}/v1"\n')
        narrate = postmortem_narrator(load_config(p))
        assert narrate is not None
        text = narrate(f"incident: checkout errors; db password={SECRETS['password']}")
        sent = b"".join(srv.raw).decode()
    assert text == "The pool ran dry; the team restored it."
    assert "checkout errors" in sent and SECRETS["password"] not in sent

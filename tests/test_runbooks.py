"""Runbooks as an engineer uses them: the shipped ones fire on incidents whose cause is outside
the catalog and rank first with their label; errors are one line with the file and line;
``compass runbook new/test/draft``; the post-mortem; time saved; ``compass eval``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from compass_tui.cli import main
from compass_tui.runbooks import RunbookError, load_dirs, load_file, parse_runbook
from compass_tui.sim import generate, write_bundle
from compass_tui.sim.outside import CAUSES, generate_outside, write_outside

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "runbooks"


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the personal runbook folder and the config live in the test's own directory
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def outside_bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("outside")
    return {c: write_outside(generate_outside(c, 11), d / c) for c in CAUSES}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _investigate(capsys, bundle: Path, *extra: str) -> dict:
    code, out, err = _run(capsys, "investigate", "--bundle", str(bundle), "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_shipped_runbooks_all_load() -> None:
    rbs = load_dirs([SHIPPED])
    assert rbs.errors == []
    faults = {rb.fault for rb in rbs.runbooks}
    assert {"other:" + c.replace("_", "-") for c in CAUSES} <= faults


@pytest.mark.parametrize("cause", CAUSES)
def test_each_shipped_runbook_ranks_its_cause_first(capsys, outside_bundles, cause: str, tmp_path: Path) -> None:
    bundle = outside_bundles[cause]
    truth = json.loads((bundle / "truth.json").read_text())["culprit"]
    # without runbooks the catalog cannot name it
    off = tmp_path / "off.toml"
    off.write_text("shipped_runbooks = false\n")
    rules = _investigate(capsys, bundle, "--no-store", "--config", str(off))
    assert all(h["fault"] != truth["fault"] for h in rules["hypotheses"])
    report = _investigate(capsys, bundle, "--no-store")
    top = report["hypotheses"][0]
    assert (top["fault"], top["service"]) == (truth["fault"], truth["service"])
    assert top["status"] == "supported" and top["agent"] == "runbook"
    # labelled with the runbook's name and file, each query cited as it ran
    assert any(e["kind"] == "runbook" and "runbooks/" in e["source"] for e in top["evidence"])
    metric = [e for e in top["evidence"] if e["kind"] == "metric"]
    assert metric and all(e["summary"].startswith("[runbook ") and ".toml)" in e["summary"] for e in metric)
    assert {d["strategy"] for d in top["disproof"]} >= {"temporal_precedence", "scope", "magnitude"}
    assert report["cost"]["by_agent"]["runbooks"]["queries"] >= 6


def test_runbooks_do_not_fire_on_catalog_incidents(capsys, tmp_path: Path) -> None:
    bundle = write_bundle(generate("db_connection_pool_exhaustion", 5), tmp_path / "b")
    off = tmp_path / "off.toml"
    off.write_text("shipped_runbooks = false\n")
    rules = _investigate(capsys, bundle, "--no-store", "--config", str(off))
    report = _investigate(capsys, bundle, "--no-store")
    assert all(h["agent"] != "runbook" for h in report["hypotheses"])
    # the runbooks ran (and found nothing): the ranking is the rules' own
    assert report["cost"]["by_agent"]["runbooks"]["queries"] >= 6
    assert [(h["id"], h["status"]) for h in report["hypotheses"]] == [(h["id"], h["status"]) for h in rules["hypotheses"]]


def test_a_condition_that_always_held_is_ruled_out(capsys, outside_bundles, tmp_path: Path) -> None:
    # lag above 100 holds before the incident too: chronic, not the cause
    rb = tmp_path / "chronic.toml"
    rb.write_text('name = "lag always"\nfault = "other:lag-always"\nservice = "{consumergroup}"\n'
                  '[[query]]\npromql = \'sum by (consumergroup) (kafka_consumergroup_lag)\'\ncondition = "min > 1"\n')
    code, out, _ = _run(capsys, "runbook", "test", str(rb), "--bundle", str(outside_bundles["kafka_consumer_lag"]))
    assert "already held before the incident" in out
    assert re.search(r"magnitude\s+FAILED", out)


def test_errors_are_one_line_with_file_and_line_and_the_others_still_run(tmp_path: Path) -> None:
    d = tmp_path / "rb"
    d.mkdir()
    (d / "good.toml").write_text((SHIPPED / "kafka-consumer-lag.toml").read_text())
    (d / "bad-toml.toml").write_text('name = "x"\nfault = \n')
    (d / "bad-cond.toml").write_text('name = "y"\nfault = "other:y"\n\n[[query]]\npromql = \'up\'\ncondition = "maximum > 3"\n')
    (d / "bad-fault.toml").write_text('name = "z"\nfault = "Other Thing"\n[[query]]\npromql = \'up\'\ncondition = "max > 1"\n')
    rbs = load_dirs([d])
    assert [rb.name for rb in rbs.runbooks] == ["Kafka consumer lag"]
    errs = sorted(rbs.errors)
    assert len(errs) == 3 and all("\n" not in e for e in errs)
    assert re.match(rf"{re.escape(str(d / 'bad-cond.toml'))}:6: condition: .*'maximum' is not a stat", errs[0])
    assert errs[1].startswith(f"{d / 'bad-fault.toml'}:2: fault: expected a catalog fault id or other:<slug>")
    assert errs[2].startswith(f"{d / 'bad-toml.toml'}:2: invalid TOML")


def test_a_broken_runbook_is_reported_and_the_investigation_goes_on(capsys, outside_bundles, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    d = tmp_path / "mine"
    d.mkdir()
    (d / "broken.toml").write_text('name = "b"\nfault = "other:b"\n[[query]]\nsql = "select 1"\n')
    cfg.write_text(f'runbook_dirs = ["{d}"]\n')
    report = _investigate(capsys, outside_bundles["node_not_ready"], "--no-store", "--config", str(cfg))
    assert report["hypotheses"][0]["fault"] == "other:node-not-ready"
    deg = [x for x in report["degraded"] if x["signal"] == "runbooks"]
    assert deg and f"{d / 'broken.toml'}:4" in deg[0]["reason"]


def test_new_template_edited_for_a_cause_outside_the_catalog_fires_and_ranks_first(capsys, outside_bundles, tmp_path) -> None:
    code, out, _ = _run(capsys, "runbook", "new", "Consumer lag")
    assert code == 0
    path = Path(out.split()[1])
    assert path.parent == tmp_path / "config" / "compass" / "runbooks"
    rb = load_file(path)  # the template as written is a valid runbook
    assert rb.fault == "other:consumer-lag"
    text = path.read_text().replace("sum by (service) (rate(my_errors_total[5m]))",
                                    "sum by (consumergroup) (kafka_consumergroup_lag)")
    text = text.replace('# service = "{service}"', 'service = "{consumergroup}"')
    text = text.replace('condition = "max > 1 and ratio >= 5"', 'condition = "max > 1000 and ratio >= 5"')
    path.write_text(text)
    code, out, _ = _run(capsys, "runbook", "test", str(path), "--bundle", str(outside_bundles["kafka_consumer_lag"]))
    assert code == 0, out
    assert "HOLDS" in out and "FIRED: other:consumer-lag" in out and "rank 1 of" in out
    assert re.search(r"max [\d.e+]+.*baseline", out)
    code, out, _ = _run(capsys, "runbook", "new", "Consumer lag")
    assert code == 2  # never over an existing file
    # the personal folder is read by the app and investigate too
    report = _investigate(capsys, outside_bundles["kafka_consumer_lag"], "--no-store")
    assert any(h["fault"] == "other:consumer-lag" for h in report["hypotheses"])


def test_runbook_test_says_when_it_does_not_fire(capsys, outside_bundles) -> None:
    code, out, _ = _run(capsys, "runbook", "test", str(SHIPPED / "kafka-consumer-lag.toml"),
                        "--bundle", str(outside_bundles["node_not_ready"]))
    assert code == 1
    assert "nothing returned" in out and "did not fire" in out
    code, _, err = _run(capsys, "runbook", "test", "/nonexistent.toml", "--bundle", str(outside_bundles["node_not_ready"]))
    assert code == 2 and err.count("\n") == 1 and "/nonexistent.toml:1: cannot read" in err


def test_when_globs_decide_where_a_runbook_applies() -> None:
    from compass_tui.models import InvestigationRequest

    rb = parse_runbook('name = "n"\nfault = "other:n"\n[when]\nalertname = ["High*"]\nlabels = { severity = "crit*" }\n'
                       '[[query]]\npromql = \'up\'\ncondition = "min < 1"\n', "n.toml")
    req = InvestigationRequest(title="t", alertname="HighLatency", labels={"severity": "critical"}, started_at=0,
                               window_start=0, window_end=1)
    assert rb.when.applies(req)
    assert not rb.when.applies(req.model_copy(update={"labels": {"severity": "warning"}}))
    assert not rb.when.applies(req.model_copy(update={"alertname": "DiskFull"}))
    with pytest.raises(RunbookError, match=r"n.toml:4: alertname: expected a glob"):
        parse_runbook('name = "n"\nfault = "other:n"\n[when]\nalertname = 3\n[[query]]\npromql = \'up\'\n'
                      'condition = "min < 1"\n', "n.toml")


def _recorded(capsys, bundle: Path, store: Path, *extra: str) -> str:
    code, out, err = _run(capsys, "investigate", "--bundle", str(bundle), "--json", "--store", str(store), *extra)
    assert code == 0, err
    return json.loads(out)["investigation_id"]


def test_correction_to_other_cause_gives_a_draft_runbook_that_fires(capsys, outside_bundles, tmp_path: Path) -> None:
    store = tmp_path / "m.duckdb"
    off = tmp_path / "off.toml"
    off.write_text("shipped_runbooks = false\n")
    bundle = outside_bundles["jvm_threadpool_exhaustion"]
    truth = json.loads((bundle / "truth.json").read_text())["culprit"]
    inv = _recorded(capsys, bundle, store, "--config", str(off))
    code, out, _ = _run(capsys, "feedback", inv, "--actual", f"other:threads-stuck@{truth['service']}", "--store", str(store))
    assert code == 0 and f"compass runbook draft {inv}" in out
    code, out, err = _run(capsys, "runbook", "draft", inv, "--store", str(store))
    assert code == 0, err
    path = Path(re.search(r"written to (\S+)", out).group(1))
    assert path.parent == tmp_path / "config" / "compass" / "runbooks"
    rb = load_file(path)
    assert rb.draft and rb.fault == "other:threads-stuck" and rb.queries
    assert all(q.text in path.read_text() for q in rb.queries)
    # the queries came from the evidence that ran in that investigation, on that service
    code, out, _ = _run(capsys, "runbook", "test", str(path), "--bundle", str(bundle))
    assert "FIRED: other:threads-stuck" in out, out


def test_postmortem_from_a_confirmed_investigation(capsys, outside_bundles, tmp_path: Path) -> None:
    store = tmp_path / "m.duckdb"
    bundle = outside_bundles["feature_flag_flipped"]
    truth = json.loads((bundle / "truth.json").read_text())["culprit"]
    inv = _recorded(capsys, bundle, store)
    cause = f"{truth['fault']}@{truth['service']}"
    assert _run(capsys, "feedback", inv, "--confirm", cause, "--note", "turned the flag off", "--minutes", "45",
                "--store", str(store))[0] == 0
    out_file = tmp_path / "pm.md"
    code, out, err = _run(capsys, "report", inv, "--postmortem", "--out", str(out_file), "--store", str(store))
    assert code == 0, err
    md = out_file.read_text()
    for section in ("## What happened", "## Timeline (UTC)", "## Contributing causes", "## What went well",
                    "## What was lucky", "## What made sense at the time", "## Evidence",
                    "## Cost of the investigation", "## Action items to review"):
        assert section in md
    assert "**Alert fired**" in md and "hypothesis raised" in md and "**Engineer confirmed**" in md
    assert f"`{cause}`" in md and "turned the flag off" in md
    assert "feature_flag_state" in md  # the query behind the evidence
    assert "Narrative written by templates" in md
    code, _, err = _run(capsys, "report", "inv-nope", "--postmortem", "--store", str(store))
    assert code == 2 and "no investigation 'inv-nope'" in err


def test_stats_time_saved_over_a_week_of_history(capsys, tmp_path: Path) -> None:
    from compass_tui.models import Hypothesis, Incident, Report, Signature, Timings
    from compass_tui.store import Store

    store = tmp_path / "m.duckdb"
    now = time.time()
    with Store.open(store) as s:
        for day in range(7):
            rid = f"inv-{day}"
            rec = now - day * 86400 - 3600
            rep = Report(investigation_id=rid, incident=Incident(title="t", service="api"),
                         hypotheses=[Hypothesis(id="bad_deploy@api", rank=1, fault="bad_deploy", service="api",
                                                title="d", confidence=0.8, status="supported")],
                         timings=Timings(first_hypothesis_s=1.0, total_s=60.0))
            s.record_investigation(rep, Signature(alertname="A", service="api"), recorded_at=rec)
            if day < 4:  # confirmed 4 minutes after it finished, with an estimate of 30 minutes
                s.feedback(rid, "confirm", "bad_deploy", "api", at=rec + 240, minutes_estimate=30)
            elif day < 6:  # confirmed without an estimate: the configured baseline counts
                s.feedback(rid, "confirm", "bad_deploy", "api", at=rec + 240)
    cfg = tmp_path / "c.toml"
    cfg.write_text("baseline_minutes = 20\n")
    code, out, _ = _run(capsys, "stats", "--store", str(store), "--config", str(cfg))
    assert code == 0
    # each took 1 min to run + 4 min to confirm = 5 min: 4 x (30 - 5) + 2 x (20 - 5) = 130
    assert "COMPASS saved you 130 minutes this week" in out
    assert "4 from your estimates, 2 from baseline_minutes = 20" in out
    code, out, _ = _run(capsys, "stats", "--store", str(store), "--json")
    assert json.loads(out)["windows"]["7d"]["time_saved"]["minutes"] == 100.0  # no baseline: estimates only


def test_eval_scores_two_configs_over_five_snapshots(capsys, outside_bundles, tmp_path: Path) -> None:
    store = tmp_path / "m.duckdb"
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    causes = CAUSES[:5]
    for c in causes:
        b = outside_bundles[c]
        dst = snaps / c
        dst.mkdir()
        for f in b.iterdir():
            if f.name != "truth.json":  # the answer comes from the engineer's verdict, not the simulator
                (dst / f.name).write_bytes(f.read_bytes())
        truth = json.loads((b / "truth.json").read_text())["culprit"]
        inv = _recorded(capsys, dst, store)
        assert _run(capsys, "feedback", inv, "--actual", f"{truth['fault']}@{truth['service']}", "--store", str(store))[0] == 0
    rules, rb = tmp_path / "rules.toml", tmp_path / "rb.toml"
    rules.write_text("shipped_runbooks = false\n")
    rb.write_text("shipped_runbooks = true\n")
    code, out, err = _run(capsys, "eval", str(snaps), "--config", str(rules), "--config", str(rb), "--store", str(store), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res[str(rules)]["score"]["with_answer"] == 5 and res[str(rules)]["score"]["top1"] == 0.0
    assert res[str(rb)]["score"]["top1"] == 1.0
    assert all(r["answer_from"] == "your verdict" for r in res[str(rb)]["incidents"])
    code, out, _ = _run(capsys, "eval", str(snaps), "--config", str(rules), "--config", str(rb), "--store", str(store))
    assert "TOP-1" in out and "FIRST HYPOTHESIS" in out and str(rules) in out
    assert _run(capsys, "eval", str(tmp_path / "empty-nothing"))[0] == 2


def test_the_cli_the_app_the_demo_and_watch_get_the_same_runbooks_and_timeline(outside_bundles, tmp_path: Path) -> None:
    """Runbooks and the timeline come from the one application service, whichever way in."""
    import argparse
    import asyncio

    from compass_tui import service
    from compass_tui.config import load_config

    team = tmp_path / "team-runbooks"
    team.mkdir()
    text = (SHIPPED / "kafka-consumer-lag.toml").read_text()
    (team / "lag.toml").write_text(text.replace('name = "Kafka consumer lag"', 'name = "Team lag"')
                                   .replace('fault = "other:kafka-consumer-lag"', 'fault = "other:team-lag"'))
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f"shipped_runbooks = false\nrunbook_dirs = [{json.dumps(str(team))}]\n")
    # watch builds its options from the config alone
    watch_deps = service.build_deps(service.options_for_config(load_config(str(cfg_path))), None)
    assert [rb.name for rb in watch_deps.runbooks.runbooks] == ["Team lag"]
    # the app, the demo and `investigate` resolve the command line, then stream through the service
    args = argparse.Namespace(config=str(cfg_path), bundle=str(outside_bundles["kafka_consumer_lag"]), no_store=True)
    options = service.resolve_options(args)

    async def go():
        opened = await service.open_source(options)
        try:
            return await service.run_investigation(options, opened, None)
        finally:
            await service.close_backend(opened.backend)

    report, _ = asyncio.run(go())
    assert report.hypotheses[0].fault == "other:team-lag"
    raised = [t for t in report.timeline if t.kind == "raised"]
    assert raised and any(t.hypothesis == report.hypotheses[0].id for t in raised)

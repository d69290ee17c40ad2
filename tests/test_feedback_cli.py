"""``compass feedback``, ``compass history`` and ``compass stats`` as the engineer runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compass_tui.cli import main
from compass_tui.models import Hypothesis, Incident, Report, Signature, Timings
from compass_tui.store import Store

SIG = Signature(alertname="HighErrorRate", service="checkout", shape="errors", moved=["checkout", "payments"])
INV = "inv-2026-11-25T09:00:00Z-checkout-7f3a"


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    path = tmp_path / "compass.duckdb"
    report = Report(
        investigation_id=INV,
        incident=Incident(title="HighErrorRate on checkout", service="checkout"),
        hypotheses=[
            Hypothesis(id="bad_deploy@checkout", rank=1, fault="bad_deploy", service="checkout",
                       title="checkout's deploy", confidence=0.8, status="supported"),
            Hypothesis(id="db_slow_queries@payments-db", rank=2, fault="db_slow_queries", service="payments-db",
                       title="slow queries", confidence=0.4),
        ],
        timings=Timings(first_hypothesis_s=0.8, total_s=2.0),
        signature=SIG.key(),
    )
    with Store.open(path) as s:
        s.record_investigation(report, SIG)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_actual_is_recorded_and_shows_in_history(capsys, store_path: str) -> None:
    code, out, err = run(capsys, "feedback", INV, "--actual", "db_slow_queries@payments-db",
                         "--note", "killed the report query", "--store", store_path)
    assert (code, err) == (0, "")
    assert out.count("\n") == 1 and "db_slow_queries@payments-db" in out and INV in out
    code, out, _ = run(capsys, "history", "--store", store_path)
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["ID", "WHEN"]
    assert INV in row and "bad_deploy@checkout 0.80" in row and "corrected: db_slow_queries@payments-db" in row


def test_confirm_and_reject(capsys, store_path: str) -> None:
    assert run(capsys, "feedback", INV, "--confirm", "bad_deploy@checkout", "--store", store_path)[0] == 0
    code, out, _ = run(capsys, "feedback", INV, "--reject", "db_slow_queries@payments-db",
                       "--reason", "db latency flat", "--store", store_path)
    assert code == 0 and "rejected db_slow_queries@payments-db (db latency flat)" in out
    code, out, _ = run(capsys, "history", "--json", "--store", store_path)
    [item] = json.loads(out)
    assert (item["investigation_id"], item["verdict"]) == (INV, "confirmed")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inv-nope", "--confirm", "bad_deploy@checkout"], "no investigation 'inv-nope'"),
        ([INV, "--confirm", "bad_deploy"], "--confirm: 'bad_deploy' is not FAULT@SERVICE"),
        ([INV, "--actual", "slow_db@payments-db"], "--actual: unknown fault 'slow_db'"),
        ([INV, "--actual", "other:Vacuum Storm@pg"], "slug after 'other:'"),
        ([INV, "--reject", "bad_deploy@checkout"], "--reject needs --reason"),
    ],
    ids=["unknown-id", "no-service", "unknown-fault", "bad-slug", "reject-without-reason"],
)
def test_bad_feedback_exits_2_with_one_line(capsys, store_path: str, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "feedback", *argv, "--store", store_path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("compass feedback: error: ") and message in err
    with Store.open(store_path, read_only=True) as s:  # nothing was recorded
        assert s.history()[0]["verdict"] == "-"


def test_feedback_without_a_memory_file_does_not_create_one(capsys, tmp_path: Path) -> None:
    path = tmp_path / "none.duckdb"
    code, _, err = run(capsys, "feedback", INV, "--confirm", "bad_deploy@checkout", "--store", str(path))
    assert code == 2 and "nothing recorded yet" in err
    assert not path.exists()


def test_feedback_on_a_corrupt_memory_exits_1_and_leaves_it(capsys, tmp_path: Path) -> None:
    path = tmp_path / "bad.duckdb"
    path.write_bytes(b"garbage" * 100)
    code, _, err = run(capsys, "feedback", INV, "--confirm", "bad_deploy@checkout", "--store", str(path))
    assert code == 1 and "not a DuckDB file" in err and err.count("\n") == 1
    assert path.read_bytes() == b"garbage" * 100


def test_no_store_is_refused(capsys, store_path: str) -> None:
    code, _, err = run(capsys, "feedback", INV, "--confirm", "bad_deploy@checkout", "--no-store")
    assert code == 2 and "drop --no-store" in err


def test_stats_text_and_json(capsys, store_path: str) -> None:
    run(capsys, "feedback", INV, "--confirm", "bad_deploy@checkout", "--store", store_path)
    code, out, _ = run(capsys, "stats", "--json", "--store", store_path)
    assert code == 0
    w7 = json.loads(out)["windows"]["7d"]
    assert (w7["investigations"], w7["judged"], w7["top1"]) == (1, 1, 1.0)
    assert w7["first_hypothesis_s"]["median"] == 0.8
    code, out, _ = run(capsys, "stats", "--store", store_path)
    assert code == 0
    lines = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert lines["top-1 right"][-2:] == ["100%", "100%"]
    assert "0.8 s" in out


def test_history_and_stats_on_an_empty_memory(capsys, tmp_path: Path) -> None:
    path = str(tmp_path / "fresh.duckdb")
    code, out, _ = run(capsys, "history", "--store", path)
    assert code == 0 and out.startswith("no investigations recorded yet")
    code, out, _ = run(capsys, "history", "--json", "--store", path)
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(capsys, "stats", "--json", "--store", path)
    assert code == 0 and json.loads(out)["windows"]["30d"]["investigations"] == 0


def test_history_json_lists_real_investigations_newest_first(capsys, sim_bundle_factory, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = str(tmp_path / "m.duckdb")
    bundles = [sim_bundle_factory("bad_deploy", 1), sim_bundle_factory("cache_failure", 2)]
    ids = []
    for b in bundles:
        done = subprocess.run([sys.executable, "-m", "compass_tui.cli", "investigate", "--bundle", str(b), "--json",
                               "--store", path], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        ids.append((report["investigation_id"], report["hypotheses"][0]))
    first_id, first_top = ids[0]
    assert run(capsys, "feedback", first_id, "--confirm", f"{first_top['fault']}@{first_top['service']}",
               "--store", path)[0] == 0
    code, out, _ = run(capsys, "history", "--json", "--store", path)
    assert code == 0
    items = json.loads(out)
    assert [i["investigation_id"] for i in items] == [ids[1][0], ids[0][0]]  # newest first
    newest, oldest = items
    for item, (inv, top), bundle in ((newest, ids[1], bundles[1]), (oldest, ids[0], bundles[0])):
        assert item["top"] == f"{top['fault']}@{top['service']}"
        assert item["source"] == f"bundle:{Path(bundle).name}"
        assert item["alert"] and item["service"] and item["started_at"].endswith("Z")
    assert newest["verdicts"] == []
    assert [(v["verdict"], v["cause"]) for v in oldest["verdicts"]] == [("confirm", oldest["top"])]


def test_a_second_answer_needs_replace_and_a_verdict_can_be_undone(capsys, store_path: str) -> None:
    assert run(capsys, "feedback", INV, "--confirm", "bad_deploy@checkout", "--store", store_path)[0] == 0
    code, out, err = run(capsys, "feedback", INV, "--confirm", "db_slow_queries@payments-db", "--store", store_path)
    assert code == 2 and out == ""
    assert "already answered bad_deploy@checkout" in err and "--replace" in err and err.count("\n") == 1
    code, out, err = run(capsys, "feedback", INV, "--confirm", "db_slow_queries@payments-db", "--replace", "--store", store_path)
    assert code == 0, err
    assert "corrected: db_slow_queries@payments-db" in run(capsys, "history", "--store", store_path)[1]
    code, out, _ = run(capsys, "feedback", INV, "--undo", "--store", store_path)
    assert code == 0 and "withdrew confirm db_slow_queries@payments-db" in out
    assert run(capsys, "history", "--store", store_path)[1].strip().splitlines()[1].endswith("-")


def test_bad_arguments_are_one_line_errors(capsys, store_path: str) -> None:
    with pytest.raises(SystemExit) as e:
        main(["history", "--limit", "0", "--store", store_path])
    assert e.value.code == 2 and "--limit: 0 is not at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--theme", "neon"])
    assert e.value.code == 2 and "invalid choice: 'neon'" in capsys.readouterr().err


def test_a_service_no_telemetry_named_is_refused(capsys, tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    report = Report(investigation_id=INV, incident=Incident(title="t", service="checkout"),
                    hypotheses=[Hypothesis(id="bad_deploy@checkout", rank=1, fault="bad_deploy", service="checkout",
                                           title="deploy", confidence=0.8, status="supported")],
                    signature=SIG.key(), services=["checkout", "payments", "payments-db"])
    with Store.open(path) as s:
        s.record_investigation(report, SIG)
    code, out, err = run(capsys, "feedback", INV, "--actual", "db_slow_queries@paymentsdb", "--store", str(path))
    assert code == 2 and out == ""
    assert "'paymentsdb' appears nowhere in this investigation's telemetry" in err
    assert run(capsys, "feedback", INV, "--actual", "db_slow_queries@payments-db", "--store", str(path))[0] == 0

"""The memory on real DuckDB files: recording, verdicts, recall on recurrence, and files it
must refuse (locked, corrupt, newer) without touching them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pytest

from compass_tui.models import Hypothesis, Incident, Report, Signature, Timings
from compass_tui.store import CATALOG_FAULTS, Store, StoreUnavailable, UnknownInvestigation, parse_cause
from compass_tui.store.memory import jaccard
from compass_tui.store.schema import SCHEMA_VERSION

SIG = Signature(alertname="HighErrorRate", service="checkout", shape="errors", moved=["checkout", "payments", "payments-db"])


def make_report(inv_id: str, ranked: list[tuple[str, str, float]], first_s: float | None = 1.0,
                sig: Signature = SIG) -> Report:
    """A report whose hypotheses are ranked in the given order."""
    return Report(
        investigation_id=inv_id,
        incident=Incident(title=f"{sig.alertname} on {sig.service}", service=sig.service),
        hypotheses=[
            Hypothesis(id=f"{f}@{s}", rank=i + 1, fault=f, service=s, title=f"{f} on {s}", confidence=c,
                       status="supported")
            for i, (f, s, c) in enumerate(ranked)
        ],
        timings=Timings(first_hypothesis_s=first_s, total_s=3.0),
        signature=sig.key(),
    )


def rank_with_memory(store: Store, sig: Signature, scored: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
    """Rank candidates the way the engine does: confidence plus the memory's adjust, clamped."""
    recall = store.advisor().recall(sig, list(scored))
    final = {c: min(1.0, max(0.0, conf + recall[c].adjust)) for c, conf in scored.items()}
    return sorted(final, key=lambda c: -final[c])


ENGINE_WRONG = [("bad_deploy", "checkout", 0.92), ("db_connection_pool_exhaustion", "payments", 0.55),
                ("db_slow_queries", "payments-db", 0.10)]


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "compass.duckdb")
    yield s
    s.close()


def test_record_and_feedback_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with Store.open(path) as s:
        s.record_investigation(make_report("inv-1", ENGINE_WRONG, first_s=1.5), SIG)
        s.feedback("inv-1", "actual", "db_slow_queries", "payments-db", note="killed the runaway report query")
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    con.close()
    with Store.open(path, read_only=True) as s:
        [item] = s.history()
        assert item["investigation_id"] == "inv-1"
        assert item["top_hypothesis"]["fault"] == "bad_deploy"
        assert item["verdict"] == "corrected: db_slow_queries@payments-db"
        w7 = s.stats()["windows"]["7d"]
        assert (w7["investigations"], w7["judged"], w7["top1"], w7["top3"], w7["corrected"]) == (1, 1, 0.0, 1.0, 1.0)
        assert w7["first_hypothesis_s"]["median"] == 1.5


def test_recording_twice_keeps_one_investigation_and_its_verdicts(store: Store) -> None:
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "confirm", "bad_deploy", "checkout")
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    [item] = store.history()
    assert item["verdict"] == "confirmed"


def test_one_correction_ranks_the_corrected_cause_first_when_the_signature_recurs(store: Store) -> None:
    scored = {(f, s): c for f, s, c in ENGINE_WRONG}
    assert rank_with_memory(store, SIG, scored)[0] == ("bad_deploy", "checkout")  # nothing learned yet
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "actual", "db_slow_queries", "payments-db")
    # The same incident a day later: moved services noticed in another order, one extra.
    again = Signature(alertname="HighErrorRate", service="checkout", shape="errors",
                      moved=["payments-db", "checkout", "payments", "frontend"])
    ranked = rank_with_memory(store, again, scored)
    assert ranked[0] == ("db_slow_queries", "payments-db")
    recall = store.advisor().recall(again, list(scored))
    assert recall[("db_slow_queries", "payments-db")].note.startswith("seen once, usually this")
    assert recall[("bad_deploy", "checkout")].adjust < 0  # it was ranked first and was wrong


def test_unrelated_incidents_are_not_recalled(store: Store) -> None:
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "actual", "db_slow_queries", "payments-db")
    candidates = [("db_slow_queries", "payments-db")]
    other_service = SIG.model_copy(update={"service": "frontend"})
    other_alert = SIG.model_copy(update={"alertname": "HighLatency"})
    other_pattern = SIG.model_copy(update={"shape": "latency", "moved": ["search"]})
    for sig in (other_service, other_alert, other_pattern):
        r = store.advisor().recall(sig, candidates)[candidates[0]]
        assert (r.adjust, r.note) == (0.0, None), sig


def test_rejection_ranks_a_cause_lower_and_says_why(store: Store) -> None:
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "reject", "db_connection_pool_exhaustion", "payments",
                   reason="pool was at 4/20 the whole time")
    r = store.advisor().recall(SIG, [("db_connection_pool_exhaustion", "payments")])
    rec = r[("db_connection_pool_exhaustion", "payments")]
    assert rec.adjust < 0
    close_call = {("db_connection_pool_exhaustion", "payments"): 0.6, ("db_slow_queries", "payments-db"): 0.5}
    assert rank_with_memory(store, SIG, close_call)[0] == ("db_slow_queries", "payments-db")
    assert "ruled out once before: pool was at 4/20 the whole time" in rec.note
    store.record_investigation(make_report("inv-2", ENGINE_WRONG), SIG)
    store.feedback("inv-2", "reject", "db_connection_pool_exhaustion", "payments", reason="again no")
    rec2 = store.advisor().recall(SIG, [("db_connection_pool_exhaustion", "payments")])[
        ("db_connection_pool_exhaustion", "payments")]
    assert rec2.adjust < rec.adjust  # often rejected: lower still


def test_confirmations_accumulate_and_the_note_counts_them(store: Store) -> None:
    for i in range(3):
        store.record_investigation(make_report(f"inv-{i}", ENGINE_WRONG), SIG)
    advisor = store.advisor()  # kept across verdicts, as a running app would
    store.feedback("inv-0", "confirm", "bad_deploy", "checkout")
    one = advisor.recall(SIG, [("bad_deploy", "checkout")])[("bad_deploy", "checkout")].adjust
    store.feedback("inv-1", "confirm", "bad_deploy", "checkout")
    two = advisor.recall(SIG, [("bad_deploy", "checkout")])[("bad_deploy", "checkout")]
    assert 0 < one < two.adjust
    assert two.note.startswith("seen 3 times, usually this (2 of 2)")


def test_a_cause_outside_the_catalog_is_proposed_on_recurrence(store: Store) -> None:
    assert store.advisor().proposals(SIG) == []
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "actual", "other:autovacuum-storm", "payments-db", note="tuned autovacuum")
    [p] = store.advisor().proposals(SIG)
    assert (p.fault, p.service, p.times_seen) == ("other:autovacuum-storm", "payments-db", 1)
    assert "tuned autovacuum" in p.note
    r = store.advisor().recall(SIG, [("other:autovacuum-storm", "payments-db")])
    assert r[("other:autovacuum-storm", "payments-db")].adjust >= 1.0
    assert store.advisor().proposals(SIG.model_copy(update={"service": "search"})) == []


def test_a_catalog_cause_compass_missed_is_proposed_but_one_it_found_is_not(store: Store) -> None:
    # Corrected to a cause the agents did not rank first: proposed, so the engine lists it
    # even when its own checks ruled it out or never raised it.
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "actual", "cache_failure", "redis-sessions")
    assert [(p.fault, p.service) for p in store.advisor().proposals(SIG)] == [("cache_failure", "redis-sessions")]
    # Confirmed where COMPASS already ranked it first: the agents find it by themselves.
    other = SIG.model_copy(update={"service": "frontend"})
    store.record_investigation(make_report("inv-2", ENGINE_WRONG, sig=other), other)
    store.feedback("inv-2", "confirm", "bad_deploy", "checkout")
    assert store.advisor().proposals(other) == []


def test_feedback_on_an_unknown_investigation_is_a_one_line_error(store: Store) -> None:
    with pytest.raises(UnknownInvestigation) as e:
        store.feedback("inv-nope", "confirm", "bad_deploy", "checkout")
    assert "inv-nope" in str(e.value) and "\n" not in str(e.value) and not str(e.value).startswith("'")
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    with pytest.raises(ValueError, match="unknown fault 'bad_deploi'"):
        store.feedback("inv-1", "confirm", "bad_deploi", "checkout")


def test_parse_cause() -> None:
    assert len(CATALOG_FAULTS) == 15  # catalog v2, read from the engine's fault registry
    assert parse_cause("code_defect@cart") == ("code_defect", "cart")
    assert parse_cause("db_slow_queries@payments-db") == ("db_slow_queries", "payments-db")
    assert parse_cause("other:vacuum-storm@pg") == ("other:vacuum-storm", "pg")
    for bad, msg in [("db_slow_queries", "not FAULT@SERVICE"), ("nope@x", "unknown fault 'nope'"),
                     ("other:Bad_Slug@x", "slug after 'other:'"), ("@x", "not FAULT@SERVICE"),
                     ("bad_deploy@", "not FAULT@SERVICE")]:
        with pytest.raises(ValueError, match=msg) as e:
            parse_cause(bad)
        assert "\n" not in str(e.value)


def test_jaccard() -> None:
    assert jaccard(["a", "b"], ["b", "a"]) == 1.0
    assert jaccard([], []) == 1.0
    assert jaccard(["a", "b", "c"], ["a", "b", "d"]) == 0.5


def test_stats_windows_count_by_when_recorded(store: Store) -> None:
    now = 2_000_000_000.0
    store.record_investigation(make_report("old", ENGINE_WRONG, first_s=9.0), SIG, recorded_at=now - 10 * 86400)
    store.record_investigation(make_report("new", ENGINE_WRONG, first_s=1.0), SIG, recorded_at=now - 3600)
    store.record_investigation(make_report("ancient", ENGINE_WRONG, first_s=50.0), SIG, recorded_at=now - 40 * 86400)
    store.feedback("new", "confirm", "bad_deploy", "checkout")
    store.feedback("old", "reject", "bad_deploy", "checkout", reason="no deploy that day")
    st = store.stats(now=now)["windows"]
    assert (st["7d"]["investigations"], st["7d"]["top1"], st["7d"]["first_hypothesis_s"]["median"]) == (1, 1.0, 1.0)
    assert (st["30d"]["investigations"], st["30d"]["judged"], st["30d"]["top1"]) == (2, 2, 0.5)
    assert st["30d"]["first_hypothesis_s"]["mean"] == 5.0


def test_each_thread_reads_through_its_own_cursor(store: Store) -> None:
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(len(store.history()))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [1, 1, 1, 1]


def test_default_path_follows_xdg_data_home_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Store.open() as s:
        assert s.path == tmp_path / "data" / "compass" / "compass.duckdb"
    assert s.path.exists()


# ------------------------------------------------------------ files it must refuse


def _holder(path: Path, body: str = "") -> subprocess.Popen:
    """Another process holding the memory open for writing until its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from compass_tui.store import Store
        s = Store.open({str(path)!r})
        {body}
        print("ready", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _foreign_holder(path: Path) -> subprocess.Popen:
    """A process that is not compass holding the file open for writing until its stdin closes."""
    code = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_compass_holding_the_memory_open_blocks_no_other_process(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    proc = _holder(path)  # e.g. the app, open for its whole life
    try:
        with Store.open(path, lock_timeout_s=5) as s:
            s.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
            s.feedback("inv-1", "confirm", "bad_deploy", "checkout")
        with Store.open(path, read_only=True, lock_timeout_s=5) as s:
            assert s.history()[0]["verdict"] == "confirmed"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_file_held_by_another_program_is_refused_after_waiting_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with Store.open(path) as s:
        s.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    proc = _foreign_holder(path)
    try:
        before = path.read_bytes()
        for ro in (False, True):
            with pytest.raises(StoreUnavailable) as e:
                Store.open(path, read_only=ro, lock_timeout_s=0.3)
            assert f"pid {proc.pid}" in str(e.value) and "\n" not in str(e.value)
        assert path.read_bytes() == before
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    with Store.open(path) as s:  # free again once the other process is gone
        assert [h["investigation_id"] for h in s.history()] == ["inv-1"]


def test_an_operation_waits_for_another_process_to_finish_its_write(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with Store.open(path) as s:
        s.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    proc = _foreign_holder(path)
    threading.Timer(0.5, proc.stdin.close).start()  # the other process lets go after half a second
    with Store.open(path, lock_timeout_s=20) as st:
        st.feedback("inv-1", "confirm", "bad_deploy", "checkout")
        assert st.waits > 0
    proc.wait(timeout=30)
    with Store.open(path, read_only=True) as st:
        assert st.history()[0]["verdict"] == "confirmed"


@pytest.mark.parametrize(
    "content", [b"", b"SQLite format 3\x00" + b"\x01" * 4000, b"not a database\n" * 300],
    ids=["empty", "sqlite", "text"],
)
def test_a_corrupt_file_is_refused_and_never_overwritten(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.duckdb"
    path.write_bytes(content)
    for ro in (False, True):
        with pytest.raises(StoreUnavailable, match="not a DuckDB file") as e:
            Store.open(path, read_only=ro)
        assert "\n" not in str(e.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.duckdb"]


def test_a_memory_from_a_newer_compass_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with Store.open(path) as s:
        s.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match="schema version 7 is newer"):
        Store.open(path)
    assert path.read_bytes() == before


def test_a_duckdb_file_that_is_not_a_memory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE investigations (x INTEGER)")
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match="not a compass memory"):
        Store.open(path)
    assert path.read_bytes() == before


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create the memory's directory"):
        Store.open(blocker / "sub" / "m.duckdb")


def test_feedback_survives_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with Store.open(path) as s:
        s.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    proc = _holder(path, body='s.feedback("inv-1", "actual", "db_slow_queries", "payments-db")')
    proc.kill()  # SIGKILL: no close, no checkpoint
    proc.wait(timeout=30)
    with Store.open(path, read_only=True) as s:  # as `compass history` reads it
        assert s.history()[0]["verdict"] == "corrected: db_slow_queries@payments-db"
    with Store.open(path) as s:
        assert s.history()[0]["verdict"] == "corrected: db_slow_queries@payments-db"


def test_the_signature_can_come_from_the_report_alone(store: Store) -> None:
    store.record_investigation(make_report("inv-1", ENGINE_WRONG))
    store.feedback("inv-1", "actual", "db_slow_queries", "payments-db")
    r = store.advisor().recall(SIG, [("db_slow_queries", "payments-db")])[("db_slow_queries", "payments-db")]
    assert r.adjust >= 1.0


def test_a_reader_and_a_writer_in_one_process_share_the_file_and_release_it(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    writer = Store.open(path)
    reader = Store.open(path, read_only=True)  # e.g. the history screen while the app records
    writer.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    assert [h["investigation_id"] for h in reader.history()] == ["inv-1"]
    with pytest.raises(StoreUnavailable, match="opened read-only"):
        reader.feedback("inv-1", "confirm", "bad_deploy", "checkout")
    code = "import duckdb,sys; duckdb.connect(sys.argv[1]).close()"
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 0  # free while both are open
    writer.feedback("inv-1", "confirm", "bad_deploy", "checkout")
    reader.close()
    writer.close()


def test_a_signature_without_a_service_still_recalls(store: Store) -> None:
    # The engine could not tell which service alerted; the incident's own label says another.
    vague = Signature(alertname="HighErrorRate", service=None, shape="unknown", moved=["routing", "slotting"])
    report = make_report("inv-1", ENGINE_WRONG, sig=vague)
    report.incident.service = "returns"
    store.record_investigation(report, vague)
    store.feedback("inv-1", "actual", "memory_leak", "returns")
    assert [(p.fault, p.service) for p in store.advisor().proposals(vague)] == [("memory_leak", "returns")]


def _old_memory(path: Path, with_estimate_as_2: bool) -> None:
    """A memory as an older COMPASS left it: schema 1, or schema "2" of the build that
    numbered the estimate column 2 (before source and alert groups), with one judged row."""
    from compass_tui.store.schema import MIGRATIONS

    con = duckdb.connect(str(path))
    for stmt in MIGRATIONS[1]:
        con.execute(stmt)
    if with_estimate_as_2:
        con.execute("ALTER TABLE feedback ADD COLUMN minutes_estimate DOUBLE")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", ["2" if with_estimate_as_2 else "1"])
    con.execute(
        "INSERT INTO investigations VALUES ('inv-old', 1000.0, 900.0, 'old', 'HighErrorRate', 'checkout', "
        "'errors', ['checkout'], 'HighErrorRate|checkout|errors|checkout', 1.0, 60.0, ?)",
        [make_report("inv-old", ENGINE_WRONG).model_dump_json()],
    )
    con.execute("INSERT INTO hypotheses VALUES ('inv-old', 1, 'bad_deploy', 'checkout', 't', 0.9, 'supported')")
    if with_estimate_as_2:
        con.execute("INSERT INTO feedback (investigation_id, given_at, verdict, fault, service, minutes_estimate) "
                    "VALUES ('inv-old', 1030.0, 'confirm', 'bad_deploy', 'checkout', 45)")
    else:
        con.execute("INSERT INTO feedback (investigation_id, given_at, verdict, fault, service) "
                    "VALUES ('inv-old', 1030.0, 'confirm', 'bad_deploy', 'checkout')")
    con.close()


@pytest.mark.parametrize("with_estimate_as_2", [False, True], ids=["schema-1", "estimate-numbered-2"])
def test_an_older_memory_is_migrated_forward_keeping_what_it_holds(tmp_path: Path, with_estimate_as_2: bool) -> None:
    path = tmp_path / "m.duckdb"
    _old_memory(path, with_estimate_as_2)
    # `compass history` after an upgrade: read-only, migrated once on the way
    with Store.open(path, read_only=True) as s:
        [item] = s.history()
        assert item["investigation_id"] == "inv-old" and item["verdict"] == "confirmed" and item["source"] is None
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    con.close()
    with Store.open(path) as s:
        # everything each later schema added works on the old file
        assert s.alert_group_seen("g1", "firing", alertname="HighErrorRate", service="checkout", at=2000.0)["new"]
        s.record_investigation(make_report("inv-new", ENGINE_WRONG), SIG, recorded_at=2000.0, source="watch")
        s.feedback("inv-new", "confirm", "bad_deploy", "checkout", at=2010.0, minutes_estimate=30)
        saved = s.stats(now=2100.0)["windows"]["30d"]["time_saved"]
        # the old file's own estimate survives the migration; schema 1 had none to keep
        assert saved["from_estimates"] == (2 if with_estimate_as_2 else 1)
        assert [i["source"] for i in s.history()] == ["watch", None]


def test_a_memory_of_the_build_that_numbered_the_incident_columns_3_is_migrated(tmp_path: Path) -> None:
    """That build had the estimate as step 2 and incident_key, waited_s, services and
    withdrawn_at as step 3, but neither source nor alert groups."""
    path = tmp_path / "m.duckdb"
    _old_memory(path, with_estimate_as_2=True)
    con = duckdb.connect(str(path))
    for stmt in ("ALTER TABLE investigations ADD COLUMN incident_key VARCHAR",
                 "ALTER TABLE investigations ADD COLUMN waited_s DOUBLE",
                 "ALTER TABLE investigations ADD COLUMN services VARCHAR[]",
                 "ALTER TABLE feedback ADD COLUMN withdrawn_at DOUBLE"):
        con.execute(stmt)
    con.execute("UPDATE investigations SET waited_s = 3.0, services = ['checkout']")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    with Store.open(path) as s:
        [item] = s.history()
        assert item["verdict"] == "confirmed" and item["source"] is None
        assert s.stats(now=2000.0)["windows"]["30d"]["waited_s"]["median"] == 3.0
        assert s.alert_group_seen("g1", "firing", alertname="HighErrorRate", service="checkout", at=2000.0)["new"]
        assert s.withdraw("inv-old")["verdict"] == "confirm"
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    con.close()


def test_one_investigation_has_one_answer_and_replacing_it_must_be_asked(store: Store) -> None:
    from compass_tui.store import AnswerExists

    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    store.feedback("inv-1", "confirm", "bad_deploy", "checkout")
    with pytest.raises(AnswerExists) as e:
        store.feedback("inv-1", "confirm", "db_connection_pool_exhaustion", "payments")
    assert e.value.cause == ("bad_deploy", "checkout")
    assert store.history()[0]["verdict"] == "confirmed"  # nothing was recorded by the refusal
    store.feedback("inv-1", "confirm", "db_connection_pool_exhaustion", "payments", replace=True)
    assert store.history()[0]["verdict"] == "corrected: db_connection_pool_exhaustion@payments"
    # the replaced answer is not remembered against the recurrence as the answer, nor as wrong
    recall = store.advisor().recall(SIG, [("bad_deploy", "checkout"), ("db_connection_pool_exhaustion", "payments")])
    assert recall[("db_connection_pool_exhaustion", "payments")].adjust > 0
    assert "usually db_connection_pool_exhaustion@payments (1 of 1)" in recall[("bad_deploy", "checkout")].note
    # confirming the answer again is not a second answer
    store.feedback("inv-1", "confirm", "db_connection_pool_exhaustion", "payments")


def test_every_verdict_can_be_undone(store: Store) -> None:
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG)
    first = store.feedback("inv-1", "reject", "bad_deploy", "checkout", reason="no deploy that day")
    store.feedback("inv-1", "actual", "db_slow_queries", "payments-db")
    assert store.history()[0]["verdict"] == "corrected: db_slow_queries@payments-db"
    undone = store.withdraw("inv-1")
    assert (undone["verdict"], undone["fault"]) == ("actual", "db_slow_queries")
    assert store.history()[0]["verdict"] == "top rejected"
    assert store.withdraw("inv-1", first)["verdict"] == "reject"
    assert store.history()[0]["verdict"] == "-"
    assert store.verdicts("inv-1") == []
    assert store.withdraw("inv-1") is None
    assert store.advisor().recall(SIG, [("db_slow_queries", "payments-db")])[("db_slow_queries", "payments-db")].adjust == 0


def test_a_rerun_of_the_same_incident_is_the_same_investigation(store: Store) -> None:
    from compass_tui.models import InvestigationRequest

    req = InvestigationRequest(title="5xx", service="checkout", alertname="HighErrorRate", labels={"env": "prod"},
                               started_at=1000.0, window_start=0.0, window_end=1600.0)
    assert store.investigation_id_for(req) is None
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG, req, waited_s=2.5)
    store.feedback("inv-1", "confirm", "bad_deploy", "checkout")
    later = req.model_copy(update={"window_end": 1900.0})  # a live alert rerun a few minutes on
    assert store.investigation_id_for(later) == "inv-1"
    store.record_investigation(make_report("inv-1", ENGINE_WRONG), SIG, later, waited_s=0.4)
    assert len(store.history()) == 1
    assert store.stats()["windows"]["7d"]["waited_s"]["median"] == 2.5  # what was waited when paged
    # its own earlier run is not a past sighting of itself
    own = store.advisor(exclude="inv-1").recall(SIG, [("bad_deploy", "checkout")])[("bad_deploy", "checkout")]
    assert own.note is None and own.adjust == 0
    other = req.model_copy(update={"started_at": 5000.0, "window_start": 4000.0})
    assert store.investigation_id_for(other) is None


def test_a_verdict_naming_a_service_no_telemetry_has_is_refused(store: Store) -> None:
    from compass_tui.store import UnknownService

    report = make_report("inv-1", ENGINE_WRONG).model_copy(update={"services": ["checkout", "payments", "payments-db", "frontend"]})
    store.record_investigation(report, SIG)
    with pytest.raises(UnknownService, match="'paymnts' appears nowhere"):
        store.feedback("inv-1", "actual", "db_slow_queries", "paymnts")
    store.feedback("inv-1", "actual", "cpu_saturation", "frontend")  # in the telemetry, in no hypothesis
    assert store.verdicts("inv-1")[0]["service"] == "frontend"


def test_a_version_1_memory_is_migrated_and_keeps_everything(tmp_path: Path) -> None:
    from compass_tui.store.schema import MIGRATIONS

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for stmt in MIGRATIONS[1]:
        con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO investigations VALUES ('inv-old', 1, 1, 't', 'HighErrorRate', 'checkout', 'errors', "
                "['checkout'], 'k', 1.0, 2.0, '{}')")
    con.execute("INSERT INTO feedback (investigation_id, given_at, verdict, fault, service) "
                "VALUES ('inv-old', 1, 'confirm', 'bad_deploy', 'checkout')")
    con.close()
    with Store.open(path) as s:
        assert [v["fault"] for v in s.verdicts("inv-old")] == ["bad_deploy"]
        s.feedback("inv-old", "reject", "cpu_saturation", "checkout", reason="cpu flat")  # no service list: any
        assert s.withdraw("inv-old")["verdict"] == "reject"

"""One memory, many processes: several compass processes write to one DuckDB file at once
(as watch, the app and `compass feedback` do) and every row arrives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

from compass_tui.store import Store

WRITERS = 4
INVESTIGATIONS_EACH = 6

WRITER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[3])
    from test_store import SIG, ENGINE_WRONG, make_report
    from compass_tui.store import Store
    path, who = sys.argv[1], sys.argv[2]
    start = float(sys.argv[4])
    while time.time() < start:  # every writer starts at the same moment
        time.sleep(0.005)
    store = Store.open(path, lock_timeout_s=120)  # held for the whole run, like the app
    for i in range(%d):
        inv = f"inv-{who}-{i}"
        store.record_investigation(make_report(inv, ENGINE_WRONG), SIG, source="watch")
        store.feedback(inv, "confirm", "bad_deploy", "checkout")
        store.history(limit=5)  # reads interleave with the writes
    print(json.dumps({"waits": store.waits}))
    store.close()
""" % INVESTIGATIONS_EACH)


def test_several_writer_processes_at_once_lose_no_row(tmp_path: Path) -> None:
    import time

    path = tmp_path / "m.duckdb"
    Store.open(path).close()
    start = time.time() + 3.0
    tests_dir = str(Path(__file__).resolve().parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}", tests_dir, str(start)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(WRITERS)
    ]
    # Meanwhile `compass history` and `compass feedback` run from other shells.
    reads = []
    while any(p.poll() is None for p in procs):
        done = subprocess.run([sys.executable, "-m", "compass_tui.cli", "--store", str(path), "history", "--json"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        reads.append(len(json.loads(done.stdout)))
    waits = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        waits += json.loads(out.strip().splitlines()[-1])["waits"]
    con = duckdb.connect(str(path), read_only=True)
    try:
        total = WRITERS * INVESTIGATIONS_EACH
        assert con.execute("SELECT count(*) FROM investigations").fetchone()[0] == total
        assert con.execute("SELECT count(*) FROM hypotheses").fetchone()[0] == total * len(ENGINE_WRONG)
        assert con.execute("SELECT count(*) FROM feedback").fetchone()[0] == total
        assert con.execute("SELECT count(DISTINCT investigation_id) FROM feedback").fetchone()[0] == total
    finally:
        con.close()
    assert reads and reads == sorted(reads)  # history never went backwards
    assert waits > 0, "the writers never met: the test did not exercise contention"


ENGINE_WRONG = [("bad_deploy", "checkout", 0.92), ("db_connection_pool_exhaustion", "payments", 0.55),
                ("db_slow_queries", "payments-db", 0.10)]

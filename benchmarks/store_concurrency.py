"""One memory, many processes: N writer processes record investigations and verdicts into one
DuckDB memory at the same moment; counts every row and gives each operation's latency and
how often it had to wait its turn.

    python benchmarks/store_concurrency.py [--writers 1,2,4,8] [--each 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import json, sys, time
from compass_tui.models import Hypothesis, Incident, Report, Signature, Timings
from compass_tui.store import Store
path, who, each, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sig = Signature(alertname="HighErrorRate", service="checkout", shape="errors", moved=["checkout"])
store = Store.open(path, lock_timeout_s=300)
while time.time() < start:
    time.sleep(0.005)
lat = []
for i in range(each):
    inv = f"inv-{who}-{i}"
    r = Report(investigation_id=inv, incident=Incident(title="HighErrorRate on checkout", service="checkout"),
               hypotheses=[Hypothesis(id="bad_deploy@checkout", rank=1, fault="bad_deploy", service="checkout",
                                      title="deploy", confidence=0.8, status="supported")],
               timings=Timings(first_hypothesis_s=1.0, total_s=2.0), signature=sig.key())
    t = time.perf_counter(); store.record_investigation(r, sig, source="watch"); lat.append(time.perf_counter() - t)
    t = time.perf_counter(); store.feedback(inv, "confirm", "bad_deploy", "checkout"); lat.append(time.perf_counter() - t)
print(json.dumps({"lat": lat, "waits": store.waits}))
"""


def run(writers: int, each: int) -> dict:
    """One round: ``writers`` processes, ``each`` investigations (and verdicts) apiece."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "m.duckdb")
        subprocess.run([sys.executable, "-c", f"from compass_tui.store import Store; Store.open({path!r}).close()"],
                       check=True, cwd=ROOT)
        start = time.time() + 2.0
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, f"w{n}", str(each), str(start)],
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT) for n in range(writers)]
        outs = [json.loads(p.communicate()[0]) for p in procs]
        wall = time.time() - start
        con = duckdb.connect(path, read_only=True)
        inv = con.execute("SELECT count(*) FROM investigations").fetchone()[0]
        fb = con.execute("SELECT count(*) FROM feedback").fetchone()[0]
        con.close()
    lat = sorted(x for o in outs for x in o["lat"])
    return {
        "writers": writers, "expected_rows": 2 * writers * each, "rows": inv + fb,
        "median_ms": round(statistics.median(lat) * 1000, 1), "p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1), "waits": sum(o["waits"] for o in outs), "wall_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", default="1,2,4,8")
    ap.add_argument("--each", type=int, default=20)
    args = ap.parse_args()
    print(f"{'writers':>7} {'rows':>11} {'median':>8} {'p95':>8} {'max':>8} {'waits':>6} {'wall':>6}")
    for w in (int(x) for x in args.writers.split(",")):
        r = run(w, args.each)
        print(f"{r['writers']:>7} {r['rows']:>5}/{r['expected_rows']:<5} {r['median_ms']:>6}ms {r['p95_ms']:>6}ms "
              f"{r['max_ms']:>6}ms {r['waits']:>6} {r['wall_s']:>5}s")


if __name__ == "__main__":
    main()

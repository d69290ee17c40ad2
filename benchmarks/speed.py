"""Speed and memory: time to first hypothesis, total time and peak RSS of
``compass investigate --bundle B --json`` (a fresh process each run, as a user runs it).

    python benchmarks/speed.py [BUNDLE ...] [--services 10,100,500] [--runs 3]

With no bundle given it measures the shipped demo and simulated incidents of the given sizes.
"peak RSS MB" is the investigating process; "child MB" the child that parses the bundle
while it starts (both are resident at once for part of the run). ``COMPASS_PRELOAD=0``
measures without that child.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_once(bundle: Path) -> dict:
    """One investigation in a child process; wall time, the report's timings, peak RSS."""
    code = (
        "import resource, sys, json\n"
        "from compass_tui.cli import main\n"
        "rc = main(['investigate', '--bundle', sys.argv[1], '--json', '--no-store'])\n"
        "sys.stderr.write('RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.stderr.write('CHILD_KB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(rc)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{bundle}: exit {out.returncode}: {out.stderr.strip()[-300:]}")
    rep = json.loads(out.stdout)
    kb = lambda key: int(next(ln for ln in out.stderr.splitlines() if ln.startswith(key)).split("=")[1])  # noqa: E731
    rss_kb, child_kb = kb("RSS_KB="), kb("CHILD_KB=")
    return {"wall_s": wall, "first_s": rep["timings"]["first_hypothesis_s"], "total_s": rep["timings"]["total_s"],
            "rss_mb": rss_kb / 1024, "child_mb": child_kb / 1024, "top": f"{rep['hypotheses'][0]['fault']}@{rep['hypotheses'][0]['service']}" if rep["hypotheses"] else None}


def size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="*")
    ap.add_argument("--services", default="10,100,500")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fault", default="db_slow_queries")
    a = ap.parse_args()
    targets: list[tuple[str, Path]] = [(Path(b).name, Path(b)) for b in a.bundles]
    tmp = tempfile.TemporaryDirectory()
    if not targets:
        targets.append(("demo (shipped)", ROOT / "compass_tui" / "data" / "demo.tar.gz"))
        for n in [int(x) for x in a.services.split(",") if x]:
            t0 = time.perf_counter()
            # generated in its own process: a child's peak RSS would include this one's
            path = Path(tmp.name) / f"sim-{n}"
            subprocess.run([sys.executable, "-m", "compass_tui.sim", "--fault", a.fault, "--seed", "7",
                            "--services", str(n), "--out", str(path)], check=True, capture_output=True, cwd=ROOT)
            print(f"generated {n}-service incident in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            targets.append((f"sim {n} services", path))
    print(f"{'bundle':28} {'MB':>6} {'first hyp s':>12} {'total s':>8} {'wall s':>7} {'peak RSS MB':>12} {'child MB':>9}  top")
    for name, path in targets:
        runs = [run_once(path) for _ in range(a.runs)]
        med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
        print(f"{name[:28]:28} {size_mb(path):6.1f} {med('first_s'):12.2f} {med('total_s'):8.2f} {med('wall_s'):7.2f} "
              f"{max(r['rss_mb'] for r in runs):12.0f} {max(r['child_mb'] for r in runs):9.0f}  {runs[0]['top']}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

"""Golden rankings per fault: on fixed simulator seeds, the top three fault@service of every
catalog fault the simulator injects must stay as recorded. A change to any fault's detector
or rules that moves a ranking shows up here, fault by fault.

To accept a deliberate change, regenerate the fixture and review its diff:

    .venv/bin/python tests/test_fault_golden.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "fixtures" / "fault_golden.json"
SEEDS = (21, 22)
SERVICES = 10


def _top3(fault: str, seed: int) -> list[str]:
    from compass_tui.engine import EngineDeps, run_to_report
    from compass_tui.engine.request import request_from_bundle_meta
    from compass_tui.sim import SimOptions, generate, write_bundle
    from compass_tui.telemetry.bundle import open_bundle

    inc = generate(fault, seed, SimOptions(services=SERVICES))
    with tempfile.TemporaryDirectory() as d:
        backend = open_bundle(write_bundle(inc, Path(d) / "b"))
        req = request_from_bundle_meta(backend.manifest, backend.incident)
        report = asyncio.run(run_to_report(req, EngineDeps(backend=backend)))
    return [h.id for h in report.hypotheses[:3]]


def _cases() -> list[tuple[str, int]]:
    from compass_tui.sim import ALL_FAULTS

    return [(f, s) for f in ALL_FAULTS for s in SEEDS]


def _key(fault: str, seed: int) -> str:
    return f"{fault}/seed {seed}"


def test_the_fixture_covers_every_simulated_fault_and_seed():
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted(_key(f, s) for f, s in _cases()), \
        "the golden fixture is stale: regenerate it with `.venv/bin/python tests/test_fault_golden.py`"


@pytest.mark.parametrize("fault,seed", _cases())
def test_golden_top_three(fault, seed):
    want = json.loads(GOLDEN.read_text()).get(_key(fault, seed))
    got = _top3(fault, seed)
    assert got == want, (f"{fault} seed {seed}: top 3 moved from {want} to {got}; if deliberate, regenerate "
                         "with `.venv/bin/python tests/test_fault_golden.py` and review the diff")


def main() -> int:
    """Rewrite the fixture from the current engine."""
    out = {_key(f, s): _top3(f, s) for f, s in _cases()}
    GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out)} rankings to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

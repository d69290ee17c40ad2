"""The demo incident shipped with COMPASS (``compass_tui/data/demo.tar.gz``).

It is regenerated with ``python -m compass_tui.sim.demo``; the seed is fixed so the shipped
file only changes when the simulator does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from compass_tui.sim.scenario import SimIncident, SimOptions, generate
from compass_tui.sim.writer import write_bundle

DEMO_FAULT = "db_connection_pool_exhaustion"
DEMO_SEED = 79
# The demo is the clean scenario (no realism knobs), so the app and its snapshots stay stable.
DEMO_OPTIONS = SimOptions(services=10, step=15, realism="off")
DEMO_PATH = Path(__file__).resolve().parent.parent / "data" / "demo.tar.gz"


def demo_incident() -> SimIncident:
    """The demo's simulated incident (about 10 services, 15 s step, a ~60 minute window)."""
    return generate(DEMO_FAULT, DEMO_SEED, DEMO_OPTIONS)


def build_demo(out: str | Path = DEMO_PATH) -> Path:
    """Write the demo bundle to ``out`` (the packaged data file by default)."""
    return write_bundle(demo_incident(), out)


if __name__ == "__main__":
    print(build_demo(sys.argv[1] if len(sys.argv) > 1 else DEMO_PATH))

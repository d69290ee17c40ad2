"""COMPASS's incident simulator.

``generate(fault, seed)`` builds a random system (topology, naming scheme, exporter
flavours, noise, red herrings), injects one catalog fault, and returns a ``SimIncident``;
``write_bundle`` freezes it to an incident bundle (format 1) as a directory or a
``.tar.gz``. Everything is deterministic per (fault, seed, options).
"""

from __future__ import annotations

from compass_tui.sim.faults import FAULTS
from compass_tui.sim.scenario import SimIncident, SimOptions, generate
from compass_tui.sim.writer import write_bundle

__all__ = ["FAULTS", "SimIncident", "SimOptions", "generate", "write_bundle"]

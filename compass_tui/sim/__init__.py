"""COMPASS's incident simulator.

``generate(fault, seed)`` builds a random system (topology, naming scheme, exporter
flavours, noise, red herrings), injects one catalog fault, and returns a ``SimIncident``;
``write_bundle`` freezes it to an incident bundle (format 1) as a directory or a
``.tar.gz``. Everything is deterministic per (fault, seed, options).

Conventions an investigation can rely on (they follow the fault catalog's wording):

* the culprit of ``external_dependency_failure`` is the third-party API's name as callers'
  telemetry names it: ``server_address`` / ``client_name`` / ``host|peer|target`` labels of
  client metrics and ``peer.service`` on client spans (``server.address`` on spans and URLs
  in logs use the host form ``api.<name>.com``);
* the culprit of ``dns_failure`` is the cluster DNS service as its own metrics name it
  (the service label of ``coredns_dns_responses_total``, e.g. ``coredns`` or ``kube-dns``);
* ``db_slow_queries`` and ``cache_failure`` blame the database / cache service (its
  exporter's service label), ``db_connection_pool_exhaustion`` the client whose pool ran
  out, ``traffic_surge`` the most upstream service whose request rate rose;
* ``code_defect`` (catalog version 2) blames the application service whose own code fails or
  slows; it has no deploy or config change in the window;
* realism knobs (earlier incidents in the baseline, quiet services, per-call client metrics,
  noisy entries, missing server-side metrics, coarse steps, per-pod culprits, memory steps,
  a real-like flavour) are drawn per scenario: see ``compass_tui.sim.realism``;
* ``truth.json`` carries ``meta`` describing how the incident was made (seed, flavour,
  label schemes, step, onset, alerted service, fault parameters, decoys, missing signals).
"""

from __future__ import annotations

from compass_tui.sim.faults import ALL_FAULTS, FAULTS, V2_FAULTS
from compass_tui.sim.realism import KNOB_RATES, KNOBS
from compass_tui.sim.scenario import SimIncident, SimOptions, generate
from compass_tui.sim.writer import write_bundle

__all__ = ["ALL_FAULTS", "FAULTS", "KNOBS", "KNOB_RATES", "V2_FAULTS", "SimIncident", "SimOptions", "generate",
           "write_bundle"]

"""The investigation engine: observe -> orient -> act (disproof) -> decide, streamed as events.

Knows nothing of Textual; the CLI, the TUI and the tests consume the same event stream. The
names below load on first use, so that light parts (the fault registry's ids, the request
parsing) can be imported without the whole engine.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "Budget": "compass_tui.engine.deps",
    "EngineDeps": "compass_tui.engine.deps",
    "MemoryAdvisor": "compass_tui.engine.deps",
    "investigate": "compass_tui.engine.orchestrator",
    "run_to_report": "compass_tui.engine.orchestrator",
    "signature_of": "compass_tui.engine.orchestrator",
}

__all__ = ["Budget", "EngineDeps", "MemoryAdvisor", "investigate", "run_to_report", "signature_of"]


def __getattr__(name: str):
    mod = _NAMES.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value

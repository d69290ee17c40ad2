"""The investigation engine: observe -> orient -> act (disproof) -> decide, streamed as events.

Knows nothing of Textual; the CLI, the TUI and the tests consume the same event stream.
"""

from compass_tui.engine.deps import Budget, EngineDeps, MemoryAdvisor
from compass_tui.engine.orchestrator import investigate, run_to_report, signature_of

__all__ = ["Budget", "EngineDeps", "MemoryAdvisor", "investigate", "run_to_report", "signature_of"]

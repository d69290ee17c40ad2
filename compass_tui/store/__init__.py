"""COMPASS's memory: investigations, the engineer's verdicts, and what they teach (DuckDB)."""

from compass_tui.store.causes import CATALOG_FAULTS, parse_cause
from compass_tui.store.store import (
    AnswerExists,
    Store,
    StoreUnavailable,
    UnknownInvestigation,
    UnknownService,
    default_path,
    incident_key,
)

__all__ = ["AnswerExists", "CATALOG_FAULTS", "Store", "UnknownService", "incident_key", "StoreUnavailable", "UnknownInvestigation", "default_path", "parse_cause"]

"""COMPASS's memory: investigations, the engineer's verdicts, and what they teach (DuckDB)."""

from compass_tui.store.causes import CATALOG_FAULTS, parse_cause
from compass_tui.store.store import Store, StoreUnavailable, UnknownInvestigation, default_path

__all__ = ["CATALOG_FAULTS", "Store", "StoreUnavailable", "UnknownInvestigation", "default_path", "parse_cause"]

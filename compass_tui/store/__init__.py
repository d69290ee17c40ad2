"""COMPASS's memory: investigations, the engineer's verdicts, and what they teach (DuckDB)."""

from compass_tui.store.causes import catalog_faults, parse_cause
from compass_tui.store.store import (
    AnswerExists,
    Store,
    StoreUnavailable,
    UnknownInvestigation,
    UnknownService,
    default_path,
    incident_key,
)


def __getattr__(name: str):
    # the catalog's ids come from the engine's fault registry, loaded when first asked for
    if name == "CATALOG_FAULTS":
        return catalog_faults()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AnswerExists", "CATALOG_FAULTS", "Store", "UnknownService", "catalog_faults", "incident_key", "StoreUnavailable",
           "UnknownInvestigation", "default_path", "parse_cause"]

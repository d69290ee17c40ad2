"""COMPASS's memory: investigations, the engineer's verdicts, and what they teach (DuckDB)."""

from compass_tui.store.causes import catalog_faults, parse_cause
from compass_tui.store.store import Store, StoreUnavailable, UnknownInvestigation, default_path


def __getattr__(name: str):
    # the catalog's ids come from the engine's fault registry, loaded when first asked for
    if name == "CATALOG_FAULTS":
        return catalog_faults()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CATALOG_FAULTS", "Store", "catalog_faults", "StoreUnavailable", "UnknownInvestigation", "default_path", "parse_cause"]

"""The fault registry: one module per catalog fault (``cpu_saturation.py``, ...), each
defining ``FAULT``, a :class:`Fault` with its detectors, typed facts and rules.

``REGISTRY`` (fault id -> Fault, in catalog order) is built on first use from the modules of
this package, so that importing the package stays light. Modules whose names start with an
underscore hold helpers that several faults share.
"""

from __future__ import annotations

import importlib
import pkgutil

from compass_tui.engine.faults.base import Facts, Fault, Rule

__all__ = ["Facts", "Fault", "REGISTRY", "Rule", "fault_ids", "get", "load_driven", "registry", "title"]

_registry: dict[str, Fault] | None = None


def _load() -> dict[str, Fault]:
    found: list[Fault] = []
    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("_") or m.name == "base":
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        f = getattr(mod, "FAULT", None)
        if not isinstance(f, Fault) or f.id != m.name:
            raise ImportError(f"fault module {m.name} must define FAULT = Fault(id={m.name!r}, ...)")
        found.append(f)
    found.sort(key=lambda f: f.order)
    orders = [f.order for f in found]
    if len(set(orders)) != len(orders):
        raise ImportError("two fault modules share one catalog order")
    return {f.id: f for f in found}


def registry() -> dict[str, Fault]:
    """Fault id -> Fault, in catalog order (loaded once)."""
    global _registry
    if _registry is None:
        _registry = _load()
    return _registry


def __getattr__(name: str):
    # REGISTRY is loaded on first access: the fault modules import this package
    if name == "REGISTRY":
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fault_ids() -> tuple[str, ...]:
    """The catalog's fault ids, in catalog order."""
    return tuple(registry())


def get(fault: str) -> Fault | None:
    """The registered fault of that id (None for ``other:`` slugs and unknown ids)."""
    return registry().get(fault)


def title(fault: str) -> str | None:
    """The catalog's title of a fault id, or None."""
    f = get(fault)
    return f.title if f else None


def load_driven(c) -> bool:
    """Saturation that extra load alone produces within a step: CPU, a pool, a database whose
    only sign is more active queries (each fault says so in ``Fault.load_driven``)."""
    f = get(c.fault)
    return f is not None and f.load_driven is not None and f.load_driven(c)

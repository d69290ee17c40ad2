"""Cause names as the engineer types them: ``FAULT@SERVICE``, with FAULT a catalog id or
``other:<slug>`` for a cause the catalog does not name."""

from __future__ import annotations

import re


def catalog_faults() -> tuple[str, ...]:
    """The catalog's fault ids, in catalog order, from the engine's fault registry (loaded on
    first use: importing the store stays light)."""
    from compass_tui.engine.faults import fault_ids  # noqa: PLC0415

    return fault_ids()


def __getattr__(name: str):
    # CATALOG_FAULTS is read from the registry when first asked for
    if name == "CATALOG_FAULTS":
        return catalog_faults()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SLUG = re.compile(r"[a-z0-9-]+")
# Service names are as the telemetry spells them; only reject what cannot be one.
_SERVICE = re.compile(r"[^\s@]+")


def valid_fault(fault: str) -> bool:
    """True for a catalog id or ``other:<slug>`` (slug of ``[a-z0-9-]``)."""
    if fault.startswith("other:"):
        return bool(_SLUG.fullmatch(fault[len("other:"):]))
    return fault in catalog_faults()


def check_cause(fault: str, service: str) -> None:
    """Raise a one-line ValueError unless (fault, service) names a cause COMPASS can learn."""
    if not valid_fault(fault):
        if fault.startswith("other:"):
            raise ValueError(
                f"{fault!r}: the slug after 'other:' must be lowercase letters, digits and dashes"
            )
        raise ValueError(
            f"unknown fault {fault!r}: use a catalog id ({', '.join(catalog_faults())}) or other:<slug>"
        )
    if not _SERVICE.fullmatch(service or ""):
        raise ValueError(f"bad service {service!r}: expected the service as named in its telemetry")


def parse_cause(text: str) -> tuple[str, str]:
    """``"FAULT@SERVICE"`` -> ``(fault, service)``; a one-line ValueError when it is not one."""
    raw = (text or "").strip()
    fault, sep, service = raw.rpartition("@")
    if not sep or not fault or not service:
        raise ValueError(f"{raw!r} is not FAULT@SERVICE (e.g. db_slow_queries@payments-db)")
    check_cause(fault, service)
    return fault, service

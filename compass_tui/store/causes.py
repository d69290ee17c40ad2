"""Cause names as the engineer types them: ``FAULT@SERVICE``, with FAULT a catalog id or
``other:<slug>`` for a cause the catalog does not name."""

from __future__ import annotations

import re

CATALOG_FAULTS: tuple[str, ...] = (
    "cpu_saturation",
    "memory_leak",
    "db_connection_pool_exhaustion",
    "db_slow_queries",
    "bad_deploy",
    "config_change",
    "external_dependency_failure",
    "network_degradation",
    "disk_full",
    "certificate_expired",
    "dns_failure",
    "traffic_surge",
    "cache_failure",
    "code_defect",
    "unexplained",
)
"""The fifteen fault ids of the fault catalog, version 2 (which added ``code_defect`` and
``unexplained``: where the trouble started when no fault above fits)."""

_SLUG = re.compile(r"[a-z0-9-]+")
# Service names are as the telemetry spells them; only reject what cannot be one.
_SERVICE = re.compile(r"[^\s@]+")


def valid_fault(fault: str) -> bool:
    """True for a catalog id or ``other:<slug>`` (slug of ``[a-z0-9-]``)."""
    if fault in CATALOG_FAULTS:
        return True
    if fault.startswith("other:"):
        return bool(_SLUG.fullmatch(fault[len("other:"):]))
    return False


def check_cause(fault: str, service: str) -> None:
    """Raise a one-line ValueError unless (fault, service) names a cause COMPASS can learn."""
    if not valid_fault(fault):
        if fault.startswith("other:"):
            raise ValueError(
                f"{fault!r}: the slug after 'other:' must be lowercase letters, digits and dashes"
            )
        raise ValueError(
            f"unknown fault {fault!r}: use a catalog id ({', '.join(CATALOG_FAULTS)}) or other:<slug>"
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

"""The store's vocabulary as the app uses it: causes, the catalog, the services to offer.

Imported lazily from the store so the app still opens (without memory) if the store cannot.
"""

from __future__ import annotations

from typing import Any


def catalog_faults() -> list[str]:
    """The catalog's fault ids, in catalog order, from the engine's fault registry (the same
    registry the store validates against and the simulator injects from)."""
    from compass_tui.engine.faults import fault_ids  # noqa: PLC0415

    return list(fault_ids())


def parse_cause(text: str) -> tuple[str, str]:
    """``fault@service`` -> (fault, service); a one-line ValueError otherwise."""
    try:
        from compass_tui.store import parse_cause as store_parse  # noqa: PLC0415
    except Exception:
        try:
            from compass_tui.store.causes import parse_cause as store_parse  # noqa: PLC0415
        except Exception:
            store_parse = None
    if store_parse is not None:
        return store_parse(text)
    fault, sep, service = (text or "").strip().rpartition("@")
    if not sep or not fault or not service:
        raise ValueError(f"{text!r} is not FAULT@SERVICE (e.g. db_slow_queries@payments-db)")
    if fault not in catalog_faults() and not fault.startswith("other:"):
        raise ValueError(f"unknown fault {fault!r}: use a catalog id or other:<slug>")
    return fault, service


def answer_of(log: list[dict]) -> tuple[str, str, str] | None:
    """The investigation's one answer from its verdicts (oldest first): (fault, service,
    ``confirm``/``actual``), or None. The latest ``actual`` wins over confirmations; a later
    rejection of the answer withdraws it (as the memory reads it)."""
    answer: tuple[str, str, str] | None = None
    for v in log:
        cause = (v["fault"], v["service"])
        if v["verdict"] == "actual" or (v["verdict"] == "confirm" and (answer is None or answer[2] != "actual")):
            answer = (*cause, v["verdict"])
        elif v["verdict"] == "reject" and answer is not None and answer[:2] == cause:
            answer = None
    return answer


def labels_for(log: list[dict], saved: bool = True) -> dict[str, str]:
    """What each row shows of what was recorded: ``confirmed``, ``actual cause`` or
    ``rejected: <reason>``, keyed by ``fault@service``."""
    out: dict[str, str] = {}
    for v in log:
        if v["verdict"] == "reject":
            out[f"{v['fault']}@{v['service']}"] = f"rejected: {v.get('reason') or ''}".rstrip(": ")
    answer = answer_of(log)
    if answer is not None:
        out[f"{answer[0]}@{answer[1]}"] = "confirmed" if answer[2] == "confirm" else "actual cause"
    if not saved:
        out = {k: f"{v} (not saved)" for k, v in out.items()}
    return out


def ranked_services(report: Any, hypotheses: list[Any], alerting: str | None) -> list[str]:
    """Every service the telemetry named, most suspect first: the engine's localisation list
    (``report.suspects``, by score) when it has one, then the services of the hypotheses by
    confidence, the alerting service, then the rest of the telemetry's services by name."""
    order: list[str] = []

    def add(name: Any) -> None:
        if isinstance(name, str) and name and name not in order:
            order.append(name)

    suspects = getattr(report, "suspects", None) if report is not None else None
    if suspects:
        def score(s: Any) -> float:
            value = s.get("score") if isinstance(s, dict) else getattr(s, "score", 0.0)
            return float(value or 0.0)

        for s in sorted(suspects, key=lambda s: -score(s)):
            add(s.get("service") if isinstance(s, dict) else getattr(s, "service", None))
    for h in sorted(hypotheses, key=lambda h: -h.confidence):
        add(h.service)
    add(alerting)
    for name in sorted(getattr(report, "services", None) or []):
        add(name)
    return order

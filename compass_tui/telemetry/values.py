"""Sample values as Prometheus writes them: shortest round-trip decimals, NaN and ±Inf by name."""

from __future__ import annotations

import math


def prom_value(v: float) -> str:
    """How Prometheus (API results) and OpenMetrics text render a sample value."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(float(v))
    return r[:-2] if r.endswith(".0") else r

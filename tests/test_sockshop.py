"""The Sock Shop converter of benchmarks/sockshop.py, on recordings in its layout written here
(the data set carries no licence, so none of it is committed): what the bundle says must be
what the recordings said, and the bundle must load and be investigated."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_localise import _investigate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("sockshop", ROOT / "benchmarks" / "sockshop.py")
ss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ss)

SERVICES = ("carts", "front-end", "orders")


def _recording(path: Path, t0: int, n: int, carts_cpu: float) -> None:
    cols = [f"{s}_cpu" for s in SERVICES] + [f"{s}_mem" for s in SERVICES] + ["carts_lod", "carts_lat_50", "carts_lat_99"]
    rows = []
    for i in range(n):
        cpu = {"carts": carts_cpu, "front-end": 10.0, "orders": 1.0}
        rows.append([t0 + i] + [cpu[s] for s in SERVICES] + [3e8, 1e8, 2e8, 5.0, 0.02, 0.2 if carts_cpu < 50 else 1.5])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(["time"] + cols) + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n")


@pytest.fixture
def data(tmp_path):
    case = tmp_path / "rcd" / "sock-shop-data" / "carts-cpu" / "1"
    _recording(case / "normal.csv", 1_652_565_600, 300, 1.2)
    _recording(case / "anomalous.csv", 1_652_812_675, 300, 100.0)  # days later, as recorded
    return tmp_path / "rcd"


def test_the_two_recordings_become_one_timeline_and_the_counters_rate_is_the_recorded_one(data, tmp_path):
    (case,) = ss.cases(ss.data_root(data))
    bundle = ss.convert_case(case, tmp_path / "out", step=5, alert_after=60)
    from compass_tui.telemetry.bundle_reader import parse_openmetrics

    md = parse_openmetrics((bundle / "metrics.om").read_bytes())
    sid = next(i for i, lab in enumerate(md.labels)
               if lab["__name__"] == "container_cpu_usage_seconds_total" and lab["container"] == "carts")
    t, v = md.t[md.offsets[sid]:md.offsets[sid + 1]], md.v[md.offsets[sid]:md.offsets[sid + 1]]
    assert np.all(np.diff(t) == 5)  # one timeline, no gap where the anomalous recording was moved
    rate = np.diff(v) / np.diff(t)
    assert rate[:50] == pytest.approx(0.012) and rate[-50:] == pytest.approx(1.0)
    hog = json.loads((bundle / "truth.json").read_text())
    assert hog["culprit"] == {"service": "carts", "fault": "cpu_saturation"}
    alert = json.loads((bundle / "incident.json").read_text())["alerts"][0]
    assert alert["labels"]["service"] == "front-end"
    began = t[0] + 300  # the normal recording's 300 seconds
    assert alert["startsAt"] == ss._rfc3339(began + 60)
    assert {lab["__name__"] for lab in md.labels} == {
        "container_cpu_usage_seconds_total", "container_memory_usage_bytes", "request_duration_seconds_count",
        "request_duration_seconds"}


def test_a_converted_case_is_investigated(data, tmp_path):
    (case,) = ss.cases(ss.data_root(data))
    report = _investigate(ss.convert_case(case, tmp_path / "out"))
    assert report.hypotheses and report.suspects


def test_a_folder_that_is_not_the_data_set_is_one_line(tmp_path):
    with pytest.raises(ss.SockShopError, match="no sock-shop-data"):
        ss.data_root(tmp_path)
    assert ss.main([str(tmp_path)]) == 2

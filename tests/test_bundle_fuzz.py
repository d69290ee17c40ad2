"""Property tests: whatever bytes a bundle's files hold, reading it ends in a loaded bundle,
a degraded signal (optional files) or a one-line BundleError, never another exception."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compass_tui.telemetry import logql
from compass_tui.telemetry.bundle import open_bundle
from compass_tui.telemetry.bundle_reader import (
    BundleError,
    parse_annotations,
    parse_logs,
    parse_openmetrics,
    parse_traces,
    read_incident,
    read_manifest,
)

T0 = 1_700_000_000
NS = 10**9

VALID: dict[str, bytes] = {
    "bundle.json": json.dumps(
        {"format": "compass-bundle/1", "title": "f", "window": {"start": "2023-11-14T22:13:20Z", "end": "2023-11-14T23:13:20Z"}, "step_seconds": 15}
    ).encode(),
    "incident.json": json.dumps({"version": "4", "alerts": [{"labels": {"alertname": "A"}}]}).encode(),
    "metrics.om": (
        "# TYPE req counter\n# HELP req Requests.\n"
        + "".join(f'req_total{{svc="a",msg="q\\"x\\\\y\\n"}} {i * 1.5} {T0 + 15 * i}\n' for i in range(5))
        + f"g NaN {T0}\ng +Inf {T0 + 15}\nh_bucket{{le=\"1\"}} 2 {T0} # {{trace_id=\"a\"}} 1 {T0}\n# EOF\n"
    ).encode(),
    "logs.json": json.dumps(
        {"streams": [{"stream": {"job": "a"}, "values": [[str((T0 + i) * NS), f"line {i} level=error"] for i in range(5)]}]}
    ).encode(),
    "traces.json": json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "0" * 32,
                                    "spanId": "1" * 16,
                                    "name": "GET",
                                    "kind": 2,
                                    "startTimeUnixNano": str(T0 * NS),
                                    "endTimeUnixNano": str(T0 * NS + 5),
                                    "attributes": [{"key": "k", "value": {"intValue": "3"}}],
                                    "status": {"code": 2},
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode(),
    "annotations.json": json.dumps([{"time": T0 * 1000, "timeEnd": T0 * 1000 + 5, "tags": ["deploy"], "text": "x"}]).encode(),
}

PARSERS = {
    "bundle.json": read_manifest,
    "incident.json": read_incident,
    "metrics.om": parse_openmetrics,
    "logs.json": parse_logs,
    "traces.json": parse_traces,
    "annotations.json": parse_annotations,
}
REQUIRED_OR_STRICT = {"bundle.json", "incident.json", "metrics.om"}


@st.composite
def mutated(draw, name: str) -> bytes:
    """The valid file with a few random edits: deletions, insertions, byte flips, a cut."""
    data = bytearray(VALID[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "flip", "truncate", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[i:i] = draw(st.sampled_from([b'"', b"\\", b"{", b"}", b" ", b"\n", b"#", b"\xff", b"-", b"1e999", b"NaN", b"[", b",", b"null"]))
        elif kind == "flip":
            data[i] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[i:]
        else:
            data[i:i] = data[i : i + draw(st.integers(1, 30))]
    return bytes(data)


def file_bytes(name: str):
    return st.one_of(st.binary(max_size=300), mutated(name))


def check_parser(name: str, data: bytes) -> None:
    """A parser may return, raise BundleError (strict files) or ValueError with a one-line
    message (optional files, which the backend turns into a degraded entry)."""
    try:
        PARSERS[name](data)
    except BundleError as e:
        assert name in REQUIRED_OR_STRICT
        assert "\n" not in str(e) and str(e).startswith(name)
    except ValueError as e:
        assert name not in REQUIRED_OR_STRICT
        assert "\n" not in str(e) and str(e).startswith(name)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(st.data())
def test_parsers_never_crash(data):
    name = data.draw(st.sampled_from(sorted(PARSERS)))
    check_parser(name, data.draw(file_bytes(name)))


@FAST
@given(st.text(max_size=200))
def test_openmetrics_random_text_is_bundle_error_or_parsed(text):
    try:
        parse_openmetrics(text.encode("utf-8", "surrogatepass"))
    except BundleError as e:
        assert str(e).startswith("metrics.om") and "\n" not in str(e)


@FAST
@given(st.text(alphabet='{}[]()|=~!"`,. abcxyz0123456789_-+*/smh\\', max_size=60))
def test_logql_parser_raises_only_logql_error(text):
    try:
        logql.parse(text)
    except logql.LogQLError as e:
        assert "\n" not in str(e)


async def _exercise(b) -> None:
    """Every verb answers (with some status) on whatever loaded."""
    start, end = T0, T0 + 3600
    await b.capabilities()
    await b.metric_names()
    await b.series("req_total", start, end)
    for q in ('{job="a"} |= "line"', '{job="a"} | logfmt | level="error"'):
        r = await b.query_logs(q, start, end, 10)
        assert r.status in ("ok", "no_data", "error")
    r = await b.query_log_metric('sum by (job) (count_over_time({job="a"}[1m]))', start, end, 60)
    assert r.status in ("ok", "no_data", "error")
    r = await b.query_range("rate(req_total[1m])", start, end, 60)
    assert r.status in ("ok", "no_data", "error")
    await b.search_traces(start, end, service="a", error_only=True)
    await b.annotations(start, end)
    b.files()


@SLOW
@given(st.data())
async def test_whole_bundle_with_one_damaged_file(data):
    name = data.draw(st.sampled_from(sorted(PARSERS)))
    content = data.draw(file_bytes(name))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "b"
        root.mkdir()
        for n, v in VALID.items():
            (root / n).write_bytes(content if n == name else v)
        try:
            b = open_bundle(root)
        except BundleError as e:
            assert name in REQUIRED_OR_STRICT, f"{name} is optional but failed the bundle: {e}"
            assert "\n" not in str(e)
            return
        try:
            if name not in REQUIRED_OR_STRICT:
                try:
                    PARSERS[name](content)
                except ValueError as e:
                    # an optional file that could not be read at all is a degraded signal, named
                    signal = {"logs.json": "logs", "traces.json": "traces", "annotations.json": "annotations"}[name]
                    assert (signal, str(e)) in b.degraded
                    assert not getattr(await b.capabilities(), signal)
            await _exercise(b)
        finally:
            await b.aclose()


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for n, v in VALID.items():
            info = tarfile.TarInfo(f"inc/{n}")
            info.size = len(v)
            tar.addfile(info, io.BytesIO(v))
    return buf.getvalue()


ARCHIVE = _archive()


@SLOW
@given(st.integers(0, len(ARCHIVE)), st.binary(max_size=16))
def test_damaged_archive_is_bundle_error_or_loads(cut, junk):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.tar.gz"
        p.write_bytes(ARCHIVE[:cut] + junk)
        try:
            b = open_bundle(p)
        except BundleError as e:
            assert str(e).startswith("x.tar.gz") or str(e).split(":")[0] in REQUIRED_OR_STRICT
            assert "\n" not in str(e)
        else:
            b.close()

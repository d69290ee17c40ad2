"""Reading bundles from disk: directories and archives, and the file parsers."""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

from compass_tui.telemetry.bundle import open_bundle
from compass_tui.telemetry.bundle_reader import BundleError, parse_openmetrics

T0 = 1_700_000_000

MANIFEST = {
    "format": "compass-bundle/1",
    "title": "test incident",
    "window": {"start": "2023-11-14T22:13:20Z", "end": "2023-11-14T23:13:20Z"},
    "step_seconds": 15,
}
INCIDENT = {
    "version": "4",
    "status": "firing",
    "alerts": [{"labels": {"alertname": "HighErrorRate", "service": "api"}, "startsAt": "2023-11-14T22:40:00Z"}],
}
METRICS = (
    "# TYPE up gauge\n"
    f'up{{job="api"}} 1 {T0}\n'
    f'up{{job="api"}} 0 {T0 + 15}\n'
    f'up{{job="db"}} 1 {T0}\n'
    "# EOF\n"
)
LOGS = {
    "streams": [
        {"stream": {"job": "api", "level": "error"}, "values": [[str(T0 * 10**9), "boom"], [str((T0 + 5) * 10**9), "bang"]]}
    ]
}


def write_bundle(root: Path, **files: object) -> Path:
    """A bundle directory with the given files (name with '.' as '_': metrics_om=...);
    a value of None leaves the file out; bytes and str are written as they are."""
    root.mkdir(parents=True, exist_ok=True)
    defaults: dict[str, object] = {
        "bundle.json": MANIFEST,
        "incident.json": INCIDENT,
        "metrics.om": METRICS,
        "logs.json": LOGS,
    }
    for k, v in files.items():
        defaults[k.replace("_", ".")] = v
    for name, content in defaults.items():
        if content is None:
            continue
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
        elif isinstance(content, str):
            (root / name).write_text(content)
        else:
            (root / name).write_text(json.dumps(content))
    return root


def pack(src: Path, dest: Path, top: str | None = None, mode: str = "w:gz") -> Path:
    """Pack a bundle directory as .tar.gz, its files at the top or inside folder ``top``."""
    with tarfile.open(dest, mode) as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=f"{top}/{p.name}" if top else p.name)
    return dest


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if info.isfile():
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


# --------------------------------------------------------------------------- locating


def test_directory_bundle_opens_with_manifest_and_incident(tmp_path):
    b = open_bundle(write_bundle(tmp_path / "inc"))
    try:
        assert b.source == "bundle:inc"
        assert b.manifest["title"] == "test incident"
        assert b.incident["alerts"][0]["labels"]["alertname"] == "HighErrorRate"
        assert b.window == (T0, T0 + 3600)
        assert b.step == 15
        assert set(b.files()) == {"bundle.json", "incident.json", "metrics.om", "logs.json"}
    finally:
        b.close()


@pytest.mark.parametrize(
    "top, name, mode",
    [(None, "inc.tar.gz", "w:gz"), ("example-incident", "inc.tar.gz", "w:gz"), ("x", "inc.tar", "w")],
)
async def test_archive_bundle_flat_or_in_one_folder(tmp_path, top, name, mode):
    src = write_bundle(tmp_path / "src")
    archive = pack(src, tmp_path / name, top, mode)
    b = open_bundle(archive)
    extracted = b._loc.tmpdir
    try:
        assert b.source == f"bundle:{name}"
        assert await b.metric_names() == ["up"]
        assert b.files()["metrics.om"] == METRICS.encode()
    finally:
        await b.aclose()
    assert extracted is not None and not extracted.exists()  # the temporary copy is gone


def test_path_traversal_member_is_never_written(tmp_path):
    src = write_bundle(tmp_path / "src")
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=p.name)
        add_member(tar, "../escaped.txt", b"pwned")
        add_member(tar, "/tmp/absolute-escape.txt", b"pwned")
        add_member(tar, "inc/../../escaped2.txt", b"pwned")
    b = open_bundle(archive)
    try:
        assert "escaped.txt" not in b.files()
        root = b._loc.tmpdir
        assert not (root.parent / "escaped.txt").exists()
        assert not (root.parent / "escaped2.txt").exists()
    finally:
        b.close()
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/absolute-escape.txt").exists()


def test_symlink_member_is_ignored_and_named(tmp_path):
    src = write_bundle(tmp_path / "src", metrics_om=None)
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=p.name)
        add_member(tar, "metrics.om", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add_member(tar, "traces.json", type=tarfile.LNKTYPE, linkname="../../etc/passwd")
    b = open_bundle(archive)
    try:
        assert "metrics.om" not in b.files()
        reasons = dict(b.degraded)
        assert "link" in reasons["metrics"] and "metrics.om" in reasons["metrics"]
        assert "link" in reasons["traces"]
    finally:
        b.close()


def test_truncated_archive_is_a_one_line_error(tmp_path):
    src = write_bundle(tmp_path / "src", metrics_om=METRICS * 0 + "".join(
        f'm{{i="{i}"}} {i} {T0 + i}\n' for i in range(3000)) + "# EOF\n")
    archive = pack(src, tmp_path / "cut.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError) as e:
        open_bundle(archive)
    assert str(e.value) == "cut.tar.gz: truncated or corrupt archive"
    assert "\n" not in str(e.value)


def test_garbage_file_is_not_a_bundle(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with pytest.raises(BundleError, match=r"notes.txt: not a bundle"):
        open_bundle(f)
    with pytest.raises(BundleError, match=r"not a bundle: no such file"):
        open_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"not a bundle"):
        open_bundle(tmp_path / "empty")


@pytest.mark.parametrize("missing", ["bundle.json", "incident.json"])
def test_missing_required_file_names_it(tmp_path, missing):
    root = write_bundle(tmp_path / "inc", **{missing.replace(".", "_"): None})
    with pytest.raises(BundleError) as e:
        open_bundle(root)
    assert str(e.value).startswith(f"{missing}: missing")
    assert e.value.path == missing


def test_bad_manifest_is_named(tmp_path):
    with pytest.raises(BundleError, match=r"^bundle.json: not valid JSON at line 1 col 2"):
        open_bundle(write_bundle(tmp_path / "a", bundle_json="{oops"))
    with pytest.raises(BundleError, match=r"^bundle.json: format 'other/9' is not supported"):
        open_bundle(write_bundle(tmp_path / "b", bundle_json={**MANIFEST, "format": "other/9"}))
    bad_window = {**MANIFEST, "window": {"start": "yesterday", "end": "2023-11-14T23:13:20Z"}}
    with pytest.raises(BundleError, match=r"^bundle.json: window.start: 'yesterday' is not an RFC 3339 time"):
        open_bundle(write_bundle(tmp_path / "c", bundle_json=bad_window))
    with pytest.raises(BundleError, match=r"^incident.json: expected a JSON object"):
        open_bundle(write_bundle(tmp_path / "d", incident_json=[1, 2]))


# --------------------------------------------------------------------------- metrics.om


def test_openmetrics_escapes_special_values_and_exemplars():
    text = (
        "# HELP req Requests.\n"
        "# TYPE req counter\n"
        "# UNIT req requests\n"
        f'req_total{{path="/a b",msg="say \\"hi\\"\\\\n",nl="x\\ny"}} 1.5 {T0}.5\n'
        f'req_total{{msg="say \\"hi\\"\\\\n",path="/a b",nl="x\\ny"}} 2 {T0 + 1}\n'  # same series, other order
        f"g NaN {T0}\n"
        f"g +Inf {T0 + 1}\n"
        f"g -Inf {T0 + 2}\n"
        f'h_bucket{{le="0.5"}} 3 {T0} # {{trace_id="abc"}} 0.3 {T0}\n'
        "# EOF\n"
    )
    md = parse_openmetrics(text.encode())
    assert md.types == {"req": "counter"}
    by_name = {lab["__name__"]: i for i, lab in enumerate(md.labels)}
    req = md.labels[by_name["req_total"]]
    assert req == {"__name__": "req_total", "path": "/a b", "msg": 'say "hi"\\n', "nl": "x\ny"}
    sid = by_name["req_total"]
    sl = slice(md.offsets[sid], md.offsets[sid + 1])
    assert list(md.t[sl]) == [T0 + 0.5, T0 + 1] and list(md.v[sl]) == [1.5, 2.0]
    g = by_name["g"]
    gv = md.v[md.offsets[g] : md.offsets[g + 1]]
    assert math.isnan(gv[0]) and gv[1] == np.inf and gv[2] == -np.inf
    h = by_name["h_bucket"]
    assert md.labels[h]["le"] == "0.5" and md.v[md.offsets[h]] == 3
    assert md.warnings == []


@pytest.mark.parametrize(
    "line, why",
    [
        ('up{job="api 1 ' + str(T0), "unterminated label set"),
        ("up{job=\"api\"} 1", "no timestamp"),
        (f'up{{job="api"}} one {T0}', "value 'one' is not a number"),
        ('up{job="api"} 1 soon', "timestamp 'soon' is not a number"),
        (f"9up 1 {T0}", "bad metric name"),
        (f'up{{job=api}} 1 {T0}', "malformed"),
        ("# TYPE up bogus", "unknown metric type 'bogus'"),
    ],
)
def test_malformed_metrics_line_names_file_and_line(tmp_path, line, why):
    text = METRICS.replace("# EOF\n", line + "\n# EOF\n")
    with pytest.raises(BundleError) as e:
        open_bundle(write_bundle(tmp_path / "inc", metrics_om=text))
    assert str(e.value).startswith("metrics.om:5: ")
    assert why in str(e.value)
    assert e.value.line == 5 and e.value.path == "metrics.om"


def test_metrics_without_eof_load_but_say_so(tmp_path):
    b = open_bundle(write_bundle(tmp_path / "inc", metrics_om=METRICS.replace("# EOF\n", "")))
    try:
        assert ("metrics", "metrics.om: does not end with '# EOF'; the file may be cut short") in b.degraded
        assert len(b._metrics.labels) == 2
    finally:
        b.close()


def test_content_after_eof_is_an_error(tmp_path):
    with pytest.raises(BundleError, match=r"^metrics.om:6: content after '# EOF'"):
        open_bundle(write_bundle(tmp_path / "inc", metrics_om=METRICS + f"up 1 {T0}\n"))


def test_duplicate_timestamps_keep_the_last_value():
    md = parse_openmetrics(f"x 1 {T0}\nx 2 {T0}\nx 3 {T0 - 15}\n# EOF\n".encode())
    assert list(md.t) == [T0 - 15, T0] and list(md.v) == [3, 2]


# --------------------------------------------------------------------------- optional files


def test_bad_log_timestamp_is_skipped_and_recorded(tmp_path):
    logs = {
        "streams": [
            {"stream": {"job": "a"}, "values": [[str(T0 * 10**9), "ok 1"]]},
            {
                "stream": {"job": "b"},
                "values": [[str(T0 * 10**9), "ok 2"], [str(T0 * 10**9), "ok 3"], ["12:00", "bad"], [str(T0 * 10**9 + 1), "ok 4"]],
            },
        ]
    }
    b = open_bundle(write_bundle(tmp_path / "inc", logs_json=logs))
    try:
        assert [d for d in b.degraded if d[0] == "logs"] == [("logs", "logs.json: line 3 of stream 2 has a bad timestamp '12:00'; 1 line skipped")]
        assert b._con.execute("SELECT count(*) FROM log_lines").fetchone()[0] == 4
    finally:
        b.close()


async def test_logs_that_are_not_json_degrade_only_logs(tmp_path):
    b = open_bundle(write_bundle(tmp_path / "inc", logs_json='{"streams": [\n  {oops'))
    try:
        assert ("logs", "logs.json: not valid JSON at line 2 col 4") in b.degraded
        assert ("traces", "no traces.json in the bundle") in b.degraded
        caps = await b.capabilities()
        assert caps.metrics and not caps.logs
        assert caps.missing["logs"] == "logs.json: not valid JSON at line 2 col 4"
        r = await b.query_logs('{job="api"}', T0, T0 + 60)
        assert r.status == "error" and "not valid JSON" in r.error
    finally:
        b.close()


async def test_missing_optional_files_are_degraded_not_fatal(tmp_path):
    b = open_bundle(write_bundle(tmp_path / "inc", metrics_om=None, logs_json=None))
    try:
        caps = await b.capabilities()
        assert not (caps.metrics or caps.logs or caps.traces or caps.annotations)
        assert caps.missing["logs"] == "no logs.json in the bundle"
        assert caps.missing["metrics"] == "no metrics.om in the bundle"
        r = await b.query_range("up", T0, T0 + 60, 15)
        assert r.status == "error" and r.error == "no metrics.om in the bundle"
    finally:
        b.close()

"""Reading an incident bundle from disk: safe archive extraction and the file parsers.

A bundle is a directory or the same directory packed as ``.tar.gz`` (see the incident
bundle spec). ``bundle.json`` and ``incident.json`` are required and a problem with them is
a :class:`BundleError`; so is a malformed line in ``metrics.om``, because a metric file that
is half read would silently change every answer. The other files are optional: a problem
there skips the bad part, and the reader records why in a list of ``(signal, reason)``
pairs so the investigation can say it ran degraded.

Nothing here touches DuckDB: the parsers return plain columns (lists and numpy arrays) that
:mod:`compass_tui.telemetry.bundle` loads.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import numpy as np

BUNDLE_FORMAT = "compass-bundle/1"
REQUIRED_FILES = ("bundle.json", "incident.json")
OPTIONAL_FILES = ("metrics.om", "logs.json", "traces.json", "annotations.json", "truth.json")
KNOWN_FILES = REQUIRED_FILES + OPTIONAL_FILES

# Limits on what an archive may unpack to: a bundle is tens of megabytes, so these only
# stop a gzip bomb or a runaway tar from filling the disk.
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_MEMBERS = 100_000


class BundleError(Exception):
    """A bundle that cannot be read. ``str(e)`` is one line: ``<file>:<line>: <what>``,
    ``<file>: <what>`` or ``<path>: not a bundle: <why>``."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- locating


@dataclass
class BundleLocation:
    """Where the bundle's files are on disk, and the temporary directory to remove on
    close when they came out of an archive."""

    root: Path
    tmpdir: Path | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)
    """(signal, reason) for archive members that were skipped (links, unsafe paths)."""

    def cleanup(self) -> None:
        """Remove the extraction directory, if any. Safe to call twice."""
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _signal_of(name: str) -> str:
    return {
        "metrics.om": "metrics",
        "logs.json": "logs",
        "traces.json": "traces",
        "annotations.json": "annotations",
    }.get(name, "bundle")


def locate_bundle(path: str | Path) -> BundleLocation:
    """Find the files of the bundle at ``path`` (a directory or a tar archive, compressed or
    not). An archive is unpacked into a temporary directory; only regular files at the top
    of the bundle (directly, or inside one top-level folder) that ``tarfile``'s ``data``
    filter accepts are written, so no member can land outside it or link out of it."""
    p = Path(path)
    if p.is_dir():
        root = p
        if not (p / "bundle.json").exists():
            subdirs = [c for c in p.iterdir() if c.is_dir() and (c / "bundle.json").is_file()]
            if len(subdirs) == 1:
                root = subdirs[0]
        return BundleLocation(root=root)
    if not p.exists():
        raise BundleError(str(p), "not a bundle: no such file or directory")
    if not p.is_file():
        raise BundleError(str(p), "not a bundle: not a directory or a .tar.gz archive")
    return _extract_archive(p)


def _extract_archive(p: Path) -> BundleLocation:
    name = p.name
    try:
        tar = tarfile.open(p, mode="r:*")
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, OSError, zlib.error) as e:
        if _looks_compressed(p):
            raise BundleError(name, "truncated or corrupt archive") from e
        raise BundleError(name, "not a bundle: not a directory or a .tar.gz archive") from e
    tmp = Path(tempfile.mkdtemp(prefix="compass-bundle-"))
    loc = BundleLocation(root=tmp, tmpdir=tmp)
    try:
        with tar:
            _extract_members(tar, tmp, name, loc)
    except BundleError:
        loc.cleanup()
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        loc.cleanup()
        raise BundleError(name, "truncated or corrupt archive") from e
    return loc


def _looks_compressed(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            head = f.read(6)
    except OSError:
        return False
    return head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"


def _extract_members(tar: tarfile.TarFile, dest: Path, archive: str, loc: BundleLocation) -> None:
    """Stream through the archive once, writing the regular files of the bundle.

    Members are kept only if they sit at the top level or inside one top-level folder and
    their name is a plain file name; everything else (links, devices, deeper paths, names
    with ``..``, members the ``data`` filter refuses) is skipped, and a skipped bundle file
    is noted so the user learns why its signal is missing."""
    # The standard library's "data" filter (3.11.4+) vets each member on top of the checks
    # here; only regular files are ever written, under names built from the member's base.
    data_filter = getattr(tarfile, "data_filter", None)
    total = 0
    count = 0
    top_dirs: set[str] = set()
    chosen: dict[str, tuple[int, str]] = {}  # bundle file name -> (depth, member path)
    for member in tar:  # iterating reads the whole archive, so truncation shows up here
        count += 1
        if count > MAX_MEMBERS:
            raise BundleError(archive, f"not a bundle: more than {MAX_MEMBERS} archive members")
        parts = [x for x in PurePosixPath(member.name).parts if x not in ("", ".")]
        if not parts or ".." in parts or member.name.startswith("/"):
            continue
        if len(parts) > 2:
            continue
        base = parts[-1]
        if len(parts) == 2:
            top_dirs.add(parts[0])
        if data_filter is not None and not member.isdir():
            try:
                data_filter(member, str(dest))
            except tarfile.FilterError:
                if base in KNOWN_FILES:
                    loc.notes.append((_signal_of(base), f"{base}: unsafe archive member in {archive}; ignored"))
                continue
        if not member.isfile():
            if base in KNOWN_FILES and not member.isdir():
                loc.notes.append(
                    (_signal_of(base), f"{base}: is a link or special file in {archive}; ignored")
                )
            continue
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(archive, f"not a bundle: unpacks to more than {MAX_TOTAL_BYTES} bytes")
        depth = len(parts) - 1
        prev = chosen.get(base)
        if prev is None or depth < prev[0]:
            chosen[base] = (depth, member.name)
        # Extract now, while the stream is positioned on this member.
        target = dest / ("root" if depth == 0 else "nested") / (parts[0] if depth else "") / base
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        if src is None:
            continue
        with src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    flat = dest / "root"
    if (flat / "bundle.json").is_file() or not top_dirs:
        loc.root = flat
    elif len(top_dirs) == 1:
        loc.root = dest / "nested" / next(iter(top_dirs))
    else:
        cands = [d for d in top_dirs if (dest / "nested" / d / "bundle.json").is_file()]
        loc.root = dest / "nested" / (cands[0] if len(cands) == 1 else sorted(top_dirs)[0])
    loc.root.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- JSON files


def _json_error(fname: str, e: json.JSONDecodeError) -> str:
    return f"{fname}: not valid JSON at line {e.lineno} col {e.colno}"


def _decode_json(fname: str, data: bytes) -> object:
    """Parse JSON or raise ValueError with a one-line message naming file, line and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{fname}: not valid UTF-8 at line {line}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(_json_error(fname, e)) from None
    except RecursionError:
        raise ValueError(f"{fname}: JSON nested too deeply") from None


def parse_rfc3339(value: object) -> float:
    """Unix seconds of an RFC 3339 time such as ``2025-10-07T07:38:45Z``."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError("no time zone")
    return dt.timestamp()


def read_manifest(data: bytes) -> dict:
    """``bundle.json``: the manifest. Raises BundleError if it is not a usable manifest."""
    try:
        doc = _decode_json("bundle.json", data)
    except ValueError as e:
        raise BundleError("bundle.json", str(e).split(": ", 1)[1]) from None
    if not isinstance(doc, dict):
        raise BundleError("bundle.json", "expected a JSON object")
    fmt = doc.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError("bundle.json", f"format {fmt!r} is not supported (expected {BUNDLE_FORMAT!r})")
    window = doc.get("window")
    if not isinstance(window, dict):
        raise BundleError("bundle.json", "window: expected an object with start and end")
    for key in ("start", "end"):
        try:
            parse_rfc3339(window.get(key))
        except (ValueError, TypeError, OverflowError, OSError):
            raise BundleError("bundle.json", f"window.{key}: {window.get(key)!r} is not an RFC 3339 time") from None
    step = doc.get("step_seconds", 15)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not (0 < step < 86400 * 365):
        raise BundleError("bundle.json", f"step_seconds: {step!r} is not a positive number of seconds")
    return doc


def read_incident(data: bytes) -> dict:
    """``incident.json``: the Alertmanager webhook payload. Raises BundleError if it is not
    a JSON object or its ``alerts`` is not a list of objects."""
    try:
        doc = _decode_json("incident.json", data)
    except ValueError as e:
        raise BundleError("incident.json", str(e).split(": ", 1)[1]) from None
    if not isinstance(doc, dict):
        raise BundleError("incident.json", "expected a JSON object (an Alertmanager webhook payload)")
    alerts = doc.get("alerts", [])
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise BundleError("incident.json", "alerts: expected a list of objects")
    return doc


# --------------------------------------------------------------------------- metrics.om

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_KEY_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\Z", re.S)
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*(,|\Z)', re.S)
# Full form of a sample line, used for lines the fast path does not take (exemplars,
# odd spacing) and to word the error for a malformed one.
_SAMPLE_RE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?'
    r"[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*(?:#.*)?\Z"
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.S)
_META_RE = re.compile(r"# (TYPE|HELP|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?\Z")
_METRIC_TYPES = {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown", "untyped"}


def _unescape(v: str) -> str:
    if "\\" not in v:
        return v
    return _UNESCAPE_RE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_labels(body: str) -> dict[str, str] | None:
    """The labels of ``a="1",b="x\\"y"`` (the text between braces), or None if malformed."""
    out: dict[str, str] = {}
    pos = 0
    n = len(body)
    while pos < n:
        m = _LABEL_RE.match(body, pos)
        if m is None:
            return None
        name, raw, comma = m.group(1), m.group(2), m.group(3)
        if name in out:
            return None
        out[name] = _unescape(raw)
        pos = m.end()
        if not comma:
            break
    if pos < n and body[pos:].strip():
        return None
    return out


@dataclass
class MetricsData:
    """The samples of ``metrics.om``: one row per distinct series, samples sorted by
    (series, time) with ``offsets[sid]:offsets[sid+1]`` the slice of series ``sid``."""

    labels: list[dict[str, str]]  # per series id, __name__ included
    t: np.ndarray  # float64 unix seconds
    v: np.ndarray  # float64
    sid: np.ndarray  # int32 series id per sample
    offsets: np.ndarray  # int64, len(labels) + 1
    types: dict[str, str] = field(default_factory=dict)  # family -> TYPE
    help: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _bad_sample(line: str) -> str:
    """Why a sample line does not parse, in words."""
    s = line.strip()
    if not _NAME_RE.match(re.split(r"[{\s]", s, maxsplit=1)[0] or "!"):
        return f"bad metric name in {s[:60]!r}"
    m = _SAMPLE_RE.match(s)
    if m is None:
        if "{" in s and "}" not in s:
            return "unterminated label set"
        return f"malformed sample line {s[:80]!r}"
    if m.group(2) is not None and parse_labels(m.group(2)[1:-1]) is None:
        return f"malformed label set {m.group(2)[:80]!r}"
    if m.group(4) is None:
        return "sample has no timestamp (bundle samples need explicit timestamps)"
    return f"malformed sample line {s[:80]!r}"


def _parse_float(tok: str) -> float | None:
    try:
        # Python's float() also takes "1_0" and "infinity"; OpenMetrics does not.
        if "_" in tok or tok.lower().lstrip("+-") in ("infinity",):
            return None
        return float(tok)
    except ValueError:
        return None


def parse_openmetrics(data: bytes, fname: str = "metrics.om") -> MetricsData:
    """Parse OpenMetrics text with explicit timestamps into columns.

    Fast path: split each line from the right into ``series value timestamp`` and parse a
    series' label set once per distinct series text; other lines (exemplars, odd spacing)
    take a full regular expression. Any line that is not a comment, a sample or blank raises
    ``BundleError("metrics.om", ..., line)``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(fname, "not valid UTF-8", data[: e.start].count(b"\n") + 1) from None

    key_cache: dict[str, int] = {}  # series text as written -> sid
    canon: dict[tuple, int] = {}  # (name, sorted labels) -> sid; `{a,b}` and `{b,a}` are one series
    labels_of: list[dict[str, str]] = []
    sids: list[int] = []
    vals: list[str] = []
    tss: list[str] = []
    lines_of: list[int] = []  # line number per sample, only consulted on a conversion error
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    warnings: list[str] = []
    seen_eof = False
    eof_line = 0

    def new_series(key: str) -> int | None:
        m = _KEY_RE.match(key)
        if m is None:
            return None
        name, body = m.group(1), m.group(2)
        labels = {} if body is None else parse_labels(body)
        if labels is None or "__name__" in labels:
            return None
        ckey = (name, tuple(sorted(labels.items())))
        sid = canon.get(ckey)
        if sid is None:
            sid = len(labels_of)
            canon[ckey] = sid
            labels_of.append({"__name__": name, **labels})
        key_cache[key] = sid
        return sid

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sid_append, val_append, ts_append, ln_append = sids.append, vals.append, tss.append, lines_of.append
    for lineno, line in enumerate(lines, 1):
        if not line:
            continue
        if seen_eof:
            if line.strip():
                raise BundleError(fname, "content after '# EOF'", lineno)
            continue
        if line[0] == "#":
            if line.rstrip() == "# EOF":
                seen_eof = True
                eof_line = lineno
                continue
            m = _META_RE.match(line.rstrip("\r"))
            if m is None:
                if line.startswith(("# TYPE", "# HELP", "# UNIT")):
                    raise BundleError(fname, f"malformed {line[2:6]} line", lineno)
                continue  # other comments are allowed by the Prometheus text format
            if m.group(1) == "TYPE":
                kind = (m.group(3) or "").strip()
                if kind not in _METRIC_TYPES:
                    raise BundleError(fname, f"unknown metric type {kind!r}", lineno)
                types[m.group(2)] = kind
            elif m.group(1) == "HELP":
                helps[m.group(2)] = m.group(3) or ""
            continue
        if " # " not in line and "\r" not in line and "\t" not in line:
            head, _, ts = line.rpartition(" ")
            key, _, val = head.rpartition(" ")
            sid = key_cache.get(key)
            if sid is None and key:
                sid = new_series(key)
            if sid is not None:
                sid_append(sid)
                val_append(val)
                ts_append(ts)
                ln_append(lineno)
                continue
        # Slow path: exemplar, tabs, or a line the split did not explain.
        s = line.strip()
        m = _SAMPLE_RE.match(s)
        if m is None or m.group(4) is None:
            raise BundleError(fname, _bad_sample(line), lineno)
        key = m.group(1) + (m.group(2) or "")
        sid = key_cache.get(key)
        if sid is None:
            sid = new_series(key)
        if sid is None:
            raise BundleError(fname, _bad_sample(line), lineno)
        sid_append(sid)
        val_append(m.group(3))
        ts_append(m.group(4))
        ln_append(lineno)

    if not seen_eof and lines:
        warnings.append(f"{fname}: does not end with '# EOF'; the file may be cut short")
    elif not seen_eof:
        warnings.append(f"{fname}: empty file")
    del eof_line

    v = _to_floats(vals, lines_of, fname, "value")
    t = _to_floats(tss, lines_of, fname, "timestamp")
    bad_t = ~np.isfinite(t)
    if bad_t.any():
        i = int(np.argmax(bad_t))
        raise BundleError(fname, f"timestamp {tss[i]!r} is not a finite number", lines_of[i])
    sid_arr = np.asarray(sids, dtype=np.int32)
    order = np.lexsort((t, sid_arr))
    sid_arr, t, v = sid_arr[order], t[order], v[order]
    # A repeated (series, timestamp) keeps the last value written, as a scrape would.
    if len(t) > 1:
        dup = (sid_arr[1:] == sid_arr[:-1]) & (t[1:] == t[:-1])
        if dup.any():
            keep = np.ones(len(t), dtype=bool)
            keep[:-1][dup] = False
            sid_arr, t, v = sid_arr[keep], t[keep], v[keep]
    offsets = np.searchsorted(sid_arr, np.arange(len(labels_of) + 1), side="left").astype(np.int64)
    return MetricsData(labels_of, t, v, sid_arr, offsets, types, helps, warnings)


def _to_floats(tokens: list[str], lines_of: list[int], fname: str, what: str) -> np.ndarray:
    try:
        arr = np.array(tokens, dtype=np.float64) if tokens else np.empty(0, dtype=np.float64)
        # numpy accepts a few spellings OpenMetrics does not ("1_0", "infinity"); check those rarely-seen forms.
        joined = "".join(tokens)
        if "_" in joined or "y" in joined or "Y" in joined:
            raise ValueError
        return arr
    except (ValueError, TypeError):
        out = np.empty(len(tokens), dtype=np.float64)
        for i, tok in enumerate(tokens):
            f = _parse_float(tok)
            if f is None:
                raise BundleError(fname, f"{what} {tok[:40]!r} is not a number", lines_of[i]) from None
            out[i] = f
        return out


# --------------------------------------------------------------------------- logs.json


@dataclass
class LogsData:
    streams: list[dict[str, str]]
    stream_id: np.ndarray  # int32 per line
    t_ns: np.ndarray  # int64 per line
    line: list[str]
    problems: list[str] = field(default_factory=list)


_MAX_NS = 2**63 - 1


def parse_logs(data: bytes, fname: str = "logs.json") -> LogsData:
    """A Loki push body. Entries with a bad timestamp or shape are skipped; ``problems``
    says which (the first few by position, then a count). Raises ValueError with a one-line
    message if the file as a whole is unusable (not JSON, no ``streams`` list)."""
    doc = _decode_json(fname, data)
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise ValueError(f'{fname}: expected an object with a "streams" list (a Loki push body)')
    streams: list[dict[str, str]] = []
    sid: list[int] = []
    tns: list[int] = []
    text: list[str] = []
    problems: list[str] = []
    skipped = 0

    def problem(msg: str, n: int = 1) -> None:
        nonlocal skipped
        skipped += n
        if len(problems) < 5:
            problems.append(msg)

    for si, st in enumerate(doc["streams"], 1):
        if not isinstance(st, dict):
            problem(f"stream {si} is not an object")
            continue
        labels = st.get("stream", {})
        values = st.get("values", [])
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            n = len(values) if isinstance(values, list) else 1
            problem(f"stream {si} has labels that are not string to string", n)
            continue
        if not isinstance(values, list):
            problem(f'stream {si} has "values" that is not a list')
            continue
        stream_index = len(streams)
        streams.append(dict(labels))
        for li, entry in enumerate(values, 1):
            if not isinstance(entry, list) or len(entry) < 2 or not isinstance(entry[1], str):
                problem(f"line {li} of stream {si} is not a [timestamp, line] pair")
                continue
            ts = entry[0]
            try:
                ns = _ns(ts)  # Loki wants a string; a bare integer is read too
            except ValueError:
                problem(f"line {li} of stream {si} has a bad timestamp {str(ts)[:30]!r}")
                continue
            sid.append(stream_index)
            tns.append(ns)
            text.append(entry[1])
    out_problems = []
    if skipped:
        first = problems[0]
        rest = f"; {skipped} entries skipped in all" if skipped > 1 else "; 1 line skipped"
        out_problems.append(f"{fname}: {first}{rest}")
    return LogsData(
        streams,
        np.asarray(sid, dtype=np.int32),
        np.asarray(tns, dtype=np.int64),
        text,
        out_problems,
    )


# --------------------------------------------------------------------------- traces.json


@dataclass
class SpanRow:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    error: bool
    attributes: dict[str, str | int | float | bool]


def _any_value(v: object) -> str | int | float | bool | None:
    """Flatten an OTLP AnyValue to a Python scalar (arrays and maps become JSON text)."""
    if not isinstance(v, dict):
        return None
    if "stringValue" in v:
        return str(v["stringValue"])
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return str(v["intValue"])
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            return str(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    for k in ("arrayValue", "kvlistValue", "bytesValue"):
        if k in v:
            return json.dumps(v[k], sort_keys=True)
    return None


def _attrs(lst: object) -> dict[str, str | int | float | bool]:
    out: dict[str, str | int | float | bool] = {}
    if not isinstance(lst, list):
        return out
    for kv in lst:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            val = _any_value(kv.get("value"))
            if val is not None:
                out[kv["key"]] = val
    return out


def _ns(v: object) -> int:
    """Unix nanoseconds given as a decimal string or an integer; ValueError otherwise."""
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int):
        ns = v
    elif isinstance(v, str) and v.isascii() and v.isdigit():
        ns = int(v)
    else:
        raise ValueError
    if not 0 <= ns <= _MAX_NS:
        raise ValueError
    return ns


def parse_traces(data: bytes, fname: str = "traces.json") -> tuple[list[SpanRow], list[str]]:
    """Spans of an OTLP/JSON ExportTraceServiceRequest, and problems (skipped spans).
    Raises ValueError with a one-line message if the file as a whole is unusable."""
    doc = _decode_json(fname, data)
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans", []), list):
        raise ValueError(f'{fname}: expected an object with a "resourceSpans" list (OTLP/JSON)')
    spans: list[SpanRow] = []
    problems: list[str] = []
    skipped = 0
    for ri, rs in enumerate(doc.get("resourceSpans", []), 1):
        if not isinstance(rs, dict):
            skipped += 1
            problems.append(f"resourceSpans[{ri}] is not an object")
            continue
        res = rs.get("resource") if isinstance(rs.get("resource"), dict) else {}
        rattrs = _attrs(res.get("attributes"))
        service = str(rattrs.get("service.name", "unknown_service"))
        scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", []))
        if not isinstance(scopes, list):
            scopes = []
        for ss in scopes:
            lst = ss.get("spans", []) if isinstance(ss, dict) else []
            if not isinstance(lst, list):
                continue
            for pi, sp in enumerate(lst, 1):
                try:
                    if not isinstance(sp, dict):
                        raise ValueError
                    tid, spid = sp.get("traceId"), sp.get("spanId")
                    if not isinstance(tid, str) or not isinstance(spid, str) or not tid or not spid:
                        raise ValueError
                    parent = sp.get("parentSpanId") or None
                    if parent is not None and not isinstance(parent, str):
                        raise ValueError
                    start, end = _ns(sp.get("startTimeUnixNano")), _ns(sp.get("endTimeUnixNano"))
                    kind = sp.get("kind", 0)
                    if isinstance(kind, str):  # proto enum names are valid JSON too
                        kind = {"SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
                                "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}.get(kind, 0)
                    if isinstance(kind, bool) or not isinstance(kind, int):
                        raise ValueError
                    status = sp.get("status") if isinstance(sp.get("status"), dict) else {}
                    code = status.get("code", 0)
                    error = code == 2 or code == "STATUS_CODE_ERROR"
                    attrs = _attrs(sp.get("attributes"))
                    if status.get("message"):
                        attrs.setdefault("status.message", str(status["message"]))
                    name = sp.get("name", "")
                    spans.append(SpanRow(tid.lower(), spid.lower(), parent.lower() if parent else None,
                                         service, str(name), kind, start, end, bool(error), attrs))
                except (ValueError, TypeError, AttributeError):
                    skipped += 1
                    if len(problems) < 1:
                        problems.append(f"span {pi} of service {service!r} has a bad id, time or kind")
    out = []
    if skipped:
        out.append(f"{fname}: {problems[0]}; {skipped} span{'s' if skipped > 1 else ''} skipped")
    return spans, out


# --------------------------------------------------------------------------- annotations.json


@dataclass
class AnnotationRow:
    time: float
    time_end: float | None
    tags: list[str]
    text: str


def parse_annotations(data: bytes, fname: str = "annotations.json") -> tuple[list[AnnotationRow], list[str]]:
    """A Grafana annotations list (times in ms), and problems (skipped entries)."""
    doc = _decode_json(fname, data)
    if not isinstance(doc, list):
        raise ValueError(f"{fname}: expected a JSON list of annotations")
    rows: list[AnnotationRow] = []
    problems: list[str] = []
    for i, a in enumerate(doc, 1):
        try:
            if not isinstance(a, dict):
                raise ValueError
            t = a.get("time")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise ValueError
            te = a.get("timeEnd")
            if te is not None and (isinstance(te, bool) or not isinstance(te, (int, float)) or not math.isfinite(te)):
                raise ValueError
            tags = a.get("tags") or []
            if not isinstance(tags, list):
                raise ValueError
            text = a.get("text", "")
            rows.append(AnnotationRow(t / 1000.0, None if te is None or te == t else te / 1000.0,
                                      [str(x) for x in tags], str(text)))
        except ValueError:
            problems.append(f"entry {i} has no numeric time")
    out = []
    if problems:
        out.append(f"{fname}: {problems[0]}; {len(problems)} skipped")
    return rows, out

"""What the logs say: new error templates per service (own or inherited from a peer), and
lines that point at a specific fault (pool timeouts, OOM, disk full, TLS, DNS, deploys...)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from compass_tui.telemetry.backend import LogLine

ERRORISH = (
    r"(?i)(error|exception|fail|fatal|panic|refused|timeout|timed out|expired|no such host|no space|denied|"
    r"unavailable|killed|out of memory|oom|deadlock|reset by peer|broken pipe|certificate|handshake|servfail|nxdomain|"
    r"exhausted|not available|too many|slow|warn|starting|started|version|config|reload|feature flag|flag|rolled|deploy|"
    r"gc|pause|evict|miss|redis|cache)"
)

# fault class -> pattern (case-insensitive)
CLASSES: dict[str, re.Pattern] = {
    "pool": re.compile(r"connection is not available|timeout acquiring a connection|pool (is )?(probably )?(full|exhausted)|"
                       r"acquire.*connection.*time|connection pool|too many (clients|connections)|remaining connection slots|"
                       r"cannot get a connection|could not obtain connection|pool.*(wait|timeout)|pending.*connection|"
                       r"waiting for (a )?(free |available )?connection|(failed|unable) to acquire (a )?connection|"
                       r"no (free|available) connections?|queuepool limit|connectionpooltimeout|pool (is )?full", re.I),
    "oom": re.compile(r"out ?of ?memory|outofmemory|oomkill|oom-kill|oom killed|memory limit|heap space|gc overhead|"
                      r"cannot allocate memory|allocation failed", re.I),
    "gc": re.compile(r"pause full|full gc|gc\(\d+\)|gc pause|gc overhead", re.I),
    "disk": re.compile(r"no space left|disk (is )?full|enospc|out of disk|could not (write|extend)|disk quota", re.I),
    "cert": re.compile(r"certificate (has )?expired|cert(ificate)? .*expired|x509|ssl ?handshake|tls handshake|handshake (fail|error)|"
                       r"certificate_unknown|certificate verify failed|certificate_expired|bad certificate|sslhandshakeexception", re.I),
    "dns": re.compile(r"no such host|nxdomain|servfail|name or service not known|temporary failure in name resolution|"
                      r"could not resolve|unknownhostexception|getaddrinfo|dns (lookup|resolution) fail|lookup .* on .*:53", re.I),
    "network": re.compile(r"connection reset|broken pipe|i/o timeout|retransmi|packet loss|network (is )?unreachable|no route to host|"
                          r"connection timed out|read timeout", re.I),
    "db_slow": re.compile(r"slow query|query_time|long running|lock wait timeout|deadlock|statement timeout|canceling statement|"
                          r"duration: \d{4,}", re.I),
    "cache": re.compile(r"redis|cache (miss|unavailable|down)|memcache|connection to cache", re.I),
    "deploy": re.compile(r"starting .*(version|v\d)|version[=: ]+v?\d|started .* in [\d.]+ ?s|rolling (out|update)|new version|"
                         r"deployed|release \S+", re.I),
    "config": re.compile(r"config(uration)? (re)?load|reloading config|config (changed|updated)|feature flag|flag .* (enabled|disabled|changed|set)|"
                         r"configmap|settings (changed|updated)", re.I),
    "cpu": re.compile(r"cpu (throttl|saturat|limit)|throttled|high cpu|event loop (lag|blocked)|thread starvation", re.I),
    "surge": re.compile(r"rate limit|too many requests|\b429\b|queue (full|overflow)|backlog|load shedding|shedding", re.I),
}
RPC_STATUS = re.compile(
    r"rpc error: code = [A-Za-z]+|status(?:runtime)?exception: [A-Z_]+|_inactiverpcerror|statuscode\.[A-Z_]+|"
    r"(?-i:\b\d{1,2} (?:CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|"
    r"ABORTED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED): )", re.I)
INHERITED = re.compile(
    r"timeout|timed out|deadline exceeded|upstream|status code 5\d\d|\b50[0-4]\b|bad gateway|service unavailable|gateway timeout|"
    r"connection refused|connection reset|unexpected status|httperror|feignexception|serviceunavailable|request failed|i/o timeout|"
    r"retry|retrying|circuit|peer=|url=|host=|http://|https://|grpc|unavailable|"
    # connection failures as runtimes name them (Node errno codes, Go dial errors, Java and
    # Python exception classes): a peer's trouble seen from here
    r"econnrefused|econnreset|etimedout|ehostunreach|enotfound|eai_again|socket hang up|no route to host|"
    r"broken pipe|no such host|connectexception|sockettimeoutexception|unknownhostexception|newconnectionerror|"
    r"connectionrefusederror|max retries exceeded|"
    # a status a gRPC call returned, as each runtime's client reports it (Go, Java, Python, Node):
    # the callee failed, whatever the message it sent back says
    + RPC_STATUS.pattern, re.I)
_PEER_FIELD = re.compile(r'(?:peer(?:\.service)?|upstream|host|server|target|dependency)["\']?\s*[=:]\s*["\']?([A-Za-z0-9][A-Za-z0-9_.-]{1,80})', re.I)
_URL_HOST = re.compile(r"https?://([A-Za-z0-9.-]+)")


def named_peers(line: str) -> set[str]:
    """Peers a log line names: peer=/host= fields and URL hosts (api.stripe-api.com -> stripe-api)."""
    out = set()
    for m in _PEER_FIELD.finditer(line):
        out.add(_host_name(m.group(1)))
    for m in _URL_HOST.finditer(line):
        out.add(_host_name(m.group(1)))
    return {p for p in out if p and not p[0].isdigit()}


def _host_name(host: str) -> str:
    h = host.lower().split(":")[0]
    parts = [p for p in h.split(".") if p]
    if len(parts) >= 2 and parts[-1] in ("com", "io", "net", "org", "co", "dev", "cloud", "app"):
        parts = parts[:-1]
    if len(parts) >= 2 and parts[0] in ("api", "www", "gateway", "edge"):
        parts = parts[1:]
    if len(parts) > 1 and parts[1] in ("svc", "internal", "local", "cluster", "default", "prod"):
        parts = parts[:1]
    return parts[0] if len(parts) == 1 else parts[-1] if len(parts[-1]) > 3 else parts[0]


_NUM = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+(\.\d+)?", re.I)
_QUOTED_TS = re.compile(r"^\S*\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[.,\d]*Z?\S*\s*")
_KV_TS = re.compile(r'"?(ts|time|timestamp)"?[=:]\s*"?[\dTZ:.\- ]+"?,?\s*', re.I)
_IP = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b")
_URLPATH = re.compile(r"(https?://[^/\s\"']+)(/[^\s\"']*)?")


def template(line: str) -> str:
    """A line reduced to its shape: timestamps, numbers, ids and URL paths folded."""
    t = _QUOTED_TS.sub("", line)
    t = _KV_TS.sub("", t)
    t = _IP.sub("<ip>", t)
    t = _URLPATH.sub(r"\1/<path>", t)
    t = _NUM.sub("<n>", t)
    return t[:200]


@dataclass
class Template:
    service: str
    text: str
    example: str
    base: int = 0
    post: int = 0
    first_post: float | None = None
    classes: set[str] = field(default_factory=set)
    inherited: bool = False
    peers: set[str] = field(default_factory=set)
    named: set[str] = field(default_factory=set)
    """Every peer the line names (peer=, host=, URL hosts), known or not."""


@dataclass
class LogFacts:
    label: str | None = None
    query: str = ""
    templates: dict[tuple[str, str], Template] = field(default_factory=dict)
    class_hits: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    """(service, class) -> times of matching lines."""
    base_span: float = 1.0
    post_span: float = 1.0
    synthetic: bool = False
    """True when built from failed spans' messages only (the stack has no logs)."""

    def new_templates(self, service: str, min_post: int = 3) -> list[Template]:
        """Templates of a service that appeared after the split, scaled for window lengths."""
        out = []
        for (svc, _), tp in self.templates.items():
            if svc != service:
                continue
            base_rate = tp.base / self.base_span
            post_rate = tp.post / self.post_span
            if tp.post >= min_post and (tp.base == 0 or post_rate > 8 * base_rate):
                out.append(tp)
        return sorted(out, key=lambda x: -x.post)

    def hits(self, service: str, cls: str, start: float | None = None, end: float | None = None) -> list[float]:
        ts = self.class_hits.get((service, cls), [])
        return [t for t in ts if (start is None or t >= start) and (end is None or t <= end)]


def analyse(lines: list[LogLine], label: str, split_at: float, base_span: float, post_span: float,
            known: set[str]) -> LogFacts:
    facts = LogFacts(label=label, base_span=max(base_span, 1.0), post_span=max(post_span, 1.0))
    peer_pat = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(known, key=len, reverse=True)) + r")\b") if known else None
    for ln in lines:
        svc = ln.labels.get(label)
        if not svc:
            continue
        text = ln.line
        post = ln.t >= split_at
        key_t = template(text)
        key = (svc, key_t)
        tp = facts.templates.get(key)
        if tp is None:
            tp = Template(service=svc, text=key_t, example=text[:300])
            for cls, pat in CLASSES.items():
                if pat.search(text):
                    tp.classes.add(cls)
            if peer_pat is not None:
                tp.peers = {m.group(1) for m in peer_pat.finditer(text)} - {svc}
            tp.named = named_peers(text) - {svc}
            tp.inherited = bool(RPC_STATUS.search(text)) or (bool(INHERITED.search(text))
                                                               and (bool(tp.peers) or "upstream" in text.lower() or "http" in text.lower()))
            facts.templates[key] = tp
        if post:
            tp.post += 1
            if tp.first_post is None or ln.t < tp.first_post:
                tp.first_post = ln.t
        else:
            tp.base += 1
        for cls in tp.classes:
            facts.class_hits[(svc, cls)].append(ln.t)
    for v in facts.class_hits.values():
        v.sort()
    return facts


TRACE_ERRORS_QUERY = "{ status = error }"
_MESSAGE_ATTRS = ("status.message", "exception.message", "error.message", "otel.status_description", "exception.type")


def error_span_lines(spans, label: str) -> list[LogLine]:
    """Failed spans as log-like lines: their error message, and the peer they called."""
    out = []
    for s in spans:
        if not s.error:
            continue
        msg = next((str(s.attributes[a]) for a in _MESSAGE_ATTRS if s.attributes.get(a)), None)
        if not msg:
            continue
        peer = next((str(s.attributes[a]) for a in ("peer.service", "server.address", "net.peer.name") if s.attributes.get(a)), None)
        line = f"error {msg}" + (f" peer={peer}" if peer else "")
        out.append(LogLine(t=s.start, t_ns=int(s.start * 1e9), labels={label: s.service}, line=line))
    return out

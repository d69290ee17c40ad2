"""The service graph (who calls whom), from traces, client metrics, pool labels and log peers,
and what traces say about each call: errors by origin, client vs server durations."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from compass_tui.telemetry.backend import Span


@dataclass
class EdgeStats:
    base_client: list[float] = field(default_factory=list)
    post_client: list[float] = field(default_factory=list)
    base_server: list[float] = field(default_factory=list)
    post_server: list[float] = field(default_factory=list)
    base_err: int = 0
    post_err: int = 0
    base_n: int = 0
    post_n: int = 0


@dataclass
class ServiceGraph:
    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sources: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    edge_stats: dict[tuple[str, str], EdgeStats] = field(default_factory=lambda: defaultdict(EdgeStats))
    own_errors: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    """service -> [baseline own errors, baseline server spans, post own errors, post server spans]"""
    server_dur: dict[str, list[list[float]]] = field(default_factory=lambda: defaultdict(lambda: [[], []]))

    def add(self, caller: str, callee: str, how: str) -> None:
        if not caller or not callee or caller == callee:
            return
        self.edges[caller].add(callee)
        self.sources[(caller, callee)].add(how)

    def callees(self, s: str) -> set[str]:
        return set(self.edges.get(s, ()))

    def callers(self, s: str) -> set[str]:
        return {a for a, bs in self.edges.items() if s in bs}

    def downstream(self, s: str) -> set[str]:
        seen: set[str] = set()
        stack = [s]
        while stack:
            for n in self.edges.get(stack.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
        seen.discard(s)
        return seen

    def upstream(self, s: str) -> set[str]:
        rev: dict[str, set[str]] = defaultdict(set)
        for a, bs in self.edges.items():
            for b in bs:
                rev[b].add(a)
        seen: set[str] = set()
        stack = [s]
        while stack:
            for n in rev.get(stack.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
        seen.discard(s)
        return seen

    @property
    def known(self) -> bool:
        return any(self.edges.values())

    def nodes(self) -> set[str]:
        out = set(self.edges)
        for bs in self.edges.values():
            out |= bs
        return out


def _peer_of(span: Span) -> str | None:
    a = span.attributes
    for key in ("peer.service", "server.address", "net.peer.name", "db.name", "rpc.service"):
        v = a.get(key)
        if isinstance(v, str) and v:
            return v
    return None


def add_traces(graph: ServiceGraph, spans: list[Span], split_at: float, known: set[str]) -> None:
    """Edges and per-edge durations from spans; ``split_at`` separates baseline from after."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        if s.parent_span_id:
            children[s.parent_span_id].append(s)
    for s in spans:
        post = s.start >= split_at
        parent = by_id.get(s.parent_span_id) if s.parent_span_id else None
        if parent is not None and parent.service != s.service:
            graph.add(parent.service, s.service, "traces")
        if s.kind == 3:  # client
            peer = _peer_of(s)
            server_child = next((c for c in children.get(s.span_id, ()) if c.kind == 2), None)
            callee = server_child.service if server_child is not None else peer
            if callee and peer and callee != peer and peer in known:
                callee = peer
            if callee and callee != s.service:
                graph.add(s.service, callee, "traces")
                st = graph.edge_stats[(s.service, callee)]
                if post:
                    st.post_n += 1
                    st.post_client.append(s.duration_s)
                    st.post_err += int(s.error)
                    if server_child is not None:
                        st.post_server.append(server_child.duration_s)
                else:
                    st.base_n += 1
                    st.base_client.append(s.duration_s)
                    st.base_err += int(s.error)
                    if server_child is not None:
                        st.base_server.append(server_child.duration_s)
        elif s.kind == 2:  # server
            kids = children.get(s.span_id, ())
            inherited = any(k.error for k in kids if k.kind == 3)
            own = s.error and not inherited
            rec = graph.own_errors[s.service]
            if post:
                rec[2] += int(own)
                rec[3] += 1
            else:
                rec[0] += int(own)
                rec[1] += 1
            graph.server_dur[s.service][1 if post else 0].append(s.duration_s)


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")

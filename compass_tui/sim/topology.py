"""Service topologies: layered fan-out DAGs with databases, caches, third-party APIs and DNS."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from compass_tui.sim.names import NamePool

APP = "app"
POSTGRES = "postgres"
MYSQL = "mysql"
REDIS = "redis"
EXTERNAL = "external"
DNS = "dns"
DATABASES = (POSTGRES, MYSQL)


@dataclass
class Edge:
    """One caller→callee dependency and how the caller uses it."""

    caller: str
    callee: str
    kind: str  # rpc, db, cache, external
    fanout: float  # calls per caller request
    weight: float  # share of the callee's latency that lands on the caller (serial vs parallel)
    propagate: float  # share of callee failures that surface as caller failures
    timeout: float  # caller's timeout for this call, seconds
    tls: bool = False
    pool_lib: str | None = None  # hikaricp, go_sql, otel (db edges)
    pool_max: int = 0
    pool_name: str = ""
    retries: int = 0


@dataclass
class Service:
    """A component of the system: an application service or an infrastructure node."""

    name: str
    kind: str
    role: str = "mid"  # entry, mid, leaf (apps); infra otherwise
    layer: int = 0
    lang: str = "go"
    protocol: str = "http"
    replicas: int = 1
    port: int = 8080
    backing_db: str | None = None  # caches: the database whose load rises on misses
    has_volume: bool = False
    tls: bool = False
    extras: dict = field(default_factory=dict)


@dataclass
class Topology:
    """Services by name plus dependency edges; ``order`` is callers-before-callees."""

    services: dict[str, Service]
    edges: list[Edge]
    order: list[str]
    entries: list[str]
    dns: str
    namespace: str
    vocab: str

    def out_edges(self, name: str) -> list[Edge]:
        """Edges whose caller is ``name``."""
        return self._out.get(name, [])

    def in_edges(self, name: str) -> list[Edge]:
        """Edges whose callee is ``name``."""
        return self._in.get(name, [])

    def __post_init__(self) -> None:
        self._out: dict[str, list[Edge]] = {}
        self._in: dict[str, list[Edge]] = {}
        for e in self.edges:
            self._out.setdefault(e.caller, []).append(e)
            self._in.setdefault(e.callee, []).append(e)

    def apps(self) -> list[str]:
        """Application services, callers first."""
        return [n for n in self.order if self.services[n].kind == APP]

    def of_kind(self, *kinds: str) -> list[str]:
        """Services of the given kinds, in call order."""
        return [n for n in self.order if self.services[n].kind in kinds]

    def upstream(self, name: str) -> set[str]:
        """Every service that depends on ``name`` directly or transitively."""
        seen: set[str] = set()
        stack = [name]
        while stack:
            cur = stack.pop()
            for e in self.in_edges(cur):
                if e.caller not in seen:
                    seen.add(e.caller)
                    stack.append(e.caller)
        return seen


_LANG_WEIGHTS = {"java": 0.35, "go": 0.3, "python": 0.2, "node": 0.15}
_POOL_FOR_LANG = {"java": "hikaricp", "go": "go_sql", "python": "otel", "node": "otel"}


def build_topology(rng: random.Random, n_services: int, vocab: str, require: tuple[str, ...] = ()) -> Topology:
    """A random layered DAG of about ``n_services`` components (apps plus infrastructure)."""
    names = NamePool(rng, vocab)
    n = max(5, n_services)
    n_dns = 1
    n_ext = min(6, max(1, round(n * rng.uniform(0.04, 0.12))))
    n_db = max(1, round(n * rng.uniform(0.1, 0.2)))
    n_cache = max(1 if n >= 7 else 0, round(n * rng.uniform(0.03, 0.1)))
    if REDIS in require:
        n_cache = max(1, n_cache)
    n_app = n - n_dns - n_ext - n_db - n_cache
    while n_app < 3:
        if n_db > 1:
            n_db -= 1
        elif n_cache > (1 if REDIS in require else 0):
            n_cache -= 1
        elif n_ext > 1:
            n_ext -= 1
        n_app = n - n_dns - n_ext - n_db - n_cache
        if n_db == 1 and n_cache <= (1 if REDIS in require else 0) and n_ext == 1:
            break
    n_app = max(3, n_app)

    depth = min(7, max(2, round(2 + rng.uniform(0.5, 1.6) * (n_app ** 0.3))))
    n_entry = 1 if n_app < 12 else rng.choice([1, 1, 2, 2, 3])
    services: dict[str, Service] = {}
    layers: list[list[str]] = [[] for _ in range(depth)]
    fleet_langs = [lang for lang in _LANG_WEIGHTS if rng.random() < 0.8] or ["go"]
    grpc_share = rng.choice([0.0, 0.0, 0.3, 0.7, 1.0])

    def new_app(role: str, layer: int) -> Service:
        lang = rng.choices(fleet_langs, [_LANG_WEIGHTS[x] for x in fleet_langs])[0]
        protocol = "grpc" if role != "entry" and rng.random() < grpc_share else "http"
        svc = Service(name=names.service(role), kind=APP, role=role, layer=layer, lang=lang,
                      protocol=protocol,
                      replicas=rng.choice([1, 2, 2, 3, 3, 4, 6]) if role != "leaf" else rng.choice([1, 1, 2, 3]),
                      port=rng.choice([8080, 8080, 9090, 3000, 8000, 5000]))
        services[svc.name] = svc
        layers[layer].append(svc.name)
        return svc

    for _ in range(n_entry):
        new_app("entry", 0)
    remaining = n_app - n_entry
    # Middle layers get most services; the last layer holds leaves.
    for i in range(remaining):
        layer = 1 + min(depth - 2, int(rng.random() ** 0.8 * (depth - 1))) if depth > 2 else 1
        role = "leaf" if layer == depth - 1 or rng.random() < 0.15 else "mid"
        new_app(role, layer)
    # Keep layers non-empty so the graph stays connected top to bottom.
    for li in range(1, depth):
        if not layers[li]:
            donor = max(range(1, depth), key=lambda j: len(layers[j]))
            if len(layers[donor]) > 1:
                moved = layers[donor].pop()
                services[moved].layer = li
                layers[li].append(moved)
    layers = [layer for layer in layers if layer]
    for li, layer in enumerate(layers):
        for nm in layer:
            services[nm].layer = li

    edges: list[Edge] = []
    tls_fleet = rng.random() < 0.7
    for li in range(1, len(layers)):
        for nm in layers[li]:
            callers = [c for layer in layers[:li] for c in layer if services[c].role != "leaf"]
            near = [c for c in layers[li - 1] if services[c].role != "leaf"] or callers
            k = 1 if rng.random() < 0.6 else rng.randint(2, 3)
            chosen = {rng.choice(near)}
            while len(chosen) < min(k, len(callers)):
                chosen.add(rng.choice(callers))
            for caller in sorted(chosen):
                edges.append(_rpc_edge(rng, caller, nm, services, tls_fleet))
    # Extra fan-out so upper services call several peers, capped to keep big graphs sparse.
    for li in range(len(layers) - 1):
        for caller in layers[li]:
            if services[caller].role == "leaf":
                continue
            have = {e.callee for e in edges if e.caller == caller}
            want = rng.randint(1, 4 if li == 0 else 3)
            below = [c for layer in layers[li + 1:] for c in layer if c not in have]
            rng.shuffle(below)
            for callee in below[: max(0, want - len(have))]:
                edges.append(_rpc_edge(rng, caller, callee, services, tls_fleet))

    apps = [nm for layer in layers for nm in layer]
    non_entry = [a for a in apps if services[a].role != "entry"] or apps

    # Databases: each owned by one service, sometimes shared by a second or third.
    db_engine_mix = rng.choice([[POSTGRES], [MYSQL], [POSTGRES, MYSQL], [POSTGRES, POSTGRES, MYSQL]])
    owners = rng.sample(non_entry, min(n_db, len(non_entry)))
    while len(owners) < n_db:
        owners.append(rng.choice(non_entry))
    for owner in owners:
        engine = rng.choice(db_engine_mix)
        db = Service(name=names.datastore(engine, owner), kind=engine, role="infra",
                     layer=len(layers), lang="", replicas=1,
                     port=5432 if engine == POSTGRES else 3306, has_volume=True)
        services[db.name] = db
        clients = {owner}
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            clients.add(rng.choice(non_entry))
        for client in sorted(clients):
            edges.append(_db_edge(rng, client, db.name, services))

    dbs = [d for d in services if services[d].kind in DATABASES]
    for _ in range(n_cache):
        owner = rng.choice(non_entry)
        cache = Service(name=names.datastore(REDIS, owner), kind=REDIS, role="infra",
                        layer=len(layers), lang="", port=6379)
        owner_dbs = [e.callee for e in edges if e.caller == owner and e.kind == "db"]
        if not owner_dbs and dbs:
            owner_dbs = [rng.choice(dbs)]
            edges.append(_db_edge(rng, owner, owner_dbs[0], services))
        cache.backing_db = owner_dbs[0] if owner_dbs else None
        services[cache.name] = cache
        clients = {owner} | {rng.choice(non_entry) for _ in range(rng.choice([0, 0, 1, 2]))}
        for client in sorted(clients):
            edges.append(Edge(client, cache.name, "cache", fanout=rng.uniform(1, 4),
                              weight=rng.uniform(0.5, 1.0), propagate=rng.uniform(0.0, 0.3),
                              timeout=rng.choice([0.1, 0.25, 0.5, 1.0])))
            # A cache client also reads the cache's database on misses.
            if cache.backing_db and not any(e.caller == client and e.callee == cache.backing_db
                                            for e in edges):
                edges.append(_db_edge(rng, client, cache.backing_db, services))

    for _ in range(n_ext):
        ext = Service(name=names.external(), kind=EXTERNAL, role="infra", layer=len(layers) + 1,
                      lang="", port=443, tls=True)
        services[ext.name] = ext
        callers = {rng.choice(non_entry)}
        for _ in range(rng.choice([0, 1, 1, 2])):
            callers.add(rng.choice(non_entry))
        for caller in sorted(callers):
            edges.append(Edge(caller, ext.name, "external", fanout=rng.uniform(0.05, 0.6),
                              weight=1.0, propagate=rng.uniform(0.6, 1.0),
                              timeout=rng.choice([2.0, 5.0, 10.0, 30.0]), tls=True,
                              retries=rng.choice([0, 1, 2])))

    dns_name = rng.choice(["coredns", "coredns", "kube-dns", "dns", "node-local-dns"])
    services[dns_name] = Service(name=dns_name, kind=DNS, role="infra", layer=len(layers) + 2,
                                 lang="", port=53)

    for nm, svc in services.items():
        if svc.kind == APP:
            svc.tls = tls_fleet and rng.random() < 0.8
            svc.has_volume = rng.random() < 0.25

    # A client's pools need distinct names (Hikari numbers them per process).
    for client in {e.caller for e in edges if e.kind == "db"}:
        seen: set[str] = set()
        k = 1
        for e in edges:
            if e.caller == client and e.kind == "db":
                if e.pool_lib == "hikaricp":
                    e.pool_name = f"HikariPool-{k}"
                    k += 1
                while e.pool_name in seen:
                    e.pool_name += "-2"
                seen.add(e.pool_name)

    order = apps + [d for d in services if services[d].kind in (POSTGRES, MYSQL)] + \
        [c for c in services if services[c].kind == REDIS] + \
        [x for x in services if services[x].kind == EXTERNAL] + [dns_name]
    return Topology(services=services, edges=edges, order=order,
                    entries=[a for a in apps if services[a].role == "entry"], dns=dns_name,
                    namespace=rng.choice([names.domain, f"{names.domain}-prod", "prod", "default",
                                          f"{names.domain}-{rng.choice(['live', 'main', 'apps'])}"]),
                    vocab=vocab)


def _rpc_edge(rng: random.Random, caller: str, callee: str, services: dict[str, Service],
              tls_fleet: bool) -> Edge:
    return Edge(caller, callee, "rpc", fanout=rng.choice([0.2, 0.3, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.5, 2.0]),
                weight=rng.uniform(0.35, 1.0), propagate=rng.uniform(0.5, 1.0),
                timeout=rng.choice([1.0, 2.0, 3.0, 5.0, 10.0, 30.0]),
                tls=tls_fleet and rng.random() < 0.85, retries=rng.choice([0, 0, 1, 2, 3]))


def _db_edge(rng: random.Random, client: str, db: str, services: dict[str, Service]) -> Edge:
    lang = services[client].lang
    lib = _POOL_FOR_LANG.get(lang, "otel") if rng.random() < 0.85 else rng.choice(["hikaricp", "go_sql", "otel"])
    pool_name = {"hikaricp": f"HikariPool-{rng.randint(1, 2)}", "go_sql": db,
                 "otel": rng.choice([db, f"{db}-pool", f"{client}-{services[db].kind}"])}[lib]
    return Edge(client, db, "db", fanout=rng.uniform(0.5, 4), weight=rng.uniform(0.7, 1.0),
                propagate=rng.uniform(0.7, 1.0), timeout=rng.choice([5.0, 10.0, 30.0]),
                pool_lib=lib, pool_max=rng.choice([10, 10, 16, 20, 25, 32, 50]), pool_name=pool_name)

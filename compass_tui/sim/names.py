"""Service, host, pod and version names for simulated incidents.

Names come from several business vocabularies plus a generic word-pair one, and are
decorated the way real fleets decorate them (``-svc``, ``-api``, ``-v2``, digits), so an
investigation cannot lean on one naming habit.
"""

from __future__ import annotations

import random

VOCABULARIES: dict[str, dict[str, list[str]]] = {
    "shop": {
        "entry": ["storefront", "web-frontend", "api-gateway", "shop-edge", "bff-web", "mobile-bff"],
        "mid": ["checkout", "cart", "orders", "catalog", "pricing", "inventory", "search",
                "recommendations", "accounts", "promotions", "shipping", "payments",
                "reviews", "wishlist", "fulfillment", "tax", "product-details", "sessions"],
        "leaf": ["currency", "email", "sms-sender", "image-resizer", "ad-service", "quote",
                 "fraud-check", "address-validation", "loyalty-points"],
        "external": ["stripe-api", "paypal-api", "adyen-gateway", "shippo-api", "avalara-tax",
                     "sendgrid-api", "algolia-search"],
        "domain": "shop",
    },
    "travel": {
        "entry": ["app-gateway", "booking-web", "edge-proxy", "partner-api"],
        "mid": ["bookings", "availability", "itinerary", "seatmaps", "pricing-engine",
                "search", "customers", "loyalty", "reviews", "hotel-inventory", "flight-search",
                "fare-rules", "ancillaries", "checkin"],
        "leaf": ["notifications", "geo-lookup", "currency-rates", "pdf-render", "weather",
                 "audit-log"],
        "external": ["amadeus-api", "sabre-gds", "stripe-api", "twilio-api", "google-maps-api",
                     "booking-partner-api"],
        "domain": "travel",
    },
    "bank": {
        "entry": ["api-gateway", "online-banking", "mobile-gateway", "open-banking-api"],
        "mid": ["accounts", "ledger", "payments", "transfers", "cards", "auth", "kyc",
                "statements", "limits", "fx-rates", "loans", "customer-profile", "risk-scoring"],
        "leaf": ["notifications", "audit", "document-store", "otp-sender", "pdf-statements",
                 "sanctions-screening"],
        "external": ["onfido-api", "swift-gateway", "visa-network", "experian-api", "stripe-api",
                     "plaid-api", "fx-provider"],
        "domain": "banking",
    },
    "media": {
        "entry": ["edge-api", "web-player", "tv-gateway", "graphql-gateway"],
        "mid": ["playback", "catalog", "user-profiles", "entitlements", "recommendations",
                "watch-history", "subscriptions", "search", "metadata", "drm-license",
                "playlists", "comments"],
        "leaf": ["thumbnails", "transcoder-status", "analytics-ingest", "ad-decisioning",
                 "subtitles"],
        "external": ["akamai-api", "widevine-license", "braintree-api", "segment-api",
                     "imdb-metadata-api"],
        "domain": "media",
    },
    "logistics": {
        "entry": ["tracking-api", "partner-gateway", "dispatch-web", "edi-gateway"],
        "mid": ["shipments", "routing", "fleet", "warehouse", "labels", "rates",
                "customs", "manifests", "pickups", "returns", "proof-of-delivery", "slotting"],
        "leaf": ["geocoder", "eta-predictor", "barcode", "notifier", "telemetry-ingest"],
        "external": ["ups-api", "fedex-api", "dhl-api", "here-maps-api", "customs-broker-api"],
        "domain": "logistics",
    },
    "gaming": {
        "entry": ["game-gateway", "lobby-api", "client-edge", "launcher-api"],
        "mid": ["matchmaking", "player-profile", "inventory", "leaderboards", "store",
                "sessions", "friends", "chat", "progression", "anti-cheat", "tournaments",
                "rewards"],
        "leaf": ["telemetry", "presence", "notifications", "replay-store", "moderation"],
        "external": ["steam-api", "xbox-live-api", "psn-api", "epic-online-services",
                     "stripe-api"],
        "domain": "gaming",
    },
}

_GENERIC_A = ["amber", "brisk", "cobalt", "delta", "ember", "falcon", "granite", "harbor",
              "indigo", "juniper", "kestrel", "lumen", "maple", "nimbus", "onyx", "pine",
              "quartz", "raven", "sierra", "tundra", "umber", "vortex", "willow", "zephyr",
              "atlas", "beacon", "cedar", "drift", "echo", "flint"]
_GENERIC_B = ["router", "worker", "store", "engine", "broker", "ledger", "relay", "index",
              "scheduler", "registry", "gateway", "collector", "resolver", "planner", "feed",
              "sync", "vault", "tracker", "hub", "processor"]
_SUFFIXES = ["-svc", "-api", "-service", "-v2", "-srv", "-backend", "-core"]

_LEAF_GENERIC = ["audit", "notifier", "mailer", "metrics-sink", "geo", "thumbnailer", "pdf",
                 "webhook-relay", "scheduler", "feature-flags", "id-generator", "rate-limiter"]


def vocabulary_names() -> list[str]:
    """The names of the vocabularies a topology can draw its service names from."""
    return [*VOCABULARIES, "generic"]


class NamePool:
    """Hands out unique service names of one vocabulary, decorating them when it runs dry."""

    def __init__(self, rng: random.Random, vocab: str):
        self.rng = rng
        self.vocab = vocab
        self.used: set[str] = set()
        # One decoration habit per fleet, applied to a share of names.
        self.suffix = rng.choice(_SUFFIXES) if rng.random() < 0.35 else ""
        self.suffix_share = rng.uniform(0.3, 1.0)
        self.domain = VOCABULARIES[vocab]["domain"] if vocab in VOCABULARIES else rng.choice(
            ["platform", "core", "prod", "apps", "services"])

    def _decorate(self, base: str) -> str:
        if self.suffix and self.rng.random() < self.suffix_share and not base.endswith(self.suffix):
            return base + self.suffix
        return base

    def _fresh(self, candidates: list[str]) -> str:
        pool = [c for c in candidates if c not in self.used and self._decorate_peek(c)]
        self.rng.shuffle(pool)
        for c in pool:
            name = self._decorate(c)
            if name not in self.used:
                self.used.add(name)
                return name
        # Vocabulary exhausted: real large fleets grow names with digits and shards.
        for _ in range(1000):
            base = self.rng.choice(candidates) if candidates else self.rng.choice(_GENERIC_B)
            style = self.rng.random()
            if style < 0.4:
                name = f"{base}-{self.rng.randint(2, 99)}"
            elif style < 0.7:
                name = f"{self.rng.choice(_GENERIC_A)}-{base}"
            else:
                name = f"{base}-{self.rng.choice(['eu', 'us', 'ap', 'batch', 'rt', 'internal', 'legacy'])}"
                if name in self.used:
                    name += str(self.rng.randint(1, 9))
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("could not find a free service name")

    @staticmethod
    def _decorate_peek(_: str) -> bool:
        return True

    def service(self, role: str) -> str:
        """A new unique name for a service of ``role`` (entry, mid, leaf)."""
        if self.vocab in VOCABULARIES:
            return self._fresh(list(VOCABULARIES[self.vocab][role]))
        if role == "leaf":
            return self._fresh(_LEAF_GENERIC + [f"{a}-{b}" for a in _GENERIC_A[:8] for b in _GENERIC_B[:5]])
        if role == "entry":
            return self._fresh(["edge-gateway", "public-api", "ingress-api", "front-door",
                                f"{self.rng.choice(_GENERIC_A)}-gateway"])
        return self._fresh([f"{a}-{b}" for a in _GENERIC_A for b in _GENERIC_B])

    def external(self) -> str:
        """A third-party API name as it appears in client metrics (``server_address``)."""
        names = VOCABULARIES[self.vocab]["external"] if self.vocab in VOCABULARIES else [
            "stripe-api", "twilio-api", "sendgrid-api", "auth0-api", "datadog-intake", "s3-api",
            "salesforce-api", "slack-api"]
        free = [n for n in names if n not in self.used]
        name = self.rng.choice(free) if free else f"partner-api-{self.rng.randint(2, 99)}"
        self.used.add(name)
        return name

    def datastore(self, engine: str, owner: str) -> str:
        """A database or cache name derived from its main owner, in one of several habits."""
        base = owner.removesuffix(self.suffix) if self.suffix else owner
        short = {"postgres": ["pg", "postgres", "pgsql"], "mysql": ["mysql", "db", "mariadb"],
                 "redis": ["redis", "cache"]}[engine]
        prefix = self.rng.choice(short)
        style = self.rng.random()
        if style < 0.5:
            name = f"{prefix}-{base}"
        elif style < 0.85:
            name = f"{base}-{prefix}"
        else:
            name = f"{base}-{prefix}-{self.rng.randint(1, 3)}"
        while name in self.used:
            name = f"{name}-{self.rng.randint(2, 9)}"
        self.used.add(name)
        return name


_HASH_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def pod_template_hash(rng: random.Random) -> str:
    """A ReplicaSet pod-template hash like ``7d9f8c6b5``."""
    return "".join(rng.choice(_HASH_CHARS) for _ in range(rng.choice([9, 10])))


def pod_suffix(rng: random.Random) -> str:
    """The random five-character suffix of a pod name."""
    return "".join(rng.choice(_HASH_CHARS) for _ in range(5))


def private_ip(rng: random.Random) -> str:
    """A pod or host address in a private range (text only, never contacted)."""
    return f"10.{rng.randint(0, 40)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"


def node_name(rng: random.Random, style: str) -> str:
    """A worker node or VM host name in one of a few cloud habits."""
    ip = private_ip(rng)
    if style == "aws":
        return f"ip-{ip.replace('.', '-')}.ec2.internal"
    if style == "gke":
        return f"gke-prod-pool-{rng.randint(1, 3)}-{pod_suffix(rng)}{rng.randint(0, 9)}"
    if style == "aks":
        return f"aks-nodepool{rng.randint(1, 3)}-{rng.randint(10000000, 99999999)}-vmss{rng.randint(0, 9):06d}"
    return f"node-{rng.randint(1, 60):02d}.dc{rng.randint(1, 3)}.internal"


def version_scheme(rng: random.Random) -> str:
    """How a fleet numbers its releases: semver, v-semver, date builds or git shas."""
    return rng.choice(["semver", "vsemver", "date", "sha"])


def first_version(rng: random.Random, scheme: str, date: str) -> str:
    """An initial release number in ``scheme``."""
    if scheme == "semver":
        return f"{rng.randint(1, 6)}.{rng.randint(0, 40)}.{rng.randint(0, 12)}"
    if scheme == "vsemver":
        return f"v{rng.randint(1, 6)}.{rng.randint(0, 40)}.{rng.randint(0, 12)}"
    if scheme == "date":
        return f"{date}-{rng.randint(1, 9)}"
    return "".join(rng.choice("0123456789abcdef") for _ in range(7))


def next_version(rng: random.Random, scheme: str, current: str, date: str) -> str:
    """The release after ``current``."""
    if scheme in ("semver", "vsemver"):
        prefix = "v" if current.startswith("v") else ""
        major, minor, patch = (int(x) for x in current.lstrip("v").split("."))
        if rng.random() < 0.6:
            patch += rng.randint(1, 3)
        else:
            minor, patch = minor + 1, 0
        return f"{prefix}{major}.{minor}.{patch}"
    if scheme == "date":
        build = int(current.rsplit("-", 1)[1]) if current.startswith(date) else 0
        return f"{date}-{build + rng.randint(1, 3)}"
    return "".join(rng.choice("0123456789abcdef") for _ in range(7))

"""What is sent to a model is redacted first: credentials in every common form (passwords,
tokens, API keys, bearer and basic headers, private keys, keys in URLs), email addresses and,
as configured, IP addresses; then cut to a size budget. Nothing here is reversible: the
model sees ``[REDACTED:kind]`` where the secret was.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.S,
)
# Tokens whose shape alone says what they are (providers document these prefixes).
_TOKEN_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")),
    ("aws_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("grafana_token", re.compile(r"\b(?:glsa|glc)_[A-Za-z0-9_=+/-]{20,}")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+")),
    ("stripe_key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("sendgrid_key", re.compile(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("pypi_token", re.compile(r"\bpypi-[A-Za-z0-9_-]{50,}")),
    ("hf_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("twilio_key", re.compile(r"\bSK[0-9a-fA-F]{32}\b")),
]
_AUTH_HEADER = re.compile(r"(?i)\b(authorization|proxy-authorization)(\s*[:=]\s*)(\"?)(bearer|basic|token|digest|apikey)?\s*[^\s\"',;]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_URL_CREDS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s:/@]+):([^\s@/]+)@")
# key=value and "key": "value" where the key names a credential
_SECRET_KEY = (r"(?:[A-Za-z0-9_.-]*?(?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
               r"|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key|session[_-]?id|cookie|accountkey|sharedaccesskey))")
_KV = re.compile(
    r"(?i)(\"?\b" + _SECRET_KEY + r"\"?)(\s*(?:=|:|=>)\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}\]]+)"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6 = re.compile(r"(?i)(?<![0-9a-f:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![0-9a-f:])|(?<![0-9a-f:])(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4}(?![0-9a-f:])")
_ENV_SECRET_WORDS = ("TOKEN", "KEY", "PASSWORD", "SECRET", "CREDENTIAL", "AUTH")


def environment_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they carry a credential."""
    env = os.environ if environ is None else environ
    out = []
    for k, v in env.items():
        if any(w in k.upper() for w in _ENV_SECRET_WORDS) and v and len(v) >= 6:
            out.append(v)
    return out


@dataclass
class Redactor:
    """Removes secrets from text bound for a model."""

    redact_ips: bool = True
    known: list[str] = field(default_factory=list)
    """Exact values that must never leave (resolved keys and tokens of the config, secret env vars)."""
    hits: int = 0
    """How many secrets were removed so far."""

    def __post_init__(self) -> None:
        # longest first, so a value containing another is removed whole
        self.known = sorted({k for k in self.known if k and len(k) >= 6}, key=len, reverse=True)

    def _sub(self, pattern: re.Pattern[str], repl, text: str) -> str:
        out, n = pattern.subn(repl, text)
        self.hits += n
        return out

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED:kind]``."""
        if not text:
            return text
        for value in self.known:
            if value in text:
                self.hits += text.count(value)
                text = text.replace(value, "[REDACTED:secret]")
        text = self._sub(_PRIVATE_KEY, "[REDACTED:private_key]", text)
        text = self._sub(_URL_CREDS, lambda m: f"{m.group(1)}[REDACTED:user]:[REDACTED:password]@", text)
        text = self._sub(_AUTH_HEADER, lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{(m.group(4) + ' ') if m.group(4) else ''}[REDACTED:credential]", text)
        text = self._sub(_BEARER, lambda m: f"{m.group(1)}{m.group(2)}[REDACTED:credential]", text)
        for kind, pattern in _TOKEN_SHAPES:
            text = self._sub(pattern, f"[REDACTED:{kind}]", text)
        text = self._sub(_KV, _kv_repl, text)
        text = self._sub(_EMAIL, "[REDACTED:email]", text)
        if self.redact_ips:
            text = self._sub(_IPV4, "[REDACTED:ip]", text)
            text = self._sub(_IPV6, "[REDACTED:ip]", text)
        return text


def _kv_repl(m: re.Match[str]) -> str:
    value = m.group(3)
    if value.startswith("[REDACTED"):
        return m.group(0)
    q = value[0] if value[:1] in ("'", '"') else ""
    return f"{m.group(1)}{m.group(2)}{q}[REDACTED:secret]{q}"


def cut(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``, saying how much was left out."""
    if len(text) <= max_chars:
        return text
    keep = max(0, max_chars - 40)
    return text[:keep] + f"\n[... {len(text) - keep} characters cut]"

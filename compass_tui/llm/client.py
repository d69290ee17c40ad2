"""Model calls through litellm: a model per role, every call redacted, budgeted before it is
made, timed out, priced from litellm's own table and charged to its role.

litellm is imported only when the first call is made (it takes seconds to import), so the
no-model path starts as fast as ever. A failing model raises ModelError with one line that
names the role and the model; the caller turns it into a ``degraded`` entry and goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compass_tui.llm.redact import Redactor, cut, environment_secrets
from compass_tui.models import AgentCost, ModelCall

LOCAL_PROVIDERS = ("ollama", "ollama_chat", "lm_studio", "llamafile", "vllm", "hosted_vllm", "local")
"""Providers that run on the user's own machine: their calls cost 0 USD."""

_litellm: Any = None
_import_lock = threading.Lock()


def load_litellm() -> Any:
    """Import litellm once, offline (its bundled price table), quiet."""
    global _litellm
    with _import_lock:
        return _load()


def _load() -> Any:
    global _litellm
    if _litellm is None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch of the price table
        os.environ.setdefault("LITELLM_LOG", "CRITICAL")
        import litellm  # noqa: PLC0415

        litellm.suppress_debug_info = True
        litellm.drop_params = True  # a server that does not know a parameter still answers
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _litellm = litellm
    return _litellm


class ModelError(Exception):
    """A model call that did not give a usable answer; ``str()`` is one line."""

    def __init__(self, role: str, model: str, reason: str, kind: str = "error"):
        self.role, self.model, self.reason, self.kind = role, model, reason, kind
        super().__init__(f"{role} model {model}: {reason}")


class BudgetStop(ModelError):
    """A budget refused the call before it was made."""

    def __init__(self, role: str, model: str, reason: str):
        super().__init__(role, model, reason, kind="budget")


@dataclass
class Reply:
    """What one call returned."""

    content: str
    tool_calls: list[dict[str, Any]]
    """Each ``{"id", "name", "arguments"}`` with the arguments parsed from JSON."""
    call: ModelCall


@dataclass
class Caps:
    """What one investigation (or one chat) may spend on models."""

    max_calls: int = 20
    max_usd: float = 10.0
    max_tokens: int | None = None


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


class Models:
    """The configured models (``[models]``); cheap to build, nothing is imported or called."""

    def __init__(self, config: Any, environ: dict[str, str] | None = None, extra_secrets: list[str] | None = None):
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.extra_secrets = list(extra_secrets or [])

    def model_for(self, role: str) -> str | None:
        return self.config.for_role(role)

    def configured(self) -> bool:
        return self.config.configured()

    def roles(self) -> dict[str, str]:
        """role -> model, for the roles that have one."""
        from compass_tui.config import MODEL_ROLES  # noqa: PLC0415

        return {r: m for r in MODEL_ROLES if (m := self.model_for(r))}

    def endpoint(self, model: str) -> tuple[str | None, str | None, float]:
        """(api_base, api_key, timeout) for a model; the key is read from the environment."""
        ep = self.config.endpoints.get(model)
        timeout = float(self.config.timeout_s)
        if ep is None:
            return None, None, timeout
        return ep.api_base, ep.resolved_key(model, self.environ), float(ep.timeout_s or timeout)

    def redactor(self) -> Redactor:
        """A redactor that knows every secret this process holds (config keys, secret env vars)."""
        known = environment_secrets(self.environ) + self.extra_secrets
        for name in self.config.endpoints:
            try:
                key = self.endpoint(name)[1]
            except Exception:
                key = None
            if key:
                known.append(key)
        return Redactor(redact_ips=bool(self.config.redact_ips), known=known)

    def session(self, caps: Caps, on_cost: Callable[[str, AgentCost, float], None] | None = None) -> ModelSession:
        """A spending account for one investigation or one chat."""
        return ModelSession(self, caps, on_cost)


def models_from_config(config: Any) -> Models | None:
    """The configured models, or None when no role has one (rules only)."""
    mc = getattr(config, "models", None)
    if mc is None or not hasattr(mc, "for_role") or not mc.configured():
        return None
    secrets: list[str] = []
    for name, server in (getattr(config, "mcp_servers", None) or {}).items():
        try:
            secrets += server.secret_values(name)
        except Exception:
            pass
    return Models(mc, extra_secrets=secrets)


@dataclass
class ModelSession:
    """Every call of one investigation: budget checked before it, charged after it."""

    models: Models
    caps: Caps
    on_cost: Callable[[str, AgentCost, float], None] | None = None
    calls: list[ModelCall] = field(default_factory=list)
    by_role: dict[str, AgentCost] = field(default_factory=dict)
    budget_hit: bool = False
    budget_note: str | None = None
    redactor: Redactor | None = None

    def __post_init__(self) -> None:
        if self.redactor is None:
            self.redactor = self.models.redactor()

    @property
    def usd(self) -> float:
        return sum(c.usd for c in self.calls)

    @property
    def tokens(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.calls)

    def _check(self, role: str, model: str, est_usd: float = 0.0, est_tokens: int = 0) -> None:
        """Refuse a call the budget does not allow, counting what its prompt alone will cost."""
        note = None
        if len(self.calls) >= self.caps.max_calls:
            note = f"model call budget reached ({self.caps.max_calls} calls)"
        elif self.usd >= self.caps.max_usd or (est_usd and self.usd + est_usd > self.caps.max_usd):
            note = (f"model spend budget reached (${self.usd:.6f} spent, the next prompt alone costs ${est_usd:.6f}, "
                    f"budget ${self.caps.max_usd:.6f})")
        elif self.caps.max_tokens is not None and self.tokens + est_tokens >= self.caps.max_tokens:
            note = f"model token budget reached ({self.tokens} spent, the next prompt is {est_tokens}, budget {self.caps.max_tokens} tokens)"
        if note:
            self.budget_hit = True
            self.budget_note = note
            raise BudgetStop(role, model, note)

    def clean(self, text: str, max_chars: int | None = None) -> str:
        """Redacted and cut to the size budget: the only form of text that reaches a model."""
        assert self.redactor is not None
        return cut(self.redactor.redact(text), max_chars or int(self.models.config.max_prompt_chars))

    async def complete(
        self,
        role: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        stream: bool = False,
        on_delta: Callable[[str], None] | None = None,
        json_mode: bool = False,
    ) -> Reply:
        """One call for ``role``. Raises BudgetStop before a call the budget refuses and
        ModelError when the model fails; either way nothing is half-charged."""
        model = self.models.model_for(role)
        if not model:
            raise ModelError(role, "-", "no model configured for this role", kind="config")
        self._check(role, model)
        try:
            api_base, api_key, timeout = self.models.endpoint(model)
        except Exception as e:  # a missing key variable: say which, never a value
            raise ModelError(role, model, str(e), kind="config") from None
        safe = [self._clean_message(m) for m in messages]
        litellm = await asyncio.to_thread(load_litellm)
        est_tokens = _count(litellm, model, messages=safe)
        self._check(role, model, price(litellm, model, est_tokens, 0)[0], est_tokens)
        # no retries: a slow or failing model is dropped as degraded at once, within its timeout
        kwargs: dict[str, Any] = dict(model=model, messages=safe, timeout=timeout, num_retries=0, max_retries=0)
        if api_base:
            kwargs["api_base"] = api_base
        if api_key:
            kwargs["api_key"] = api_key
        elif api_base and provider_of(model) in ("openai", "text-completion-openai") and not self.models.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "none"  # a local OpenAI-compatible server needs no key; the SDK wants one
        if tools:
            kwargs["tools"] = tools
        if json_mode and not tools:
            kwargs["response_format"] = {"type": "json_object"}
        if self.caps.max_tokens is not None:
            kwargs["max_tokens"] = max(16, min(4096, self.caps.max_tokens - self.tokens))
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}  # tokens as the provider counts them
        started = time.perf_counter()
        record = ModelCall(role=role, model=model)
        try:
            content, tool_calls, usage = await asyncio.wait_for(
                self._call(litellm, kwargs, stream, on_delta), timeout=timeout + 2.0
            )
        except (asyncio.TimeoutError, TimeoutError):
            raise self._failed(record, started, f"no answer within {timeout:g} s (timed out)", "timeout") from None
        except asyncio.CancelledError:
            self._charge(record, started, status="error", error="cancelled")
            raise
        except ModelError as e:
            raise self._failed(record, started, e.reason, e.kind) from None
        except Exception as e:
            reason, kind = describe_failure(e, timeout)
            raise self._failed(record, started, reason, kind) from None
        prompt_tokens, completion_tokens = usage
        if prompt_tokens <= 0 and completion_tokens <= 0:
            # the provider reported no usage: count locally, and say so
            record.tokens_estimated = True
            prompt_tokens = _count(litellm, model, messages=safe)
            completion_tokens = _count(litellm, model, text=content + json.dumps(tool_calls) if tool_calls else content)
        record.prompt_tokens, record.completion_tokens = int(prompt_tokens), int(completion_tokens)
        record.usd, record.priced = price(litellm, model, record.prompt_tokens, record.completion_tokens)
        self._charge(record, started)
        return Reply(content=content, tool_calls=tool_calls, call=record)

    def _clean_message(self, m: dict[str, Any]) -> dict[str, Any]:
        out = dict(m)
        if isinstance(out.get("content"), str):
            out["content"] = self.clean(out["content"])
        if out.get("tool_calls"):
            calls = []
            for tc in out["tool_calls"]:
                tc = json.loads(json.dumps(tc))
                fn = tc.get("function") or {}
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = self.clean(fn["arguments"])
                calls.append(tc)
            out["tool_calls"] = calls
        return out

    async def _call(self, litellm: Any, kwargs: dict[str, Any], stream: bool, on_delta):
        if not stream:
            resp = await litellm.acompletion(**kwargs)
            choice = resp.choices[0]
            msg = choice.message
            content = msg.content or ""
            tool_calls = [_tool_call(tc) for tc in (getattr(msg, "tool_calls", None) or [])]
            return content, tool_calls, _usage(getattr(resp, "usage", None), getattr(resp, "_hidden_params", {}))
        resp = await litellm.acompletion(**kwargs)
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = (0, 0)
        async for chunk in resp:
            u = getattr(chunk, "usage", None)
            if u is not None and (getattr(u, "prompt_tokens", 0) or getattr(u, "completion_tokens", 0)):
                usage = (int(u.prompt_tokens or 0), int(u.completion_tokens or 0))
            for choice in getattr(chunk, "choices", None) or []:
                delta = getattr(choice, "delta", None)
                if delta is None:
                    continue
                text = getattr(delta, "content", None)
                if text:
                    parts.append(text)
                    if on_delta is not None:
                        on_delta(text)
                for tc in getattr(delta, "tool_calls", None) or []:
                    idx = getattr(tc, "index", None) or 0
                    slot = calls.setdefault(idx, {"id": None, "name": "", "arguments": ""})
                    if getattr(tc, "id", None):
                        slot["id"] = tc.id
                    fn = getattr(tc, "function", None)
                    if fn is not None:
                        if getattr(fn, "name", None):
                            slot["name"] = fn.name
                        if getattr(fn, "arguments", None):
                            slot["arguments"] += fn.arguments
        tool_calls = []
        for i in sorted(calls):
            c = calls[i]
            tool_calls.append({"id": c["id"] or f"call_{i}", "name": c["name"], "arguments": _parse_args(c["arguments"])})
        return "".join(parts), tool_calls, usage

    def _failed(self, record: ModelCall, started: float, reason: str, kind: str) -> ModelError:
        # errors are shown, not sent: strip secrets, keep addresses readable
        reason = Redactor(redact_ips=False, known=list(self.redactor.known if self.redactor else [])).redact(reason)
        self._charge(record, started, status="error", error=reason)
        return ModelError(record.role, record.model, reason, kind)

    def _charge(self, record: ModelCall, started: float, status: str = "ok", error: str | None = None) -> None:
        record.latency_s = round(time.perf_counter() - started, 4)
        record.status = status  # type: ignore[assignment]
        record.error = error
        self.calls.append(record)
        cost = self.by_role.setdefault(record.role, AgentCost())
        cost.calls += 1
        cost.prompt_tokens += record.prompt_tokens
        cost.completion_tokens += record.completion_tokens
        cost.usd = round(cost.usd + record.usd, 10)
        cost.latency_s = round(cost.latency_s + record.latency_s, 4)
        cost.model = record.model
        if self.on_cost is not None:
            self.on_cost(record.role, cost, self.usd)


def _tool_call(tc: Any) -> dict[str, Any]:
    fn = getattr(tc, "function", None)
    return {"id": getattr(tc, "id", None) or "call_0", "name": getattr(fn, "name", "") or "",
            "arguments": _parse_args(getattr(fn, "arguments", "") or "")}


def _parse_args(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw) if raw else {}
    except (json.JSONDecodeError, TypeError):
        return {"_unparsed": str(raw)[:500]}


def _usage(u: Any, hidden: dict[str, Any] | None = None) -> tuple[int, int]:
    if u is None:
        return 0, 0
    p = int(getattr(u, "prompt_tokens", 0) or 0)
    c = int(getattr(u, "completion_tokens", 0) or 0)
    return p, c


def _count(litellm: Any, model: str, messages: list[dict[str, Any]] | None = None, text: str | None = None) -> int:
    try:
        if messages is not None:
            return int(litellm.token_counter(model=model, messages=messages))
        return int(litellm.token_counter(model=model, text=text or ""))
    except Exception:
        raw = json.dumps(messages) if messages is not None else (text or "")
        return max(1, len(raw) // 4)


def price(litellm: Any, model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
    """(USD, priced) from litellm's price table; local models cost 0; an unknown model is 0
    and not priced."""
    if provider_of(model) in LOCAL_PROVIDERS:
        return 0.0, True
    try:
        p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except Exception:
        return 0.0, False
    return round(float(p) + float(c), 10), True


def describe_failure(e: BaseException, timeout: float) -> tuple[str, str]:
    """One line (and a kind) for a failed call, from litellm's exception types."""
    name = type(e).__name__
    status = getattr(e, "status_code", None)
    text = str(e).strip().splitlines()[0] if str(e).strip() else name
    text = text.replace("litellm.", "")
    if len(text) > 200:
        text = text[:200] + "…"
    low = text.lower()
    if "Timeout" in name or "timed out" in low:
        return f"no answer within {timeout:g} s (timed out)", "timeout"
    if name == "RateLimitError" or status == 429:
        return "rate-limited by the provider (HTTP 429)", "rate_limit"
    if name in ("AuthenticationError", "PermissionDeniedError") or status in (401, 403):
        return f"the provider refused the credentials (HTTP {status or 401})", "auth"
    if any(w in low for w in ("expecting value", "jsondecodeerror", "invalid json", "unterminated string", "extra data")):
        return "answered something that is not valid JSON", "invalid"
    if any(w in low for w in ("connection error", "cannot connect", "connect call failed", "connection refused",
                              "name or service not known", "nodename nor servname")):
        return "unreachable (could not connect to its endpoint)", "unreachable"
    if name == "NotFoundError" or status == 404:
        return "the model or endpoint does not exist (HTTP 404)", "not_found"
    if status is not None and int(status) >= 500:
        return f"server error (HTTP {status})", "server"
    return f"{name}: {text}", "error"

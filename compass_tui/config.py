"""COMPASS settings: one pydantic-settings model read from a TOML file plus ``COMPASS_*``
environment variables; flags the user typed win over both.

MCP servers are written the way other MCP clients write them (``[mcp_servers.<name>]`` with
``command``/``args``/``env`` for stdio, or ``url``/``headers`` for streamable HTTP). Secrets
are never stored here: a value may name an environment variable (``"${GRAFANA_TOKEN}"``), or
a ``*_env``/``*_env_var`` key names the variable; both are resolved only when a server is
started, and error messages name the variable, never its value.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from compass_tui.engine.deps import Budget

ENV_PREFIX = "COMPASS_"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_WORDS = ("TOKEN", "KEY", "PASSWORD", "SECRET", "CREDENTIAL", "AUTH")


class ConfigError(ValueError):
    """The config cannot be used; the message is one line naming the file and key."""


class SecretMissing(ValueError):
    """A server refers to an environment variable that is not set."""


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/compass/config.toml`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "compass" / "config.toml"


def expand_refs(value: str, *, where: str, environ: dict[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` in ``value`` from the environment; a missing variable raises
    SecretMissing naming ``where`` and the variable (never a value)."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise SecretMissing(f"{where} refers to ${{{name}}}, which is not set in the environment: "
                                f"export {name}=… and run `compass doctor`")
        return env[name]

    return _REF.sub(sub, value)


def looks_secret(key: str) -> bool:
    """Whether an env or header name usually carries a credential."""
    k = key.upper()
    return any(w in k for w in _SECRET_WORDS)


class McpServerConfig(BaseModel):
    """One MCP server, as ``[mcp_servers.<name>]`` in the config."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    command: str | None = None
    """Executable of a stdio server (e.g. ``mcp-grafana``)."""
    args: list[str] = Field(default_factory=list)
    """Arguments of the stdio server (e.g. ``["-t", "stdio"]``)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of the stdio server; values may be ``${VAR}`` references to your own environment."""
    env_vars: list[str] = Field(default_factory=list)
    """Names of variables of your environment passed through to the stdio server unchanged."""
    cwd: str | None = None
    """Working directory of the stdio server."""
    url: str | None = None
    """Endpoint of a streamable-HTTP server (e.g. ``http://127.0.0.1:8000/mcp``)."""
    headers: dict[str, str] = Field(default_factory=dict, alias="http_headers")
    """HTTP headers for a URL server; values may be ``${VAR}`` references."""
    env_http_headers: dict[str, str] = Field(default_factory=dict)
    """HTTP header -> name of the environment variable holding its value."""
    bearer_token_env_var: str | None = Field(default=None, alias="bearer_token_env")
    """Name of the environment variable holding a bearer token for a URL server."""
    enabled: bool = True
    """Set false to keep a server in the file without starting it."""
    startup_timeout_s: float = Field(default=20.0, gt=0, alias="startup_timeout_sec")
    """Seconds a server may take to start and list its tools."""
    tool_timeout_s: float = Field(default=30.0, gt=0, alias="tool_timeout_sec")
    """Seconds one tool call may take before the server is marked degraded."""
    grafana_url: str | None = None
    """Grafana base URL this server talks to, for deep links (Explore) on evidence."""
    prometheus_datasource_uid: str | None = None
    """Grafana's server: the Prometheus/Mimir datasource to query (default: discovered)."""
    loki_datasource_uid: str | None = None
    """Grafana's server: the Loki datasource to query (default: discovered)."""
    tempo_datasource_uid: str | None = None
    """Grafana's server: the Tempo datasource to query (default: discovered)."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if not self.command and not self.url:
            raise ValueError("needs either command (stdio) or url (streamable HTTP)")
        if self.command and self.url:
            raise ValueError("has both command and url; keep one")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command else "http"

    def resolved_env(self, name: str, environ: dict[str, str] | None = None) -> dict[str, str]:
        """The stdio server's environment with references resolved (raises SecretMissing)."""
        env = os.environ if environ is None else environ
        out: dict[str, str] = {}
        for var in self.env_vars:
            if var in env:
                out[var] = env[var]
        for k, v in self.env.items():
            out[k] = expand_refs(v, where=f"mcp_servers.{name}.env.{k}", environ=environ)
        return out

    def resolved_headers(self, name: str, environ: dict[str, str] | None = None) -> dict[str, str]:
        """The URL server's headers with references resolved (raises SecretMissing)."""
        env = os.environ if environ is None else environ
        out = {k: expand_refs(v, where=f"mcp_servers.{name}.headers.{k}", environ=environ) for k, v in self.headers.items()}
        for header, var in self.env_http_headers.items():
            if var not in env:
                raise SecretMissing(f"mcp_servers.{name}.env_http_headers.{header} names {var}, which is not set")
            out[header] = env[var]
        if self.bearer_token_env_var:
            var = self.bearer_token_env_var
            if var not in env:
                raise SecretMissing(f"mcp_servers.{name}.bearer_token_env_var names {var}, which is not set")
            out["Authorization"] = f"Bearer {env[var]}"
        return out

    def resolved_url(self, name: str, environ: dict[str, str] | None = None) -> str:
        """The URL with ``${VAR}`` references resolved (raises SecretMissing)."""
        return expand_refs(self.url or "", where=f"mcp_servers.{name}.url", environ=environ)

    def secret_values(self, name: str) -> list[str]:
        """Values that must never appear in output (resolved secrets), for redaction."""
        vals: list[str] = []
        try:
            for k, v in self.resolved_env(name).items():
                if looks_secret(k) and v:
                    vals.append(v)
        except SecretMissing:
            pass
        try:
            for k, v in self.resolved_headers(name).items():
                if v:
                    vals.append(v.split(" ", 1)[-1] if k.lower() == "authorization" else v)
        except SecretMissing:
            pass
        return vals


class BudgetConfig(BaseModel):
    """Caps of one investigation, checked before each call."""

    model_config = ConfigDict(extra="forbid")

    max_queries: int = Field(default=Budget.max_queries, ge=1)
    """Backend queries one investigation may run."""
    max_llm_calls: int = Field(default=Budget.max_llm_calls, ge=0)
    """Model calls one investigation may make."""
    max_usd: float | None = Field(default=None, ge=0)
    """Model spend one investigation may reach, in USD (unset: by the alert's severity)."""
    max_usd_routine: float = Field(default=10.0, ge=0)
    """Spend cap when ``max_usd`` is unset and the alert is not critical."""
    max_usd_critical: float = Field(default=20.0, ge=0)
    """Spend cap when ``max_usd`` is unset and the alert's severity is critical (or page)."""
    max_tokens: int | None = Field(default=None, ge=0)
    """Prompt plus completion tokens one investigation may spend on models (unset: no cap)."""
    deadline_s: float = Field(default=Budget.deadline_s, gt=0)
    """Wall-clock seconds after which the engine ranks what it has."""

    def to_budget(self) -> Budget:
        return Budget(
            max_queries=self.max_queries,
            max_llm_calls=self.max_llm_calls,
            max_usd=self.max_usd,
            max_usd_routine=self.max_usd_routine,
            max_usd_critical=self.max_usd_critical,
            max_tokens=self.max_tokens,
            deadline_s=self.deadline_s,
        )


class WatchConfig(BaseModel):
    """``compass watch`` (``[watch]``): where it listens, how much it runs at once, whom it tells."""

    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:9095"
    """HOST:PORT the webhook receiver listens on (``--listen`` wins)."""
    concurrency: int = Field(default=2, ge=1)
    """Investigations run at once; more alert groups wait in the queue."""
    queue: int = Field(default=100, ge=1)
    """Alert groups that may wait; beyond, the webhook answers 503 and Alertmanager retries."""
    notify_url: str | None = None
    """A webhook (Slack-compatible) told of each finished investigation; may be ``${VAR}``."""


MODEL_ROLES = ("hypotheses", "evidence", "chat", "postmortem")
"""The kinds of work a model can be given; ``[models] default`` serves every role not named."""


class ModelEndpoint(BaseModel):
    """Where and how to reach one litellm model name (``[models.endpoints."<name>"]``)."""

    model_config = ConfigDict(extra="forbid")

    api_base: str | None = None
    """Base URL of the provider or server (e.g. ``http://127.0.0.1:11434`` for Ollama)."""
    api_key: str | None = None
    """Only an environment reference, ``"${OPENAI_API_KEY}"``: keys are never written here."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Seconds one call to this model may take (default: ``[models] timeout_s``)."""

    @model_validator(mode="after")
    def _key_is_a_reference(self) -> ModelEndpoint:
        if self.api_key is not None and not _REF.fullmatch(self.api_key.strip()):
            raise ValueError('api_key must be an environment reference like "${OPENAI_API_KEY}", never the key itself')
        return self

    def resolved_key(self, name: str, environ: dict[str, str] | None = None) -> str | None:
        """The key from the environment (raises SecretMissing naming the variable)."""
        if self.api_key is None:
            return None
        return expand_refs(self.api_key.strip(), where=f'models.endpoints."{name}".api_key', environ=environ)


class ModelsConfig(BaseModel):
    """A model per role, litellm names (``[models]``). Nothing set: COMPASS runs rules only."""

    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    """Used by every role not named (e.g. ``"ollama_chat/llama3.1"``)."""
    hypotheses: str | None = None
    """Proposes hypotheses beyond the catalog, each with the queries that would bear it out."""
    evidence: str | None = None
    """Reads evidence (reserved; uses ``default`` when unset)."""
    chat: str | None = None
    """Answers free-text questions in the chat pane, with read-only tools."""
    postmortem: str | None = None
    """Writes the incident narrative (reserved; uses ``default`` when unset)."""
    endpoints: dict[str, ModelEndpoint] = Field(default_factory=dict)
    """Per litellm model name: ``api_base``, ``api_key`` (an environment reference), ``timeout_s``."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Seconds one model call may take before that role's work is dropped as degraded."""
    max_prompt_chars: int = Field(default=24000, ge=1000)
    """What is sent to a model is cut to this size after redaction."""
    redact_ips: bool = True
    """Replace IP addresses in what is sent to a model."""

    def for_role(self, role: str) -> str | None:
        """The litellm model name serving ``role``, or None when no model is configured for it."""
        return getattr(self, role, None) or self.default

    def configured(self) -> bool:
        return any(self.for_role(r) for r in MODEL_ROLES)


_file_data: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("compass_config_file_data", default={})


class _TomlData(PydanticBaseSettingsSource):
    """The already-parsed config file, lowest priority (env and flags win)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get())


class Config(BaseSettings):
    """Everything COMPASS is configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    """MCP servers to investigate through, by name (``[mcp_servers.<name>]``)."""
    alertmanager_url: str | None = None
    """Alertmanager base URL, for listing firing alerts (e.g. ``http://alertmanager:9093``)."""
    grafana_url: str | None = None
    """Grafana base URL for deep links on evidence, when no server names its own."""
    store_path: str | None = None
    """Memory file (default: ``$XDG_DATA_HOME/compass/compass.duckdb``)."""
    theme: Literal["dark", "light", "high-contrast"] = "dark"
    """Colour theme of the app."""
    baseline_s: float = Field(default=3600.0, gt=0)
    """Seconds before the alert that the investigation window starts (the baseline)."""
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    """Caps of one investigation (``[budget]``)."""
    watch: WatchConfig = Field(default_factory=WatchConfig)
    """``compass watch`` (``[watch]``)."""
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    """A model per role, litellm names (``[models]``); none runs rules only."""
    runbook_dirs: list[str] = Field(default_factory=list)
    """More folders of runbooks, read after the shipped ones and ``$XDG_CONFIG_HOME/compass/runbooks``."""
    shipped_runbooks: bool = True
    """Run the runbooks shipped with COMPASS (``runbooks/``) as well as your own."""
    baseline_minutes: float | None = Field(default=None, gt=0)
    """Minutes an investigation would take you without COMPASS, for ``compass stats`` when you
    gave no estimate at confirmation."""
    mcp_max_concurrency: int = Field(default=8, ge=1)
    """Tool calls in flight at once across all MCP servers."""
    mcp_retries: int = Field(default=1, ge=0)
    """Retries of a tool call that failed in transport (not of a rejected query or a timeout)."""
    mcp_max_result_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Tool results larger than this are refused; series and lines beyond the caps are cut."""

    source_path: str | None = Field(default=None, exclude=True)
    """The file this config was read from (set by load_config)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags (init) > COMPASS_* environment > the TOML file
        return (init_settings, env_settings, _TomlData(settings_cls))

    def enabled_servers(self) -> dict[str, McpServerConfig]:
        return {n: s for n, s in self.mcp_servers.items() if s.enabled}

    def deep_link_base(self) -> str | None:
        """The Grafana URL for Explore links: the config's, else the first server's."""
        if self.grafana_url:
            return self.grafana_url
        for s in self.enabled_servers().values():
            if s.grafana_url:
                return s.grafana_url
        return None


def _expected(err: dict[str, Any]) -> str:
    t = err.get("type", "")
    ctx = err.get("ctx") or {}
    if t == "extra_forbidden":
        return "unknown key"
    if t == "literal_error":
        return f"expected one of {ctx.get('expected', '')}"
    return str(err.get("msg", "invalid")).replace("Value error, ", "")


def _format_validation(e: ValidationError, where: str) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    got = err.get("input")
    got_s = ""
    if isinstance(got, (str, int, float, bool)) and err.get("type") != "extra_forbidden":
        # never echo values of secret-looking keys
        if not looks_secret(loc):
            got_s = f" (got {got!r})"
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{where}: {loc or 'config'}: {_expected(err)}{got_s}{more}"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, with a one-line ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            msg = msg[: m.start()].strip()
            raise ConfigError(f"{path}:{m.group(1)}: invalid TOML: {msg}") from None
        raise ConfigError(f"{path}: invalid TOML: {msg}") from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    require_file: bool = False,
) -> Config:
    """Read the config: the TOML file (``path``, else the default location, absent is fine
    unless ``require_file``), then ``COMPASS_*`` variables, then ``overrides`` (flags).

    Raises ConfigError with one line naming the file, the key and what is expected.
    """
    explicit = path is not None
    p = Path(path) if path is not None else default_config_path()
    data: dict[str, Any] = {}
    if p.exists():
        data = read_toml(p)
    elif explicit or require_file:
        raise ConfigError(f"{p}: no such config file (run `compass init` to write one)")
    token = _file_data.set(data)
    try:
        cfg = Config(**(overrides or {}))
    except ValidationError as e:
        where = str(p) if p.exists() else "environment"
        raise ConfigError(_format_validation(e, where)) from None
    finally:
        _file_data.reset(token)
    cfg.source_path = str(p) if p.exists() else None
    return cfg


# ---------------------------------------------------------------- init


STARTER = """\
# COMPASS configuration. Secrets are never written here: a value like "${{GRAFANA_TOKEN}}"
# is read from your environment when a server starts.
# Docs: docs/live-sources.md

# Grafana base URL for deep links on evidence (Explore).
# grafana_url = "https://grafana.example.com"

# Alertmanager, to list firing alerts in the app.
# alertmanager_url = "http://alertmanager:9093"

# Seconds before the alert that the investigation window starts.
baseline_s = 3600

# dark, light or high-contrast
theme = "dark"

[watch]
# `compass watch`: receives Alertmanager webhooks at http://LISTEN/alertmanager
listen = "127.0.0.1:9095"
concurrency = 2        # investigations at once; the others queue
# notify_url = "${{SLACK_WEBHOOK_URL}}"   # told of each finished investigation (Slack-compatible JSON)

[budget]
max_queries = 2000     # backend queries per investigation
max_llm_calls = 20     # model calls per investigation
# max_usd = 5.0        # model spend per investigation (default: 10 USD, 20 when the alert is critical)
# max_tokens = 200000  # model tokens per investigation
deadline_s = 60        # stop checking after this long and rank

[models]
# A model per role (litellm names). Without any, COMPASS runs rules only.
# Roles: hypotheses, evidence, chat, postmortem; `default` serves every role not named.
# default = "ollama_chat/llama3.1"
# hypotheses = "openai/gpt-4o-mini"
# timeout_s = 30       # per call
# [models.endpoints."openai/gpt-4o-mini"]
# api_base = "https://api.openai.com/v1"
# api_key = "${{OPENAI_API_KEY}}"   # only as an environment reference

# --- Grafana's own MCP server (mcp-grafana): metrics, logs, traces, annotations.
# Install: pip install mcp-grafana   (or the binary from Grafana's releases)
# Export GRAFANA_TOKEN (a service account token with Viewer role) before running compass.
# --disable-write keeps Grafana's write tools unregistered (COMPASS never calls them anyway);
# --max-loki-log-limit lets one log query return more than the default 100 lines.
[mcp_servers.grafana]
command = "mcp-grafana"
args = ["-t", "stdio", "--disable-write", "--max-loki-log-limit", "5000"]
env = {{ GRAFANA_URL = "{grafana_url}", GRAFANA_SERVICE_ACCOUNT_TOKEN = "${{GRAFANA_TOKEN}}" }}
grafana_url = "{grafana_url}"
# Pin datasources (default: the first Prometheus, Loki and Tempo datasources Grafana lists):
# prometheus_datasource_uid = "prometheus"
# loki_datasource_uid = "loki"
# tempo_datasource_uid = "tempo"
enabled = {grafana_enabled}

# --- A Prometheus-only stack (prometheus-mcp-server): metrics only.
# Install: pip install prometheus-mcp-server
[mcp_servers.prometheus]
command = "prometheus-mcp-server"
env = {{ PROMETHEUS_URL = "{prometheus_url}", FASTMCP_SHOW_SERVER_BANNER = "false", FASTMCP_CHECK_FOR_UPDATES = "off" }}
enabled = {prometheus_enabled}

# --- A streamable-HTTP server, e.g. `compass replay BUNDLE --http 8000`:
# [mcp_servers.replay]
# url = "http://127.0.0.1:8000/mcp"
# bearer_token_env_var = "MCP_TOKEN"
"""


def starter_config(
    *, grafana_url: str = "http://localhost:3000", prometheus_url: str = "http://localhost:9090",
    grafana_enabled: bool = True, prometheus_enabled: bool = False,
) -> str:
    """The commented starting file ``compass init`` writes."""
    return STARTER.format(
        grafana_url=grafana_url,
        prometheus_url=prometheus_url,
        grafana_enabled="true" if grafana_enabled else "false",
        prometheus_enabled="true" if prometheus_enabled else "false",
    )


def import_mcp_json(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Read ``{"mcpServers": {...}}`` (Claude Desktop, Cursor, VS Code style) and return
    server tables for the config plus notes. Literal secrets are replaced by ``${NAME}``
    references and noted, so they are never written to the config."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    servers = doc.get("mcpServers", doc.get("servers")) if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{p}: mcpServers: expected an object of servers")
    out: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for name, spec in servers.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{p}: mcpServers.{name}: expected an object")
        table: dict[str, Any] = {}
        if spec.get("command"):
            table["command"] = str(spec["command"])
            if spec.get("args"):
                table["args"] = [str(a) for a in spec["args"]]
            env = {}
            for k, v in (spec.get("env") or {}).items():
                v = str(v)
                if looks_secret(k) and not _REF.search(v):
                    notes.append(f"{name}: {k} was a literal secret; export {k} in your environment")
                    v = "${" + k + "}"
                env[str(k)] = v
            if env:
                table["env"] = env
            if spec.get("cwd"):
                table["cwd"] = str(spec["cwd"])
        elif spec.get("url") or spec.get("serverUrl"):
            table["url"] = str(spec.get("url") or spec.get("serverUrl"))
            headers = {}
            for k, v in (spec.get("headers") or {}).items():
                v = str(v)
                if not _REF.search(v) and (looks_secret(k) or k.lower() == "authorization"):
                    var = re.sub(r"[^A-Z0-9]", "_", f"{name}_{k}".upper())
                    notes.append(f"{name}: header {k} held a literal secret; export {var}")
                    v = "${" + var + "}"
                headers[str(k)] = v
            if headers:
                table["headers"] = headers
        else:
            raise ConfigError(f"{p}: mcpServers.{name}: expected command or url")
        env_all = table.get("env", {})
        if "GRAFANA_URL" in env_all and not _REF.search(env_all["GRAFANA_URL"]):
            table["grafana_url"] = env_all["GRAFANA_URL"]
        try:
            McpServerConfig.model_validate(table)
        except ValidationError as e:
            raise ConfigError(_format_validation(e, f"{p}: mcpServers.{name}")) from None
        out[str(name)] = table
    return out, notes


def servers_toml(servers: dict[str, dict[str, Any]]) -> str:
    """``[mcp_servers.<name>]`` tables for imported servers."""
    import tomli_w

    return tomli_w.dumps({"mcp_servers": servers})

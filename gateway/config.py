"""Settings: `config.toml`, then `GATEWAY_<SECTION>_<KEY>` environment overrides, then command-line flags.

Every key is optional. An unknown key or a value of the wrong type stops start-up with a `ConfigError`
whose one-line message names the key and where it came from.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ENV_PREFIX = "GATEWAY_"
CONFIG_ENV = "GATEWAY_CONFIG"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: Port = 8888
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = msgspec.field(default_factory=list)  # web pages elsewhere that may call the gateway


class UpstreamSettings(Section):
    url: str = "http://127.0.0.1:11434"
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    keep_alive: str = "5m"
    num_parallel: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1  # Ollama's OLLAMA_NUM_PARALLEL


class ModelSettings(Section):
    default: str = "huihui_ai/qwen3-abliterated:4b-v2"
    context_window: Annotated[int, msgspec.Meta(ge=256)] = 8192
    reserve_completion: NonNegative = 1024
    tokenizer: str = "cl100k_base"

    def __post_init__(self) -> None:
        if self.reserve_completion >= self.context_window:
            raise ValueError("reserve_completion must be smaller than context_window")


class MemorySettings(Section):
    data_dir: str = "data"
    qdrant_url: str = ""
    qdrant_api_key: str = ""


class EmbeddingSettings(Section):
    model: str = "nomic-embed-text"


Share = Annotated[float, msgspec.Meta(ge=0, le=1)]
Weight = Annotated[float, msgspec.Meta(ge=0)]


class RetrievalSettings(Section):
    top_k: Positive = 200
    relevance_threshold: Share = 0.05
    memory_share: Share = 0.5
    recency_weight: Share = 0.02
    dense_weight: Weight = 2.0  # fusion: how much the meaning leg counts against the words leg
    lexical_weight: Weight = 1.0
    memory_prefill_ms: Annotated[float, msgspec.Meta(ge=0)] = 1250.0  # 0: no limit

    def __post_init__(self) -> None:
        if self.dense_weight == 0 and self.lexical_weight == 0:
            raise ValueError("dense_weight and lexical_weight cannot both be 0")


class IdentitySettings(Section):
    user_headers: list[str] = msgspec.field(default_factory=lambda: ["X-OpenWebUI-User-Id", "X-User-Id"])
    conversation_headers: list[str] = msgspec.field(
        default_factory=lambda: ["X-OpenWebUI-Chat-Id", "X-Conversation-Id"]
    )
    # conversation headers of clients that send only their new message: the stored turns go before it
    history_headers: list[str] = msgspec.field(default_factory=lambda: ["X-Conversation-Id"])
    default_user: str = "default"


class AuthSettings(Section):
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    admin_keys: list[str] = msgspec.field(default_factory=list)
    proxy_keys: list[str] = msgspec.field(default_factory=list)  # a trusted front end's: it names its users
    open_network: bool = False


class LimitsSettings(Section):
    max_body_bytes: Positive = 16 * 1024 * 1024
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0  # the longest wait for the next part of a body


class Settings(Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    upstream: UpstreamSettings = msgspec.field(default_factory=UpstreamSettings)
    model: ModelSettings = msgspec.field(default_factory=ModelSettings)
    memory: MemorySettings = msgspec.field(default_factory=MemorySettings)
    embedding: EmbeddingSettings = msgspec.field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = msgspec.field(default_factory=RetrievalSettings)
    identity: IdentitySettings = msgspec.field(default_factory=IdentitySettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)


class ConfigError(Exception):
    """A configuration problem, told in one line that names the key."""


def find_config(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """`--config`, else `$GATEWAY_CONFIG`, else `./config.toml` if present, else none (defaults)."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = Path("config.toml")
    return local if local.is_file() else None


def load(
    path: Path | None,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the Settings from a TOML file, the environment and explicit overrides (in rising precedence)."""
    data = _read_toml(path) if path else {}
    source = str(path) if path else "defaults"
    _check_keys(data, source)
    origins = {(section, key): source for section, values in data.items() for key in values}
    for var, section, key, raw in _env_overrides(environ):
        data.setdefault(section, {})[key] = _coerce(raw, section, key, var)
        origins[section, key] = var
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            data.setdefault(section, {})[key] = value
            origins[section, key] = f"--{key}"
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc, origins, source)) from None
    _check_exposure(settings, origins.get(("server", "host"), source))
    return settings


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_exposure(settings: Settings, origin: str) -> None:
    """Without API keys anyone who can connect reaches every user's memory: only loopback, unless told."""
    auth = settings.auth
    if auth.keys or auth.admin_keys or auth.proxy_keys or auth.open_network or settings.server.host in LOOPBACK:
        return
    raise ConfigError(
        f"{origin}: [server] host {settings.server.host} would serve every user's memory to the network without"
        " API keys; set [auth] keys (key = user), or [auth] open_network = true if a proxy in front checks them"
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _fields(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(struct)}


SECTIONS: dict[str, type[msgspec.Struct]] = {name: section for name, section in _fields(Settings).items()}


def _check_keys(data: dict[str, Any], source: str) -> None:
    """Name unknown sections and keys precisely (msgspec would say `$.server`, not which file)."""
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key in values:
            if key not in _fields(SECTIONS[section]):
                raise ConfigError(f"{source}: unknown key `{key}` in [{section}]")


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    found = []
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("_")
        if section not in SECTIONS or key not in _fields(SECTIONS[section]):
            raise ConfigError(f"{var}: no such setting (expected GATEWAY_<SECTION>_<KEY>, e.g. GATEWAY_SERVER_PORT)")
        found.append((var, section, key, raw))
    return found


def _coerce(raw: str, section: str, key: str, var: str) -> Any:
    """Turn an environment string into the key's type: numbers and booleans as usual, lists as JSON or a,b,c."""
    kind = _fields(SECTIONS[section])[key]
    if kind == dict[str, str]:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"{var}: [{section}] {key} is not a JSON object: {raw!r}") from None
    if kind == list[str]:
        if raw.lstrip().startswith("["):
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise ConfigError(f"{var}: [{section}] {key} is not a JSON list: {raw!r}") from None
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{var}: [{section}] {key}: {exc} (got {raw!r})") from None


def _describe(exc: msgspec.ValidationError, origins: dict[tuple[str, str], str], source: str) -> str:
    """`Expected int, got str - at $.server.port` -> `config.toml: [server] port: Expected int, got str`."""
    message, _, where = str(exc).partition(" - at `$.")
    section, _, key = where.rstrip("`").partition(".")
    if key:
        return f"{origins.get((section, key), source)}: [{section}] {key}: {message}"
    if section:
        given = sorted({origin for (sec, _), origin in origins.items() if sec == section})
        return f"{', '.join(given) or source}: [{section}] {message}"
    return f"{source}: {message}"

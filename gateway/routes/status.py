"""Service routes: `/health` (is the process up) and `/status` (what it is connected to)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from msgspec import Struct

from gateway import __version__
from gateway.auth import PROXY, key_of, require_key
from gateway.chat import Chat
from gateway.config import Settings
from gateway.consolidate import Consolidation, Consolidator
from gateway.errors import GatewayError
from gateway.identity import named_user
from gateway.memory import Memory, MemoryStatus
from gateway.metrics import CONTENT_TYPE
from gateway.ollama import Ollama, OllamaTags
from gateway.prefill import Pace


class Health(Struct):
    status: str = "ok"


class UpstreamStatus(Struct):
    url: str
    reachable: bool
    version: str | None = None
    error: str | None = None


class ModelStatus(Struct):
    default: str
    present: bool | None
    context_window: int
    reserve_completion: int
    tokenizer: str


class EmbeddingStatus(Struct):
    model: str | None
    present: bool | None


class Status(Struct):
    version: str
    upstream: UpstreamStatus
    model: ModelStatus
    embedding: EmbeddingStatus
    models: list[str]
    memory: MemoryStatus
    consolidation: list[Consolidation]  # runs since start-up: the caller's own (every user's for an admin)
    # per model: its learnt prompt-evaluation rate (tokens/s), and the share of the prompt tokens sent that
    # Ollama reported evaluating (the rest it had cached)
    prompt_evaluation: dict[str, Pace]


class StatusController(Controller):
    tags = ("Service",)

    @get("/health", summary="Liveness: the gateway process answers (Ollama is not asked)")
    async def health(self) -> Health:
        return Health()

    @get(
        "/metrics",
        summary="Prometheus metrics (text format): requests, Ollama's calls, recall, prompt tokens, memory",
        guards=[require_key],
        media_type=CONTENT_TYPE,
    )
    async def prometheus(self, memory: Memory, state: State) -> bytes:
        exposition: bytes = await state.metrics.exposition(memory)
        return exposition

    @get(
        "/status",
        summary="Version, upstream reachability, models, context window, memory engine and counts",
        guards=[require_key],
    )
    async def status(
        self,
        ollama: Ollama,
        chat: Chat,
        consolidator: Consolidator,
        settings: Settings,
        state: State,
        request: Request[Any, Any, Any],
    ) -> Status:
        """Per-user detail (consolidation runs) only for that user's key, or for an admin key or no keys."""
        version, tags = await asyncio.gather(ollama.version(), ollama.tags(), return_exceptions=True)
        upstream = UpstreamStatus(url=ollama.url, reachable=isinstance(version, str))
        if isinstance(version, str):
            upstream.version = version
        elif isinstance(version, GatewayError):
            upstream.error = version.message
        elif isinstance(version, BaseException):
            raise version
        names = [m.name for m in tags.models] if isinstance(tags, OllamaTags) else []
        model = settings.model
        return Status(
            version=__version__,
            upstream=upstream,
            model=ModelStatus(
                default=model.default,
                present=_present(model.default, names) if upstream.reachable else None,
                context_window=model.context_window,
                reserve_completion=model.reserve_completion,
                tokenizer=state.tokenizer,
            ),
            embedding=EmbeddingStatus(
                model=settings.embedding.model or None,
                present=_present(settings.embedding.model, names)
                if upstream.reachable and settings.embedding.model
                else None,
            ),
            models=names,
            memory=await chat.memory.status(),
            consolidation=_visible(consolidator.runs.values(), request.headers, settings),
            prompt_evaluation=chat.prefill.paces(),
        )


def _visible(runs: Iterable[Consolidation], headers: Mapping[str, str], settings: Settings) -> list[Consolidation]:
    """Every run for an admin key (or without keys); a user's own for their key, or a proxy key naming them."""
    own = key_of(headers, settings.auth)
    if own is PROXY:
        own = named_user(headers, settings.identity.user_headers) or ""
    return [run for run in runs if own is None or run.user == own]


def _present(model: str, names: list[str]) -> bool:
    """Ollama lists `qwen3:4b` for a model pulled as `qwen3:4b`, and `llama3:latest` for `llama3`."""
    return model in names or f"{model}:latest" in names

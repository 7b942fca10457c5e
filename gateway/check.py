"""`gateway check`: one line per check, ✓ or ✗ with its fix; all must pass for exit status 0."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from gateway import tokens
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.index.edge import stored_dense_size
from gateway.ollama import Ollama
from gateway.transport import transport_for

Check = Callable[[], Awaitable[str]]  # returns what passed; raises Failed with the fix


class Failed(Exception):
    """A check that did not pass: its message says what is wrong and how to fix it."""


async def run(settings: Settings, source: str) -> int:
    timeout = httpx.Timeout(10.0, connect=3.0)
    async with httpx.AsyncClient(timeout=timeout, transport=transport_for(settings.upstream.url)) as client:
        ollama = Ollama(client, settings.upstream.url)
        checks: list[tuple[str, Check]] = [
            ("config", lambda: _config(source)),
            ("Ollama", lambda: _reachable(ollama)),
            ("chat model", lambda: _model(ollama, settings.model.default)),
            ("embedding model", lambda: _embedding(ollama, settings)),
            ("data dir", lambda: asyncio.to_thread(_writable, Path(settings.memory.data_dir))),
            ("tokenizer", lambda: _tokenizer(settings.model.tokenizer)),
        ]
        failures = 0
        for name, check in checks:
            try:
                print(f"✓ {name}: {await check()}")
            except Failed as exc:
                failures += 1
                print(f"✗ {name}: {exc}")
    return 0 if failures == 0 else 1


async def _config(source: str) -> str:
    return f"loaded from {source}"


async def _reachable(ollama: Ollama) -> str:
    try:
        return f"version {await ollama.version()} at {ollama.url}"
    except GatewayError as exc:
        raise Failed(exc.message) from None


async def _model(ollama: Ollama, model: str) -> str:
    try:
        names = [m.name for m in (await ollama.tags()).models]
    except GatewayError as exc:
        raise Failed(f"cannot list Ollama's models ({exc.message})") from None
    if model in names or f"{model}:latest" in names:
        return f"{model} is pulled"
    raise Failed(f"{model} is not in Ollama: `ollama pull {model}`, or set [model] default to one of {names}")


async def _embedding(ollama: Ollama, settings: Settings) -> str:
    model = settings.embedding.model
    if not model:
        return "none configured: recall uses words alone"
    await _model(ollama, model)
    try:
        answer = await ollama.embed(
            {"model": model, "input": ["size probe"], "keep_alive": settings.upstream.keep_alive}
        )
    except GatewayError as exc:
        raise Failed(f"{model} cannot embed: {exc.message}") from None
    size = len(answer.embeddings[0]) if answer.embeddings else 0
    index = Path(settings.memory.data_dir) / "index"
    stored = None if settings.memory.qdrant_url else stored_dense_size(index)
    if stored is not None and stored != size:
        raise Failed(f"{model} gives {size} dimensions but the index has {stored}: run `gateway reindex`")
    return f"{model} gives {size} dimensions"


def _writable(data_dir: Path) -> str:
    """Create (if need be) and write in the data dir: runs in a thread."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise Failed(
            f"{data_dir.absolute()} is not writable ({exc.strerror}): fix it or set [memory] data_dir"
        ) from None
    return f"{data_dir.absolute()} is writable"


async def _tokenizer(encoding: str) -> str:
    _, name = await asyncio.to_thread(tokens.load_counter, encoding)
    if name != encoding:
        raise Failed(
            f"tiktoken cannot load {encoding} (offline?): let it download once, or point"
            " TIKTOKEN_CACHE_DIR at a folder that has it; until then counts are overestimated"
        )
    return f"{encoding} loaded"

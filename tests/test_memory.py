"""Memory over a real journal file and the real embedded index; Ollama's `/api/embed` faked with respx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from gateway.config import Settings, load
from gateway.memory import Memory
from gateway.ollama import Ollama
from gateway.records import Turn
from tests.fake_ollama import _vector

URL = "http://ollama.test:11434"


class Embed:
    """A respx `/api/embed` that can be switched to a missing model, or to another size."""

    def __init__(self) -> None:
        self.status = 200
        self.size = 64
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.status != 200:
            return httpx.Response(self.status, json={"error": 'model "nomic-embed-text" not found, try pulling it'})
        body: dict[str, Any] = json.loads(request.content)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return httpx.Response(200, json={"embeddings": [_vector(t)[: self.size] for t in texts]})


@pytest.fixture
def embed() -> Iterator[Embed]:
    fake = Embed()
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        router.post("/api/embed").mock(side_effect=fake)
        yield fake


def settings(data_dir: Path, **env: str) -> Settings:
    return load(None, {"GATEWAY_MEMORY_DATA_DIR": str(data_dir), "GATEWAY_RETRIEVAL_RELEVANCE_THRESHOLD": "0", **env})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def opened(data_dir: Path, client: httpx.AsyncClient, **env: str) -> Memory:
    memory = await Memory.open(settings(data_dir, **env), Ollama(client, URL))
    await memory.reconcile()
    return memory


def turn(question: str, answer: str, user: str = "ann") -> Turn:
    return Turn(user=user, conversation="c1", model="qwen3:4b", question=question, answer=answer)


async def test_remembered_turns_are_recalled_by_meaning_and_words(
    tmp_path: Path, client: httpx.AsyncClient, embed: Embed
) -> None:
    memory = await opened(tmp_path, client)
    try:
        await memory.remember(turn("My sister Maud moved to Lisbon in May.", "Noted, Lisbon."))
        await memory.remember(turn("I bake sourdough bread on Sundays.", "Lovely."))
        await memory.remember(turn("Maud is my colleague", "Ok", user="bob"))
        assert await memory.drain() == 6
        assert (await memory.journal.counts())["outbox"] == 0
        found = await memory.recall("ann", "where did Maud move?")
        assert found.degraded is None
        assert found.memories[0].text == "My sister Maud moved to Lisbon in May."
        assert all(m.text != "Maud is my colleague" for m in found.memories)
        status = await memory.status()
        assert (status.retrieval, status.embedding_size, status.indexed) == ("hybrid", 64, 6)
    finally:
        await memory.close()


async def test_without_the_embedding_model_recall_uses_words_and_catches_up_later(
    tmp_path: Path, client: httpx.AsyncClient, embed: Embed
) -> None:
    embed.status = 404
    memory = await opened(tmp_path, client)
    try:
        await memory.remember(turn("The boat is called Seagull.", "Nice name."))
        await memory.drain()
        found = await memory.recall("ann", "what is the boat called?")
        assert [m.text for m in found.memories][:1] == ["The boat is called Seagull."]
        assert found.degraded is not None
        assert "`ollama pull nomic-embed-text`" in found.degraded
        assert (await memory.status()).retrieval == "lexical"
        assert (await memory.journal.counts())["lexical_only"] == 2

        embed.status = 200
        memory.embedder._retry_at = 0  # the retry delay has passed
        await memory.reconcile()
        assert memory.dense_ready
        assert await memory.drain() == 2  # the words-only points get their dense vectors
        assert (await memory.journal.counts())["lexical_only"] == 0
        assert (await memory.recall("ann", "Seagull")).degraded is None
    finally:
        await memory.close()


async def test_a_new_embedding_model_needs_a_reindex(tmp_path: Path, client: httpx.AsyncClient, embed: Embed) -> None:
    memory = await opened(tmp_path, client)
    await memory.remember(turn("The password hint is the cat's name.", "Understood."))
    await memory.drain()
    await memory.close()

    embed.size = 32  # another model, another size
    memory = await opened(tmp_path, client, GATEWAY_EMBEDDING_MODEL="all-minilm")
    try:
        assert memory.degraded is not None
        assert "run `gateway reindex`" in memory.degraded
        found = await memory.recall("ann", "password hint")
        assert found.memories
        assert found.degraded is not None
        assert await memory.reindex() == 2
        assert memory.dense_ready
        assert memory.index.dense_size == 32
        assert (await memory.recall("ann", "password hint")).degraded is None
        assert await memory.journal.get("index.embedding_model") == "all-minilm"
    finally:
        await memory.close()


async def test_with_no_embedding_model_configured_memory_is_words_only(
    tmp_path: Path, client: httpx.AsyncClient, embed: Embed
) -> None:
    memory = await opened(tmp_path, client, GATEWAY_EMBEDDING_MODEL="")
    try:
        await memory.remember(turn("Rex is a beagle.", "Cute."))
        await memory.drain()
        found = await memory.recall("ann", "beagle")
        assert [m.text for m in found.memories] == ["Rex is a beagle."]
        assert found.degraded is None
        assert embed.calls == 0
        assert (await memory.status()).degraded is None  # by choice, not a failure
    finally:
        await memory.close()


async def test_a_weight_of_zero_leaves_a_leg_out(tmp_path: Path, client: httpx.AsyncClient, embed: Embed) -> None:
    memory = await opened(tmp_path, client)
    await memory.remember(turn("Rex is a beagle.", "Cute."))
    await memory.drain()
    await memory.close()
    memory = await opened(tmp_path, client, GATEWAY_RETRIEVAL_DENSE_WEIGHT="0")
    try:
        calls = embed.calls
        found = await memory.recall("ann", "beagle")
        assert [m.text for m in found.memories] == ["Rex is a beagle."]
        assert (found.degraded, embed.calls) == (None, calls)  # words alone by choice: no query embedding
    finally:
        await memory.close()
    memory = await opened(tmp_path, client, GATEWAY_RETRIEVAL_LEXICAL_WEIGHT="0")
    try:
        found = await memory.recall("ann", "zzz")  # first by meaning, and no words leg to share the credit with
        assert max(m.score for m in found.memories) == 1.0
    finally:
        await memory.close()

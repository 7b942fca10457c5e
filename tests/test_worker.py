"""Heavy work runs off the event loop: counting a long history, and the lexical vectors of long memories.

The chat runs over a real journal and embedded index; Ollama is faked with respx; the token counter is
injected, so it can tell on which thread each text was counted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import respx

from gateway import lexical, worker
from gateway.chat import Chat
from gateway.ollama import Ollama
from gateway.protocol import ChatCompletionRequest
from tests.fake_ollama import _vector
from tests.test_memory import URL, opened, settings


class Counter:
    """Counts a token per four characters and notes the thread each text was counted on."""

    def __init__(self) -> None:
        self.counted: list[tuple[int, int]] = []  # (characters, thread)

    def __call__(self, text: str) -> int:
        self.counted.append((len(text), threading.get_ident()))
        return len(text) // 4 + 1

    def on(self, thread: int, chars: int) -> int:
        """How many texts of `chars` characters were counted on `thread`."""
        return self.counted.count((chars, thread))


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"model": "qwen3:4b", "message": {"role": "assistant", "content": "Noted."}, "done": True}
    )


def embedded(request: httpx.Request) -> httpx.Response:
    texts: Any = json.loads(request.content)["input"]
    return httpx.Response(200, json={"embeddings": [_vector(t) for t in texts]})


@pytest.fixture
def ollama() -> Iterator[None]:
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        router.post("/api/chat").mock(side_effect=answer)
        router.post("/api/embed").mock(side_effect=embedded)
        yield


def chat_request(history: int, size: int) -> ChatCompletionRequest:
    said = [{"role": ("user", "assistant")[n % 2], "content": f"{n:05d} " + "w" * size} for n in range(history)]
    body = {"model": "qwen3:4b", "messages": [*said, {"role": "user", "content": "and the garden?"}]}
    return msgspec.convert(body, ChatCompletionRequest)


async def test_a_long_history_is_counted_in_a_worker_thread(tmp_path: Path, ollama: None) -> None:
    async with httpx.AsyncClient() as client:
        store = await opened(tmp_path, client)
        count = Counter()
        chat = Chat(Ollama(client, URL), store, count, settings(tmp_path))
        try:
            loop = threading.get_ident()
            await chat.complete(chat_request(400, 1_000), {"X-User-Id": "ann"})  # 400 KB of history
            elsewhere = sum(1 for chars, thread in count.counted if chars == 1_006 and thread != loop)
            assert elsewhere >= 400  # each message of the history, counted to fit the budget
            assert count.on(loop, 1_006) < 40  # the loop counts only what was sent: 8,192 tokens hold 30

            count.counted.clear()
            await chat.complete(chat_request(4, 990), {"X-User-Id": "bob"})  # 4 KB: no thread hop
            assert count.on(loop, 996) >= 4
            assert all(thread == loop for chars, thread in count.counted if chars == 996)
        finally:
            await chat.drain()
            await store.close()


async def test_long_memories_get_their_lexical_vectors_in_a_worker_thread(
    tmp_path: Path, ollama: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[int, int] = {}
    document = lexical.document

    def noted(text: str) -> lexical.SparseVector:
        threads[len(text)] = threading.get_ident()
        return document(text)

    monkeypatch.setattr(lexical, "document", noted)
    async with httpx.AsyncClient() as client:
        store = await opened(tmp_path, client)
        try:
            long, short = "garden " * 9_000, "a short note on the garden"  # 63,000 characters: near the most
            assert 2 * len(long) >= worker.HEAVY_CHARS
            await store.note("ann", long)
            await store.note("ann", long + "!")
            await store.drain()
            await store.note("ann", short)
            await store.drain()
            assert threads[len(long)] != threading.get_ident()
            assert threads[len(short)] == threading.get_ident()
        finally:
            await store.close()

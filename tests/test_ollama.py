"""The Ollama client on literal Ollama answers (respx), including how it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from gateway.errors import (
    InvalidRequest,
    ModelNotFound,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.ollama import Ollama

URL = "http://ollama.test:11434"

# Literal /api/chat stream of qwen3 with thinking, as Ollama 0.12 sends it.
THINKING_STREAM = (
    b'{"model":"qwen3:4b","created_at":"2025-08-01T10:00:00.1Z","message":{"role":"assistant","content":"",'
    b'"thinking":"Hmm"},"done":false}\n'
    b'{"model":"qwen3:4b","created_at":"2025-08-01T10:00:00.2Z","message":{"role":"assistant","content":"Hi"},'
    b'"done":false}\n'
    b'{"model":"qwen3:4b","created_at":"2025-08-01T10:00:00.3Z","message":{"role":"assistant","content":""},'
    b'"done":true,"done_reason":"stop","total_duration":123,"load_duration":4,"prompt_eval_count":9,'
    b'"prompt_eval_duration":5,"eval_count":2,"eval_duration":6}\n'
)


async def pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in [*cuts, len(data)]:
        yield data[start:cut]
        start = cut


@pytest.fixture
async def ollama() -> AsyncIterator[Ollama]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        yield Ollama(client, URL + "/")


async def collect(ollama: Ollama) -> list[tuple[str, str | None, bool]]:
    async with ollama.chat_stream({"model": "qwen3:4b", "messages": []}) as chunks:
        return [
            (c.message.content if c.message else "", c.message.thinking if c.message else None, c.done)
            async for c in chunks
        ]


@respx.mock
async def test_stream_survives_a_chunk_boundary_inside_a_line(ollama: Ollama) -> None:
    # cut mid-key in the first line, mid-value in the second, and just before the last newline
    cuts = [40, THINKING_STREAM.index(b'"Hi"') + 2, len(THINKING_STREAM) - 1]
    respx.post(URL + "/api/chat").mock(return_value=httpx.Response(200, stream=pieces(THINKING_STREAM, cuts)))  # type: ignore[arg-type]
    assert await collect(ollama) == [("", "Hmm", False), ("Hi", None, False), ("", None, True)]


@respx.mock
async def test_error_line_in_a_200_stream_raises_after_the_good_chunks(ollama: Ollama) -> None:
    body = THINKING_STREAM.split(b"\n")[1] + b'\n{"error":"model runner has unexpectedly stopped"}\n'
    respx.post(URL + "/api/chat").mock(return_value=httpx.Response(200, content=body))
    seen = []

    async def drain() -> None:
        async with ollama.chat_stream({"model": "qwen3:4b", "messages": []}) as chunks:
            async for chunk in chunks:
                seen.append(chunk)

    with pytest.raises(UpstreamError, match="model runner has unexpectedly stopped"):
        await drain()
    assert len(seen) == 1


@respx.mock
async def test_final_counts_are_read(ollama: Ollama) -> None:
    respx.post(URL + "/api/chat").mock(return_value=httpx.Response(200, content=THINKING_STREAM.split(b"\n")[2]))
    answer = await ollama.chat({"model": "qwen3:4b", "messages": [], "stream": False})
    assert (answer.done, answer.done_reason, answer.prompt_eval_count, answer.eval_count) == (True, "stop", 9, 2)


@respx.mock
async def test_tool_calls_are_read(ollama: Ollama) -> None:
    body = (
        b'{"model":"qwen3:4b","message":{"role":"assistant","content":"","tool_calls":[{"function":'
        b'{"name":"get_weather","arguments":{"city":"Paris"}}}]},"done":true,"done_reason":"stop"}'
    )
    respx.post(URL + "/api/chat").mock(return_value=httpx.Response(200, content=body))
    answer = await ollama.chat({"model": "qwen3:4b", "messages": []})
    assert answer.message is not None
    assert answer.message.tool_calls is not None
    [call] = answer.message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (404, b'{"error":"model \\"ghost\\" not found, try pulling it first"}', ModelNotFound, "ollama pull ghost"),
        (400, b'{"error":"invalid format"}', InvalidRequest, "invalid format"),
        (503, b'{"error":"server busy, please try again."}', UpstreamBusy, "server busy"),
        (500, b'{"error":"llama runner process has terminated"}', UpstreamError, "llama runner"),
        (502, b"<html>bad gateway</html>", UpstreamError, "bad gateway"),
    ],
)
@respx.mock
async def test_error_statuses(ollama: Ollama, status: int, body: bytes, error: type[Exception], says: str) -> None:
    respx.post(URL + "/api/chat").mock(return_value=httpx.Response(status, content=body))
    with pytest.raises(error, match=says):
        await ollama.chat({"model": "ghost", "messages": []})
    with pytest.raises(error, match=says):
        async with ollama.chat_stream({"model": "ghost", "messages": []}):
            pass


@respx.mock
async def test_connection_refused_names_the_url_and_the_fix(ollama: Ollama) -> None:
    respx.get(URL + "/api/tags").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(UpstreamUnavailable, match=r"http://ollama.test:11434\. Start it with `ollama serve`"):
        await ollama.tags()


@respx.mock
async def test_read_timeout_is_504(ollama: Ollama) -> None:
    respx.post(URL + "/api/embed").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout) as caught:
        await ollama.embed({"model": "m", "input": "x"})
    assert caught.value.status == 504


@respx.mock
async def test_unreadable_answer_is_an_upstream_error(ollama: Ollama) -> None:
    respx.get(URL + "/api/version").mock(return_value=httpx.Response(200, content=b"<html>"))
    with pytest.raises(UpstreamError, match="unreadable"):
        await ollama.version()

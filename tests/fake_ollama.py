"""A small fake Ollama server for end-to-end tests and benchmarks: `python -m tests.fake_ollama PORT`.

It speaks the parts of Ollama's native API the gateway uses, as literal NDJSON, answering at once. The last
user message steers it, so a test can ask for a scenario through the real gateway:

    #tool      a tool call            #think     thinking, then the answer
    #length    cut by num_predict     #midfail   an {"error": ...} line in a 200 stream
    #fail500   a 500 before any byte  #busy      503, as Ollama when its queue is full
    #slow      a long, slow stream (a test disconnects and checks /_fake/stats)
    #hungry    prompt_eval_count of one token per character (far more than tiktoken counts)

A request with a JSON schema in `format` (a consolidation) gets `{"summary", "facts"}` made of the
transcript's user lines.

Otherwise the answer is `echo: <last user message>`, streamed a word per chunk. Every /api/chat body is
kept for inspection at GET /_fake/requests (DELETE resets), and disconnects are counted at /_fake/stats.

`/api/embed` gives each word a bucket of a 64-dimension vector, so texts that share words are close; with
`FAKE_OLLAMA_EMBEDDER=minilm` it runs the real all-MiniLM-L6-v2 (384 dimensions; benchmarks), for any
of its models, with the vectors cached on disk by text (tests/bench/minilm_cache.py). PUT
/_fake/embed `{"delay": seconds, "down": bool}` makes embedding slow or failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = ["qwen3:4b", "huihui_ai/qwen3-abliterated:4b-v2", "nomic-embed-text:latest"]
EMBED_DIM = 64
STAMP = "2025-05-01T10:00:00.123456789Z"


class FakeOllama:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        self.slow_started = 0
        self.embed_delay = 0.0
        self.embed_down = False
        self.embedder: Callable[[list[str]], list[list[float]]] = lambda texts: [_vector(t) for t in texts]
        if os.environ.get("FAKE_OLLAMA_EMBEDDER") == "minilm":
            from tests.bench.minilm_cache import CachedMiniLM

            self.embedder = CachedMiniLM().embed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        route = (scope["method"], scope["path"])
        if route == ("GET", "/api/version"):
            await _json(send, 200, {"version": "0.12.6"})
        elif route == ("GET", "/api/tags"):
            await _json(send, 200, {"models": [{"name": m, "model": m, "modified_at": STAMP} for m in MODELS]})
        elif route == ("POST", "/api/chat"):
            await self.chat(json.loads(body), receive, send)
        elif route == ("POST", "/api/embed"):
            await self.embed(json.loads(body), send)
        elif route == ("GET", "/_fake/requests"):
            await _json(send, 200, self.requests)
        elif route == ("DELETE", "/_fake/requests"):
            self.requests.clear()
            await _json(send, 200, {})
        elif route == ("PUT", "/_fake/embed"):
            control = json.loads(body)
            self.embed_delay, self.embed_down = float(control.get("delay", 0)), bool(control.get("down", False))
            await _json(send, 200, {})
        elif route == ("GET", "/_fake/stats"):
            await _json(send, 200, {"disconnects": self.disconnects, "slow_started": self.slow_started})
        else:
            await _json(send, 404, {"error": "404 page not found"})

    async def chat(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        self.requests.append(request)
        model = request.get("model", "")
        if model not in MODELS and f"{model}:latest" not in MODELS:
            await _json(send, 404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        last = next((m.get("content", "") for m in reversed(request["messages"]) if m["role"] == "user"), "")
        if "#fail500" in last:
            await _json(send, 500, {"error": "llama runner process has terminated: exit status 2"})
            return
        if "#busy" in last:
            await _json(send, 503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
            return
        chunks = _script(model, last)
        if isinstance(request.get("format"), dict):  # structured output: a consolidation's summary
            chunks = [{**chunks[-1], "message": {"role": "assistant", "content": json.dumps(_summary(request))}}]
        if "#hungry" in last:  # a model whose tokenizer counts a token per character
            chunks[-1]["prompt_eval_count"] = sum(len(m.get("content", "")) for m in request["messages"])
        if not request.get("stream", True):
            await _json(send, 200, _merge(chunks))
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-ndjson")]}
        )
        if "#slow" in last:
            await self.slow(model, receive, send)
            return
        for chunk in chunks:
            await send({"type": "http.response.body", "body": _line(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def slow(self, model: str, receive: Receive, send: Send) -> None:
        """Stream a word every 50 ms for a minute, counting a disconnect if the gateway hangs up."""
        self.slow_started += 1

        async def stream() -> None:
            for _ in range(1200):
                await send({"type": "http.response.body", "body": _line(_chunk(model, "tick ")), "more_body": True})
                await asyncio.sleep(0.05)

        streaming = asyncio.ensure_future(stream())
        listening = asyncio.ensure_future(_until_disconnect(receive))
        done, _ = await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        if listening in done or streaming.exception() is not None:
            self.disconnects += 1
        for task in (streaming, listening):
            task.cancel()

    async def embed(self, request: dict[str, Any], send: Send) -> None:
        model = request.get("model", "")
        if model not in MODELS and f"{model}:latest" not in MODELS:
            await _json(send, 404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        if self.embed_delay:
            await asyncio.sleep(self.embed_delay)
        if self.embed_down:
            await _json(send, 500, {"error": "failed to embed: llama runner process has terminated"})
            return
        texts = [request["input"]] if isinstance(request["input"], str) else request["input"]
        vectors = self.embedder(texts)
        tokens = sum(len(text.split()) for text in texts)
        await _json(send, 200, {"model": model, "embeddings": vectors, "prompt_eval_count": tokens})


def _script(model: str, last: str) -> list[dict[str, Any]]:
    """The NDJSON chunks of an answer, as Ollama would stream them."""
    done = {"done": True, "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 5, "total_duration": 1000}
    if "#tool" in last:
        call = {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
        return [
            {**_chunk(model, ""), "message": {"role": "assistant", "content": "", "tool_calls": [call]}},
            {**_chunk(model, ""), **done},
        ]
    if "#think" in last:
        thinking = [
            {**_chunk(model, ""), "message": {"role": "assistant", "content": "", "thinking": word}}
            for word in ("Let me ", "think.")
        ]
        return [*thinking, _chunk(model, "The answer "), _chunk(model, "is 42."), {**_chunk(model, ""), **done}]
    if "#midfail" in last:
        return [_chunk(model, "Partial "), {"error": "an error was encountered while running the model"}]
    words = f"echo: {last}".split(" ")
    chunks = [_chunk(model, word + (" " if i < len(words) - 1 else "")) for i, word in enumerate(words)]
    final = {**_chunk(model, ""), **done}
    if "#length" in last:
        final["done_reason"] = "length"
    return [*chunks, final]


def _chunk(model: str, content: str) -> dict[str, Any]:
    return {"model": model, "created_at": STAMP, "message": {"role": "assistant", "content": content}, "done": False}


def _merge(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed answer: the chunks' message parts joined, with the final chunk's counts."""
    if "error" in chunks[-1]:
        return chunks[-1]
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    for chunk in chunks:
        part = chunk.get("message", {})
        message["content"] += part.get("content", "")
        if part.get("thinking"):
            message["thinking"] = message.get("thinking", "") + part["thinking"]
        if part.get("tool_calls"):
            message["tool_calls"] = part["tool_calls"]
    return {**chunks[-1], "message": message}


def _summary(request: dict[str, Any]) -> dict[str, Any]:
    """What a model asked for a summary would say: the transcript's user lines, and those about "my" as facts."""
    transcript = request["messages"][-1]["content"]
    said = [line.split(": ", 1)[-1] for line in transcript.splitlines() if "] user" in line]
    return {"summary": "The user said: " + " / ".join(said), "facts": [s for s in said if " my " in f" {s.lower()}"]}


def _vector(text: str) -> list[float]:
    """A bag of words hashed into EMBED_DIM buckets, unit length: texts sharing words are close."""
    vector = [0.0] * EMBED_DIM
    for word in re.findall(r"\w+", text.lower()):
        vector[hashlib.sha256(word.encode()).digest()[0] % EMBED_DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector] if any(vector) else [1.0] + [0.0] * (EMBED_DIM - 1)


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, obj: Any) -> None:
    body = json.dumps(obj).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(port: int) -> None:
    import uvicorn

    uvicorn.run(FakeOllama(), host="127.0.0.1", port=port, lifespan="off", log_level="error", access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))

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

After a tool's result (the last message a `tool` one) the answer is `echo: the tool said <result>`.
Otherwise the answer is `echo: <last user message>` (without the gateway's memory block at its head),
streamed a word per chunk, padded with filler words to
`FAKE_OLLAMA_ANSWER_WORDS` words when that is set. Every /api/chat body is kept for inspection at GET
/_fake/requests (DELETE resets it and the prompt caches), and disconnects are counted at /_fake/stats.

Prompt cache, as Ollama's runner keeps it (tests/fake_prompt.py renders and tokenises a chat as Ollama
would): each model has `FAKE_OLLAMA_SLOTS` slots (1), each holding the tokens of the last prompt it
evaluated; a request takes the slot sharing the longest prefix and evaluates the rest, at least one token,
at `FAKE_OLLAMA_PREFILL_RATE` tokens a second (1000): `prompt_eval_duration` says how long that would take,
without waiting. `prompt_eval_count` is the whole prompt, as Ollama reports it since its Go runner; with
`FAKE_OLLAMA_EVAL_COUNT=evaluated` it is only the evaluated part, as Ollama 0.2 reported it. GET /_fake/cache
gives each model's requests and (prompt, evaluated) tokens; PUT /_fake/cache `{"slots", "rate",
"answer_words", "eval_count"}` changes the settings (new slots start empty).

`/api/generate` answers `echo: <prompt>` (then the suffix), a word per chunk; `/api/show`, `/api/ps` and the
legacy `/api/embeddings` answer as Ollama does; model management (pull, create, copy, delete, push) is
answered `{"status": "success"}` and kept at GET /_fake/managed.

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
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tests.fake_prompt import PromptCache, encode, prompt_tokens

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = ["qwen3:4b", "huihui_ai/qwen3-abliterated:4b-v2", "nomic-embed-text:latest"]
EMBED_DIM = 64
STAMP = "2025-05-01T10:00:00.123456789Z"
FILLER = ["and", "so", "the", "story", "goes", "on", "a", "little", "further", "than", "it", "needs", "to"]
DECODE_RATE = 25.0  # tokens a second: a 4B model on a laptop
LOAD_DURATION = 2_000_000  # ns: the model is already loaded


class FakeOllama:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.managed: list[dict[str, Any]] = []  # pull, create, copy, delete, push: as they came
        self.disconnects = 0
        self.slow_started = 0
        self.embed_delay = 0.0
        self.embed_down = False
        self.embedder: Callable[[list[str]], list[list[float]]] = lambda texts: [_vector(t) for t in texts]
        self.slots = int(os.environ.get("FAKE_OLLAMA_SLOTS", "1"))
        self.rate = float(os.environ.get("FAKE_OLLAMA_PREFILL_RATE", "1000"))
        self.answer_words = int(os.environ.get("FAKE_OLLAMA_ANSWER_WORDS", "0"))
        self.eval_count = os.environ.get("FAKE_OLLAMA_EVAL_COUNT", "prompt")  # or "evaluated"
        self.caches: dict[str, PromptCache] = {}
        if os.environ.get("FAKE_OLLAMA_EMBEDDER") == "minilm":
            from tests.bench.minilm_cache import CachedMiniLM

            self.embedder = CachedMiniLM().embed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        route = (scope["method"], scope["path"])
        if route in JSON_BODIES:  # as Ollama (gin) answers a body that is not a JSON object
            try:
                parsed = json.loads(body) if body else None
            except ValueError as exc:
                await _json(send, 400, {"error": f"invalid character: {exc}"})
                return
            if not isinstance(parsed, dict):
                await _json(send, 400, {"error": "missing request body" if not body else "invalid request body"})
                return
        if route == ("GET", "/api/version"):
            await _json(send, 200, {"version": "0.12.6"})
        elif route == ("GET", "/api/tags"):
            await _json(send, 200, {"models": [{"name": m, "model": m, "modified_at": STAMP} for m in MODELS]})
        elif route == ("POST", "/api/chat"):
            await self.chat(json.loads(body), receive, send)
        elif route == ("POST", "/api/generate"):
            await self.generate(json.loads(body), send)
        elif route == ("POST", "/api/embed"):
            await self.embed(json.loads(body), send)
        elif route == ("POST", "/api/embeddings"):
            request = json.loads(body)
            await _json(send, 200, {"embedding": self.embedder([request.get("prompt", "")])[0]})
        elif route == ("POST", "/api/show"):
            await self.show(json.loads(body), send)
        elif route == ("GET", "/api/ps"):
            await _json(send, 200, {"models": [_running(MODELS[0])]})
        elif scope["path"] in PASSED_THROUGH:  # model management: recorded, answered as Ollama does
            self.managed.append({"method": scope["method"], "path": scope["path"], "body": body.decode()})
            await _json(send, 200, {"status": "success"})
        elif route == ("GET", "/_fake/managed"):
            await _json(send, 200, self.managed)
        elif route == ("GET", "/_fake/requests"):
            await _json(send, 200, self.requests)
        elif route == ("DELETE", "/_fake/requests"):
            self.requests.clear()
            self.managed.clear()
            self.caches.clear()
            await _json(send, 200, {})
        elif route == ("GET", "/_fake/cache"):
            await _json(send, 200, self.cache_report())
        elif route == ("PUT", "/_fake/cache"):
            self.configure(json.loads(body))
            await _json(send, 200, self.cache_report())
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
        said = next((m.get("content", "") for m in reversed(request["messages"]) if m["role"] == "user"), "")
        last = asked(said)  # the scenario is in the user's words, not in the memories quoted before them
        if request["messages"] and request["messages"][-1]["role"] == "tool":  # a tool's result: answer with it
            last = "the tool said " + str(request["messages"][-1].get("content", ""))
        if "#fail500" in last:
            await _json(send, 500, {"error": "llama runner process has terminated: exit status 2"})
            return
        if "#busy" in last:
            await _json(send, 503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
            return
        prompt = prompt_tokens(request)
        evaluated = self.cache(model).evaluate(prompt)
        chunks = _script(model, last, self.answer_words)
        if isinstance(request.get("format"), dict):  # structured output: a consolidation's summary
            chunks = [{**chunks[-1], "message": {"role": "assistant", "content": json.dumps(_summary(request))}}]
        if chunks[-1].get("done"):
            shown = len(prompt) if self.eval_count == "prompt" else evaluated
            chunks[-1].update(_timings(shown, evaluated, _answer_tokens(chunks), self.rate))
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

    async def generate(self, request: dict[str, Any], send: Send) -> None:
        """A prompt's completion: `echo: <prompt>` (and `<suffix>` after it), a word per chunk."""
        self.requests.append(request)
        model = request.get("model", "")
        if model not in MODELS and f"{model}:latest" not in MODELS:
            await _json(send, 404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        text = f"echo: {request.get('prompt', '')}" + (f" {request['suffix']}" if request.get("suffix") else "")
        words = text.split(" ")
        chunks = [
            {"model": model, "created_at": STAMP, "response": w + (" " if i < len(words) - 1 else ""), "done": False}
            for i, w in enumerate(words)
        ]
        prompt = len(encode(str(request.get("prompt", ""))))
        final = {"model": model, "created_at": STAMP, "response": "", "done": True, "done_reason": "stop"}
        final.update(context=[1, 2, 3], **_timings(prompt, prompt, len(encode(text)), self.rate))
        if not request.get("stream", True):
            await _json(send, 200, {**final, "response": text})
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-ndjson")]}
        )
        for chunk in [*chunks, final]:
            await send({"type": "http.response.body", "body": _line(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def show(self, request: dict[str, Any], send: Send) -> None:
        model = request.get("model") or request.get("name", "")
        if model not in MODELS and f"{model}:latest" not in MODELS:
            await _json(send, 404, {"error": f"model '{model}' not found"})
            return
        details = {"format": "gguf", "family": "qwen3", "parameter_size": "4.0B", "quantization_level": "Q4_K_M"}
        await _json(
            send,
            200,
            {
                "modelfile": f"FROM {model}\n",
                "parameters": "temperature 0.6",
                "template": "{{ .Prompt }}",
                "details": details,
                "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
                "capabilities": ["completion", "tools", "thinking"],
                "modified_at": STAMP,
            },
        )

    def cache(self, model: str) -> PromptCache:
        return self.caches.setdefault(model, PromptCache(self.slots))

    def configure(self, control: dict[str, Any]) -> None:
        """Apply PUT /_fake/cache: a new number of slots empties the caches, as reloading the model would."""
        if "slots" in control and int(control["slots"]) != self.slots:
            self.slots = int(control["slots"])
            self.caches.clear()
        self.rate = float(control.get("rate", self.rate))
        self.answer_words = int(control.get("answer_words", self.answer_words))
        self.eval_count = str(control.get("eval_count", self.eval_count))

    def cache_report(self) -> dict[str, Any]:
        models = {model: cache.report() for model, cache in self.caches.items()}
        settings = {"slots": self.slots, "rate": self.rate, "answer_words": self.answer_words}
        return {**settings, "eval_count": self.eval_count, "models": models}

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


JSON_BODIES = {("POST", p) for p in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/show")}
PASSED_THROUGH = {"/api/pull", "/api/create", "/api/copy", "/api/delete", "/api/push"}


def _running(model: str) -> dict[str, Any]:
    details = {"format": "gguf", "family": "qwen3", "parameter_size": "4.0B", "quantization_level": "Q4_K_M"}
    return {
        "name": model,
        "model": model,
        "size": 3_300_000_000,
        "digest": "a" * 64,
        "details": details,
        "expires_at": "2099-01-01T00:00:00Z",
        "size_vram": 3_300_000_000,
        "context_length": 8192,
    }


def _answer_tokens(chunks: list[dict[str, Any]]) -> int:
    """The tokens the model generated, with its closing `<|im_end|>` when it stopped of itself."""
    parts = [c.get("message", {}) for c in chunks]
    calls = [json.dumps(p["tool_calls"]) for p in parts if p.get("tool_calls")]
    text = "".join(p.get("thinking", "") + p.get("content", "") for p in parts) + "".join(calls)
    return len(encode(text)) + (chunks[-1].get("done_reason") == "stop")


def _timings(prompt: int, evaluated: int, answer: int, rate: float) -> dict[str, int]:
    """What Ollama reports of a run that took as long as `evaluated` tokens at `rate` and the answer would."""
    prefill, decode = round(evaluated / rate * 1e9), round(answer / DECODE_RATE * 1e9)
    return {
        "total_duration": LOAD_DURATION + prefill + decode,
        "load_duration": LOAD_DURATION,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": prefill,
        "eval_count": answer,
        "eval_duration": decode,
    }


def _script(model: str, last: str, answer_words: int = 0) -> list[dict[str, Any]]:
    """The NDJSON chunks of an answer, as Ollama would stream them (counts and timings come later)."""
    done = {"done": True, "done_reason": "stop"}
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
    words += [FILLER[i % len(FILLER)] for i in range(answer_words - len(words))]
    chunks = [_chunk(model, word + (" " if i < len(words) - 1 else "")) for i, word in enumerate(words)]
    final = {**_chunk(model, ""), **done}
    if "#length" in last:
        final["done_reason"] = "length"
    return [*chunks, final]


def asked(message: str) -> str:
    """The user's own words: a model answers the question, not the memories quoted at its head."""
    head, tag, rest = message.partition("</memories>\n\n")
    return rest if tag and head.startswith("<memories>") else message


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

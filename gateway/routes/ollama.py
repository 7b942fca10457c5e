"""Ollama's API at the root, as Ollama serves it: `/api/chat` with memory, the rest relayed to Ollama."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post, route
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from gateway.auth import caller, require_admin, require_key
from gateway.chat import Chat
from gateway.config import Settings
from gateway.doors import ollama as door
from gateway.doors.ollama import OllamaChatRequest
from gateway.ollama import Ollama
from gateway.routes.docs import example
from gateway.routes.stream import streamed

_encode = msgspec.json.Encoder().encode
CHAT = {"model": "qwen3:4b", "messages": [{"role": "user", "content": "Where do I live?"}], "stream": False}
GENERATE = {"model": "qwen3:4b", "prompt": "def fibonacci(n):", "stream": False}
SHOW = {"model": "qwen3:4b"}
EMBED = {"model": "nomic-embed-text", "input": ["first text", "second text"]}
EMBEDDING = {"model": "nomic-embed-text", "prompt": "a text"}
MANAGED = "Model management, relayed to Ollama (an admin key when keys are set)"


class OllamaController(Controller):
    path = "/api"
    tags = ("Ollama",)
    guards = (require_key,)

    @post("/chat", status_code=200, summary="Ollama's chat, with memory (NDJSON, streamed unless stream is false)")
    async def chat(
        self,
        data: Annotated[OllamaChatRequest, example(CHAT)],
        chat: Chat,
        ollama: Ollama,
        request: Request[Any, Any, Any],
    ) -> Response[Any] | Stream:
        if not data.messages:  # Ollama loads (or with keep_alive 0 unloads) the model: nothing to remember
            return await relayed(ollama, request, await request.body())
        asked = door.as_chat(data)
        model = chat.model_for(asked)
        if data.stream:
            relay = await chat.stream(asked, request.headers, caller(request), framer=door.NDJSONFramer(model))
            return streamed(relay)
        answer, ready = await chat.answer(asked, request.headers, caller(request))
        return Response(door.chat_chunk(answer, model), headers=ready.headers())

    @post("/generate", status_code=200, summary="Ollama's completion of a prompt (no memory unless X-Memory asks)")
    async def generate(
        self,
        data: Annotated[dict[str, Any], example(GENERATE)],
        ollama: Ollama,
        settings: Settings,
        request: Request[Any, Any, Any],
    ) -> Response[Any] | Stream:
        options = data.get("options")
        # the window every chat is sent with: a different num_ctx would make Ollama load the model again
        data["options"] = {"num_ctx": settings.model.context_window, **(options if isinstance(options, dict) else {})}
        return await relayed(ollama, request, _encode(data))

    @get("/tags", summary="The models Ollama has")
    async def list_models(self, ollama: Ollama, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await relayed(ollama, request)

    @get("/ps", summary="The models Ollama has loaded")
    async def ps(self, ollama: Ollama, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await relayed(ollama, request)

    @get("/version", summary="Ollama's version")
    async def version(self, ollama: Ollama, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await relayed(ollama, request)

    @post("/show", status_code=200, summary="A model's details, from Ollama")
    async def show(
        self, data: Annotated[dict[str, Any], example(SHOW)], ollama: Ollama, request: Request[Any, Any, Any]
    ) -> Response[Any] | Stream:
        return await relayed(ollama, request, await request.body())

    @post("/embed", status_code=200, summary="Embeddings, from Ollama")
    async def embed(
        self, data: Annotated[dict[str, Any], example(EMBED)], ollama: Ollama, request: Request[Any, Any, Any]
    ) -> Response[Any] | Stream:
        return await relayed(ollama, request, await request.body())

    @post("/embeddings", status_code=200, summary="An embedding (Ollama's older API), from Ollama")
    async def embeddings(
        self, data: Annotated[dict[str, Any], example(EMBEDDING)], ollama: Ollama, request: Request[Any, Any, Any]
    ) -> Response[Any] | Stream:
        return await relayed(ollama, request, await request.body())

    @post(["/pull", "/push", "/create", "/copy"], guards=[require_admin], status_code=200, summary=MANAGED)
    async def manage(self, ollama: Ollama, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await relayed(ollama, request, await request.body())

    @route("/delete", http_method=["DELETE"], guards=[require_admin], status_code=200, summary=MANAGED)
    async def delete(self, ollama: Ollama, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await relayed(ollama, request, await request.body())

    @route("/blobs/{digest:str}", http_method=["POST", "HEAD"], guards=[require_admin], summary=MANAGED)
    async def blob(self, ollama: Ollama, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await relayed(ollama, request, await request.body())


@get("/", include_in_schema=False, media_type=MediaType.TEXT, sync_to_thread=False)
def running() -> str:
    """What Ollama answers at its root, where Ollama clients look to see that it is up."""
    return door.RUNNING


async def relayed(ollama: Ollama, request: Request[Any, Any, Any], content: bytes = b"") -> Response[Any] | Stream:
    """The request sent on to Ollama as it came; Ollama's answer back as it comes (streamed when NDJSON)."""
    stack = AsyncExitStack()
    kind = request.headers.get("content-type")
    path = quote(request.url.path, safe="/:@")  # as it came: a digest is "sha256:<hex>"
    response = await stack.enter_async_context(ollama.relay(request.method, path, content, kind))
    media_type = response.headers.get("content-type", MediaType.JSON)
    if media_type.startswith(door.NDJSON):
        return Stream(
            response.aiter_raw(),
            status_code=response.status_code,
            media_type=media_type,
            background=BackgroundTask(stack.aclose),
        )
    async with stack:
        body = await response.aread()
    return Response(body, status_code=response.status_code, media_type=media_type)

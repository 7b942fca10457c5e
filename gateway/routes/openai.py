"""The OpenAI surface: `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from gateway import prompt, raw, tokens, translate, worker
from gateway.auth import caller, require_key
from gateway.chat import Chat
from gateway.config import Settings
from gateway.doors import completions
from gateway.doors.completions import Completion, CompletionRequest
from gateway.identity import MEMORY_HEADER
from gateway.ollama import Ollama
from gateway.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    CreateEmbeddingResponse,
    EmbeddingRequest,
    ModelList,
)
from gateway.routes.docs import error_responses, example
from gateway.routes.stream import streamed

CHAT_EXAMPLE = {
    "model": "qwen3:4b",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where do I live?"}],
    "stream": False,
}
COMPLETION_EXAMPLE = {"model": "qwen3:4b", "prompt": "def fibonacci(n):", "max_tokens": 64}
EMBED_EXAMPLE = {"model": "nomic-embed-text", "input": ["first text", "second text"]}


class OpenAIController(Controller):
    path = "/v1"
    tags = ("OpenAI",)
    guards = (require_key,)

    @get("/models", summary="List the models Ollama has", responses=error_responses(401, 502, 503, 504))
    async def list_models(self, ollama: Ollama) -> ModelList:
        return translate.model_list(await ollama.tags())

    @post(
        "/chat/completions",
        status_code=200,
        summary="Create a chat completion (streamed as SSE when `stream` is true)",
        responses={
            200: ResponseSpec(
                data_container=ChatCompletion,
                description="A chat completion; with `stream: true`, `text/event-stream` of `data: "
                "<chat.completion.chunk>` frames ending with `data: [DONE]`",
            ),
            **error_responses(400, 401, 404, 413, 502, 503, 504),
        },
    )
    async def chat_completions(
        self,
        data: Annotated[ChatCompletionRequest, example(CHAT_EXAMPLE)],
        chat: Chat,
        request: Request[Any, Any, Any],
    ) -> Response[ChatCompletion] | Stream:
        # Annotated as a Response so the route sets no media type: Litestar would let a route's JSON
        # override the Stream's text/event-stream.
        user = caller(request)
        if not data.stream:
            completion, report = await chat.complete(data, request.headers, user)
            return Response(completion, headers=report)
        return streamed(await chat.stream(data, request.headers, user))

    @post(
        "/completions",
        status_code=200,
        summary="Complete a prompt (legacy Completions; no memory unless X-Memory is sent)",
        responses={
            200: ResponseSpec(
                data_container=Completion,
                description="A text completion; with `stream: true`, `text/event-stream` of `data: "
                "<text_completion>` frames ending with `data: [DONE]`",
            ),
            **error_responses(400, 401, 404, 413, 502, 503, 504),
        },
    )
    async def completions(
        self,
        data: Annotated[CompletionRequest, example(COMPLETION_EXAMPLE)],
        chat: Chat,
        ollama: Ollama,
        settings: Settings,
        request: Request[Any, Any, Any],
    ) -> Response[Completion] | Stream:
        model = translate.chat_model(data.model, settings.model.default)
        include_usage = bool(data.stream_options and data.stream_options.include_usage)
        framer = completions.CompletionFramer(model, include_usage=include_usage)
        if request.headers.get(MEMORY_HEADER, "off").strip().lower() != "off":  # memory asked for: the chat flow
            asked = completions.as_chat(data)
            if data.stream:
                return streamed(await chat.stream(asked, request.headers, caller(request), framer=framer))
            answer, ready = await chat.answer(asked, request.headers, caller(request))
            return Response(completions.completion(answer, model=model), headers=ready.headers())
        window = settings.model.context_window
        body = completions.generate_body(data, model=model, num_ctx=window, keep_alive=settings.upstream.keep_alive)
        reserve = prompt.reserve_for(data.max_tokens, settings.model.reserve_completion)
        await raw.check_fits(body, chat.count, window=window, reserve=reserve)
        if data.stream:
            return streamed(await raw.generate_stream(ollama, body, framer, chat.in_background))
        return Response(completions.completion(await ollama.generate(body), model=model))

    @post(
        "/embeddings",
        status_code=200,
        summary="Create embeddings with an Ollama embedding model",
        responses=error_responses(400, 401, 404, 413, 502, 503, 504),
    )
    async def embeddings(
        self, data: Annotated[EmbeddingRequest, example(EMBED_EXAMPLE)], ollama: Ollama, settings: Settings
    ) -> CreateEmbeddingResponse:
        model = translate.embedding_model(data.model, settings.embedding.model)
        given = data.input
        texts: str | list[str] = given if isinstance(given, str) else [item for item in given if isinstance(item, str)]
        if not isinstance(given, str) and len(texts) < len(given):  # token ids
            ids = sum(len(item) if isinstance(item, list) else 1 for item in given)
            texts = await worker.run(ids * 4, lambda: tokens.decode_ids(data.model, given))
        body = translate.embed_body(texts, data, model=model, keep_alive=settings.upstream.keep_alive)
        return translate.embedding_response(await ollama.embed(body), data, model=model)

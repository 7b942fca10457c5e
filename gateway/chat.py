"""The flow of one chat request: build the Ollama call, run it, translate the answer.

This is the one place that knows the order of things; recall, prompt assembly and remembering the turn
join the flow here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from gateway import prompt, tokens, translate
from gateway.config import ModelSettings, UpstreamSettings
from gateway.errors import GatewayError, UpstreamError, error_envelope
from gateway.ollama import Ollama, OllamaChatChunk
from gateway.prompt import Budget
from gateway.protocol import ChatCompletion, ChatCompletionRequest, ChatMessage, chunk_encoder
from gateway.tokens import Count

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class Chat:
    def __init__(self, ollama: Ollama, model: ModelSettings, upstream: UpstreamSettings, count: Count) -> None:
        self._ollama = ollama
        self._model = model
        self._keep_alive = upstream.keep_alive
        self._count = count

    def model_for(self, request: ChatCompletionRequest) -> str:
        return request.model or self._model.default

    def assemble(self, request: ChatCompletionRequest) -> tuple[list[ChatMessage], Budget]:
        """The messages to forward, fitted to the context window less the completion reserve."""
        reserve = prompt.reserve_for(
            request.max_completion_tokens or request.max_tokens, self._model.reserve_completion
        )
        return prompt.fit(
            request.messages,
            window=self._model.context_window,
            reserve=reserve,
            count=self._count,
            tools=tokens.tools_tokens(self._count, request.tools),
        )

    def _body(self, request: ChatCompletionRequest) -> dict[str, Any]:
        messages, budget = self.assemble(request)
        if budget.trimmed:
            log.info("trimmed %d old messages to fit %d tokens", budget.trimmed, budget.limit)
        return translate.chat_body(
            request,
            model=self.model_for(request),
            num_ctx=self._model.context_window,
            keep_alive=self._keep_alive,
            messages=messages,
        )

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        answer = await self._ollama.chat(self._body(request))
        return translate.completion(answer, model=self.model_for(request))

    async def stream(self, request: ChatCompletionRequest) -> SSEStream:
        """Open the upstream stream and read its first chunk, so that a failure is still an HTTP status."""
        translator = translate.ChunkTranslator(
            self.model_for(request),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(self._ollama.chat_stream(self._body(request)))
            first = await anext(chunks, None)
            if first is None:
                raise UpstreamError("Ollama closed the stream without an answer.")
        except BaseException:
            await stack.aclose()
            raise
        return SSEStream(stack, first, chunks, translator)


class SSEStream:
    """The SSE frames of one streamed answer. It owns the upstream response until `aclose`.

    A failure after the first byte can no longer change the status: it goes out in-band as an OpenAI
    error frame, followed by `[DONE]`.
    """

    def __init__(
        self,
        stack: AsyncExitStack,
        first: OllamaChatChunk,
        chunks: AsyncIterator[OllamaChatChunk],
        translator: translate.ChunkTranslator,
    ) -> None:
        self._stack = stack
        self._first = first
        self._chunks = chunks
        self._translator = translator

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        try:
            for frame in self._translator.translate(self._first):
                yield sse(chunk_encoder.encode(frame))
            async for chunk in self._chunks:
                for frame in self._translator.translate(chunk):
                    yield sse(chunk_encoder.encode(frame))
        except GatewayError as exc:
            log.warning("stream failed after it started: %s", exc.message)
            yield sse(chunk_encoder.encode(exc.envelope()))
        except Exception:  # the response has started: tell the client in-band rather than cut it
            log.exception("stream failed after it started")
            yield sse(chunk_encoder.encode(error_envelope("internal error while streaming", "server_error")))
        finally:
            await self.aclose()
        yield DONE

    async def aclose(self) -> None:
        """Close the upstream response (idempotent); run when the stream ends or the client goes away."""
        await self._stack.aclose()

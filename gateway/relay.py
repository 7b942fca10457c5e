"""One streamed answer relayed from Ollama's chunks, framed as the front door's protocol speaks.

The relay owns the upstream response, gathers the answer's text for the journal, and decides what a failure
after the first byte becomes; a `Framer` (one per door: OpenAI's SSE chunks, Ollama's NDJSON, the Responses
API's events) only says how each part is written.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Protocol

from gateway import translate
from gateway.errors import GatewayError, UpstreamError, error_envelope
from gateway.ollama import OllamaChatChunk
from gateway.protocol import chunk_encoder
from gateway.records import TurnStatus

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


Finish = Callable[[str, OllamaChatChunk | None, TurnStatus], Awaitable[None]]  # the answer's text, last chunk


class Framer(Protocol):
    """How one door writes a streamed answer."""

    media_type: str

    def opening(self) -> list[bytes]: ...  # before the first chunk

    def frames(self, chunk: OllamaChatChunk) -> list[bytes]: ...

    def failed(self, error: dict[str, Any]) -> list[bytes]: ...  # a failure after the first byte, in-band

    def closing(self) -> list[bytes]: ...  # after the last chunk (or the failure)


class ChatCompletionFramer:
    """OpenAI's `chat.completion.chunk`s as server-sent events, ending with `[DONE]`."""

    media_type = "text/event-stream"

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self._translator = translate.ChunkTranslator(model, include_usage=include_usage)

    def opening(self) -> list[bytes]:
        return []

    def frames(self, chunk: OllamaChatChunk) -> list[bytes]:
        return [sse(chunk_encoder.encode(frame)) for frame in self._translator.translate(chunk)]

    def failed(self, error: dict[str, Any]) -> list[bytes]:
        return [sse(chunk_encoder.encode(error))]

    def closing(self) -> list[bytes]:
        return [DONE]


class Relay:
    """The frames of one streamed answer. It owns the upstream response until `aclose`.

    A failure after the first byte can no longer change the status: it goes out in-band, as the framer
    writes it. The turn is journaled before the closing frames; cut short (upstream failure, or a client that
    went away) it is journaled as partial, with what was said so far.
    """

    def __init__(
        self,
        stack: AsyncExitStack,
        first: OllamaChatChunk,
        chunks: AsyncIterator[OllamaChatChunk],
        framer: Framer,
        finish: Finish,
        schedule: Callable[[Awaitable[None]], None],
    ) -> None:
        self._stack = stack
        self._first = first
        self._chunks = chunks
        self.framer = framer
        self._finish = finish
        self._schedule = schedule
        self._text: list[str] = []
        self._final: OllamaChatChunk | None = None
        self._finished = False
        self.headers: dict[str, str] = {}

    @classmethod
    async def open(
        cls,
        upstream: AbstractAsyncContextManager[AsyncIterator[OllamaChatChunk]],
        framer: Framer,
        finish: Finish,
        schedule: Callable[[Awaitable[None]], None],
    ) -> Relay:
        """Open the upstream stream and read its first chunk, so that a failure is still an HTTP status."""
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(upstream)
            first = await anext(chunks, None)
            if first is None:
                raise UpstreamError("Ollama closed the stream without an answer.")
        except BaseException:
            await stack.aclose()
            raise
        return cls(stack, first, chunks, framer, finish, schedule)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        status: TurnStatus = "partial"
        failure: list[bytes] = []
        try:
            for frame in [*self.framer.opening(), *self._relay(self._first)]:
                yield frame
            async for chunk in self._chunks:
                for frame in self._relay(chunk):
                    yield frame
            status = "complete"
        except GatewayError as exc:
            log.warning("stream failed after it started: %s", exc.message)
            failure = self.framer.failed(exc.envelope())
        except Exception:  # the response has started: tell the client in-band rather than cut it
            log.exception("stream failed after it started")
            failure = self.framer.failed(error_envelope("internal error while streaming", "server_error"))
        except BaseException:  # cancelled or closed: the client went away; no awaiting here
            self._abandon()
            raise
        finally:
            await self._stack.aclose()
        for frame in failure:
            yield frame
        await self._record(status)
        for frame in self.framer.closing():
            yield frame

    def _relay(self, chunk: OllamaChatChunk) -> list[bytes]:
        if chunk.message and chunk.message.content:
            self._text.append(chunk.message.content)
        if chunk.done:
            self._final = chunk
        return self.framer.frames(chunk)

    async def _record(self, status: TurnStatus) -> None:
        if not self._finished:
            self._finished = True
            await self._finish("".join(self._text), self._final, status)

    def _abandon(self) -> None:
        if not self._finished:
            self._schedule(self._record("partial"))

    async def aclose(self) -> None:
        """Close the upstream response and journal an unfinished turn as partial (idempotent)."""
        await self._stack.aclose()
        self._abandon()

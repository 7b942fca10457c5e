"""The server-sent events of one streamed answer, relayed from Ollama's chunks as OpenAI's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

from gateway import translate
from gateway.errors import GatewayError, error_envelope
from gateway.journal import TurnStatus
from gateway.ollama import OllamaChatChunk
from gateway.protocol import chunk_encoder

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class SSEStream:
    """The SSE frames of one streamed answer. It owns the upstream response until `aclose`.

    A failure after the first byte can no longer change the status: it goes out in-band as an OpenAI error
    frame, then `[DONE]`. The turn is journaled before `[DONE]`; cut short (upstream failure, or a client
    that went away) it is journaled as partial, with what was said so far.
    """

    def __init__(
        self,
        stack: AsyncExitStack,
        first: OllamaChatChunk,
        chunks: AsyncIterator[OllamaChatChunk],
        translator: translate.ChunkTranslator,
        finish: Callable[[str, OllamaChatChunk | None, TurnStatus], Awaitable[None]],
        schedule: Callable[[Awaitable[None]], None],
    ) -> None:
        self._stack = stack
        self._first = first
        self._chunks = chunks
        self._translator = translator
        self._finish = finish
        self._schedule = schedule
        self._text: list[str] = []
        self._final: OllamaChatChunk | None = None
        self._finished = False
        self.headers: dict[str, str] = {}

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        status: TurnStatus = "partial"
        try:
            for frame in self._relay(self._first):
                yield frame
            async for chunk in self._chunks:
                for frame in self._relay(chunk):
                    yield frame
            status = "complete"
        except GatewayError as exc:
            log.warning("stream failed after it started: %s", exc.message)
            yield sse(chunk_encoder.encode(exc.envelope()))
        except Exception:  # the response has started: tell the client in-band rather than cut it
            log.exception("stream failed after it started")
            yield sse(chunk_encoder.encode(error_envelope("internal error while streaming", "server_error")))
        except BaseException:  # cancelled or closed: the client went away; no awaiting here
            self._abandon()
            raise
        finally:
            await self._stack.aclose()
        await self._record(status)
        yield DONE

    def _relay(self, chunk: OllamaChatChunk) -> list[bytes]:
        if chunk.message and chunk.message.content:
            self._text.append(chunk.message.content)
        if chunk.done:
            self._final = chunk
        return [sse(chunk_encoder.encode(frame)) for frame in self._translator.translate(chunk)]

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

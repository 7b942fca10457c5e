"""The flow of one chat request: who asks, fit the prompt, run it on Ollama, translate, remember the turn.

This is the one place that knows the order of things; recall joins the flow here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from gateway import prompt, tokens, translate
from gateway.config import IdentitySettings, ModelSettings, UpstreamSettings
from gateway.errors import GatewayError, UpstreamError, error_envelope
from gateway.identity import Identity, identify, text_of
from gateway.journal import Journal, Turn, TurnStatus
from gateway.ollama import Ollama, OllamaChatChunk
from gateway.prompt import Budget
from gateway.protocol import ChatCompletion, ChatCompletionRequest, ChatMessage, CompletionUsage, chunk_encoder
from gateway.tokens import Count

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
STATEFUL_HISTORY = 200  # journal messages offered to the budget for a client that sends only the new one


def sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class Chat:
    def __init__(
        self,
        ollama: Ollama,
        journal: Journal,
        count: Count,
        *,
        model: ModelSettings,
        upstream: UpstreamSettings,
        identity: IdentitySettings,
    ) -> None:
        self._ollama = ollama
        self._journal = journal
        self._count = count
        self._model = model
        self._keep_alive = upstream.keep_alive
        self._identity = identity
        self._background: set[asyncio.Task[None]] = set()

    def model_for(self, request: ChatCompletionRequest) -> str:
        return request.model or self._model.default

    def identify(self, request: ChatCompletionRequest, headers: Mapping[str, str]) -> Identity:
        return identify(headers, request.messages, self._identity, body_user=request.user)

    async def assemble(self, request: ChatCompletionRequest, who: Identity) -> tuple[list[ChatMessage], Budget]:
        """The messages to forward, fitted to the context window less the completion reserve."""
        limit = request.max_completion_tokens or request.max_tokens
        return prompt.fit(
            await self._with_history(request.messages, who),
            window=self._model.context_window,
            reserve=prompt.reserve_for(limit, self._model.reserve_completion),
            count=self._count,
            tools=tokens.tools_tokens(self._count, request.tools),
        )

    async def _with_history(self, messages: list[ChatMessage], who: Identity) -> list[ChatMessage]:
        """For a client that names its conversation and sends only the new message: the turns before it."""
        if not who.named or who.mode == "off" or any(m.role not in prompt.SYSTEM_ROLES for m in messages[:-1]):
            return messages
        try:
            earlier = await self._journal.recent(who.user, who.conversation, STATEFUL_HISTORY)
        except Exception:  # memory failing never fails the chat
            log.exception("could not read the history of conversation %s", who.conversation)
            return messages
        history = [ChatMessage(role="assistant" if m.role == "assistant" else "user", content=m.text) for m in earlier]
        return messages[:-1] + history + messages[-1:]

    async def _body(self, request: ChatCompletionRequest, who: Identity) -> tuple[dict[str, Any], dict[str, str]]:
        """The Ollama body, and the response headers that report what went into the prompt."""
        messages, budget = await self.assemble(request, who)
        if budget.trimmed:
            log.info("trimmed %d old messages to fit %d tokens", budget.trimmed, budget.limit)
        body = translate.chat_body(
            request,
            model=self.model_for(request),
            num_ctx=self._model.context_window,
            keep_alive=self._keep_alive,
            messages=messages,
        )
        return body, report_headers(who, budget, injected=0)

    async def complete(
        self, request: ChatCompletionRequest, headers: Mapping[str, str]
    ) -> tuple[ChatCompletion, dict[str, str]]:
        who = self.identify(request, headers)
        started = time.monotonic()
        body, report = await self._body(request, who)
        answer = await self._ollama.chat(body)
        completion = translate.completion(answer, model=self.model_for(request))
        text = completion.choices[0].message.content or ""
        await self.remember(who, request, text, completion.usage, started, "complete")
        return completion, report

    async def stream(self, request: ChatCompletionRequest, headers: Mapping[str, str]) -> SSEStream:
        """Open the upstream stream and read its first chunk, so that a failure is still an HTTP status."""
        who = self.identify(request, headers)
        started = time.monotonic()
        translator = translate.ChunkTranslator(
            self.model_for(request),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        body, report = await self._body(request, who)
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(self._ollama.chat_stream(body))
            first = await anext(chunks, None)
            if first is None:
                raise UpstreamError("Ollama closed the stream without an answer.")
        except BaseException:
            await stack.aclose()
            raise

        async def finish(text: str, usage: CompletionUsage | None, status: TurnStatus) -> None:
            await self.remember(who, request, text, usage, started, status)

        stream = SSEStream(stack, first, chunks, translator, finish, self.in_background)
        stream.headers = report
        return stream

    async def remember(
        self,
        who: Identity,
        request: ChatCompletionRequest,
        answer: str,
        usage: CompletionUsage | None,
        started: float,
        status: TurnStatus,
    ) -> None:
        """Journal the turn; a memory failure is logged, never turned into a failed chat."""
        newest = request.messages[-1]
        question = text_of(newest) if newest.role == "user" else ""
        if who.mode != "on" or not (question or answer):
            return
        turn = Turn(
            user=who.user,
            conversation=who.conversation,
            model=self.model_for(request),
            question=question,
            answer=answer,
            status=status,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_ms=round((time.monotonic() - started) * 1000),
        )
        try:
            await self._journal.record(turn)
        except Exception:  # the answer is already the client's; losing the turn is logged loudly
            log.exception("could not journal a turn of user %s", who.user)

    def in_background(self, work: Awaitable[None]) -> None:
        """Run `work` outside the request's cancel scope (a disconnected client's turn is still journaled)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work; called at shutdown before the journal closes."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def report_headers(who: Identity, budget: Budget, *, injected: int) -> dict[str, str]:
    """What went into the prompt, for the client to see: memory mode, memories injected, token breakdown."""
    parts = {
        "window": budget.window,
        "reserve": budget.reserve,
        "system": budget.system,
        "tools": budget.tools,
        "recent": budget.recent,
        "memories": 0,
        "free": budget.free,
        "trimmed": budget.trimmed,
    }
    return {
        "X-Memory": who.mode,
        "X-Memory-Injected": str(injected),
        "X-Prompt-Tokens": str(budget.limit - budget.free),
        "X-Prompt-Budget": "; ".join(f"{key}={value}" for key, value in parts.items()),
    }


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
        finish: Callable[[str, CompletionUsage | None, TurnStatus], Awaitable[None]],
        schedule: Callable[[Awaitable[None]], None],
    ) -> None:
        self._stack = stack
        self._first = first
        self._chunks = chunks
        self._translator = translator
        self._finish = finish
        self._schedule = schedule
        self._text: list[str] = []
        self._usage: CompletionUsage | None = None
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
            self._usage = translate.usage(chunk)
        return [sse(chunk_encoder.encode(frame)) for frame in self._translator.translate(chunk)]

    async def _record(self, status: TurnStatus) -> None:
        if not self._finished:
            self._finished = True
            await self._finish("".join(self._text), self._usage, status)

    def _abandon(self) -> None:
        if not self._finished:
            self._schedule(self._record("partial"))

    async def aclose(self) -> None:
        """Close the upstream response and journal an unfinished turn as partial (idempotent)."""
        await self._stack.aclose()
        self._abandon()

"""The flow of one chat request: who asks, fit the prompt, run it on Ollama, translate, remember the turn.

This is the one place that knows the order of things; recall joins the flow here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import msgspec
from msgspec import Struct

from gateway import prompt, tokens, translate
from gateway.config import Settings
from gateway.errors import GatewayError, UpstreamError, error_envelope
from gateway.identity import Identity, identify, text_of
from gateway.journal import Journal, Turn, TurnStatus
from gateway.memory import Memory, Recollection
from gateway.ollama import Ollama, OllamaChatChunk
from gateway.prompt import Budget
from gateway.protocol import ChatCompletion, ChatCompletionRequest, ChatMessage, CompletionUsage, chunk_encoder
from gateway.tokens import Calibration, Count

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
STATEFUL_HISTORY = 200  # journal messages offered to the budget for a client that sends only the new one
CALIBRATION_KEY = "model.calibration"  # the journal's meta key for what `Calibration` learnt
_ratios = msgspec.json.Decoder(dict[str, list[float]])


def sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class Prepared(Struct):
    """A request made ready for Ollama: the body, and what went into its prompt."""

    who: Identity
    body: dict[str, Any]
    budget: Budget
    recollection: Recollection
    started: float
    messages: list[ChatMessage]

    def headers(self) -> dict[str, str]:
        return report_headers(self.who, self.budget, self.recollection)


class Chat:
    def __init__(
        self, ollama: Ollama, memory: Memory, count: Count, settings: Settings, calibration: Calibration | None = None
    ) -> None:
        self._ollama = ollama
        self._memory = memory
        self.count = count
        self._model = settings.model
        self._keep_alive = settings.upstream.keep_alive
        self._identity = settings.identity
        self._retrieval = settings.retrieval
        self.calibration = calibration or Calibration()
        self._background: set[asyncio.Task[None]] = set()

    def model_for(self, request: ChatCompletionRequest) -> str:
        return request.model or self._model.default

    def identify(
        self, request: ChatCompletionRequest, headers: Mapping[str, str], key_user: str | None = None
    ) -> Identity:
        return identify(headers, request.messages, self._identity, body_user=request.user, key_user=key_user)

    async def assemble(
        self, request: ChatCompletionRequest, who: Identity, *, recall: bool = True
    ) -> tuple[list[ChatMessage], Budget, Recollection]:
        """The messages to forward: the client's, with recalled memories, fitted to the budget."""
        messages = await self._with_history(request.messages, who)
        recollection = await self._recall(messages, who) if recall else Recollection([])
        core = await self._core(who)
        limit = request.max_completion_tokens or request.max_tokens
        kept, budget = prompt.fit(
            messages,
            window=self._model.context_window,
            reserve=prompt.reserve_for(limit, self._model.reserve_completion),
            count=self.count,
            tools=tokens.tools_tokens(self.count, request.tools),
            core=core,
            memories=recollection.memories,
            memory_share=self._retrieval.memory_share,
            correction=self.calibration.correction(self.model_for(request)),
        )
        return kept, budget, recollection

    async def _recall(self, messages: list[ChatMessage], who: Identity) -> Recollection:
        newest = messages[-1] if messages else None
        query = text_of(newest) if newest is not None and newest.role == "user" else ""
        if who.mode == "off" or not query.strip():
            return Recollection([])
        try:
            return await self._memory.recall(who.user, query, extra=len(messages))
        except Exception as exc:  # memory failing never fails the chat
            log.exception("recall failed for user %s", who.user)
            return Recollection([], f"recall failed: {exc}")

    async def _core(self, who: Identity) -> ChatMessage | None:
        if who.mode == "off":
            return None
        try:
            return prompt.core_message([(b.label, b.value) for b in await self._memory.journal.core(who.user)])
        except Exception:  # memory failing never fails the chat
            log.exception("could not read the core memory of user %s", who.user)
            return None

    async def _with_history(self, messages: list[ChatMessage], who: Identity) -> list[ChatMessage]:
        """For a client that names its conversation and sends only the new message: the turns before it."""
        if not who.named or who.mode == "off" or any(m.role not in prompt.SYSTEM_ROLES for m in messages[:-1]):
            return messages
        try:
            earlier = await self._memory.journal.recent(who.user, who.conversation, STATEFUL_HISTORY)
        except Exception:  # memory failing never fails the chat
            log.exception("could not read the history of conversation %s", who.conversation)
            return messages
        history = [ChatMessage(role="assistant" if m.role == "assistant" else "user", content=m.text) for m in earlier]
        return messages[:-1] + history + messages[-1:]

    async def prepare(
        self,
        request: ChatCompletionRequest,
        headers: Mapping[str, str],
        key_user: str | None = None,
        *,
        recall: bool = True,
    ) -> Prepared:
        who = self.identify(request, headers, key_user)
        started = time.monotonic()
        messages, budget, recollection = await self.assemble(request, who, recall=recall)
        if budget.trimmed:
            log.info("trimmed %d old messages to fit %d tokens", budget.trimmed, budget.limit)
        body = translate.chat_body(
            request,
            model=self.model_for(request),
            num_ctx=self._model.context_window,
            keep_alive=self._keep_alive,
            messages=messages,
        )
        return Prepared(who, body, budget, recollection, started, messages)

    async def complete(
        self,
        request: ChatCompletionRequest,
        headers: Mapping[str, str],
        key_user: str | None = None,
        *,
        recall: bool = True,
    ) -> tuple[ChatCompletion, dict[str, str]]:
        ready = await self.prepare(request, headers, key_user, recall=recall)
        answer = await self._ollama.chat(ready.body)
        completion = translate.completion(answer, model=self.model_for(request))
        text = completion.choices[0].message.content or ""
        await self.remember(ready, request, text, completion.usage, "complete")
        return completion, ready.headers()

    async def stream(
        self, request: ChatCompletionRequest, headers: Mapping[str, str], key_user: str | None = None
    ) -> SSEStream:
        """Open the upstream stream and read its first chunk, so that a failure is still an HTTP status."""
        translator = translate.ChunkTranslator(
            self.model_for(request),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        ready = await self.prepare(request, headers, key_user)
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(self._ollama.chat_stream(ready.body))
            first = await anext(chunks, None)
            if first is None:
                raise UpstreamError("Ollama closed the stream without an answer.")
        except BaseException:
            await stack.aclose()
            raise

        async def finish(text: str, usage: CompletionUsage | None, status: TurnStatus) -> None:
            await self.remember(ready, request, text, usage, status)

        stream = SSEStream(stack, first, chunks, translator, finish, self.in_background)
        stream.headers = ready.headers()
        return stream

    async def remember(
        self,
        ready: Prepared,
        request: ChatCompletionRequest,
        answer: str,
        usage: CompletionUsage | None,
        status: TurnStatus,
    ) -> None:
        """Journal the turn; a memory failure is logged, never turned into a failed chat."""
        model = self.model_for(request)
        if usage and self.calibration.observe(model, ready.budget.limit - ready.budget.free, usage.prompt_tokens):
            await self._keep_calibration()
        newest = request.messages[-1]
        question = text_of(newest) if newest.role == "user" else ""
        who = ready.who
        if who.mode != "on" or not (question or answer):
            return
        turn = Turn(
            user=who.user,
            conversation=who.conversation,
            model=model,
            question=question,
            answer=answer,
            status=status,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_ms=round((time.monotonic() - ready.started) * 1000),
            injected=ready.budget.memory_ids,
            name=newest.name or "" if newest.role == "user" else "",
        )
        try:
            await self._memory.remember(turn)
        except Exception:  # the answer is already the client's; losing the turn is logged loudly
            log.exception("could not journal a turn of user %s", who.user)

    async def _keep_calibration(self) -> None:
        try:
            await self._memory.journal.put(CALIBRATION_KEY, json.dumps(self.calibration.ratios))
        except Exception:  # memory failing never fails the chat; the correction still holds until a restart
            log.exception("could not keep the token count corrections")

    def in_background(self, work: Awaitable[None]) -> None:
        """Run `work` outside the request's cancel scope (a disconnected client's turn is still journaled)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work; called at shutdown before the journal closes."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def restore_calibration(journal: Journal) -> Calibration:
    """The token count corrections learnt before the last restart (none if unreadable)."""
    kept = await journal.get(CALIBRATION_KEY)
    try:
        return Calibration(_ratios.decode(kept) if kept else None)
    except msgspec.DecodeError:
        log.warning("ignoring unreadable token count corrections in the journal")
        return Calibration()


def report_headers(who: Identity, budget: Budget, recollection: Recollection) -> dict[str, str]:
    """What went into the prompt, for the client to see: memory mode, memories injected, token breakdown."""
    parts = {
        "window": budget.window,
        "reserve": budget.reserve,
        "system": budget.system,
        "tools": budget.tools,
        "core": budget.core,
        "recent": budget.recent,
        "memories": budget.memories,
        "free": budget.free,
        "trimmed": budget.trimmed,
    }
    headers = {
        "X-Memory": who.mode,
        "X-Memory-Injected": str(len(budget.memory_ids)),
        "X-Prompt-Tokens": str(budget.limit - budget.free),
        "X-Prompt-Budget": "; ".join(f"{key}={value}" for key, value in parts.items()),
    }
    if recollection.degraded and who.mode != "off":
        headers["X-Memory-Degraded"] = recollection.degraded.encode("ascii", "replace").decode()[:200]
    return headers


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

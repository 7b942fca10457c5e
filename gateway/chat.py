"""The flow of one chat request: who asks, fit the prompt, run it on Ollama, translate, remember the turn.

This is the one place that knows the order of things; recall joins the flow here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from msgspec import Struct

from gateway import branch, prefill, prompt, tokens, translate, worker
from gateway.config import Settings
from gateway.identity import Identity, identify, text_of, words_of
from gateway.journal import Journal
from gateway.memory import Memory, Recollection
from gateway.metrics import Metrics
from gateway.ollama import Ollama, OllamaChatChunk
from gateway.prefill import Prefill
from gateway.prompt import Budget
from gateway.protocol import ChatCompletion, ChatCompletionRequest, ChatMessage
from gateway.records import Turn, TurnStatus
from gateway.relay import ChatCompletionFramer, Framer, Relay
from gateway.tokens import Calibration, Count

log = logging.getLogger(__name__)

STATEFUL_HISTORY = 200  # journal messages offered to the budget for a client that sends only the new one
CALIBRATION_KEY = "model.calibration"  # the journal's meta key for what `Calibration` learnt
PREFILL_KEY = "model.prefill"  # ... and for the evaluations `Prefill` learns each model's pace from
TOOLS_ADVICE = (
    "Open WebUI sends its built-in tools with native function calling: turn them off per model"
    " (Admin Panel > Settings > Models > the model > Capabilities > Builtin Tools)"
)
EARLIER_TURNS = 100  # newest turns whose blocks can be placed again (an 8K window holds a handful)
_ratios = msgspec.json.Decoder(dict[str, list[float]])
_paces = msgspec.json.Decoder(dict[str, list[tuple[int, int]]])


class Prepared(Struct):
    """A request made ready for Ollama: the body, and what went into its prompt."""

    who: Identity
    body: dict[str, Any]
    budget: Budget
    recollection: Recollection
    started: float
    messages: list[ChatMessage]
    block: str  # the memory block at the head of the newest message
    parts: list[prefill.Segment]  # the prompt as the model's template lays it out
    placed: branch.Placed  # what the conversation's earlier turns fixed, and the turns the branch leaves
    asked: str  # the user's own words in the newest message

    @property
    def model(self) -> str:
        return str(self.body["model"])

    def headers(self) -> dict[str, str]:
        return report_headers(self.who, self.budget, self.recollection)


class Chat:
    def __init__(
        self,
        ollama: Ollama,
        memory: Memory,
        count: Count,
        settings: Settings,
        calibration: Calibration | None = None,
        prefill: Prefill | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._ollama = ollama
        self.memory = memory
        self.count = count
        self._model = settings.model
        self._keep_alive = settings.upstream.keep_alive
        self._identity = settings.identity
        self._retrieval = settings.retrieval
        self.calibration = calibration or Calibration()
        self.prefill = prefill or Prefill(settings.upstream.num_parallel)
        self._background: set[asyncio.Task[None]] = set()
        self._metrics = metrics or Metrics()
        self._warned_tools: set[str] = set()

    def model_for(self, request: ChatCompletionRequest) -> str:
        return translate.chat_model(request.model, self._model.default)

    def identify(
        self, request: ChatCompletionRequest, headers: Mapping[str, str], key_user: str | None = None
    ) -> Identity:
        return identify(headers, request.messages, self._identity, body_user=request.user, key_user=key_user)

    async def assemble(
        self, request: ChatCompletionRequest, who: Identity, asked: str, *, recall: bool = True
    ) -> tuple[list[ChatMessage], Budget, Recollection, str, list[prefill.Segment], branch.Placed]:
        """The messages to forward, fitted to the budget, the memory block added now, the prompt's parts, and
        what the conversation's earlier turns fixed.

        The client's messages, each earlier user message with the memory block it got on its turn (from the
        journal), and the memories recalled now (for `asked`, the user's words) at the head of the newest."""
        limit = request.max_completion_tokens or request.max_tokens
        reserve = prompt.reserve_for(limit, self._model.reserve_completion)
        prompt.refuse_unfittable(request.messages, window=self._model.context_window, reserve=reserve)
        messages, skipped = await self._with_history(request.messages, who)
        placed = await self._placed(messages, who, skipped)
        injected = sum(len(e.injected) for e in placed.blocks.values())
        fresh_recall = recall and placed.again is None and messages[-1].role == "user"
        recollection = await self._recall(asked, who, injected, placed.left()) if fresh_recall else Recollection([])
        core = await self._core(who)
        model = self.model_for(request)
        tools = tokens.tools_tokens(self.count, request.tools)
        chars = sum(len(text_of(m)) for m in messages) + sum(len(m.text) for m in recollection.memories)
        fit = functools.partial(
            prompt.fit,
            messages,
            window=self._model.context_window,
            reserve=reserve,
            count=self.count,
            tools=tools,
            core=core,
            memories=recollection.memories,
            memory_share=self._retrieval.memory_share,
            correction=self.calibration.correction(model),
            placed=placed,
            want=self.prefill.allowance(model, self._retrieval.memory_prefill_ms),
        )
        kept, budget, block = await worker.run(chars, fit)  # counting a long history takes a while
        budget.trimmed += skipped
        budget.bare += skipped
        parts = prefill.segments(kept, tools, self.count)
        budget.fresh = self.prefill.fresh(model, parts, self.count)
        return kept, budget, recollection, block, parts, placed

    async def _placed(self, messages: list[ChatMessage], who: Identity, skipped: int) -> branch.Placed:
        """What the conversation's earlier turns fixed in its prompt (their blocks and where it starts), and
        the turns its branch leaves."""
        lone = all(m.role in prompt.SYSTEM_ROLES for m in messages[:-1])
        if who.mode == "off" or (lone and not who.named):  # nothing to place, nor a regenerate to know
            return branch.place(messages, [])
        journal = self.memory.journal
        try:
            earlier = await journal.earlier(who.user, who.conversation, EARLIER_TURNS)
            placed = branch.place(messages, earlier, skipped, named=who.named)
            return placed.loaded(await journal.blocks(placed.loading()))
        except Exception:  # memory failing never fails the chat
            log.exception("could not read the earlier turns of conversation %s", who.conversation)
            return branch.place(messages, [])

    async def _recall(self, query: str, who: Identity, placed: int, left: list[int]) -> Recollection:
        """The memories for the user's words, leaving out the turns the user just left behind."""
        if who.mode == "off" or not query.strip():
            return Recollection([])
        started = time.perf_counter()
        try:
            return await self.memory.recall(who.user, query, extra=placed, leave=left)
        except Exception as exc:  # memory failing never fails the chat
            log.exception("recall failed for user %s", who.user)
            return Recollection([], f"recall failed: {exc}")
        finally:
            self._metrics.recall_seconds.observe(time.perf_counter() - started)

    async def _core(self, who: Identity) -> ChatMessage | None:
        if who.mode == "off":
            return None
        try:
            return prompt.core_message([(b.label, b.value) for b in await self.memory.journal.core(who.user)])
        except Exception:  # memory failing never fails the chat
            log.exception("could not read the core memory of user %s", who.user)
            return None

    async def _with_history(self, messages: list[ChatMessage], who: Identity) -> tuple[list[ChatMessage], int]:
        """For a client that asks for its stored history (`history_headers`) and sends only the new message:
        the turns before it. (Open WebUI names its chats too, but always sends the branch the user is on.)

        Also how many older messages of the conversation were not loaded (its cut counts from its start)."""
        if not who.replay or who.mode == "off" or any(m.role not in prompt.SYSTEM_ROLES for m in messages[:-1]):
            return messages, 0
        try:
            earlier, older = await self.memory.journal.recent(who.user, who.conversation, STATEFUL_HISTORY)
        except Exception:  # memory failing never fails the chat
            log.exception("could not read the history of conversation %s", who.conversation)
            return messages, 0
        history = [ChatMessage(role="assistant" if m.role == "assistant" else "user", content=m.text) for m in earlier]
        return messages[:-1] + history + messages[-1:], older

    async def prepare(
        self,
        request: ChatCompletionRequest,
        headers: Mapping[str, str],
        key_user: str | None = None,
        *,
        recall: bool = True,
        who: Identity | None = None,
    ) -> Prepared:
        """The body for Ollama and what went into it; `who`: the identity when the front door knows it."""
        who = who or self.identify(request, headers, key_user)
        started = time.monotonic()
        asked = words_of(request.messages[-1])
        messages, budget, recollection, block, parts, placed = await self.assemble(request, who, asked, recall=recall)
        if budget.trimmed:
            log.info("trimmed %d old messages to fit %d tokens", budget.trimmed, budget.limit)
        self._heavy_tools(self.model_for(request), budget)
        body = translate.chat_body(
            request,
            model=self.model_for(request),
            num_ctx=self._model.context_window,
            keep_alive=self._keep_alive,
            messages=messages,
        )
        return Prepared(who, body, budget, recollection, started, messages, block, parts, placed, asked)

    def _heavy_tools(self, model: str, budget: Budget) -> None:
        """Say once per model when tool definitions take over half the prompt's budget."""
        if not tools_over_half(budget) or model in self._warned_tools:
            return
        self._warned_tools.add(model)
        log.warning(
            "tool definitions take %d of the %d prompt tokens for %s, over half, leaving memory and history"
            " little room; %s",
            budget.tools,
            budget.limit,
            model,
            TOOLS_ADVICE,
        )

    def _sending(self, ready: Prepared) -> None:
        """The model is about to read this prompt: it is what its cache will hold."""
        self.prefill.record(ready.model, ready.parts)
        self._metrics.sent(ready.budget)

    async def answer(
        self,
        request: ChatCompletionRequest,
        headers: Mapping[str, str],
        key_user: str | None = None,
        *,
        recall: bool = True,
        who: Identity | None = None,
    ) -> tuple[OllamaChatChunk, Prepared]:
        """Ollama's whole answer, the turn remembered; every door's non-streamed answer is made from it."""
        ready = await self.prepare(request, headers, key_user, recall=recall, who=who)
        self._sending(ready)
        answer = await self._ollama.chat(ready.body)
        self._metrics.first_byte.labels("false").observe(time.monotonic() - ready.started)
        text = (answer.message.content if answer.message else "") or ""
        await self.remember(ready, request, text, answer, "complete")
        return answer, ready

    async def complete(
        self,
        request: ChatCompletionRequest,
        headers: Mapping[str, str],
        key_user: str | None = None,
        *,
        recall: bool = True,
        who: Identity | None = None,
    ) -> tuple[ChatCompletion, dict[str, str]]:
        answer, ready = await self.answer(request, headers, key_user, recall=recall, who=who)
        return translate.completion(answer, model=self.model_for(request)), ready.headers()

    async def stream(
        self,
        request: ChatCompletionRequest,
        headers: Mapping[str, str],
        key_user: str | None = None,
        *,
        framer: Framer | None = None,
        who: Identity | None = None,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> Relay:
        """The streamed answer, its first chunk read (a failure is still an HTTP status); `framer`: how the
        door writes it (OpenAI's chat completion chunks unless told); `then`: the door's own work once the
        answer is whole and its turn remembered."""
        framer = framer or ChatCompletionFramer(
            self.model_for(request),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        ready = await self.prepare(request, headers, key_user, who=who)
        self._sending(ready)

        async def finish(text: str, final: OllamaChatChunk | None, status: TurnStatus) -> None:
            await self.remember(ready, request, text, final, status)
            if then is not None:
                await then()

        relay = await Relay.open(self._ollama.chat_stream(ready.body), framer, finish, self.in_background)
        self._metrics.first_byte.labels("true").observe(time.monotonic() - ready.started)
        relay.headers = ready.headers()
        return relay

    async def remember(
        self,
        ready: Prepared,
        request: ChatCompletionRequest,
        answer: str,
        final: OllamaChatChunk | None,
        status: TurnStatus,
    ) -> None:
        """Learn from Ollama's counts, then journal the turn; a memory failure is logged, never a failed chat."""
        model = self.model_for(request)
        usage = translate.usage(final) if final else None
        if final:
            await self._learn(model, ready.budget, final)
        newest = request.messages[-1]
        question = ready.asked if newest.role == "user" else ""
        who, placed = ready.who, ready.placed
        if who.mode != "on" or not (question or answer):
            return
        replaces = [e.turn for e in placed.leaving]
        if continued := placed.continued:  # the turn gets its whole answer
            question, answer, replaces = continued.question, text_of(newest) + answer, [*replaces, continued.turn]
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
            injected=continued.injected if continued else ready.budget.memory_ids,
            name=newest.name or "" if newest.role == "user" else "",
            memories=continued.block if continued else ready.block,
            cut=ready.budget.trimmed,
            bare=ready.budget.bare,
            replaces=replaces,
            revives=[e.turn for e in placed.returning],
        )
        try:
            await self.memory.remember(turn)
        except Exception:  # the answer is already the client's; losing the turn is logged loudly
            log.exception("could not journal a turn of user %s", who.user)

    async def _learn(self, model: str, budget: Budget, final: OllamaChatChunk) -> None:
        """The token count correction and the model's pace, each kept in the journal when it moved."""
        sent = budget.limit - budget.free
        if self.calibration.observe(model, sent, final.prompt_eval_count):
            await self._keep(CALIBRATION_KEY, self.calibration.ratios)
        fresh = round(budget.fresh * self.calibration.correction(model))
        if self.prefill.observe(model, sent, fresh, final.prompt_eval_count, final.prompt_eval_duration):
            await self._keep(PREFILL_KEY, self.prefill.kept())

    async def _keep(self, key: str, learnt: object) -> None:
        try:
            await self.memory.journal.put(key, json.dumps(learnt))
        except Exception:  # memory failing never fails the chat; what was learnt still holds until a restart
            log.exception("could not keep %s", key)

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


async def restore_prefill(journal: Journal, slots: int) -> Prefill:
    """The models' paces learnt before the last restart (none if unreadable)."""
    kept = await journal.get(PREFILL_KEY)
    try:
        return Prefill(slots, _paces.decode(kept) if kept else None)
    except msgspec.DecodeError:
        log.warning("ignoring unreadable prompt evaluation rates in the journal")
        return Prefill(slots)


def tools_over_half(budget: Budget) -> bool:
    return budget.tools * 2 > budget.limit


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
        "placed": budget.placed,
        "fresh": budget.fresh,
    }
    if tools_over_half(budget):
        parts["tools_over_half"] = 1
    headers = {
        "X-Memory": who.mode,
        "X-Memory-Injected": str(len(budget.memory_ids)),
        "X-Prompt-Tokens": str(budget.limit - budget.free),
        "X-Prompt-Budget": "; ".join(f"{key}={value}" for key, value in parts.items()),
    }
    if tools_over_half(budget):
        headers["X-Prompt-Warning"] = f"tool definitions take {budget.tools} of {budget.limit} prompt tokens"
    if recollection.degraded and who.mode != "off":
        headers["X-Memory-Degraded"] = recollection.degraded.encode("ascii", "replace").decode()[:200]
    return headers

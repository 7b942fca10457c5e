"""Consolidation: a user's older conversations summarised by the chat model into archival notes, with lasting
facts about the user proposed for core memory.

Idempotent: a conversation is summarised once, and again only when it has grown (its new summary replaces
the old one). The raw journal is never deleted. It runs in the background, one user at a time per user,
with its progress in `/status`; `gateway consolidate` runs it in the foreground with a progress bar.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from msgspec import Struct

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.memory import Memory
from gateway.ollama import Ollama
from gateway.records import StoredMessage
from gateway.tokens import Count

log = logging.getLogger(__name__)

QUIET = 3600.0  # seconds without a message before a conversation counts as older
SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["summary", "facts"],
}
INSTRUCTIONS = (
    "Summarise this conversation for a long-term memory of the user: what was said, asked, decided and"
    " planned, with dates where they matter, in a few sentences. Then list lasting facts about the user"
    " (name, family, home, work, preferences, health, plans), each short and self-contained; none if there"
    " are none. Answer in JSON with the keys summary and facts."
)


class Summary(Struct):
    summary: str
    facts: list[str] = []


class Consolidation(Struct, kw_only=True):
    user: str
    state: Literal["running", "done", "failed"] = "running"
    done: int = 0
    total: int = 0
    summaries: int = 0
    proposed: list[str] = []
    error: str | None = None


class Consolidator:
    def __init__(self, memory: Memory, ollama: Ollama, count: Count, settings: Settings) -> None:
        self._memory = memory
        self._ollama = ollama
        self._count = count
        self._model = settings.model
        self._keep_alive = settings.upstream.keep_alive
        self.runs: dict[str, Consolidation] = {}
        self._proposing = asyncio.Lock()  # a user's proposals are read, changed and written back
        self._tasks: set[asyncio.Task[Consolidation]] = set()

    def start(self, user: str) -> Consolidation:
        """Consolidate in the background (or report the run already under way)."""
        current = self.runs.get(user)
        if current and current.state == "running":
            return current
        run = self.runs[user] = Consolidation(user=user)
        task = asyncio.create_task(self.run(user, run), name=f"consolidate-{user}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run(
        self, user: str, run: Consolidation | None = None, advance: Callable[[int], None] | None = None
    ) -> Consolidation:
        run = run or Consolidation(user=user)
        try:
            todo = await self.pending(user)
            run.total = len(todo)
            for conversation, messages in todo:
                facts = await self._summarise(user, conversation, messages)
                run.proposed = list(dict.fromkeys([*run.proposed, *facts]))
                run.summaries += 1
                run.done += 1
                if advance:
                    advance(1)
            await self._propose(user, run.proposed)
            run.state = "done"
        except (GatewayError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            run.state, run.error = "failed", str(exc)
            log.warning("consolidating user %s failed: %s", user, exc)
        return run

    async def proposals(self, user: str) -> list[str]:
        return await self._list(f"core_proposals:{user}")

    async def settle(self, user: str, fact: str, accept: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Take a proposed fact off the list, dismissed or, after `accept` (which puts it into a block, and
        when that fails leaves it proposed), accepted: a later run does not propose it again. False when it
        was not proposed (or settled meanwhile: a second click accepts nothing twice)."""
        async with self._proposing:
            known = await self.proposals(user)
            if fact not in known:
                return False
            if accept:
                await accept()
            await self._memory.journal.put(f"core_proposals:{user}", json.dumps([f for f in known if f != fact]))
            settled = await self._list(f"core_settled:{user}")
            await self._memory.journal.put(f"core_settled:{user}", json.dumps([*settled, fact]))
            return True

    async def _list(self, key: str) -> list[str]:
        stored = await self._memory.journal.get(key)
        return list(json.loads(stored)) if stored else []

    async def pending(self, user: str) -> list[tuple[str, list[StoredMessage]]]:
        """The conversations a run would summarise now: quiet for an hour, and new or grown since."""
        conversations: dict[str, list[StoredMessage]] = {}
        for m in await self._memory.journal.messages_of(user):
            if m.kind == "message":
                conversations.setdefault(m.conversation, []).append(m)
        quiet_since = time.time() - QUIET
        todo = []
        for conversation, messages in conversations.items():
            done = await self._memory.journal.get(f"consolidated:{user}:{conversation}")
            last = messages[-1]
            if last.created_at < quiet_since and (done is None or done.split(":")[0] != str(last.id)):
                todo.append((conversation, messages))
        return todo

    async def _summarise(self, user: str, conversation: str, messages: list[StoredMessage]) -> list[str]:
        transcript = self._transcript(messages)
        body = {
            "model": self._model.default,
            "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": transcript}],
            "stream": False,
            "format": SCHEMA,
            "options": {"temperature": 0, "num_ctx": self._model.context_window},
            "keep_alive": self._keep_alive,
        }
        answer = await self._ollama.chat(body)
        summary = msgspec.json.decode((answer.message.content if answer.message else "") or "{}", type=Summary)
        first, last = _day(messages[0].created_at), _day(messages[-1].created_at)
        span = first if first == last else f"{first} to {last}"
        key = f"consolidated:{user}:{conversation}"
        previous = await self._memory.journal.get(key)
        if previous:  # the conversation grew: its new summary replaces the old one
            await self._memory.forget_message(int(previous.split(":")[1]))
        text = f"Summary of a conversation ({span}): {summary.summary.strip()}"
        note = await self._memory.note(user, text, when=messages[-1].created_at)
        await self._memory.journal.put(key, f"{messages[-1].id}:{note}")
        return [f.strip() for f in summary.facts if f.strip()]

    def _transcript(self, messages: list[StoredMessage]) -> str:
        """The conversation's newest messages that fit the model's window, less room for the answer."""
        room = self._model.context_window - self._model.reserve_completion - self._count(INSTRUCTIONS) - 50
        lines: list[str] = []
        for m in reversed(messages):
            line = f"[{_day(m.created_at)}] {m.name or m.role}: {m.text}"
            room -= self._count(line) + 1
            if room < 0:
                break
            lines.append(line)
        return "\n".join(reversed(lines))

    async def _propose(self, user: str, facts: list[str]) -> None:
        async with self._proposing:
            known = await self.proposals(user)
            settled = set(await self._list(f"core_settled:{user}"))
            merged = list(dict.fromkeys([*known, *(f for f in facts if f not in settled)]))
            if merged != known:
                await self._memory.journal.put(f"core_proposals:{user}", json.dumps(merged))


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))

"""The memory API (the paths of the Letta integration doc): add, search, forget, core memory, import, export,
and the prompt a chat request would get. Every route acts for one user: the API key's, else the named one."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post, put
from litestar.openapi.spec import Example
from litestar.params import Parameter
from msgspec import Meta, Struct

from gateway.auth import caller, require_key, user_for
from gateway.chat import Chat
from gateway.config import Settings
from gateway.consolidate import Consolidation, Consolidator
from gateway.errors import InvalidRequest, NotFound
from gateway.identity import Id, valid_id
from gateway.memory import Memory
from gateway.prompt import Budget, Recalled
from gateway.protocol import ChatCompletionRequest, ChatMessage
from gateway.records import CoreBlock
from gateway.routes.docs import error_responses, example
from gateway.tokens import Count
from gateway.transfer import (
    CORE_LIMIT,
    LABEL_PATTERN,
    MEMORY_CHARS,
    CoreBlockOut,
    Export,
    Imported,
    ImportRequest,
    block_out,
    export,
    import_memory,
    timestamp,
)

MemoryType = Literal["archival", "recall", "core"]
Text = Annotated[str, Meta(min_length=1, max_length=MEMORY_CHARS)]  # a memory added by hand
MAX_ID = 2**63 - 1  # SQLite's largest rowid
CORE_BLOCK_TOKENS = 500  # a core block's size limit unless the request sets one
CORE_LABEL = "human"  # where `/memory/add` with memory_type "core" appends


class AddRequest(Struct, kw_only=True):
    content: Text
    memory_type: MemoryType = "archival"
    user_id: Id | None = None


class Added(Struct, kw_only=True):
    id: int | None
    memory_type: MemoryType
    user_id: str
    label: str | None = None


class SearchRequest(Struct, kw_only=True):
    query: Text
    limit: Annotated[int, Meta(ge=1, le=200)] = 5
    user_id: Id | None = None


class Found(Struct, kw_only=True):
    id: int
    content: str
    score: float
    memory_type: MemoryType
    created_at: datetime
    conversation_id: str | None
    role: str


class SearchResults(Struct):
    results: list[Found]


class Deleted(Struct, kw_only=True):
    user_id: str
    deleted: int


class CoreBlockBody(Struct, kw_only=True):
    value: str
    limit: Annotated[int, Meta(ge=1, le=CORE_LIMIT)] = CORE_BLOCK_TOKENS
    user_id: Id | None = None


class CoreMemory(Struct, kw_only=True):
    user_id: str
    blocks: list[CoreBlockOut]
    proposed: list[str]  # facts consolidation found, for a client (or the user) to put into a block


class ProposalBody(Struct, kw_only=True):
    fact: Annotated[str, Meta(min_length=1, max_length=MEMORY_CHARS)]  # as `GET /memory/core` proposed it
    label: Annotated[str, Meta(pattern=LABEL_PATTERN)] = CORE_LABEL  # the block an accepted fact goes into
    user_id: Id | None = None


class ConsolidateRequest(Struct, kw_only=True):
    user_id: Id | None = None


class Context(Struct, kw_only=True):
    messages: list[ChatMessage]
    budget: Budget
    memories: list[Found]
    memory: str  # the mode used: on, read or off
    degraded: str | None = None


class MemoryController(Controller):
    path = "/memory"
    tags = ("Memory",)
    guards = (require_key,)

    @post(
        "/add",
        status_code=200,
        summary="Remember a note (archival), a message (recall) or a core fact",
        responses=error_responses(400, 401, 403),
    )
    async def add(
        self,
        data: Annotated[
            AddRequest, example({"content": "Ann is allergic to peanuts", "memory_type": "archival", "user_id": "ann"})
        ],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        chat: Chat,
    ) -> Added:
        user = _user(request, settings, data.user_id)
        if data.memory_type == "core":
            await _append(memory, user, CORE_LABEL, data.content, chat.count)
            return Added(id=None, memory_type="core", user_id=user, label=CORE_LABEL)
        kind = "note" if data.memory_type == "archival" else "message"
        id = await memory.note(user, data.content, kind=kind)
        return Added(id=id, memory_type=data.memory_type, user_id=user)

    @post(
        "/search",
        status_code=200,
        summary="Search a user's memories by meaning and words",
        responses=error_responses(400, 401, 403),
    )
    async def search(
        self,
        data: Annotated[SearchRequest, example({"query": "what can Ann not eat?", "limit": 5, "user_id": "ann"})],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
    ) -> SearchResults:
        user = _user(request, settings, data.user_id)
        found = await memory.recall(user, data.query, limit=data.limit)
        return SearchResults([_found(m) for m in found.memories])

    @delete("/{memory_id:int}", status_code=200, summary="Forget one memory", responses=error_responses(401, 403, 404))
    async def forget_one(
        self,
        memory_id: Annotated[int, Parameter(ge=1, le=MAX_ID, examples=[Example(value=42)])],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        user_id: Annotated[str | None, Parameter(query="user_id", examples=[Example(value="ann")])] = None,
    ) -> Deleted:
        user = _user(request, settings, user_id)
        stored = await memory.journal.message(memory_id)
        if stored is None or stored.user != user:
            raise NotFound(f"no memory {memory_id} for user {user!r}")
        await memory.forget_message(memory_id)
        return Deleted(user_id=user, deleted=1)

    @delete(
        "/conversations/{conversation_id:str}",
        status_code=200,
        summary="Forget one conversation (journal and index)",
        responses=error_responses(401, 403, 404),
    )
    async def forget_conversation(
        self,
        conversation_id: Annotated[str, Parameter(examples=[Example(value="4f6d0c1e-8a57-4c1b-9d1e-2b8f3c9a7e10")])],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        user_id: Annotated[str | None, Parameter(query="user_id", examples=[Example(value="ann")])] = None,
    ) -> Deleted:
        """Forget every message of one conversation: the chat id Open WebUI shows in its address (`/c/<id>`),
        an `X-Conversation-Id`, or a `conversation_id` of `/chat`."""
        user = _user(request, settings, user_id)
        deleted = await memory.forget_conversation(user, valid_id(conversation_id, "conversation"))
        if not deleted:
            raise NotFound(f"no conversation {conversation_id!r} for user {user!r}")
        return Deleted(user_id=user, deleted=deleted)

    @delete(
        "/users/{user_id:str}",
        status_code=200,
        summary="Forget a user entirely (journal, index, core)",
        responses=error_responses(401, 403),
    )
    async def forget_user(
        self,
        user_id: Annotated[str, Parameter(examples=[Example(value="ann")])],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
    ) -> Deleted:
        user = _user(request, settings, user_id)
        return Deleted(user_id=user, deleted=await memory.forget_user(user))

    @get("/core", summary="A user's core memory blocks", responses=error_responses(401, 403))
    async def core(
        self,
        consolidator: Consolidator,
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        chat: Chat,
        user_id: Annotated[str | None, Parameter(query="user_id", examples=[Example(value="ann")])] = None,
    ) -> CoreMemory:
        return await _core_memory(_user(request, settings, user_id), memory, consolidator, chat.count)

    @post(
        "/core/proposed/accept",
        status_code=200,
        summary="Accept a fact consolidation proposed: append it to a core block (`human` by default)",
        responses=error_responses(400, 401, 403, 404),
    )
    async def accept(
        self,
        data: Annotated[ProposalBody, example({"fact": "Ann's sister is Maud", "label": "human", "user_id": "ann"})],
        consolidator: Consolidator,
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        chat: Chat,
    ) -> CoreMemory:
        user = _user(request, settings, data.user_id)

        async def accept() -> None:  # over the block's limit: a 400, and the fact stays proposed
            await _append(memory, user, data.label, data.fact, chat.count)

        if not await consolidator.settle(user, data.fact, accept):
            raise NotFound(f"no proposed fact {data.fact!r} for user {user!r}", param="fact")
        return await _core_memory(user, memory, consolidator, chat.count)

    @post(
        "/core/proposed/dismiss",
        status_code=200,
        summary="Dismiss a fact consolidation proposed (it is not proposed again)",
        responses=error_responses(400, 401, 403, 404),
    )
    async def dismiss(
        self,
        data: Annotated[ProposalBody, example({"fact": "Ann's sister is Maud", "user_id": "ann"})],
        consolidator: Consolidator,
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        chat: Chat,
    ) -> CoreMemory:
        user = _user(request, settings, data.user_id)
        if not await consolidator.settle(user, data.fact):
            raise NotFound(f"no proposed fact {data.fact!r} for user {user!r}", param="fact")
        return await _core_memory(user, memory, consolidator, chat.count)

    @post(
        "/consolidate",
        status_code=202,
        summary="Summarise a user's older conversations into archival notes and propose core facts (background)",
        responses=error_responses(400, 401, 403),
    )
    async def consolidate(
        self,
        data: Annotated[ConsolidateRequest, example({"user_id": "ann"})],
        consolidator: Consolidator,
        settings: Settings,
        request: Request[Any, Any, Any],
    ) -> Consolidation:
        return consolidator.start(_user(request, settings, data.user_id))

    @put(
        "/core/{label:str}",
        summary="Write a core memory block (within its token limit)",
        responses=error_responses(400, 401, 403),
    )
    async def put_core(
        self,
        label: Annotated[str, Parameter(examples=[Example(value="human")])],
        data: Annotated[CoreBlockBody, example({"value": "Name: Ann. Lives in Lyon.", "limit": 500, "user_id": "ann"})],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        chat: Chat,
    ) -> CoreBlockOut:
        user = _user(request, settings, data.user_id)
        block = _checked(_label(label), data.value, data.limit, chat.count)
        await memory.journal.put_core(user, block)
        return block_out(block, chat.count)

    @delete(
        "/core/{label:str}",
        status_code=200,
        summary="Delete a core memory block",
        responses=error_responses(401, 403, 404),
    )
    async def delete_core(
        self,
        label: Annotated[str, Parameter(examples=[Example(value="human")])],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        user_id: Annotated[str | None, Parameter(query="user_id", examples=[Example(value="ann")])] = None,
    ) -> Deleted:
        user = _user(request, settings, user_id)
        if not await memory.journal.delete_core(user, label):
            raise NotFound(f"user {user!r} has no core block {label!r}")
        return Deleted(user_id=user, deleted=1)

    @post(
        "/import",
        status_code=200,
        summary="Import conversations, keeping each message's created_at",
        responses=error_responses(400, 401, 403),
    )
    async def import_(
        self,
        data: Annotated[ImportRequest, example(IMPORT_EXAMPLE)],
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
    ) -> Imported:
        user = _user(request, settings, data.user_id)
        return await import_memory(memory, user, data)

    @get(
        "/export",
        summary="Everything remembered of a user: conversations, core memory, notes",
        responses=error_responses(401, 403),
    )
    async def export(
        self,
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        chat: Chat,
        user_id: Annotated[str | None, Parameter(query="user_id", examples=[Example(value="ann")])] = None,
    ) -> Export:
        user = _user(request, settings, user_id)
        return await export(memory, user, chat.count)

    @post(
        "/context",
        status_code=200,
        summary="The prompt a chat request would get, without calling the model",
        responses=error_responses(400, 401, 403),
    )
    async def context(
        self,
        data: Annotated[ChatCompletionRequest, example({"messages": [{"role": "user", "content": "What do I grow?"}]})],
        chat: Chat,
        request: Request[Any, Any, Any],
    ) -> Context:
        ready = await chat.prepare(data, request.headers, caller(request))
        chosen = set(ready.budget.memory_ids)
        memories = [_found(m) for m in ready.recollection.memories if m.id in chosen]
        return Context(
            messages=ready.messages,
            budget=ready.budget,
            memories=memories,
            memory=ready.who.mode,
            degraded=ready.recollection.degraded,
        )


IMPORT_EXAMPLE = {
    "user_id": "ann",
    "conversations": [
        {
            "id": "trip",
            "messages": [
                {"role": "user", "content": "We fly to Oslo on 3 June.", "created_at": "2024-05-01T09:30:00Z"},
                {"role": "assistant", "content": "Noted: Oslo, 3 June.", "created_at": "2024-05-01T09:30:05Z"},
            ],
        }
    ],
}


def _user(request: Request[Any, Any, Any], settings: Settings, asked: str | None) -> str:
    return user_for(request.headers, settings, asked)


def _checked(label: str, value: str, limit: int, count: Count) -> CoreBlock:
    size = count(value)
    if size > limit:
        raise InvalidRequest(f"core block {label!r} would be {size} tokens, over its limit of {limit}", param="value")
    return CoreBlock(label=label, value=value, max_tokens=limit, updated_at=time.time())


async def _core_memory(user: str, memory: Memory, consolidator: Consolidator, count: Count) -> CoreMemory:
    blocks = [block_out(b, count) for b in await memory.journal.core(user)]
    return CoreMemory(user_id=user, blocks=blocks, proposed=await consolidator.proposals(user))


async def _append(memory: Memory, user: str, label: str, text: str, count: Count) -> None:
    """Add a line to a core block (made if it is missing), within its token limit."""
    old = {b.label: b for b in await memory.journal.core(user)}.get(label)
    value = f"{old.value}\n{text}" if old else text
    await memory.journal.put_core(user, _checked(label, value, old.max_tokens if old else CORE_BLOCK_TOKENS, count))


def _label(label: str) -> str:
    if not re.match(LABEL_PATTERN, label):
        raise InvalidRequest("a core block's label is 1-40 letters, digits, - or _", param="label")
    return label


def _found(m: Recalled) -> Found:
    return Found(
        id=m.id,
        content=m.text,
        score=m.score,
        memory_type="archival" if m.kind == "note" else "recall",
        created_at=timestamp(m.created_at),
        conversation_id=m.conversation or None,
        role=m.role,
    )

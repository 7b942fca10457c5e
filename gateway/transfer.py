"""Import and export of a user's memory: the gateway's own shape, and ChatGPT's data export.

Shape (design.md): `{user_id, conversations: [{id, messages: [{role, content, name?, created_at?}]}]}`;
an export adds `core` (the core memory blocks) and `notes` (archival memories). `created_at` is ISO 8601 and
is kept as the memory's time. ChatGPT's `conversations.json` is a list of conversations whose messages form
a tree (`mapping`); the branch that ends at `current_node` is the conversation as the user last saw it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from gateway.errors import InvalidRequest
from gateway.identity import Id
from gateway.memory import Memory
from gateway.records import CoreBlock, StoredMessage
from gateway.tokens import Count

MEMORY_CHARS = 64_000  # the longest memory kept: twice what an 8K window holds, and milliseconds to index
Memorable = Annotated[str, Meta(max_length=MEMORY_CHARS)]
LABEL_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"  # a core block's label
CORE_LIMIT = 4000  # the most tokens a core block may be given


class CoreBlockOut(Struct, kw_only=True):
    label: str
    value: str
    limit: int
    tokens: int
    updated_at: datetime


class ImportedMessage(Struct, kw_only=True):
    role: Literal["user", "assistant", "system"]
    content: Memorable
    name: str | None = None
    created_at: datetime | None = None


class ImportedConversation(Struct, kw_only=True):
    id: Id
    messages: list[ImportedMessage]


class CoreBlockIn(Struct, kw_only=True):
    label: Annotated[str, Meta(pattern=LABEL_PATTERN)]
    value: str
    limit: Annotated[int, Meta(ge=1, le=CORE_LIMIT)]
    updated_at: datetime | None = None


class ImportRequest(Struct, kw_only=True):
    user_id: Id | None = None
    conversations: list[ImportedConversation] = []
    core: list[CoreBlockIn] = []  # as an export has them
    notes: list[Note] = []


class Imported(Struct, kw_only=True):
    user_id: str
    conversations: int
    messages: int
    core: int = 0
    notes: int = 0
    already: int = 0  # messages and notes left out: the user's memory already held them


class Note(Struct, kw_only=True):
    content: Memorable
    created_at: datetime


class Export(Struct, kw_only=True):
    user_id: str
    conversations: list[ImportedConversation]
    core: list[CoreBlockOut]
    notes: list[Note]


async def import_memory(memory: Memory, user: str, data: ImportRequest) -> Imported:
    """Conversations (each message's created_at kept), core blocks and notes, as an export has them: in one
    transaction, and without what the user's memory already holds (importing again adds nothing twice)."""
    conversations = [
        (c.id, [_row(m) for m in c.messages if m.role != "system" and m.content]) for c in data.conversations
    ]
    now = time.time()
    core = [CoreBlock(b.label, b.value, b.limit, b.updated_at.timestamp() if b.updated_at else now) for b in data.core]
    notes = [(n.content, n.created_at.timestamp()) for n in data.notes]
    messages, noted = await memory.import_memory(user, conversations, core, notes)
    offered = sum(len(rows) for _, rows in conversations) + len(notes)
    return Imported(
        user_id=user,
        conversations=len(data.conversations),
        messages=messages,
        core=len(data.core),
        notes=noted,
        already=offered - messages - noted,
    )


async def export(memory: Memory, user: str, count: Count) -> Export:
    """The import shape, plus core memory and notes."""
    conversations: dict[str, list[ImportedMessage]] = {}
    notes = []
    for m in await memory.journal.messages_of(user):
        if m.kind == "note":
            notes.append(Note(content=m.text, created_at=timestamp(m.created_at)))
        else:
            conversations.setdefault(m.conversation, []).append(_exported(m))
    return Export(
        user_id=user,
        conversations=[ImportedConversation(id=c, messages=ms) for c, ms in conversations.items()],
        core=[block_out(b, count) for b in await memory.journal.core(user)],
        notes=notes,
    )


def parse(data: bytes) -> ImportRequest:
    """A file of either shape: ours (an import or an export), or ChatGPT's `conversations.json`."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"not JSON: {exc}") from None
    try:
        if isinstance(raw, list):
            return ImportRequest(conversations=[c for c in (_from_chatgpt(item) for item in raw) if c.messages])
        if not isinstance(raw, dict) or not {"conversations", "core", "notes"} & set(raw):
            raise TypeError("no conversations, core or notes")
        return msgspec.convert(raw, ImportRequest)
    except (msgspec.ValidationError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidRequest(f"neither the gateway's import shape nor a ChatGPT export: {exc}") from None


def _from_chatgpt(conversation: dict[str, Any]) -> ImportedConversation:
    """The branch of ChatGPT's message tree that ends at `current_node`, oldest first."""
    mapping: dict[str, Any] = conversation["mapping"]
    node = conversation.get("current_node") or next(reversed(mapping), None)
    branch = []
    while node is not None and node in mapping:
        branch.append(mapping[node])
        node = mapping[node].get("parent")
    messages = []
    for item in reversed(branch):
        message = item.get("message") or {}
        role = (message.get("author") or {}).get("role")
        parts = (message.get("content") or {}).get("parts") or []
        text = "\n".join(p for p in parts if isinstance(p, str)).strip()
        if role in ("user", "assistant") and text:
            when = message.get("create_time") or conversation.get("create_time")
            messages.append(ImportedMessage(role=role, content=text, created_at=timestamp(when) if when else None))
    ident = conversation.get("conversation_id") or conversation.get("id") or conversation.get("title") or "chatgpt"
    return ImportedConversation(id=str(ident), messages=messages)


def block_out(block: CoreBlock, count: Count) -> CoreBlockOut:
    return CoreBlockOut(
        label=block.label,
        value=block.value,
        limit=block.max_tokens,
        tokens=count(block.value),
        updated_at=timestamp(block.updated_at),
    )


def timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _row(m: ImportedMessage) -> tuple[str, str, float, str]:
    when = m.created_at.timestamp() if m.created_at else time.time()
    return m.role, m.content, when, m.name or ""


def _exported(m: StoredMessage) -> ImportedMessage:
    role: Literal["user", "assistant"] = "assistant" if m.role == "assistant" else "user"
    return ImportedMessage(role=role, content=m.text, name=m.name or None, created_at=timestamp(m.created_at))

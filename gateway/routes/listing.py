"""What the memory console lists: a user's memories page by page, newest first, and (for an admin) the users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.openapi.spec import Example
from litestar.params import Parameter
from msgspec import Struct

from gateway.auth import require_admin, require_key, user_for
from gateway.config import Settings
from gateway.memory import Memory
from gateway.records import StoredMessage
from gateway.routes.docs import error_responses
from gateway.transfer import timestamp

MAX_ID = 2**63 - 1  # SQLite's largest rowid
PAGE = 50  # memories a page holds unless the request says


class Listed(Struct, kw_only=True):
    id: int
    content: str
    role: str
    memory_type: Literal["archival", "recall"]
    conversation_id: str | None
    created_at: datetime


class Listing(Struct, kw_only=True):
    user_id: str
    memories: list[Listed]
    next_before: int | None  # the `before` of the next page; null on the last one


class UserSummary(Struct, kw_only=True):
    user_id: str
    memories: int  # conversation messages and notes
    conversations: int
    core_blocks: int
    last_at: datetime


class Users(Struct):
    users: list[UserSummary]


class ListingController(Controller):
    path = "/memory"
    tags = ("Memory",)
    guards = (require_key,)

    @get("/list", summary="A user's memories, newest first, a page at a time", responses=error_responses(400, 401, 403))
    async def list_memories(
        self,
        memory: Memory,
        settings: Settings,
        request: Request[Any, Any, Any],
        user_id: Annotated[str | None, Parameter(query="user_id", examples=[Example(value="ann")])] = None,
        memory_type: Annotated[
            Literal["archival", "recall"] | None,
            Parameter(query="memory_type", examples=[Example(value="recall")]),
        ] = None,
        before: Annotated[int, Parameter(ge=1, le=MAX_ID, examples=[Example(value=1200)])] = MAX_ID,
        limit: Annotated[int, Parameter(ge=1, le=500, examples=[Example(value=PAGE)])] = PAGE,
    ) -> Listing:
        """Conversation messages (`recall`) and notes (`archival`), newest first; `next_before` fetches the
        page after this one. Core blocks are at `GET /memory/core`."""
        user = user_for(request.headers, settings, user_id)
        notes = None if memory_type is None else memory_type == "archival"
        rows = await memory.journal.page(user, before=before, limit=limit + 1, notes=notes)
        more = len(rows) > limit
        shown = rows[:limit]
        return Listing(user_id=user, memories=[_listed(m) for m in shown], next_before=shown[-1].id if more else None)

    @get(
        "/users",
        summary="Every user the gateway remembers, with counts (admin key)",
        guards=[require_admin],
        responses=error_responses(401, 403),
    )
    async def users(self, memory: Memory) -> Users:
        return Users(
            [
                UserSummary(
                    user_id=t.user,
                    memories=t.memories,
                    conversations=t.conversations,
                    core_blocks=t.blocks,
                    last_at=timestamp(t.last),
                )
                for t in await memory.journal.tally()
            ]
        )


def _listed(m: StoredMessage) -> Listed:
    return Listed(
        id=m.id,
        content=m.text,
        role=m.role,
        memory_type="archival" if m.kind == "note" else "recall",
        conversation_id=m.conversation or None,
        created_at=timestamp(m.created_at),
    )

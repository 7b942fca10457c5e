"""`POST /chat`, the simple chat of the Letta integration doc: one message in, the answer out; the gateway
keeps the conversation and the client only its id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, post
from msgspec import Meta, Struct

from gateway.auth import require_key, user_for
from gateway.chat import Chat
from gateway.config import Settings
from gateway.identity import Id, Identity
from gateway.protocol import ChatCompletionRequest, ChatMessage, CompletionUsage
from gateway.routes.docs import error_responses, example


class SimpleChatRequest(Struct, kw_only=True):
    message: Annotated[str, Meta(min_length=1)]
    user_id: Id | None = None
    include_memory_search: bool = True
    conversation_id: Id | None = None
    model: str | None = None


class SimpleChatResponse(Struct, kw_only=True):
    message: str
    conversation_id: str
    memories_used: int
    usage: CompletionUsage | None


@post(
    "/chat",
    status_code=200,
    tags=["Memory"],
    guards=[require_key],
    summary="Simple chat: one message in, the answer out; stateful by conversation_id",
    responses=error_responses(400, 401, 403, 404, 502, 503, 504),
)
async def simple_chat(
    data: Annotated[SimpleChatRequest, example({"message": "What did I plan for May?", "user_id": "ann"})],
    chat: Chat,
    settings: Settings,
    request: Request[Any, Any, Any],
) -> SimpleChatResponse:
    """The simple chat of the Letta integration doc: the gateway keeps the conversation, the client one id."""
    user = user_for(request.headers, settings, data.user_id)
    conversation = data.conversation_id or f"chat-{uuid.uuid4().hex[:16]}"
    body = ChatCompletionRequest(messages=[ChatMessage(role="user", content=data.message)], model=data.model or "")
    who = Identity(user=user, conversation=conversation, mode="on", named=True, replay=True)  # the gateway keeps it
    completion, report = await chat.complete(body, {}, user, recall=data.include_memory_search, who=who)
    return SimpleChatResponse(
        message=completion.choices[0].message.content or "",
        conversation_id=conversation,
        memories_used=int(report["X-Memory-Injected"]),
        usage=completion.usage,
    )

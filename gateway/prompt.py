"""Assemble the messages sent to the model within its token budget (pure: counting is passed in).

Budget = context window - completion reserve (the request's max tokens, else `reserve_completion`).
Precedence: the client's leading system prompt and the newest message always go; then the recent turns,
newest first, as many as fit. What does not fit is trimmed from the oldest end, never cut in the middle,
and a single message that cannot fit is refused rather than silently shortened.
"""

from __future__ import annotations

from msgspec import Struct

from gateway.errors import ContextLengthExceeded
from gateway.protocol import ChatMessage
from gateway.tokens import REPLY_PRIMING, Count, message_tokens

SYSTEM_ROLES = ("system", "developer")


class Budget(Struct):
    """Where the tokens of one prompt went."""

    window: int
    reserve: int
    limit: int
    system: int
    tools: int
    recent: int
    free: int
    trimmed: int


def reserve_for(max_tokens: int | None, default: int) -> int:
    return max_tokens if max_tokens is not None else default


def fit(
    messages: list[ChatMessage], *, window: int, reserve: int, count: Count, tools: int = 0
) -> tuple[list[ChatMessage], Budget]:
    """The messages to send, oldest history dropped as needed, and the budget breakdown."""
    limit = window - reserve
    sizes = [message_tokens(count, m) for m in messages]
    lead = _leading_system(messages)
    system = sum(sizes[:lead])
    newest = sizes[-1] if lead < len(messages) else 0
    fixed = REPLY_PRIMING + tools + system + newest
    if fixed > limit:
        raise ContextLengthExceeded(window=window, reserve=reserve, needed=fixed)

    used = fixed
    first = len(messages) - 1  # index of the oldest history message kept
    while first - 1 >= lead and used + sizes[first - 1] <= limit:
        first -= 1
        used += sizes[first]
    while first < len(messages) - 1 and messages[first].role == "tool":  # its tool call was trimmed
        used -= sizes[first]
        first += 1
    kept = messages[:lead] + messages[first:] if lead < len(messages) else messages
    recent = used - fixed + newest
    budget = Budget(
        window=window,
        reserve=reserve,
        limit=limit,
        system=system,
        tools=tools,
        recent=recent,
        free=limit - used,
        trimmed=len(messages) - len(kept),
    )
    return kept, budget


def _leading_system(messages: list[ChatMessage]) -> int:
    lead = 0
    while lead < len(messages) and messages[lead].role in SYSTEM_ROLES:
        lead += 1
    return lead

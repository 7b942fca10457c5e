"""What the journal keeps, as the rest of the gateway reads it: turns, messages, core blocks, stored responses."""

from __future__ import annotations

from typing import Literal, NamedTuple

from msgspec import Struct

TurnStatus = Literal["complete", "partial"]


class StoredResponse(NamedTuple):
    """A Responses API response as stored: what it added to its conversation, and itself (both JSON)."""

    id: str
    user: str
    conversation: str
    previous: str | None
    created_at: float
    messages: str  # the chat messages its input and output added, in order
    body: str  # the response object the client got


class Turn(Struct, kw_only=True):
    """One exchange to remember: the new user message and the answer it got."""

    user: str
    conversation: str
    model: str
    question: str
    answer: str
    status: TurnStatus = "complete"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    injected: list[int] = []
    created_at: float = 0.0
    name: str = ""  # the asker's name, if the client gave one
    memories: str = ""  # the memory block sent at the head of the question (the question is kept without it)
    cut: int = 0  # conversation messages the prompt left out
    bare: int = 0  # conversation messages before which the prompt placed no earlier memory block
    replaces: list[int] = []  # turns of the conversation this one leaves behind (regenerated, edited away)
    revives: list[int] = []  # turns left behind before that are on the user's branch again


class StoredMessage(Struct):
    id: int
    user: str
    conversation: str
    role: str
    kind: str
    text: str
    created_at: float
    name: str = ""
    replaced: bool = False  # a turn the user left: out of the index and of recall


class UserTally(NamedTuple):
    user: str
    memories: int  # messages and notes
    conversations: int
    blocks: int  # core memory blocks
    last: float  # when a memory was made or a block written, the latest


class CoreBlock(Struct):
    label: str
    value: str
    max_tokens: int
    updated_at: float

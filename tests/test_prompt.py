"""Prompt assembly within the budget, with a counter simple enough to check by hand: one token a word."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.errors import ContextLengthExceeded
from gateway.prompt import fit, reserve_for
from gateway.protocol import ChatMessage
from gateway.tokens import PER_MESSAGE, REPLY_PRIMING


def words(text: str) -> int:
    return len(text.split())


def msgs(*pairs: tuple[str, str]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=content) for role, content in pairs]  # type: ignore[arg-type]


def each(text: str) -> int:
    return words(text) + PER_MESSAGE


def contents(messages: list[ChatMessage]) -> list[Any]:
    return [m.content for m in messages]


HISTORY = msgs(
    ("system", "be brief"),
    ("user", "one two three"),
    ("assistant", "four five"),
    ("user", "six seven eight nine"),
    ("assistant", "ten"),
    ("user", "newest question here"),
)


def test_everything_fits() -> None:
    kept, budget = fit(HISTORY, window=1000, reserve=100, count=words)
    assert kept == HISTORY
    assert budget.trimmed == 0
    assert budget.system == each("be brief")
    total = REPLY_PRIMING + sum(each(str(m.content)) for m in HISTORY)
    assert budget.free == 900 - total
    assert budget.recent == total - REPLY_PRIMING - budget.system


def test_oldest_history_is_trimmed_first() -> None:
    fixed = REPLY_PRIMING + each("be brief") + each("newest question here")
    room = each("ten") + each("six seven eight nine")  # the two newest history messages, not the third
    kept, budget = fit(HISTORY, window=fixed + room + 10, reserve=10, count=words)
    assert contents(kept) == ["be brief", "six seven eight nine", "ten", "newest question here"]
    assert budget.trimmed == 2
    assert budget.free == 0


def test_the_prompt_never_exceeds_the_budget() -> None:
    for limit in range(30, 60):
        kept, budget = fit(HISTORY, window=limit + 5, reserve=5, count=words)
        assert REPLY_PRIMING + sum(each(str(m.content)) for m in kept) <= limit
        assert budget.free >= 0


def test_a_message_that_cannot_fit_alone_is_refused() -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        fit(msgs(("user", "word " * 500)), window=512, reserve=100, count=words)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.status == 400
    assert "512" in caught.value.message


def test_max_tokens_is_the_reserve() -> None:
    assert reserve_for(300, 1024) == 300
    assert reserve_for(None, 1024) == 1024
    with pytest.raises(ContextLengthExceeded):
        fit(msgs(("user", "hi")), window=512, reserve=510, count=words)


def test_orphaned_tool_results_are_trimmed_with_their_call() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [
        msgspec.convert({"role": "user", "content": "a b c d e f g h"}, ChatMessage),
        msgspec.convert({"role": "assistant", "content": None, "tool_calls": [call]}, ChatMessage),
        msgspec.convert({"role": "tool", "tool_call_id": "c1", "content": "result"}, ChatMessage),
        msgspec.convert({"role": "assistant", "content": "answer"}, ChatMessage),
        msgspec.convert({"role": "user", "content": "next"}, ChatMessage),
    ]
    # room for the last two history messages and the tool result, but not its call
    window = REPLY_PRIMING + each("next") + each("answer") + each("result") + 1
    kept, budget = fit(history, window=window, reserve=0, count=words)
    assert [m.role for m in kept] == ["assistant", "user"]
    assert budget.trimmed == 3


def test_tools_count_against_the_budget() -> None:
    _, without = fit(HISTORY, window=1000, reserve=0, count=words)
    _, with_tools = fit(HISTORY, window=1000, reserve=0, count=words, tools=50)
    assert with_tools.free == without.free - 50

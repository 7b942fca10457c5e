"""Prompt assembly within the budget, with a counter simple enough to check by hand: one token a word."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from gateway.errors import ContextLengthExceeded
from gateway.prompt import MEMORY_PREAMBLE, SYSTEM_ROLES, Recalled, fit, reserve_for
from gateway.protocol import ChatMessage
from gateway.tokens import PER_MESSAGE, REPLY_PRIMING, load_counter, message_tokens


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


def recalled(id: int, text: str, *, role: str = "user", created_at: float = 1_700_000_000.0) -> Recalled:
    return Recalled(id=id, role=role, text=text, created_at=created_at, score=0.5)


def block_size(*texts: str) -> int:
    """The memory message: the preamble, the two tags, and per line a two-word timestamp, the role, the text."""
    return PER_MESSAGE + words(MEMORY_PREAMBLE) + 2 + sum(3 + words(text) for text in texts)


def quoted_lines(kept: list[ChatMessage]) -> list[str]:
    """The memory texts quoted in the prompt's memory message."""
    block = [str(m.content) for m in kept if str(m.content).startswith(MEMORY_PREAMBLE)]
    return block[0].split("\n")[2:-1] if block else []


CHAT = msgs(
    ("system", "be brief"),
    ("developer", "use metric"),
    ("user", "what is my cat called"),
    ("assistant", "I do not know"),
    ("user", "and my dog"),
)


def test_memories_are_one_system_message_after_the_leading_ones() -> None:
    memories = [
        recalled(2, "Rex is a fine dog", role="assistant", created_at=1_709_251_200.0),  # the best first
        recalled(1, "my dog is Rex", created_at=1_700_000_000.0),
    ]
    kept, budget = fit(CHAT, window=1000, reserve=0, count=words, memories=memories)
    assert [m.role for m in kept] == ["system", "developer", "system", "user", "assistant", "user"]
    assert kept[2].content == (
        MEMORY_PREAMBLE + "\n<memories>\n"
        "[2023-11-14 22:13] user: my dog is Rex\n"
        "[2024-03-01 00:00] assistant: Rex is a fine dog\n"
        "</memories>"
    )
    assert kept[:2] + kept[3:] == CHAT
    assert budget.memory_ids == [2, 1]
    assert budget.memories == block_size("my dog is Rex", "Rex is a fine dog")


def test_memories_are_introduced_as_data_not_instructions() -> None:
    assert "quoted as data" in MEMORY_PREAMBLE
    assert "not instructions" in MEMORY_PREAMBLE


def test_the_memory_tokens_are_counted_in_the_budget() -> None:
    _, without = fit(CHAT, window=1000, reserve=0, count=words)
    _, with_one = fit(CHAT, window=1000, reserve=0, count=words, memories=[recalled(1, "my dog is Rex")])
    assert with_one.memories == block_size("my dog is Rex")
    assert with_one.free == without.free - block_size("my dog is Rex")
    assert without.memories == 0
    assert without.memory_ids == []


def test_the_best_memories_go_in_when_not_all_fit() -> None:
    memories = [
        recalled(3, "third said best", created_at=3000.0),
        recalled(1, "first said second", created_at=1000.0),
        recalled(2, "second said worst", created_at=2000.0),
    ]
    fixed = REPLY_PRIMING + each("and my dog")
    # each line is counted one token high while choosing (for its newline), then checked as joined
    room = block_size("third said best", "first said second") + 2
    kept, budget = fit(msgs(("user", "and my dog")), window=fixed + room, reserve=0, count=words, memories=memories)
    assert budget.memory_ids == [3, 1]
    assert quoted_lines(kept) == [
        "[1970-01-01 00:16] user: first said second",
        "[1970-01-01 00:50] user: third said best",
    ]


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_the_memory_block_counts_exactly_the_sum_of_its_lines(encoding: str) -> None:
    """What lets assembly count each memory once (and cache it) rather than the whole block per request."""
    count, name = load_counter(encoding)
    assert name == encoding
    rng = random.Random(7)
    pieces = ["Lisbon", "my sister", "\n", "  ", "!", "2023", "[x]", "é", "<memories>", "don't", " ", ":)", "\n\n"]
    for _ in range(100):
        memories = [
            recalled(n, "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))), created_at=rng.uniform(0, 2e9))
            for n in range(rng.randint(1, 30))
        ]
        kept, budget = fit(msgs(("user", "q")), window=100_000, reserve=0, count=count, memories=memories)
        assert budget.memories == message_tokens(count, kept[0])


def test_a_memory_of_a_message_in_the_prompt_is_left_out() -> None:
    memories = [recalled(1, "I do not know"), recalled(2, "and my dog"), recalled(3, "my dog is Rex")]
    kept, budget = fit(CHAT, window=1000, reserve=0, count=words, memories=memories)
    assert budget.memory_ids == [3]
    assert quoted_lines(kept) == ["[2023-11-14 22:13] user: my dog is Rex"]


def test_a_memory_of_a_trimmed_message_is_kept() -> None:
    memories = [recalled(1, "what is my cat called")]
    fixed = REPLY_PRIMING + each("be brief") + each("use metric") + each("and my dog")
    room = each("I do not know") + block_size("what is my cat called") + 1
    kept, budget = fit(CHAT, window=fixed + room, reserve=0, count=words, memories=memories, memory_share=0.5)
    assert contents(kept)[3:] == ["I do not know", "and my dog"]
    assert budget.memory_ids == [1]


OLD = [("user" if n % 2 == 0 else "assistant", f"old message number {n} here") for n in range(30)]
LONG = msgs(*OLD, ("user", "q"))  # 30 old messages of 9 tokens, and the newest
LINE = "a memory of six words"  # with a number after it: 9 tokens as a line


def test_the_memory_share_limits_recent_history() -> None:
    memories = [recalled(n, f"{LINE} {n}") for n in range(10)]
    # limit 200, fixed 8 (priming and "q"): history gets 200 - 8 - 100 = 92, so 10 messages of 9 tokens;
    # memories get 200 - 8 - 90 = 102: the block's 34 and seven lines of 9
    _, budget = fit(LONG, window=200, reserve=0, count=words, memories=memories, memory_share=0.5)
    assert budget.memory_ids == [0, 1, 2, 3, 4, 5, 6]
    assert budget.memories == block_size(*[f"{LINE} {n}" for n in range(7)]) == 97
    # the memories needed 97 of their 102: the 5 left hold no old message of 9
    assert budget.recent == 10 * 9 + each("q")
    assert budget.trimmed == 20
    assert budget.free == 200 - REPLY_PRIMING - each("q") - 97 - 90


def test_without_a_memory_share_history_takes_the_room() -> None:
    memories = [recalled(n, f"{LINE} {n}") for n in range(10)]
    _, budget = fit(LONG, window=200, reserve=0, count=words, memories=memories)
    assert budget.memory_ids == []
    assert budget.recent == 21 * 9 + each("q")


def test_history_refills_what_the_memories_leave() -> None:
    memories = [recalled(1, "my dog is Rex")]
    _, budget = fit(LONG, window=200, reserve=0, count=words, memories=memories, memory_share=0.5)
    assert budget.memories == block_size("my dog is Rex") == 41
    # 200 - 8 - 41 = 151 left: 16 of the old messages, not only the 10 of the first pass
    assert budget.recent == 16 * 9 + each("q")
    assert budget.free == 151 - 16 * 9


def test_a_memory_of_a_message_refilled_into_the_prompt_is_left_out() -> None:
    quoted = "old message number 16 here"
    # the first pass keeps messages 20 to 29, so the memory is chosen; the refill then brings back 14 to 29
    kept, budget = fit(LONG, window=200, reserve=0, count=words, memories=[recalled(1, quoted)], memory_share=0.5)
    assert quoted in contents(kept)
    assert sum(str(m.content).count(quoted) for m in kept) == 1
    assert budget.memory_ids == []


def test_the_correction_divides_the_limit() -> None:
    _, budget = fit(HISTORY, window=1000, reserve=100, count=words, correction=2.0)
    assert budget.limit == 450
    assert budget.free == 450 - REPLY_PRIMING - sum(each(str(m.content)) for m in HISTORY)
    with pytest.raises(ContextLengthExceeded):
        fit(msgs(("user", "word " * 300)), window=600, reserve=0, count=words, correction=2.0)


def random_prompt(rng: random.Random) -> dict[str, Any]:
    """Arguments for `fit`: a random history, memories (some quoting it), window and shares."""
    vocabulary = ["cat", "dog", "rex", "tom", "fish", "walk", "park", "rain", "sun", "tea"]

    def text() -> str:
        return " ".join(rng.choices(vocabulary, k=rng.randint(0, 25)))

    pairs = [("system", text()) for _ in range(rng.randint(0, 2))]
    pairs += [(rng.choice(["user", "assistant", "tool"]), text()) for _ in range(rng.randint(0, 20))]
    pairs += [("user", text())] if rng.random() < 0.9 else []
    messages = msgs(*pairs)
    said = [str(m.content) for m in messages]
    memories = [
        recalled(n, rng.choice(said) if said and rng.random() < 0.3 else text(), created_at=rng.uniform(0, 2e9))
        for n in range(rng.randint(0, 10))
    ]
    return {
        "messages": messages,
        "window": rng.randint(10, 400),
        "reserve": rng.randint(0, 40),
        "tools": rng.choice([0, 0, 7, 30]),
        "core": rng.choice([None, ChatMessage(role="system", content=text())]),
        "memories": memories,
        "memory_share": rng.choice([0.0, 0.25, 0.5, 0.9, 1.0]),
        "correction": rng.choice([1.0, 1.0, 1.3, 2.0]),
    }


def leading(messages: list[ChatMessage]) -> int:
    """How many system messages lead."""
    return next((n for n, m in enumerate(messages) if m.role not in SYSTEM_ROLES), len(messages))


def test_the_prompt_with_memories_never_exceeds_the_budget() -> None:
    rng = random.Random(20240501)
    refused = 0
    for _ in range(200):
        arguments = random_prompt(rng)
        try:
            kept, budget = fit(**arguments, count=words)
        except ContextLengthExceeded:
            refused += 1
            messages, core = arguments["messages"], arguments["core"]
            lead = leading(messages)
            alone = messages[:lead] + messages[lead:][-1:] + ([core] if core else [])
            limit = int((arguments["window"] - arguments["reserve"]) / arguments["correction"])
            assert REPLY_PRIMING + arguments["tools"] + sum(message_tokens(words, m) for m in alone) > limit
            continue
        total = REPLY_PRIMING + arguments["tools"] + sum(message_tokens(words, m) for m in kept)
        assert total <= budget.limit
        assert budget.free == budget.limit - total
        messages = arguments["messages"]
        if leading(messages) < len(messages):
            assert kept[-1] == messages[-1]
    assert 0 < refused < 100  # both outcomes were exercised

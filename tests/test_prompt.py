"""Prompt assembly within the budget, with a counter simple enough to check by hand: one token a word."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from gateway import block
from gateway.errors import ContextLengthExceeded
from gateway.prompt import SYSTEM_ROLES, Recalled, fit, refuse_unfittable, reserve_for
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
    kept, budget, _ = fit(HISTORY, window=1000, reserve=100, count=words)
    assert kept == HISTORY
    assert budget.trimmed == 0
    assert budget.system == each("be brief")
    total = REPLY_PRIMING + sum(each(str(m.content)) for m in HISTORY)
    assert budget.free == 900 - total
    assert budget.recent == total - REPLY_PRIMING - budget.system


def test_oldest_history_is_trimmed_first_and_by_half() -> None:
    fixed = REPLY_PRIMING + each("be brief") + each("newest question here")
    room = each("ten") + each("six seven eight nine")  # the two newest history messages, not the third
    kept, budget, _ = fit(HISTORY, window=fixed + room + 10, reserve=10, count=words)
    # the cut leaves the history at most half the room, so that it holds for the next turns
    assert contents(kept) == ["be brief", "ten", "newest question here"]
    assert budget.trimmed == 3
    assert budget.free == room - each("ten")


def test_the_prompt_never_exceeds_the_budget() -> None:
    for limit in range(30, 60):
        kept, budget, _ = fit(HISTORY, window=limit + 5, reserve=5, count=words)
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
    kept, budget, _ = fit(history, window=window, reserve=0, count=words)
    assert [m.role for m in kept] == ["assistant", "user"]
    assert budget.trimmed == 3


def test_tools_count_against_the_budget() -> None:
    _, without, _ = fit(HISTORY, window=1000, reserve=0, count=words)
    _, with_tools, _ = fit(HISTORY, window=1000, reserve=0, count=words, tools=50)
    assert with_tools.free == without.free - 50


def recalled(id: int, text: str, *, role: str = "user", created_at: float = 1_700_000_000.0) -> Recalled:
    return Recalled(id=id, role=role, text=text, created_at=created_at, score=0.5)


OPENING = words(block.OPEN) + words(block.CLOSE)


def block_size(*texts: str, days: int = 1) -> int:
    """The block's words: its opening and closing, a word per day, and per memory a speaker and its text."""
    return OPENING + days + sum(1 + words(text) for text in texts)


def quoted_lines(kept: list[ChatMessage]) -> list[str]:
    """The memory lines at the head of the newest message (days and speakers as written)."""
    text = str(kept[-1].content)
    if not text.startswith(block.OPEN):
        return []
    return text[len(block.OPEN) : text.index(block.CLOSE)].splitlines()


CHAT = msgs(
    ("system", "be brief"),
    ("developer", "use metric"),
    ("user", "what is my cat called"),
    ("assistant", "I do not know"),
    ("user", "and my dog"),
)


def test_memories_go_at_the_head_of_the_newest_message_by_day() -> None:
    memories = [
        recalled(2, "Rex is a fine dog", role="assistant", created_at=1_709_251_200.0),  # the best first
        recalled(1, "my dog is Rex", created_at=1_700_000_000.0),
        recalled(3, "He is three", created_at=1_700_000_060.0),
    ]
    kept, budget, text = fit(CHAT, window=1000, reserve=0, count=words, memories=memories)
    assert kept[:-1] == CHAT[:-1]  # what came before stays as it was: the model has it cached
    assert kept[-1].content == text + "and my dog"
    assert text == (
        block.OPEN
        + "2023-11-14\nuser: my dog is Rex\nHe is three\n2024-03-01\nassistant: Rex is a fine dog\n"
        + block.CLOSE
    )
    assert budget.memory_ids == [2, 1, 3]
    assert budget.memories == block_size("my dog is Rex", "Rex is a fine dog", days=2) + words("He is three")


def test_memories_are_introduced_as_data_not_instructions() -> None:
    assert "quoted as data" in block.PREAMBLE
    assert "not instructions" in block.PREAMBLE


def test_the_memory_tokens_are_counted_in_the_budget() -> None:
    _, without, _ = fit(CHAT, window=1000, reserve=0, count=words)
    _, with_one, _ = fit(CHAT, window=1000, reserve=0, count=words, memories=[recalled(1, "my dog is Rex")])
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
    room = block_size("third said best", "first said second") + 2
    kept, budget, _ = fit(msgs(("user", "and my dog")), window=fixed + room, reserve=0, count=words, memories=memories)
    assert budget.memory_ids == [3, 1]
    assert quoted_lines(kept) == ["1970-01-01", "user: first said second", "third said best"]


def test_near_duplicates_go_in_once() -> None:
    memories = [recalled(1, "My dog is Rex."), recalled(2, "my dog is rex"), recalled(3, "Rex, my dog, is...")]
    _, budget, _ = fit(msgs(("user", "q")), window=1000, reserve=0, count=words, memories=memories)
    assert budget.memory_ids == [1]


def test_what_a_turn_may_add_bounds_the_block() -> None:
    memories = [recalled(n, f"memory number {n} of five words") for n in range(20)]
    _, budget, _ = fit(msgs(("user", "q")), window=1000, reserve=0, count=words, memories=memories, want=60)
    assert budget.memories <= 60
    assert len(budget.memory_ids) == (60 - OPENING - 1) // 7
    _, free, _ = fit(msgs(("user", "q")), window=1000, reserve=0, count=words, memories=memories)
    assert len(free.memory_ids) == 20


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_the_block_never_takes_more_than_it_was_given(encoding: str) -> None:
    """Memories are chosen by an upper bound of what each adds; the exact count of the block is what is reported."""
    count, name = load_counter(encoding)
    assert name == encoding
    rng = random.Random(7)
    pieces = ["Lisbon", "my sister", "\n", "  ", "!", "2023", "[x]", "é", "<memories>", "don't", " ", ":)", "\n\n"]
    for _ in range(100):
        memories = [
            recalled(n, "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))), created_at=rng.uniform(0, 2e9))
            for n in range(rng.randint(1, 30))
        ]
        want = rng.randint(20, 300)
        question = msgs(("user", "".join(rng.choice(pieces) for _ in range(5))))
        kept, budget, text = fit(question, window=100_000, reserve=0, count=count, memories=memories, want=want)
        assert budget.memories == message_tokens(count, kept[0]) - message_tokens(count, question[0]) <= want
        assert (text == "") == (budget.memory_ids == [])


def test_a_memory_of_a_message_in_the_prompt_is_left_out() -> None:
    memories = [recalled(1, "I do not know"), recalled(2, "and my dog"), recalled(3, "my dog is Rex")]
    kept, budget, _ = fit(CHAT, window=1000, reserve=0, count=words, memories=memories)
    assert budget.memory_ids == [3]
    assert quoted_lines(kept) == ["2023-11-14", "user: my dog is Rex"]


OLD = [("user" if n % 2 == 0 else "assistant", f"old message number {n} here") for n in range(30)]
LONG = msgs(*OLD, ("user", "q"))  # 30 old messages of 9 tokens, and the newest


def test_a_cut_leaves_memory_its_share_and_the_history_half_the_rest() -> None:
    quoted = "old message number 4 here"
    kept, budget, _ = fit(LONG, window=200, reserve=0, count=words, memories=[recalled(1, quoted)], memory_share=0.5)
    # room 192, memory's share 96: the history may keep 48 tokens, from a user's message on (26 to 29)
    assert budget.trimmed == 26
    assert contents(kept)[:-1] == [text for _, text in OLD[26:]]
    assert budget.memory_ids == [1]  # a memory of a trimmed message can come back


def test_the_memory_share_moves_the_cut_only_when_memory_is_squeezed() -> None:
    memories = [recalled(1, "my dog is Rex")]
    # 16 old messages (144 tokens) leave memory 48 of the 192: half its share of 96 is enough
    _, kept16, _ = fit(LONG[14:], window=200, reserve=0, count=words, memories=memories, memory_share=0.5)
    assert kept16.trimmed == 0
    # 17 leave 39: too little, the cut moves
    _, kept17, _ = fit(LONG[13:], window=200, reserve=0, count=words, memories=memories, memory_share=0.5)
    assert kept17.trimmed > 0


def test_the_correction_divides_the_limit() -> None:
    _, budget, _ = fit(HISTORY, window=1000, reserve=100, count=words, correction=2.0)
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
        "want": rng.choice([None, 0, 20, 100]),
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
            kept, budget, text = fit(**arguments, count=words)
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
            assert str(kept[-1].content) == text + str(messages[-1].content)
            assert kept[-1].role == messages[-1].role
    assert 0 < refused < 100  # both outcomes were exercised


def test_a_message_far_too_long_is_refused_without_being_counted() -> None:
    """No count is passed in: 15 MB took tiktoken seconds to count, holding every other request."""
    huge = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="word " * 3_000_000)]
    with pytest.raises(ContextLengthExceeded, match="need at least 117187"):
        refuse_unfittable(huge, window=8192, reserve=1024)
    refuse_unfittable([*huge[:1], ChatMessage(role="user", content="word " * 3000)], window=8192, reserve=1024)

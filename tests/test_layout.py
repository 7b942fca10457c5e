"""The prompt a model can reuse, over whole conversations: each prompt extends the one before (pure).

A small simulation of the flow without I/O: a journal of turns (the user's words, the block each got, the cut),
the two kinds of client (one that sends the whole history, one that names its conversation and sends only the
new message), recalled memories that change every turn, trims, core memory edits and tool calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgspec

from gateway import block
from gateway.branch import Earlier, place
from gateway.identity import text_of
from gateway.prompt import Recalled, fit
from gateway.protocol import ChatMessage
from gateway.tokens import REPLY_PRIMING, message_tokens

VOCABULARY = ["cat", "dog", "rex", "tom", "fish", "walk", "park", "rain", "sun", "tea", "oslo", "sister", "june"]


def words(text: str) -> int:
    return len(text.split())


@dataclass
class Conversation:
    """One conversation as a client and the journal see it."""

    full_history: bool  # the client resends everything (Open WebUI); else it sends only the new message
    rng: random.Random
    system: str = "be brief"
    core: str | None = None
    client: list[ChatMessage] = field(default_factory=list)  # what a full-history client holds
    journal: list[ChatMessage] = field(default_factory=list)  # the conversation's messages in the journal
    earlier: list[Earlier] = field(default_factory=list)  # its turns
    memories: dict[int, str] = field(default_factory=dict)  # the user's memories

    def text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(VOCABULARY, k=self.rng.randint(low, high)))

    def recalled(self) -> list[Recalled]:
        """What recall finds this turn: new memories and some seen before, best first."""
        for _ in range(self.rng.randint(0, 8)):
            self.memories[len(self.memories) + 1] = f"memory {len(self.memories) + 1} " + self.text(3, 30)
        ids = self.rng.sample(sorted(self.memories), min(len(self.memories), 12))
        return [Recalled(id=i, role="user", text=self.memories[i], created_at=i * 3e4, score=0) for i in ids]

    def request(self, newest: ChatMessage) -> tuple[list[ChatMessage], int]:
        head = [ChatMessage(role="system", content=self.system)]
        if self.full_history:
            return [*head, *self.client, newest], 0
        return [*head, *self.journal, newest], 0

    def answered(self, newest: ChatMessage, answer: ChatMessage, text: str, ids: list[int], *where: int) -> None:
        self.client += [newest, answer]
        if newest.role == "user":
            self.journal += [newest, answer]
            cut, bare = where
            turn = len(self.earlier) + 1
            self.earlier.append(
                Earlier(
                    question=text_of(newest),
                    turn=turn,
                    blocked=bool(text),
                    block=text,
                    injected=ids,
                    cut=cut,
                    bare=bare,
                )
            )


def turn(conv: Conversation, window: int, want: int | None) -> tuple[list[ChatMessage], tuple[int, int], bool]:
    """One turn: the prompt sent, where its history starts and its blocks, and whether core memory was edited."""
    edited = conv.rng.random() < 0.05
    if edited:
        conv.core = conv.text(1, 20)
    tool_turn = conv.full_history and conv.client and conv.rng.random() < 0.15
    if tool_turn:  # the model called a tool; the client sends its result
        call = {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
        conv.client.append(msgspec.convert({"role": "assistant", "content": None, "tool_calls": [call]}, ChatMessage))
        newest = msgspec.convert({"role": "tool", "tool_call_id": "c1", "content": conv.text(1, 40)}, ChatMessage)
    else:
        newest = ChatMessage(role="user", content=conv.text(1, 30))
    messages, skipped = conv.request(newest)
    placed = place(messages, conv.earlier, skipped)
    core = ChatMessage(role="system", content=conv.core) if conv.core else None
    kept, budget, text = fit(
        messages,
        window=window,
        reserve=50,
        count=words,
        core=core,
        memories=conv.recalled() if newest.role == "user" else [],
        memory_share=0.5,
        placed=placed,
        want=want,
    )
    assert REPLY_PRIMING + sum(message_tokens(words, m) for m in kept) + budget.free == budget.limit
    assert budget.free >= 0
    if want is not None:
        assert budget.memories <= want
    answer = ChatMessage(role="assistant", content=conv.text(5, 60))
    conv.answered(newest, answer, text, budget.memory_ids, budget.trimmed, budget.bare)
    return kept, (budget.trimmed, budget.bare), edited


def up_to_newest_user_message(prompt: list[ChatMessage]) -> list[ChatMessage]:
    last = max(n for n, m in enumerate(prompt) if m.role in ("user", "tool"))
    return prompt[: last + 1]


def test_each_prompt_extends_the_one_before_but_at_a_trim_or_a_core_edit() -> None:
    rng = random.Random(11)
    turns = trims = 0
    for case in range(24):
        conv = Conversation(full_history=case % 2 == 0, rng=rng)
        window = rng.choice([600, 1200, 2500])
        want = rng.choice([None, window // 10, window // 6])
        before: list[ChatMessage] | None = None
        cut_before = (0, 0)
        for _ in range(40):
            prompt, cut, edited = turn(conv, window, want)
            if before is not None and cut == cut_before and not edited:
                kept = up_to_newest_user_message(before)
                assert prompt[: len(kept)] == kept
            trims += cut != cut_before
            turns += 1
            before, cut_before = prompt, cut
    assert trims > 0  # the windows were small enough to trim
    assert trims < turns / 3, trims  # and the cut held still most of the time (each turn adds 10-20% here)


def test_memories_come_back_where_they_were_put_and_never_twice() -> None:
    rng = random.Random(5)
    for full_history in (True, False):
        conv = Conversation(full_history=full_history, rng=rng)
        for _ in range(30):
            prompt, _, _ = turn(conv, 100_000, None)
            quoted = [line for m in prompt for line in str(m.content or "").splitlines() if line.startswith("memory ")]
            ids = [line.split()[1] for line in quoted]
            assert len(ids) == len(set(ids))  # no memory twice in a prompt
        # every turn's block is at the head of its own user message, byte for byte
        sent = {text_of(m) for m in prompt if m.role == "user"}
        for e in conv.earlier[:-1]:
            assert e.block + e.question in sent


def test_a_regenerated_answer_gets_the_same_block_again() -> None:
    conv = Conversation(full_history=True, rng=random.Random(3))
    for _ in range(3):
        turn(conv, 100_000, None)
    question = conv.client[-2]
    del conv.client[-2:]  # the client drops the answer and asks again
    messages, _ = conv.request(question)
    placed = place(messages, conv.earlier, 0)
    assert placed.again == conv.earlier[-1]
    _, budget, text = fit(messages, window=100_000, reserve=0, count=words, placed=placed, memory_share=0.5)
    assert text == conv.earlier[-1].block
    assert budget.memory_ids == conv.earlier[-1].injected


def test_a_history_edited_before_the_cut_starts_again_from_its_beginning() -> None:
    conv = Conversation(full_history=True, rng=random.Random(8))
    for _ in range(30):
        turn(conv, 700, 70)
    assert conv.earlier[-1].cut > 0
    conv.client = conv.client[:2]  # the user edited their second message: the branch is short again
    messages, _ = conv.request(ChatMessage(role="user", content="an edited question"))
    placed = place(messages, conv.earlier, 0)
    _, budget, _ = fit(messages, window=700, reserve=50, count=words, placed=placed)
    assert budget.trimmed == 0


def test_the_block_is_written_with_its_own_words() -> None:
    memories = [Recalled(id=1, role="user", text="we fly to Oslo", created_at=0, score=1, name="Ann")]
    text, chosen = block.choose(memories, 1000, words)
    assert chosen == memories
    assert text == block.OPEN + "1970-01-01\nAnn: we fly to Oslo\n" + block.CLOSE


def test_a_memory_too_long_for_the_room_is_passed_over_without_counting_it() -> None:
    """No token is longer than 128 characters, so 64,000 characters are at least 500 tokens."""
    counted: list[int] = []

    def count(text: str) -> int:
        counted.append(len(text))
        return words(text)

    huge = Recalled(id=1, role="user", text="oslo " * 12_800, created_at=0, score=1)
    small = Recalled(id=2, role="user", text="we fly to Oslo", created_at=0, score=0.5)
    _, chosen = block.choose([huge, small], 300, count)  # at least 500: not counted at all
    assert chosen == [small]
    assert max(counted) < 1_000

    counted.clear()  # 12,800 words: counting its head tells it cannot fit in 3,000
    _, chosen = block.choose([huge, small], 3_000, count)
    assert chosen == [small]
    assert 0 < max(counted) < 30_000
    assert block.choose([huge], 13_000, count)[1] == [huge]


def test_a_lone_question_asked_again_is_a_regenerate_only_in_a_named_conversation() -> None:
    """Without a name the conversation is a fingerprint of its first message: the same question another day."""
    asked = [ChatMessage(role="user", content="what is new?")]
    earlier = [Earlier(question="what is new?", turn=7, blocked=True)]
    assert place(asked, earlier, named=True).again == earlier[0]
    assert place(asked, earlier, named=False).again is None
    assert place(asked, earlier, named=True).loading() == {7}
    placed = place(asked, earlier).loaded({7: ("<memories>\nx\n</memories>\n\n", [3])})
    assert placed.again is not None
    assert (placed.again.block, placed.again.injected) == ("<memories>\nx\n</memories>\n\n", [3])

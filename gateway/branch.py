"""The branch of a conversation the user is on: which of the journal's turns the request's history holds (pure).

A client such as Open WebUI sends the whole branch the user is on. Its user messages are matched, in order, to
the conversation's turns in the journal, by their words (and, between turns asking the same, by the answer
that followed). What that fixes:
- the memory block each earlier turn got, to be placed again byte for byte (the model has it cached), and
  where the history starts (the cut the last turn's prompt made);
- a regenerate: the newest message asks again what the turn after the matched ones asked;
- the turns the user left: after the first matched turn, those the branch skips (an answer regenerated, an
  edited question and everything after it), and the answers to its question just before it that the branch
  did not keep (another model's, when several answered); in a conversation the client named, a lone message leaves them
  all (an edited or regenerated first message). Memory follows the branch: the journal keeps them, marked,
  and recall leaves them out; a turn the user goes back to is on the branch again;
- a continued answer (the request ends with the assistant's partial answer): the turn it completes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from msgspec import Struct, structs

from gateway.identity import text_of, words_of
from gateway.protocol import ChatMessage

SYSTEM_ROLES = ("system", "developer")


class Earlier(Struct, frozen=True, kw_only=True):
    """An earlier turn of this conversation as the journal holds it: the user's words and what they got."""

    question: str
    turn: int = 0  # its id in the journal
    blocked: bool = False  # it got a memory block
    block: str = ""  # that block, once loaded (only blocks still to be placed are)
    injected: list[int] = []  # the memories in that block
    cut: int = 0  # conversation messages the prompt of that turn left out
    bare: int = 0  # conversation messages before which that turn's prompt placed no block again
    answer: str = ""
    replaced: bool = False  # the user left it (a regenerate, an edit)
    messages: tuple[int, ...] = ()  # the ids of its question and answer


class Placed(Struct):
    """What earlier turns fixed in this prompt: their blocks by message index, and the cut to keep; and the
    turns the branch leaves, takes back, or continues."""

    blocks: dict[int, Earlier]
    first: int  # index of the oldest history message to keep, if it still fits
    bare: int  # index of the first history message whose block is placed again (a trim lets older ones go)
    again: Earlier | None = None  # the newest message repeats the turn after the last placed (a regenerate)
    leaving: list[Earlier] = []  # turns on the branch until now that this one is not on
    returning: list[Earlier] = []  # turns left before that this branch holds again
    continued: Earlier | None = None  # the turn whose answer the request continues

    def loading(self) -> set[int]:
        """The journal turns whose blocks this prompt places: from `bare` on, and a regenerated or continued
        one's."""
        more = [e.turn for e in (self.again, self.continued) if e is not None]
        return {e.turn for i, e in self.blocks.items() if i >= self.bare} | set(more)

    def loaded(self, blocks: Mapping[int, tuple[str, list[int]]]) -> Placed:
        """With the blocks' text and memories, from the journal by turn."""

        def filled(e: Earlier | None) -> Earlier | None:
            if e is None or e.turn not in blocks:
                return None
            text, injected = blocks[e.turn]
            return structs.replace(e, block=text, injected=injected)

        with_text = {i: e for i, e in ((i, filled(e)) for i, e in self.blocks.items()) if e is not None}
        return structs.replace(
            self, blocks=with_text, again=filled(self.again), continued=filled(self.continued) or self.continued
        )

    def left(self) -> list[int]:
        """The ids of the messages of the turns this branch leaves (recall must not bring them back)."""
        return [id for e in self.leaving for id in e.messages]


def place(
    messages: Sequence[ChatMessage],
    earlier: Sequence[Earlier],
    skipped: int = 0,
    *,
    named: bool = True,
) -> Placed:
    """Match the history's user messages to the journal's turns, in order, by their words.

    `skipped`: conversation messages before `messages` that the caller did not load (its cut is counted
    from the conversation's start). User messages are compared by the user's own words (without what a front
    end wrapped them in). A lone message that repeats the conversation's first is taken for a regenerate, and leaves
    the conversation's turns, only in a conversation the client named: without a name, it may be the same
    question asked again another day."""
    lead = leading_system(messages)
    blocks: dict[int, Earlier] = {}
    matched: dict[int, int] = {}  # history message -> its turn
    for i in range(lead, len(messages) - 1):
        if messages[i].role != "user":
            continue
        start = max(matched.values()) + 1 if matched else 0
        k = _match(words_of(messages[i]), _answer(messages, i), earlier, start)
        if k is not None:
            matched[i] = k
            if earlier[k].blocked:
                blocks[i] = earlier[k]
    on = list(matched.values())
    at = on[-1] + 1 if on else 0
    newest = messages[-1] if messages else None
    again = continued = None
    if newest is not None and newest.role == "user" and at < len(earlier) and (at or named):
        again = earlier[at] if earlier[at].question == words_of(newest) and earlier[at].blocked else None
    if newest is not None and newest.role == "assistant" and _last_user(messages) in matched:
        continued = earlier[matched[_last_user(messages)]]
    lone = not any(m.role == "user" for m in messages[lead:-1])
    stay = set(on)
    if on:
        off = [k for k in range(on[0], len(earlier)) if k not in stay]
        k = on[0] - 1  # the same question answered again just before (by another model, or regenerated)
        while k >= 0 and earlier[k].question == earlier[on[0]].question:
            off.append(k)
            k -= 1
    else:
        off = list(range(len(earlier))) if lone and named else []
    last = again or (earlier[on[-1]] if on else earlier[-1] if earlier else None)
    return Placed(
        blocks,
        lead + max(0, last.cut - skipped) if last else lead,
        lead + max(0, last.bare - skipped) if last else lead,
        again,
        leaving=[earlier[k] for k in off if not earlier[k].replaced],
        returning=[earlier[k] for k in on if earlier[k].replaced],
        continued=continued,
    )


def _match(words: str, answer: str | None, earlier: Sequence[Earlier], start: int) -> int | None:
    """The first turn from `start` that asked `words`: the one that got `answer` if several did, else the
    first one still on the branch."""
    asked = [k for k in range(start, len(earlier)) if earlier[k].question == words]
    if answer is not None:
        said = answer.strip()
        for k in asked:
            if earlier[k].answer.strip() == said:
                return k
    return next((k for k in asked if not earlier[k].replaced), asked[0] if asked else None)


def _answer(messages: Sequence[ChatMessage], i: int) -> str | None:
    """The assistant's answer that follows message `i`, if it is the next message."""
    following = messages[i + 1] if i + 1 < len(messages) else None
    return text_of(following) if following is not None and following.role == "assistant" else None


def _last_user(messages: Sequence[ChatMessage]) -> int:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), -1)


def leading_system(messages: Sequence[ChatMessage]) -> int:
    lead = 0
    while lead < len(messages) and messages[lead].role in SYSTEM_ROLES:
        lead += 1
    return lead

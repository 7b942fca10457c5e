"""Assemble the messages sent to the model within its token budget, as a prompt the model can reuse (pure).

A local model re-reads its prompt from the first token that differs from the one it read last, so within a
conversation the prompt only grows at its end: the client's leading system prompt and core memory first
(they change only when edited), then the conversation in order, each earlier user message with the memory
block it got on its own turn, byte for byte, and the memories recalled now at the head of the newest user
message. (Ollama's templates gather every `system` message into one block at the top, so a system message of
memories would change the top of the prompt on every turn.) The journal keeps the user's words without it.

Budget = context window - completion reserve (the request's max tokens, else `reserve_completion`), divided by
the model's count correction. The system prompt, core memory and the newest message always go: a single
message that cannot fit is refused, never silently cut. The history is trimmed from its oldest end at a cut
that holds still: it moves only when memory would be left less than half of its part, and then lets go of the
earlier turns' memory blocks first (the conversation itself matters more), then of the oldest messages until
the history takes half of what it may use, so the new prompt holds for several turns. New memories fill the
room left, up to what the turn may add (`want`, from the time the model may spend reading them), best first,
leaving out those already in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from gateway import block
from gateway.block import Recalled
from gateway.branch import SYSTEM_ROLES, Placed, leading_system
from gateway.errors import ContextLengthExceeded
from gateway.identity import text_of
from gateway.protocol import ChatMessage, TextContentPart
from gateway.tokens import LONGEST_TOKEN, REPLY_PRIMING, Count, message_tokens

CORE_PREAMBLE = "Core memory: what is known about this user and this assistant, kept up to date by the gateway."
KEEP = 0.5  # a moving cut keeps the history within this share of the room it may use

__all__ = ["SYSTEM_ROLES", "Budget", "Recalled", "fit", "leading_system"]


class Budget(Struct):
    """Where the tokens of one prompt went."""

    window: int
    reserve: int
    limit: int
    system: int
    tools: int
    recent: int  # the conversation: history (with its memory blocks) and the newest message
    free: int
    trimmed: int  # history messages left out, oldest first
    bare: int = 0  # history messages whose earlier memory blocks were let go (the trimmed ones too)
    core: int = 0
    memories: int = 0  # the memory block added to the newest message
    placed: int = 0  # memory blocks of earlier turns, kept where they were (part of `recent`)
    fresh: int = 0  # tokens after the longest prefix the model has cached (set by the caller)
    memory_ids: list[int] = []  # the recalled memories that went in now


def refuse_unfittable(messages: Sequence[ChatMessage], *, window: int, reserve: int) -> None:
    """Refuse at once a request whose system prompt and newest message cannot fit, whatever they count to: no
    token of our encodings is longer than `LONGEST_TOKEN` characters, so a 15 MB message is refused without
    counting it (which took seconds, holding every other request)."""
    lead = leading_system(messages)
    fixed = [*messages[:lead], *messages[lead:][-1:]]
    fewest = sum(len(text_of(m)) for m in fixed) // LONGEST_TOKEN
    if fewest > 2 * (window - reserve):  # twice: far past any count correction the gateway may have learnt
        raise ContextLengthExceeded(window=window, reserve=reserve, needed=fewest, at_least=True)


def reserve_for(max_tokens: int | None, default: int) -> int:
    return max_tokens if max_tokens is not None else default


def fit(
    messages: list[ChatMessage],
    *,
    window: int,
    reserve: int,
    count: Count,
    tools: int = 0,
    core: ChatMessage | None = None,
    memories: Sequence[Recalled] = (),
    memory_share: float = 0.0,
    correction: float = 1.0,
    placed: Placed | None = None,
    want: int | None = None,
) -> tuple[list[ChatMessage], Budget, str]:
    """The messages to send, the budget breakdown, and the memory block added now; `memories` best first.

    `want`: the most memory tokens this turn may add (None: as many as fit)."""
    limit = int((window - reserve) / correction)
    lead = leading_system(messages)
    placed = placed or Placed({}, lead, lead)
    plain = [message_tokens(count, m) for m in messages]
    system = sum(plain[:lead])
    newest = plain[-1] if lead < len(messages) else 0
    core_size = message_tokens(count, core) if core else 0
    fixed = REPLY_PRIMING + tools + system + core_size + newest
    if fixed > limit:
        raise ContextLengthExceeded(window=window, reserve=reserve, needed=fixed)
    room = limit - fixed
    end = max(lead, len(messages) - 1)  # the history is messages[lead:end]
    share = int(room * memory_share) if memories or placed.again else 0
    owed = min(share, want if want is not None else share)  # what memory may claim from the history
    first, bare, shown = _hold_or_cut(messages, placed, plain, end, room - owed // 2, int((room - owed) * KEEP), count)
    history = sum(shown[first:end])
    kept_blocks = {i: e for i, e in placed.blocks.items() if i >= bare}
    if placed.again is not None:  # a regenerated turn gets its block again: the model has it cached
        text, chosen_ids = placed.again.block, list(placed.again.injected)
    elif lead < len(messages):
        carried = {text_of(m) for m in [*messages[:lead], *messages[first:], *([core] if core else [])]}
        injected = {id for e in kept_blocks.values() for id in e.injected}
        offered = [m for m in memories if m.id not in injected and m.text not in carried]
        text, chosen = block.choose(offered, room - history if want is None else min(want, room - history), count)
        chosen_ids = [m.id for m in chosen]
    else:
        text, chosen_ids = "", []
    last = [with_block(messages[-1], text) if text else messages[-1]] if lead < len(messages) else []
    memory_size = message_tokens(count, last[0]) - newest if text else 0
    if memory_size > room - history:  # a regenerate's old block no longer fits: leave it out
        text, chosen_ids, memory_size, last = "", [], 0, messages[-1:]

    kept_history = [
        with_block(m, kept_blocks[i].block) if i in kept_blocks else m for i, m in _span(messages, first, end)
    ]
    extra = [core] if core else []
    kept = [*messages[:lead], *extra, *kept_history, *last] if lead < len(messages) else [*messages, *extra]
    budget = Budget(
        window=window,
        reserve=reserve,
        limit=limit,
        system=system,
        tools=tools,
        recent=history + newest,
        free=room - history - memory_size,
        trimmed=first - lead,
        bare=bare - lead,
        core=core_size,
        memories=memory_size,
        placed=history - sum(plain[first:end]),
        memory_ids=chosen_ids,
    )
    return kept, budget, text


def _span(messages: Sequence[ChatMessage], start: int, stop: int) -> list[tuple[int, ChatMessage]]:
    return [(i, messages[i]) for i in range(start, stop)]


def _hold_or_cut(
    messages: Sequence[ChatMessage], placed: Placed, plain: list[int], end: int, room: int, target: int, count: Count
) -> tuple[int, int, list[int]]:
    """Where the history starts, where earlier blocks start, and each message's tokens as sent.

    The last turn's cut holds while the history fits in `room`; else the earlier blocks go, and the oldest
    messages until the history takes at most `target`."""
    lead = leading_system(messages)
    first = _at_turn(messages, placed.first if lead <= placed.first <= end else lead, end)
    bare = min(max(placed.bare, first), end)
    shown = _shown(messages, placed, bare, count)
    if sum(shown[first:end]) <= room:
        return first, bare, shown
    if sum(plain[first:end]) > target:
        first = _cut(messages, plain, first, end, target)
    return first, end, plain


def _shown(messages: Sequence[ChatMessage], placed: Placed, bare: int, count: Count) -> list[int]:
    """The tokens of each message as sent: the user messages from `bare` on with their earlier blocks."""
    return [
        message_tokens(count, with_block(m, placed.blocks[i].block) if i in placed.blocks and i >= bare else m)
        for i, m in enumerate(messages)
    ]


def _at_turn(messages: Sequence[ChatMessage], first: int, end: int) -> int:
    """The history starts at a user message (never at a tool result whose call was trimmed)."""
    start = first
    while first < end and messages[first].role != "user":
        first += 1
    if first == end:  # no user message left: at least not at an orphaned tool result
        first = start
        while first < end and messages[first].role == "tool":
            first += 1
    return first


def _cut(messages: Sequence[ChatMessage], sizes: Sequence[int], first: int, end: int, target: int) -> int:
    """Move the cut forward until the history takes at most `target` tokens, to the start of a turn."""
    used = sum(sizes[first:end])
    while first < end and used > target:
        used -= sizes[first]
        first += 1
    return _at_turn(messages, first, end)


def with_block(message: ChatMessage, text: str) -> ChatMessage:
    """The message with a memory block at its head (the user's words stay as they were, after it)."""
    content = message.content
    if isinstance(content, list):
        return ChatMessage(role=message.role, content=[TextContentPart(text), *content], name=message.name)
    return ChatMessage(role=message.role, content=text + (content or ""), name=message.name)


def core_message(blocks: Sequence[tuple[str, str]]) -> ChatMessage | None:
    """Core memory: the user's named blocks (label, text), such as `human` and `persona`, always in the prompt."""
    if not blocks:
        return None
    parts = "".join(f"<{label}>\n{value}\n</{label}>\n" for label, value in blocks)
    return ChatMessage(role="system", content=CORE_PREAMBLE + "\n" + parts.rstrip("\n"))

"""A raw prompt's completion (`/api/generate`): no memory, only the window checked and Ollama asked.

Autocomplete and fill-in-the-middle send a prompt, not a conversation; Ollama would cut a prompt longer than
its window from the front without a word, so one that cannot fit is refused instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway import worker
from gateway.errors import ContextLengthExceeded
from gateway.ollama import Ollama, OllamaChatChunk
from gateway.records import TurnStatus
from gateway.relay import Framer, Relay
from gateway.tokens import LONGEST_TOKEN, Count


async def check_fits(body: dict[str, Any], count: Count, *, window: int, reserve: int) -> None:
    """Refuse a prompt (with its suffix) that leaves less than `reserve` tokens of the window for the answer."""
    text = str(body.get("prompt", "")) + str(body.get("suffix", ""))
    if len(text) // LONGEST_TOKEN > window - reserve:  # far too long, whatever it counts to
        raise ContextLengthExceeded(window=window, reserve=reserve, needed=len(text) // LONGEST_TOKEN, at_least=True)
    needed = await worker.run(len(text), lambda: count(text))
    if needed > window - reserve:
        raise ContextLengthExceeded(window=window, reserve=reserve, needed=needed)


async def generate_stream(
    ollama: Ollama, body: dict[str, Any], framer: Framer, schedule: Callable[[Awaitable[None]], None]
) -> Relay:
    return await Relay.open(ollama.generate_stream(body), framer, _forget, schedule)


async def _forget(text: str, final: OllamaChatChunk | None, status: TurnStatus) -> None:
    """A raw completion is not remembered."""

"""Heavy pure work in a worker thread, so that the event loop keeps answering everyone else.

Counting the tokens of a 16 MB chat history took over a second on the loop, and every other request waited
(tests/bench/stall.py). tiktoken lets go of the GIL while it encodes, so in a thread the loop is truly free;
pure-Python work (lexical vectors) still shares the GIL, but the loop gets it back every few milliseconds.
Small work stays on the loop, where it costs no thread hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HEAVY_CHARS = 100_000  # characters of text past which work goes to a thread: a few ms of counting


async def run(chars: int, call: Callable[[], T]) -> T:
    """`call()`, in a worker thread when it works on `chars` characters or more."""
    if chars < HEAVY_CHARS:
        return call()
    return await asyncio.to_thread(call)

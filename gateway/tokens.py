"""Counting tokens: tiktoken when its encoding loads, else a deliberately high estimate. No other I/O."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from gateway.protocol import ChatMessage, ImageContentPart, ToolDefinition

log = logging.getLogger(__name__)

Count = Callable[[str], int]

# A chat template wraps each message in role markers (Qwen: `<|im_start|>user\n … <|im_end|>\n`), and the
# model's answer is primed with a few more: counted as OpenAI counts them for its own chat models.
PER_MESSAGE = 4
REPLY_PRIMING = 3


def load_counter(encoding: str) -> tuple[Count, str]:
    """A counter and its name: the tiktoken encoding, or a bytes/3 estimate if it cannot be loaded."""
    try:
        import tiktoken

        encode = tiktoken.get_encoding(encoding).encode_ordinary
    except Exception as exc:  # offline without a cache, or an unknown name: count high rather than fail
        log.warning("tokenizer %s unavailable (%s); counting bytes/3 instead, which overestimates", encoding, exc)
        return estimate, "estimate (bytes/3)"
    return lambda text: len(encode(text)), encoding


def estimate(text: str) -> int:
    """At least as many tokens as any BPE vocabulary of ours would give for ordinary text."""
    return len(text.encode()) // 3 + 1


_json = msgspec.json.Encoder()


def message_tokens(count: Count, message: ChatMessage) -> int:
    total = PER_MESSAGE
    if isinstance(message.content, str):
        total += count(message.content)
    elif message.content:
        total += sum(count(part.text) for part in message.content if not isinstance(part, ImageContentPart))
    for call in message.tool_calls or ():
        total += count(call.function.name) + count(call.function.arguments)
    if message.reasoning_content:
        total += count(message.reasoning_content)
    if message.name:
        total += count(message.name)
    return total


def tools_tokens(count: Count, tools: list[ToolDefinition] | None) -> int:
    """The tool schemas go into the prompt too (the template renders them into the system turn)."""
    return count(_json.encode(tools).decode()) if tools else 0

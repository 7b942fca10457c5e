"""Token counting."""

from __future__ import annotations

import msgspec

from gateway.protocol import ChatMessage, ToolDefinition
from gateway.tokens import PER_MESSAGE, estimate, load_counter, message_tokens, tools_tokens


def test_tiktoken_counts_and_ignores_special_token_text() -> None:
    count, name = load_counter("cl100k_base")
    assert name == "cl100k_base"
    assert count("hello world") == 2
    assert count("<|endoftext|>") > 1  # user text is never read as a special token


def test_unknown_encoding_falls_back_to_a_high_estimate() -> None:
    count, name = load_counter("no-such-encoding")
    assert name == "estimate (bytes/3)"
    assert count is estimate
    real, _ = load_counter("cl100k_base")
    for text in ("hello world", "The quick brown fox jumps over the lazy dog.", "déjà vu, naïve café"):
        assert estimate(text) >= real(text)


def test_message_parts_are_all_counted() -> None:
    count, _ = load_counter("cl100k_base")
    message = msgspec.convert(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "data:,x"}}],
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
        },
        ChatMessage,
    )
    assert message_tokens(count, message) == PER_MESSAGE + count("hello") + count("lookup") + count('{"q": 1}')
    tools = [msgspec.convert({"type": "function", "function": {"name": "lookup"}}, ToolDefinition)]
    assert tools_tokens(count, tools) > 0
    assert tools_tokens(count, None) == 0

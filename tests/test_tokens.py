"""Token counting."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway import tokens
from gateway.errors import InvalidRequest
from gateway.protocol import ChatMessage, ToolDefinition
from gateway.tokens import PER_MESSAGE, Calibration, cached_counts, estimate, load_counter, message_tokens, tools_tokens


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


def test_an_unseen_model_is_not_corrected() -> None:
    assert Calibration().correction("qwen3:8b") == 1.0


def test_the_correction_is_the_highest_recent_ratio_with_a_margin() -> None:
    calibration = Calibration()
    changed = [calibration.observe("qwen3:8b", 1000, theirs) for theirs in (1100, 1250, 1050)]
    assert calibration.correction("qwen3:8b") == pytest.approx(1.25 + Calibration.MARGIN)
    assert Calibration.MARGIN == 0.02
    assert changed == [True, True, False]  # only a change is worth keeping


def test_what_was_learnt_survives_a_restart() -> None:
    calibration = Calibration()
    for theirs in range(1100, 1100 + 10 * (Calibration.WINDOW + 5), 10):
        calibration.observe("qwen3:8b", 1000, theirs)
    again = Calibration(calibration.ratios)
    assert again.correction("qwen3:8b") == calibration.correction("qwen3:8b")
    assert again.ratios == calibration.ratios
    assert len(Calibration({"m": [1.5] * 100}).ratios["m"]) == Calibration.WINDOW


def test_small_prompts_are_ignored() -> None:
    calibration = Calibration()
    calibration.observe("qwen3:8b", Calibration.MIN_TOKENS - 1, 200)  # the chat template dominates it
    assert calibration.correction("qwen3:8b") == 1.0
    calibration.observe("qwen3:8b", Calibration.MIN_TOKENS, 2 * Calibration.MIN_TOKENS)
    assert calibration.correction("qwen3:8b") == pytest.approx(2.02)


def test_counts_no_higher_than_ours_are_ignored() -> None:
    calibration = Calibration()
    calibration.observe("qwen3:8b", 1000, 300)  # Ollama counts only what its cache did not hold
    calibration.observe("qwen3:8b", 1000, 1000)
    assert calibration.correction("qwen3:8b") == 1.0


def test_old_ratios_are_forgotten() -> None:
    calibration = Calibration()
    calibration.observe("qwen3:8b", 1000, 1500)
    for _ in range(Calibration.WINDOW - 1):
        calibration.observe("qwen3:8b", 1000, 1100)
    assert calibration.correction("qwen3:8b") == pytest.approx(1.52)
    calibration.observe("qwen3:8b", 1000, 1100)
    assert calibration.correction("qwen3:8b") == pytest.approx(1.12)


def test_each_model_is_calibrated_on_its_own() -> None:
    calibration = Calibration()
    calibration.observe("qwen3:8b", 1000, 1300)
    calibration.observe("llama3.2", 1000, 1100)
    assert calibration.correction("qwen3:8b") == pytest.approx(1.32)
    assert calibration.correction("llama3.2") == pytest.approx(1.12)
    assert calibration.correction("gemma3") == 1.0


def test_counts_of_short_texts_are_kept_and_of_long_ones_not() -> None:
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return len(text.split())

    cached = cached_counts(count, entries=4, longest=100)
    assert cached("a memory recalled often") == 4
    assert cached("a memory recalled often") == 4
    assert counted == ["a memory recalled often"]  # counted once
    long = "word " * 24  # 120 characters: counted every time, never kept
    assert (cached(long), cached(long)) == (24, 24)
    assert counted.count(long) == 2
    for n in range(4):  # the oldest goes when more come than are kept
        cached(f"one-off text number {n}")
    cached("a memory recalled often")
    assert counted.count("a memory recalled often") == 2


def test_token_ids_decode_with_the_encoding_of_the_model_that_made_them() -> None:
    assert tokens.decode_ids("text-embedding-ada-002", [[9906, 1917], "as text"]) == ["Hello world", "as text"]
    assert tokens.decode_ids("nomic-embed-text", [9906, 1917]) == ["Hello world"]  # cl100k_base, as LangChain
    assert tokens.decode_ids("gpt-4o", [[13225, 2375]]) == ["Hello world"]  # o200k_base


@pytest.mark.parametrize("given", [[[1, 10**9]], [[-1]], [[1], 2]])
def test_token_ids_that_do_not_decode_are_refused_naming_the_input(given: list[Any]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        tokens.decode_ids("nomic-embed-text", given)
    assert refused.value.param == "input"

"""What the model must read afresh, and its learnt pace (pure; one token a word)."""

from __future__ import annotations

from gateway.prefill import MIN_TOKENS, PRIOR_RATE, Prefill, segments
from gateway.protocol import ChatMessage
from gateway.tokens import PER_MESSAGE


def words(text: str) -> int:
    return len(text.split())


def chat(*contents: str, system: str = "be brief") -> list[ChatMessage]:
    roles = ["user", "assistant"]
    return [ChatMessage(role="system", content=system)] + [
        ChatMessage(role=roles[n % 2], content=text)  # type: ignore[arg-type]
        for n, text in enumerate(contents)
    ]


def test_a_prompt_that_extends_the_last_costs_its_new_end() -> None:
    prefill = Prefill()
    first = segments(chat("one two three"), 0, words)
    assert prefill.fresh("m", first, words) == 2 + 3 + 2 * PER_MESSAGE  # nothing cached yet
    prefill.record("m", first)
    second = segments(chat("one two three", "four five", "six"), 0, words)
    assert prefill.fresh("m", second, words) == 2 + 1 + 2 * PER_MESSAGE


def test_a_change_at_the_top_costs_everything_after_it() -> None:
    prefill = Prefill()
    prefill.record("m", segments(chat("one two three", "four"), 0, words))
    changed = segments(chat("one two three", "four", "five", system="be very brief"), 0, words)
    assert prefill.fresh("m", changed, words) == sum(s.tokens for s in changed) - (words("system\nbe ") - 1)


def test_a_system_message_anywhere_is_part_of_the_top() -> None:
    """Ollama's templates gather every system message into one block at the top."""
    messages = chat("one two three", "four")
    prefill = Prefill()
    prefill.record("m", segments(messages, 0, words))
    memories = [*messages, ChatMessage(role="system", content="recalled things"), ChatMessage(role="user", content="q")]
    later = segments(memories, 0, words)
    assert prefill.fresh("m", later, words) == sum(s.tokens for s in later) - (words("system\nbe brief") - 1)


def test_a_message_that_changed_at_its_end_keeps_its_common_start() -> None:
    prefill = Prefill()
    prefill.record("m", segments(chat("alpha beta gamma delta"), 0, words))
    changed = segments(chat("alpha beta gamma epsilon"), 0, words)
    # the system block and "user\nalpha beta gamma" are cached, less the token the difference splits
    cached = changed[0].tokens + words("user\nalpha beta gamma ") - 1
    assert prefill.fresh("m", changed, words) == sum(s.tokens for s in changed) - cached


def test_each_model_has_its_own_slots() -> None:
    a, b = segments(chat("one", system="a"), 0, words), segments(chat("two", system="b"), 0, words)
    one = Prefill(slots=1)
    one.record("m", a)
    one.record("m", b)
    two = Prefill(slots=2)
    two.record("m", a)
    two.record("m", b)
    grown = segments(chat("one", "more", system="a"), 0, words)
    assert one.fresh("m", grown, words) > two.fresh("m", grown, words)
    assert one.fresh("other", grown, words) == sum(s.tokens for s in grown)


def test_a_slot_that_shares_the_prompt_is_the_one_replaced() -> None:
    prefill = Prefill(slots=2)
    a, b = segments(chat("one", system="a"), 0, words), segments(chat("two", system="b"), 0, words)
    prefill.record("m", a)
    prefill.record("m", b)
    prefill.record("m", segments(chat("one", "more", system="a"), 0, words))  # a grew: b is still cached
    assert prefill.fresh("m", b, words) == 1


def test_the_pace_is_learnt_from_long_enough_evaluations() -> None:
    prefill = Prefill()
    assert prefill.allowance("m", 1500) == int(PRIOR_RATE * 1.5)
    assert not prefill.observe("m", 100, MIN_TOKENS - 1, 100, 1_000_000)  # too short to tell
    assert prefill.rate("m") is None
    assert prefill.observe("m", 3000, 2000, 3000, 2_000_000_000)  # 1,000 tokens/s
    assert prefill.rate("m") == 1000
    assert prefill.allowance("m", 1500) == 1500
    assert prefill.allowance("m", 0) is None  # no limit
    assert not prefill.observe("m", 3000, 1000, 3000, 1_010_000_000)  # moved by 0.5%: not worth keeping
    prefill.observe("m", 3000, 2000, 3000, 2_000_000_000)
    for _ in range(2):  # another client took the slot: far more was evaluated than the gateway thought
        prefill.observe("m", 3000, 100, 3000, 5_000_000_000)
    assert round(prefill.rate("m") or 0) == 990  # the median: the surprises do not sway it
    for _ in range(6):
        prefill.observe("m", 3000, 4000, 4000, 1_000_000_000)  # a faster machine
    assert (prefill.allowance("m", 1000) or 0) > 1000


def test_ollama_that_counts_only_the_evaluated_tokens_is_believed() -> None:
    """Ollama 0.2 counted only what it evaluated: fewer than the gateway thought were fresh."""
    prefill = Prefill()
    prefill.observe("m", 3000, 2000, 500, 1_000_000_000)
    assert prefill.rate("m") == 500


def test_what_was_learnt_survives_a_restart() -> None:
    prefill = Prefill()
    prefill.observe("m", 3000, 600, 3000, 1_000_000_000)
    again = Prefill(1, prefill.kept())
    assert again.rate("m") == prefill.rate("m") == 600


def test_the_paces_say_how_much_of_the_prompts_was_evaluated() -> None:
    prefill = Prefill()
    prefill.observe("m", 1000, 1000, 1000, 1_000_000_000)
    prefill.observe("m", 1000, 100, 1000, 100_000_000)
    pace = prefill.paces()["m"]
    assert (pace.rate, pace.observed, pace.sent, pace.evaluated, pace.evaluated_share) == (1000, 2, 2000, 1100, 0.55)
    assert (pace.reported, pace.seconds) == (2000, 1.1)

"""Counting tokens: tiktoken when its encoding loads, else a deliberately high estimate. No other I/O."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import msgspec
import tiktoken

from gateway.errors import InvalidRequest
from gateway.protocol import ChatMessage, ImageContentPart, ToolDefinition

log = logging.getLogger(__name__)

Count = Callable[[str], int]

# A chat template wraps each message in role markers (Qwen: `<|im_start|>user\n … <|im_end|>\n`), and the
# model's answer is primed with a few more: counted as OpenAI counts them for its own chat models.
PER_MESSAGE = 4
REPLY_PRIMING = 3
CACHED_TEXTS = 1 << 16  # texts whose token counts are kept
LONGEST_CACHED = 2_000  # characters: a longer text is counted each time it comes
LONGEST_TOKEN = 128  # characters: the longest token of cl100k_base and o200k_base is 128 bytes


def load_counter(encoding: str) -> tuple[Count, str]:
    """A counter and its name: the tiktoken encoding, or a bytes/3 estimate if it cannot be loaded."""
    try:
        encode = tiktoken.get_encoding(encoding).encode_ordinary
    except Exception as exc:  # offline without a cache, or an unknown name: count high rather than fail
        log.warning("tokenizer %s unavailable (%s); counting bytes/3 instead, which overestimates", encoding, exc)
        return estimate, "estimate (bytes/3)"

    return cached_counts(lambda text: len(encode(text))), encoding


def cached_counts(count: Count, entries: int = CACHED_TEXTS, longest: int = LONGEST_CACHED) -> Count:
    """`count`, remembering the counts of recent texts no longer than `longest` characters (recalled memories
    and a chat's history come back request after request). Each request also brings a text seen once, its
    newest message with its memory block (several KB): 65,536 of those, kept, grew the process by hundreds of
    MB (tests/bench/soak.py), so a longer text is counted each time it comes."""

    @functools.lru_cache(maxsize=entries)
    def remembered(text: str) -> int:
        return count(text)

    def counted(text: str) -> int:
        return remembered(text) if len(text) <= longest else count(text)

    return counted


FALLBACK_ENCODING = "cl100k_base"  # what LangChain's OpenAIEmbeddings uses for a model tiktoken does not know


def decode_ids(model: str, inputs: Sequence[str | int | list[int]]) -> list[str]:
    """Embedding inputs as texts: token ids (one list, or a list of lists) decoded with the encoding the client
    made them with, as LangChain's `OpenAIEmbeddings` does: tiktoken's for `model`, else cl100k_base."""
    if all(isinstance(item, int) for item in inputs):
        inputs = [[item for item in inputs if isinstance(item, int)]]
    encoding = _encoding_for(model)
    texts = []
    for n, item in enumerate(inputs):
        if isinstance(item, str):
            texts.append(item)
            continue
        if isinstance(item, int):
            raise InvalidRequest(f"input[{n}] mixes a token id with lists of token ids", param="input")
        bad = next((id for id in item if not 0 <= id <= encoding.max_token_value), None)
        if bad is not None:
            raise InvalidRequest(
                f"input[{n}] holds token id {bad}, which {encoding.name} (the encoding for {model!r}) does not have",
                param="input",
            )
        try:
            texts.append(encoding.decode(item))
        except KeyError as exc:  # an id inside the range that the encoding skips
            raise InvalidRequest(f"input[{n}] does not decode with {encoding.name}: {exc}", param="input") from None
    return texts


@functools.lru_cache(maxsize=8)
def _encoding_for(model: str) -> tiktoken.Encoding:
    try:
        return tiktoken.encoding_for_model(model)
    except KeyError:
        return tiktoken.get_encoding(FALLBACK_ENCODING)


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


class Calibration:
    """Per model, how many tokens Ollama counts for each of ours: budgets are divided by it.

    Our tokenizer is not the model's. After each answer, Ollama's `prompt_eval_count` is compared with our
    count of the prompt we sent. The correction is the highest recent ratio plus a safety margin, and never
    below 1, so a model whose tokenizer is hungrier than ours gets smaller budgets rather than cut prompts.
    Small prompts are ignored (the chat template dominates them), and so are lower counts: some Ollama
    versions (0.2, early 0.30) counted only the tokens they did not have cached.
    """

    MARGIN = 0.02
    MIN_TOKENS = 64
    WINDOW = 32

    def __init__(self, ratios: dict[str, list[float]] | None = None) -> None:
        """`ratios`: what `ratios` gave before, so a restart keeps what was learnt."""
        self._ratios = {model: seen[-self.WINDOW :] for model, seen in (ratios or {}).items() if seen}

    @property
    def ratios(self) -> dict[str, list[float]]:
        return self._ratios

    def observe(self, model: str, ours: int, theirs: int) -> bool:
        """Learn from one answer; True when the model's correction changed (worth keeping)."""
        if ours < self.MIN_TOKENS or theirs <= ours:
            return False
        before = self.correction(model)
        ratios = self._ratios.setdefault(model, [])
        ratios.append(theirs / ours)
        del ratios[: -self.WINDOW]
        return self.correction(model) != before

    def correction(self, model: str) -> float:
        ratios = self._ratios.get(model)
        return max(ratios) + self.MARGIN if ratios else 1.0

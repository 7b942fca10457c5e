"""What the model must read afresh, and how fast it reads (pure: counting is passed in).

Ollama keeps, per model, the prompts its slots evaluated last (one slot unless `OLLAMA_NUM_PARALLEL` says
more) and reuses the longest one that starts the new prompt, up to the first token that differs. The gateway
keeps what it sent the same way, so it can tell how many tokens a prompt makes the model evaluate. Ollama
reports `prompt_eval_duration`, the time it spent on them; its `prompt_eval_count` is the whole prompt
(since its Go runner; Ollama 0.2 and some 0.30 releases counted only the evaluated part), so the gateway
learns each model's pace from its own count of the evaluated tokens (never more than Ollama's) over that
time, the median of recent answers, so one surprise (another client took the slot) does not sway it. The
pace sets how many memory tokens a turn may add within `[retrieval] memory_prefill_ms`.
"""

from __future__ import annotations

import os
import statistics
from collections import deque
from collections.abc import Mapping, Sequence

from msgspec import Struct

from gateway.identity import text_of
from gateway.protocol import ChatMessage
from gateway.tokens import Count, message_tokens

PRIOR_RATE = 400.0  # tokens/s assumed until a model has answered: a 4B model on a laptop's integrated GPU
MIN_TOKENS = 32  # shorter evaluations say more about Ollama's overhead than about the model's pace
WINDOW = 32  # evaluations a rate is learnt from
MOVED = 0.05  # a rate that moved this much is worth keeping across restarts
SIMILAR = 0.1  # llama.cpp's --slot-prompt-similarity: a slot sharing less of a prompt is not chosen for it


class Segment(Struct, frozen=True):
    """A part of the prompt as the model's template lays it out, and its tokens."""

    text: str
    tokens: int


class Pace(Struct):
    """A model's learnt prompt-evaluation rate, and how much of what it was sent it had to evaluate."""

    rate: float | None  # tokens/s; None until it has evaluated MIN_TOKENS or more for one answer
    observed: int  # answers learnt from
    sent: int  # prompt tokens sent (the gateway's count)
    evaluated: int  # of those, the tokens past what the model had cached (the gateway's count)
    evaluated_share: float | None  # evaluated / sent
    reported: int  # prompt tokens Ollama reported (`prompt_eval_count`: the whole prompt, in current Ollama)
    seconds: float  # time Ollama reported evaluating prompts (`prompt_eval_duration`)


def segments(messages: Sequence[ChatMessage], tools: int, count: Count) -> list[Segment]:
    """The prompt as a template renders it: every system message in one block at the top, then the rest."""
    system = [m for m in messages if m.role in ("system", "developer")]
    top_tokens = sum(message_tokens(count, m) for m in system) + tools
    top = Segment("system\n" + "\n\n".join(text_of(m) for m in system), top_tokens)
    rest = [m for m in messages if m.role not in ("system", "developer")]
    return [top, *(Segment(f"{m.role}\n{text_of(m)}", message_tokens(count, m)) for m in rest)]


class Prefill:
    def __init__(self, slots: int = 1, kept: Mapping[str, Sequence[Sequence[int]]] | None = None) -> None:
        """`kept`: what `kept` gave before a restart: per model, its last evaluations (tokens, nanoseconds)."""
        self._slots = slots
        self._prompts: dict[str, deque[list[Segment]]] = {}
        self._seen: dict[str, deque[tuple[int, int]]] = {
            model: deque(((int(t), int(ns)) for t, ns in seen), WINDOW) for model, seen in (kept or {}).items()
        }
        self._totals: dict[str, list[int]] = {}  # model: [sent, evaluated, reported, nanoseconds]
        self._kept_rates = {model: self.rate(model) for model in self._seen}

    def fresh(self, model: str, prompt: Sequence[Segment], count: Count) -> int:
        """Tokens of `prompt` past the longest prefix it shares with a prompt the model has cached."""
        total = sum(s.tokens for s in prompt)
        shared = max((_shared(cached, prompt, count) for cached in self._prompts.get(model, ())), default=0)
        return max(1, total - shared)

    def record(self, model: str, prompt: list[Segment]) -> None:
        """The model now has `prompt` in a slot: as llama.cpp's server picks it, the one sharing the largest
        part of it if that is over a tenth, else the least recently used."""
        slots = self._prompts.setdefault(model, deque(maxlen=self._slots))
        total = sum(s.tokens for s in prompt) or 1
        shares = [sum(s.tokens for s in prompt[: _shared_segments(cached, prompt)]) / total for cached in slots]
        if shares and max(shares) > SIMILAR:
            del slots[shares.index(max(shares))]
        slots.append(prompt)  # the newest last: a full deque lets go of the least recently used

    def observe(self, model: str, sent: int, fresh: int, reported: int, duration_ns: int) -> bool:
        """Learn from one answer to a prompt of `sent` tokens, `fresh` of them not cached (the gateway's counts),
        and Ollama's `prompt_eval_count` and `prompt_eval_duration`; True when the rate moved enough to keep."""
        evaluated = min(fresh, reported) if reported else fresh
        for n, value in enumerate((sent, evaluated, reported, duration_ns)):
            self._totals.setdefault(model, [0, 0, 0, 0])[n] += value
        if evaluated < MIN_TOKENS or duration_ns <= 0:
            return False
        self._seen.setdefault(model, deque(maxlen=WINDOW)).append((evaluated, duration_ns))
        rate, before = self.rate(model), self._kept_rates.get(model)
        if before is not None and rate is not None and abs(rate - before) <= MOVED * before:
            return False
        self._kept_rates[model] = rate
        return True

    def rate(self, model: str) -> float | None:
        seen = self._seen.get(model)
        return statistics.median(tokens / ns * 1e9 for tokens, ns in seen) if seen else None

    def allowance(self, model: str, ms: float) -> int | None:
        """Memory tokens the model reads within `ms` (None: no limit)."""
        return int((self.rate(model) or PRIOR_RATE) * ms / 1000) if ms > 0 else None

    def kept(self) -> dict[str, list[list[int]]]:
        return {model: [list(pair) for pair in seen] for model, seen in self._seen.items()}

    def paces(self) -> dict[str, Pace]:
        models = sorted({*self._seen, *self._totals})
        return {model: self._pace(model) for model in models}

    def _pace(self, model: str) -> Pace:
        sent, evaluated, reported, ns = self._totals.get(model, [0, 0, 0, 0])
        rate = self.rate(model)
        share = round(min(1.0, evaluated / sent), 3) if sent else None
        seen = len(self._seen.get(model, ()))
        return Pace(round(rate, 1) if rate else None, seen, sent, evaluated, share, reported, round(ns / 1e9, 3))


def _shared_segments(cached: Sequence[Segment], prompt: Sequence[Segment]) -> int:
    n = 0
    while n < min(len(cached), len(prompt)) and cached[n].text == prompt[n].text:
        n += 1
    return n


def _shared(cached: Sequence[Segment], prompt: Sequence[Segment], count: Count) -> int:
    """Tokens at the start of `prompt` that `cached` has too: whole segments, then the common start of one."""
    n = _shared_segments(cached, prompt)
    tokens = sum(s.tokens for s in prompt[:n])
    if n < min(len(cached), len(prompt)):
        common = os.path.commonprefix([cached[n].text, prompt[n].text])  # noqa: RUF071 (of text, not paths)
        if "\n" in common:  # the same role: the common words are cached too, less the token they split
            tokens += max(0, count(common) - 1)
    return tokens

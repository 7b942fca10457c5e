"""The fake Ollama's prompt cache: a chat rendered and tokenised as Ollama would, and the slots that keep it.

Research behind it: Ollama's template.go (`collate`), its Go runner's cache.go and llama.cpp's server slots.
A chat is rendered as a qwen3-style template renders it (every `system` message gathered into one block at
the top, with the tools; consecutive messages of one role merged) and tokenised with tiktoken's cl100k_base,
each `<|im_start|>role\n` and `<|im_end|>\n` one token, which keeps the count under the gateway's own
(tokens.py) so its calibration learns nothing. A request takes the slot sharing the longest prefix (more than
a tenth of the prompt, else the least recently used) and evaluates the rest, at least one token.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from typing import Any


class PromptCache:
    """One model's KV cache: each slot holds the tokens of the last prompt it evaluated."""

    SIMILARITY = 0.1  # llama.cpp's --slot-prompt-similarity: a slot sharing less is not worth choosing

    def __init__(self, slots: int) -> None:
        self.slots: list[list[int]] = [[] for _ in range(slots)]
        self.used = [0] * slots  # when each slot was last taken
        self.clock = itertools.count(1)
        self.seen: list[tuple[int, int]] = []  # (prompt, evaluated) tokens, request by request

    def evaluate(self, prompt: list[int]) -> int:
        """Load `prompt` into the slot that shares most of it; how many of its tokens are evaluated afresh."""
        shared = [_common_prefix(tokens, prompt) for tokens in self.slots]
        best = max(shared)
        alike = [i for i, n in enumerate(shared) if n == best and n > self.SIMILARITY * len(prompt)]
        slot = min(alike or range(len(self.slots)), key=lambda i: self.used[i])
        evaluated = len(prompt) - min(shared[slot], len(prompt) - 1)  # the last token gives the logits
        self.slots[slot], self.used[slot] = prompt, next(self.clock)
        self.seen.append((len(prompt), evaluated))
        return evaluated

    def report(self) -> dict[str, Any]:
        return {
            "requests": len(self.seen),
            "prompt_tokens": sum(p for p, _ in self.seen),
            "evaluated": sum(e for _, e in self.seen),
            "seen": self.seen,
        }


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def render(request: dict[str, Any]) -> list[str | int]:
    """The prompt a qwen3-style Ollama template makes of a /api/chat body: text, and special tokens as ints.

    As Ollama's template.go `collate`: every system message's content, joined by a blank line, goes to the
    system block at the top with the tools; consecutive messages of one role (tool results aside) are merged.
    """
    system: list[str] = []
    turns: list[tuple[str, str, list[str]]] = []  # role, text, images
    for message in request.get("messages", []):
        role, text, images = message.get("role", "user"), _text(message), list(message.get("images") or [])
        if role == "system":
            system.append(text)
        if turns and turns[-1][0] == role and role != "tool":
            turns[-1] = (role, turns[-1][1] + "\n\n" + text, turns[-1][2] + images)
        else:
            turns.append((role, text, images))
    tools = [json.dumps(request["tools"], separators=(",", ":"))] if request.get("tools") else []
    top = _turn("system", "\n\n".join(system + tools), []) if system or tools else []
    rest = [piece for role, text, images in turns if role != "system" for piece in _turn(role, text, images)]
    return [*top, *rest, _special("<|im_start|>assistant\n")]


def _text(message: dict[str, Any]) -> str:
    """A message's content, then its tool calls as `name{arguments}` lines."""
    calls = [c["function"] for c in message.get("tool_calls") or []]
    lines = [f"{c['name']}{json.dumps(c.get('arguments', {}), separators=(',', ':'))}" for c in calls]
    return "\n".join([message.get("content") or "", *lines]) if lines else message.get("content") or ""


def _turn(role: str, text: str, images: list[str]) -> list[str | int]:
    """`<|im_start|>role\n` and `<|im_end|>\n` are one token each, an image one token of its own."""
    pictures = [_special("image:" + hashlib.sha256(image.encode()).hexdigest()) for image in images]
    return [_special(f"<|im_start|>{role}\n"), *pictures, text, _special("<|im_end|>\n")]


_SPECIALS: dict[str, int] = {}


def _special(name: str) -> int:
    """A token outside tiktoken's vocabulary (negative), the same for the same name."""
    return _SPECIALS.setdefault(name, -1 - len(_SPECIALS))


def prompt_tokens(request: dict[str, Any]) -> list[int]:
    return [t for piece in render(request) for t in ([piece] if isinstance(piece, int) else encode(piece))]


@functools.lru_cache(maxsize=1 << 16)  # messages come back request after request
def encode(text: str) -> tuple[int, ...]:
    return tuple(_encoding().encode_ordinary(text))


@functools.cache
def _encoding() -> Any:
    import tiktoken  # offline, it needs TIKTOKEN_CACHE_DIR (the tests and benchmarks set it)

    return tiktoken.get_encoding("cl100k_base")

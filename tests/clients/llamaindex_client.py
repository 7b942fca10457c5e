"""LlamaIndex's `OpenAILike` at its defaults against a running gateway: `python llamaindex_client.py URL`.

llama-index-llms-openai-like needs openai<3 and the project's environment has openai>=3, so this runs in an
environment of its own (tests/test_e2e_llamaindex.py makes it with `uv run --isolated --no-project --with`).
Prints one JSON object: what each call gave back, with the versions it ran with.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any

from llama_index.core.llms import ChatMessage  # type: ignore[import-not-found]
from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-not-found]

MODEL = "qwen3:4b"


def run(llm: Any, prefix: str) -> dict[str, Any]:
    """A completion, a streamed completion and a chat through `llm`, by the method LlamaIndex picks."""
    completed = llm.complete("def fib(n):")
    streamed = [chunk.delta for chunk in llm.stream_complete("def add(a, b):")]
    chatted = llm.chat([ChatMessage(role="user", content=f"hello {prefix}")])
    return {
        f"{prefix}_complete": str(completed.text),
        f"{prefix}_stream_complete": "".join(d or "" for d in streamed),
        f"{prefix}_stream_chunks": len(streamed),
        f"{prefix}_chat": str(chatted.message.content),
        f"{prefix}_chat_role": str(chatted.message.role.value),
    }


def main(url: str) -> dict[str, Any]:
    base = url.rstrip("/") + "/v1"
    plain = OpenAILike(model=MODEL, api_base=base, api_key="unused")
    chat = OpenAILike(model=MODEL, api_base=base, api_key="unused", is_chat_model=True)
    versions = {p: version(p) for p in ("llama-index-llms-openai-like", "llama-index-core", "openai")}
    chat_model = {"is_chat_model": plain.metadata.is_chat_model, "chat_is_chat_model": chat.metadata.is_chat_model}
    return {"versions": versions, **chat_model, **run(plain, "text"), **run(chat, "chat")}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=2))

"""LlamaIndex's `OpenAILike` at its defaults against a running gateway in front of the fake Ollama.

llama-index-llms-openai-like pins openai<3, which the project's environment cannot hold (it has openai>=3 for
the Agents SDK), so `tests/clients/llamaindex_client.py` runs in an isolated environment uv makes (and caches)
with a current llama-index-llms-openai-like, on this interpreter.

At its defaults `OpenAILike` is not a chat model: `complete`, `stream_complete` and even `chat` (the messages
rendered as a prompt) go to /v1/completions, and so to Ollama's /api/generate. With `is_chat_model=True` they
go to /v1/chat/completions, and so to Ollama's /api/chat.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import processes
from tests.conftest import Fake
from tests.fake_ollama import asked

SCRIPT = processes.ROOT / "tests" / "clients" / "llamaindex_client.py"
REQUIREMENT = "llama-index-llms-openai-like>=0.8.1"


def _uv() -> str:
    """uv beside this interpreter (the project's environment has it), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is not in the project's environment nor on PATH: tests/test_e2e_llamaindex.py needs it")
    return found


@pytest.fixture(scope="module")
def ran(gateway_url: str, fake_session: Fake) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the client gave back, and the bodies the fake Ollama got, in order."""
    fake_session.reset()
    command = [
        _uv(),
        "run",
        "--isolated",  # not the project's environment nor any other: its own, from uv's cache
        "--no-project",
        "--python",
        sys.executable,
        "--with",
        REQUIREMENT,
        "python",
        str(SCRIPT),
        gateway_url,
    ]
    done = subprocess.run(command, cwd=SCRIPT.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    results: dict[str, Any] = json.loads(done.stdout)
    sent = fake_session.requests()
    fake_session.reset()
    return results, sent


def _prompts(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in sent if "prompt" in r]  # /api/generate


def _chats(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in sent if "messages" in r and r.get("format") is None]  # /api/chat, not a consolidation


def test_a_current_openai_like_ran(ran: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    results, _ = ran
    major, minor = (int(part) for part in results["versions"]["llama-index-llms-openai-like"].split(".")[:2])
    assert (major, minor) >= (0, 8)
    assert int(results["versions"]["openai"].split(".")[0]) < 3  # why it needs an environment of its own
    assert results["is_chat_model"] is False  # OpenAILike's default
    assert results["chat_is_chat_model"] is True


def test_at_its_defaults_everything_is_a_completion(ran: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    results, sent = ran
    assert results["text_complete"] == "echo: def fib(n):"
    assert results["text_stream_complete"] == "echo: def add(a, b):"
    assert results["text_stream_chunks"] > 1
    # chat() renders the messages as LlamaIndex's default prompt and completes it
    assert results["text_chat"] == "echo: user: hello text\nassistant: "
    assert results["text_chat_role"] == "assistant"
    completed, streamed, chatted = _prompts(sent)
    assert completed["prompt"] == "def fib(n):"
    assert completed["stream"] is False
    assert streamed["prompt"] == "def add(a, b):"
    assert streamed["stream"] is True
    assert chatted["prompt"] == "user: hello text\nassistant: "
    assert {r["model"] for r in (completed, streamed, chatted)} == {"qwen3:4b"}
    assert not [r for r in _chats(sent) if "hello text" in json.dumps(r)]  # none of it went to /api/chat


def test_as_a_chat_model_everything_is_a_chat(ran: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    results, sent = ran
    assert results["chat_chat"] == "echo: hello chat"
    assert results["chat_chat_role"] == "assistant"
    assert results["chat_complete"] == "echo: def fib(n):"  # complete() as a one-message chat
    assert results["chat_stream_complete"] == "echo: def add(a, b):"
    assert results["chat_stream_chunks"] > 1
    said = [(r["stream"], [asked(m["content"]) for m in r["messages"] if m["role"] == "user"]) for r in _chats(sent)]
    assert said == [(False, ["def fib(n):"]), (True, ["def add(a, b):"]), (False, ["hello chat"])]
    assert {r["model"] for r in _chats(sent)} == {"qwen3:4b"}
    assert len(_prompts(sent)) == 3  # only the default OpenAILike's three calls reached /api/generate

"""Legacy completions (`/v1/completions`) through the real `openai` SDK, against a running gateway in front of
the fake Ollama: a raw prompt goes to `/api/generate` as it came, with no memory unless asked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import Fake


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_a_prompt_is_completed_by_ollamas_generate(client: openai.OpenAI, fake: Fake) -> None:
    done = client.completions.create(model="qwen3:4b", prompt="def fibonacci(n):", max_tokens=32, temperature=0.2)
    assert done.object == "text_completion"
    assert done.choices[0].text == "echo: def fibonacci(n):"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert done.usage.prompt_tokens > 0
    [sent] = fake.requests()
    assert sent["prompt"] == "def fibonacci(n):"
    assert sent["options"] == {"num_predict": 32, "temperature": 0.2, "num_ctx": 8192}
    assert sent["stream"] is False


def test_a_streamed_completion_with_a_suffix(client: openai.OpenAI, fake: Fake) -> None:
    chunks = list(
        client.completions.create(
            model="qwen3:4b",
            prompt="def add(a, b):",
            suffix="return total",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "echo: def add(a, b): return total"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert fake.requests()[-1]["suffix"] == "return total"


def test_a_raw_completion_is_neither_remembered_nor_given_memories(
    client: openai.OpenAI, fake: Fake, gateway_url: str
) -> None:
    user = {"X-User-Id": "cora"}
    httpx.post(gateway_url + "/memory/add", json={"content": "Cora keeps bees in Ghent", "user_id": "cora"})
    time.sleep(0.5)
    client.completions.create(model="qwen3:4b", prompt="Where are the bees?", extra_headers=user)
    assert fake.requests()[-1]["prompt"] == "Where are the bees?"
    found = httpx.post(gateway_url + "/memory/search", json={"query": "where are the bees", "user_id": "cora"})
    assert [r["content"] for r in found.json()["results"]] == ["Cora keeps bees in Ghent"]

    asked = client.completions.create(
        model="qwen3:4b", prompt="Where are the bees?", extra_headers={**user, "X-Memory": "on"}
    )
    assert asked.choices[0].text == "echo: Where are the bees?"
    [message] = [m for m in fake.requests()[-1]["messages"] if m["role"] == "user"]
    assert "Cora keeps bees in Ghent" in message["content"]  # memory asked for: the chat flow, with recall


def test_what_ollama_cannot_do_is_refused_by_name(client: openai.OpenAI, fake: Fake) -> None:
    for extra, param in (({"n": 2}, "n"), ({"echo": True}, "echo"), ({"logprobs": 2}, "logprobs")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.completions.create(model="qwen3:4b", prompt="x", **extra)
        assert refused.value.param == param
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model="qwen3:4b", prompt="word " * 9_000)
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x")
    assert all("prompt" not in r or r["model"] == "no-such-model" for r in fake.requests())

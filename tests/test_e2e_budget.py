"""The forwarded prompt fits the context window: long histories are trimmed, oversized messages refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import tiktoken

from tests import processes
from tests.conftest import Fake

WINDOW, RESERVE = 400, 100


@pytest.fixture(scope="module")
def small(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.gateway(
        fake_session.url,
        Path(tmp_path_factory.mktemp("data")),
        GATEWAY_MODEL_CONTEXT_WINDOW=str(WINDOW),
        GATEWAY_MODEL_RESERVE_COMPLETION=str(RESERVE),
    ) as url:
        yield url


def chat(url: str, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={"messages": messages, **extra})


def tokens_sent(messages: list[dict[str, Any]]) -> int:
    encode = tiktoken.get_encoding("cl100k_base").encode_ordinary
    return 3 + sum(4 + len(encode(m["content"])) for m in messages)


def test_a_long_history_is_trimmed_from_the_oldest_end(small: str, fake: Fake) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(40):
        history.append({"role": "user", "content": f"message number {i} about the weather in Lyon today"})
        history.append({"role": "assistant", "content": f"reply number {i}, it is mild and dry"})
    history.append({"role": "user", "content": "and tomorrow?"})
    assert chat(small, history).status_code == 200
    sent = fake.requests()[0]["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert sent[-1] == {"role": "user", "content": "and tomorrow?"}
    assert 3 < len(sent) < len(history)
    assert sent[1:] == history[len(history) - len(sent) + 1 :]  # a contiguous, newest run of the history
    assert tokens_sent(sent) <= WINDOW - RESERVE


def test_max_tokens_takes_the_place_of_the_reserve(small: str, fake: Fake) -> None:
    history = [{"role": "user", "content": f"turn {i} " + "word " * 10} for i in range(20)]
    chat(small, history, max_tokens=250)
    assert tokens_sent(fake.requests()[0]["messages"]) <= WINDOW - 250


def test_a_message_too_big_to_fit_alone_is_400(small: str, gateway_url: str) -> None:
    with (
        openai.OpenAI(base_url=small + "/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.chat.completions.create(model="qwen3:4b", messages=[{"role": "user", "content": "word " * 1000}])
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"
    assert f"{WINDOW} tokens" in caught.value.message
    # the default 8K window takes it
    assert chat(gateway_url, [{"role": "user", "content": "word " * 1000}]).status_code == 200


def test_status_reports_the_tokenizer(small: str) -> None:
    assert httpx.get(small + "/status").json()["model"]["tokenizer"] == "cl100k_base"


def test_a_model_that_counts_more_tokens_gets_smaller_budgets(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        body = {"messages": [{"role": "user", "content": "#hungry " + "tell me about lighthouses " * 40}]}
        headers = {"X-Memory": "off"}
        first = httpx.post(url + "/v1/chat/completions", json=body, headers=headers).headers
        again = httpx.post(url + "/v1/chat/completions", json=body, headers=headers).headers
    with processes.gateway(fake.url, tmp_path / "data") as url:  # the same data dir, after a restart
        restarted = httpx.post(url + "/v1/chat/completions", json=body, headers=headers).headers
    used, free = int(first["x-prompt-tokens"]), free_of(first)
    assert int(again["x-prompt-tokens"]) == used  # the same prompt, counted the same by tiktoken
    # Ollama counted about 4.6 tokens for each of ours: the room left shrinks to fit that, plus a margin
    assert free_of(again) + used < (used + free) / 4
    assert free_of(restarted) == free_of(again)  # what was learnt is kept in the journal


def free_of(headers: httpx.Headers) -> int:
    parts = dict(part.split("=") for part in headers["x-prompt-budget"].split("; "))
    return int(parts["free"])


def test_a_message_of_megabytes_is_refused_at_once(gateway_url: str) -> None:
    """Refused by its length alone: counting it would hold every other request for seconds."""
    body = {"messages": [{"role": "user", "content": "word " * 2_500_000}]}
    response = httpx.post(gateway_url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert "at least" in response.json()["error"]["message"]

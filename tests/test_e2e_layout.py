"""The prompt a model can reuse, end to end: a gateway process, the fake Ollama with its prompt cache, real chats."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import block
from tests import processes
from tests.conftest import Fake

FACTS = [
    "My sister Lena lives in Porto and teaches music.",
    "Our cat Miso is afraid of the vacuum cleaner.",
    "I am learning to play the cello since March.",
    "The garden has three apple trees and a fig.",
    "My train to Vienna leaves on the 14th at 9am.",
    "Lena plays the viola in a quartet in Porto.",
]
QUESTIONS = [
    "Where does my sister Lena live?",
    "What instrument am I learning?",
    "What is the cat afraid of?",
    "When does my train to Vienna leave?",
    "What trees grow in the garden?",
    "What does Lena play in Porto?",
]


@pytest.fixture
def gateway(fake: Fake, tmp_path: Path) -> Iterator[str]:
    httpx.put(fake.url + "/_fake/cache", json={"rate": 2000, "answer_words": 60}).raise_for_status()
    with processes.gateway(fake.url, tmp_path) as url:
        remember(url, FACTS)
        yield url


def remember(url: str, facts: list[str]) -> None:
    messages = [{"role": "user", "content": fact} for fact in facts]
    body = {"user_id": "ann", "conversations": [{"id": "before", "messages": messages}]}
    httpx.post(url + "/memory/import", json=body).raise_for_status()
    wait_indexed(url, len(facts))


def wait_indexed(url: str, count: int) -> None:
    for _ in range(400):
        memory = httpx.get(url + "/status").json()["memory"]
        if memory["indexed"] >= count and not memory["journal"]["outbox"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} memories were not indexed within 20 s")


def budget(response: httpx.Response) -> dict[str, int]:
    parts = (part.split("=") for part in response.headers["x-prompt-budget"].split("; "))
    return {key: int(value) for key, value in parts}


def chat(url: str, messages: list[dict[str, Any]], headers: dict[str, str]) -> httpx.Response:
    body = {"model": "qwen3:4b", "messages": messages}
    response = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response


def up_to_newest_user_message(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return messages[: max(n for n, m in enumerate(messages) if m["role"] == "user") + 1]


@pytest.mark.parametrize("full_history", [True, False], ids=["whole history", "named, new message only"])
def test_each_prompt_extends_the_one_before(gateway: str, fake: Fake, full_history: bool) -> None:
    headers = {"X-OpenWebUI-User-Id": "ann", "X-OpenWebUI-Chat-Id" if full_history else "X-Conversation-Id": "c1"}
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    budgets = []
    for question in QUESTIONS:
        asked = {"role": "user", "content": question}
        response = chat(gateway, [*history, asked] if full_history else [history[0], asked], headers)
        budgets.append(budget(response))
        history += [asked, response.json()["choices"][0]["message"]]
    sent = [request["messages"] for request in fake.requests()]
    assert len(sent) == len(QUESTIONS)
    for before, after in itertools.pairwise(sent):
        kept = up_to_newest_user_message(before)
        assert after[: len(kept)] == kept  # byte for byte: what the model has cached
    first = sent[0][-1]["content"]
    assert first.startswith(block.OPEN)
    assert first.endswith("</memories>\n\n" + QUESTIONS[0])
    assert str(sent[-1]).count("Lena plays the viola") == 1  # each memory once, where it was first put
    # what the model evaluated afresh: the gateway's estimate against the fake's own count
    seen = httpx.get(fake.url + "/_fake/cache").json()["models"]["qwen3:4b"]["seen"]
    for (prompt, evaluated), figures in zip(seen[1:], budgets[1:], strict=True):
        assert evaluated < prompt / 2
        assert abs(figures["fresh"] - evaluated) <= 0.25 * evaluated + 10


def test_the_journal_keeps_the_users_words_and_the_blocks_come_back(gateway: str, fake: Fake) -> None:
    headers = {"X-User-Id": "ann", "X-Conversation-Id": "c2"}
    chat(gateway, [{"role": "user", "content": QUESTIONS[0]}], headers)
    first_block = fake.requests()[-1]["messages"][-1]["content"]
    assert first_block.startswith(block.OPEN)
    assert "Porto" in first_block
    chat(gateway, [{"role": "user", "content": QUESTIONS[1]}], headers)
    second = fake.requests()[-1]["messages"]
    assert second[0]["content"] == first_block  # the first turn, with its block, as the model read it
    assert "Porto" not in second[-1]["content"]  # never injected twice
    exported = httpx.get(gateway + "/memory/export", params={"user_id": "ann"}).json()
    said = [m["content"] for c in exported["conversations"] if c["id"] == "c2" for m in c["messages"]]
    assert QUESTIONS[0] in said
    assert not any("<memories>" in s for s in said)


def test_the_pace_is_learnt_and_sizes_what_a_turn_adds(fake: Fake, tmp_path: Path) -> None:
    """100 ms of memory: 200 tokens at 2,000 tokens/s, far more on a machine 25 times faster."""
    httpx.put(fake.url + "/_fake/cache", json={"rate": 2000, "answer_words": 60}).raise_for_status()
    facts = [f"On day {n} of the trip we saw castle number {n} near the river town." for n in range(60)]
    with processes.gateway(fake.url, tmp_path, GATEWAY_RETRIEVAL_MEMORY_PREFILL_MS="100") as url:
        remember(url, facts)
        headers = {"X-User-Id": "ann", "X-Conversation-Id": "pace"}
        for n in range(4):
            response = chat(
                url, [{"role": "user", "content": f"Which castle did we see near the river? ({n})"}], headers
            )
        pace = httpx.get(url + "/status").json()["prompt_evaluation"]["qwen3:4b"]
        assert pace["rate"] == pytest.approx(2000, rel=0.2)
        assert pace["evaluated"] < pace["sent"]
        assert 0 < pace["evaluated_share"] < 1
        slow = budget(response)["memories"]
        assert 0 < slow <= 2000 * 0.1 * 1.2
        httpx.put(fake.url + "/_fake/cache", json={"rate": 50_000}).raise_for_status()
        for n in range(12):  # the window of answers learnt from moves on
            chat(url, [{"role": "user", "content": f"And which castle by the river town? ({n})"}], headers)
        question = [{"role": "user", "content": "Which castle did we see near the river?"}]
        fast = budget(chat(url, question, {**headers, "X-Conversation-Id": "fast"}))["memories"]
        assert httpx.get(url + "/status").json()["prompt_evaluation"]["qwen3:4b"]["rate"] > 10_000
        assert fast > 3 * slow


@pytest.mark.parametrize("eval_count", ["prompt", "evaluated"])
def test_the_learnt_pace_survives_a_restart(fake: Fake, tmp_path: Path, eval_count: str) -> None:
    """Current Ollama counts the whole prompt in prompt_eval_count, 0.2 only what it evaluated: same pace."""
    httpx.put(fake.url + "/_fake/cache", json={"rate": 3000, "eval_count": eval_count}).raise_for_status()
    with processes.gateway(fake.url, tmp_path) as url:
        headers = {"X-User-Id": "bo", "X-Conversation-Id": "long"}
        for n in range(3):  # the later turns find most of their prompt cached
            chat(url, [{"role": "user", "content": f"tell me more, part {n} " * 40}], headers)
        learnt = httpx.get(url + "/status").json()["prompt_evaluation"]["qwen3:4b"]["rate"]
    assert learnt == pytest.approx(3000, rel=0.2)
    with processes.gateway(fake.url, tmp_path) as url:
        kept = httpx.get(url + "/status").json()["prompt_evaluation"]["qwen3:4b"]["rate"]
    assert kept == pytest.approx(learnt, rel=0.05)  # kept whenever it moved by more than 5%


def test_a_regenerated_answer_is_asked_with_the_same_prompt(gateway: str, fake: Fake) -> None:
    headers = {"X-OpenWebUI-User-Id": "ann", "X-OpenWebUI-Chat-Id": "regenerate"}
    asked = {"role": "user", "content": QUESTIONS[0]}
    answer = chat(gateway, [asked], headers).json()["choices"][0]["message"]
    httpx.post(gateway + "/memory/add", json={"content": "Lena's quartet plays Haydn", "user_id": "ann"})
    wait_indexed(gateway, len(FACTS) + 3)  # and the first turn's two messages
    follow_up = [asked, answer, {"role": "user", "content": "What does Lena's quartet play?"}]
    chat(gateway, follow_up, headers)
    first = fake.requests()[-1]["messages"]
    assert "Lena's quartet plays Haydn" in first[-1]["content"]
    chat(gateway, follow_up, headers)  # Open WebUI's regenerate: the same branch, once more
    assert fake.requests()[-1]["messages"] == first  # the same block, though recall might find others now
    assert fake.evaluations()[-1][1] == 1  # the model has all of it cached

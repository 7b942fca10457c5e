"""The fake Ollama's prompt cache behaves as Ollama's: a prompt that grows at its end is cheap, one that changes
near its top is not. Most tests call the ASGI app in-process; one runs it as a process configured by its
environment."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from gateway import tokens, translate
from gateway.protocol import ChatMessage, ToolDefinition
from tests import processes
from tests.fake_ollama import FakeOllama
from tests.fake_prompt import prompt_tokens, render

MODEL = "qwen3:4b"
SYSTEM = "You are a careful assistant. Answer in one short paragraph, and say so when you do not know."
OTHER_SYSTEM = "Tu es un assistant prudent. Réponds en un court paragraphe."
RECALLED = "Recalled from earlier conversations: [2025-04-30 09:12] user: my sister Maud lives in Lyon"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "f"]}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture
async def ollama() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=FakeOllama())
    async with httpx.AsyncClient(transport=transport, base_url="http://ollama") as client:
        yield client


def conversation(*said: str, system: str = SYSTEM) -> list[dict[str, Any]]:
    """A system prompt, then the user's messages with the fake's echo answers between them."""
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(said):
        if i:
            messages.append({"role": "assistant", "content": f"echo: {said[i - 1]}"})
        messages.append({"role": "user", "content": text})
    return messages


async def chat(ollama: httpx.AsyncClient, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = await ollama.post("/api/chat", json={"model": MODEL, "messages": messages, "stream": False, **extra})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def seen(ollama: httpx.AsyncClient) -> list[tuple[int, int]]:
    """(prompt, evaluated) tokens of each request so far."""
    report = (await ollama.get("/_fake/cache")).json()
    return [(p, e) for p, e in report["models"][MODEL]["seen"]]


async def test_a_prompt_that_extends_the_last_evaluates_only_its_new_tail(ollama: httpx.AsyncClient) -> None:
    await chat(ollama, conversation("my sister is called Maud"))
    second = conversation("my sister is called Maud", "where does she live?")
    answer = await chat(ollama, second)
    [(first_size, first_cost), (size, cost)] = await seen(ollama)
    assert size == len(prompt_tokens({"messages": second}))
    # the first prompt ended with `<|im_start|>assistant\n`, which the second repeats before the answer
    assert (first_cost, cost) == (first_size, size - first_size)
    assert answer["prompt_eval_count"] == size  # Ollama reports the whole prompt, cached or not


async def test_a_change_near_the_top_evaluates_nearly_everything(ollama: httpx.AsyncClient) -> None:
    await chat(ollama, conversation("my sister is called Maud"))
    await chat(ollama, conversation("my sister is called Maud", "where does she live?", system="Be " + SYSTEM))
    [_, (size, cost)] = await seen(ollama)
    assert cost == size - 1  # only `<|im_start|>system\n` was shared


async def test_a_system_message_in_the_middle_goes_to_the_top_block(ollama: httpx.AsyncClient) -> None:
    """So it costs all but the system prompt; the same text in the user's message costs only the tail."""
    said = ("my sister is called Maud", "where does she live?")
    middle = conversation(*said)
    middle.insert(-1, {"role": "system", "content": RECALLED})
    assert render({"messages": middle})[1] == SYSTEM + "\n\n" + RECALLED
    in_place = conversation(said[0], RECALLED + "\n\n" + said[1])

    costs = []
    for messages in (middle, in_place):
        await ollama.delete("/_fake/requests")
        await chat(ollama, conversation(said[0]))
        await chat(ollama, messages)
        [(first_size, _), (size, cost)] = await seen(ollama)
        costs.append((cost, size, first_size))
    [(middle_cost, middle_size, _), (in_place_cost, in_place_size, first_size)] = costs
    system_tokens = len(prompt_tokens({"messages": [{"role": "system", "content": SYSTEM}]}))
    assert middle_cost >= middle_size - system_tokens
    assert in_place_cost == in_place_size - first_size


@pytest.mark.parametrize("slots", [1, 2])
async def test_two_slots_keep_two_interleaved_conversations_cheap(ollama: httpx.AsyncClient, slots: int) -> None:
    await ollama.put("/_fake/cache", json={"slots": slots})
    said = ["my sister is called Maud", "where does she live?", "and her cat?"]
    for turn in range(1, 4):
        await chat(ollama, conversation(*said[:turn]))
        await chat(ollama, conversation(*said[:turn], system=OTHER_SYSTEM))
    history = await seen(ollama)
    follow_ups = [(size, cost, history[i - 2][0]) for i, (size, cost) in enumerate(history) if i >= 2]
    if slots == 2:
        assert all(cost == size - before for size, cost, before in follow_ups)
    else:  # each conversation evicts the other: only `<|im_start|>system\n` is left in common
        assert all(cost == size - 1 for size, cost, _ in follow_ups)


async def test_the_prompt_eval_duration_follows_the_rate_without_waiting(ollama: httpx.AsyncClient) -> None:
    await ollama.put("/_fake/cache", json={"rate": 1})
    started = time.monotonic()
    answer = await chat(ollama, conversation("my sister is called Maud"))
    assert time.monotonic() - started < 2
    [(size, cost)] = await seen(ollama)
    assert answer["prompt_eval_duration"] == cost * 1_000_000_000 == size * 1_000_000_000
    assert answer["total_duration"] >= answer["prompt_eval_duration"] + answer["eval_duration"]

    await ollama.put("/_fake/cache", json={"rate": 250})
    answer = await chat(ollama, conversation("my sister is called Maud", "where does she live?"))
    [_, (_, cost)] = await seen(ollama)
    assert answer["prompt_eval_duration"] == cost * 4_000_000


async def test_an_identical_prompt_still_evaluates_one_token(ollama: httpx.AsyncClient) -> None:
    messages = conversation("my sister is called Maud")
    await chat(ollama, messages)
    answer = await chat(ollama, messages)
    [(size, _), (again, cost)] = await seen(ollama)
    assert (again, cost, answer["prompt_eval_count"]) == (size, 1, size)


async def test_the_count_can_be_of_the_evaluated_tokens_only(ollama: httpx.AsyncClient) -> None:
    await ollama.put("/_fake/cache", json={"eval_count": "evaluated"})
    await chat(ollama, conversation("my sister is called Maud"))
    answer = await chat(ollama, conversation("my sister is called Maud", "where does she live?"))
    [_, (size, cost)] = await seen(ollama)
    assert answer["prompt_eval_count"] == cost < size


async def test_a_reset_empties_the_cache(ollama: httpx.AsyncClient) -> None:
    messages = conversation("my sister is called Maud")
    await chat(ollama, messages)
    await ollama.delete("/_fake/requests")
    assert (await ollama.get("/_fake/cache")).json()["models"] == {}
    await chat(ollama, messages)
    [(size, cost)] = await seen(ollama)
    assert cost == size


async def test_answers_are_padded_to_the_words_asked_for(ollama: httpx.AsyncClient) -> None:
    await ollama.put("/_fake/cache", json={"answer_words": 120})
    answers = [(await chat(ollama, conversation("hello there")))["message"]["content"] for _ in range(2)]
    assert answers[0] == answers[1]
    assert answers[0].startswith("echo: hello there and so the story")
    assert len(answers[0].split(" ")) == 120


async def test_without_padding_the_answer_is_the_echo(ollama: httpx.AsyncClient) -> None:
    answer = await chat(ollama, conversation("hello there"))
    assert answer["message"]["content"] == "echo: hello there"
    assert answer["eval_count"] == 5  # echo : hello there <|im_end|>


def counts(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> tuple[int, int]:
    """The gateway's count of a prompt (tokens.py) and the fake's count of what the gateway sends for it."""
    count, _ = tokens.load_counter("cl100k_base")
    chat_messages = msgspec.convert(messages, list[ChatMessage])
    definitions = msgspec.convert(tools, list[ToolDefinition]) if tools else None
    gateway = sum(tokens.message_tokens(count, m) for m in chat_messages) + tokens.REPLY_PRIMING
    gateway += tokens.tools_tokens(count, definitions)
    body: dict[str, Any] = {"messages": translate.ollama_messages(chat_messages)}
    if definitions:
        body["tools"] = [msgspec.to_builtins(tool) for tool in definitions]
    return gateway, len(prompt_tokens(body))


CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg=="


@pytest.mark.parametrize(
    ("messages", "tools"),
    [
        ([{"role": "user", "content": "hello there"}], None),
        ([{"role": "user", "content": "What is the weather in Paris?"}], TOOLS),
        (
            [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"temperature": 18, "sky": "clear"}'},
            ],
            TOOLS,
        ),
        (
            [
                {"role": "system", "content": SYSTEM},
                {"role": "system", "content": "Core memory:\n<human>\nName: Ann. Sister: Maud, in Lyon.\n</human>"},
                {"role": "user", "content": "my sister is called Maud"},
                {"role": "assistant", "content": "Noted: your sister is Maud."},
                {"role": "system", "content": RECALLED + "\n[2025-04-30 09:13] user: she has a cat, Tom\n"},
                {"role": "user", "content": "where does she live?"},
                {"role": "user", "content": "and what is her cat called?"},
            ],
            None,
        ),
        (
            [
                {"role": "developer", "content": "Describe images briefly."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "image_url", "image_url": {"url": PIXEL}},
                    ],
                },
            ],
            None,
        ),
    ],
    ids=["hello", "tools", "tool-call", "memory", "image"],
)
def test_the_fake_counts_no_more_than_the_gateway(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> None:
    """Or the gateway's calibration would learn a correction from the fake and shrink every budget."""
    gateway, fake = counts(messages, tools)
    assert gateway - 3 * len(messages) - 2 <= fake <= gateway


def test_the_process_is_configured_by_its_environment() -> None:
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"FAKE_OLLAMA_SLOTS": "2", "FAKE_OLLAMA_PREFILL_RATE": "500", "FAKE_OLLAMA_ANSWER_WORDS": "30"}
    with processes.running(["tests.fake_ollama", str(port)], url + "/api/version", env):
        body = {"model": MODEL, "messages": conversation("hello there"), "stream": True}
        with httpx.stream("POST", url + "/api/chat", json=body) as response:
            chunks = [msgspec.json.decode(line) for line in response.iter_lines() if line]
        report = httpx.get(url + "/_fake/cache").json()
    [(size, cost)] = report["models"][MODEL]["seen"]
    assert (report["slots"], report["rate"], report["answer_words"]) == (2, 500, 30)
    assert len(chunks) == 31  # a word a chunk, then the counts
    assert (chunks[-1]["prompt_eval_count"], chunks[-1]["prompt_eval_duration"]) == (size, cost * 2_000_000)

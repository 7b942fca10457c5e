"""OpenAI's Responses API through the real `openai` SDK and the OpenAI Agents SDK at their defaults, against a
running gateway in front of the fake Ollama: plain, streamed, with tools, continued from the journal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Fake
from tests.fake_ollama import asked

WEATHER: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway_url + "/v1", api_key="unused", max_retries=0, default_headers={"X-User-Id": "rita"}
    ) as client:
        yield client


def test_a_response_with_instructions(client: openai.OpenAI, fake: Fake) -> None:
    response = client.responses.create(model="qwen3:4b", instructions="Be brief.", input="hello there")
    assert response.output_text == "echo: hello there"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    sent = fake.requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"] == "Be brief."
    assert client.responses.retrieve(response.id).output_text == "echo: hello there"


def test_a_streamed_response_has_every_event_the_sdk_reads(client: openai.OpenAI) -> None:
    with client.responses.stream(model="qwen3:4b", input="stream this") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "echo: stream this"
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert kinds.count("response.output_text.delta") == 3
    assert client.responses.retrieve(final.id).output_text == "echo: stream this"  # stored once streamed


def test_a_function_call_and_its_output_continued_from_the_journal(client: openai.OpenAI, fake: Fake) -> None:
    first = client.responses.create(model="qwen3:4b", input="#tool weather in Paris?", tools=WEATHER)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert call.arguments == '{"city":"Paris","unit":"celsius"}'
    assert call.call_id
    second = client.responses.create(
        model="qwen3:4b",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
        tools=WEATHER,
    )
    assert second.output_text == "echo: the tool said 18 C"
    sent = fake.requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2]["tool_name"] == "get_weather"


def test_a_conversation_continues_from_previous_response_id(client: openai.OpenAI, fake: Fake) -> None:
    first = client.responses.create(model="qwen3:4b", instructions="Be kind.", input="My cat is called Miso.")
    second = client.responses.create(model="qwen3:4b", previous_response_id=first.id, input="And my dog?")
    third = client.responses.create(model="qwen3:4b", previous_response_id=second.id, input="Their names?")
    assert third.previous_response_id == second.id
    sent = [(m["role"], asked(m["content"])) for m in fake.requests()[-1]["messages"] if m["role"] != "system"]
    assert sent == [
        ("user", "My cat is called Miso."),
        ("assistant", "echo: My cat is called Miso."),
        ("user", "And my dog?"),
        ("assistant", "echo: And my dog?"),
        ("user", "Their names?"),
    ]
    unstored = client.responses.create(model="qwen3:4b", input="forget this one", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="qwen3:4b", previous_response_id=unstored.id, input="and?")
    assert missing.value.param == "previous_response_id"
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_structured_output_reasoning_and_limits(client: openai.OpenAI, fake: Fake) -> None:
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    client.responses.create(
        model="qwen3:4b",
        input="where?",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
        max_output_tokens=50,
        reasoning={"effort": "low"},
    )
    sent = fake.requests()[-1]
    assert sent["format"] == schema
    assert sent["options"]["num_predict"] == 50
    assert sent["think"] == "low"
    thought = client.responses.create(model="qwen3:4b", input="#think about it")
    [reasoning, message] = thought.output
    assert reasoning.type == "reasoning"
    assert message.type == "message"
    assert thought.output_text == "The answer is 42."
    cut = client.responses.create(model="qwen3:4b", input="#length go on")
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


def test_what_a_local_model_cannot_do_is_refused_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as hosted:
        client.responses.create(model="qwen3:4b", input="news?", tools=[{"type": "web_search"}])
    assert hosted.value.param == "tools[0]"
    with pytest.raises(openai.BadRequestError) as empty:
        client.responses.create(model="qwen3:4b", input=[])
    assert empty.value.param == "input"


def test_a_fact_told_through_responses_is_recalled_in_a_new_conversation(
    client: openai.OpenAI, fake: Fake, gateway_url: str
) -> None:
    client.responses.create(model="qwen3:4b", input="My brother Teo builds boats in Split.")
    deadline = time.monotonic() + 20
    while httpx.get(gateway_url + "/status").json()["memory"]["journal"]["outbox"] and time.monotonic() < deadline:
        time.sleep(0.05)
    client.responses.create(model="qwen3:4b", input="What does Teo build?")
    [message] = [m for m in fake.requests()[-1]["messages"] if m["role"] == "user"]
    assert "My brother Teo builds boats in Split." in message["content"]


def test_the_agents_sdk_at_its_defaults_runs_a_tool(gateway_url: str, fake: Fake) -> None:
    from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

    set_tracing_disabled(True)  # it would post traces to OpenAI's servers
    called: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(city)
        return f"Sunny in {city}"

    async def run() -> Any:
        async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as gateway:
            set_default_openai_client(gateway, use_for_tracing=False)
            agent = Agent(name="assistant", instructions="Answer briefly.", tools=[get_weather])  # its own model
            return await Runner.run(agent, "#tool what is the weather in Paris?")

    result = asyncio.run(run())
    assert called == ["Paris"]
    assert result.final_output == "echo: the tool said Sunny in Paris"
    sent = fake.requests()[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent["model"] == "qwen3:4b"  # the SDK's default model is OpenAI's: the gateway's default answers

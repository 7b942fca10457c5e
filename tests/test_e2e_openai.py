"""The real `openai` SDK, sync and async, against a running gateway in front of the fake Ollama."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import tiktoken
from pydantic import SecretStr

from tests import processes
from tests.conftest import Fake
from tests.fake_ollama import EMBED_DIM, _vector


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def aclient(gateway_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_models_lists_what_ollama_has(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["qwen3:4b", "huihui_ai/qwen3-abliterated:4b-v2", "nomic-embed-text:latest"]


def test_chat_completion(client: openai.OpenAI, fake: Fake) -> None:
    completion = client.chat.completions.create(model="qwen3:4b", messages=user("hello there"))
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    [(prompt, _)] = fake.evaluations()  # Ollama's counts: the whole prompt, and "echo: hello there" and its end
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        prompt,
        5,
        prompt + 5,
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    [sent] = fake.requests()
    assert sent["options"]["num_ctx"] == 8192
    assert sent["stream"] is False


def test_sampling_fields_reach_ollama_as_options(client: openai.OpenAI, fake: Fake) -> None:
    client.chat.completions.create(
        model="qwen3:4b",
        messages=[{"role": "developer", "content": "Be brief."}, *user("hi")],
        max_completion_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.25,
        response_format={"type": "json_object"},
    )
    [sent] = fake.requests()
    assert sent["options"] == {
        "num_predict": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.25,
        "num_ctx": 8192,
    }
    assert sent["format"] == "json"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_streaming_with_usage(client: openai.OpenAI, fake: Fake) -> None:
    stream = client.chat.completions.create(
        model="qwen3:4b", messages=user("one two three"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    [(prompt, _)] = fake.evaluations()
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.total_tokens) == (prompt, prompt + 6)
    assert len({c.id for c in chunks}) == 1


def test_streaming_without_usage_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="qwen3:4b", messages=user("hi"), stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_async_client_streams(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model="qwen3:4b", messages=user("async works"), stream=True)
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(parts) == "echo: async works"
    completion = await aclient.chat.completions.create(model="qwen3:4b", messages=user("and plain"))
    assert completion.choices[0].message.content == "echo: and plain"


def test_tool_calls(client: openai.OpenAI, fake: Fake) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(model="qwen3:4b", messages=user("#tool weather?"), tools=tools)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris","unit":"celsius"}'
    assert fake.requests()[0]["tools"] == tools

    # the answer goes back with the tool result; Ollama gets arguments as an object and the tool's name
    follow_up: Any = [
        *user("#tool weather?"),
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    client.chat.completions.create(model="qwen3:4b", messages=follow_up, tools=tools)
    sent = fake.requests()[1]["messages"]
    assert sent[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
    ]
    assert sent[2] == {"role": "tool", "content": "18C", "tool_name": "get_weather"}


def test_streamed_tool_calls(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="qwen3:4b", messages=user("#tool"), stream=True))
    calls = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].index == 0
    assert calls[0].type == "function"
    assert calls[0].function is not None
    assert calls[0].function.arguments == '{"city":"Paris","unit":"celsius"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_thinking_is_reasoning_content(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="qwen3:4b", messages=user("#think"))
    message = completion.choices[0].message
    assert message.content == "The answer is 42."
    assert getattr(message, "reasoning_content", None) == "Let me think."

    chunks = list(client.chat.completions.create(model="qwen3:4b", messages=user("#think"), stream=True))
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks)
    assert reasoning == "Let me think."


def test_length_finish_reason(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="qwen3:4b", messages=user("#length"), max_tokens=3)
    assert completion.choices[0].finish_reason == "length"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=user("hi"))
    assert caught.value.code == "model_not_found"
    assert "ollama pull no-such-model" in caught.value.message


def test_unsupported_parameter_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen3:4b", messages=user("hi"), n=2)
    assert caught.value.param == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen3:4b", messages=user("hi"), logprobs=True)
    assert caught.value.param == "logprobs"


def test_upstream_failure_before_first_byte_is_a_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="qwen3:4b", messages=user("#fail500"), stream=True)
    assert caught.value.status_code == 502
    assert "llama runner process has terminated" in caught.value.message
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="qwen3:4b", messages=user("#busy"))
    assert caught.value.status_code == 503


def test_upstream_failure_mid_stream_is_an_error_frame(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="qwen3:4b", messages=user("#midfail"), stream=True)
    seen: list[str] = []

    def drain() -> None:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as caught:
        drain()
    assert seen == ["Partial "]
    assert "an error was encountered while running the model" in caught.value.message


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    # the SDK asks for base64 by default and decodes it itself
    result = client.embeddings.create(model="nomic-embed-text", input=["first", "second"])
    assert [e.index for e in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(_vector("first"), abs=1e-6)
    assert result.usage.prompt_tokens == 2
    floats = client.embeddings.create(model="nomic-embed-text", input="first", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(_vector("first"))
    raw = client.embeddings.with_raw_response.create(model="nomic-embed-text", input="first", encoding_format="base64")
    encoded = raw.http_response.json()["data"][0]["embedding"]
    assert struct.unpack(f"<{EMBED_DIM}f", base64.b64decode(encoded)) == pytest.approx(_vector("first"), abs=1e-6)


def test_token_ids_are_decoded_as_the_client_encoded_them(client: openai.OpenAI) -> None:
    """LangChain's `OpenAIEmbeddings()` sends token ids made with tiktoken (cl100k_base for the models it does
    not know), and names OpenAI's model: both are what the gateway's own embedding model would see as text."""
    ids = tiktoken.get_encoding("cl100k_base").encode("Hello world")
    result = client.embeddings.create(model="nomic-embed-text", input=[ids, ids[:1]], encoding_format="float")
    assert result.data[0].embedding == pytest.approx(_vector("Hello world"))
    assert result.data[1].embedding == pytest.approx(_vector("Hello"))
    one = client.embeddings.create(model="text-embedding-3-small", input=ids, encoding_format="float")
    assert one.data[0].embedding == pytest.approx(_vector("Hello world"))
    assert one.model == "nomic-embed-text"  # OpenAI's model names mean the gateway's [embedding] model


def test_langchain_openai_embeddings_at_their_defaults(gateway_url: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(base_url=gateway_url + "/v1", api_key=SecretStr("unused"), max_retries=0)
    assert embeddings.embed_query("Where does Ann live?") == pytest.approx(_vector("Where does Ann live?"))
    documents = embeddings.embed_documents(["Ann lives in Lisbon.", "Bob bakes bread."])
    assert documents[1] == pytest.approx(_vector("Bob bakes bread."))


def test_ollama_down_is_502_naming_url_and_fix(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{processes.free_port()}"
    with (
        processes.gateway(closed, tmp_path) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="qwen3:4b", messages=user("hi"))
        assert caught.value.status_code == 502
        assert closed in caught.value.message
        assert "ollama serve" in caught.value.message
        with pytest.raises(openai.InternalServerError):
            client.models.list()

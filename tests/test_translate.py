"""OpenAI <-> Ollama translation, on literal values."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest

from gateway import translate
from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.ollama import OllamaChatChunk, OllamaEmbedResponse, OllamaTags
from gateway.protocol import ChatCompletionRequest, EmbeddingRequest


def request(**fields: Any) -> ChatCompletionRequest:
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return msgspec.convert(fields, ChatCompletionRequest)


def body(**fields: Any) -> dict[str, Any]:
    return translate.chat_body(request(**fields), model="qwen3:4b", num_ctx=8192, keep_alive="5m")


def chunk(raw: str) -> OllamaChatChunk:
    return msgspec.json.decode(raw, type=OllamaChatChunk)


def test_minimal_body() -> None:
    assert body() == {
        "model": "qwen3:4b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"num_ctx": 8192},
        "keep_alive": "5m",
    }


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert body(max_tokens=10, max_completion_tokens=20)["options"]["num_predict"] == 20
    assert body(max_tokens=10)["options"]["num_predict"] == 10


def test_client_ollama_options_pass_but_num_ctx_is_ours() -> None:
    options = body(options={"num_ctx": 99999, "top_k": 20, "temperature": 1.0}, temperature=0.1)["options"]
    assert options == {"num_ctx": 8192, "top_k": 20, "temperature": 0.1}
    unknown = body(options={"min_p": 0.05, "not_an_option": 1})["options"]  # Ollama ignores unknown keys too
    assert unknown == {"min_p": 0.05, "num_ctx": 8192}


@pytest.mark.parametrize("options", [{"num_ctx": -1}, {"temperature": "hot"}, {"top_p": 2}, {"stop": "x"}])
def test_ollama_options_of_the_wrong_type_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.options\."):
        request(options=options)


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object", "required": ["a"]}}},
            {"type": "object", "required": ["a"]},
        ),
    ],
)
def test_response_format(response_format: dict[str, Any], expected: object) -> None:
    assert body(response_format=response_format).get("format") == expected


def test_json_schema_without_schema_is_400() -> None:
    with pytest.raises(InvalidRequest, match=r"json_schema\.schema"):
        body(response_format={"type": "json_schema", "json_schema": {"name": "p"}})


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 3}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "logprobs"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
    ],
)
def test_what_ollama_cannot_do_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        body(**fields)
    assert caught.value.param == param


def test_harmless_defaults_are_accepted() -> None:
    body(n=1, logprobs=False, logit_bias={})


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
OTHER = {"type": "function", "function": {"name": "g"}}


def test_tools_and_tool_choice() -> None:
    assert body(tools=[TOOL])["tools"] == [TOOL]
    assert "tools" not in body(tools=[TOOL], tool_choice="none")
    named = {"type": "function", "function": {"name": "g"}}
    assert body(tools=[TOOL, OTHER], tool_choice=named)["tools"] == [OTHER]


def test_reasoning_effort_and_think() -> None:
    assert "think" not in body()
    assert body(reasoning_effort="none")["think"] is False
    assert body(reasoning_effort="high")["think"] == "high"
    assert body(reasoning_effort="minimal")["think"] == "low"  # Ollama's least
    assert body(think=True, reasoning_effort="none")["think"] is True


def test_message_shapes() -> None:
    messages = [
        {"role": "developer", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "hmm",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    assert body(messages=messages)["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "a\nb", "images": ["QUJD"]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
            "thinking": "hmm",
        },
        {"role": "tool", "content": "42", "tool_name": "f"},
    ]


def test_bad_tool_arguments_are_400() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(InvalidRequest) as caught:
        body(messages=[{"role": "assistant", "tool_calls": [call]}])
    assert caught.value.param == "messages[0].tool_calls"


def test_completion_from_an_answer_with_thinking() -> None:
    answer = chunk(
        '{"model":"qwen3:4b","message":{"role":"assistant","content":"42","thinking":"sum it"},'
        '"done":true,"done_reason":"stop","prompt_eval_count":30,"eval_count":3}'
    )
    completion = translate.completion(answer, model="qwen3:4b")
    assert msgspec.to_builtins(completion.choices) == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "42", "reasoning_content": "sum it"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert msgspec.to_builtins(completion.usage) == {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}


def test_completion_with_tool_calls_and_length() -> None:
    answer = chunk(
        '{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":[1,2]}}}]},'
        '"done":true,"done_reason":"stop"}'
    )
    [choice] = translate.completion(answer, model="m").choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert (call.type, call.function.name, call.function.arguments) == ("function", "f", '{"a":[1,2]}')
    assert call.id.startswith("call_")
    cut = chunk('{"message":{"role":"assistant","content":"abc"},"done":true,"done_reason":"length"}')
    assert translate.completion(cut, model="m").choices[0].finish_reason == "length"


def test_chunk_translator_sequence() -> None:
    translator = translate.ChunkTranslator("m", include_usage=True)
    lines = [
        '{"message":{"role":"assistant","content":"","thinking":"t"},"done":false}',
        '{"message":{"role":"assistant","content":""},"done":false}',
        '{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{}}}]},"done":false}',
        '{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"g","arguments":{}}}]},"done":false}',
        '{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":4,"eval_count":2}',
    ]
    frames = [msgspec.to_builtins(f) for line in lines for f in translator.translate(chunk(line))]
    deltas: list[Any] = [f["choices"][0]["delta"] if f["choices"] else None for f in frames]
    assert deltas[0] == {"role": "assistant", "reasoning_content": "t"}
    # the empty chunk makes no frame; tool calls are numbered across chunks
    assert [d["tool_calls"][0]["index"] for d in deltas[1:3]] == [0, 1]
    assert [d["tool_calls"][0]["function"]["name"] for d in deltas[1:3]] == ["f", "g"]
    assert frames[3]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": None}
    assert frames[4]["choices"] == []
    assert frames[4]["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert len(frames) == 5
    assert {f["id"] for f in frames} == {translator.id}


def test_first_frame_has_the_role_even_when_empty() -> None:
    translator = translate.ChunkTranslator("m", include_usage=False)
    [frame] = translator.translate(chunk('{"message":{"role":"assistant","content":""},"done":false}'))
    assert frame.choices[0].delta.role == "assistant"


def test_embeddings() -> None:
    req = msgspec.convert({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 2}, EmbeddingRequest)
    assert translate.embed_body(["a", "b"], req, model="e", keep_alive="5m") == {
        "model": "e",
        "input": ["a", "b"],
        "keep_alive": "5m",
        "dimensions": 2,
    }
    answer = OllamaEmbedResponse(embeddings=[[0.5, -1.0], [0.25, 2.0]], prompt_eval_count=2)
    response = translate.embedding_response(answer, req, model="e")
    decoded = [struct.unpack("<2f", base64.b64decode(str(e.embedding))) for e in response.data]
    assert decoded == [(0.5, -1.0), (0.25, 2.0)]
    assert response.usage.prompt_tokens == 2
    with pytest.raises(InvalidRequest):
        translate.embed_body([], msgspec.convert({"input": []}, EmbeddingRequest), model="e", keep_alive="5m")


@pytest.mark.parametrize(
    ("asked", "answered"),
    [
        ("gpt-4o-mini", "qwen3:4b"),
        ("gpt-5.6-luna", "qwen3:4b"),  # the Agents SDK's default
        ("o3-mini", "qwen3:4b"),
        ("", "qwen3:4b"),
        ("gpt-oss:20b", "gpt-oss:20b"),  # Ollama's own
        ("gpt-oss", "gpt-oss"),
        ("llama3.2", "llama3.2"),
        ("gpt-4o:latest", "gpt-4o:latest"),  # a tag: a model someone made in Ollama
    ],
)
def test_openai_chat_models_mean_the_default(asked: str, answered: str) -> None:
    assert translate.chat_model(asked, "qwen3:4b") == answered


def test_openai_embedding_models_mean_the_configured_one() -> None:
    assert translate.embedding_model("text-embedding-ada-002", "nomic-embed-text") == "nomic-embed-text"
    assert translate.embedding_model("", "nomic-embed-text") == "nomic-embed-text"
    assert translate.embedding_model("mxbai-embed-large", "nomic-embed-text") == "mxbai-embed-large"


def test_model_list_reads_nanosecond_timestamps() -> None:
    tags = msgspec.json.decode(
        '{"models":[{"name":"qwen3:4b","modified_at":"2025-05-01T10:00:00.123456789-07:00"},{"name":"x","modified_at":"?"}]}',
        type=OllamaTags,
    )
    listing = msgspec.to_builtins(translate.model_list(tags))
    assert listing == {
        "object": "list",
        "data": [
            {"id": "qwen3:4b", "object": "model", "created": 1746118800, "owned_by": "ollama"},
            {"id": "x", "object": "model", "created": 0, "owned_by": "ollama"},
        ],
    }

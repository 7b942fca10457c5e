"""The front doors' translations, pure: the Responses API, legacy Completions and Ollama's own API, each to the
one flow's request and back, with literal values."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gateway.doors import completions, ollama, responses
from gateway.doors.response_events import ResponsesFramer
from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.ollama import OllamaChatChunk
from gateway.protocol import ChatMessage, ImageContentPart


def create(**fields: Any) -> responses.CreateResponse:
    return msgspec.convert(fields, responses.CreateResponse)


def chunk(**fields: Any) -> OllamaChatChunk:
    return msgspec.convert(fields, OllamaChatChunk)


def test_response_input_items_become_chat_messages() -> None:
    request = create(
        instructions="Be brief.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "3 C"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Cold."}]},
        ],
        tools=[{"type": "function", "name": "get_weather"}],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=40,
        reasoning={"effort": "xhigh"},
    )
    added = responses.input_messages(request)
    chat = responses.as_chat(request, [], added)
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be brief."),
        ("user", "weather?"),
        ("assistant", ""),
        ("tool", "3 C"),
        ("assistant", "Cold."),
    ]
    assert [call.id for call in chat.messages[2].tool_calls or []] == ["c1", "c2"]  # one message, both calls
    assert chat.messages[3].tool_call_id == "c1"
    assert chat.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert (chat.max_tokens, chat.reasoning_effort) == (40, "high")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": "x", "background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f1"}]}]}, "input[0].content[0]"),
    ],
)
def test_what_a_local_model_cannot_take_is_refused_naming_it(fields: dict[str, Any], param: str) -> None:
    request = create(**fields)
    with pytest.raises((InvalidRequest, UnsupportedParameter)) as refused:
        responses.as_chat(request, [], responses.input_messages(request))
    assert refused.value.param == param


def test_an_answer_is_a_response_object_and_the_messages_it_adds() -> None:
    answer = chunk(
        message={
            "content": "Cold.",
            "thinking": "Oslo in winter.",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}, "id": "call_9"}],
        },
        done=True,
        done_reason="length",
        prompt_eval_count=12,
        eval_count=3,
    )
    body = responses.answered(responses.shell(create(input="x"), "qwen3:4b"), answer)
    assert [item["type"] for item in body["output"]] == ["reasoning", "message", "function_call"]
    assert body["output"][0]["content"] == [{"type": "reasoning_text", "text": "Oslo in winter."}]
    assert body["output"][2]["call_id"] == "call_9"
    assert (body["status"], body["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert body["usage"]["total_tokens"] == 15
    [added] = responses.added_messages(body)
    assert (added.role, added.content) == ("assistant", "Cold.")
    assert [(c.id, c.function.arguments) for c in added.tool_calls or []] == [("call_9", '{"a":1}')]
    stored = responses.encode_messages([added])
    assert responses.decode_messages(stored) == [added]


def events(frames: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(frame.split(b"\ndata: ", 1)[1]) for frame in frames]


def test_a_streamed_answer_opens_fills_and_closes_each_item_in_turn() -> None:
    framer = ResponsesFramer(responses.shell(create(input="x"), "qwen3:4b"))
    frames = framer.opening()
    frames += framer.frames(chunk(message={"content": "", "thinking": "hmm"}))
    frames += framer.frames(chunk(message={"content": "Hi "}))
    frames += framer.frames(chunk(message={"content": "there"}))
    frames += framer.frames(chunk(message={"content": ""}, done=True, done_reason="stop", eval_count=2))
    seen = events(frames)
    assert [e["type"].removeprefix("response.") for e in seen] == [
        "created",
        "in_progress",
        "output_item.added",
        "reasoning_text.delta",
        "reasoning_text.done",
        "output_item.done",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert [e["sequence_number"] for e in seen] == list(range(len(seen)))
    assert seen[10]["text"] == "Hi there"
    assert [e.get("output_index") for e in seen[6:13]] == [1] * 7
    assert framer.response is not None
    assert [item["type"] for item in framer.response["output"]] == ["reasoning", "message"]


def test_a_failure_midway_is_a_failed_response() -> None:
    framer = ResponsesFramer(responses.shell(create(input="x"), "qwen3:4b"))
    framer.frames(chunk(message={"content": "Par"}))
    [*closing, failed] = events(framer.failed({"error": {"message": "runner died"}}))
    assert [e["type"] for e in closing][-1] == "response.output_item.done"
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "runner died"}


def test_an_ollama_chat_request_becomes_the_flows() -> None:
    request = msgspec.convert(
        {
            "model": "qwen3:4b",
            "messages": [
                {"role": "user", "content": "what is this?", "images": ["iVBORw0KGgo="]},
                {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                {"role": "tool", "content": "done", "tool_name": "f"},
            ],
            "format": {"type": "object"},
            "options": {"temperature": 0.2, "num_ctx": 2048},
            "think": "high",
        },
        ollama.OllamaChatRequest,
    )
    assert request.stream  # Ollama streams unless told not to
    chat = ollama.as_chat(request)
    first = chat.messages[0].content
    assert isinstance(first, list)
    assert isinstance(first[1], ImageContentPart)
    assert first[1].image_url.url == "data:image/*;base64,iVBORw0KGgo="
    assert [c.function.arguments for c in chat.messages[1].tool_calls or []] == ['{"a": 1}']
    assert chat.messages[2] == ChatMessage(role="tool", content="done", name="f")
    assert chat.response_format is not None
    assert chat.response_format.type == "json_schema"
    assert chat.think == "high"


def test_ollama_chunks_are_written_as_ollama_writes_them() -> None:
    middle = ollama.chat_chunk(chunk(message={"content": "Hi"}, created_at="2025-01-01T00:00:00Z"), "qwen3:4b")
    assert middle == {
        "model": "qwen3:4b",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Hi"},
        "done": False,
    }
    last = ollama.chat_chunk(chunk(done=True, eval_count=4, total_duration=9), "qwen3:4b")
    assert (last["done"], last["done_reason"], last["eval_count"], last["total_duration"]) == (True, "stop", 4, 9)
    assert "prompt_eval_count" not in last  # left out when empty, as Ollama does
    assert ollama.generate_chunk(chunk(message={"content": "def"}), "m")["response"] == "def"


def test_a_completion_goes_to_generate_with_its_sampling() -> None:
    request = msgspec.convert(
        {"prompt": ["def f():"], "suffix": "return x", "max_tokens": 16, "stop": "\n\n", "temperature": 0},
        completions.CompletionRequest,
    )
    assert completions.generate_body(request, model="m", num_ctx=8192, keep_alive="5m") == {
        "model": "m",
        "prompt": "def f():",
        "stream": False,
        "options": {"num_predict": 16, "temperature": 0, "stop": ["\n\n"], "num_ctx": 8192},
        "keep_alive": "5m",
        "suffix": "return x",
    }
    with pytest.raises(UnsupportedParameter):
        completions.as_chat(request)  # fill-in-the-middle is raw, never the chat flow

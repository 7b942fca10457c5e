"""Ollama's own API at the gateway's root, so that every Ollama client can have memory.

`/api/chat` is the one chat flow: its request becomes a chat completion request, and each answer chunk goes
back as Ollama writes it (NDJSON, streamed unless `"stream": false`). The rest of Ollama's API is relayed as
it came. Errors on these routes are Ollama's `{"error": "..."}`.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from msgspec import Struct

from gateway.ollama import OllamaChatChunk
from gateway.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionCall,
    ImageContentPart,
    ImageURL,
    JSONSchemaFormat,
    OllamaOptions,
    ResponseFormat,
    TextContentPart,
    ToolCall,
    ToolDefinition,
)

PREFIX = "/api/"
RUNNING = "Ollama is running"
NDJSON = "application/x-ndjson"

_encode = msgspec.json.Encoder().encode


class OllamaToolFunction(Struct):
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)


class OllamaToolCallIn(Struct):
    function: OllamaToolFunction
    id: str | None = None


class OllamaChatMessage(Struct, kw_only=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[OllamaToolCallIn] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class OllamaChatRequest(Struct, kw_only=True):
    """What the gateway reads of Ollama's `/api/chat` request."""

    model: str = ""
    messages: list[OllamaChatMessage] = msgspec.field(default_factory=list)
    stream: bool = True  # Ollama streams unless told not to
    format: Literal["", "json"] | dict[str, Any] | None = None
    options: OllamaOptions | None = None
    keep_alive: str | int | float | None = None
    think: bool | Literal["low", "medium", "high", "max"] | None = None
    tools: list[ToolDefinition] | None = None


def as_chat(request: OllamaChatRequest) -> ChatCompletionRequest:
    """The chat flow's request for an Ollama chat request."""
    return ChatCompletionRequest(
        messages=[_message(m) for m in request.messages],
        model=request.model,
        stream=request.stream,
        response_format=_format(request.format),
        tools=request.tools or None,
        options=request.options,
        keep_alive=int(request.keep_alive) if isinstance(request.keep_alive, float) else request.keep_alive,
        think=request.think,
    )


def _message(m: OllamaChatMessage) -> ChatMessage:
    content: str | list[TextContentPart | ImageContentPart] = m.content
    if m.images:
        images = [ImageContentPart(ImageURL(f"data:image/*;base64,{data}")) for data in m.images]
        content = [TextContentPart(m.content), *images]
    calls = [
        ToolCall(
            id=call.id or "call_" + secrets.token_hex(4),
            function=FunctionCall(
                name=call.function.name,
                arguments=call.function.arguments
                if isinstance(call.function.arguments, str)
                else json.dumps(call.function.arguments),
            ),
        )
        for call in m.tool_calls or ()
    ]
    return ChatMessage(
        role=m.role,
        content=content,
        name=m.tool_name if m.role == "tool" else None,
        tool_calls=calls or None,
        tool_call_id=m.tool_call_id,
        reasoning_content=m.thinking,
    )


def _format(fmt: str | dict[str, Any] | None) -> ResponseFormat | None:
    if isinstance(fmt, dict):
        return ResponseFormat(type="json_schema", json_schema=JSONSchemaFormat(name="format", schema=fmt))
    return ResponseFormat(type="json_object") if fmt == "json" else None


def chat_chunk(chunk: OllamaChatChunk, model: str) -> dict[str, Any]:
    """An answer chunk as Ollama writes it: what it leaves out when empty, left out."""
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if chunk.message:
        message["content"] = chunk.message.content
        if chunk.message.thinking:
            message["thinking"] = chunk.message.thinking
        if chunk.message.tool_calls:
            message["tool_calls"] = [
                {
                    **({"id": call.id} if call.id else {}),
                    "function": {"index": n, "name": call.function.name, "arguments": call.function.arguments},
                }
                for n, call in enumerate(chunk.message.tool_calls)
            ]
    out: dict[str, Any] = {"model": model, "created_at": chunk.created_at or now(), "message": message}
    return {**out, **_ending(chunk)}


def generate_chunk(chunk: OllamaChatChunk, model: str) -> dict[str, Any]:
    """An answer chunk as Ollama's `/api/generate` writes it."""
    out: dict[str, Any] = {"model": model, "created_at": chunk.created_at or now()}
    out["response"] = chunk.message.content if chunk.message else ""
    if chunk.message and chunk.message.thinking:
        out["thinking"] = chunk.message.thinking
    return {**out, **_ending(chunk)}


def _ending(chunk: OllamaChatChunk) -> dict[str, Any]:
    if not chunk.done:
        return {"done": False}
    metrics = {
        "total_duration": chunk.total_duration,
        "load_duration": chunk.load_duration,
        "prompt_eval_count": chunk.prompt_eval_count,
        "prompt_eval_duration": chunk.prompt_eval_duration,
        "eval_count": chunk.eval_count,
        "eval_duration": chunk.eval_duration,
    }
    return {"done": True, "done_reason": chunk.done_reason or "stop", **{k: v for k, v in metrics.items() if v}}


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def error(message: str) -> dict[str, str]:
    return {"error": message}


class NDJSONFramer:
    """Ollama's answer chunks, a JSON object a line; a failure after the first line is one more `{"error"}`."""

    media_type = NDJSON

    def __init__(self, model: str, *, generate: bool = False) -> None:
        self._model = model
        self._write = generate_chunk if generate else chat_chunk

    def opening(self) -> list[bytes]:
        return []

    def frames(self, chunk: OllamaChatChunk) -> list[bytes]:
        return [_encode(self._write(chunk, self._model)) + b"\n"]

    def failed(self, envelope: dict[str, Any]) -> list[bytes]:
        return [_encode(error(str(envelope["error"]["message"]))) + b"\n"]

    def closing(self) -> list[bytes]:
        return []


def served(path: str) -> bool:
    """Whether a path is Ollama's door (its errors are told as Ollama tells them)."""
    return path.startswith(PREFIX) or path == "/"

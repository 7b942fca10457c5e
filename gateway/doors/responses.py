"""OpenAI's Responses API (`/v1/responses`): its request as the chat flow's, its answer as a response object.

`input` (a string or items: messages, function calls and their outputs) and `instructions` become chat
messages; a stored response (`store`, the default) keeps the messages it added, so `previous_response_id`
continues its conversation from the journal. Built-in tools (web search, files, code) are the hosted
platform's, not a local model's: refused by name.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.ollama import OllamaChatChunk
from gateway.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    ImageContentPart,
    ImageURL,
    JSONSchemaFormat,
    ReasoningEffort,
    ResponseFormat,
    Share,
    TextContentPart,
    TokenCount,
    ToolCall,
    ToolDefinition,
)
from gateway.translate import tool_calls

# -- the request -----------------------------------------------------------------------------------


class FunctionTool(Struct, kw_only=True):
    type: str  # "function"; any other is a hosted tool, refused by name
    name: str = ""
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = "output"
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextOptions(Struct, kw_only=True):
    format: TextFormat | None = None


class Reasoning(Struct, kw_only=True):
    effort: ReasoningEffort | Literal["xhigh"] | None = None
    summary: str | None = None


class CreateResponse(Struct, kw_only=True):
    """What the gateway reads of a Responses API request (input items are read one by one)."""

    input: str | list[dict[str, Any]] = ""
    model: str = ""
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: TextOptions | None = None
    reasoning: Reasoning | None = None
    max_output_tokens: TokenCount | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Share | None = None
    stream: bool = False
    store: bool = True
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    background: bool = False
    conversation: str | dict[str, Any] | None = None


class InputText(Struct, kw_only=True):
    type: Literal["input_text", "output_text", "text", "refusal"]
    text: str = ""
    refusal: str = ""


class InputImage(Struct, kw_only=True):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class MessageItem(Struct, kw_only=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[dict[str, Any]]
    type: Literal["message"] = "message"


class FunctionCallItem(Struct, kw_only=True):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = "{}"


class FunctionCallOutputItem(Struct, kw_only=True):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[dict[str, Any]]


def check_supported(request: CreateResponse) -> None:
    for n, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            raise UnsupportedParameter(
                f"tools[{n}]", f"{tool.type} is a hosted tool; a local model calls only function tools."
            )
        if not tool.name:
            raise InvalidRequest(f"tools[{n}] names no function", param=f"tools[{n}].name")
    if request.background:
        raise UnsupportedParameter("background", "answers are given while the client waits; send it as false.")
    if request.conversation is not None:
        raise UnsupportedParameter("conversation", "continue a conversation with previous_response_id.")


def input_messages(request: CreateResponse) -> list[ChatMessage]:
    """The request's input as chat messages: function calls join the assistant message before them."""
    if isinstance(request.input, str):
        return [ChatMessage(role="user", content=request.input)] if request.input else []
    messages: list[ChatMessage] = []
    for n, item in enumerate(request.input):
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(_item(item, MessageItem, n), n))
        elif kind == "function_call":
            call = _item(item, FunctionCallItem, n)
            tool_call = ToolCall(id=call.call_id, function=FunctionCall(name=call.name, arguments=call.arguments))
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and not isinstance(last.content, list):
                last.tool_calls = [*(last.tool_calls or []), tool_call]
            else:
                messages.append(ChatMessage(role="assistant", content="", tool_calls=[tool_call]))
        elif kind == "function_call_output":
            result = _item(item, FunctionCallOutputItem, n)
            output = result.output if isinstance(result.output, str) else _text(result.output)
            messages.append(ChatMessage(role="tool", content=output, tool_call_id=result.call_id))
        elif kind == "reasoning":
            continue  # the model's earlier thinking: Ollama's templates leave it out of the prompt
        else:
            raise UnsupportedParameter(f"input[{n}]", f"an item of type {kind!r} cannot be sent to a local model.")
    return messages


T = TypeVar("T")


def _item(item: dict[str, Any], kind: type[T], n: int) -> T:
    try:
        return msgspec.convert(item, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"input[{n}]: {exc}", param=f"input[{n}]") from None


def _message(item: MessageItem, n: int) -> ChatMessage:
    if isinstance(item.content, str):
        return ChatMessage(role=item.role, content=item.content)
    parts: list[ContentPart] = []
    for m, part in enumerate(item.content):
        if part.get("type") == "input_image":
            image = _item(part, InputImage, n)
            if not image.image_url:
                raise UnsupportedParameter(f"input[{n}].content[{m}]", "send an image inline, as a data: URL.")
            parts.append(ImageContentPart(ImageURL(image.image_url)))
        else:
            text = _item(part, InputText, n)
            parts.append(TextContentPart(text.text or text.refusal))
    if all(isinstance(p, TextContentPart) for p in parts):
        return ChatMessage(role=item.role, content="".join(p.text for p in parts if isinstance(p, TextContentPart)))
    return ChatMessage(role=item.role, content=parts)


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def as_chat(request: CreateResponse, history: list[ChatMessage], added: list[ChatMessage]) -> ChatCompletionRequest:
    """The chat flow's request: the instructions, the stored conversation before, and this input (`added`)."""
    check_supported(request)
    system = [ChatMessage(role="system", content=request.instructions)] if request.instructions else []
    messages = [*system, *history, *added]
    if not added:
        raise InvalidRequest("input is empty: send a string or at least one item", param="input")
    tools = [
        ToolDefinition(FunctionDefinition(name=t.name, description=t.description, parameters=t.parameters))
        for t in request.tools or ()
    ]
    return ChatCompletionRequest(
        messages=messages,
        model=request.model,
        stream=request.stream,
        max_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        user=request.user,
        tools=tools or None,
        tool_choice=_tool_choice(request.tool_choice),
        response_format=_format(request.text.format if request.text else None),
        reasoning_effort=_effort(request.reasoning),
    )


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """The Responses API names a forced function at the top (`{"type": "function", "name"}`); Chat Completions
    one level down."""
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _format(fmt: TextFormat | None) -> ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if fmt.schema is None:
        raise InvalidRequest("text.format json_schema needs a schema", param="text.format.schema")
    schema = JSONSchemaFormat(name=fmt.name, schema=fmt.schema, description=fmt.description, strict=fmt.strict)
    return ResponseFormat(type="json_schema", json_schema=schema)


def _effort(reasoning: Reasoning | None) -> ReasoningEffort | None:
    if reasoning is None or reasoning.effort is None:
        return None
    return "high" if reasoning.effort == "xhigh" else reasoning.effort


# -- the answer ------------------------------------------------------------------------------------


def response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def usage(chunk: OllamaChatChunk | None) -> dict[str, Any] | None:
    if chunk is None:
        return None
    prompt, answer = chunk.prompt_eval_count, chunk.eval_count
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": answer,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + answer,
    }


def reasoning_item(id: str, thinking: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": thinking}],
        "status": status,
    }


def message_item(id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [] if text is None else [output_text(text)]
    return {"id": id, "type": "message", "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(
    id: str, call: ToolCall, arguments: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments if arguments is None else arguments,
    }


class Shell(Struct):
    """What a response object repeats of its request, and its identity."""

    id: str
    created_at: int
    model: str
    request: CreateResponse

    def response(
        self, status: str, output: list[dict[str, Any]], final: OllamaChatChunk | None = None
    ) -> dict[str, Any]:
        request = self.request
        incomplete = status == "incomplete"
        fmt = request.text.format if request.text and request.text.format else TextFormat()
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": request.previous_response_id,
            "reasoning": {"effort": request.reasoning.effort if request.reasoning else None, "summary": None},
            "store": request.store,
            "temperature": request.temperature if request.temperature is not None else 1.0,
            "text": {"format": msgspec.to_builtins(fmt)},
            "tool_choice": request.tool_choice or "auto",
            "tools": msgspec.to_builtins(request.tools or []),
            "top_p": request.top_p if request.top_p is not None else 1.0,
            "truncation": "disabled",
            "usage": usage(final),
            "user": request.user,
            "metadata": request.metadata or {},
        }


def shell(request: CreateResponse, model: str) -> Shell:
    return Shell(response_id(), int(time.time()), model, request)


def status_of(final: OllamaChatChunk | None) -> str:
    return "incomplete" if final is not None and final.done_reason == "length" else "completed"


def answered(shell: Shell, answer: OllamaChatChunk) -> dict[str, Any]:
    """The whole response object for a non-streamed answer."""
    output: list[dict[str, Any]] = []
    message = answer.message
    if message and message.thinking:
        output.append(reasoning_item(item_id("rs"), message.thinking))
    if message and message.content:
        output.append(message_item(item_id("msg"), message.content))
    for call in translate_calls(answer):
        output.append(function_call_item(item_id("fc"), call))
    return shell.response(status_of(answer), output, answer)


def translate_calls(chunk: OllamaChatChunk) -> list[ToolCall]:
    return tool_calls(chunk.message) if chunk.message else []


def added_messages(response: dict[str, Any]) -> list[ChatMessage]:
    """The assistant message a response's output adds to its conversation (text and function calls)."""
    text = "".join(part["text"] for item in response["output"] if item["type"] == "message" for part in item["content"])
    calls = [
        ToolCall(id=item["call_id"], function=FunctionCall(name=item["name"], arguments=item["arguments"]))
        for item in response["output"]
        if item["type"] == "function_call"
    ]
    if not text and not calls:
        return []
    return [ChatMessage(role="assistant", content=text, tool_calls=calls or None)]


_messages = msgspec.json.Decoder(list[ChatMessage])


def encode_messages(messages: list[ChatMessage]) -> str:
    return msgspec.json.encode(messages).decode()


def decode_messages(stored: str) -> list[ChatMessage]:
    return _messages.decode(stored)

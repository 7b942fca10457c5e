"""OpenAI <-> Ollama translation: pure functions and one small stream translator, no I/O."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
import time
from datetime import datetime
from typing import Any

import msgspec

from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.ollama import OllamaChatChunk, OllamaEmbedResponse, OllamaMessage, OllamaTags
from gateway.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChunkChoice,
    CompletionUsage,
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingUsage,
    FinishReason,
    FunctionCall,
    ImageContentPart,
    Model,
    ModelList,
    Sampling,
    ToolCall,
)

_json = msgspec.json.Encoder()


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


# -- requests ---------------------------------------------------------------------------------------


def check_supported(request: ChatCompletionRequest) -> None:
    """Refuse, by name, what Ollama cannot do rather than silently ignore it."""
    if request.n is not None and request.n != 1:
        raise UnsupportedParameter("n", "Ollama returns one choice per request; send n=1 or leave it out.")
    if request.logprobs or request.top_logprobs:
        raise UnsupportedParameter("logprobs", "Ollama's chat API does not return log probabilities.")
    if request.logit_bias:
        raise UnsupportedParameter("logit_bias", "Ollama has no logit bias.")


def chat_body(
    request: ChatCompletionRequest,
    *,
    model: str,
    num_ctx: int,
    keep_alive: str,
    messages: list[ChatMessage] | None = None,
) -> dict[str, Any]:
    """The `/api/chat` body for an OpenAI chat request (with `messages` in place of the request's, if given)."""
    check_supported(request)
    body: dict[str, Any] = {
        "model": model,
        "messages": ollama_messages(request.messages if messages is None else messages),
        "stream": request.stream,
        "options": _options(request, num_ctx),
        "keep_alive": request.keep_alive if request.keep_alive is not None else keep_alive,
    }
    tools = _tools(request)
    if tools:
        body["tools"] = tools
    fmt = _format(request)
    if fmt is not None:
        body["format"] = fmt
    think = _think(request)
    if think is not None:
        body["think"] = think
    return body


def _options(request: ChatCompletionRequest, num_ctx: int) -> dict[str, Any]:
    options = msgspec.structs.asdict(request.options) if request.options else {}
    chosen = sampling_options(request, request.max_completion_tokens or request.max_tokens)
    return {**{key: value for key, value in options.items() if value is not None}, **chosen, "num_ctx": num_ctx}


def sampling_options(request: Sampling, limit: int | None) -> dict[str, Any]:
    """Ollama's `options` for the sampling fields the request sets (`limit`: the answer's most tokens)."""
    chosen = {
        "num_predict": limit,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": [request.stop] if isinstance(request.stop, str) else request.stop,
        "seed": request.seed,
        "frequency_penalty": request.frequency_penalty,
        "presence_penalty": request.presence_penalty,
    }
    return {key: value for key, value in chosen.items() if value is not None}


def _tools(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    if not request.tools or request.tool_choice == "none":
        return []
    tools = request.tools
    choice = request.tool_choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        # Ollama cannot force a call; offering only the named tool is the closest it comes.
        name = choice["function"].get("name")
        tools = [tool for tool in tools if tool.function.name == name] or tools
    return [msgspec.to_builtins(tool) for tool in tools]


def _format(request: ChatCompletionRequest) -> str | dict[str, Any] | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "json"
    if fmt.json_schema is None or fmt.json_schema.schema is None:
        raise InvalidRequest("response_format json_schema needs json_schema.schema", param="response_format")
    return fmt.json_schema.schema


def _think(request: ChatCompletionRequest) -> bool | str | None:
    if request.think is not None:
        return request.think
    if request.reasoning_effort is None:
        return None
    levels: dict[str, bool | str] = {"none": False, "minimal": "low"}  # Ollama thinks at low, medium or high
    return levels.get(request.reasoning_effort, request.reasoning_effort)


def ollama_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    tool_names = {call.id: call.function.name for m in messages for call in m.tool_calls or ()}
    return [_message(m, index, tool_names) for index, m in enumerate(messages)]


def _message(m: ChatMessage, index: int, tool_names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role}
    if isinstance(m.content, list):
        out["content"] = "\n".join(part.text for part in m.content if not isinstance(part, ImageContentPart))
        images = [_image(part, index) for part in m.content if isinstance(part, ImageContentPart)]
        if images:
            out["images"] = images
    else:
        out["content"] = m.content or ""
    if m.tool_calls:
        out["tool_calls"] = [_ollama_tool_call(call, index) for call in m.tool_calls]
    if m.role == "tool":
        name = tool_names.get(m.tool_call_id or "") or m.name
        if name:
            out["tool_name"] = name
    if m.reasoning_content:
        out["thinking"] = m.reasoning_content
    return out


_DATA_URL = re.compile(r"^data:[^;,]*;base64,")


def _image(part: ImageContentPart, index: int) -> str:
    url = part.image_url.url
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(
            "Ollama takes images inline only: send image_url.url as a data: URL (data:image/png;base64,...).",
            param=f"messages[{index}].content",
        )
    data = url[match.end() :]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: characters that are not ASCII
        raise InvalidRequest(
            f"an image's data: URL does not hold valid base64 ({exc})", param=f"messages[{index}].content"
        ) from None
    return data


def _ollama_tool_call(call: ToolCall, index: int) -> dict[str, Any]:
    try:
        arguments = msgspec.json.decode(call.function.arguments or "{}")
    except msgspec.DecodeError:
        raise InvalidRequest(
            f"tool call {call.id}: function.arguments is not valid JSON", param=f"messages[{index}].tool_calls"
        ) from None
    return {"function": {"name": call.function.name, "arguments": arguments}}


# -- answers ----------------------------------------------------------------------------------------


def finish_reason(chunk: OllamaChatChunk, called_tools: bool) -> FinishReason:
    if called_tools:
        return "tool_calls"
    return "length" if chunk.done_reason == "length" else "stop"


def usage(chunk: OllamaChatChunk) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=chunk.prompt_eval_count,
        completion_tokens=chunk.eval_count,
        total_tokens=chunk.prompt_eval_count + chunk.eval_count,
    )


def tool_calls(message: OllamaMessage) -> list[ToolCall]:
    return [
        ToolCall(
            id=call.id or "call_" + secrets.token_hex(12),
            function=FunctionCall(name=call.function.name, arguments=_json.encode(call.function.arguments).decode()),
        )
        for call in message.tool_calls or ()
    ]


def completion(answer: OllamaChatChunk, *, model: str) -> ChatCompletion:
    message = answer.message or OllamaMessage()
    calls = tool_calls(message)
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=0,
                message=ChatCompletionMessage(
                    role="assistant",
                    content=message.content if message.content or not calls else None,
                    reasoning_content=message.thinking or None,
                    tool_calls=calls or None,
                ),
                finish_reason=finish_reason(answer, bool(calls)),
            )
        ],
        usage=usage(answer),
    )


class ChunkTranslator:
    """Turns the NDJSON chunks of one streamed `/api/chat` answer into `chat.completion.chunk`s."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self._started = False
        self._tool_calls = 0

    def translate(self, chunk: OllamaChatChunk) -> list[ChatCompletionChunk]:
        out = []
        delta = self._delta(chunk.message or OllamaMessage())
        if delta is not None:
            out.append(self._chunk([ChunkChoice(index=0, delta=delta)]))
        if chunk.done:
            reason = finish_reason(chunk, self._tool_calls > 0)
            out.append(self._chunk([ChunkChoice(index=0, delta=ChoiceDelta(), finish_reason=reason)]))
            if self.include_usage:
                out.append(self._chunk([], usage=usage(chunk)))
        return out

    def _delta(self, message: OllamaMessage) -> ChoiceDelta | None:
        calls = [
            ChoiceDeltaToolCall(index=self._tool_calls + i, id=call.id, function=call.function)
            for i, call in enumerate(tool_calls(message))
        ]
        self._tool_calls += len(calls)
        if not (message.content or message.thinking or calls or not self._started):
            return None
        first = not self._started
        self._started = True
        return ChoiceDelta(
            role="assistant" if first else None,
            content=message.content or None,
            reasoning_content=message.thinking or None,
            tool_calls=calls or None,
        )

    def _chunk(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage)


# -- embeddings and models --------------------------------------------------------------------------


_OPENAI_CHAT_MODEL = re.compile(r"^(?:gpt-(?!oss)|chatgpt-|o\d|codex-|computer-use-|davinci|babbage)[^:]*$")


def chat_model(asked: str, default: str) -> str:
    """The Ollama model to answer with: the one asked for, unless it is none or one of OpenAI's (Ollama names
    carry a tag, `gpt-4o-mini` does not): clients that name OpenAI's by default (the Agents SDK) get
    `[model] default`."""
    return default if not asked or _OPENAI_CHAT_MODEL.match(asked) else asked


OPENAI_EMBEDDING_MODELS = ("text-embedding-", "text-similarity-", "text-search-")


def embedding_model(asked: str, configured: str) -> str:
    """The Ollama model to embed with: the one asked for, unless it is none or one of OpenAI's (the default of
    clients such as LangChain's `OpenAIEmbeddings()`), which Ollama cannot have: then `[embedding] model`."""
    return configured if not asked or asked.startswith(OPENAI_EMBEDDING_MODELS) else asked


def embed_body(texts: str | list[str], request: EmbeddingRequest, *, model: str, keep_alive: str) -> dict[str, Any]:
    """The `/api/embed` body for the request's texts (its token ids already decoded)."""
    if texts == []:
        raise InvalidRequest("input must not be empty", param="input")
    if not model:
        raise InvalidRequest("name a model: no [embedding] model is configured to embed with", param="model")
    body: dict[str, Any] = {"model": model, "input": texts, "keep_alive": keep_alive}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def embedding_response(
    answer: OllamaEmbedResponse, request: EmbeddingRequest, *, model: str
) -> CreateEmbeddingResponse:
    as_base64 = request.encoding_format == "base64"
    return CreateEmbeddingResponse(
        data=[
            Embedding(index=i, embedding=_base64_floats(vector) if as_base64 else vector)
            for i, vector in enumerate(answer.embeddings)
        ],
        model=model,
        usage=EmbeddingUsage(prompt_tokens=answer.prompt_eval_count, total_tokens=answer.prompt_eval_count),
    )


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's base64 embeddings: little-endian float32, as numpy.frombuffer(..., dtype='<f4') reads them."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def model_list(tags: OllamaTags) -> ModelList:
    return ModelList(data=[Model(id=m.name, created=_timestamp(m.modified_at)) for m in tags.models])


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _timestamp(iso: str) -> int:
    """Ollama's `modified_at` has nanoseconds, which datetime does not take before Python 3.12."""
    try:
        return int(datetime.fromisoformat(_FRACTION.sub(r"\1", iso)).timestamp())
    except ValueError:
        return 0

"""OpenAI wire types, named as in the OpenAI API reference.

Request types are views: only the fields the gateway reads or must refuse. Response types are what we send.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# -- requests ---------------------------------------------------------------------------------------


class TextContentPart(Struct, tag="text", tag_field="type"):
    text: str


class ImageURL(Struct):
    url: str
    detail: str | None = None


class ImageContentPart(Struct, tag="image_url", tag_field="type"):
    image_url: ImageURL


ContentPart = TextContentPart | ImageContentPart


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatMessage(Struct, omit_defaults=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class StreamOptions(Struct):
    include_usage: bool = False


class JSONSchemaFormat(Struct):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(Struct):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class FunctionDefinition(Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(Struct):
    function: FunctionDefinition
    type: Literal["function"] = "function"


Temperature = Annotated[float, Meta(ge=0, le=2)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
TokenCount = Annotated[int, Meta(ge=1)]


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]  # OpenAI's values; Ollama's think levels


Share = Annotated[float, Meta(ge=0, le=1)]


class OllamaOptions(Struct, kw_only=True, omit_defaults=True):
    """Ollama's runtime options (`options` of `/api/chat`), typed as Ollama takes them; Ollama ignores any other
    key, so the gateway drops them. `num_ctx` is always the gateway's own window."""

    num_ctx: Annotated[int, Meta(ge=1)] | None = None
    num_predict: Annotated[int, Meta(ge=-2)] | None = None  # -1: until done, -2: until the window is full
    num_keep: Annotated[int, Meta(ge=-1)] | None = None
    seed: int | None = None
    temperature: Annotated[float, Meta(ge=0)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    top_p: Share | None = None
    min_p: Share | None = None
    typical_p: Share | None = None
    repeat_last_n: Annotated[int, Meta(ge=-1)] | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None
    num_batch: Annotated[int, Meta(ge=1)] | None = None
    num_gpu: Annotated[int, Meta(ge=-1)] | None = None
    main_gpu: Annotated[int, Meta(ge=0)] | None = None
    num_thread: Annotated[int, Meta(ge=0)] | None = None
    use_mmap: bool | None = None
    # older Ollama releases
    mirostat: Annotated[int, Meta(ge=0, le=2)] | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    tfs_z: float | None = None
    penalize_newline: bool | None = None
    numa: bool | None = None


class Sampling(Struct, kw_only=True):
    """The request fields that Chat Completions and legacy Completions share (Ollama's `options` of each)."""

    model: str = ""
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = None
    temperature: Temperature | None = None
    top_p: Share | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    user: str | None = None
    keep_alive: str | int | None = None  # Ollama's, for clients that know they talk to Ollama


class ChatCompletionRequest(Sampling, kw_only=True):
    """What the gateway reads of a chat completion request (plus Ollama's own extras, passed through)."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_completion_tokens: TokenCount | None = None
    response_format: ResponseFormat | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning_effort: ReasoningEffort | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    # Ollama's native extras, for clients that know they talk to Ollama
    options: OllamaOptions | None = None
    think: bool | str | None = None


class EmbeddingRequest(Struct, kw_only=True):
    input: str | list[str | int | list[int]]  # token arrays are refused by name, not by a schema error
    model: str = ""
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: TokenCount | None = None
    user: str | None = None


# -- responses --------------------------------------------------------------------------------------

FinishReason = Literal["stop", "length", "tool_calls"]


class CompletionUsage(Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionMessage(Struct, omit_defaults=True):
    role: Literal["assistant"]  # no default, so never omitted
    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(Struct):
    index: int
    message: ChatCompletionMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(Struct):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None


class ChoiceDeltaToolCall(Struct):
    index: int
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChoiceDelta(Struct, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(Struct):
    index: int
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(Struct):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: CompletionUsage | None = None


class Model(Struct):
    id: str
    created: int
    owned_by: str = "ollama"
    object: Literal["model"] = "model"


class ModelList(Struct):
    data: list[Model]
    object: Literal["list"] = "list"


class Embedding(Struct):
    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(Struct):
    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(Struct):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"


class ErrorDetail(Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Struct):
    """The OpenAI error envelope: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


chunk_encoder = msgspec.json.Encoder()

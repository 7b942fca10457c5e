"""OpenAI's legacy Completions (`/v1/completions`): a prompt in, its continuation out, over `/api/generate`.

A raw completion (autocomplete, fill-in-the-middle) is not a conversation: it goes to the model as it came,
with no memory, unless the client asks for memory (`X-Memory: on` or `read`); then the prompt is the user's
message of the one chat flow.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from gateway import translate
from gateway.errors import UnsupportedParameter
from gateway.ollama import OllamaChatChunk
from gateway.protocol import ChatCompletionRequest, ChatMessage, CompletionUsage, FinishReason, Sampling
from gateway.relay import DONE, sse

_encode = msgspec.json.Encoder().encode


class CompletionRequest(Sampling, kw_only=True):
    """What the gateway reads of a legacy completion request."""

    prompt: str | Annotated[list[str], Meta(min_length=1, max_length=1)]
    suffix: str | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    best_of: Annotated[int, Meta(ge=1)] | None = None
    echo: bool = False
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class CompletionChoice(Struct):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: FinishReason | None = None


class Completion(Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
    object: Literal["text_completion"] = "text_completion"
    system_fingerprint: str | None = None


def check_supported(request: CompletionRequest) -> None:
    if (request.n or 1) > 1 or (request.best_of or 1) > 1:
        raise UnsupportedParameter("n", "Ollama returns one completion per request; send n and best_of as 1.")
    if request.echo:
        raise UnsupportedParameter("echo", "Ollama does not echo the prompt; prepend it yourself.")
    if request.logprobs:
        raise UnsupportedParameter("logprobs", "Ollama's generate API does not return log probabilities.")


def generate_body(request: CompletionRequest, *, model: str, num_ctx: int, keep_alive: str) -> dict[str, Any]:
    """The `/api/generate` body: the prompt through the model's template, as Ollama's own /v1 does."""
    check_supported(request)
    body: dict[str, Any] = {
        "model": model,
        "prompt": request.text,
        "stream": request.stream,
        "options": {**translate.sampling_options(request, request.max_tokens), "num_ctx": num_ctx},
        "keep_alive": request.keep_alive if request.keep_alive is not None else keep_alive,
    }
    if request.suffix:
        body["suffix"] = request.suffix
    return body


def as_chat(request: CompletionRequest) -> ChatCompletionRequest:
    """The completion as the chat flow's request (when memory is asked for): the prompt is the user's message."""
    check_supported(request)
    if request.suffix:
        raise UnsupportedParameter("suffix", "fill-in-the-middle goes to the model as it came, without memory.")
    return ChatCompletionRequest(
        messages=[ChatMessage(role="user", content=request.text)],
        model=request.model,
        stream=request.stream,
        stream_options=request.stream_options,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop,
        seed=request.seed,
        frequency_penalty=request.frequency_penalty,
        presence_penalty=request.presence_penalty,
        user=request.user,
        keep_alive=request.keep_alive,
    )


def completion_id() -> str:
    return "cmpl-" + secrets.token_hex(12)


def completion(answer: OllamaChatChunk, *, model: str) -> Completion:
    text = answer.message.content if answer.message else ""
    return Completion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[CompletionChoice(text=text, finish_reason=_finish_reason(answer))],
        usage=_usage(answer),
    )


def _finish_reason(chunk: OllamaChatChunk) -> FinishReason:
    return "length" if chunk.done_reason == "length" else "stop"


def _usage(chunk: OllamaChatChunk) -> CompletionUsage:
    prompt, answer = chunk.prompt_eval_count, chunk.eval_count
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=answer, total_tokens=prompt + answer)


class CompletionFramer:
    """`text_completion` chunks as server-sent events, ending with `[DONE]`."""

    media_type = "text/event-stream"

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self._id, self._created, self._model = completion_id(), int(time.time()), model
        self._include_usage = include_usage

    def opening(self) -> list[bytes]:
        return []

    def frames(self, chunk: OllamaChatChunk) -> list[bytes]:
        text = chunk.message.content if chunk.message else ""
        frames = []
        if text or chunk.done:
            reason = _finish_reason(chunk) if chunk.done else None
            frames.append(self._frame([CompletionChoice(text=text, finish_reason=reason)]))
        if chunk.done and self._include_usage:
            frames.append(self._frame([], _usage(chunk)))
        return frames

    def failed(self, error: dict[str, Any]) -> list[bytes]:
        return [sse(_encode(error))]

    def closing(self) -> list[bytes]:
        return [DONE]

    def _frame(self, choices: list[CompletionChoice], usage: CompletionUsage | None = None) -> bytes:
        return sse(_encode(Completion(self._id, self._created, self._model, choices, usage)))

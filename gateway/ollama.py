"""Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`, `/api/version`) over one httpx
client.

This is the only module that sees httpx: transport failures and Ollama's error answers become our
`errors` here, before anything reaches a client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
import msgspec
from msgspec import Struct

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.metrics import Metrics

# -- Ollama's wire types (what we read of them) -----------------------------------------------------


class OllamaFunction(Struct):
    name: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)


class OllamaToolCall(Struct):
    function: OllamaFunction
    id: str | None = None


class OllamaMessage(Struct):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[OllamaToolCall] | None = None


class OllamaChatChunk(Struct):
    """One line of `/api/chat` (or its whole answer when not streaming)."""

    model: str = ""
    created_at: str = ""
    message: OllamaMessage | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int = 0  # the whole prompt (Ollama 0.2 and some 0.30 counted only the uncached part)
    prompt_eval_duration: int = 0  # nanoseconds spent on the prompt tokens the model had not cached
    eval_count: int = 0
    error: str | None = None
    total_duration: int = 0  # nanoseconds, as are the next two: relayed to Ollama's own clients
    load_duration: int = 0
    eval_duration: int = 0


class OllamaGenerateChunk(Struct):
    """One line of `/api/generate` (or its whole answer): read as a chat chunk, so that one relay serves both."""

    model: str = ""
    created_at: str = ""
    response: str = ""
    thinking: str | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    error: str | None = None
    total_duration: int = 0
    load_duration: int = 0
    eval_duration: int = 0

    def as_chat(self) -> OllamaChatChunk:
        return OllamaChatChunk(
            model=self.model,
            created_at=self.created_at,
            message=OllamaMessage(content=self.response, thinking=self.thinking),
            done=self.done,
            done_reason=self.done_reason,
            prompt_eval_count=self.prompt_eval_count,
            prompt_eval_duration=self.prompt_eval_duration,
            eval_count=self.eval_count,
            error=self.error,
            total_duration=self.total_duration,
            load_duration=self.load_duration,
            eval_duration=self.eval_duration,
        )


class OllamaModelInfo(Struct):
    name: str
    modified_at: str = ""
    size: int = 0


class OllamaTags(Struct):
    models: list[OllamaModelInfo] = msgspec.field(default_factory=list)


class OllamaEmbedResponse(Struct):
    embeddings: list[list[float]]
    model: str = ""
    prompt_eval_count: int = 0


class OllamaVersion(Struct):
    version: str


class OllamaErrorBody(Struct):
    error: str = ""


_encode = msgspec.json.Encoder().encode
_chunk = msgspec.json.Decoder(OllamaChatChunk)
_generated = msgspec.json.Decoder(OllamaGenerateChunk)
_tags = msgspec.json.Decoder(OllamaTags)
_embed = msgspec.json.Decoder(OllamaEmbedResponse)
_version = msgspec.json.Decoder(OllamaVersion)
_error = msgspec.json.Decoder(OllamaErrorBody)

JSON = {"content-type": "application/json"}


class Ollama:
    """A client of one Ollama server. The httpx client is made and closed by the app's lifespan."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        direct: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`direct` is the client's transport, for requests read whole to skip the client's cookie, auth
        and redirect handling, which Ollama has no use for and which costs as much as the transport."""
        self._metrics = metrics or Metrics()
        self._client = client
        self._direct = direct
        self._timeouts = {"timeout": client.timeout.as_dict()}
        self.url = url.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}  # parsed once: parsing a URL is a third of httpx's cost per call

    async def version(self) -> str:
        response = await self._request("GET", "/api/version")
        return _decode(_version, response.content).version

    async def tags(self) -> OllamaTags:
        response = await self._request("GET", "/api/tags")
        return _decode(_tags, response.content)

    async def chat(self, body: dict[str, Any]) -> OllamaChatChunk:
        response = await self._request("POST", "/api/chat", body)
        return _answered(_decode(_chunk, response.content))

    async def generate(self, body: dict[str, Any]) -> OllamaChatChunk:
        """A completion of a prompt (`/api/generate`), read as a chat answer."""
        response = await self._request("POST", "/api/generate", body)
        return _answered(_decode(_generated, response.content).as_chat())

    def chat_stream(self, body: dict[str, Any]) -> AbstractAsyncContextManager[AsyncIterator[OllamaChatChunk]]:
        """Open a streamed chat; a bad status raises here, before the caller starts its response."""
        return self._stream("/api/chat", body, lambda line: _decode(_chunk, line))

    def generate_stream(self, body: dict[str, Any]) -> AbstractAsyncContextManager[AsyncIterator[OllamaChatChunk]]:
        """Open a streamed completion of a prompt, read as chat chunks."""
        return self._stream("/api/generate", body, lambda line: _decode(_generated, line).as_chat())

    async def embed(self, body: dict[str, Any]) -> OllamaEmbedResponse:
        response = await self._request("POST", "/api/embed", body)
        return _decode(_embed, response.content)

    @asynccontextmanager
    async def _stream(
        self, path: str, body: dict[str, Any], decode: Callable[[str], OllamaChatChunk]
    ) -> AsyncIterator[AsyncIterator[OllamaChatChunk]]:
        request = self._client.build_request("POST", self._url(path), content=_encode(body), headers=JSON)
        with self._counted(path), self._transport_errors():
            response = await self._client.send(request, stream=True)
            if response.status_code >= 400:
                try:
                    await response.aread()
                    _raise_for_status(response, body)
                finally:
                    await response.aclose()
        try:
            yield self._lines(response, decode)
        finally:
            await response.aclose()

    async def _lines(
        self, response: httpx.Response, decode: Callable[[str], OllamaChatChunk]
    ) -> AsyncIterator[OllamaChatChunk]:
        with self._transport_errors():
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                chunk = decode(line)
                if chunk.error:
                    raise UpstreamError(f"Ollama failed mid-answer: {chunk.error}")
                yield chunk

    @asynccontextmanager
    async def relay(
        self, method: str, path: str, content: bytes, content_type: str | None
    ) -> AsyncIterator[httpx.Response]:
        """A request sent on to Ollama as it came; its response, open for streaming, whatever its status."""
        headers = {"content-type": content_type} if content_type else {}
        request = self._client.build_request(method, self.url + path, content=content or None, headers=headers)
        with self._counted(path if path.count("/") == 2 else "other"), self._transport_errors():  # not a digest
            response = await self._client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        content = _encode(body) if body is not None else None
        with self._counted(path), self._transport_errors():
            if self._direct is None:
                response = await self._client.request(method, self._url(path), content=content, headers=JSON)
            else:
                request = httpx.Request(
                    method, self._url(path), content=content, headers=JSON, extensions=self._timeouts
                )
                response = await self._direct.handle_async_request(request)
                try:
                    await response.aread()
                except BaseException:
                    await response.aclose()  # a body cut short: its connection is in an unknown state
                    raise
            _raise_for_status(response, body)
        return response

    def _url(self, path: str) -> httpx.URL:
        if (url := self._urls.get(path)) is None:
            url = self._urls[path] = httpx.URL(self.url + path)
        return url

    @contextmanager
    def _counted(self, endpoint: str) -> Iterator[None]:
        """Count a call to Ollama by its outcome (`ok`, or the error it became) and time it."""
        started, outcome = time.perf_counter(), "ok"
        try:
            yield
        except GatewayError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._metrics.upstream.labels(endpoint, outcome).inc()
            self._metrics.upstream_seconds.labels(endpoint).observe(time.perf_counter() - started)

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Turn httpx's transport exceptions into ours, naming the URL and the fix."""
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UpstreamUnavailable(self.url) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                f"Ollama at {self.url} did not answer within {self._client.timeout.read} s "
                "(raise [upstream] timeout_s if the model is slow to load)."
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"Ollama at {self.url} broke the connection: {exc!r}") from exc


def _answered(answer: OllamaChatChunk) -> OllamaChatChunk:
    if answer.error:
        raise UpstreamError(f"Ollama failed: {answer.error}")
    return answer


def _raise_for_status(response: httpx.Response, body: dict[str, Any] | None) -> None:
    status = response.status_code
    if status < 400:
        return
    message = _error_message(response)
    if status == 404 and body and "model" in body and "not found" in message:
        raise ModelNotFound(str(body["model"]))
    if status == 503:
        raise UpstreamBusy(f"Ollama is busy: {message}. Retry later, or raise OLLAMA_MAX_QUEUE.")
    if 400 <= status < 500:
        raise InvalidRequest(f"Ollama rejected the request: {message}")
    raise UpstreamError(f"Ollama answered {status}: {message}")


def _error_message(response: httpx.Response) -> str:
    try:
        return _error.decode(response.content).error or response.reason_phrase
    except msgspec.DecodeError:
        return response.text[:200] or response.reason_phrase


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes | str) -> T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"Ollama sent something unreadable: {exc}") from exc

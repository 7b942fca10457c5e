"""`create_app`: the Litestar application, its lifespan (clients made and closed), wiring and error handlers."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from gateway import __version__, bodies, browser, datadir, timeouts
from gateway.chat import Chat, restore_calibration, restore_prefill
from gateway.config import Settings
from gateway.consolidate import Consolidator
from gateway.doors import ollama as ollama_door
from gateway.errors import GatewayError, error_envelope
from gateway.memory import Memory
from gateway.metrics import Metrics
from gateway.ollama import Ollama
from gateway.requestid import request_id_middleware
from gateway.routes.chat import simple_chat
from gateway.routes.docs import docs_assets, redoc, swagger_ui
from gateway.routes.listing import ListingController
from gateway.routes.memory import MemoryController
from gateway.routes.ollama import OllamaController
from gateway.routes.ollama import running as ollama_root
from gateway.routes.openai import OpenAIController
from gateway.routes.responses import ResponsesController
from gateway.routes.status import StatusController
from gateway.routes.ui import console
from gateway.tokens import load_counter
from gateway.transport import transport_for

log = logging.getLogger(__name__)

_PARAM_TYPE = re.compile(r":\w+}")  # "/memory/{memory_id:int}" is told as "/memory/{memory_id}"
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> Litestar:
    """The gateway as an ASGI app. `transport` replaces the network to Ollama (tests pass a fake one)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.upstream.timeout_s, connect=5.0)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        count, tokenizer = await asyncio.to_thread(load_counter, settings.model.tokenizer)
        app.state.tokenizer = tokenizer
        upstream = transport or transport_for(settings.upstream.url)
        data_dir = Path(settings.memory.data_dir)
        datadir.claim(data_dir)
        try:
            async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=upstream) as client:
                ollama = Ollama(client, settings.upstream.url, direct=upstream, metrics=metrics)
                memory = await Memory.open(settings, ollama)
                try:
                    await memory.start()
                    calibration = await restore_calibration(memory.journal)
                    prefill = await restore_prefill(memory.journal, settings.upstream.num_parallel)
                    chat = Chat(ollama, memory, count, settings, calibration, prefill, metrics)
                    consolidator = Consolidator(memory, ollama, count, settings)
                    app.state.update(ollama=ollama, chat=chat, memory=memory, consolidator=consolidator)
                    log.info("gateway %s in front of Ollama at %s", __version__, settings.upstream.url)
                    try:
                        yield
                    finally:
                        await consolidator.close()
                        await chat.drain()
                finally:
                    await memory.close()
        finally:
            datadir.release(data_dir)

    return Litestar(
        route_handlers=[
            OpenAIController,
            ResponsesController,
            OllamaController,
            ollama_root,
            MemoryController,
            ListingController,
            console,
            simple_chat,
            StatusController,
            swagger_ui,
            redoc,
            docs_assets,
        ],
        lifespan=[lifespan],
        middleware=[
            metrics.middleware,
            request_id_middleware,
            browser.json_only_middleware,
            timeouts.body_timeout(settings.limits.body_timeout_s),
        ],
        cors_config=browser.cors(settings.server.cors_origins),
        before_request=bodies.strictly,
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "ollama": Provide(_from_state("ollama"), sync_to_thread=False),
            "chat": Provide(_from_state("chat"), sync_to_thread=False),
            "memory": Provide(_from_state("memory"), sync_to_thread=False),
            "consolidator": Provide(_from_state("consolidator"), sync_to_thread=False),
        },
        state=State({"settings": settings, "metrics": metrics}),
        exception_handlers={
            GatewayError: _gateway_error,
            ValidationException: _validation_error,
            RecursionError: _unreadable_body,  # JSON nested past what the decoder follows
            UnicodeDecodeError: _unreadable_body,  # bytes in a JSON string that are not UTF-8
            HTTPException: _http_error,
            404: _http_error,
            405: _http_error,
            Exception: _unexpected_error,
        },
        request_max_body_size=settings.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Memory gateway",
            version=__version__,
            description="An OpenAI-compatible gateway in front of Ollama, with long-term memory per user.",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        logging_config=None,
    )


def _from_state(name: str) -> Any:
    def provide(state: State) -> Any:
        return state[name]

    return provide


def _envelope(request: Request[Any, Any, Any], status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    """The error as the door speaks it: OpenAI's envelope, or on Ollama's routes Ollama's `{"error": "..."}`."""
    if ollama_door.served(request.url.path):
        body = ollama_door.error(str(body["error"]["message"]))
    return Response(body, status_code=status, media_type="application/json")


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[dict[str, Any]]:
    return _envelope(request, exc.status, exc.envelope())


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    """Litestar's body errors, told as OpenAI does: what is wrong and where (`param`)."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    if not problems:
        problem = f"Could not parse the JSON body: {exc.detail}"
        return _envelope(request, 400, error_envelope(problem, "invalid_request_error"))
    first = problems[0] if isinstance(problems[0], dict) else {}
    message = str(first.get("message", exc.detail))
    param = first.get("key") if first.get("key") != "data" else None  # "data" is the whole body
    if param:
        message = f"{message} (at `{param}`)"
    return _envelope(request, 400, error_envelope(message, "invalid_request_error", param))


def _unreadable_body(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    why = "it is nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        why = f"it is not UTF-8 ({exc.reason} at byte {exc.start})"
    return _envelope(request, 400, error_envelope(f"Could not parse the JSON body: {why}.", "invalid_request_error"))


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status, detail = exc.status_code, exc.detail
    if status == 404 and request.scope.get("route_handler") is None:  # no route matched, not a missing memory
        detail = _no_route(request)
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    code = "payload_too_large" if status == 413 else None
    response = _envelope(request, status, error_envelope(detail, kind, None, code))
    response.headers.update(exc.headers or {})  # a 405's `Allow`, a 401's `WWW-Authenticate`
    return response


def _no_route(request: Request[Any, Any, Any]) -> str:
    """Say what the gateway serves, and where a client most likely went wrong (its base URL)."""
    paths = (_PARAM_TYPE.sub("}", route.path) for route in request.app.routes)
    served = {path for path in paths if not path.startswith("/schema")}
    asked = request.url.path
    hint = ""
    if "/v1" + asked in served:
        hint = f" Did you mean /v1{asked}? An OpenAI client's base URL ends in /v1."
    elif asked.startswith("/v1/v1/"):
        hint = " The path has /v1 twice: the client's base URL should end in /v1 once."
    listing = ", ".join(sorted(served))
    return f"No route {request.method} {asked}.{hint} The gateway serves {listing}; /docs describes them."


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _envelope(request, 500, error_envelope("internal error in the gateway; see its log", "server_error"))

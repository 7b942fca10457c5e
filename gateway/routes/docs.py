"""The API's own documentation: `/docs` (Swagger UI), `/redoc`, and the error responses every route lists."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Example
from litestar.params import Body

from gateway.protocol import ErrorResponse

_WHY = {
    400: "Malformed JSON, a schema error, or a parameter Ollama cannot honour",
    401: "A missing or wrong API key (when [auth] keys are set)",
    403: "The API key belongs to another user than the one named",
    404: "The model does not exist in Ollama, or the memory or block does not",
    413: "The request body is larger than [limits] max_body_bytes",
    502: "Ollama is unreachable or failed",
    503: "Ollama is busy",
    504: "Ollama did not answer in time",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAI error envelope, documented for each status a route can answer with."""
    return {status: ResponseSpec(data_container=ErrorResponse, description=_WHY[status]) for status in statuses}


def example(value: dict[str, Any]) -> Any:
    """A request body's example for the schema (and for "try it out" in /docs)."""
    return Body(examples=[Example(summary="example", value=value)])


_swagger = SwaggerRenderPlugin(path="/docs")
_redoc = RedocRenderPlugin(path="/redoc")


@get("/docs", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def swagger_ui(request: Request[Any, Any, Any]) -> bytes:
    """Swagger UI over the schema at /schema/openapi.json."""
    return _swagger.render(request, request.app.openapi_schema.to_schema())


@get("/redoc", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def redoc(request: Request[Any, Any, Any]) -> bytes:
    return _redoc.render(request, request.app.openapi_schema.to_schema())

"""The API's own documentation: `/docs` (Swagger UI), `/redoc`, their assets (served here: the pages work offline),
and the error responses every route lists."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, get
from litestar.datastructures import CacheControlHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.static_files import create_static_files_router

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


ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's files, from the drf-spectacular-sidecar package
_SWAGGER = f"{ASSETS}/swagger-ui-dist"
_FAVICON = f"<link rel='icon' type='image/png' href='{_SWAGGER}/favicon-32x32.png'>"
# Nothing leaves the machine: ReDoc would fetch its logo from its CDN, which `img-src` stops before it tries.
_OFFLINE = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline';"
    " style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:;"
    " connect-src 'self'"
}

_swagger = SwaggerRenderPlugin(
    path="/docs",
    js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
    css_url=f"{_SWAGGER}/swagger-ui.css",
    standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
    favicon=_FAVICON,
)
_redoc = RedocRenderPlugin(
    path="/redoc", js_url=f"{ASSETS}/redoc/bundles/redoc.standalone.js", google_fonts=False, favicon=_FAVICON
)


def _assets_folder() -> Path:
    """The package's static folder, found without importing it (its `__init__` imports Django)."""
    spec = importlib.util.find_spec("drf_spectacular_sidecar")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drf-spectacular-sidecar is not installed: /docs and /redoc have no assets")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "drf_spectacular_sidecar"


docs_assets = create_static_files_router(
    path=ASSETS,
    directories=[_assets_folder()],
    name="docs-assets",
    include_in_schema=False,
    cache_control=CacheControlHeader(max_age=86_400, public=True),
)


@get("/docs", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False, response_headers=_OFFLINE)
def swagger_ui(request: Request[Any, Any, Any]) -> bytes:
    """Swagger UI over the schema at /schema/openapi.json."""
    return _swagger.render(request, request.app.openapi_schema.to_schema())


@get("/redoc", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False, response_headers=_OFFLINE)
def redoc(request: Request[Any, Any, Any]) -> bytes:
    return _redoc.render(request, request.app.openapi_schema.to_schema())

"""The memory console: `GET /ui`, a page to see, search, edit and forget what the gateway remembers.

Its page, script and style are package files under `gateway/ui/`, served as they are: nothing to build, and
nothing fetched from elsewhere. The page itself holds no memory; it calls the memory API with the key the user
gives it, so the API's rules (a user's key reaches that user only) are the console's rules.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from litestar import Response, Router, get

from gateway.errors import NotFound

_TYPES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
# The page runs its own script and style only: a memory that smuggles markup in can run nothing.
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new version of the gateway serves its new console at once
}


@cache
def _file(name: str) -> bytes:
    return resources.files("gateway").joinpath("ui", name).read_bytes()


def _served(name: str) -> Response[bytes]:
    return Response(_file(name), media_type=_TYPES[name], headers=_HEADERS)


@get("/", include_in_schema=False, sync_to_thread=False)
def page() -> Response[bytes]:
    return _served("index.html")


@get("/static/{name:str}", include_in_schema=False, sync_to_thread=False)
def asset(name: str) -> Response[bytes]:
    if name not in _TYPES or name == "index.html":
        raise NotFound(f"the console has no file {name!r}")
    return _served(name)


console = Router(path="/ui", route_handlers=[page, asset])

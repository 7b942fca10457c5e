"""What a web browser may do with the gateway: send bodies only as JSON, and read answers only from the origins
`[server] cors_origins` names.

A page the user opens elsewhere can make the browser post a form or `text/plain` to the gateway without asking
first (a "simple" cross-site request); a JSON body needs a CORS preflight, which only the configured origins
pass. So every body must say it is JSON (`415` otherwise), and no cross-site page can plant or read memories,
even when no API keys are set.
"""

from __future__ import annotations

import json
import re

from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from gateway.doors import ollama as ollama_door
from gateway.errors import error_envelope

_JSON = re.compile(rb"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
_WITH_BODY = {"POST", "PUT", "PATCH"}


def json_only_middleware(app: ASGIApp) -> ASGIApp:
    """Answer 415 to a request whose body does not say it is JSON."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] in _WITH_BODY:
            headers = dict(scope["headers"])
            kind = headers.get(b"content-type", b"")
            empty = not kind and headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers
            # Ollama takes any body as JSON, and its docs' `curl -d` sends a form type: not a browser's page
            # when no Origin is sent (browsers send one with every cross-site POST)
            ollama_client = ollama_door.served(scope["path"]) and b"origin" not in headers
            if not empty and not _JSON.match(kind) and not ollama_client:
                await _refuse(send, kind.decode("latin-1")[:100])
                return
        await app(scope, receive, send)

    return middleware


async def _refuse(send: Send, kind: str) -> None:
    said = f"Content-Type: {kind}" if kind else "no Content-Type"
    body = json.dumps(
        error_envelope(
            f"Send the body as JSON, with Content-Type: application/json (this request had {said}).",
            "invalid_request_error",
            "Content-Type",
            "unsupported_media_type",
        )
    ).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 415,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


def cors(origins: list[str]) -> CORSConfig | None:
    """CORS for the configured origins only; none by default (no cross-site page can call the gateway)."""
    if not origins:
        return None
    return CORSConfig(allow_origins=origins, allow_methods=["*"], allow_headers=["*"], expose_headers=["*"])

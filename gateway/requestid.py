"""A request id for every request: taken from `X-Request-Id` when sane, else made; echoed in the response
and stamped on every log line written while the request (or work it started) runs."""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
current: ContextVar[str] = ContextVar("request_id", default="-")
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), b"")
        rid = given.decode() if _SANE.match(given) else "req_" + secrets.token_hex(8)
        token = current.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            current.reset(token)

    return middleware


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` for the `%(request_id)s` of the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get()
        return True

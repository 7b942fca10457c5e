"""How long the gateway waits on a client: each part of a request body must come within `[limits]
body_timeout_s`, or the request gets a 408 (a `Content-Length` longer than the body used to hold it forever)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from gateway.errors import RequestTimeout


def body_timeout(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware: a body part that does not come within `seconds` raises `RequestTimeout` where it is read."""

    def middleware_factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return

            whole = False  # the body has come: waiting for a disconnect (a stream listens for one) is not timed

            async def receive_in_time() -> ReceiveMessage:
                nonlocal whole
                if whole:
                    return await receive()
                try:
                    message = await asyncio.wait_for(receive(), seconds)
                except TimeoutError:
                    raise RequestTimeout(seconds) from None
                whole = message["type"] != "http.request" or not message.get("more_body", False)
                return message

            await app(scope, receive_in_time, send)

        return middleware

    return middleware_factory

"""API keys: `[auth] keys` maps each key to the user whose memory it reaches. No keys: the gateway is open."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.config import AuthSettings
from gateway.errors import Unauthorized


def key_user(headers: Mapping[str, str], auth: AuthSettings) -> str | None:
    """The user of the request's bearer key; None when no keys are configured. A wrong key is refused."""
    if not auth.keys:
        return None
    scheme, _, given = headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and given:
        for key, user in auth.keys.items():
            if hmac.compare_digest(key.encode(), given.encode()):
                return user
    raise Unauthorized()


def require_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the request carries a configured key (or none are configured)."""
    key_user(connection.headers, connection.app.state.settings.auth)

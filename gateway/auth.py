"""API keys: `[auth] keys` maps each key to the user whose memory it reaches. No keys: the gateway is open."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.config import AuthSettings
from gateway.errors import Forbidden, Unauthorized


def key_user(headers: Mapping[str, str], auth: AuthSettings) -> str | None:
    """The user a bearer key stands for; None without keys, or for an admin key (it may act for anyone)."""
    if not auth.keys and not auth.admin_keys:
        return None
    given = _bearer(headers)
    if any(hmac.compare_digest(key.encode(), given.encode()) for key in auth.admin_keys):
        return None
    for key, user in auth.keys.items():
        if hmac.compare_digest(key.encode(), given.encode()):
            return user
    raise Unauthorized()


def user_for(headers: Mapping[str, str], auth: AuthSettings, asked: str | None, default: str) -> str:
    """Whose memory a memory-API request may touch: the key's user; or, for an admin or without keys, the
    user it names (else the default). A user key naming another user is refused."""
    own = key_user(headers, auth)
    if own is None:
        return asked or default
    if asked and asked != own:
        raise Forbidden(f"this API key reaches the memory of user {own!r} only, not {asked!r}")
    return own


def require_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the request carries a configured key (or none are configured)."""
    caller(connection)


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key's user for this request (a route reads it here rather than take `settings` as a second
    dependency: Litestar resolves two or more in a task group, a fifth of a millisecond per request)."""
    return key_user(connection.headers, connection.app.state.settings.auth)


def _bearer(headers: Mapping[str, str]) -> str:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""

"""API keys: `[auth] keys` maps each key to the user whose memory it reaches. No keys: the gateway is open.

An admin key (`admin_keys`) may act for any user. A proxy key (`proxy_keys`) belongs to a trusted front end
such as Open WebUI, which serves many people with one key: each request names its user in an identity
header, and each named user has their own memory.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.config import AuthSettings, Settings
from gateway.errors import Forbidden, Unauthorized, UnnamedUser
from gateway.identity import named_user, valid_id

PROXY = "proxy"  # what `key_of` says for a proxy key


def key_of(headers: Mapping[str, str], auth: AuthSettings) -> str | None:
    """What the bearer key is: its user's name, `PROXY` for a proxy key, or None for an admin key or when no
    keys are set (the request may act for anyone); a missing or unknown key is refused."""
    if not auth.keys and not auth.admin_keys and not auth.proxy_keys:
        return None
    given = _bearer(headers).encode()
    if any(hmac.compare_digest(key.encode(), given) for key in auth.admin_keys):
        return None
    if any(hmac.compare_digest(key.encode(), given) for key in auth.proxy_keys):
        return PROXY
    for key, user in auth.keys.items():
        if hmac.compare_digest(key.encode(), given):
            return user
    raise Unauthorized()


def key_user(headers: Mapping[str, str], auth: AuthSettings, user_headers: Sequence[str] = ()) -> str | None:
    """The user a request's key stands for: its own, or for a proxy key the user an identity header names;
    None without keys, or for an admin key (it may act for anyone)."""
    own = key_of(headers, auth)
    if own is not PROXY:
        return own
    if named := named_user(headers, user_headers):
        return named
    raise UnnamedUser(user_headers)


def user_for(headers: Mapping[str, str], settings: Settings, asked: str | None) -> str:
    """Whose memory a memory-API request may touch: the key's user; or, for an admin or without keys, the
    user it names (else the default). A user key naming another user is refused. A proxy key names its user
    in an identity header, else in the request."""
    own = key_of(headers, settings.auth)
    if own is PROXY:
        own = named_user(headers, settings.identity.user_headers)
        if own is None and not asked:
            raise UnnamedUser(settings.identity.user_headers)
    if own is None:
        return valid_id(asked or settings.identity.default_user)
    if asked and asked != own:
        raise Forbidden(f"this API key reaches the memory of user {own!r} only, not {asked!r}")
    return own


def require_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the request carries a configured key (or none are configured)."""
    key_of(connection.headers, connection.app.state.settings.auth)


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: an admin key (or no keys configured), for what acts on everyone's behalf."""
    if key_of(connection.headers, connection.app.state.settings.auth) is not None:
        raise Forbidden("this takes an admin key ([auth] admin_keys)")


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key's user for this request (a route reads it here rather than take `settings` as a second
    dependency: Litestar resolves two or more in a task group, a fifth of a millisecond per request)."""
    settings = connection.app.state.settings
    return key_user(connection.headers, settings.auth, settings.identity.user_headers)


def _bearer(headers: Mapping[str, str]) -> str:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""

"""Who is asking, in which conversation, and what memory may do for this request (pure)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from msgspec import Meta, Struct

from gateway import openwebui
from gateway.config import IdentitySettings
from gateway.errors import InvalidRequest
from gateway.protocol import ChatMessage, TextContentPart

MemoryMode = Literal["on", "read", "off"]
ID_LENGTH = 256  # the longest user or conversation id (Open WebUI's are 36-character UUIDs)
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters (a NUL, a newline)
Id = Annotated[str, Meta(min_length=1, max_length=ID_LENGTH, pattern=ID_PATTERN)]  # for request bodies
_ID = re.compile(ID_PATTERN)
MEMORY_HEADER = "x-memory"


class Identity(Struct, frozen=True):
    user: str
    conversation: str
    mode: MemoryMode
    named: bool = False  # the client named the conversation (a header), rather than us fingerprinting it
    replay: bool = False  # the client sends only its new message: the stored turns go before it


def identify(
    headers: Mapping[str, str],
    messages: list[ChatMessage],
    settings: IdentitySettings,
    *,
    body_user: str | None = None,
    key_user: str | None = None,
) -> Identity:
    """User: the API key's, else a trusted header, else the body's `user`, else the default.

    Conversation: a conversation header, else a fingerprint of the conversation's opening messages, which
    stay the same as a client resends a growing history.
    """
    user = valid_id(key_user or named_user(headers, settings.user_headers) or body_user or settings.default_user)
    header, named = _first_header(headers, settings.conversation_headers)
    if named is not None:
        valid_id(named, "conversation")
    mode = memory_mode(headers, messages)
    return Identity(
        user=user,
        conversation=named or fingerprint(user, messages),
        mode="read" if mode == "on" and openwebui.is_temporary(named) else mode,
        named=named is not None,
        replay=header.lower() in (h.lower() for h in settings.history_headers),
    )


def valid_id(value: str, what: str = "user") -> str:
    """A user or conversation id as the gateway keeps it: 1 to 256 characters, none of them a control."""
    if len(value) > ID_LENGTH or not _ID.match(value):
        shown = value[:40].encode("unicode_escape").decode()
        raise InvalidRequest(
            f"a {what} id is 1 to {ID_LENGTH} characters without control characters, not {len(value)}"
            f" characters starting {shown!r}",
            param=what,
        )
    return value


def named_user(headers: Mapping[str, str], names: Sequence[str]) -> str | None:
    """The user the first of these identity headers names, if any."""
    return _first_header(headers, names)[1]


def memory_mode(headers: Mapping[str, str], messages: list[ChatMessage]) -> MemoryMode:
    """`X-Memory`, else on; off for a front end's background task (its prompt quotes the chat)."""
    value = headers.get(MEMORY_HEADER, "on").strip().lower()
    if value not in ("on", "read", "off"):
        raise InvalidRequest(f"X-Memory must be on, read or off, not {value!r}", param="X-Memory")
    if openwebui.is_task(headers, [(m.role, text_of(m)) for m in messages]):
        return "off"
    return value  # type: ignore[return-value]


def fingerprint(user: str, messages: list[ChatMessage]) -> str:
    """A stable id from the user, the system prompt and the first user message."""
    system = next((text_of(m) for m in messages if m.role in ("system", "developer")), "")
    first = next((words_of(m) for m in messages if m.role == "user"), "")
    digest = hashlib.sha256("\x1f".join((user, system, first)).encode()).hexdigest()
    return "fp-" + digest[:20]


def words_of(message: ChatMessage) -> str:
    """The user's own words in a message, without what a front end wrapped them in."""
    return openwebui.own_words(text_of(message)) if message.role == "user" else text_of(message)


def text_of(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content or () if isinstance(part, TextContentPart))


def _first_header(headers: Mapping[str, str], names: Sequence[str]) -> tuple[str, str | None]:
    """The first of these headers that has a value: its name and value ("", None when none has)."""
    for name in names:
        value = headers.get(name.lower(), "").strip()
        if value:
            return name, value
    return "", None

"""Identity, conversation and memory mode, on literal values."""

from __future__ import annotations

import msgspec
import pytest

from gateway.config import IdentitySettings
from gateway.errors import InvalidRequest
from gateway.identity import fingerprint, identify
from gateway.protocol import ChatMessage

SETTINGS = IdentitySettings()


def msgs(*texts: str) -> list[ChatMessage]:
    roles = ["system", "user", "assistant", "user", "assistant"]
    return [ChatMessage(role=roles[i], content=text) for i, text in enumerate(texts)]  # type: ignore[arg-type]


def test_user_precedence() -> None:
    history = msgs("sys", "hello")
    headers = {"x-openwebui-user-id": "webui-7", "x-user-id": "other"}
    assert identify(headers, history, SETTINGS, body_user="body", key_user="key").user == "key"
    assert identify(headers, history, SETTINGS, body_user="body").user == "webui-7"
    assert identify({"x-user-id": "u2"}, history, SETTINGS, body_user="body").user == "u2"
    assert identify({}, history, SETTINGS, body_user="body").user == "body"
    assert identify({}, history, SETTINGS).user == "default"


def test_conversation_from_header_else_a_stable_fingerprint() -> None:
    assert identify({"x-conversation-id": "chat-1"}, msgs("s", "hi"), SETTINGS).conversation == "chat-1"
    first = identify({}, msgs("s", "hi"), SETTINGS).conversation
    later = identify({}, msgs("s", "hi", "hello!", "how are you?"), SETTINGS).conversation
    assert first == later
    assert first.startswith("fp-")
    assert identify({}, msgs("s", "another opening"), SETTINGS).conversation != first
    assert fingerprint("ann", msgs("s", "hi")) != fingerprint("bob", msgs("s", "hi"))


@pytest.mark.parametrize(("header", "mode"), [(None, "on"), ("read", "read"), ("OFF", "off"), (" on ", "on")])
def test_memory_mode(header: str | None, mode: str) -> None:
    headers = {"x-memory": header} if header else {}
    assert identify(headers, msgs("s", "hi"), SETTINGS).mode == mode


def test_bad_memory_header_is_400() -> None:
    with pytest.raises(InvalidRequest, match="X-Memory"):
        identify({"x-memory": "maybe"}, msgs("s", "hi"), SETTINGS)


def test_open_webui_housekeeping_turns_memory_off() -> None:
    task = msgspec.convert(
        {"role": "user", "content": "### Task:\nGenerate a concise title for the chat history."}, ChatMessage
    )
    assert identify({"x-memory": "on"}, [task], SETTINGS).mode == "off"


def test_a_named_conversation_is_told_apart_from_a_fingerprint() -> None:
    assert identify({"x-openwebui-chat-id": "c9"}, msgs("s", "hi"), SETTINGS).named is True
    assert identify({}, msgs("s", "hi"), SETTINGS).named is False


def test_stored_history_is_replayed_only_for_a_client_that_asks_for_it() -> None:
    """Open WebUI names its chats but always sends the branch the user is on: its chat id asks for no replay."""
    webui = identify({"x-openwebui-chat-id": "c9"}, msgs("s", "hi"), SETTINGS)
    assert (webui.named, webui.replay) == (True, False)
    stateful = identify({"x-conversation-id": "c9"}, msgs("s", "hi"), SETTINGS)
    assert (stateful.named, stateful.replay) == (True, True)
    assert identify({}, msgs("s", "hi"), SETTINGS).replay is False
    both = identify({"x-openwebui-chat-id": "c9", "x-conversation-id": "c8"}, msgs("s", "hi"), SETTINGS)
    assert (both.conversation, both.replay) == ("c9", False)  # the first conversation header named it
    custom = IdentitySettings(history_headers=["X-OpenWebUI-Chat-Id"])
    assert identify({"x-openwebui-chat-id": "c9"}, msgs("s", "hi"), custom).replay is True


def test_a_temporary_chat_recalls_but_stores_nothing() -> None:
    temporary = {"x-openwebui-chat-id": "temporary:Yx9Kq2mZb3AAAB"}
    assert identify(temporary, msgs("s", "hi"), SETTINGS).mode == "read"
    assert identify({**temporary, "x-memory": "off"}, msgs("s", "hi"), SETTINGS).mode == "off"
    assert identify({"x-openwebui-chat-id": "4f6d0c1e"}, msgs("s", "hi"), SETTINGS).mode == "on"


def test_a_turn_with_a_file_keeps_its_conversation() -> None:
    """The first message comes wrapped in the RAG template once, and as the user wrote it ever after."""
    wrapped = "### Task:\nRespond to the user query...\n\n<context>\n<source>x</source>\n</context>\n\nhi"
    first = identify({}, msgs("s", wrapped), SETTINGS)
    assert first.mode == "on"
    assert first.conversation == identify({}, msgs("s", "hi", "hello", "more"), SETTINGS).conversation


@pytest.mark.parametrize("bad", ["", "a\x00b", "line\nbreak", "x" * 257, "tab\there", "\x7f"])
def test_ids_are_refused_at_the_door_with_a_clear_400(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="1 to 256 characters without control characters") as caught:
        identify({}, msgs("s", "hi"), SETTINGS, body_user=bad or "\x00")
    assert caught.value.param == "user"
    with pytest.raises(InvalidRequest, match="conversation id") as named:
        identify({"x-conversation-id": bad or "\x00"}, msgs("s", "hi"), SETTINGS)
    assert named.value.param == "conversation"


def test_ordinary_ids_pass() -> None:
    for good in [
        "ann",
        "ann@example.com",
        "c2a7044c-1aff-452d-8b45-d5f0427ba17d",
        "temporary:AdYE4LWkt_XBq",
        "Zoë",
        "x" * 256,
    ]:
        assert identify({}, msgs("s", "hi"), SETTINGS, body_user=good).user == good

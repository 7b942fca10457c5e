"""API keys: which user a request's bearer key reaches."""

from __future__ import annotations

import pytest

from gateway.auth import key_user
from gateway.config import AuthSettings
from gateway.errors import Unauthorized, UnnamedUser

KEYS = AuthSettings(keys={"sk-ann-1234": "ann", "sk-bob-5678": "bob"})


def test_without_keys_the_gateway_is_open() -> None:
    assert key_user({}, AuthSettings()) is None
    assert key_user({"authorization": "Bearer anything"}, AuthSettings()) is None
    assert key_user({"authorization": "nonsense"}, AuthSettings()) is None


def test_a_bearer_key_reaches_its_user() -> None:
    assert key_user({"authorization": "Bearer sk-ann-1234"}, KEYS) == "ann"
    assert key_user({"authorization": "Bearer sk-bob-5678"}, KEYS) == "bob"


def test_the_scheme_is_case_insensitive() -> None:
    assert key_user({"authorization": "bearer sk-bob-5678"}, KEYS) == "bob"
    assert key_user({"authorization": "BEARER sk-bob-5678"}, KEYS) == "bob"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": ""},
        {"authorization": "Bearer"},
        {"authorization": "Bearer "},
        {"authorization": "Basic sk-ann-1234"},
        {"authorization": "sk-ann-1234"},
        {"authorization": "Bearer sk-ann-123"},
        {"authorization": "Bearer sk-ann-12345"},
        {"authorization": "Bearer SK-ANN-1234"},
        {"x-api-key": "sk-ann-1234"},
    ],
)
def test_a_missing_or_wrong_key_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as caught:
        key_user(headers, KEYS)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.envelope()["error"]["type"] == "authentication_error"


PROXY = AuthSettings(keys={"sk-ann-1234": "ann"}, proxy_keys=["sk-webui-9999"], admin_keys=["sk-admin-0000"])
NAMES = ["X-OpenWebUI-User-Id", "X-User-Id"]


def test_a_proxy_key_reaches_the_user_its_front_end_names() -> None:
    webui = {"authorization": "Bearer sk-webui-9999"}
    assert key_user({**webui, "x-openwebui-user-id": "u-1"}, PROXY, NAMES) == "u-1"
    assert key_user({**webui, "x-user-id": "u-2"}, PROXY, NAMES) == "u-2"
    # a user key's own user, whatever a header says; an admin key acts for anyone
    assert key_user({"authorization": "Bearer sk-ann-1234", "x-user-id": "bob"}, PROXY, NAMES) == "ann"
    assert key_user({"authorization": "Bearer sk-admin-0000"}, PROXY, NAMES) is None


def test_a_proxy_key_without_a_named_user_says_which_open_webui_setting_sends_it() -> None:
    with pytest.raises(UnnamedUser) as caught:
        key_user({"authorization": "Bearer sk-webui-9999"}, PROXY, NAMES)
    assert caught.value.status == 400
    assert "ENABLE_FORWARD_USER_INFO_HEADERS=true" in caught.value.message
    assert "X-OpenWebUI-User-Id" in caught.value.message


def test_proxy_keys_alone_close_the_gateway() -> None:
    with pytest.raises(Unauthorized):
        key_user({"x-openwebui-user-id": "u-1"}, AuthSettings(proxy_keys=["sk-webui-9999"]), NAMES)

"""API keys: which user a request's bearer key reaches."""

from __future__ import annotations

import pytest

from gateway.auth import key_user
from gateway.config import AuthSettings
from gateway.errors import Unauthorized

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

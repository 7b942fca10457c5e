"""The gateway's exceptions, and the OpenAI error envelope they become.

GatewayError
├── InvalidRequest                400 invalid_request_error
│   ├── UnsupportedParameter      400 invalid_request_error / unsupported_parameter
│   ├── UnnamedUser               400 invalid_request_error / missing_user
│   └── ContextLengthExceeded     400 invalid_request_error / context_length_exceeded
├── ModelNotFound                 404 invalid_request_error / model_not_found
├── PayloadTooLarge               413 invalid_request_error / payload_too_large
├── RequestTimeout                408 invalid_request_error / request_timeout
├── Unauthorized                  401 authentication_error / invalid_api_key
├── Forbidden                     403 permission_error / permission_denied
├── NotFound                      404 not_found_error / not_found
├── IndexFailure                  503 server_error / memory_index_failed
│   └── IndexMismatch             503 server_error / memory_index_mismatch
└── UpstreamError                 502 upstream_error
    ├── UpstreamUnavailable       502 upstream_error / upstream_unavailable
    ├── UpstreamBusy              503 upstream_error / upstream_busy
    └── UpstreamTimeout           504 upstream_error / upstream_timeout

Each class sets its status, type and code; one handler in `app.py` turns any of them into
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.message, self.type, self.param, self.code)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"

    def __init__(self, param: str, why: str) -> None:
        super().__init__(f"`{param}` is not supported: {why}", param=param)


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"

    def __init__(self, *, window: int, reserve: int, needed: int, at_least: bool = False) -> None:
        super().__init__(
            f"This model's context window is {window} tokens, {reserve} of them kept for the answer; "
            f"the system prompt and the newest message alone need {'at least ' if at_least else ''}{needed}."
            " Shorten the message, "
            "or lower max_tokens.",
            param="messages",
        )


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist in Ollama. Pull it with `ollama pull {model}`, "
            "or list the available ones at GET /v1/models.",
            param="model",
        )


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body stopped arriving for {seconds:g} s before it was whole (is its Content-Length"
            " longer than the body?)."
        )


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__(
            "Incorrect or missing API key. Send `Authorization: Bearer <key>` with a key from [auth] keys."
        )


class UnnamedUser(InvalidRequest):
    code = "missing_user"

    def __init__(self, headers: Sequence[str]) -> None:
        super().__init__(
            "This API key is a proxy key ([auth] proxy_keys): a front end serving many people with one key must"
            f" name the person in a header ({', '.join(headers)}), so that each keeps their own memory. In Open"
            " WebUI, set ENABLE_FORWARD_USER_INFO_HEADERS=true.",
            param=headers[0] if headers else None,
        )


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class IndexFailure(GatewayError):
    """The vector index failed; chat goes on without recall, the memory API answers 503."""

    status = 503
    code = "memory_index_failed"


class IndexMismatch(IndexFailure):
    """The index was built with another embedding model or size: `gateway reindex` rebuilds it."""

    code = "memory_index_mismatch"


class DataDirBusy(Exception):
    """Another gateway process owns this data directory."""


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code: str | None = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"Cannot reach Ollama at {url}. Start it with `ollama serve`, "
            "or point the gateway at it with [upstream] url / GATEWAY_UPSTREAM_URL."
        )


class UpstreamBusy(UpstreamError):
    status = 503
    code = "upstream_busy"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


def error_envelope(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}

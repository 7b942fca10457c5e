"""Raw HTTP against a running gateway: what SDKs never send, and the service routes."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.conftest import Fake

CHAT = "/v1/chat/completions"


def assert_envelope(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (b'{"messages": [', None, "truncated"),
        (b"not json at all", None, "malformed"),
        (b'{"model": "qwen3:4b"}', None, "messages"),
        (b'{"messages": "hi"}', "messages", "Expected `array`"),
        (b'{"messages": []}', "messages", "length"),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}', "messages[0].role", "robot"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 9}', "temperature", "<= 2"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens", ">= 1"),
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "nested too deeply"),
        (b'{"messages": [{"role": "user", "content": "\xff\xfe hi"}]}', None, "not UTF-8"),
    ],
)
def test_bad_chat_bodies_are_400_envelopes(gateway_url: str, body: bytes, param: str | None, says: str) -> None:
    response = httpx.post(gateway_url + CHAT, content=body, headers={"content-type": "application/json"})
    error = assert_envelope(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in str(error["message"])


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"max_tokens": "10"}, "max_tokens"),  # not converted leniently, as Litestar would
        ({"temperature": "0.5"}, "temperature"),
        ({"stream": "true"}, "stream"),
        ({"options": {"num_ctx": -1}}, "options.num_ctx"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}],
                    }
                ]
            },
            "messages[0].content",
        ),
    ],
)
def test_values_ollama_cannot_take_are_refused_at_the_door(
    gateway_url: str, fake: Fake, extra: dict[str, object], param: str
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    response = httpx.post(gateway_url + CHAT, json=body)
    assert_envelope(response, 400)
    assert response.json()["error"]["param"] == param
    assert fake.requests() == []


def test_http_image_urls_are_refused_by_name(gateway_url: str) -> None:
    content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    response = httpx.post(gateway_url + CHAT, json={"messages": [{"role": "user", "content": content}]})
    error = assert_envelope(response, 400)
    assert "data: URL" in str(error["message"])


def test_inline_images_go_to_ollama(gateway_url: str, fake: Fake) -> None:
    content = [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    body = {"messages": [{"role": "user", "content": content}]}
    response = httpx.post(gateway_url + CHAT, json=body, headers={"X-Memory": "off"})  # the translation alone
    assert response.status_code == 200
    assert fake.requests()[0]["messages"] == [{"role": "user", "content": "what", "images": ["iVBORw0KGgo="]}]


def test_success_is_200_not_201(gateway_url: str) -> None:
    response = httpx.post(gateway_url + CHAT, json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    response = httpx.post(gateway_url + "/v1/embeddings", json={"input": "hi", "model": "nomic-embed-text"})
    assert response.status_code == 200


@pytest.mark.parametrize("memory_id", [2**63, 2**70, 0, -1])
def test_a_memory_id_sqlite_cannot_hold_is_a_400(gateway_url: str, memory_id: int) -> None:
    error = assert_envelope(httpx.delete(f"{gateway_url}/memory/{memory_id}"), 400)
    assert error["param"] == "memory_id"


def test_unknown_route_and_method_are_envelopes(gateway_url: str) -> None:
    missing = assert_envelope(httpx.get(gateway_url + "/v1/nothing-here"), 404)
    assert "/v1/chat/completions" in str(missing["message"])  # a 404 names what the gateway serves
    assert "/memory/search" in str(missing["message"])
    no_v1 = assert_envelope(httpx.post(gateway_url + "/chat/completions", json={}), 404)
    assert "Did you mean /v1/chat/completions?" in str(no_v1["message"])
    twice = assert_envelope(httpx.post(gateway_url + "/v1/v1/chat/completions", json={}), 404)
    assert "/v1 twice" in str(twice["message"])
    missing_memory = assert_envelope(httpx.delete(gateway_url + "/memory/123456"), 404)
    assert "gateway serves" not in str(missing_memory["message"])  # a route that answers 404 says its own
    wrong = httpx.get(gateway_url + CHAT)
    assert_envelope(wrong, 405)
    assert "POST" in wrong.headers["allow"].split(", ")


def test_an_idle_connection_outlives_the_clients_pool(gateway_url: str) -> None:
    """httpx keeps an idle connection 5 s: had the server closed it then too, a reuse could meet the close."""
    host, port = gateway_url.removeprefix("http://").split(":")
    request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        assert answer(conn).startswith(b"HTTP/1.1 200")
        time.sleep(6)
        conn.sendall(request)
        assert answer(conn).startswith(b"HTTP/1.1 200")


def test_a_body_that_stops_arriving_is_a_408_and_a_long_stream_is_not(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path, GATEWAY_LIMITS_BODY_TIMEOUT_S="1") as url:
        host, port = url.removeprefix("http://").split(":")
        head = f"POST /memory/add HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(head.encode() + b'\r\n{"content": ')  # and nothing more
            started = time.monotonic()
            late = answer(conn)
            assert late.startswith(b"HTTP/1.1 408"), late[:200]
            assert b"request_timeout" in late
            assert time.monotonic() - started < 20
        # once the body has come, the answer may stream for as long as it takes
        body = {"stream": True, "messages": [{"role": "user", "content": "#slow"}]}
        with httpx.stream("POST", url + CHAT, json=body, timeout=30) as streamed:
            begun = time.monotonic()
            for line in streamed.iter_lines():
                assert "error" not in line
                if time.monotonic() - begun > 2.5:
                    break
        assert time.monotonic() - begun > 2.5


@pytest.mark.parametrize(
    "sent",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"\x16\x03\x01\x02\x00"],
)
def test_bytes_that_are_not_http_get_a_400_envelope(gateway_url: str, sent: bytes) -> None:
    """uvicorn answers these itself, before the app; the TLS hello is a client with https:// by mistake."""
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(sent)
        got = answer(conn)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), got[:200]
    assert b"content-type: application/json" in head.lower()
    error = httpx.Response(400, content=body, headers={"content-type": "application/json"}).json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "Could not parse the HTTP request" in error["message"]


def answer(conn: socket.socket) -> bytes:
    """One whole HTTP response read off a raw connection (b"" if the server closed it)."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = conn.recv(4096)
        if not chunk:
            return got
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += conn.recv(4096)
    return head + b"\r\n\r\n" + body


def test_token_ids_that_do_not_decode_are_a_400_naming_the_input(gateway_url: str) -> None:
    for given in ([[9906, 10**9]], [9906, -1], [[9906], 1917]):
        response = httpx.post(gateway_url + "/v1/embeddings", json={"input": given, "model": "nomic-embed-text"})
        assert assert_envelope(response, 400)["param"] == "input"


def test_body_too_large_is_413(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path, GATEWAY_LIMITS_MAX_BODY_BYTES="1000") as url:
        big = {"messages": [{"role": "user", "content": "x" * 2000}]}
        error = assert_envelope(httpx.post(url + CHAT, json=big), 413)
        assert error["code"] == "payload_too_large"
        small = {"messages": [{"role": "user", "content": "x" * 100}]}
        assert httpx.post(url + CHAT, json=small).status_code == 200


def test_client_disconnect_cancels_the_upstream_request(gateway_url: str, fake: Fake) -> None:
    before = fake.stats()
    body = {"messages": [{"role": "user", "content": "#slow"}], "stream": True}
    with httpx.stream("POST", gateway_url + CHAT, json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
    # the client hung up after one frame; the fake sees Ollama's side of the stream closed soon after
    deadline = time.monotonic() + 10
    while fake.stats()["disconnects"] == before["disconnects"] and time.monotonic() < deadline:
        time.sleep(0.05)
    after = fake.stats()
    assert after["slow_started"] == before["slow_started"] + 1
    assert after["disconnects"] == before["disconnects"] + 1
    # and the gateway is still serving
    assert httpx.post(gateway_url + CHAT, json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 200


def test_sse_framing(gateway_url: str) -> None:
    body = {"messages": [{"role": "user", "content": "a b"}], "stream": True}
    with httpx.stream("POST", gateway_url + CHAT, json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = text.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    assert all(event.startswith("data: ") for event in events[:-1])


@pytest.mark.parametrize(
    "kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
def test_a_body_that_is_not_said_to_be_json_is_refused(gateway_url: str, kind: str | None) -> None:
    """What a page on another site can make the browser send without asking first plants no memory."""
    victim = f"csrf-{abs(hash(kind))}"
    note = b'{"content": "planted by a web page", "user_id": "%s"}' % victim.encode()
    headers = {"content-type": kind} if kind else {}
    response = httpx.post(gateway_url + "/memory/add", content=note, headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.json()["error"]["message"]
    found = httpx.post(gateway_url + "/memory/search", json={"query": "planted web page", "user_id": victim})
    assert found.json()["results"] == []
    charset = {"content-type": "application/json; charset=utf-8"}
    assert httpx.post(gateway_url + "/memory/add", content=note, headers=charset).status_code == 200


def test_cross_origin_pages_are_let_in_only_when_configured(gateway_url: str, fake: Fake, tmp_path: Path) -> None:
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    closed = httpx.options(gateway_url + "/memory/add", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    with processes.gateway(fake.url, tmp_path, GATEWAY_SERVER_CORS_ORIGINS="http://localhost:3000") as url:
        opened = httpx.options(url + "/memory/add", headers=preflight)
        assert opened.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = httpx.options(url + "/memory/add", headers={**preflight, "Origin": "http://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_health_and_status(gateway_url: str, fake: Fake) -> None:
    assert httpx.get(gateway_url + "/health").json() == {"status": "ok"}
    status = httpx.get(gateway_url + "/status").json()
    assert status["upstream"] == {"url": fake.url, "reachable": True, "version": "0.12.6", "error": None}
    assert status["model"]["default"] == "qwen3:4b"
    assert status["model"]["present"] is True
    assert status["model"]["context_window"] == 8192
    assert "nomic-embed-text:latest" in status["models"]


def test_status_says_when_ollama_is_down(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{processes.free_port()}"
    with processes.gateway(closed, tmp_path) as url:
        status = httpx.get(url + "/status").json()
    assert status["upstream"]["reachable"] is False
    assert "ollama serve" in status["upstream"]["error"]
    assert status["model"]["present"] is None


MANAGED = ("pull", "push", "create", "copy", "delete", "blobs/{digest}")


def test_docs_and_schema_cover_every_route(gateway_url: str) -> None:
    schema = httpx.get(gateway_url + "/schema/openapi.json").json()
    assert set(schema["paths"]) == {
        "/v1/models",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/health",
        "/status",
        "/metrics",
        "/memory/add",
        "/memory/search",
        "/memory/{memory_id}",
        "/memory/users/{user_id}",
        "/memory/conversations/{conversation_id}",
        "/memory/core",
        "/memory/core/{label}",
        "/memory/import",
        "/memory/export",
        "/memory/context",
        "/memory/consolidate",
        "/memory/list",
        "/memory/users",
        "/memory/core/proposed/accept",
        "/memory/core/proposed/dismiss",
        "/chat",
        "/v1/completions",
        "/v1/responses",
        "/v1/responses/{response_id}",
        *(f"/api/{name}" for name in ("chat", "generate", "tags", "ps", "version", "show", "embed", "embeddings")),
        *(f"/api/{name}" for name in MANAGED),
    }
    search = schema["paths"]["/memory/search"]["post"]
    assert {"200", "400", "401", "403"} <= set(search["responses"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():  # every route with input shows how it is called
            no_input = (
                "/v1/models",
                "/health",
                "/status",
                "/metrics",
                "/api/tags",
                "/api/ps",
                "/api/version",
                "/memory/users",
            )
            if path in no_input or path.removeprefix("/api/") in MANAGED:
                continue  # no input; or Ollama's model management, relayed as it came (Ollama's docs)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            parameters = operation.get("parameters", [])
            assert body.get("schema", {}).get("examples") or parameters, (method, path)
            assert all(p.get("examples") for p in parameters), (method, path)
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert chat["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletion"
    }
    assert {"400", "404", "502"} <= set(chat["responses"])
    assert "requestBody" in chat
    for page in ("/docs", "/redoc"):
        response = httpx.get(gateway_url + page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "/v1/chat/completions" in response.text  # the schema is in the page

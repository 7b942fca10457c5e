"""Ollama's own API at the gateway's root, through the real `ollama` client, against a running gateway in front
of the fake Ollama: chat with memory as for chat completions, the rest relayed as Ollama serves it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import ollama
import pytest

from tests import processes
from tests.conftest import Fake
from tests.fake_ollama import _vector, asked


@contextmanager
def connected(url: str, **headers: str) -> Iterator[ollama.Client]:
    """An `ollama` client, closed after (it has an `__exit__` but no `__enter__`)."""
    client = ollama.Client(host=url, headers=headers)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def client(gateway_url: str) -> Iterator[ollama.Client]:
    with connected(gateway_url, **{"X-User-Id": "olly"}) as client:
        yield client


def settle(url: str) -> None:
    deadline = time.monotonic() + 20
    while httpx.get(url + "/status").json()["memory"]["journal"]["outbox"] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_root_says_ollama_is_running(gateway_url: str) -> None:
    root = httpx.get(gateway_url + "/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"].startswith("text/plain")
    assert httpx.get(gateway_url + "/api/version").json() == {"version": "0.12.6"}


def test_list_show_and_ps_are_ollamas(client: ollama.Client) -> None:
    assert [m.model for m in client.list().models] == [
        "qwen3:4b",
        "huihui_ai/qwen3-abliterated:4b-v2",
        "nomic-embed-text:latest",
    ]
    shown = client.show("qwen3:4b")
    assert shown.modelinfo is not None
    assert shown.capabilities is not None
    assert "tools" in shown.capabilities
    assert [m.model for m in client.ps().models] == ["qwen3:4b"]


def test_chat_plain_and_streamed_as_ollama_answers(client: ollama.Client, fake: Fake) -> None:
    answer = client.chat("qwen3:4b", messages=[{"role": "user", "content": "hello there"}], options={"top_k": 20})
    assert answer.message.role == "assistant"
    assert answer.message.content == "echo: hello there"
    assert answer.done
    assert answer.done_reason == "stop"
    assert answer.prompt_eval_count
    assert answer.eval_duration
    sent = fake.requests()[-1]
    assert sent["options"]["top_k"] == 20
    assert sent["options"]["num_ctx"] == 8192  # the gateway's window, as for every chat

    parts = list(client.chat("qwen3:4b", messages=[{"role": "user", "content": "count with me"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == "echo: count with me"
    assert [p.done for p in parts][-1] is True
    assert all(p.created_at for p in parts)


def test_a_fact_told_in_one_chat_is_recalled_in_another(client: ollama.Client, fake: Fake, gateway_url: str) -> None:
    client.chat("qwen3:4b", messages=[{"role": "user", "content": "My sister Maud lives in Porto."}])
    settle(gateway_url)
    fake.reset()
    later = client.chat("qwen3:4b", messages=[{"role": "user", "content": "Where does Maud live?"}], stream=True)
    assert "".join(p.message.content or "" for p in later) == "echo: Where does Maud live?"
    [message] = [m for m in fake.requests()[-1]["messages"] if m["role"] == "user"]
    assert "My sister Maud lives in Porto." in message["content"]  # recalled into the prompt
    assert asked(message["content"]) == "Where does Maud live?"


def test_tool_calls_and_thinking_keep_ollamas_shape(client: ollama.Client) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    called = client.chat("qwen3:4b", messages=[{"role": "user", "content": "#tool weather?"}], tools=tools)
    [call] = called.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris", "unit": "celsius"}  # an object, as Ollama sends it
    followed = client.chat(
        "qwen3:4b",
        messages=[
            {"role": "user", "content": "#tool weather?"},
            {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
            {"role": "tool", "content": "18 C", "tool_name": "get_weather"},
            {"role": "user", "content": "and so?"},
        ],
    )
    assert followed.message.content == "echo: and so?"
    thought = client.chat("qwen3:4b", messages=[{"role": "user", "content": "#think deeply"}], think=True)
    assert thought.message.thinking == "Let me think."


def test_generate_and_embeddings_are_relayed(client: ollama.Client, fake: Fake) -> None:
    done = client.generate("qwen3:4b", "def fib(n):")
    assert done.response == "echo: def fib(n):"
    assert fake.requests()[-1]["options"] == {"num_ctx": 8192}  # the same window as chats: no reload
    streamed = list(client.generate("qwen3:4b", "def add(a, b):", stream=True, options={"num_ctx": 4096}))
    assert "".join(p.response or "" for p in streamed) == "echo: def add(a, b):"
    assert fake.requests()[-1]["options"] == {"num_ctx": 4096}  # what the client set, it keeps
    assert client.embed("nomic-embed-text", "hello").embeddings[0] == pytest.approx(_vector("hello"))
    assert client.embeddings("nomic-embed-text", "hello").embedding == pytest.approx(_vector("hello"))


def test_errors_are_ollamas(client: ollama.Client, gateway_url: str) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat("no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as midway:
        list(client.chat("qwen3:4b", messages=[{"role": "user", "content": "#midfail"}], stream=True))
    assert "an error was encountered while running the model" in midway.value.error
    bad = httpx.post(gateway_url + "/api/chat", json={"messages": [{"role": "robot", "content": "hi"}]})
    assert bad.status_code == 400
    assert set(bad.json()) == {"error"}
    nowhere = httpx.get(gateway_url + "/api/nothing")
    assert nowhere.status_code == 404
    assert "/api/chat" in nowhere.json()["error"]


def test_curl_as_ollamas_docs_write_it(gateway_url: str) -> None:
    """`curl -d` sends a form content type; Ollama reads the body as JSON all the same."""
    body = json.dumps({"model": "qwen3:4b", "messages": [{"role": "user", "content": "hi"}], "stream": False})
    done = subprocess.run(
        ["curl", "-s", gateway_url + "/api/chat", "-d", body], capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(done.stdout)["message"]["content"] == "echo: hi"
    lines = subprocess.run(
        ["curl", "-sN", gateway_url + "/api/chat", "-d", body.replace('"stream": false', '"stream": true')],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert json.loads(lines[-1])["done"] is True
    page = httpx.post(
        gateway_url + "/api/chat", content=body, headers={"content-type": "text/plain", "origin": "https://evil.test"}
    )
    assert page.status_code == 415  # a cross-site page still cannot post to it


def test_model_management_takes_an_admin_key(fake: Fake, tmp_path: Path) -> None:
    keys = {"GATEWAY_AUTH_KEYS": '{"sk-ann": "ann"}', "GATEWAY_AUTH_ADMIN_KEYS": '["sk-admin"]'}
    with (
        processes.gateway(fake.url, tmp_path, settings=keys) as url,
        connected(url, Authorization="Bearer sk-ann") as user,
        connected(url) as anonymous_client,
        connected(url, Authorization="Bearer sk-admin") as admin,
    ):
        assert user.chat("qwen3:4b", messages=[{"role": "user", "content": "hi"}]).message.content == "echo: hi"
        with pytest.raises(ollama.ResponseError) as refused:
            user.pull("qwen3:4b")
        assert refused.value.status_code == 403
        with pytest.raises(ollama.ResponseError) as anonymous:
            anonymous_client.list()
        assert anonymous.value.status_code == 401
        assert admin.pull("qwen3:4b").status == "success"
        admin.copy("qwen3:4b", "mine:latest")
        admin.delete("mine:latest")
    managed = httpx.get(fake.url + "/_fake/managed").json()
    assert [(m["method"], m["path"]) for m in managed] == [
        ("POST", "/api/pull"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
    ]
    assert json.loads(managed[1]["body"]) == {"source": "qwen3:4b", "destination": "mine:latest"}

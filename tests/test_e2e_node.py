"""The OpenAI Node SDK and the Vercel AI SDK at their defaults, run by Node against a running gateway in front of
the fake Ollama: `tests/clients/node/clients.mjs` makes every call once and prints what each gave back.

The clients are pinned in `tests/clients/node/package-lock.json` and installed by `npm ci` when `node_modules`
does not hold exactly what the lockfile says. Node and npm must be on PATH (CI has them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests import processes
from tests.conftest import Fake
from tests.fake_ollama import asked

CLIENTS = processes.ROOT / "tests" / "clients" / "node"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH: tests/test_e2e_node.py needs Node.js (22 or later) and npm")
    return found


def _versions(lockfile: Path) -> dict[str, str | None]:
    """Each installed package's version, by its path under the project ("node_modules/openai")."""
    packages: dict[str, Any] = json.loads(lockfile.read_text())["packages"]
    return {path: entry.get("version") for path, entry in packages.items() if path}


def _installed() -> bool:
    """Whether node_modules holds what package-lock.json pins (npm keeps its own record there)."""
    hidden = CLIENTS / "node_modules" / ".package-lock.json"
    return hidden.is_file() and _versions(hidden) == _versions(CLIENTS / "package-lock.json")


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the clients installed as package-lock.json pins them."""
    node = _tool("node")
    if not _installed():
        npm = [_tool("npm"), "ci", "--no-audit", "--no-fund"]
        done = subprocess.run(npm, cwd=CLIENTS, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed in {CLIENTS}:\n{done.stdout}\n{done.stderr}"
    return node


class Ran:
    def __init__(self, results: dict[str, Any], sent: list[dict[str, Any]], stderr: str) -> None:
        self.results = results
        self.sent = sent  # what the fake Ollama got, in order
        self.stderr = stderr

    def result(self, call: str) -> dict[str, Any]:
        """What one call gave back; a call that failed fails the test with the client's error."""
        result: dict[str, Any] = self.results[call]
        assert "error" not in result, f"{call} failed:\n{json.dumps(result, indent=2)}\n{self.stderr}"
        return result

    def chats(self, words: str) -> list[dict[str, Any]]:
        """The /api/chat bodies whose first user message, without the memories quoted before it, is `words`."""
        found = []
        for request in self.sent:
            users = [m["content"] for m in request.get("messages", []) if m["role"] == "user"]
            if users and asked(users[0]) == words:
                found.append(request)
        return found


@pytest.fixture(scope="module")
def ran(node: str, gateway_url: str, fake_session: Fake) -> Iterator[Ran]:
    fake_session.reset()
    done = subprocess.run(
        [node, "clients.mjs", gateway_url + "/v1"], cwd=CLIENTS, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip(), f"clients.mjs printed nothing (exit {done.returncode}):\n{done.stderr}"
    results: dict[str, Any] = json.loads(done.stdout)
    yield Ran(results, fake_session.requests(), done.stderr)
    fake_session.reset()


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_every_call_succeeded(ran: Ran) -> None:
    failed = {call: result for call, result in ran.results.items() if "error" in result}
    assert not failed, json.dumps(failed, indent=2)
    assert set(ran.results) == {
        "chat",
        "chat_stream",
        "responses",
        "responses_stream",
        "completion",
        "ai_generate",
        "ai_stream",
        "ai_tool",
    }


def test_the_openai_node_sdk_chats_plain_and_streamed(ran: Ran) -> None:
    assert ran.result("chat") == {"text": "echo: hello", "finish_reason": "stop"}
    assert ran.result("chat_stream") == {"text": "echo: hello stream", "finish_reasons": ["stop"]}
    [plain] = ran.chats("hello")
    [streamed] = ran.chats("hello stream")
    assert plain["stream"] is False
    assert streamed["stream"] is True
    assert plain["model"] == streamed["model"] == "qwen3:4b"


def test_the_openai_node_sdk_responses_plain_and_streamed(ran: Ran, client: openai.OpenAI) -> None:
    plain = ran.result("responses")
    assert plain["text"] == "echo: hello responses"
    assert plain["status"] == "completed"
    assert client.responses.retrieve(plain["id"]).output_text == "echo: hello responses"
    streamed = ran.result("responses_stream")
    assert streamed["text"] == streamed["final_text"] == "echo: hello streamed responses"
    assert streamed["status"] == "completed"
    types = streamed["types"]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert types.count("response.output_text.delta") == 4  # a chunk a word: "echo: ", "hello ", ...
    assert len(ran.chats("hello responses")) == len(ran.chats("hello streamed responses")) == 1


def test_the_openai_node_sdk_completes_a_prompt(ran: Ran) -> None:
    assert ran.result("completion") == {"text": "echo: def fib(n):", "finish_reason": "stop"}
    [generated] = [r for r in ran.sent if "prompt" in r]
    assert generated["prompt"] == "def fib(n):"
    assert generated["model"] == "qwen3:4b"


def test_the_ai_sdk_generates_and_streams_through_responses(ran: Ran, client: openai.OpenAI) -> None:
    generated = ran.result("ai_generate")
    assert generated["text"] == "echo: hello ai sdk"
    assert generated["finish_reason"] == "stop"
    streamed = ran.result("ai_stream")
    assert streamed["text"] == "echo: hello streamed ai sdk"
    assert streamed["finish_reason"] == "stop"
    assert streamed["parts"] > 1
    # openai(model) is the Responses API: both answers are stored responses
    assert client.responses.retrieve(generated["id"]).output_text == "echo: hello ai sdk"
    assert client.responses.retrieve(streamed["id"]).output_text == "echo: hello streamed ai sdk"
    [plain] = ran.chats("hello ai sdk")
    [stream] = ran.chats("hello streamed ai sdk")
    assert plain["stream"] is False
    assert stream["stream"] is True


def test_the_ai_sdk_runs_a_tool_over_two_steps(ran: Ran, client: openai.OpenAI) -> None:
    result = ran.result("ai_tool")
    assert result["tool_inputs"] == [{"city": "Paris", "unit": "celsius"}]
    assert result["text"] == "echo: the tool said 18 C in Paris"
    assert result["finish_reason"] == "stop"
    first, second = (client.responses.retrieve(i) for i in result["ids"])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert second.output_text == "echo: the tool said 18 C in Paris"
    asking, answering = ran.chats("#tool what is the weather in Paris?")
    assert [t["function"]["name"] for t in asking["tools"]] == ["get_weather"]
    assert [m["role"] for m in answering["messages"]] == ["user", "assistant", "tool"]
    assert answering["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris", "unit": "celsius"}
    assert answering["messages"][2]["content"] == "18 C in Paris"
    assert answering["messages"][2]["tool_name"] == "get_weather"

"""What a chat response tells about itself: memory, the token breakdown, and a request id found in the log."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests import processes
from tests.conftest import Fake

CHAT = "/v1/chat/completions"


def budget(header: str) -> dict[str, int]:
    return {key: int(value) for key, value in (part.split("=") for part in header.split("; "))}


def test_chat_responses_report_memory_and_tokens(gateway_url: str) -> None:
    body: dict[str, object] = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    }
    response = httpx.post(gateway_url + CHAT, json=body, headers={"X-Memory": "read", "X-User-Id": "hdr-new"})
    assert response.headers["x-memory"] == "read"
    assert response.headers["x-memory-injected"] == "0"  # a user with no memories yet
    parts = budget(response.headers["x-prompt-budget"])
    assert (parts["window"], parts["reserve"], parts["trimmed"], parts["memories"]) == (8192, 1024, 0, 0)
    assert parts["system"] == 4 + 3  # "Be brief." is 3 tokens, plus the message's wrapping
    used = int(response.headers["x-prompt-tokens"])
    assert used == 3 + parts["system"] + parts["core"] + parts["recent"] + parts["tools"] + parts["memories"]
    assert parts["free"] == 8192 - 1024 - used

    body["stream"] = True
    body["max_tokens"] = 100
    with httpx.stream("POST", gateway_url + CHAT, json=body) as streamed:
        assert streamed.headers["x-memory"] == "on"
        assert budget(streamed.headers["x-prompt-budget"])["reserve"] == 100
        assert streamed.headers["content-type"].startswith("text/event-stream")


def test_request_ids_are_made_or_kept(gateway_url: str) -> None:
    made = httpx.get(gateway_url + "/health").headers["x-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{16}", made)
    assert httpx.get(gateway_url + "/health").headers["x-request-id"] != made
    kept = httpx.get(gateway_url + "/health", headers={"X-Request-Id": "trace-42.a"}).headers["x-request-id"]
    assert kept == "trace-42.a"
    odd = httpx.get(gateway_url + "/health", headers={"X-Request-Id": "no spaces/allowed"}).headers["x-request-id"]
    assert odd.startswith("req_")


def test_every_log_line_of_a_request_carries_its_id(fake: Fake, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with processes.gateway(fake.url, tmp_path / "data", log=log, GATEWAY_SERVER_LOG_LEVEL="info") as url:
        body = {"messages": [{"role": "user", "content": "#midfail"}], "stream": True}
        httpx.post(url + CHAT, json=body, headers={"X-Request-Id": "trace-midfail-1"})
    lines = [line for line in log.read_text().splitlines() if "stream failed after it started" in line]
    assert len(lines) == 1
    assert "[trace-midfail-1]" in lines[0]
    assert all("[trace-midfail-1]" not in line for line in log.read_text().splitlines() if "startup" in line)

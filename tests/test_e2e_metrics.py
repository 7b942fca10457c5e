"""`GET /metrics` of a running gateway, parsed with prometheus-client's own parser: values move with traffic."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests import processes
from tests.conftest import Fake


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and labels."""
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def settle(url: str) -> None:
    deadline = time.monotonic() + 20
    while httpx.get(url + "/status").json()["memory"]["journal"]["outbox"] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_metrics_move_with_traffic(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path) as url:
        before = scrape(url)
        chat = {"model": "qwen3:4b", "messages": [{"role": "user", "content": "I keep bees in Ghent."}]}
        assert httpx.post(url + "/v1/chat/completions", json=chat).status_code == 200
        with httpx.stream("POST", url + "/v1/chat/completions", json={**chat, "stream": True}) as streamed:
            streamed.read()
        missing = httpx.post(url + "/v1/chat/completions", json={**chat, "model": "nope"})
        assert missing.status_code == 404
        settle(url)
        after = scrape(url)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    route = {"route": "/v1/chat/completions", "method": "POST"}
    assert moved("gateway_http_requests_total", **route, status="200") == 2
    assert moved("gateway_http_requests_total", **route, status="404") == 1
    assert moved("gateway_http_request_duration_seconds_count", **route) == 3
    assert moved("gateway_upstream_requests_total", endpoint="/api/chat", outcome="ok") == 2
    assert moved("gateway_upstream_requests_total", endpoint="/api/chat", outcome="ModelNotFound") == 1
    assert moved("gateway_upstream_requests_total", endpoint="/api/embed", outcome="ok") >= 2  # recall, indexing
    assert moved("gateway_time_to_first_byte_seconds_count", streamed="true") == 1
    assert moved("gateway_time_to_first_byte_seconds_count", streamed="false") == 1
    assert moved("gateway_recall_duration_seconds_count") == 3
    assert moved("gateway_memories_injected_count") == 3  # three prompts went to Ollama (one it refused)
    assert moved("gateway_prompt_tokens_total", part="history") > 0
    assert moved("gateway_prompt_tokens_total", part="memories") > 0  # the second turn recalled the first
    assert moved("gateway_prompt_tokens_fresh_total") > 0
    assert after[("gateway_outbox_backlog", ())] == 0
    assert after[("gateway_index_points", ())] == after[("gateway_journal_messages", ())] == 4
    assert after[("gateway_journal_bytes", ())] > 0
    assert after[("gateway_memory_degraded", ())] == 0


def test_metrics_take_a_key_when_keys_are_set(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path, settings={"GATEWAY_AUTH_ADMIN_KEYS": '["sk-admin"]'}) as url:
        assert httpx.get(url + "/metrics").status_code == 401
        assert scrape(url, Authorization="Bearer sk-admin")[("gateway_index_points", ())] == 0

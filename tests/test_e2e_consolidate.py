"""Consolidation through the running gateway and the command, against the fake Ollama's structured output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests import processes
from tests.conftest import Fake

OLD = {
    "id": "garden",
    "messages": [
        {"role": "user", "content": "My sister Maud gave me tomato seeds", "created_at": "2024-04-02T10:00:00Z"},
        {"role": "assistant", "content": "Lovely gift.", "created_at": "2024-04-02T10:00:03Z"},
        {"role": "user", "content": "I will plant them in May", "created_at": "2024-04-02T10:01:00Z"},
    ],
}


def finished(url: str, user: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs: dict[str, dict[str, Any]] = {r["user"]: r for r in httpx.get(url + "/status").json()["consolidation"]}
        if user in runs and runs[user]["state"] != "running":
            return runs[user]
        time.sleep(0.05)
    raise AssertionError("consolidation did not finish")


def summaries(url: str, user: str) -> list[str]:
    notes = httpx.get(url + "/memory/export", params={"user_id": user}).json()["notes"]
    return [n["content"] for n in notes if n["content"].startswith("Summary of a conversation")]


def test_older_conversations_become_summaries_once_and_facts_are_proposed(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        httpx.post(url + "/memory/import", json={"user_id": "max", "conversations": [OLD]})
        httpx.post(
            url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "my car is blue"}]},
            headers={"X-User-Id": "max", "X-Conversation-Id": "today"},
        )
        started = httpx.post(url + "/memory/consolidate", json={"user_id": "max"})
        assert started.status_code == 202
        run = finished(url, "max")
        assert (run["state"], run["summaries"], run["total"]) == ("done", 1, 1)  # today's conversation waits
        assert summaries(url, "max") == [
            "Summary of a conversation (2024-04-02): The user said: My sister Maud gave me tomato seeds"
            " / I will plant them in May"
        ]
        proposed = httpx.get(url + "/memory/core", params={"user_id": "max"}).json()["proposed"]
        assert proposed == ["My sister Maud gave me tomato seeds"]
        exported = httpx.get(url + "/memory/export", params={"user_id": "max"}).json()
        assert len({c["id"]: c for c in exported["conversations"]}["garden"]["messages"]) == 3  # journal kept

        httpx.post(url + "/memory/consolidate", json={"user_id": "max"})
        assert finished(url, "max")["summaries"] == 0  # nothing new: idempotent

        grown = {
            "id": "garden",
            "messages": [{"role": "user", "content": "The seeds sprouted", "created_at": "2024-05-20T08:00:00Z"}],
        }
        httpx.post(url + "/memory/import", json={"user_id": "max", "conversations": [grown]})
        httpx.post(url + "/memory/consolidate", json={"user_id": "max"})
        assert finished(url, "max")["summaries"] == 1
        [summary] = summaries(url, "max")  # the new summary replaced the old one
        assert summary.startswith("Summary of a conversation (2024-04-02 to 2024-05-20)")

        deadline = time.monotonic() + 10
        while httpx.get(url + "/status").json()["memory"]["journal"]["outbox"] and time.monotonic() < deadline:
            time.sleep(0.05)
        found = httpx.post(url + "/memory/search", json={"query": "tomato seeds sprouted", "user_id": "max"})
        assert any(r["content"] == summary for r in found.json()["results"])


def test_the_consolidate_command(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        httpx.post(url + "/memory/import", json={"user_id": "noa", "conversations": [OLD]})
    result = processes.command("consolidate", data_dir=tmp_path / "data", upstream=fake.url)
    assert result.returncode == 0, result.stderr
    assert "noa: 1 conversations summarised" in result.stdout
    assert "proposed for core memory: My sister Maud gave me tomato seeds" in result.stdout
    assert "1/1 100%" in result.stderr


def test_status_shows_a_users_consolidation_only_to_them_or_an_admin(fake: Fake, tmp_path: Path) -> None:
    keys = '{"sk-ann": "ann", "sk-bob": "bob"}'
    settings = {"GATEWAY_AUTH_KEYS": keys, "GATEWAY_AUTH_ADMIN_KEYS": "sk-admin", "GATEWAY_AUTH_PROXY_KEYS": "sk-webui"}
    with processes.gateway(fake.url, tmp_path / "data", settings=settings) as url:

        def runs(key: str, **headers: str) -> list[str]:
            status = httpx.get(url + "/status", headers={"Authorization": f"Bearer {key}", **headers})
            return [run["user"] for run in status.json()["consolidation"]]

        ann = {"Authorization": "Bearer sk-ann"}
        httpx.post(url + "/memory/import", json={"conversations": [OLD]}, headers=ann)
        assert httpx.post(url + "/memory/consolidate", json={}, headers=ann).status_code == 202
        deadline = time.monotonic() + 20
        while runs("sk-admin") != ["ann"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runs("sk-admin") == ["ann"]
        assert runs("sk-ann") == ["ann"]
        assert runs("sk-bob") == []  # neither the user id nor the facts proposed for another user
        assert runs("sk-webui", **{"X-OpenWebUI-User-Id": "ann"}) == ["ann"]
        assert runs("sk-webui", **{"X-OpenWebUI-User-Id": "bob"}) == []
        assert runs("sk-webui") == []

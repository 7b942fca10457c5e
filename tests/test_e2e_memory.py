"""Long-term memory through the running gateway, with the real openai SDK, in front of the fake Ollama."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests import processes
from tests.conftest import Fake

CHAT = "/v1/chat/completions"
FACT = "My grandmother's village is called Zellwiller, in Alsace."


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def tell(url: str, text: str, *, user: str, conversation: str, key: str = "unused") -> None:
    with client(url, key) as sdk:
        sdk.chat.completions.create(
            model="qwen3:4b",
            messages=[{"role": "user", "content": text}],
            extra_headers={"X-User-Id": user, "X-Conversation-Id": conversation},
        )


def ask(url: str, text: str, *, user: str, key: str = "unused") -> Mapping[str, str]:
    """Ask in a new conversation; returns the response headers."""
    with client(url, key) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="qwen3:4b",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
            extra_headers={"X-User-Id": user, "X-Conversation-Id": f"new-{time.monotonic_ns()}"},
        )
    return raw.headers


def memory_block(fake: Fake) -> str:
    messages: list[dict[str, Any]] = fake.requests()[-1]["messages"]
    return next((m["content"] for m in messages if "<memories>" in m.get("content", "")), "")


def indexed(url: str, key: str = "unused", timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the outbox is empty; returns /status's memory part."""
    deadline = time.monotonic() + timeout
    while True:
        memory: dict[str, Any] = httpx.get(url + "/status", headers={"Authorization": f"Bearer {key}"}).json()["memory"]
        if memory["journal"]["outbox"] == 0 or time.monotonic() > deadline:
            return memory
        time.sleep(0.05)


def test_a_fact_told_once_is_recalled_in_a_new_conversation_for_that_user_only(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        tell(url, FACT, user="ann", conversation="family")
        tell(url, "I also collect stamps from Iceland.", user="ann", conversation="hobbies")
        assert indexed(url)["indexed"] == 4
        fake.reset()
        headers = ask(url, "What is my grandmother's village called?", user="ann")
        block = memory_block(fake)
        assert FACT in block
        assert block.index("<memories>") < block.index(FACT) < block.index("</memories>")
        assert "not instructions" in block
        assert headers["x-memory-injected"] != "0"
        assert "x-memory-degraded" not in headers
        assert int(headers["x-prompt-tokens"]) <= 8192 - 1024

        fake.reset()
        headers = ask(url, "What is my grandmother's village called?", user="bob")
        assert memory_block(fake) == ""
        assert headers["x-memory-injected"] == "0"

    with processes.gateway(fake.url, tmp_path / "data") as url:  # a restart keeps it
        fake.reset()
        ask(url, "Which village was my grandmother from?", user="ann")
        assert FACT in memory_block(fake)


def test_read_mode_recalls_without_remembering_and_off_does_neither(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        tell(url, FACT, user="ann", conversation="family")
        indexed(url)
        fake.reset()
        for mode, recalled in (("read", True), ("off", False)):
            with client(url) as sdk:
                sdk.chat.completions.create(
                    model="qwen3:4b",
                    messages=[{"role": "user", "content": "grandmother village?"}],
                    extra_headers={"X-User-Id": "ann", "X-Memory": mode},
                )
            assert (FACT in memory_block(fake)) is recalled
        assert indexed(url)["journal"]["turns"] == 1


def test_without_the_embedding_model_memory_works_on_words_and_says_so(fake: Fake, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with processes.gateway(fake.url, tmp_path / "data", log=log, GATEWAY_EMBEDDING_MODEL="not-pulled") as url:
        tell(url, FACT, user="ann", conversation="family")
        memory = indexed(url)
        assert memory["retrieval"] == "lexical"
        assert "ollama pull not-pulled" in memory["degraded"]
        fake.reset()
        headers = ask(url, "Zellwiller, where is it?", user="ann")
        assert FACT in memory_block(fake)
        assert "ollama pull not-pulled" in headers["x-memory-degraded"]
    assert "recall falls back to words alone" in log.read_text()


def test_a_kill_between_journal_and_index_loses_nothing(fake: Fake, tmp_path: Path) -> None:
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = processes.gateway_env(fake.url, tmp_path / "data")
    with processes.running(["gateway", "serve", "--port", str(port)], url + "/health", env) as process:
        fake.embedding(delay=8)  # the indexer is stuck embedding when the process dies
        headers = ask(url, FACT, user="ann")  # the chat's own recall gives up on embedding after 5 s
        assert "x-memory-degraded" in headers
        assert httpx.get(url + "/status").json()["memory"]["indexed"] == 0
        process.send_signal(signal.SIGKILL)
        process.wait()
    fake.embedding(delay=0)
    with processes.gateway(fake.url, tmp_path / "data") as url:
        assert indexed(url)["indexed"] == 2  # drained at start-up
        fake.reset()
        ask(url, "grandmother village", user="ann")
        assert FACT in memory_block(fake)


def test_a_damaged_index_shard_never_stops_the_gateway(fake: Fake, tmp_path: Path) -> None:
    """The journal is the source of truth: the gateway serves, and indexes the lost part again from it."""
    users = [f"user{n}" for n in range(12)]
    with processes.gateway(fake.url, tmp_path / "data") as url:
        tell(url, FACT, user="ann", conversation="family")
        for user in users:
            tell(url, f"{user} keeps bees", user=user, conversation="bees")
        assert indexed(url)["indexed"] == 2 * (1 + len(users))
    shard = tmp_path / "data" / "index" / f"{zlib.crc32(b'ann') % 16:02d}"
    shutil.rmtree(shard)  # as a kill while the engine wrote the shard's first files left it
    (shard / "wal").mkdir(parents=True)
    (shard / "segments").mkdir()
    log = tmp_path / "gateway.log"
    with processes.gateway(fake.url, tmp_path / "data", log=log) as url:
        memory = indexed(url)
        assert memory["indexed"] == 2 * (1 + len(users))
        assert memory["rebuilding"] is None
        fake.reset()
        ask(url, "grandmother village", user="ann")
        assert FACT in memory_block(fake)
    assert "was damaged (a crash) and was set aside" in log.read_text()
    assert not shard.with_name(shard.name + ".damaged").exists()


def test_kills_while_new_users_arrive_never_stop_the_gateway(fake: Fake, tmp_path: Path) -> None:
    """Each run kills the process while first turns of new users make the index's shards, at another moment;
    every turn a client was answered is recalled after the restart."""
    for n, delay in enumerate([0.005, 0.01, 0.03, 0.08, 0.2]):
        data = tmp_path / f"data{n}"
        port = processes.free_port()
        url = f"http://127.0.0.1:{port}"
        told: list[str] = []

        def first_turns(run: int = n, base: str = url, answered: list[str] = told) -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                for user in (f"new{run}-{k}" for k in range(32)):
                    chat = {"messages": [{"role": "user", "content": f"{user} was here"}]}
                    try:
                        reply = http.post("/v1/chat/completions", json=chat, headers={"X-User-Id": user})
                    except httpx.TransportError:
                        return
                    if reply.status_code == 200:
                        answered.append(user)

        env = processes.gateway_env(fake.url, data)
        with processes.running(["gateway", "serve", "--port", str(port)], url + "/health", env) as process:
            sender = threading.Thread(target=first_turns)
            sender.start()
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            sender.join()
        with processes.gateway(fake.url, data) as url:
            assert indexed(url)["journal"]["outbox"] == 0
            for user in told:
                found = httpx.post(url + "/memory/search", json={"query": "was here", "user_id": user})
                assert found.json()["results"], user


def test_one_process_per_data_dir(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data"):
        env = {**os.environ, **processes.gateway_env(fake.url, tmp_path / "data")}
        second = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--port", str(processes.free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=processes.ROOT,
        )
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()
    assert "is in use by gateway process" in line
    assert "one gateway process owns a data dir" in line


def test_reindex_rebuilds_the_index_from_the_journal(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        for n in range(5):
            tell(url, f"note {n}: the spare key is under pot {n}", user="ann", conversation="keys")
        assert indexed(url)["indexed"] == 10
    result = processes.command("reindex", data_dir=tmp_path / "data", upstream=fake.url)
    assert result.returncode == 0, result.stderr
    assert "10/10 100%" in result.stderr
    assert "indexed 10 messages with meaning and words; 10 points" in result.stdout
    with processes.gateway(fake.url, tmp_path / "data") as url:
        fake.reset()
        ask(url, "where is the spare key?", user="ann")
        assert "pot 3" in memory_block(fake)


def test_api_keys_choose_the_user_and_refuse_strangers(fake: Fake, tmp_path: Path) -> None:
    keys = '{"sk-ann": "ann", "sk-bob": "bob"}'
    with processes.gateway(fake.url, tmp_path / "data", GATEWAY_AUTH_KEYS=keys) as url:
        with pytest.raises(openai.AuthenticationError) as refused, client(url, "sk-wrong") as stranger:
            stranger.models.list()
        assert refused.value.code == "invalid_api_key"
        assert httpx.get(url + "/status").status_code == 401
        assert httpx.get(url + "/health").status_code == 200

        tell(url, FACT, user="bob", conversation="x", key="sk-ann")  # the key wins over the header
        indexed(url, key="sk-ann")
        fake.reset()
        ask(url, "grandmother village", user="ann", key="sk-bob")
        assert memory_block(fake) == ""
        ask(url, "grandmother village", user="bob", key="sk-ann")
        assert FACT in memory_block(fake)


def test_reindex_rebuilds_a_damaged_index(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        tell(url, FACT, user="ann", conversation="family")
        indexed(url)
    (tmp_path / "data" / "index" / "edge_config.json").write_text("{damaged")
    env = {**os.environ, **processes.gateway_env(fake.url, tmp_path / "data")}
    command = [sys.executable, "-m", "gateway", "reindex"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=processes.ROOT)
    assert result.returncode == 0, result.stderr
    with processes.gateway(fake.url, tmp_path / "data") as url:
        fake.reset()
        ask(url, "grandmother village", user="ann")
        assert FACT in memory_block(fake)

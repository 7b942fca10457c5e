"""Every turn is journaled before the response completes: read from the gateway's own SQLite file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import processes
from tests.conftest import Fake
from tests.fake_ollama import asked


@pytest.fixture(scope="module")
def served(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = Path(tmp_path_factory.mktemp("journal"))
    with processes.gateway(fake_session.url, data) as url:
        yield url, data / "journal.db"


def turns(db: Path, conversation: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT t.*, group_concat(m.role || ':' || m.text, '|') AS said FROM turns t"
            " JOIN messages m ON m.turn_id = t.id WHERE t.conversation = ? GROUP BY t.id ORDER BY t.id",
            (conversation,),
        ).fetchall()
        return [dict(row) for row in rows]


def chat(
    url: str, text: str, conversation: str, *, stream: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], "stream": stream}
    return httpx.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"X-User-Id": "ann", "X-Conversation-Id": conversation, **(headers or {})},
    )


def test_a_turn_is_in_the_journal_when_the_answer_arrives(served: tuple[str, Path], fake: Fake) -> None:
    url, db = served
    assert chat(url, "my sister is Maud", "plain").status_code == 200
    [(prompt, _)] = fake.evaluations()
    [turn] = turns(db, "plain")  # no waiting: written before the response completed
    assert turn["user"] == "ann"
    assert turn["said"] == "user:my sister is Maud|assistant:echo: my sister is Maud"
    assert (turn["status"], turn["model"], turn["prompt_tokens"], turn["completion_tokens"]) == (
        "complete",
        "qwen3:4b",
        prompt,
        8,  # "echo: my sister is Maud" and the end of the answer, as the fake counts them
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] >= 2


def test_a_streamed_turn_is_journaled_before_done(served: tuple[str, Path]) -> None:
    url, db = served
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "stream me"}], "stream": True},
        headers={"X-User-Id": "ann", "X-Conversation-Id": "streamed"},
    ) as response:
        for line in response.iter_lines():
            if line == "data: [DONE]":
                [turn] = turns(db, "streamed")
                assert turn["said"] == "user:stream me|assistant:echo: stream me"
                assert turn["status"] == "complete"


def test_a_stream_failing_midway_is_journaled_as_partial(served: tuple[str, Path]) -> None:
    url, db = served
    chat(url, "#midfail", "failing", stream=True)
    [turn] = turns(db, "failing")
    assert (turn["status"], turn["said"]) == ("partial", "user:#midfail|assistant:Partial ")


def test_a_client_that_hangs_up_leaves_a_partial_turn(served: tuple[str, Path]) -> None:
    url, db = served
    body = {"messages": [{"role": "user", "content": "#slow"}], "stream": True}
    headers = {"X-User-Id": "ann", "X-Conversation-Id": "hung-up"}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if "tick" in line)
    deadline = time.monotonic() + 10
    while not turns(db, "hung-up") and time.monotonic() < deadline:
        time.sleep(0.05)
    [turn] = turns(db, "hung-up")
    assert turn["status"] == "partial"
    assert turn["said"].startswith("user:#slow|assistant:tick")


@pytest.mark.parametrize(
    ("text", "headers"),
    [("not me", {"X-Memory": "off"}), ("only read", {"X-Memory": "read"}), ("### Task:\nGenerate a title", {})],
    ids=["off", "read", "open-webui-task"],
)
def test_nothing_is_journaled_without_memory_on(served: tuple[str, Path], text: str, headers: dict[str, str]) -> None:
    url, db = served
    conversation = "quiet-" + headers.get("X-Memory", "task")
    assert chat(url, text, conversation, headers=headers).status_code == 200
    assert turns(db, conversation) == []


def sent_messages(fake: Fake) -> list[dict[str, Any]]:
    """The messages Ollama got, less the blocks of recalled memories (these tests are about history)."""
    messages: list[dict[str, Any]] = fake.requests()[-1]["messages"]
    return [{**m, "content": asked(m["content"])} if m.get("content") else m for m in messages]


def test_a_stateful_client_gets_its_conversation_back(served: tuple[str, Path], fake: Fake) -> None:
    url, _ = served
    chat(url, "my name is Ann", "stateful")
    chat(url, "what is my name?", "stateful")
    assert sent_messages(fake) == [
        {"role": "user", "content": "my name is Ann"},
        {"role": "assistant", "content": "echo: my name is Ann"},
        {"role": "user", "content": "what is my name?"},
    ]
    # another user with the same conversation id starts from nothing
    httpx.post(
        url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "who am I?"}]},
        headers={"X-User-Id": "bob", "X-Conversation-Id": "stateful"},
    )
    assert sent_messages(fake) == [{"role": "user", "content": "who am I?"}]


def test_history_is_not_added_when_the_client_sends_its_own(served: tuple[str, Path], fake: Fake) -> None:
    url, _ = served
    chat(url, "first", "carried")
    own = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": "second"},
    ]
    httpx.post(
        url + "/v1/chat/completions",
        json={"messages": own},
        headers={"X-User-Id": "ann", "X-Conversation-Id": "carried"},
    )
    assert sent_messages(fake) == own


def test_a_system_prompt_and_one_message_still_get_history(served: tuple[str, Path], fake: Fake) -> None:
    url, _ = served
    chat(url, "remember 42", "with-system")
    httpx.post(
        url + "/v1/chat/completions",
        json={"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "what number?"}]},
        headers={"X-User-Id": "ann", "X-Conversation-Id": "with-system"},
    )
    assert [m["content"] for m in sent_messages(fake)] == ["sys", "remember 42", "echo: remember 42", "what number?"]


def test_no_history_without_a_named_conversation_or_with_memory_off(served: tuple[str, Path], fake: Fake) -> None:
    url, _ = served
    chat(url, "secret", "off-conv")
    chat(url, "again", "off-conv", headers={"X-Memory": "off"})
    assert sent_messages(fake) == [{"role": "user", "content": "again"}]
    body = {"messages": [{"role": "user", "content": "unnamed"}]}
    httpx.post(url + "/v1/chat/completions", json=body, headers={"X-User-Id": "ann"})
    httpx.post(url + "/v1/chat/completions", json=body, headers={"X-User-Id": "ann"})
    # the earlier answer may come back as a recalled memory, but not as conversation history
    assert sent_messages(fake) == [{"role": "user", "content": "unnamed"}]

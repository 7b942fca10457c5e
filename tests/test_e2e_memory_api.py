"""The memory API through the running gateway: add, search, forget, core memory, import, export, context."""

from __future__ import annotations

import asyncio
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
def api(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    keys = '{"sk-ann": "ann", "sk-bob": "bob"}'
    data = tmp_path_factory.mktemp("memory-api")
    admin = {"Authorization": "Bearer sk-admin"}
    with (
        processes.gateway(fake_session.url, data, GATEWAY_AUTH_KEYS=keys, GATEWAY_AUTH_ADMIN_KEYS="sk-admin") as url,
        httpx.Client(base_url=url, headers=admin, timeout=30) as client,
    ):
        yield client


def settle(api: httpx.Client) -> None:
    """Wait until everything remembered is indexed."""
    deadline = time.monotonic() + 20
    while api.get("/status").json()["memory"]["journal"]["outbox"] and time.monotonic() < deadline:
        time.sleep(0.05)


def search(api: httpx.Client, query: str, user: str, **extra: Any) -> list[dict[str, Any]]:
    response = api.post("/memory/search", json={"query": query, "user_id": user, **extra})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_add_search_and_forget_one(api: httpx.Client) -> None:
    added = api.post("/memory/add", json={"content": "Carol's passport expires in March 2027", "user_id": "carol"})
    assert added.status_code == 200
    assert added.json()["memory_type"] == "archival"
    api.post("/memory/add", json={"content": "Carol likes green tea", "user_id": "carol", "memory_type": "recall"})
    settle(api)
    [first, *_] = search(api, "when does my passport expire?", "carol")
    assert first["content"] == "Carol's passport expires in March 2027"
    assert first["memory_type"] == "archival"
    assert 0 < first["score"] <= 1
    assert first["created_at"].endswith("Z") or "+00:00" in first["created_at"]
    assert search(api, "passport", "dave") == []
    [tea] = [r for r in search(api, "green tea", "carol") if r["content"] == "Carol likes green tea"]
    assert tea["memory_type"] == "recall"

    gone = api.delete(f"/memory/{first['id']}", params={"user_id": "carol"})
    assert gone.json() == {"user_id": "carol", "deleted": 1}
    assert all(r["id"] != first["id"] for r in search(api, "passport", "carol"))
    assert api.delete(f"/memory/{first['id']}", params={"user_id": "carol"}).status_code == 404


def test_a_users_key_reaches_only_that_user(api: httpx.Client) -> None:
    ann = {"Authorization": "Bearer sk-ann"}
    assert api.post("/memory/add", json={"content": "ann's secret: the key is blue"}, headers=ann).status_code == 200
    settle(api)
    refused = api.post("/memory/search", json={"query": "key", "user_id": "bob"}, headers=ann)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    mine = api.post("/memory/search", json={"query": "secret key"}, headers=ann).json()["results"]
    assert [r["content"] for r in mine] == ["ann's secret: the key is blue"]
    bob = api.post("/memory/search", json={"query": "secret key"}, headers={"Authorization": "Bearer sk-bob"})
    assert bob.json()["results"] == []
    assert api.get("/memory/core", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_core_memory_blocks_are_kept_limited_and_in_every_prompt(api: httpx.Client, fake: Fake) -> None:
    put = api.put("/memory/core/human", json={"value": "Name: Erin. Vegetarian.", "user_id": "erin"})
    assert put.status_code == 200
    assert put.json()["label"] == "human"
    api.put("/memory/core/persona", json={"value": "A patient cooking coach.", "user_id": "erin"})
    too_big = api.put("/memory/core/human", json={"value": "word " * 50, "limit": 10, "user_id": "erin"})
    assert too_big.status_code == 400
    api.post("/memory/add", json={"content": "Allergic to peanuts", "memory_type": "core", "user_id": "erin"})
    blocks = {b["label"]: b["value"] for b in api.get("/memory/core", params={"user_id": "erin"}).json()["blocks"]}
    assert blocks == {"human": "Name: Erin. Vegetarian.\nAllergic to peanuts", "persona": "A patient cooking coach."}

    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "dinner idea?"}]}
    reply = api.post("/v1/chat/completions", json=body, headers={"X-User-Id": "erin"})
    assert reply.status_code == 200
    sent = fake.requests()[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert "<human>\nName: Erin. Vegetarian.\nAllergic to peanuts\n</human>" in sent[1]["content"]
    assert int(dict(p.split("=") for p in reply.headers["x-prompt-budget"].split("; "))["core"]) > 0

    assert api.delete("/memory/core/persona", params={"user_id": "erin"}).status_code == 200
    assert api.delete("/memory/core/persona", params={"user_id": "erin"}).status_code == 404


def test_export_import_export_is_identical(api: httpx.Client) -> None:
    conversation = {
        "id": "trip",
        "messages": [
            {"role": "user", "content": "We fly to Oslo on 3 June.", "created_at": "2024-05-01T09:30:00Z"},
            {"role": "assistant", "content": "Noted: Oslo, 3 June.", "created_at": "2024-05-01T09:30:05Z"},
            {"role": "user", "content": "And back on the 10th.", "name": "Finn", "created_at": "2024-05-02T18:00:00Z"},
        ],
    }
    imported = api.post("/memory/import", json={"user_id": "finn", "conversations": [conversation]})
    assert imported.json() == {
        "user_id": "finn",
        "conversations": 1,
        "messages": 3,
        "core": 0,
        "notes": 0,
        "already": 0,
    }
    api.put("/memory/core/human", json={"value": "Lives in Bergen.", "user_id": "finn"})
    api.post("/memory/add", json={"content": "Prefers aisle seats", "user_id": "finn"})
    first = api.get("/memory/export", params={"user_id": "finn"}).json()
    [exported] = first["conversations"]
    assert exported["messages"][0]["created_at"].startswith("2024-05-01T09:30:00")
    assert exported["messages"][2]["name"] == "Finn"

    again = api.post("/memory/import", json={**first, "user_id": "finn2"}).json()
    assert again == {"user_id": "finn2", "conversations": 1, "messages": 3, "core": 1, "notes": 1, "already": 0}
    second = api.get("/memory/export", params={"user_id": "finn2"}).json()
    assert second == {**first, "user_id": "finn2"}
    repeated = api.post("/memory/import", json={**first, "user_id": "finn2"}).json()  # a retry, say
    assert (repeated["messages"], repeated["notes"], repeated["already"]) == (0, 0, 4)
    assert api.get("/memory/export", params={"user_id": "finn2"}).json() == second


def test_context_shows_the_prompt_without_calling_the_model(api: httpx.Client, fake: Fake) -> None:
    api.post("/memory/add", json={"content": "Gus keeps bees in Wales", "user_id": "gus"})
    settle(api)
    fake.reset()
    body = {"messages": [{"role": "user", "content": "how are the bees?"}]}
    context = api.post("/memory/context", json=body, headers={"X-User-Id": "gus"}).json()
    assert fake.requests() == []
    assert [m["content"] for m in context["memories"]] == ["Gus keeps bees in Wales"]
    assert context["budget"]["memories"] > 0
    newest = context["messages"][-1]["content"]
    assert newest.startswith("<memories>\n")  # at the head of the newest message: the prompt before it holds
    assert newest.endswith("Gus keeps bees in Wales\n</memories>\n\nhow are the bees?")


def test_forget_a_user_entirely(api: httpx.Client) -> None:
    api.post(
        "/memory/import",
        json={
            "user_id": "hal",
            "conversations": [{"id": "c", "messages": [{"role": "user", "content": "Hal's cat is Miso"}]}],
        },
    )
    api.put("/memory/core/human", json={"value": "Hal", "user_id": "hal"})
    settle(api)
    assert search(api, "cat", "hal")
    assert api.delete("/memory/users/hal").json() == {"user_id": "hal", "deleted": 1}
    assert search(api, "cat", "hal") == []
    empty = api.get("/memory/export", params={"user_id": "hal"}).json()
    assert (empty["conversations"], empty["core"], empty["notes"]) == ([], [], [])


def test_forget_one_conversation(api: httpx.Client) -> None:
    chat = {"messages": [{"role": "user", "content": "my locker code is 4471"}], "user": "ida"}
    asked = api.post("/v1/chat/completions", json=chat, headers={"X-OpenWebUI-Chat-Id": "chat-locker"})
    assert asked.status_code == 200, asked.text
    kept = {**chat, "messages": [{"role": "user", "content": "my bike is blue, locker or not"}]}
    api.post("/v1/chat/completions", json=kept, headers={"X-OpenWebUI-Chat-Id": "chat-bike"})
    settle(api)
    assert any("4471" in r["content"] for r in search(api, "locker code", "ida"))

    gone = api.delete("/memory/conversations/chat-locker", params={"user_id": "ida"})
    assert gone.json() == {"user_id": "ida", "deleted": 2}  # the question and its answer
    assert not any("4471" in r["content"] for r in search(api, "locker code", "ida"))
    assert {r["content"] for r in search(api, "locker", "ida")} == {
        "my bike is blue, locker or not",
        "echo: my bike is blue, locker or not",
    }
    again = api.delete("/memory/conversations/chat-locker", params={"user_id": "ida"})
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": "Bearer sk-ann"}) as ann:
        assert ann.delete("/memory/conversations/chat-bike", params={"user_id": "ida"}).status_code == 403
        assert ann.delete("/memory/conversations/chat-bike").status_code == 404  # ann has no such chat


def test_bad_ids_and_an_import_with_a_bad_part_store_nothing(api: httpx.Client) -> None:
    for user in ["a\x00b", "x" * 300, "two\nlines"]:
        added = api.post("/memory/add", json={"content": "garbage", "user_id": user})
        assert added.status_code == 400, user
        assert "user_id" in added.json()["error"]["message"]
        chat = {"messages": [{"role": "user", "content": "hi"}], "user": user}
        assert api.post("/v1/chat/completions", json=chat).status_code == 400
    long_chat = api.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "user": "ivy"},
        headers={"X-Conversation-Id": "c" * 1000},
    )
    assert long_chat.status_code == 400
    assert long_chat.json()["error"]["param"] == "conversation"
    good = {"id": "kept-out", "messages": [{"role": "user", "content": "imported before the bad part"}]}
    for bad in (
        {"conversations": [good], "core": [{"label": "human", "value": "x", "limit": -5}]},
        {"conversations": [good], "core": [{"label": "no spaces allowed", "value": "x", "limit": 50}]},
        {"conversations": [good, {"id": "bad\nid", "messages": []}]},
    ):
        refused = api.post("/memory/import", json={"user_id": "ivy", **bad})
        assert refused.status_code == 400, refused.text
    exported = api.get("/memory/export", params={"user_id": "ivy"}).json()
    assert (exported["conversations"], exported["core"]) == ([], [])


def test_a_memory_is_at_most_64000_characters(api: httpx.Client) -> None:
    """A 10 MB note used to hold the event loop for seconds while it was indexed."""
    huge = api.post("/memory/add", json={"content": "x" * 10_000_000, "user_id": "jo"}, timeout=60)
    assert huge.status_code == 400
    assert "64000" in huge.json()["error"]["message"]
    message = {"role": "user", "content": "y" * 64_001}
    imported = api.post("/memory/import", json={"user_id": "jo", "conversations": [{"id": "c", "messages": [message]}]})
    assert imported.status_code == 400
    assert api.post("/memory/add", json={"content": "z" * 64_000, "user_id": "jo"}).status_code == 200


def test_bad_input_is_a_clear_400(api: httpx.Client, tmp_path: Path) -> None:
    bad = api.post("/memory/add", json={"content": "", "user_id": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    wrong_type = api.post("/memory/add", json={"content": "x", "memory_type": "episodic"})
    assert wrong_type.status_code == 400
    assert api.put("/memory/core/bad label!", json={"value": "x"}).status_code in (400, 404)
    as_text = api.post("/memory/search", json={"query": "x", "limit": "5"})  # a string is not a number
    assert as_text.status_code == 400
    assert as_text.json()["error"]["param"] == "limit"


def test_the_simple_chat_keeps_the_conversation_and_uses_memory(api: httpx.Client, fake: Fake) -> None:
    api.post("/memory/add", json={"content": "Ivy's bike is a red Bianchi", "user_id": "ivy"})
    settle(api)
    first = api.post("/chat", json={"message": "what colour is my bike?", "user_id": "ivy"})
    assert first.status_code == 200, first.text
    reply = first.json()
    assert reply["message"] == "echo: what colour is my bike?"
    assert reply["memories_used"] >= 1
    assert reply["usage"]["prompt_tokens"] > 0
    conversation = reply["conversation_id"]

    fake.reset()
    again = {"message": "and its brand?", "user_id": "ivy", "conversation_id": conversation}
    assert api.post("/chat", json=again).json()["conversation_id"] == conversation
    sent = [asked(m["content"]) for m in fake.requests()[-1]["messages"] if m["role"] != "system"]
    assert sent == ["what colour is my bike?", "echo: what colour is my bike?", "and its brand?"]
    first_prompt = fake.requests()[-1]["messages"][0]["content"]
    assert "Ivy's bike is a red Bianchi" in first_prompt  # its memories, where they were on the first turn

    blind = {"message": "bike?", "user_id": "ivy", "include_memory_search": False}
    assert api.post("/chat", json=blind).json()["memories_used"] == 0
    assert api.post("/chat", json={"message": ""}).status_code == 400


def test_status_counts_memories_by_kind(api: httpx.Client) -> None:
    api.post("/memory/add", json={"content": "a note for the count", "user_id": "jo"})
    api.put("/memory/core/human", json={"value": "Jo", "user_id": "jo"})
    settle(api)
    status = api.get("/status").json()
    assert status["embedding"] == {"model": "nomic-embed-text", "present": True}
    memory = status["memory"]
    assert set(memory["kinds"]) == {"recall", "archival", "core"}
    assert memory["kinds"]["archival"] >= 1
    assert memory["kinds"]["core"] >= 1
    assert memory["journal_bytes"] > 0
    assert memory["journal"]["outbox"] == 0
    assert memory["engine"] == "embedded (qdrant-edge)"


def test_list_pages_through_a_users_memories_newest_first(api: httpx.Client) -> None:
    notes = [{"content": f"list note {i}", "created_at": "2024-01-01T00:00:00Z"} for i in range(5)]
    trip = {
        "id": "trip",
        "messages": [{"role": "user", "content": "Oslo in June", "created_at": "2024-05-01T09:30:00Z"}],
    }
    api.post("/memory/import", json={"user_id": "lou", "conversations": [trip], "notes": notes})
    first = api.get("/memory/list", params={"user_id": "lou", "limit": 4}).json()
    assert first["user_id"] == "lou"
    assert [m["content"] for m in first["memories"]] == [f"list note {i}" for i in (4, 3, 2, 1)]
    assert first["memories"][0]["memory_type"] == "archival"
    assert first["memories"][0]["conversation_id"] is None
    assert first["next_before"] == first["memories"][-1]["id"]
    second = api.get("/memory/list", params={"user_id": "lou", "limit": 4, "before": first["next_before"]}).json()
    assert [m["content"] for m in second["memories"]] == ["list note 0", "Oslo in June"]
    assert second["next_before"] is None
    [oslo] = api.get("/memory/list", params={"user_id": "lou", "memory_type": "recall"}).json()["memories"]
    assert {k: oslo[k] for k in ("content", "role", "memory_type", "conversation_id", "created_at")} == {
        "content": "Oslo in June",
        "role": "user",
        "memory_type": "recall",
        "conversation_id": "trip",
        "created_at": "2024-05-01T09:30:00Z",
    }
    assert len(api.get("/memory/list", params={"user_id": "lou", "memory_type": "archival"}).json()["memories"]) == 5
    assert api.get("/memory/list", params={"user_id": "nobody"}).json() == {
        "user_id": "nobody",
        "memories": [],
        "next_before": None,
    }
    assert api.get("/memory/list", params={"user_id": "lou", "limit": 0}).status_code == 400
    assert api.get("/memory/list", params={"user_id": "lou", "memory_type": "core"}).status_code == 400


def test_list_is_a_users_own_with_a_users_key(api: httpx.Client) -> None:
    bob = {"Authorization": "Bearer sk-bob"}
    api.post("/memory/add", json={"content": "Bob's bike is green"}, headers=bob)
    mine = api.get("/memory/list", headers=bob).json()
    assert mine["user_id"] == "bob"
    assert "Bob's bike is green" in [m["content"] for m in mine["memories"]]
    assert api.get("/memory/list", params={"user_id": "ann"}, headers=bob).status_code == 403
    assert api.get("/memory/list", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_users_lists_everyone_with_counts_for_an_admin_only(api: httpx.Client) -> None:
    conversations = [
        {"id": "a", "messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]},
        {"id": "b", "messages": [{"role": "user", "content": "three"}]},
    ]
    api.post("/memory/import", json={"user_id": "una", "conversations": conversations})
    api.post("/memory/add", json={"content": "a note of una's", "user_id": "una"})
    api.put("/memory/core/human", json={"value": "Name: Una.", "user_id": "una"})
    api.put("/memory/core/human", json={"value": "Name: Core-only.", "user_id": "core-only"})
    users = {u["user_id"]: u for u in api.get("/memory/users").json()["users"]}
    una = users["una"]
    assert (una["memories"], una["conversations"], una["core_blocks"]) == (4, 2, 1)
    assert una["last_at"].endswith("Z")
    assert (users["core-only"]["memories"], users["core-only"]["core_blocks"]) == (0, 1)
    refused = api.get("/memory/users", headers={"Authorization": "Bearer sk-ann"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert api.get("/memory/users", headers={"Authorization": ""}).status_code == 401


def proposed_for(api: httpx.Client, user: str, *lines: str) -> list[str]:
    """Import an old conversation and consolidate it: the fake model proposes each line that says "my"."""
    messages = [{"role": "user", "content": line, "created_at": "2024-04-02T10:00:00Z"} for line in lines]
    api.post("/memory/import", json={"user_id": user, "conversations": [{"id": "old", "messages": messages}]})
    assert api.post("/memory/consolidate", json={"user_id": user}).status_code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = {r["user"]: r for r in api.get("/status").json()["consolidation"]}
        if runs.get(user, {}).get("state") == "done":
            proposed: list[str] = api.get("/memory/core", params={"user_id": user}).json()["proposed"]
            return proposed
        time.sleep(0.05)
    raise AssertionError("consolidation did not finish")


def twice(api: httpx.Client, path: str, body: dict[str, Any]) -> list[httpx.Response]:
    """The same POST sent twice at once."""

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(api.base_url), headers=api.headers, timeout=30) as client:
            return list(await asyncio.gather(client.post(path, json=body), client.post(path, json=body)))

    return asyncio.run(send())


def test_a_proposed_fact_is_accepted_into_a_block_or_dismissed(api: httpx.Client) -> None:
    facts = ["my dog is Rex", "my town is Ghent", "my job is baking"]
    assert proposed_for(api, "pam", *facts) == facts
    api.put("/memory/core/human", json={"value": "Name: Pam.", "user_id": "pam"})

    rex = {"fact": "my dog is Rex", "user_id": "pam"}
    both = twice(api, "/memory/core/proposed/accept", rex)  # a double click
    assert sorted(r.status_code for r in both) == [200, 404]
    [accepted] = [r for r in both if r.status_code == 200]
    core = accepted.json()
    assert core["proposed"] == ["my town is Ghent", "my job is baking"]
    assert [(b["label"], b["value"]) for b in core["blocks"]] == [("human", "Name: Pam.\nmy dog is Rex")]
    into = {"fact": "my job is baking", "label": "work", "user_id": "pam"}
    work = api.post("/memory/core/proposed/accept", json=into).json()
    assert {b["label"]: b["value"] for b in work["blocks"]}["work"] == "my job is baking"

    dismissed = api.post("/memory/core/proposed/dismiss", json={"fact": "my town is Ghent", "user_id": "pam"})
    assert dismissed.status_code == 200
    assert dismissed.json()["proposed"] == []
    again = api.post("/memory/core/proposed/dismiss", json={"fact": "my town is Ghent", "user_id": "pam"})
    assert again.status_code == 404
    assert again.json()["error"]["param"] == "fact"

    grown = {"id": "old", "messages": [{"role": "user", "content": "later", "created_at": "2024-05-02T10:00:00Z"}]}
    api.post("/memory/import", json={"user_id": "pam", "conversations": [grown]})
    assert proposed_for(api, "pam") == []  # the conversation is summarised again; what was settled stays settled


def test_a_fact_over_its_blocks_limit_stays_proposed(api: httpx.Client) -> None:
    [fact] = proposed_for(api, "quin", "my favourite poem is " + "very long " * 40)
    api.put("/memory/core/human", json={"value": "Name: Quin.", "limit": 10, "user_id": "quin"})
    over = api.post("/memory/core/proposed/accept", json={"fact": fact, "user_id": "quin"})
    assert over.status_code == 400
    assert "over its limit" in over.json()["error"]["message"]
    assert api.get("/memory/core", params={"user_id": "quin"}).json()["proposed"] == [fact]
    bad_label = api.post("/memory/core/proposed/accept", json={"fact": fact, "label": "no spaces", "user_id": "quin"})
    assert bad_label.status_code == 400
    unknown = api.post("/memory/core/proposed/accept", json={"fact": "never proposed", "user_id": "quin"})
    assert unknown.status_code == 404


def test_proposals_are_a_users_own_and_forgotten_with_the_user(api: httpx.Client) -> None:
    assert proposed_for(api, "rue", "my car is a red van") == ["my car is a red van"]
    bob = {"Authorization": "Bearer sk-bob"}
    body = {"fact": "my car is a red van", "user_id": "rue"}
    assert api.post("/memory/core/proposed/dismiss", json=body, headers=bob).status_code == 403
    assert api.post("/memory/core/proposed/accept", json=body, headers=bob).status_code == 403
    assert api.post("/memory/core/proposed/dismiss", json={"fact": body["fact"]}, headers=bob).status_code == 404
    assert api.get("/memory/core", params={"user_id": "rue"}).json()["proposed"] == ["my car is a red van"]
    api.delete("/memory/users/rue")
    assert api.get("/memory/core", params={"user_id": "rue"}).json()["proposed"] == []

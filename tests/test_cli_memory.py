"""`gateway import` and `gateway export`: the gateway's shape, ChatGPT's data export, and a round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests import processes
from tests.conftest import Fake

# ChatGPT's conversations.json: a tree of messages; the user edited their first question, so the branch
# that ends at current_node is the second one.
CHATGPT = [
    {
        "title": "Sourdough",
        "create_time": 1700000000.0,
        "conversation_id": "c0ffee",
        "current_node": "a2",
        "mapping": {
            "root": {"id": "root", "message": None, "parent": None, "children": ["sys"]},
            "sys": {
                "id": "sys",
                "parent": "root",
                "children": ["u1", "u1b"],
                "message": {"author": {"role": "system"}, "content": {"parts": [""]}, "create_time": None},
            },
            "u1": {
                "id": "u1",
                "parent": "sys",
                "children": ["a1"],
                "message": {"author": {"role": "user"}, "content": {"parts": ["abandoned question"]}},
            },
            "a1": {"id": "a1", "parent": "u1", "children": [], "message": None},
            "u1b": {
                "id": "u1b",
                "parent": "sys",
                "children": ["a2"],
                "message": {
                    "author": {"role": "user"},
                    "content": {"content_type": "text", "parts": ["My starter is called Clint Yeastwood."]},
                    "create_time": 1700000100.5,
                },
            },
            "a2": {
                "id": "a2",
                "parent": "u1b",
                "children": [],
                "message": {
                    "author": {"role": "assistant"},
                    "content": {"content_type": "text", "parts": ["A fine name for a starter."]},
                    "create_time": 1700000105.0,
                },
            },
        },
    }
]


def export(data_dir: Path, upstream: str, user: str) -> dict[str, Any]:
    result = processes.command("export", "--user", user, data_dir=data_dir, upstream=upstream)
    assert result.returncode == 0, result.stderr
    exported: dict[str, Any] = json.loads(result.stdout)
    return exported


def test_a_chatgpt_export_is_imported_on_its_current_branch_and_recalled(fake: Fake, tmp_path: Path) -> None:
    source = tmp_path / "conversations.json"
    source.write_text(json.dumps(CHATGPT))
    result = processes.command("import", str(source), "--user", "kim", data_dir=tmp_path / "data", upstream=fake.url)
    assert result.returncode == 0, result.stderr
    assert "imported 2 messages in 1 conversations" in result.stdout
    assert "2/2 100%" in result.stderr  # the progress bar of indexing

    [conversation] = export(tmp_path / "data", fake.url, "kim")["conversations"]
    assert conversation["id"] == "c0ffee"
    assert [(m["role"], m["content"], m["created_at"]) for m in conversation["messages"]] == [
        ("user", "My starter is called Clint Yeastwood.", "2023-11-14T22:15:00.500000Z"),
        ("assistant", "A fine name for a starter.", "2023-11-14T22:15:05Z"),
    ]
    with processes.gateway(fake.url, tmp_path / "data") as url:
        found = httpx.post(url + "/memory/search", json={"query": "what is my starter called?", "user_id": "kim"})
        assert found.json()["results"][0]["content"] == "My starter is called Clint Yeastwood."


def test_export_import_export_round_trips_through_files(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "first") as url:
        body = {"messages": [{"role": "user", "content": "I run on Tuesdays", "name": "Lee"}]}
        httpx.post(url + "/v1/chat/completions", json=body, headers={"X-User-Id": "lee"})
        httpx.put(url + "/memory/core/human", json={"value": "Runner.", "user_id": "lee"})
        httpx.post(url + "/memory/add", json={"content": "Knee surgery in 2019", "user_id": "lee"})
    saved = tmp_path / "lee.json"
    result = processes.command(
        "export", "--user", "lee", "-o", str(saved), data_dir=tmp_path / "first", upstream=fake.url
    )
    assert result.returncode == 0, result.stderr
    result = processes.command("import", str(saved), "--user", "lee", data_dir=tmp_path / "second", upstream=fake.url)
    assert result.returncode == 0, result.stderr
    assert "1 core blocks and 1 notes" in result.stdout

    first, second = json.loads(saved.read_text()), export(tmp_path / "second", fake.url, "lee")
    assert second["conversations"] == first["conversations"]
    assert first["conversations"][0]["messages"][0]["name"] == "Lee"
    assert [(b["label"], b["value"]) for b in second["core"]] == [("human", "Runner.")]
    assert [(n["content"], n["created_at"]) for n in second["notes"]] == [
        (n["content"], n["created_at"]) for n in first["notes"]
    ]


def test_a_file_of_neither_shape_is_one_clear_line(fake: Fake, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": []}')
    result = processes.command("import", str(bad), "--user", "x", data_dir=tmp_path / "data", upstream=fake.url)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "neither the gateway's import shape nor a ChatGPT export" in line


def test_forget_a_conversation_from_the_command_line(fake: Fake, tmp_path: Path) -> None:
    data = tmp_path / "data"
    chats = {
        "conversations": [
            {"id": "trip", "messages": [{"role": "user", "content": "the hotel in Oslo is the Grand"}]},
            {"id": "work", "messages": [{"role": "user", "content": "the report is due Friday"}]},
        ]
    }
    (tmp_path / "chats.json").write_text(json.dumps(chats))
    imported = processes.command(
        "import", str(tmp_path / "chats.json"), "--user", "kim", data_dir=data, upstream=fake.url
    )
    assert imported.returncode == 0, imported.stderr

    forgot = processes.command("forget", "--user", "kim", "--conversation", "trip", data_dir=data, upstream=fake.url)
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout == "gateway: forgot 1 messages of conversation trip of user kim\n"
    assert [c["id"] for c in export(data, fake.url, "kim")["conversations"]] == ["work"]
    with processes.gateway(fake.url, data) as url:
        found = httpx.post(url + "/memory/search", json={"query": "hotel Oslo Grand", "user_id": "kim"}).json()
        assert [r["content"] for r in found["results"]] == ["the report is due Friday"]
    unknown = processes.command("forget", "--user", "kim", "--conversation", "trip", data_dir=data, upstream=fake.url)
    assert (unknown.returncode, unknown.stderr) == (1, "gateway: no conversation 'trip' for user kim\n")


def test_importing_the_same_file_again_adds_nothing(fake: Fake, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "chatgpt.json").write_text(json.dumps(CHATGPT))
    first = processes.command(
        "import", str(tmp_path / "chatgpt.json"), "--user", "lee", data_dir=data, upstream=fake.url
    )
    assert first.returncode == 0, first.stderr
    before = export(data, fake.url, "lee")
    again = processes.command(
        "import", str(tmp_path / "chatgpt.json"), "--user", "lee", data_dir=data, upstream=fake.url
    )
    assert again.returncode == 0, again.stderr
    assert "imported 0 messages in 1 conversations" in again.stdout
    assert "2 already remembered, left out" in again.stdout
    assert export(data, fake.url, "lee") == before

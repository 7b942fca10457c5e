"""What the real Open WebUI sends, replayed through a running gateway set up as the README's Open WebUI section says.

`tests/data/openwebui/*.json` were captured from Open WebUI 0.12.4 in a browser by `tests/openwebui/capture.py`
(rerun it for a new Open WebUI): every request it sent to its OpenAI connection, action by action. Replayed in
order against the fake Ollama (which answers as it did during the capture), each numbered point of the issue is
checked in what reached Ollama, what the gateway answered, and what its journal holds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests import processes, readme
from tests.conftest import Fake

DATA = processes.ROOT / "tests" / "data" / "openwebui"
GATEWAY_SETTINGS, OWUI_SETTINGS = readme.environments("openwebui")
ADMIN = "sk-admin-replay"
NOT_FORWARDED = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


class Sent(NamedTuple):
    action: str
    request: dict[str, Any]
    response: httpx.Response
    forwarded: list[dict[str, Any]]  # the /api/chat bodies Ollama got for it

    @property
    def chat(self) -> bool:
        return bool(self.request["path"] == "/v1/chat/completions")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.request["body"]["messages"])

    @property
    def user_id(self) -> str:
        return str(self.request["headers"]["X-OpenWebUI-User-Id"])

    @property
    def chat_id(self) -> str:
        return str(self.request["headers"]["X-OpenWebUI-Chat-Id"])


class Replayed:
    def __init__(self, sent: list[Sent], journal: Path, url: str) -> None:
        self.sent = sent
        self.journal = journal
        self.url = url

    def chats(self, action: str) -> list[Sent]:
        """The chat requests an action sent that are not Open WebUI's background tasks."""
        return [s for s in self.sent if s.action == action and s.chat and s.request["body"].get("tools") is not None]

    def turn(self, action: str) -> Sent:
        [sent] = self.chats(action) or [s for s in self.sent if s.action == action and s.chat][:1]
        return sent

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True) as db:
            return db.execute(sql, args).fetchall()

    def branch(self, conversation: str) -> list[tuple[str, str]]:
        """(role, text) of a conversation's messages on the user's branch, oldest first."""
        return [
            (role, text)
            for role, text in self.rows(
                "SELECT role, text FROM messages WHERE conversation = ? AND NOT replaced ORDER BY id", conversation
            )
        ]

    def left(self, conversation: str) -> list[tuple[str, str]]:
        return [
            (role, text)
            for role, text in self.rows(
                "SELECT role, text FROM messages WHERE conversation = ? AND replaced ORDER BY id", conversation
            )
        ]

    def search(self, user: str, query: str) -> list[str]:
        found = httpx.post(
            self.url + "/memory/search",
            json={"query": query, "user_id": user, "limit": 50},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert found.status_code == 200, found.text
        return [r["content"] for r in found.json()["results"]]


def load(session: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{session}.json").read_text())
    return loaded


def settle(url: str) -> None:
    """Wait until everything remembered is in the index, as it was by the user's next action."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = httpx.get(url + "/status", headers={"Authorization": f"Bearer {ADMIN}"}).json()
        if not status["memory"]["journal"]["outbox"]:
            return
        time.sleep(0.05)


def replay(url: str, fake: Fake, session: dict[str, Any]) -> list[Sent]:
    sent = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for action in session["actions"]:
            for request in action["requests"]:
                if not request["path"].startswith("/v1/"):
                    continue
                headers = {k: v for k, v in request["headers"].items() if k.lower() not in NOT_FORWARDED}
                httpx.delete(fake.url + "/_fake/requests")
                response = client.request(request["method"], request["path"], json=request["body"], headers=headers)
                sent.append(Sent(action["action"], request, response, fake.requests()))
                settle(url)
    return sent


@pytest.fixture(scope="module")
def replayed(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    data = tmp_path_factory.mktemp("openwebui")
    fake_session.reset()
    with processes.gateway(fake_session.url, data, settings=GATEWAY_SETTINGS, GATEWAY_AUTH_ADMIN_KEYS=ADMIN) as url:
        sent = [s for name in ("session", "custom_headers") for s in replay(url, fake_session, load(name))]
        yield Replayed(sent, data / "journal.db", url)


def test_the_capture_used_the_readmes_settings() -> None:
    """Change the README's Open WebUI steps and the capture must be run again."""
    for name in ("session", "custom_headers"):
        captured = load(name)
        assert captured["open_webui_version"] == "0.12.4"
        assert {k: captured["settings"][k] for k in ("OPENAI_API_KEY", "ENABLE_FORWARD_USER_INFO_HEADERS")} == {
            k: OWUI_SETTINGS[k] for k in ("OPENAI_API_KEY", "ENABLE_FORWARD_USER_INFO_HEADERS")
        }
        assert OWUI_SETTINGS["OPENAI_API_KEY"] in GATEWAY_SETTINGS["GATEWAY_AUTH_PROXY_KEYS"]
    custom = json.loads(load("custom_headers")["settings"]["OPENAI_API_CONFIGS"])["0"]["headers"]
    assert json.loads(OWUI_SETTINGS["OPENAI_API_CONFIGS"])["0"]["headers"].items() <= custom.items()


def test_everything_open_webui_sent_was_answered(replayed: Replayed) -> None:
    assert [
        (s.action, s.request["path"], s.response.status_code) for s in replayed.sent if s.response.status_code != 200
    ] == []


def test_1_an_edited_first_message_is_sent_alone(replayed: Replayed) -> None:
    """Open WebUI sends the branch the user is on; the chat's stored turns are not put before it."""
    for action in ("edit_first", "regenerate_first"):
        sent = replayed.turn(action)
        [forwarded] = sent.forwarded
        assert [m["role"] for m in forwarded["messages"]] == [m["role"] for m in sent.messages] == ["user"]
        assert forwarded["messages"][0]["content"].endswith(sent.messages[0]["content"])


def test_1_a_regenerated_later_answer_gets_the_branch_once(replayed: Replayed) -> None:
    sent = replayed.turn("regenerate_later")
    [forwarded] = sent.forwarded
    assert [m["role"] for m in forwarded["messages"]] == [m["role"] for m in sent.messages]
    for ours, theirs in zip(forwarded["messages"], sent.messages, strict=True):
        assert ours["content"].endswith(theirs["content"])


def test_2_a_regenerated_answer_replaces_the_one_before(replayed: Replayed) -> None:
    sent = replayed.turn("regenerate_first")
    question = sent.messages[0]["content"]
    branch = replayed.branch(sent.chat_id)
    assert branch == [("user", question), ("assistant", "echo: " + question)]  # the question once, one answer
    assert ("user", question) in replayed.left(sent.chat_id)  # the journal keeps what the user left, marked
    assert ("user", "I live in Lisbon.") in replayed.left(sent.chat_id)  # and the turns after it


def test_2_a_regenerated_request_does_not_recall_the_answer_it_replaces(replayed: Replayed) -> None:
    sent = replayed.turn("regenerate_later")
    replaced = sent.messages[-1]["content"]
    [forwarded] = sent.forwarded
    assert "echo: " + replaced not in forwarded["messages"][-1]["content"]
    assert replayed.branch(sent.chat_id).count(("user", replaced)) <= 1


def test_2_an_edited_message_replaces_itself_and_what_followed(replayed: Replayed) -> None:
    sent = replayed.turn("edit_later")
    branch = replayed.branch(sent.chat_id)
    assert [text for role, text in branch if role == "user"] == [
        sent.messages[0]["content"],
        sent.messages[-1]["content"],
    ]
    left = [text for role, text in replayed.left(sent.chat_id) if role == "user"]
    assert "I live in Lisbon." in left
    assert "What should I cook tonight?" in left
    edited = replayed.turn("edit_first")
    assert [text for role, text in replayed.branch(edited.chat_id) if role == "user"] == [edited.messages[0]["content"]]


def test_2_a_continued_answer_completes_its_turn(replayed: Replayed) -> None:
    """The turn gets its whole answer (the chat is edited afterwards, so it is among the turns left then)."""
    sent = replayed.turn("continue_response")
    partial, question = sent.messages[-1]["content"], sent.messages[-2]["content"]
    assert sent.messages[-1]["role"] == "assistant"
    turns = replayed.rows(
        "SELECT q.replaced, a.text FROM messages q JOIN messages a ON a.turn_id = q.turn_id AND a.role = 'assistant'"
        " WHERE q.conversation = ? AND q.role = 'user' AND q.text = ? ORDER BY q.id",
        sent.chat_id,
        question,
    )
    *before, (_, answer) = turns
    assert answer.startswith(partial)
    assert len(answer) > len(partial)
    assert all(replaced for replaced, _ in before)  # the regenerated and the partial answers were left
    assert replayed.rows("SELECT count(*) FROM messages WHERE role = 'user' AND text = ''") == [(0,)]


def test_3_a_chat_with_a_file_is_remembered_by_the_users_words(replayed: Replayed) -> None:
    sent = replayed.turn("file_attached")
    assert sent.messages[-1]["content"].startswith("### Task:")  # Open WebUI's RAG template
    assert sent.response.headers["x-memory"] == "on"
    [forwarded] = sent.forwarded
    assert "MARMALADE-42" in forwarded["messages"][-1]["content"]  # the model still gets the file's passage
    questions = [text for role, text in replayed.branch(sent.chat_id) if role == "user"]
    assert questions == ["What is the launch code word for Project Falcon?"]


def test_4_open_webuis_own_prompts_are_never_remembered(replayed: Replayed) -> None:
    tasks = [s for s in replayed.sent if s.chat and s.request["body"].get("tools") is None]
    kinds = {s.action for s in tasks}
    assert {"emoji", "merge_responses", "autocomplete", "image_prompt", "query_generation", "first_message"} <= kinds
    for s in tasks:
        if s.action == "tools_off" and not s.messages[-1]["content"].startswith("### Task:"):
            continue  # a chat turn of a model without built-in tools
        assert s.response.headers["x-memory"] == "off", (s.action, s.messages[-1]["content"][:60])
    stored = [text for (text,) in replayed.rows("SELECT text FROM messages WHERE role = 'user'")]
    assert not [t for t in stored if t.startswith(("### Task:", "Your task is", "You have been provided"))]


def test_4_with_the_task_header_open_webui_says_which_prompts_are_its_own(replayed: Replayed) -> None:
    sent = [s for s in replayed.sent if s.action == "custom_headers" and s.chat]
    assert {s.request["headers"]["X-OpenWebUI-Task"] for s in sent} >= {"", "title_generation"}
    for s in sent:
        assert s.response.headers["x-memory"] == ("off" if s.request["headers"]["X-OpenWebUI-Task"] else "on")


def test_5_a_temporary_chat_recalls_but_stores_nothing(replayed: Replayed) -> None:
    sent = replayed.turn("temporary_chat")
    assert sent.chat_id.startswith("temporary:")
    assert sent.response.headers["x-memory"] == "read"
    assert replayed.rows("SELECT count(*) FROM messages WHERE conversation LIKE 'temporary:%'") == [(0,)]
    assert not [m for m in replayed.search(sent.user_id, "locker code") if "4711" in m]


def test_6_forget_one_chat(replayed: Replayed) -> None:
    sent = replayed.turn("second_user")
    assert replayed.branch(sent.chat_id)
    with httpx.Client(
        base_url=replayed.url, headers={"Authorization": f"Bearer {OWUI_SETTINGS['OPENAI_API_KEY']}"}
    ) as webui:
        gone = webui.delete(f"/memory/conversations/{sent.chat_id}", headers={"X-OpenWebUI-User-Id": sent.user_id})
    assert gone.status_code == 200, gone.text
    assert replayed.branch(sent.chat_id) == []
    assert not [m for m in replayed.search(sent.user_id, "sailing") if "sailing" in m]


def test_7_built_in_tools_over_half_the_budget_are_reported(replayed: Replayed) -> None:
    heavy = replayed.turn("tools")
    assert len(heavy.request["body"]["tools"]) == 36
    assert "tools_over_half=1" in heavy.response.headers["x-prompt-budget"]
    assert "tool definitions take" in heavy.response.headers["x-prompt-warning"]
    [light] = [s for s in replayed.sent if s.action == "tools_off" and s.chat and "tools" not in s.request["body"]
               and not s.messages[-1]["content"].startswith("### Task:")]  # fmt: skip
    assert "tools_over_half" not in light.response.headers["x-prompt-budget"]
    assert "x-prompt-warning" not in light.response.headers


def test_8_each_open_webui_user_has_their_own_memory(replayed: Replayed) -> None:
    ada, bob = replayed.turn("first_message"), replayed.turn("second_user")
    assert ada.user_id != bob.user_id
    assert ada.request["headers"]["Authorization"] == bob.request["headers"]["Authorization"]  # one key
    [forwarded] = bob.forwarded
    assert "Miso" not in json.dumps(forwarded["messages"])
    assert [m for m in replayed.search(ada.user_id, "cat Miso") if "Miso" in m]
    assert not [m for m in replayed.search(bob.user_id, "cat Miso") if "Miso" in m]


def test_8_without_the_user_headers_a_proxy_key_is_told_which_setting_sends_them(
    fake_session: Fake, tmp_path: Path
) -> None:
    session = load("forward_headers_off")
    data = tmp_path / "data"
    with processes.gateway(fake_session.url, data, settings=GATEWAY_SETTINGS, GATEWAY_AUTH_ADMIN_KEYS=ADMIN) as url:
        sent = replay(url, fake_session, session)
    chats = [s for s in sent if s.chat]
    assert chats
    assert not any(k.lower().startswith("x-openwebui") for s in chats for k in s.request["headers"])
    for s in chats:
        assert s.response.status_code == 400
        assert "ENABLE_FORWARD_USER_INFO_HEADERS=true" in s.response.json()["error"]["message"]
    assert all(s.response.status_code == 200 for s in sent if s.request["path"] == "/v1/models")

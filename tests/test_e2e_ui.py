"""The memory console (`/ui`) driven in a real browser (Debian's chromium, headless) against a running gateway.

Memories are seeded through the HTTP API, and what the page did is checked through the API again. Every wait
is on a condition (Playwright's `expect`, the outbox draining), never on the clock.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Error, Page, expect

from tests import processes
from tests.browser import needs_chromium
from tests.conftest import Fake

KEYS = '{"sk-ann": "ann", "sk-bob": "bob"}'
MARKUP = "<img src=x onerror=alert(1)>"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def open_url(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway without keys: the page acts as an admin, for any user."""
    with processes.gateway(fake_session.url, tmp_path_factory.mktemp("ui-open")) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("ui-keys")
    with processes.gateway(
        fake_session.url, data, GATEWAY_AUTH_KEYS=KEYS, GATEWAY_AUTH_ADMIN_KEYS='["sk-admin"]'
    ) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (its own sessionStorage); the page's script must throw nothing."""
    context = browser.new_context(accept_downloads=True)
    errors: list[Error] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))  # a callable Playwright can tag, not a builtin
        yield page
    finally:
        context.close()
    assert errors == []


def api(url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def seed(url: str, user: str, conversations: list[dict[str, Any]], key: str | None = None, **extra: Any) -> None:
    with api(url, key) as client:
        done = client.post("/memory/import", json={"user_id": user, "conversations": conversations, **extra})
        assert done.status_code == 200, done.text


def settle(url: str, key: str | None = None) -> None:
    """Wait until everything remembered is indexed (search reads the index)."""
    deadline = time.monotonic() + 20
    with api(url, key) as client:
        while client.get("/status").json()["memory"]["journal"]["outbox"] and time.monotonic() < deadline:
            time.sleep(0.05)


def exported(url: str, user: str, key: str | None = None) -> dict[str, Any]:
    with api(url, key) as client:
        body: dict[str, Any] = client.get("/memory/export", params={"user_id": user}).json()
        return body


def said(url: str, user: str) -> list[str]:
    everything = exported(url, user)
    return [m["content"] for c in everything["conversations"] for m in c["messages"]] + [
        n["content"] for n in everything["notes"]
    ]


def open_console(page: Page, url: str, user: str | None = None) -> None:
    """The console, looking at `user` (the page's user picker, as an admin without keys)."""
    page.goto(url + "/ui")
    expect(page.locator("#console")).to_be_visible()
    if user:
        page.get_by_label("User", exact=True).select_option(user)
        expect(page.locator("#memories")).to_have_attribute("data-user", user)  # its memories are shown


def memory(page: Page, text: str) -> Any:
    return page.locator(".memory", has=page.locator(".content", has_text=text))


TRIP = {
    "id": "trip-oslo",
    "messages": [
        {"role": "user", "content": "We fly to Oslo on 3 June.", "created_at": "2024-05-01T09:30:00Z"},
        {"role": "assistant", "content": "Noted: Oslo, 3 June.", "created_at": "2024-05-01T09:30:05Z"},
    ],
}


def test_the_list_shows_memories_newest_first_with_dates_and_conversations(page: Page, open_url: str) -> None:
    seed(open_url, "lena", [TRIP], notes=[{"content": "Lena's bike is red", "created_at": "2024-06-01T08:00:00Z"}])
    open_console(page, open_url, "lena")
    contents = page.locator(".memory .content")
    expect(contents).to_have_text(["Lena's bike is red", "Noted: Oslo, 3 June.", "We fly to Oslo on 3 June."])
    times = page.locator(".memory time")
    expect(times).to_have_count(3)
    dates = [times.nth(i).get_attribute("datetime") for i in range(3)]
    assert dates == ["2024-06-01T08:00:00Z", "2024-05-01T09:30:05Z", "2024-05-01T09:30:00Z"]
    assert all(re.search(r"2024", times.nth(i).inner_text()) for i in range(3))  # shown, in the reader's locale
    trip = page.locator(".group", has=page.get_by_text("trip-oslo", exact=True))
    expect(trip.locator(".content")).to_have_count(2)
    expect(trip.get_by_role("button", name="Forget conversation")).to_be_visible()


def test_more_fetches_the_next_page(page: Page, open_url: str) -> None:
    notes = [{"content": f"numbered note {i}", "created_at": "2024-01-01T00:00:00Z"} for i in range(60)]
    seed(open_url, "many", [], notes=notes)
    open_console(page, open_url, "many")
    contents = page.locator(".memory .content")
    expect(contents).to_have_count(50)  # a page, not everything
    expect(contents.first).to_have_text("numbered note 59")
    page.get_by_role("button", name="More").click()
    expect(contents).to_have_count(60)
    expect(contents.last).to_have_text("numbered note 0")
    expect(page.get_by_role("button", name="More")).to_be_hidden()


def test_search_finds_what_the_api_finds(page: Page, open_url: str) -> None:
    conversation = {
        "id": "food",
        "messages": [
            {"role": "user", "content": "I am allergic to peanuts"},
            {"role": "user", "content": "I grow tomatoes on my balcony"},
            {"role": "user", "content": "My cat is called Pixel"},
        ],
    }
    seed(open_url, "sam", [conversation])
    settle(open_url)
    open_console(page, open_url, "sam")
    page.get_by_role("searchbox", name="Search memories").fill("peanuts allergy")
    page.get_by_role("searchbox", name="Search memories").press("Enter")
    with api(open_url) as client:
        found = client.post("/memory/search", json={"query": "peanuts allergy", "user_id": "sam", "limit": 20})
    expected = [r["content"] for r in found.json()["results"]]
    assert expected[0] == "I am allergic to peanuts"
    expect(page.locator("#listing")).to_contain_text("found for")
    expect(page.locator(".memory .content")).to_have_text(expected)
    page.get_by_role("searchbox", name="Search memories").fill("")
    page.get_by_role("button", name="Search", exact=True).click()  # an empty search lists everything again
    expect(page.locator(".memory .content")).to_have_count(3)


def test_forget_a_memory_and_a_conversation(page: Page, open_url: str) -> None:
    chores = {"id": "chores", "messages": [{"role": "user", "content": "Water the ferns on Sunday"}]}
    seed(open_url, "tom", [TRIP, chores])
    settle(open_url)
    open_console(page, open_url, "tom")

    fern = memory(page, "Water the ferns")
    fern.get_by_role("button", name="Forget", exact=True).click()
    fern.get_by_role("button", name="Yes, forget").click()
    expect(fern).to_have_count(0)
    expect(page.locator("#notice")).to_have_text("Forgotten.")
    assert "Water the ferns on Sunday" not in said(open_url, "tom")
    with api(open_url) as client:
        found = client.post("/memory/search", json={"query": "water the ferns", "user_id": "tom"}).json()
    assert all("ferns" not in r["content"] for r in found["results"])

    trip = page.locator(".group", has=page.get_by_text("trip-oslo", exact=True))
    trip.get_by_role("button", name="Forget conversation").click()
    trip.get_by_role("button", name="Yes, forget it").click()
    expect(page.locator(".memory")).to_have_count(0)
    expect(page.locator("#notice")).to_contain_text("Forgot the conversation trip-oslo (2 messages)")
    assert exported(open_url, "tom")["conversations"] == []


def test_a_forget_can_be_cancelled(page: Page, open_url: str) -> None:
    seed(open_url, "una", [{"id": "c", "messages": [{"role": "user", "content": "Keep this one"}]}])
    open_console(page, open_url, "una")
    kept = memory(page, "Keep this one")
    kept.get_by_role("button", name="Forget", exact=True).click()
    kept.get_by_role("button", name="Cancel").click()
    expect(kept.get_by_role("button", name="Forget", exact=True)).to_be_focused()
    assert said(open_url, "una") == ["Keep this one"]


def test_core_blocks_are_edited_in_place(page: Page, open_url: str) -> None:
    with api(open_url) as client:
        client.put("/memory/core/human", json={"value": "Name: Vera.", "user_id": "vera"})
        client.put("/memory/core/persona", json={"value": "Be brief.", "user_id": "vera", "limit": 100})
    open_console(page, open_url, "vera")
    human = page.get_by_label("human", exact=True)
    expect(human).to_have_value("Name: Vera.")
    human.fill("Name: Vera. Lives in Porto.")
    page.get_by_role("button", name="Save human").click()
    expect(page.locator("#notice")).to_have_text("Saved the block human.")
    page.get_by_role("button", name="Delete persona").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(page.get_by_label("persona", exact=True)).to_have_count(0)

    page.get_by_text("New block").click()
    page.get_by_label("Label", exact=True).fill("work")
    page.get_by_label("Value", exact=True).fill("Nurse, night shifts.")
    page.get_by_role("button", name="Add block").click()
    expect(page.get_by_label("work", exact=True)).to_have_value("Nurse, night shifts.")

    with api(open_url) as client:
        core = client.get("/memory/core", params={"user_id": "vera"}).json()
    assert {b["label"]: b["value"] for b in core["blocks"]} == {
        "human": "Name: Vera. Lives in Porto.",
        "work": "Nurse, night shifts.",
    }


def consolidated(url: str, user: str) -> list[str]:
    """Consolidate a user (the fake model proposes each user line that says "my"); the facts proposed."""
    with api(url) as client:
        assert client.post("/memory/consolidate", json={"user_id": user}).status_code == 202
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = {r["user"]: r for r in client.get("/status").json()["consolidation"]}
            if runs.get(user, {}).get("state") == "done":
                proposed: list[str] = client.get("/memory/core", params={"user_id": user}).json()["proposed"]
                return proposed
            time.sleep(0.05)
    raise AssertionError("consolidation did not finish")


def test_proposed_facts_are_accepted_or_dismissed(page: Page, open_url: str) -> None:
    old = {
        "id": "garden",
        "messages": [
            {"role": "user", "content": "My sister Maud gave me tomato seeds", "created_at": "2024-04-02T10:00:00Z"},
            {"role": "user", "content": "my favourite colour is teal", "created_at": "2024-04-02T10:01:00Z"},
        ],
    }
    seed(open_url, "wes", [old])
    assert consolidated(open_url, "wes") == ["My sister Maud gave me tomato seeds", "my favourite colour is teal"]
    open_console(page, open_url, "wes")
    proposed = page.locator("#proposed li")
    expect(proposed).to_have_count(2)
    proposed.filter(has_text="Maud").get_by_role("button", name="Accept").click()
    expect(page.get_by_label("human", exact=True)).to_have_value("My sister Maud gave me tomato seeds")
    proposed.filter(has_text="teal").get_by_role("button", name="Dismiss").click()
    expect(page.locator("#proposals")).to_be_hidden()

    with api(open_url) as client:
        core = client.get("/memory/core", params={"user_id": "wes"}).json()
    assert core["proposed"] == []
    assert core["blocks"][0]["label"] == "human"
    assert core["blocks"][0]["value"] == "My sister Maud gave me tomato seeds"


def test_export_downloads_json_and_import_uploads_it(page: Page, open_url: str, tmp_path: Path) -> None:
    seed(open_url, "xia", [TRIP])
    with api(open_url) as client:
        client.put("/memory/core/human", json={"value": "Name: Xia.", "user_id": "xia"})
        client.post("/memory/add", json={"content": "Xia reads Borges", "user_id": "yan"})  # yan is listed
    open_console(page, open_url, "xia")
    with page.expect_download() as waiting:
        page.get_by_role("button", name="Export as JSON").click()
    download = waiting.value
    assert download.suggested_filename == "memory-xia.json"
    saved = tmp_path / "memory-xia.json"
    download.save_as(saved)
    assert json.loads(saved.read_text()) == exported(open_url, "xia")

    page.get_by_label("User", exact=True).select_option("yan")  # the file goes into the user shown
    expect(page.locator(".memory .content")).to_have_text(["Xia reads Borges"])
    page.get_by_label("Memory file (JSON, as exported)").set_input_files(saved)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#notice")).to_have_text("Imported 2 messages, 0 notes and 1 core blocks into yan.")
    expect(page.locator(".memory .content")).to_have_count(3)
    expect(page.get_by_label("human", exact=True)).to_have_value("Name: Xia.")
    copy = exported(open_url, "yan")
    assert [m["content"] for m in copy["conversations"][0]["messages"]] == [
        "We fly to Oslo on 3 June.",
        "Noted: Oslo, 3 June.",
    ]
    assert copy["conversations"][0]["messages"][0]["created_at"] == "2024-05-01T09:30:00Z"


def test_a_file_that_is_not_json_is_refused(page: Page, open_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text("not json at all")
    open_console(page, open_url)
    page.get_by_label("Memory file (JSON, as exported)").set_input_files(bad)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#notice")).to_have_text("notes.json is not JSON.")
    expect(page.locator("#notice")).to_have_class(re.compile(r"\berror\b"))


def test_with_keys_the_page_asks_for_one_and_a_users_key_sees_that_user_only(page: Page, keyed_url: str) -> None:
    seed(keyed_url, "ann", [{"id": "a", "messages": [{"role": "user", "content": "Ann's secret garden"}]}], "sk-admin")
    seed(keyed_url, "bob", [{"id": "b", "messages": [{"role": "user", "content": "Bob's boat"}]}], "sk-admin")
    page.goto(keyed_url + "/ui")
    key = page.get_by_label("API key")
    expect(key).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()

    key.fill("sk-wrong")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#key-why")).to_have_text("The gateway refused that key. Try another.")
    expect(key).to_be_visible()
    expect(key).to_have_value("")

    key.fill("sk-ann")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#own-user")).to_have_text("Memory of ann")
    expect(page.locator(".memory .content")).to_have_text(["Ann's secret garden"])
    expect(page.get_by_label("User", exact=True)).to_be_hidden()  # no picker: the key reaches ann only
    assert page.evaluate("sessionStorage.getItem('memory-gateway.key')") == "sk-ann"

    page.reload()  # the key is kept for the tab
    expect(page.locator(".memory .content")).to_have_text(["Ann's secret garden"])

    page.evaluate("sessionStorage.setItem('memory-gateway.key', 'sk-revoked')")  # a key that stops working
    page.get_by_role("searchbox", name="Search memories").fill("garden")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(key).to_be_visible()  # a 401 brings the prompt back
    expect(page.locator("#console")).to_be_hidden()


def test_an_admin_key_picks_any_user(page: Page, keyed_url: str) -> None:
    seed(keyed_url, "carl", [{"id": "c", "messages": [{"role": "user", "content": "Carl's cello"}]}], "sk-admin")
    page.goto(keyed_url + "/ui")
    page.get_by_label("API key").fill("sk-admin")
    page.get_by_role("button", name="Use this key").click()
    picker = page.get_by_label("User", exact=True)
    expect(picker).to_be_visible()
    expect(picker.locator("option", has_text="carl (1 memory)")).to_have_count(1)
    picker.select_option("carl")
    expect(page.locator(".memory .content")).to_have_text(["Carl's cello"])
    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('memory-gateway.key')") is None


def test_a_phone_wide_page_has_no_horizontal_scroll(browser: Browser, open_url: str) -> None:
    long_id = "conversation-" + "x" * 200
    seed(open_url, "pia", [{"id": long_id, "messages": [{"role": "user", "content": "w" * 500 + " and more"}]}])
    with api(open_url) as client:
        client.put("/memory/core/human", json={"value": "z" * 300, "user_id": "pia"})
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        open_console(page, open_url, "pia")
        expect(page.locator(".memory")).to_have_count(1)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1] == 375
    finally:
        context.close()


def test_memory_text_is_shown_as_text_never_as_markup(page: Page, open_url: str) -> None:
    dialogs: list[str] = []

    def alerted(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", alerted)
    conversation = {"id": "<b>bold</b>", "messages": [{"role": "user", "content": MARKUP}]}
    seed(open_url, "<script>", [conversation], notes=[{"content": MARKUP, "created_at": "2024-01-01T00:00:00Z"}])
    settle(open_url)
    with api(open_url) as client:
        client.put("/memory/core/human", json={"value": MARKUP, "user_id": "<script>"})
    open_console(page, open_url, "<script>")
    expect(page.locator(".memory .content")).to_have_text([MARKUP, MARKUP])
    expect(page.get_by_label("human", exact=True)).to_have_value(MARKUP)
    expect(page.get_by_text("<b>bold</b>", exact=True)).to_be_visible()
    page.get_by_role("searchbox", name="Search memories").fill("img onerror")
    page.get_by_role("searchbox", name="Search memories").press("Enter")
    expect(page.locator("#listing")).to_contain_text("found for")
    expect(page.locator(".memory .content").first).to_have_text(MARKUP)
    assert page.locator("main img, main b, main script").count() == 0
    assert dialogs == []


def test_the_console_refers_to_nothing_outside_the_gateway(open_url: str) -> None:
    with api(open_url) as client:
        html = client.get("/ui")
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in html.headers["content-security-policy"]
        assert '<meta name="viewport"' in html.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert sorted(assets) == ["/ui/static/console.css", "/ui/static/console.js"]
        for body in [html.text, *(client.get(asset).text for asset in assets)]:
            assert "http://" not in body
            assert "https://" not in body
            assert "//cdn" not in body
        assert client.get("/ui/static/index.html").status_code == 404
        assert client.get("/ui/static/..%2Fapp.py").status_code == 404
    with api(open_url) as client:  # not in the API's schema
        assert not [p for p in client.get("/schema/openapi.json").json()["paths"] if p.startswith("/ui")]

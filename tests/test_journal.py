"""The journal on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway import journal as journal_module
from gateway.journal import MIGRATIONS, CoreBlock, Journal, Turn


def turn(question: str, answer: str = "ok", *, user: str = "ann", conversation: str = "c1", **extra: object) -> Turn:
    return Turn(user=user, conversation=conversation, model="qwen3:4b", question=question, answer=answer, **extra)  # type: ignore[arg-type]


async def test_a_turn_is_two_messages_queued_for_the_index(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "data" / "journal.db")
    try:
        ids = await journal.record(turn("my sister is called Maud", "Noted.", prompt_tokens=12, completion_tokens=2))
        assert len(ids) == 2
        assert [(m.role, m.text) for m in await journal.pending()] == [
            ("user", "my sister is called Maud"),
            ("assistant", "Noted."),
        ]
        await journal.indexed(ids[:1])
        assert [m.id for m in await journal.pending()] == ids[1:]
        assert await journal.counts() == {"turns": 1, "messages": 2, "outbox": 1, "lexical_only": 0}
    finally:
        await journal.close()


async def test_recent_is_per_user_and_conversation_oldest_first(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        for i in range(3):
            await journal.record(turn(f"q{i}", f"a{i}"))
        await journal.record(turn("other conversation", conversation="c2"))
        await journal.record(turn("other user", user="bob"))
        assert [m.text for m in await journal.recent("ann", "c1", 4)] == ["q1", "a1", "q2", "a2"]
    finally:
        await journal.close()


async def test_partial_turns_and_empty_answers(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        ids = await journal.record(turn("cut short", "", status="partial"))
        assert len(ids) == 1
    finally:
        await journal.close()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("SELECT status FROM turns").fetchall() == [("partial",)]


async def test_reopening_keeps_everything_and_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    await journal.record(turn("remember me"))
    await journal.close()
    journal = await Journal.open(path)
    try:
        assert (await journal.counts())["messages"] == 2
    finally:
        await journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_journal_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        await Journal.open(path)


async def test_messages_indexed_by_words_alone_wait_for_their_dense_vector(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        ids = await journal.record(turn("the embedder was down", "so words only"))
        await journal.indexed(ids, lexical_only=True)
        assert await journal.pending() == []  # nothing new for a words-only index
        assert [m.id for m in await journal.pending(lexical_only=True)] == ids  # all of it once dense works
        assert (await journal.counts())["lexical_only"] == 2
        await journal.indexed(ids)
        assert await journal.pending(lexical_only=True) == []
    finally:
        await journal.close()


async def test_requeue_puts_every_message_back_for_a_reindex(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        for i in range(3):
            await journal.indexed(await journal.record(turn(f"q{i}", f"a{i}")))
        assert await journal.pending() == []
        assert await journal.requeue() == 6
        assert [m.text for m in await journal.pending()] == ["q0", "a0", "q1", "a1", "q2", "a2"]
    finally:
        await journal.close()


async def test_settings_kept_beside_the_journal(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        assert await journal.get("index.embedding_model") is None
        await journal.put("index.embedding_model", "nomic-embed-text")
        await journal.put("index.embedding_model", "all-minilm")
        assert await journal.get("index.embedding_model") == "all-minilm"
    finally:
        await journal.close()


async def test_concurrent_turns_do_not_mix(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        ids = await asyncio.gather(*(journal.record(turn(f"q{n}", f"a{n}", conversation=f"c{n}")) for n in range(40)))
        assert all(len(pair) == 2 for pair in ids)
        for n in range(40):
            assert [m.text for m in await journal.recent("ann", f"c{n}", 10)] == [f"q{n}", f"a{n}"]
        assert await journal.counts() == {"turns": 40, "messages": 80, "outbox": 80, "lexical_only": 0}
    finally:
        await journal.close()


async def test_a_failed_write_leaves_nothing_half_done(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        broken = [("user", "kept only with the rest", 1.0, ""), ("user", None, 2.0, "")]
        with pytest.raises(sqlite3.IntegrityError):
            await journal.add_messages("ann", "c1", broken)  # type: ignore[arg-type]
        await journal.record(turn("next turn"))
        assert [m.text for m in await journal.recent("ann", "c1", 10)] == ["next turn", "ok"]
    finally:
        await journal.close()


async def test_an_import_keeps_its_order_across_statements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "ROWS_PER_STATEMENT", 2)
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        said = [("user" if n % 2 else "assistant", f"message {n}", float(n), "Ann" if n % 2 else "") for n in range(5)]
        ids = await journal.add_messages("ann", "c1", said)
        stored = {m.id: m for m in await journal.pending()}
        assert [(stored[i].role, stored[i].text, stored[i].created_at, stored[i].name) for i in ids] == said
    finally:
        await journal.close()


async def test_core_memory_read_again_shows_every_change(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        assert await journal.core("ann") == []
        await journal.put_core("ann", CoreBlock("human", "Ann, a nurse", 500, 1.0))
        await journal.put_core("bob", CoreBlock("human", "Bob", 500, 1.0))
        assert [b.value for b in await journal.core("ann")] == ["Ann, a nurse"]
        readers = [journal.core("ann") for _ in range(5)]  # reads racing a write see the old or the new, then the new
        await asyncio.gather(*readers, journal.put_core("ann", CoreBlock("human", "Ann, a doctor", 500, 2.0)))
        assert [b.value for b in await journal.core("ann")] == ["Ann, a doctor"]
        assert await journal.delete_core("ann", "human")
        assert await journal.core("ann") == []
        await journal.forget("bob")
        assert await journal.core("bob") == []
    finally:
        await journal.close()
    reopened = await Journal.open(tmp_path / "journal.db")
    try:
        assert (await reopened.core("ann"), await reopened.core("bob")) == ([], [])
    finally:
        await reopened.close()

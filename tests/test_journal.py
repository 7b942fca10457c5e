"""The journal on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from gateway import journal as journal_module
from gateway.chat import CALIBRATION_KEY, restore_calibration
from gateway.journal import Journal
from gateway.records import CoreBlock, Turn
from gateway.schema import MIGRATIONS


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


async def test_each_turn_keeps_what_its_prompt_got(tmp_path: Path) -> None:
    """The user's words in the messages; the block sent with them, its memories and the cut, in the turn."""
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        await journal.record(turn("q0"))
        await journal.record(turn("q1", memories="<memories>\nx\n</memories>\n\n", injected=[4, 5], cut=2, bare=6))
        await journal.record(turn("elsewhere", conversation="c2", memories="other"))
        earlier = await journal.earlier("ann", "c1", 10)
        assert [(e.question, e.blocked, e.cut, e.bare, e.block) for e in earlier] == [
            ("q0", False, 0, 0, ""),
            ("q1", True, 2, 6, ""),  # the block itself is read only when it is placed again
        ]
        assert await journal.blocks([earlier[1].turn]) == {earlier[1].turn: ("<memories>\nx\n</memories>\n\n", [4, 5])}
        assert [m.text for m in (await journal.recent("ann", "c1", 10))[0]] == ["q0", "ok", "q1", "ok"]
        assert [e.question for e in await journal.earlier("ann", "c1", 1)] == ["q1"]
        assert (await journal.recent("ann", "c1", 2))[1] == 2  # messages older than those returned
    finally:
        await journal.close()


async def test_recent_is_per_user_and_conversation_oldest_first(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        for i in range(3):
            await journal.record(turn(f"q{i}", f"a{i}"))
        await journal.record(turn("other conversation", conversation="c2"))
        await journal.record(turn("other user", user="bob"))
        assert [m.text for m in (await journal.recent("ann", "c1", 4))[0]] == ["q1", "a1", "q2", "a2"]
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
            assert [m.text for m in (await journal.recent("ann", f"c{n}", 10))[0]] == [f"q{n}", f"a{n}"]
        assert await journal.counts() == {"turns": 40, "messages": 80, "outbox": 80, "lexical_only": 0}
    finally:
        await journal.close()


async def queued(journal: Journal, turns: list[Turn]) -> list[asyncio.Task[list[int]]]:
    """Record `turns` concurrently, all queued while the journal is busy with another write."""
    async with journal._lock:
        tasks = [asyncio.create_task(journal.record(t)) for t in turns]
        for _ in range(3):
            await asyncio.sleep(0)
    return tasks


async def test_turns_that_wait_together_are_committed_together(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    commits = 0
    commit = journal._db.commit

    async def counted() -> None:
        nonlocal commits
        commits += 1
        await commit()

    journal._db.commit = counted  # type: ignore[method-assign]
    try:
        tasks = await queued(journal, [turn(f"q{n}", f"a{n}", conversation=f"c{n}") for n in range(30)])
        ids = await asyncio.gather(*tasks)
        assert commits == 1
        for n, pair in enumerate(ids):
            assert [(await journal.message(i)).text for i in pair] == [f"q{n}", f"a{n}"]  # type: ignore[union-attr]
    finally:
        await journal.close()


async def test_a_bad_turn_fails_alone_and_the_rest_of_its_batch_is_kept(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        bad = turn("no user", user=None)  # type: ignore[arg-type]
        first, broken, last = await queued(journal, [turn("first"), bad, turn("last")])
        with pytest.raises(sqlite3.IntegrityError):
            await broken
        assert len(await first) == len(await last) == 2
        assert [m.text for m in (await journal.recent("ann", "c1", 10))[0]] == ["first", "ok", "last", "ok"]
    finally:
        await journal.close()


async def test_a_turn_whose_caller_went_away_does_not_take_others_with_it(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        gone, *kept = await queued(journal, [turn("cancelled"), turn("kept 1"), turn("kept 2")])
        await asyncio.sleep(0)  # the first is writing for all three, or about to
        gone.cancel()
        assert all(len(ids) == 2 for ids in await asyncio.wait_for(asyncio.gather(*kept), 10))  # not left waiting
        with pytest.raises(asyncio.CancelledError):
            await gone
        texts = [m.text for m in (await journal.recent("ann", "c1", 10))[0]]
        assert texts == ["kept 1", "ok", "kept 2", "ok"]
    finally:
        await journal.close()


async def test_a_failed_write_leaves_nothing_half_done(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        broken = [("user", "kept only with the rest", 1.0, ""), ("user", None, 2.0, "")]
        with pytest.raises(sqlite3.IntegrityError):
            await journal.add_messages("ann", "c1", broken)  # type: ignore[arg-type]
        await journal.record(turn("next turn"))
        assert [m.text for m in (await journal.recent("ann", "c1", 10))[0]] == ["next turn", "ok"]
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


async def test_token_count_corrections_are_restored_unless_unreadable(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        assert (await restore_calibration(journal)).correction("qwen3:4b") == 1.0
        await journal.put(CALIBRATION_KEY, json.dumps({"qwen3:4b": [1.3, 1.5]}))
        assert (await restore_calibration(journal)).correction("qwen3:4b") == pytest.approx(1.52)
        await journal.put(CALIBRATION_KEY, '{"qwen3:4b": "not ratios"}')
        assert (await restore_calibration(journal)).correction("qwen3:4b") == 1.0
    finally:
        await journal.close()


async def test_turns_the_user_leaves_are_kept_marked_and_queued_out_of_the_index(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        first = await journal.record(turn("hi", "hello"))
        second = await journal.record(turn("my dog is Rex", "nice"))
        await journal.indexed(first + second)
        t1, t2 = (e.turn for e in await journal.earlier("ann", "c1", 10))
        third = await journal.record(turn("my dog is Max", "fine", replaces=[t2]))
        earlier = await journal.earlier("ann", "c1", 10)
        assert [(e.question, e.answer, e.replaced, e.messages) for e in earlier] == [
            ("hi", "hello", False, tuple(first)),
            ("my dog is Rex", "nice", True, tuple(second)),
            ("my dog is Max", "fine", False, tuple(third)),
        ]
        assert [(m.id, m.replaced) for m in await journal.pending()] == [(i, True) for i in second] + [
            (i, False) for i in third
        ]
        recent, _ = await journal.recent("ann", "c1", 10)
        assert [m.text for m in recent] == ["hi", "hello", "my dog is Max", "fine"]  # the branch only
        assert [m.text for m in await journal.messages_of("ann")] == ["hi", "hello", "my dog is Max", "fine"]
        await journal.indexed(second, left=True)
        await journal.indexed(third)
        assert await journal.pending() == []

        await journal.record(turn("back to Rex", "ok", replaces=[e.turn for e in earlier[2:]], revives=[t2]))
        assert [(e.question, e.replaced) for e in await journal.earlier("ann", "c1", 10)] == [
            ("hi", False),
            ("my dog is Rex", False),
            ("my dog is Max", True),
            ("back to Rex", False),
        ]
        assert t1 not in [m.id for m in await journal.pending()]
        assert await journal.requeue() == 6  # a reindex leaves out what the user left
    finally:
        await journal.close()


async def test_a_message_left_while_it_was_being_indexed_stays_queued(tmp_path: Path) -> None:
    """The indexer read it on the branch; it was left before the indexer said it was written."""
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        ids = await journal.record(turn("hi", "hello"))
        reading = await journal.pending()
        (earlier,) = await journal.earlier("ann", "c1", 10)
        await journal.record(turn("hi", "hey", replaces=[earlier.turn]))
        await journal.indexed([m.id for m in reading])  # written as it was read: on the branch
        assert [m.id for m in await journal.pending()][:2] == ids  # still to be taken out
    finally:
        await journal.close()


async def test_forgetting_a_conversation_deletes_its_turns_and_messages(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        gone = await journal.record(turn("secret", "kept quiet")) + await journal.record(turn("more", "sure"))
        kept = await journal.record(turn("other chat", "yes", conversation="c2"))
        theirs = await journal.record(turn("bob's", "fine", user="bob"))
        assert await journal.forget_conversation("ann", "c1") == sorted(gone)
        assert await journal.forget_conversation("ann", "c1") == []
        assert [m.id for m in await journal.messages_of("ann")] == kept
        assert [m.id for m in await journal.messages_of("bob")] == theirs
        assert await journal.earlier("ann", "c1", 10) == []
        assert (await journal.counts())["turns"] == 2
        assert [m.id for m in await journal.pending()] == kept + theirs
    finally:
        await journal.close()


async def test_requeue_users_queues_only_their_messages_on_the_branch(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        ann = await journal.record(turn("hi", "hello"))
        bob = await journal.record(turn("hey", "yo", user="bob"))
        await journal.indexed(ann + bob)
        (left,) = await journal.earlier("ann", "c1", 10)
        kept = await journal.record(turn("hi", "hi again", replaces=[left.turn]))
        await journal.indexed(ann, left=True)
        await journal.indexed(kept)
        assert await journal.pending() == []
        assert await journal.requeue_users(["ann", "carol"]) == 2
        assert [m.id for m in await journal.pending()] == kept
    finally:
        await journal.close()


async def test_importing_again_adds_nothing_twice(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    said = [
        ("user", "we met in Porto", 1.0, ""),
        ("assistant", "lovely", 2.0, ""),
        ("user", "we met in Porto", 3.0, ""),
    ]
    core = [CoreBlock("human", "Ann, from Porto", 100, 5.0)]
    try:
        assert await journal.import_memory("ann", [("c1", said[:1])], [], []) == (1, 0)  # a crash cut it short
        assert await journal.import_memory("ann", [("c1", said), ("c2", said[:1])], core, [("a note", 4.0)]) == (3, 1)
        assert await journal.import_memory("ann", [("c1", said), ("c2", said[:1])], core, [("a note", 4.0)]) == (0, 0)
        assert [m.text for m in await journal.messages_of("ann")] == [
            "we met in Porto",
            "lovely",
            "we met in Porto",  # said twice in the conversation: both kept
            "we met in Porto",
            "a note",
        ]
        assert await journal.import_memory("bob", [("c1", said)], [], []) == (3, 0)  # another user's are their own
        assert [b.value for b in await journal.core("ann")] == ["Ann, from Porto"]
    finally:
        await journal.close()

"""The journal: every remembered turn in SQLite (WAL), the source of truth for the vector index.

One aiosqlite connection. A turn is written in one transaction (shared with the turns that came while the
one before was written): the turn row, a row per remembered message, and an outbox row per message until
the index has it. Its tables are made and changed by the steps in `schema.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path

import aiosqlite

from gateway.branch import Earlier
from gateway.records import CoreBlock, StoredMessage, Turn, UserTally
from gateway.schema import migrate
from gateway.stored_responses import StoredResponses

CORES_KEPT = 10_000  # users whose core memory is cached
ROWS_PER_STATEMENT = 1_000  # SQLite takes at most 32,766 parameters a statement
TURNS_PER_COMMIT = 400  # two messages each: within ROWS_PER_STATEMENT (and 12 columns: within the parameters)
_MESSAGE = "m.id, m.user, m.conversation, m.role, m.kind, m.text, m.created_at, m.name, m.replaced"


def _turn_row(t: Turn, now: float) -> tuple[str, str, float, str, str, int, int, int, str, str, int, int]:
    when = t.created_at or now
    return (
        t.user,
        t.conversation,
        when,
        t.model,
        t.status,
        t.prompt_tokens,
        t.completion_tokens,
        t.latency_ms,
        json.dumps(t.injected),
        t.memories,
        t.cut,
        t.bare,
    )


class Journal:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        # One connection: a transaction's statements must not interleave with another coroutine's, and a
        # reader must not see (or a writer commit) another's half-written turn.
        self._lock = asyncio.Lock()
        self._cores: dict[str, list[CoreBlock]] = {}  # core memory goes into every prompt; only we write it
        self._turns: list[tuple[Turn, asyncio.Future[list[int]]]] = []  # waiting to be recorded
        self.responses = StoredResponses(self)

    @contextlib.asynccontextmanager
    async def _write(self, *, forgetting_core_of: str | None = None) -> AsyncIterator[None]:
        """One transaction, alone on the connection.

        `forgetting_core_of` drops that user's cached core memory once the transaction is over, so no reader
        can cache what it replaced."""
        async with self._lock:
            try:
                async with self._transaction():
                    yield
            finally:
                if forgetting_core_of is not None:
                    self._cores.pop(forgetting_core_of, None)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, alone: no other coroutine's statements in between."""
        async with self._lock:
            yield self._db

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, in one transaction of its own."""
        async with self._write():
            yield self._db

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """Committed at the end, rolled back if anything fails; the caller holds the lock."""
        try:
            yield
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise

    @classmethod
    async def open(cls, path: Path) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        try:
            # WAL: readers never wait for the writer; FULL: a turn the client was told of survives power loss.
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    async def record(self, turn: Turn) -> list[int]:
        """Store a turn and queue its messages for indexing; returns the message ids once committed.

        Turns that come while another is being written go in together after it: one transaction and one sync
        to disk for all of them (with 16 clients, the syncs cost more CPU than the rest of the gateway's
        writing)."""
        mine: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._turns.append((turn, mine))
        try:
            while not mine.done():  # a batch is capped: a turn past the cap waits for the next one
                async with self._lock:
                    if not mine.done():
                        batch, self._turns = self._turns[:TURNS_PER_COMMIT], self._turns[TURNS_PER_COMMIT:]
                        await self._commit_turns(batch)
        except asyncio.CancelledError:
            self._turns = [(t, f) for t, f in self._turns if f is not mine]  # still queued: never written
            raise
        return mine.result()

    async def _commit_turns(self, batch: list[tuple[Turn, asyncio.Future[list[int]]]]) -> None:
        """Write a batch in one transaction; if that fails, each turn in its own, so only a bad one fails."""
        groups = [batch]
        while groups:
            group = groups.pop(0)
            try:
                async with self._transaction():
                    stored = await self._insert_turns([t for t, _ in group])
            except asyncio.CancelledError:  # the caller went away; the others still wait for their write
                self._turns[:0] = [entry for g in (group, *groups) for entry in g]
                raise
            except Exception as exc:
                if len(group) == 1:
                    group[0][1].set_exception(exc)
                else:
                    groups[:0] = [[entry] for entry in group]
                continue
            for (_, waiting), ids in zip(group, stored, strict=True):
                waiting.set_result(ids)

    async def _insert_turns(self, turns: Sequence[Turn]) -> list[list[int]]:
        """Insert turns and their messages in three statements; the message ids of each turn."""
        now = time.time()
        columns = (
            "user, conversation, created_at, model, status, prompt_tokens, completion_tokens, latency_ms, injected,"
            " memories, cut, bare"
        )
        values = [_turn_row(t, now) for t in turns]
        inserted = await self._db.execute_fetchall(
            f"INSERT INTO turns ({columns}) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(values))
            + " RETURNING id",
            [value for row in values for value in row],
        )
        rows, owners = [], []
        for n, (turn, turn_id, row) in enumerate(zip(turns, sorted(r[0] for r in inserted), values, strict=True)):
            for role, text, name in (("user", turn.question, turn.name), ("assistant", turn.answer, "")):
                if text:
                    rows.append((turn_id, turn.user, turn.conversation, role, text, row[2], name))
                    owners.append(n)
        found: list[list[int]] = [[] for _ in turns]
        for n, id in zip(owners, await self._insert_queued(rows), strict=True):
            found[n].append(id)
        for turn in turns:
            await self._mark(turn.user, turn.replaces, replaced=True)
            await self._mark(turn.user, turn.revives, replaced=False)
        return found

    async def _mark(self, user: str, turns: Collection[int], *, replaced: bool) -> None:
        """Move these turns off (or back onto) the user's branch; the outbox takes them out of the index (or
        back in)."""
        if not turns:
            return
        marked = await self._db.execute_fetchall(
            f"UPDATE messages SET replaced = ? WHERE user = ? AND replaced != ? AND turn_id IN"
            f" ({', '.join('?' * len(turns))}) RETURNING id",
            [int(replaced), user, int(replaced), *turns],
        )
        ids = [row[0] for row in marked]
        if ids:
            await self._db.execute(
                "INSERT OR REPLACE INTO outbox (message_id) VALUES " + ", ".join(["(?)"] * len(ids)), ids
            )

    async def _insert_queued(self, rows: Sequence[tuple[int | None, str, str, str, str, float, str]]) -> list[int]:
        """Insert messages (turn, user, conversation, role, text, created_at, name) and queue them for indexing.

        Two statements whatever the count: each statement is a round trip to SQLite's thread."""
        if not rows:
            return []
        inserted = await self._db.execute_fetchall(
            "INSERT INTO messages (turn_id, user, conversation, role, text, created_at, name) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            + " RETURNING id",
            [value for row in rows for value in row],
        )
        ids = sorted(row[0] for row in inserted)  # ids grow in insertion order; RETURNING's order is not promised
        await self._db.execute("INSERT INTO outbox (message_id) VALUES " + ", ".join(["(?)"] * len(ids)), ids)
        return ids

    async def add_messages(
        self, user: str, conversation: str, messages: Sequence[tuple[str, str, float, str]]
    ) -> list[int]:
        """Store messages that came without a turn of ours (an import): (role, text, created_at, name) each."""
        async with self._write():
            return await self._add_messages(user, conversation, messages)

    async def _add_messages(
        self, user: str, conversation: str, messages: Sequence[tuple[str, str, float, str]]
    ) -> list[int]:
        rows = [(None, user, conversation, role, text, when, name) for role, text, when, name in messages]
        ids = []
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            ids += await self._insert_queued(rows[start : start + ROWS_PER_STATEMENT])
        return ids

    async def import_memory(
        self,
        user: str,
        conversations: Sequence[tuple[str, Sequence[tuple[str, str, float, str]]]],
        core: Sequence[CoreBlock],
        notes: Sequence[tuple[str, float]],
    ) -> tuple[int, int]:
        """Store an import in one transaction: conversations ((role, text, created_at, name) each), core blocks
        and notes (text, created_at). What the user's memory already holds is left out, so importing the same
        file again, whole or after a crash, adds nothing twice: a conversation's messages by role, words and
        speaker (counted), a note by its words. Returns the messages and the notes added."""
        added = noted = 0
        async with self._write(forgetting_core_of=user):
            for conversation, messages in conversations:
                rows = await self._db.execute_fetchall(
                    "SELECT role, text, name FROM messages WHERE user = ? AND conversation = ? AND kind = 'message'",
                    (user, conversation),
                )
                held: Counter[tuple[str, str, str]] = Counter((role, text, name) for role, text, name in rows)
                fresh = []
                for role, text, when, name in messages:
                    if held[(role, text, name)]:
                        held[(role, text, name)] -= 1
                    else:
                        fresh.append((role, text, when, name))
                added += len(await self._add_messages(user, conversation, fresh))
            for block in core:
                await self._db.execute(
                    "INSERT OR REPLACE INTO core (user, label, value, max_tokens, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (user, block.label, block.value, block.max_tokens, block.updated_at),
                )
            held_notes = {
                row[0]
                for row in await self._db.execute_fetchall(
                    "SELECT text FROM messages WHERE user = ? AND kind = 'note'", (user,)
                )
            }
            for text, when in notes:
                if text not in held_notes:
                    held_notes.add(text)
                    await self._insert_note(user, text, "note", when)
                    noted += 1
        return added, noted

    async def add_note(self, user: str, text: str, *, kind: str = "note", when: float = 0.0) -> int:
        """A memory that is not part of a conversation (an archival note); queued for indexing."""
        async with self._write():
            return await self._insert_note(user, text, kind, when)

    async def _insert_note(self, user: str, text: str, kind: str, when: float) -> int:
        cursor = await self._db.execute(
            "INSERT INTO messages (user, conversation, role, kind, text, created_at) VALUES (?, '', 'user', ?, ?, ?)",
            (user, kind, text, when or time.time()),
        )
        assert cursor.lastrowid is not None
        await self._db.execute("INSERT INTO outbox (message_id) VALUES (?)", (cursor.lastrowid,))
        return cursor.lastrowid

    async def message(self, id: int) -> StoredMessage | None:
        async with self._lock:
            rows = list(await self._db.execute_fetchall(f"SELECT {_MESSAGE} FROM messages m WHERE id = ?", (id,)))
        return StoredMessage(*rows[0]) if rows else None

    async def delete_message(self, id: int) -> None:
        async with self._write():
            await self._db.execute("DELETE FROM messages WHERE id = ?", (id,))

    async def forget(self, user: str) -> int:
        """Delete everything of a user: turns, messages (and their outbox rows), core memory, proposed facts;
        returns how many messages."""
        async with self._write(forgetting_core_of=user):
            cursor = await self._db.execute("DELETE FROM messages WHERE user = ?", (user,))
            await self._db.execute("DELETE FROM turns WHERE user = ?", (user,))
            await self._db.execute("DELETE FROM core WHERE user = ?", (user,))
            await self._db.execute("DELETE FROM responses WHERE user = ?", (user,))
            # the facts consolidation proposed about the user, and those the user settled (consolidate.py's keys)
            proposals = (f"core_proposals:{user}", f"core_settled:{user}")
            await self._db.execute("DELETE FROM meta WHERE key IN (?, ?)", proposals)
            return cursor.rowcount

    async def forget_conversation(self, user: str, conversation: str) -> list[int]:
        """Delete a conversation of a user: its turns and messages (and their outbox rows); returns the ids."""
        async with self._write():
            gone = await self._db.execute_fetchall(
                "DELETE FROM messages WHERE user = ? AND conversation = ? RETURNING id, turn_id", (user, conversation)
            )
            turns = sorted({turn for _, turn in gone if turn is not None})
            for start in range(0, len(turns), ROWS_PER_STATEMENT):
                chunk = turns[start : start + ROWS_PER_STATEMENT]
                await self._db.execute(f"DELETE FROM turns WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            await self._db.execute("DELETE FROM responses WHERE user = ? AND conversation = ?", (user, conversation))
            return sorted(id for id, _ in gone)

    async def messages_of(self, user: str) -> list[StoredMessage]:
        """All of a user's messages and notes, in the order they were stored."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE} FROM messages m WHERE user = ? AND NOT replaced ORDER BY id", (user,)
            )
        return [StoredMessage(*row) for row in rows]

    async def page(self, user: str, *, before: int, limit: int, notes: bool | None = None) -> list[StoredMessage]:
        """A user's messages and notes (`notes`: only notes, or only messages) newest first, from just before
        the id `before`: a walk down the index `messages_by_user` that never reads what it does not show."""
        kind = "" if notes is None else " AND kind = 'note'" if notes else " AND kind != 'note'"
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE} FROM messages m WHERE user = ? AND id < ? AND NOT replaced{kind}"
                " ORDER BY id DESC LIMIT ?",
                (user, before, limit),
            )
        return [StoredMessage(*row) for row in rows]

    async def tally(self) -> list[UserTally]:
        """Every user with a memory or a core block: how many of each, and when they last changed."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT user, sum(memories), sum(conversations), sum(blocks), max(last) FROM ("
                " SELECT user, count(*) AS memories, count(DISTINCT nullif(conversation, '')) AS conversations,"
                " 0 AS blocks, max(created_at) AS last FROM messages WHERE NOT replaced GROUP BY user"
                " UNION ALL SELECT user, 0, 0, count(*), max(updated_at) FROM core GROUP BY user"
                ") GROUP BY user ORDER BY user"
            )
        return [UserTally(*row) for row in rows]

    async def users(self) -> list[str]:
        async with self._lock:
            rows = await self._db.execute_fetchall("SELECT DISTINCT user FROM messages ORDER BY user")
        return [row[0] for row in rows]

    async def core(self, user: str) -> list[CoreBlock]:
        if user not in self._cores:
            async with self._lock:
                rows = await self._db.execute_fetchall(
                    "SELECT label, value, max_tokens, updated_at FROM core WHERE user = ? ORDER BY label", (user,)
                )
            if len(self._cores) >= CORES_KEPT:
                self._cores.clear()
            self._cores[user] = [CoreBlock(*row) for row in rows]
        return list(self._cores[user])

    async def put_core(self, user: str, block: CoreBlock) -> None:
        async with self._write(forgetting_core_of=user):
            await self._db.execute(
                "INSERT OR REPLACE INTO core (user, label, value, max_tokens, updated_at) VALUES (?, ?, ?, ?, ?)",
                (user, block.label, block.value, block.max_tokens, block.updated_at),
            )

    async def delete_core(self, user: str, label: str) -> bool:
        async with self._write(forgetting_core_of=user):
            cursor = await self._db.execute("DELETE FROM core WHERE user = ? AND label = ?", (user, label))
            return cursor.rowcount > 0

    async def recent(self, user: str, conversation: str, limit: int) -> tuple[list[StoredMessage], int]:
        """The newest `limit` messages of a conversation, oldest first, and how many older ones there are."""
        async with self._lock:
            rows = list(
                await self._db.execute_fetchall(
                    f"SELECT {_MESSAGE}, count(*) OVER () FROM messages m WHERE user = ? AND conversation = ?"
                    " AND NOT replaced"
                    " ORDER BY id DESC LIMIT ?",
                    (user, conversation, limit),
                )
            )
        older = rows[0][-1] - len(rows) if rows else 0
        return [StoredMessage(*row[:-1]) for row in reversed(rows)], older

    async def earlier(self, user: str, conversation: str, limit: int) -> list[Earlier]:
        """The newest `limit` turns of a conversation, oldest first, those the user left among them: the user's
        words, the answer, and what their prompt got (whether it had a memory block, not the block and its
        memories: `blocks` reads those)."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                # through the conversation's messages (indexed); a block is there when memories were injected
                "SELECT t.id, m.text, t.injected != '[]', t.cut, t.bare, m.replaced, m.id, a.id, a.text"
                " FROM messages m JOIN turns t ON t.id = m.turn_id"
                " LEFT JOIN messages a ON a.turn_id = t.id AND a.role = 'assistant'"
                " WHERE m.user = ? AND m.conversation = ? AND m.role = 'user' ORDER BY m.id DESC LIMIT ?",
                (user, conversation, limit),
            )
        return [
            Earlier(
                question=text,
                turn=id,
                blocked=bool(blocked),
                cut=cut,
                bare=bare,
                replaced=bool(replaced),
                answer=answer or "",
                messages=(asked, answered) if answered else (asked,),
            )
            for id, text, blocked, cut, bare, replaced, asked, answered, answer in reversed(list(rows))
        ]

    async def blocks(self, turns: Collection[int]) -> dict[int, tuple[str, list[int]]]:
        """The memory blocks these turns' prompts got, and the memories in them, by turn."""
        if not turns:
            return {}
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT id, memories, injected FROM turns WHERE id IN ({', '.join('?' * len(turns))})", list(turns)
            )
        return {id: (text, json.loads(ids)) for id, text, ids in rows}

    async def pending(self, limit: int = 256, *, lexical_only: bool = False) -> list[StoredMessage]:
        """Messages the index lacks, oldest first; with `lexical_only`, also those indexed without a dense vector."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE} FROM outbox o JOIN messages m ON m.id = o.message_id WHERE o.lexical_only <= ?"
                " ORDER BY o.message_id LIMIT ?",
                (int(lexical_only), limit),
            )
            return [StoredMessage(*row) for row in rows]

    async def indexed(self, ids: list[int], *, lexical_only: bool = False, left: bool = False) -> None:
        """The index has these (or, `left`, has them no more); lexical-only ones stay queued for their dense
        vector. A message the user left or went back to meanwhile stays queued for that."""
        rows = [(i, i, int(left)) for i in ids]
        current = "(SELECT replaced FROM messages WHERE id = ?) = ?"
        async with self._write():
            if lexical_only:
                await self._db.executemany(
                    f"UPDATE outbox SET lexical_only = 1 WHERE message_id = ? AND {current}", rows
                )
            else:
                await self._db.executemany(f"DELETE FROM outbox WHERE message_id = ? AND {current}", rows)

    async def requeue(self) -> int:
        """Queue every message for indexing again (a reindex); returns how many."""
        async with self._write():
            await self._db.execute("DELETE FROM outbox")
            cursor = await self._db.execute(
                "INSERT INTO outbox (message_id) SELECT id FROM messages WHERE NOT replaced"
            )
            return cursor.rowcount

    async def requeue_users(self, users: Sequence[str]) -> int:
        """Queue these users' memories for indexing again (their part of the index was lost); returns how many."""
        queued = 0
        async with self._write():
            for start in range(0, len(users), ROWS_PER_STATEMENT):
                chunk = users[start : start + ROWS_PER_STATEMENT]
                cursor = await self._db.execute(
                    "INSERT OR IGNORE INTO outbox (message_id) SELECT id FROM messages WHERE NOT replaced AND user IN"
                    f" ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                queued += cursor.rowcount
        return queued

    async def get(self, key: str) -> str | None:
        async with self._lock:
            rows = list(await self._db.execute_fetchall("SELECT value FROM meta WHERE key = ?", (key,)))
            return str(rows[0][0]) if rows else None

    async def put(self, key: str, value: str) -> None:
        async with self._write():
            await self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    async def counts(self) -> dict[str, int]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT (SELECT count(*) FROM turns), (SELECT count(*) FROM messages),"
                " (SELECT count(*) FROM outbox WHERE lexical_only = 0),"
                " (SELECT count(*) FROM outbox WHERE lexical_only = 1)"
            )
            turns, messages, outbox, lexical_only = next(iter(rows))
            return {"turns": turns, "messages": messages, "outbox": outbox, "lexical_only": lexical_only}

    async def kinds(self) -> dict[str, int]:
        """How many memories of each kind: conversation messages (`recall`), notes (`archival`), core blocks."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT CASE kind WHEN 'note' THEN 'archival' ELSE 'recall' END, count(*) FROM messages GROUP BY 1"
                " UNION ALL SELECT 'core', count(*) FROM core"
            )
        return {kind: count for kind, count in rows}

    def size(self) -> int:
        """Bytes on disk, the write-ahead log included."""
        return sum(p.stat().st_size for p in self._path.parent.glob(self._path.name + "*") if p.is_file())

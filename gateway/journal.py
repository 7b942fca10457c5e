"""The journal: every remembered turn in SQLite (WAL), the source of truth for the vector index.

One aiosqlite connection. Each turn is one transaction: the turn row, a row per remembered message, and an
outbox row per message until the index has it. Schema changes are ordered steps under `PRAGMA user_version`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

import aiosqlite
from msgspec import Struct

TurnStatus = Literal["complete", "partial"]

MIGRATIONS: list[str] = [
    # 1: turns, the messages they remember, and the outbox of messages not yet indexed
    """
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        conversation TEXT NOT NULL,
        created_at REAL NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('complete', 'partial')),
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        injected TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        turn_id INTEGER REFERENCES turns(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        conversation TEXT NOT NULL,
        role TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'message',
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(user, conversation, id);
    CREATE TABLE outbox (message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE);
    """,
    # 2: messages indexed without a dense vector (embedding was down) stay in the outbox, marked; settings
    # the index was built with
    """
    ALTER TABLE outbox ADD COLUMN lexical_only INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 3: who said a message, when a client or an import names the speaker (OpenAI's `name`)
    """
    ALTER TABLE messages ADD COLUMN name TEXT NOT NULL DEFAULT '';
    """,
    # 4: core memory, named blocks per user that always go into the prompt
    """
    CREATE TABLE core (
        user TEXT NOT NULL,
        label TEXT NOT NULL,
        value TEXT NOT NULL,
        max_tokens INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (user, label)
    );
    CREATE INDEX messages_by_user ON messages(user, id);
    """,
]


class Turn(Struct, kw_only=True):
    """One exchange to remember: the new user message and the answer it got."""

    user: str
    conversation: str
    model: str
    question: str
    answer: str
    status: TurnStatus = "complete"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    injected: list[int] = []
    created_at: float = 0.0
    name: str = ""  # the asker's name, if the client gave one


class StoredMessage(Struct):
    id: int
    user: str
    conversation: str
    role: str
    kind: str
    text: str
    created_at: float
    name: str = ""


CORES_KEPT = 10_000  # users whose core memory is cached
ROWS_PER_STATEMENT = 1_000  # SQLite takes at most 32,766 parameters a statement
_MESSAGE = "m.id, m.user, m.conversation, m.role, m.kind, m.text, m.created_at, m.name"


class CoreBlock(Struct):
    label: str
    value: str
    max_tokens: int
    updated_at: float


class Journal:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        # One connection: a transaction's statements must not interleave with another coroutine's, and a
        # reader must not see (or a writer commit) another's half-written turn.
        self._lock = asyncio.Lock()
        self._cores: dict[str, list[CoreBlock]] = {}  # core memory goes into every prompt; only we write it

    @contextlib.asynccontextmanager
    async def _write(self, *, forgetting_core_of: str | None = None) -> AsyncIterator[None]:
        """One transaction, alone on the connection: committed at the end, rolled back if anything fails.

        `forgetting_core_of` drops that user's cached core memory once the transaction is over, so no reader
        can cache what it replaced."""
        async with self._lock:
            try:
                yield
                await self._db.commit()
            except BaseException:
                await self._db.rollback()
                raise
            finally:
                if forgetting_core_of is not None:
                    self._cores.pop(forgetting_core_of, None)

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
        """Store a turn and queue its messages for indexing; returns the message ids."""
        async with self._write():
            when = turn.created_at or time.time()
            turn_row = await self._db.execute_insert(
                "INSERT INTO turns (user, conversation, created_at, model, status, prompt_tokens, completion_tokens,"
                " latency_ms, injected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    turn.user,
                    turn.conversation,
                    when,
                    turn.model,
                    turn.status,
                    turn.prompt_tokens,
                    turn.completion_tokens,
                    turn.latency_ms,
                    json.dumps(turn.injected),
                ),
            )
            assert turn_row is not None
            said = [("user", turn.question, turn.name), ("assistant", turn.answer, "")]
            rows = [(turn_row[0], turn.user, turn.conversation, role, text, when, name) for role, text, name in said]
            return await self._insert_queued([row for row in rows if row[4]])

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
        rows = [(None, user, conversation, role, text, when, name) for role, text, when, name in messages]
        async with self._write():
            ids = []
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                ids += await self._insert_queued(rows[start : start + ROWS_PER_STATEMENT])
            return ids

    async def add_note(self, user: str, text: str, *, kind: str = "note", when: float = 0.0) -> int:
        """A memory that is not part of a conversation (an archival note); queued for indexing."""
        async with self._write():
            cursor = await self._db.execute(
                "INSERT INTO messages (user, conversation, role, kind, text, created_at)"
                " VALUES (?, '', 'user', ?, ?, ?)",
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
        """Delete everything of a user: turns, messages (and their outbox rows), core memory; returns messages."""
        async with self._write(forgetting_core_of=user):
            cursor = await self._db.execute("DELETE FROM messages WHERE user = ?", (user,))
            await self._db.execute("DELETE FROM turns WHERE user = ?", (user,))
            await self._db.execute("DELETE FROM core WHERE user = ?", (user,))
            return cursor.rowcount

    async def messages_of(self, user: str) -> list[StoredMessage]:
        """All of a user's messages and notes, in the order they were stored."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE} FROM messages m WHERE user = ? ORDER BY id", (user,)
            )
        return [StoredMessage(*row) for row in rows]

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

    async def recent(self, user: str, conversation: str, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages of a conversation, oldest first."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE} FROM messages m WHERE user = ? AND conversation = ? ORDER BY id DESC LIMIT ?",
                (user, conversation, limit),
            )
            return [StoredMessage(*row) for row in reversed(list(rows))]

    async def pending(self, limit: int = 256, *, lexical_only: bool = False) -> list[StoredMessage]:
        """Messages the index lacks, oldest first; with `lexical_only`, also those indexed without a dense vector."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE} FROM outbox o JOIN messages m ON m.id = o.message_id WHERE o.lexical_only <= ?"
                " ORDER BY o.message_id LIMIT ?",
                (int(lexical_only), limit),
            )
            return [StoredMessage(*row) for row in rows]

    async def indexed(self, ids: list[int], *, lexical_only: bool = False) -> None:
        """The index has these; lexical-only ones stay queued for their dense vector."""
        async with self._write():
            if lexical_only:
                await self._db.executemany(
                    "UPDATE outbox SET lexical_only = 1 WHERE message_id = ?", [(i,) for i in ids]
                )
            else:
                await self._db.executemany("DELETE FROM outbox WHERE message_id = ?", [(i,) for i in ids])

    async def requeue(self) -> int:
        """Queue every message for indexing again (a reindex); returns how many."""
        async with self._write():
            await self._db.execute("DELETE FROM outbox")
            cursor = await self._db.execute("INSERT INTO outbox (message_id) SELECT id FROM messages")
            return cursor.rowcount

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


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply the steps this database has not seen, each in its own transaction; returns the new version."""
    version: int = next(iter(await db.execute_fetchall("PRAGMA user_version")))[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(f"journal schema {version} is newer than this gateway knows ({len(MIGRATIONS)})")
    for step, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step};\nCOMMIT;")
    return len(MIGRATIONS)

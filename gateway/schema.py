"""The journal's tables, as ordered migration steps under `PRAGMA user_version`.

A database is brought up to date when the journal opens it; a step is never edited once released, only
followed by another.
"""

from __future__ import annotations

import aiosqlite

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
    # 5: what each turn's prompt got, so later turns can send it again byte for byte: the memory block at
    # the head of its user message, the conversation messages its prompt left out, and those before which it
    # placed no earlier block
    """
    ALTER TABLE turns ADD COLUMN memories TEXT NOT NULL DEFAULT '';
    ALTER TABLE turns ADD COLUMN cut INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE turns ADD COLUMN bare INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: turns the user left (a regenerated answer, an edited question and what followed it) stay, marked,
    # out of recall: an outbox row of a replaced message takes it out of the index; the turns' messages by turn
    """
    ALTER TABLE messages ADD COLUMN replaced INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_by_turn ON messages(turn_id);
    """,
    # 7: the Responses API's stored responses (`store`): what each added to its conversation (its input and
    # output, as chat messages, JSON) for `previous_response_id`, and the response itself for GET
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        conversation TEXT NOT NULL,
        previous TEXT,
        created_at REAL NOT NULL,
        messages TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX responses_by_conversation ON responses(user, conversation);
    """,
]


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply the steps this database has not seen, each in its own transaction; returns the new version."""
    version: int = next(iter(await db.execute_fetchall("PRAGMA user_version")))[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(f"journal schema {version} is newer than this gateway knows ({len(MIGRATIONS)})")
    for step, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step};\nCOMMIT;")
    return len(MIGRATIONS)

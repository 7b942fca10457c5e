"""The Responses API's stored responses (`store`): what each added to its conversation, for
`previous_response_id`, and the response itself, for `GET /v1/responses/{id}`; in the journal's database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.records import StoredResponse

if TYPE_CHECKING:
    from gateway.journal import Journal

_COLUMNS = "r.id, r.user, r.conversation, r.previous, r.created_at, r.messages, r.body"


class StoredResponses:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def put(self, stored: StoredResponse) -> None:
        async with self._journal.writing() as db:
            await db.execute(
                "INSERT OR REPLACE INTO responses (id, user, conversation, previous, created_at, messages, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                stored,
            )

    async def get(self, user: str, id: str) -> StoredResponse | None:
        async with self._journal.reading() as db:
            rows = await db.execute_fetchall(
                f"SELECT {_COLUMNS} FROM responses r WHERE r.user = ? AND r.id = ?", (user, id)
            )
        return next((StoredResponse(*row) for row in rows), None)

    async def chain(self, user: str, id: str, limit: int) -> list[StoredResponse]:
        """The stored response `id` and those before it (`previous`), oldest first, at most `limit` of them."""
        async with self._journal.reading() as db:
            rows = await db.execute_fetchall(
                "WITH RECURSIVE chain(id, previous, depth) AS ("
                " SELECT id, previous, 0 FROM responses WHERE user = ? AND id = ?"
                " UNION ALL SELECT r.id, r.previous, c.depth + 1 FROM responses r JOIN chain c ON r.id = c.previous"
                " WHERE r.user = ? AND c.depth + 1 < ?)"
                f" SELECT {_COLUMNS} FROM chain JOIN responses r ON r.id = chain.id ORDER BY chain.depth DESC",
                (user, id, user, limit),
            )
        return [StoredResponse(*row) for row in rows]

    async def delete(self, user: str, id: str) -> bool:
        async with self._journal.writing() as db:
            cursor = await db.execute("DELETE FROM responses WHERE user = ? AND id = ?", (user, id))
            return cursor.rowcount > 0

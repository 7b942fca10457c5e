"""The vector index: one point per remembered message, behind one small Protocol with two engines.

- `EdgeIndex`: the embedded default, Qdrant's in-process engine (qdrant-edge) under `data_dir/index`.
- `ServerIndex`: a Qdrant server or cluster through qdrant-client (`memory.qdrant_url`).

Points carry user, conversation, role, kind, text and created_at; a `sparse` lexical vector (weighted by the
engine's IDF) and, once the embedding model's size is known, a `dense` cosine vector. Search returns the two
legs separately, as ids and scores: fusing them is the caller's business, the same for both engines, and
only the payloads of the memories chosen are fetched (reading payloads is most of a search's cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from msgspec import Struct

from gateway.config import MemorySettings
from gateway.lexical import SparseVector

DENSE = "dense"
SPARSE = "sparse"


class Entry(Struct, frozen=True, kw_only=True):
    """A message to index."""

    id: int
    user: str
    conversation: str
    role: str
    kind: str
    text: str
    created_at: float
    sparse: SparseVector
    dense: list[float] | None = None
    name: str = ""

    def payload(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "conversation": self.conversation,
            "role": self.role,
            "kind": self.kind,
            "text": self.text,
            "created_at": self.created_at,
            "name": self.name,
        }


class Scored(Struct, frozen=True):
    """A point found by one leg of a search, with that leg's raw score (or, fused, its relevance)."""

    id: int
    score: float


class Stored(Struct, frozen=True, kw_only=True):
    """A point's payload: the remembered message."""

    id: int
    conversation: str
    role: str
    kind: str
    text: str
    created_at: float
    name: str = ""

    @classmethod
    def of(cls, id: Any, payload: dict[str, Any] | None) -> Stored:
        p = payload or {}
        return cls(
            id=int(id),
            conversation=str(p.get("conversation", "")),
            role=str(p.get("role", "")),
            kind=str(p.get("kind", "message")),
            text=str(p.get("text", "")),
            created_at=float(p.get("created_at", 0.0)),
            name=str(p.get("name", "")),
        )


class Index(Protocol):
    """What memory needs of a vector index. Implementations map engine errors to `IndexFailure`."""

    @property
    def engine(self) -> str: ...

    @property
    def dense_size(self) -> int | None: ...

    async def add_dense(self, size: int) -> None:
        """Give an index without dense vectors a `dense` vector of `size` (the embedding model's)."""

    async def upsert(self, entries: Sequence[Entry]) -> None: ...

    async def search(
        self, user: str, *, dense: list[float] | None, sparse: SparseVector, limit: int
    ) -> tuple[list[Scored], list[Scored]]:
        """The user's best points by the dense leg (empty without a vector) and by the sparse leg, ids only."""

    async def fetch(self, user: str, ids: Sequence[int]) -> list[Stored]:
        """The payloads of these points of the user's (missing ones left out), in no particular order."""

    async def delete(self, user: str, ids: Sequence[int]) -> None: ...

    async def delete_user(self, user: str) -> None: ...

    async def count(self, user: str | None = None) -> int: ...

    async def reset(self) -> None:
        """Remove every point and the dense vector (a reindex starts from here)."""

    async def lost(self, users: Iterable[str]) -> list[str]:
        """Of these users, those whose memories the index lost (a damaged part set aside when it opened)."""

    async def forget_damaged(self) -> None:
        """Remove the damaged parts set aside, once what they held is queued to be indexed again."""

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


async def open_index(settings: MemorySettings, *, fresh: bool = False) -> Index:
    """The configured engine; `fresh` empties it first (a reindex)."""
    if settings.qdrant_url:
        from gateway.index.server import ServerIndex

        server = await ServerIndex.open(settings.qdrant_url, settings.qdrant_api_key or None)
        if fresh:
            await server.reset()
        return server
    from gateway.index.edge import EdgeIndex

    return await EdgeIndex.open(Path(settings.data_dir) / "index", fresh=fresh)

"""A Qdrant server or cluster through qdrant-client's async API (tests use its `:memory:` mode).

One collection, `gateway_memories`. A server cannot add a named vector to a collection, so the dense vector
is declared when the collection is made if its size is known by then, and `add_dense` recreates an empty
collection; a collection with points but no dense vector needs `gateway reindex`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from qdrant_client import AsyncQdrantClient, models

from gateway.errors import IndexFailure, IndexMismatch
from gateway.index import DENSE, SPARSE, Entry, Scored, Stored
from gateway.lexical import SparseVector

COLLECTION = "gateway_memories"


@contextmanager
def _client_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except IndexFailure:
        raise
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        if "dimension" in message.lower():
            raise IndexMismatch(f"Qdrant, {doing}: {message}") from exc
        raise IndexFailure(f"Qdrant, {doing}: {message}") from exc


class ServerIndex:
    engine = "qdrant server"

    def __init__(self, client: AsyncQdrantClient, dense_size: int | None, *, local: bool = False) -> None:
        self._client = client
        self._dense_size = dense_size
        self._local = local

    @classmethod
    async def open(cls, url: str, api_key: str | None = None) -> ServerIndex:
        if url == ":memory:":
            client = AsyncQdrantClient(location=":memory:")
        else:
            client = AsyncQdrantClient(url=url, api_key=api_key)
        with _client_errors(f"connecting to {url}"):
            if not await client.collection_exists(COLLECTION):
                await _create(client, None, indexed=url != ":memory:")
            info = await client.get_collection(COLLECTION)
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        return cls(client, dense.size if dense else None, local=url == ":memory:")

    @property
    def dense_size(self) -> int | None:
        return self._dense_size

    async def add_dense(self, size: int) -> None:
        with _client_errors("adding the dense vector"):
            if (await self._client.count(COLLECTION, exact=True)).count:
                raise IndexMismatch("the collection has points without dense vectors: run `gateway reindex`")
            await self._client.delete_collection(COLLECTION)
            await _create(self._client, size, indexed=not self._local)
        self._dense_size = size

    async def upsert(self, entries: Sequence[Entry]) -> None:
        points = [models.PointStruct(id=e.id, vector=_vectors(e), payload=e.payload()) for e in entries]
        with _client_errors("storing points"):
            await self._client.upsert(COLLECTION, points=points)

    async def search(
        self, user: str, *, dense: list[float] | None, sparse: SparseVector, limit: int
    ) -> tuple[list[Scored], list[Scored]]:
        mine = _user_filter(user)
        legs: dict[str, models.QueryRequest] = {}
        if dense is not None and self._dense_size:
            legs[DENSE] = models.QueryRequest(query=dense, using=DENSE, filter=mine, limit=limit)
        if sparse.indices:
            query = models.SparseVector(indices=sparse.indices, values=sparse.values)
            legs[SPARSE] = models.QueryRequest(query=query, using=SPARSE, filter=mine, limit=limit)
        if not legs:
            return [], []
        with _client_errors("searching"):
            results = await self._client.query_batch_points(COLLECTION, requests=list(legs.values()))
        found = {name: [Scored(int(p.id), p.score) for p in r.points] for name, r in zip(legs, results, strict=True)}
        return found.get(DENSE, []), found.get(SPARSE, [])

    async def fetch(self, user: str, ids: Sequence[int]) -> list[Stored]:
        with _client_errors("reading points"):
            records = await self._client.retrieve(COLLECTION, ids=list(ids), with_payload=True)
        return [Stored.of(r.id, r.payload) for r in records]

    async def delete(self, user: str, ids: Sequence[int]) -> None:
        with _client_errors("deleting points"):
            await self._client.delete(COLLECTION, points_selector=models.PointIdsList(points=list(ids)))

    async def delete_user(self, user: str) -> None:
        with _client_errors("forgetting a user"):
            await self._client.delete(COLLECTION, points_selector=models.FilterSelector(filter=_user_filter(user)))

    async def count(self, user: str | None = None) -> int:
        with _client_errors("counting"):
            result = await self._client.count(COLLECTION, count_filter=_user_filter(user) if user else None)
        return result.count

    async def reset(self) -> None:
        with _client_errors("emptying the collection"):
            await self._client.delete_collection(COLLECTION)
            await _create(self._client, None, indexed=not self._local)
        self._dense_size = None

    async def lost(self, users: Iterable[str]) -> list[str]:
        """A server keeps its own data whole: nothing is set aside here."""
        return []

    async def forget_damaged(self) -> None:
        """Nothing is set aside here."""

    async def flush(self) -> None:
        """The server persists on its own."""

    async def close(self) -> None:
        await self._client.close()


async def _create(client: AsyncQdrantClient, dense_size: int | None, *, indexed: bool) -> None:
    dense = {DENSE: models.VectorParams(size=dense_size, distance=models.Distance.COSINE)} if dense_size else {}
    await client.create_collection(
        COLLECTION,
        vectors_config=dense,
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    if indexed:  # qdrant-client's local mode has no payload indexes (and warns)
        # a tenant index: the server keeps each user's points together, as a search reads one user's only
        tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
        await client.create_payload_index(COLLECTION, "user", tenant)


def _vectors(entry: Entry) -> dict[str, models.Vector]:
    vectors: dict[str, models.Vector] = {
        SPARSE: models.SparseVector(indices=entry.sparse.indices, values=entry.sparse.values)
    }
    if entry.dense is not None:
        vectors[DENSE] = entry.dense
    return vectors


def _user_filter(user: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="user", match=models.MatchValue(value=user))])

"""The embedded engine: Qdrant's in-process Rust engine (`qdrant-edge-py`, pinned: its API is beta).

Its calls hold the GIL, so none may be long while serving: searches take well under a millisecond, writes
come in small batches, and `optimize()` is never called here (only `gateway reindex` may). Its WAL stays on,
so an acknowledged write survives a crash; `flush()` runs periodically and at close to keep replay short.
Engine errors are plain `Exception`s; each is re-raised as ours, told apart by its message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import qdrant_edge as qe

from gateway.errors import IndexFailure, IndexMismatch
from gateway.index import DENSE, SPARSE, Entry, Scored, Stored
from gateway.lexical import SparseVector

T = TypeVar("T")
PAYLOADS_KEPT = 50_000  # payloads kept as Python objects: each recall reads many of the last one's again


@contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        message = str(exc)
        if "dimension" in message.lower() or "wrong input" in message.lower():
            raise IndexMismatch(f"embedded index, {doing}: {message}") from exc
        raise IndexFailure(f"embedded index, {doing}: {message}") from exc


class EdgeIndex:
    engine = "embedded (qdrant-edge)"

    def __init__(self, shard: qe.EdgeShard, path: Path) -> None:
        self._shard = shard
        self._path = path
        self._dense_size = stored_dense_size(path)
        self._payloads: dict[int, Stored] = {}  # oldest first; dropped on any write to their point

    @classmethod
    async def open(cls, path: Path, *, fresh: bool = False) -> EdgeIndex:
        """Open the shard in `path`, or create it (sparse only: the dense vector comes with the model's size).

        `fresh` removes what is there first, damaged or not (a reindex rebuilds it all from the journal).
        """
        if fresh:
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        return cls(await asyncio.to_thread(_load_or_create, path), path)

    @property
    def dense_size(self) -> int | None:
        return self._dense_size

    async def add_dense(self, size: int) -> None:
        with _engine_errors("adding the dense vector"):
            self._shard.update(qe.UpdateOperation.create_dense_vector(DENSE, size, qe.Distance.Cosine))
        self._dense_size = size

    async def upsert(self, entries: Sequence[Entry]) -> None:
        for e in entries:  # the engine panics on a malformed sparse vector, and replays the panic from its WAL
            if len(e.sparse.indices) != len(e.sparse.values) or len(set(e.sparse.indices)) != len(e.sparse.indices):
                raise IndexFailure(f"embedded index: malformed sparse vector for message {e.id}")
        points = [qe.Point(e.id, _vectors(e), e.payload()) for e in entries]
        self._forget_payloads(e.id for e in entries)
        with _engine_errors("storing points"):
            self._shard.update(qe.UpdateOperation.upsert_points(points))

    async def search(
        self, user: str, *, dense: list[float] | None, sparse: SparseVector, limit: int
    ) -> tuple[list[Scored], list[Scored]]:
        mine = _user_filter(user)
        legs: dict[str, qe.QueryRequest] = {}
        if dense is not None:
            legs[DENSE] = _request(dense, DENSE, mine, limit)
        if sparse.indices:
            legs[SPARSE] = _request(qe.SparseVector(sparse.indices, sparse.values), SPARSE, mine, limit)
        if not legs:
            return [], []
        with _engine_errors("searching"):
            results = self._shard.query_batch(qe.QueryBatchRequest(list(legs.values())))
        found = {name: [Scored(int(p.id), p.score) for p in leg] for name, leg in zip(legs, results, strict=True)}
        return found.get(DENSE, []), found.get(SPARSE, [])

    async def fetch(self, ids: Sequence[int]) -> list[Stored]:
        kept = self._payloads
        missing: list[int | UUID | str] = [i for i in ids if i not in kept]
        if missing:
            with _engine_errors("reading points"):
                records = self._shard.retrieve(missing, with_payload=True, with_vector=False)
            kept.update((stored.id, stored) for stored in (Stored.of(r.id, r.payload) for r in records))
        found = [kept[i] for i in ids if i in kept]
        for old in list(itertools.islice(kept, max(0, len(kept) - PAYLOADS_KEPT))):
            del kept[old]
        return found

    def _forget_payloads(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._payloads.pop(i, None)

    async def delete(self, ids: Sequence[int]) -> None:
        self._forget_payloads(ids)
        with _engine_errors("deleting points"):
            self._shard.update(qe.UpdateOperation.delete_points(list(ids)))

    async def delete_user(self, user: str) -> None:
        self._payloads.clear()  # they do not say whose they are
        with _engine_errors("forgetting a user"):
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(_user_filter(user)))

    async def count(self, user: str | None = None) -> int:
        with _engine_errors("counting"):
            return self._shard.count(qe.CountRequest(filter=_user_filter(user) if user else None))

    async def reset(self) -> None:
        await self._run(self._shard.close, "closing")
        await asyncio.to_thread(shutil.rmtree, self._path)
        self._shard = await asyncio.to_thread(_load_or_create, self._path)
        self._dense_size = None
        self._payloads.clear()

    async def flush(self) -> None:
        await self._run(self._shard.flush, "flushing")

    async def close(self) -> None:
        await self._run(self._shard.flush, "flushing")
        await self._run(self._shard.close, "closing")

    async def _run(self, call: Callable[[], T], doing: str) -> T:
        with _engine_errors(doing):
            return await asyncio.to_thread(call)


def _load_or_create(path: Path) -> qe.EdgeShard:
    stale = path / "temp_segments"  # left by an optimisation cut short; we own the data dir, so it is stale
    if stale.exists():
        shutil.rmtree(stale)
    with _engine_errors(f"opening {path} (if it is damaged, `gateway reindex` rebuilds it from the journal)"):
        if (path / "edge_config.json").exists():
            return qe.EdgeShard.load(str(path))
        config = qe.EdgeConfig(
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            payload_memory=qe.Memory.Cached,  # recalled texts are read from here: 4x faster than cold
        )
        shard = qe.EdgeShard.create(str(path), config)
        shard.update(qe.UpdateOperation.create_field_index("user", qe.PayloadSchemaType.Keyword))
        return shard


def stored_dense_size(path: Path) -> int | None:
    """The dense vector's size as the shard persisted it (the engine has no getter for its config)."""
    config = json.loads((path / "edge_config.json").read_text())
    dense = config.get("vectors", {}).get(DENSE)
    return int(dense["size"]) if dense else None


def _vectors(entry: Entry) -> dict[str, qe.NamedVector]:
    vectors: dict[str, qe.NamedVector] = {SPARSE: qe.SparseVector(entry.sparse.indices, entry.sparse.values)}
    if entry.dense is not None:
        vectors[DENSE] = entry.dense
    return vectors


def _user_filter(user: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("user", match=qe.MatchValue(user))])


def _request(vector: list[float] | qe.SparseVector, using: str, where: qe.Filter, limit: int) -> qe.QueryRequest:
    return qe.QueryRequest(limit=limit, query=qe.Query.Nearest(vector, using=using), filter=where, with_payload=False)

"""The embedded engine: Qdrant's in-process Rust engine (`qdrant-edge-py`, pinned: its API is beta).

The index is split into `BUCKETS` engine shards, one folder each under `data_dir/index`, made when their
first memory comes; a user's memories all live in the shard a hash of the user id picks. A search then
reads one shard's posting lists, a sixteenth of the collection: at 1M memories across 1,000 users the
search by words went from 2.8 to 1.2 ms (tests/bench/recall_scale.py). An index from before buckets
(one shard in `data_dir/index` itself) is used as it is, as a single bucket; `gateway reindex` splits it.

Its calls hold the GIL, so none may be long while serving: searches take about a millisecond, writes come in
small batches, and `optimize()` is never called (it holds the GIL for seconds). Segments therefore never get
an HNSW graph, and the dense leg asks for the exact search the engine would otherwise reach after planning.
The WAL stays on, so an acknowledged write survives a crash; `flush()` runs periodically and at close to
keep replay short. Engine errors are plain `Exception`s; each is re-raised as ours, told apart by its message.

A crash never leaves the index unable to open. A shard is made whole in `NN.new` and renamed into place (a
kill while the engine writes its first files left a folder it could not load). A shard that cannot be loaded
is set aside as `NN.damaged` (an unreadable layout, or an index from before buckets: the whole index, as
`index.damaged`), and `lost()` names the users whose memories were in it, for memory to index again from the
journal; `forget_damaged()` removes what was set aside once they are queued.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import msgspec
import qdrant_edge as qe

from gateway.errors import IndexFailure, IndexMismatch
from gateway.index import DENSE, SPARSE, Entry, Scored, Stored
from gateway.lexical import SparseVector

log = logging.getLogger(__name__)
T = TypeVar("T")
BUCKETS = 16  # shards of a new index: more make each search cheaper, but each costs ~50 MB (WAL, buffers)
PAYLOADS_KEPT = 50_000  # payloads kept as Python objects: each recall reads many of the last one's again
PAYLOAD_CHARS = 2_000  # ... of memories this short: 50,000 notes of 64,000 characters would be 3 GB
EXACT = qe.SearchParams(exact=True)


class Layout(msgspec.Struct):
    """What `data_dir/index/layout.json` holds: the number of buckets, and the dense size once known."""

    buckets: int
    dense: int | None = None


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

    def __init__(self, root: Path, layout: Layout, shards: dict[int, qe.EdgeShard], *, single: bool) -> None:
        self._root = root
        self._layout = layout
        self._shards = shards
        self._single = single  # the one shard is `root` itself (an index from before buckets)
        self._payloads: dict[int, Stored] = {}  # oldest first; dropped on any write to their point

    @classmethod
    async def open(cls, path: Path, *, fresh: bool = False) -> EdgeIndex:
        """Open the index in `path`, or start one; `fresh` removes what is there first, damaged or not."""
        if fresh:
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        return await asyncio.to_thread(cls._load, path)

    @classmethod
    def _load(cls, root: Path) -> EdgeIndex:
        try:
            if (root / "edge_config.json").exists():
                shard = _load_shard(root)
                return cls(root, Layout(1, _shard_dense_size(root)), {0: shard}, single=True)
            layout = _read_layout(root)
        except IndexFailure as exc:  # the whole index: start a new one beside it
            log.warning("%s; set aside as %s, to be indexed again from the journal", exc.message, _aside(root))
            _set_aside(root)
            layout = None
        if layout is None:
            layout = Layout(BUCKETS)
            _write_layout(root, layout)
        shards = {}
        for bucket in range(layout.buckets):
            path = root / _folder(bucket)
            shutil.rmtree(_made(path), ignore_errors=True)  # a shard whose making a crash cut short
            if not path.exists():
                continue
            try:
                shards[bucket] = _load_shard(path)
            except IndexFailure as exc:
                log.warning("%s; set aside as %s, to be indexed again from the journal", exc.message, _aside(path))
                _set_aside(path)
        return cls(root, layout, shards, single=False)

    async def lost(self, users: Iterable[str]) -> list[str]:
        """Of these users, those whose memories were in what was set aside as damaged (all, for the whole)."""
        if _aside(self._root).exists():
            return list(users)
        damaged = {b for b in range(self._layout.buckets) if _aside(self._root / _folder(b)).exists()}
        return [u for u in users if self._bucket(u) in damaged] if damaged and not self._single else []

    async def forget_damaged(self) -> None:
        """Remove what was set aside: its users' memories are queued to be indexed again."""
        folders = [_aside(self._root), *(_aside(self._root / _folder(b)) for b in range(self._layout.buckets))]
        for folder in folders:
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    @property
    def dense_size(self) -> int | None:
        return self._layout.dense

    async def add_dense(self, size: int) -> None:
        for bucket, shard in self._shards.items():  # shards first: after a crash here, the next try skips them
            if _shard_dense_size(self._path(bucket)) != size:
                with _engine_errors("adding the dense vector"):
                    shard.update(qe.UpdateOperation.create_dense_vector(DENSE, size, qe.Distance.Cosine))
        self._layout.dense = size
        if not self._single:
            _write_layout(self._root, self._layout)

    async def upsert(self, entries: Sequence[Entry]) -> None:
        for e in entries:  # the engine panics on a malformed sparse vector, and replays the panic from its WAL
            if len(e.sparse.indices) != len(e.sparse.values) or len(set(e.sparse.indices)) != len(e.sparse.indices):
                raise IndexFailure(f"embedded index: malformed sparse vector for message {e.id}")
        by_bucket: dict[int, list[qe.Point]] = defaultdict(list)
        for e in entries:
            by_bucket[self._bucket(e.user)].append(qe.Point(e.id, _vectors(e), e.payload()))
        self._forget_payloads(e.id for e in entries)
        for bucket, points in by_bucket.items():
            shard = self._shards.get(bucket) or await self._create(bucket)
            with _engine_errors("storing points"):
                shard.update(qe.UpdateOperation.upsert_points(points))

    async def search(
        self, user: str, *, dense: list[float] | None, sparse: SparseVector, limit: int
    ) -> tuple[list[Scored], list[Scored]]:
        shard = self._shards.get(self._bucket(user))
        mine = _user_filter(user)
        legs: dict[str, qe.QueryRequest] = {}
        if dense is not None:
            legs[DENSE] = _request(dense, DENSE, mine, limit, EXACT)
        if sparse.indices:
            legs[SPARSE] = _request(qe.SparseVector(sparse.indices, sparse.values), SPARSE, mine, limit)
        if not legs or shard is None:
            return [], []
        with _engine_errors("searching"):
            results = shard.query_batch(qe.QueryBatchRequest(list(legs.values())))
        found = {name: [Scored(int(p.id), p.score) for p in leg] for name, leg in zip(legs, results, strict=True)}
        return found.get(DENSE, []), found.get(SPARSE, [])

    async def fetch(self, user: str, ids: Sequence[int]) -> list[Stored]:
        kept = self._payloads
        missing: list[int | UUID | str] = [i for i in ids if i not in kept]
        shard = self._shards.get(self._bucket(user))
        fetched: dict[int, Stored] = {}
        if missing and shard is not None:
            with _engine_errors("reading points"):
                records = shard.retrieve(missing, with_payload=True, with_vector=False)
            fetched = {stored.id: stored for stored in (Stored.of(r.id, r.payload) for r in records)}
            kept.update((id, stored) for id, stored in fetched.items() if len(stored.text) <= PAYLOAD_CHARS)
        found = [stored for i in ids if (stored := kept.get(i) or fetched.get(i))]
        for old in list(itertools.islice(kept, max(0, len(kept) - PAYLOADS_KEPT))):
            del kept[old]
        return found

    def _forget_payloads(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._payloads.pop(i, None)

    async def delete(self, user: str, ids: Sequence[int]) -> None:
        self._forget_payloads(ids)
        if shard := self._shards.get(self._bucket(user)):
            with _engine_errors("deleting points"):
                shard.update(qe.UpdateOperation.delete_points(list(ids)))

    async def delete_user(self, user: str) -> None:
        self._payloads.clear()  # they do not say whose they are
        if shard := self._shards.get(self._bucket(user)):
            with _engine_errors("forgetting a user"):
                shard.update(qe.UpdateOperation.delete_points_by_filter(_user_filter(user)))

    async def count(self, user: str | None = None) -> int:
        if user is not None:
            shard = self._shards.get(self._bucket(user))
            shards = [shard] if shard else []
        else:
            shards = list(self._shards.values())
        with _engine_errors("counting"):
            return sum(s.count(qe.CountRequest(filter=_user_filter(user) if user else None)) for s in shards)

    async def reset(self) -> None:
        await self.close()
        await asyncio.to_thread(shutil.rmtree, self._root)
        fresh = await asyncio.to_thread(self._load, self._root)
        self._layout, self._shards, self._single = fresh._layout, fresh._shards, fresh._single
        self._payloads.clear()

    async def flush(self) -> None:
        for shard in self._shards.values():
            await self._run(shard.flush, "flushing")

    async def close(self) -> None:
        for shard in self._shards.values():
            await self._run(shard.flush, "flushing")
            await self._run(shard.close, "closing")

    def _bucket(self, user: str) -> int:
        return zlib.crc32(user.encode()) % self._layout.buckets

    def _path(self, bucket: int) -> Path:
        return self._root if self._single else self._root / _folder(bucket)

    async def _create(self, bucket: int) -> qe.EdgeShard:
        shard = await self._run(lambda: _make_shard(self._path(bucket), self._layout.dense), "creating a shard")
        self._shards[bucket] = shard
        return shard

    async def _run(self, call: Callable[[], T], doing: str) -> T:
        with _engine_errors(doing):
            return await asyncio.to_thread(call)


def _folder(bucket: int) -> str:
    return f"{bucket:02d}"


def _load_shard(path: Path) -> qe.EdgeShard:
    stale = path / "temp_segments"  # left by an optimisation cut short; we own the data dir, so it is stale
    if stale.exists():
        shutil.rmtree(stale)
    with _engine_errors(f"opening {path} (if it is damaged, `gateway reindex` rebuilds it from the journal)"):
        return qe.EdgeShard.load(str(path))


def _made(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def _aside(path: Path) -> Path:
    return path.with_name(path.name + ".damaged")


def _set_aside(path: Path) -> None:
    shutil.rmtree(_aside(path), ignore_errors=True)
    path.rename(_aside(path))
    _sync_folder(path.parent)


def _sync_folder(path: Path) -> None:
    """Make a rename in this folder durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_shard(path: Path, dense: int | None) -> qe.EdgeShard:
    """A new shard at `path`, made whole beside it and renamed into place, so a crash leaves none half made."""
    making = _made(path)
    shutil.rmtree(making, ignore_errors=True)
    shard = _create_shard(making, dense)
    shard.flush()
    shard.close()
    making.rename(path)
    _sync_folder(path.parent)
    return _load_shard(path)


def _create_shard(path: Path, dense: int | None) -> qe.EdgeShard:
    config = qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(dense, qe.Distance.Cosine)} if dense else None,
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        payload_memory=qe.Memory.Cached,  # recalled texts are read from here: 4x faster than cold
        max_search_threads=1,  # a search reads one segment: a pool per shard would only add idle threads
    )
    shard = qe.EdgeShard.create(str(path), config)
    shard.update(qe.UpdateOperation.create_field_index("user", qe.PayloadSchemaType.Keyword))
    return shard


def _read_layout(root: Path) -> Layout | None:
    try:
        return msgspec.json.decode((root / "layout.json").read_bytes(), type=Layout)
    except FileNotFoundError:
        return None
    except msgspec.DecodeError as exc:
        raise IndexFailure(
            f"embedded index, reading {root / 'layout.json'}: {exc} (`gateway reindex` rebuilds it)"
        ) from exc


def _write_layout(root: Path, layout: Layout) -> None:
    root.mkdir(parents=True, exist_ok=True)
    written = root / "layout.json.new"
    written.write_bytes(msgspec.json.encode(layout))
    written.replace(root / "layout.json")


def _shard_dense_size(path: Path) -> int | None:
    config = json.loads((path / "edge_config.json").read_text())
    dense = config.get("vectors", {}).get(DENSE)
    return int(dense["size"]) if dense else None


def stored_dense_size(root: Path) -> int | None:
    """The dense vector's size as the index persisted it, read from its files (a running gateway holds them)."""
    if (root / "edge_config.json").exists():
        return _shard_dense_size(root)
    layout = _read_layout(root) if root.exists() else None
    return layout.dense if layout else None


def _vectors(entry: Entry) -> dict[str, qe.NamedVector]:
    vectors: dict[str, qe.NamedVector] = {SPARSE: qe.SparseVector(entry.sparse.indices, entry.sparse.values)}
    if entry.dense is not None:
        vectors[DENSE] = entry.dense
    return vectors


def _user_filter(user: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("user", match=qe.MatchValue(user))])


def _request(
    vector: list[float] | qe.SparseVector,
    using: str,
    where: qe.Filter,
    limit: int,
    params: qe.SearchParams | None = None,
) -> qe.QueryRequest:
    return qe.QueryRequest(
        limit=limit, query=qe.Query.Nearest(vector, using=using), filter=where, with_payload=False, params=params
    )

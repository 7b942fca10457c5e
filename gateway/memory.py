"""Long-term memory over the journal and the vector index: remember, index, recall.

A turn is remembered in the journal (the source of truth) and queued in its outbox; a background task
embeds queued messages and writes them to the index, at start-up and whenever new turns arrive. Recall
searches the user's memories by meaning and by words and fuses the two. Without embeddings (no model
configured, the model missing, Ollama failing, or an index built with another model) everything still works
on words alone, and `degraded` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from pathlib import Path

from msgspec import Struct

from gateway import lexical, worker
from gateway.config import Settings
from gateway.errors import GatewayError, IndexMismatch
from gateway.index import Entry, Index, Stored, open_index
from gateway.journal import Journal
from gateway.ollama import Ollama
from gateway.prompt import Recalled
from gateway.recall import fuse
from gateway.records import CoreBlock, StoredMessage, Turn

log = logging.getLogger(__name__)

QUERY_CHARS = 8_000  # recall reads this much of a query: embedding models read far less, and words past it cost
BATCH = 32  # messages per embedding call and index write: short, so no engine call holds the loop for long
FLUSH_EVERY = 5.0  # seconds between index flushes while there are writes
RETRY_EMBEDDING = 30.0  # seconds before trying a failed embedding model again
RECALL_EMBEDDING = 5.0  # seconds a chat waits for its query's embedding before recalling by words alone
MODEL_KEY = "index.embedding_model"


class Recollection(Struct):
    memories: list[Recalled]
    degraded: str | None = None  # why recall ran on words alone, or failed


def recalled(stored: Stored, relevance: float) -> Recalled:
    return Recalled(
        id=stored.id,
        role=stored.role,
        text=stored.text,
        created_at=stored.created_at,
        score=relevance,
        conversation=stored.conversation,
        name=stored.name,
        kind=stored.kind,
    )


class MemoryStatus(Struct):
    engine: str
    embedding_model: str | None
    embedding_size: int | None
    retrieval: str  # "hybrid" (meaning and words) or "lexical" (words alone)
    degraded: str | None
    rebuilding: str | None  # memories being indexed again after a damaged index was set aside
    indexed: int
    journal: dict[str, int]
    kinds: dict[str, int]  # recall (conversation messages), archival (notes), core (blocks)
    journal_bytes: int


class Embedder:
    """Dense vectors from Ollama's `/api/embed`; `None` while the model is missing or failing."""

    def __init__(self, ollama: Ollama, model: str, keep_alive: str) -> None:
        self.ollama = ollama
        self.model = model
        self._keep_alive = keep_alive
        self.size: int | None = None
        self.problem: str | None = None if model else "no embedding model configured ([embedding] model)"
        self._retry_at = 0.0

    @property
    def ready(self) -> bool:
        return bool(self.model) and self.size is not None and self.problem is None

    async def probe(self) -> int | None:
        """The model's vector size, read from a real embedding (never assumed)."""
        vectors = await self.embed(["size probe"], probing=True)
        return len(vectors[0]) if vectors else None

    async def embed(self, texts: list[str], *, probing: bool = False) -> list[list[float]] | None:
        if not self.model or (self.problem and time.monotonic() < self._retry_at):
            return None
        if not probing and self.size is None:
            return None
        try:
            answer = await self.ollama.embed({"model": self.model, "input": texts, "keep_alive": self._keep_alive})
        except GatewayError as exc:
            self._fail(exc.message)
            return None
        vectors = answer.embeddings
        if len(vectors) != len(texts) or not vectors[0]:
            self._fail(f"Ollama returned {len(vectors)} embeddings for {len(texts)} texts")
            return None
        if self.size is not None and len(vectors[0]) != self.size:
            self._fail(f"{self.model} now gives {len(vectors[0])} dimensions, the index has {self.size}")
            return None
        if self.problem:
            log.info("embedding model %s works again; recall uses meaning and words", self.model)
            self.problem = None
        return vectors

    def _fail(self, why: str) -> None:
        if self.problem is None:
            log.warning("embedding with %s failed (%s): recall falls back to words alone", self.model, why)
        self.problem = why
        self._retry_at = time.monotonic() + RETRY_EMBEDDING


class Memory:
    def __init__(self, journal: Journal, index: Index, embedder: Embedder, settings: Settings) -> None:
        self.journal = journal
        self.index = index
        self.embedder = embedder
        self._retrieval = settings.retrieval
        self._mismatch: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self._flushed = time.monotonic()
        self.rebuilding: str | None = None  # what `recover` queued, until the outbox has drained

    @classmethod
    async def open(cls, settings: Settings, ollama: Ollama, *, fresh_index: bool = False) -> Memory:
        journal = await Journal.open(Path(settings.memory.data_dir) / "journal.db")
        try:
            index = await open_index(settings.memory, fresh=fresh_index)
        except BaseException:
            await journal.close()
            raise
        return cls(journal, index, Embedder(ollama, settings.embedding.model, settings.upstream.keep_alive), settings)

    async def start(self) -> None:
        """Queue again what a damaged index lost, match the index to the embedding model, then index the outbox
        in the background from now on."""
        await self.recover()
        await self.reconcile()
        self._task = asyncio.create_task(self._index_forever(), name="memory-indexer")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.index.close()
        finally:
            await self.journal.close()

    async def recover(self) -> None:
        """The journal is the source of truth: the memories of users whose part of the index was damaged (and
        set aside when it opened) are queued to be indexed again, in the background; recall works on the rest
        meanwhile, and /status says so."""
        lost = await self.index.lost(await self.journal.users())
        if lost:
            queued = await self.journal.requeue_users(lost)
            self.rebuilding = (
                f"indexing again {queued} memories of {len(lost)} users from the journal: their part of the index"
                " was damaged (a crash) and was set aside"
            )
            log.warning("%s", self.rebuilding)
        await self.index.forget_damaged()

    async def reconcile(self) -> None:
        """Give the index a dense vector of the model's size, or say why it cannot have one."""
        if not self.embedder.model or self._mismatch:
            return
        known = self.embedder.size
        size = known if known is not None and self.embedder.problem is None else await self.embedder.probe()
        if size is None:
            return
        self.embedder.size = size
        built_with = await self.journal.get(MODEL_KEY)
        stored = self.index.dense_size
        if stored is None or not await self.index.count():
            if stored is not None and stored != size:
                await self.index.reset()
            try:
                if self.index.dense_size is None:
                    await self.index.add_dense(size)
            except IndexMismatch as exc:
                self._mismatch = exc.message
                return
            await self.journal.put(MODEL_KEY, self.embedder.model)
        elif stored != size or (built_with and built_with != self.embedder.model):
            self._mismatch = (
                f"the index was built with {built_with or 'another model'} ({stored} dimensions) but"
                f" [embedding] model is {self.embedder.model} ({size}): run `gateway reindex`"
            )
            log.warning("recall uses words alone: %s", self._mismatch)
        elif not built_with:
            await self.journal.put(MODEL_KEY, self.embedder.model)

    @property
    def dense_ready(self) -> bool:
        return self.embedder.ready and self._mismatch is None and self.index.dense_size == self.embedder.size

    @property
    def degraded(self) -> str | None:
        if self.dense_ready:
            return None
        return self._mismatch or self.embedder.problem or "the embedding model has not answered yet"

    async def remember(self, turn: Turn) -> list[int]:
        ids = await self.journal.record(turn)
        self._wake.set()
        return ids

    async def recall(
        self, user: str, text: str, *, extra: int = 0, limit: int | None = None, leave: Collection[int] = ()
    ) -> Recollection:
        """The user's memories most relevant to `text`, best first; `extra` more to make up for duplicates;
        never those in `leave` (a turn the user has just left, still in the index until the indexer runs)."""
        limit = (limit or self._retrieval.top_k) + extra + len(leave)
        text = text[:QUERY_CHARS]
        settings, dense, degraded = self._retrieval, None, self.degraded
        if self.dense_ready and settings.dense_weight > 0:
            try:
                vectors = await asyncio.wait_for(self.embedder.embed([text]), RECALL_EMBEDDING)
            except TimeoutError:
                vectors, degraded = None, f"the embedding model took over {RECALL_EMBEDDING:g} s"
            dense = vectors[0] if vectors else None
        words = lexical.query(text) if settings.lexical_weight > 0 else lexical.SparseVector([], [])
        semantic, by_words = await self.index.search(user, dense=dense, sparse=words, limit=limit)
        ranked = fuse(
            semantic if dense is not None else None,
            by_words if words.indices else None,
            threshold=settings.relevance_threshold,
            recency_weight=settings.recency_weight,
            limit=limit,
            dense_weight=settings.dense_weight,
            lexical_weight=settings.lexical_weight,
        )
        stored = {s.id: s for s in await self.index.fetch(user, [r.id for r in ranked])} if ranked else {}
        memories = [recalled(stored[r.id], r.score) for r in ranked if r.id in stored and r.id not in leave]
        # words alone, as configured, is not degraded
        by_choice = dense is not None or not self.embedder.model or settings.dense_weight == 0
        return Recollection(memories, None if by_choice else degraded or self.degraded)

    async def note(self, user: str, text: str, *, kind: str = "note", when: float = 0.0) -> int:
        """Remember a note outside any conversation; returns its id."""
        id = await self.journal.add_note(user, text, kind=kind, when=when)
        self._wake.set()
        return id

    async def import_memory(
        self,
        user: str,
        conversations: list[tuple[str, list[tuple[str, str, float, str]]]],
        core: list[CoreBlock],
        notes: list[tuple[str, float]],
    ) -> tuple[int, int]:
        """Remember an import whole or not at all, leaving out what is already remembered; (messages, notes)
        added."""
        added = await self.journal.import_memory(user, conversations, core, notes)
        self._wake.set()
        return added

    async def forget_message(self, id: int) -> StoredMessage | None:
        """Delete one memory from the journal and the index; the memory as it was, or None if unknown."""
        stored = await self.journal.message(id)
        if stored is not None:
            await self.journal.delete_message(id)
            await self.index.delete(stored.user, [id])
        return stored

    async def forget_conversation(self, user: str, conversation: str) -> int:
        """Delete one conversation of a user, journal and index; returns how many messages went."""
        ids = await self.journal.forget_conversation(user, conversation)
        if ids:
            await self.index.delete(user, ids)
        return len(ids)

    async def forget_user(self, user: str) -> int:
        """Delete everything of a user, journal and index; returns how many messages went."""
        count = await self.journal.forget(user)
        await self.index.delete_user(user)
        return count

    async def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Index everything in the outbox; returns how many messages were written."""
        done = 0
        while batch := await self.journal.pending(BATCH, lexical_only=self.dense_ready):
            await self._index(batch)
            done += len(batch)
            if progress:
                progress(len(batch))
        return done

    async def _index(self, batch: list[StoredMessage]) -> None:
        """Write a batch of the outbox to the index: its messages, and the removal of those the user left."""
        left = [m for m in batch if m.replaced]
        for user in {m.user for m in left}:
            await self.index.delete(user, [m.id for m in left if m.user == user])
        if left:
            await self.journal.indexed([m.id for m in left], left=True)
            batch = [m for m in batch if not m.replaced]
            if not batch:
                return
        said = [f"{m.name}: {m.text}" if m.name else m.text for m in batch]  # who said it is searchable too
        vectors = await self.embedder.embed(said) if self.dense_ready else None
        sparse = await worker.run(sum(map(len, said)), lambda: [lexical.document(text) for text in said])
        entries = [
            Entry(
                id=m.id,
                user=m.user,
                conversation=m.conversation,
                role=m.role,
                kind=m.kind,
                text=m.text,
                created_at=m.created_at,
                sparse=sparse[n],
                dense=vectors[n] if vectors else None,
                name=m.name,
            )
            for n, m in enumerate(batch)
        ]
        await self.index.upsert(entries)
        await self.journal.indexed([m.id for m in batch], lexical_only=vectors is None)
        self._dirty = True

    async def _index_forever(self) -> None:
        while True:
            try:
                if not self.dense_ready and self.embedder.model:
                    await self.reconcile()
                await self.drain()
                if self.rebuilding:
                    log.info("the index has every memory again")
                    self.rebuilding = None
                if self._dirty and time.monotonic() - self._flushed >= FLUSH_EVERY:
                    await self.index.flush()
                    self._dirty, self._flushed = False, time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # the journal keeps the messages; try again on the next wake-up
                log.exception("indexing memories failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=FLUSH_EVERY)
            self._wake.clear()

    async def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the index from the journal with the configured embedding model; returns messages indexed."""
        await self.index.reset()
        self._mismatch = None
        self.embedder.size = None
        await self.reconcile()
        await self.journal.requeue()
        done = await self.drain(progress)
        await self.index.flush()
        return done

    async def status(self) -> MemoryStatus:
        return MemoryStatus(
            engine=self.index.engine,
            embedding_model=self.embedder.model or None,
            embedding_size=self.embedder.size,
            retrieval="hybrid" if self.dense_ready else "lexical",
            degraded=self.degraded if self.embedder.model else None,
            rebuilding=self.rebuilding,
            indexed=await self.index.count(),
            journal=await self.journal.counts(),
            kinds={"recall": 0, "archival": 0, "core": 0, **await self.journal.kinds()},
            journal_bytes=await asyncio.to_thread(self.journal.size),
        )

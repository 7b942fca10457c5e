"""Both index engines, real: qdrant-edge in a temporary directory and qdrant-client's `:memory:` mode."""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import qdrant_edge as qe
import respx
from qdrant_client import AsyncQdrantClient

from gateway import lexical
from gateway.errors import IndexFailure, IndexMismatch
from gateway.index import Entry, Index, edge
from gateway.index import server as server_index
from gateway.index.edge import EdgeIndex
from gateway.index.server import ServerIndex


def entry(id: int, text: str, *, user: str = "ann", dense: list[float] | None = None, when: float = 0.0) -> Entry:
    return Entry(
        id=id,
        user=user,
        conversation="c1",
        role="user",
        kind="message",
        text=text,
        created_at=when or float(id),
        sparse=lexical.document(text),
        dense=dense,
    )


@pytest.fixture(params=["embedded", "server"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Index]:
    opened: Index = await (
        EdgeIndex.open(tmp_path / "index") if request.param == "embedded" else ServerIndex.open(":memory:")
    )
    try:
        yield opened
    finally:
        await opened.close()


async def test_words_find_the_users_own_messages_only(index: Index) -> None:
    await index.upsert(
        [
            entry(1, "my sister Maud lives in Lisbon"),
            entry(2, "I walked the dog this morning"),
            entry(3, "Maud is my neighbour", user="bob"),
        ]
    )
    dense, words = await index.search("ann", dense=None, sparse=lexical.query("where does Maud live?"), limit=10)
    assert dense == []
    assert [h.id for h in words] == [1]
    [found] = await index.fetch("ann", [h.id for h in words] + [404])  # an unknown id is left out
    assert (found.id, found.text, found.role, found.conversation, found.created_at, found.name) == (
        1,
        "my sister Maud lives in Lisbon",
        "user",
        "c1",
        1.0,
        "",
    )
    assert await index.search("carol", dense=None, sparse=lexical.query("Maud"), limit=10) == ([], [])


async def test_dense_vectors_come_when_the_size_is_known(index: Index) -> None:
    assert index.dense_size is None
    await index.add_dense(3)
    assert index.dense_size == 3
    await index.upsert([entry(1, "north", dense=[1.0, 0.0, 0.0]), entry(2, "east", dense=[0.0, 1.0, 0.0])])
    await index.upsert([entry(3, "no vector yet")])  # indexed by words while the embedder is down
    dense, words = await index.search("ann", dense=[0.9, 0.1, 0.0], sparse=lexical.query("vector"), limit=10)
    assert [h.id for h in dense] == [1, 2]
    assert dense[0].score == pytest.approx(0.9939, abs=1e-3)  # cosine
    assert [h.id for h in words] == [3]


async def test_a_vector_of_the_wrong_size_is_a_mismatch(index: Index) -> None:
    await index.add_dense(3)
    with pytest.raises(IndexMismatch):
        await index.upsert([entry(1, "too long", dense=[1.0, 0.0, 0.0, 0.0])])


async def test_count_delete_forget_and_reset(index: Index) -> None:
    await index.upsert([entry(i, f"note number {i}") for i in range(1, 6)] + [entry(9, "bob's", user="bob")])
    assert (await index.count(), await index.count("ann"), await index.count("bob")) == (6, 5, 1)
    await index.delete("ann", [1, 2])
    assert await index.count("ann") == 3
    await index.delete_user("ann")
    assert (await index.count("ann"), await index.count()) == (0, 1)
    await index.reset()
    assert await index.count() == 0
    await index.add_dense(2)
    await index.reset()
    assert (await index.count(), index.dense_size) == (0, None)


async def test_a_read_payload_never_outlives_a_change_to_its_point(index: Index) -> None:
    await index.upsert([entry(1, "old text"), entry(2, "kept"), entry(3, "bob's", user="bob")])
    assert {s.text for s in await index.fetch("ann", [1, 2])} == {"old text", "kept"}
    assert [s.text for s in await index.fetch("bob", [3])] == ["bob's"]
    await index.upsert([entry(1, "new text")])  # a reindex writes points again
    assert [s.text for s in await index.fetch("ann", [1])] == ["new text"]
    await index.delete("ann", [1])
    assert await index.fetch("ann", [1, 2]) == await index.fetch("ann", [2])
    await index.delete_user("bob")
    assert await index.fetch("bob", [3]) == []
    await index.reset()
    assert await index.fetch("ann", [2]) == []


async def test_the_embedded_index_keeps_points_and_config_across_restarts(tmp_path: Path) -> None:
    first = await EdgeIndex.open(tmp_path / "index")
    await first.add_dense(2)
    await first.upsert([entry(1, "kept across restarts", dense=[0.0, 1.0])])
    await first.close()
    [shard] = [p for p in (tmp_path / "index").iterdir() if p.is_dir()]
    (shard / "temp_segments").mkdir()  # as an optimisation cut short leaves it
    again = await EdgeIndex.open(tmp_path / "index")
    try:
        assert (again.dense_size, await again.count()) == (2, 1)
        assert not (shard / "temp_segments").exists()
        dense, _ = await again.search("ann", dense=[0.0, 1.0], sparse=lexical.query("restarts"), limit=1)
        assert [s.text for s in await again.fetch("ann", [dense[0].id])] == ["kept across restarts"]
    finally:
        await again.close()


async def test_the_embedded_index_puts_each_user_in_one_shard_made_on_first_use(tmp_path: Path) -> None:
    index = await EdgeIndex.open(tmp_path / "index")
    users = [f"user{n}" for n in range(40)]
    try:
        assert edge.stored_dense_size(tmp_path / "index") is None
        await index.add_dense(2)  # before any shard exists: the shards made later get it too
        assert edge.stored_dense_size(tmp_path / "index") == 2  # read from files, as `gateway check` does
        await index.upsert([entry(n, f"{user} likes tea", user=user, dense=[1.0, 0.0]) for n, user in enumerate(users)])
        shards = [p for p in (tmp_path / "index").iterdir() if p.is_dir()]
        assert 1 < len(shards) <= edge.BUCKETS
        for n, user in enumerate(users):
            dense, words = await index.search(user, dense=[1.0, 0.0], sparse=lexical.query("tea"), limit=5)
            assert ([h.id for h in dense], [h.id for h in words]) == ([n], [n])
            assert await index.count(user) == 1
        await index.delete_user(users[0])
        await index.delete(users[1], [1])
        assert (await index.count(), await index.count(users[0]), await index.count(users[1])) == (38, 0, 0)
        await index.reset()
        assert ([p for p in (tmp_path / "index").iterdir() if p.is_dir()], index.dense_size) == ([], None)
    finally:
        await index.close()


async def test_an_index_from_before_buckets_is_used_as_one_bucket(tmp_path: Path) -> None:
    root = tmp_path / "index"
    old = edge._create_shard(root, 2)  # one shard in the index folder itself, as the gateway made it before buckets
    old.update(
        qe.UpdateOperation.upsert_points(
            [qe.Point(1, {"dense": [0.0, 1.0], "sparse": qe.SparseVector([1], [1.0])}, entry(1, "old").payload())]
        )
    )
    old.close()
    index = await EdgeIndex.open(root)
    try:
        assert (index.dense_size, edge.stored_dense_size(root), await index.count()) == (2, 2, 1)
        await index.upsert([entry(n, "tea with Maud", user=f"user{n}", dense=[1.0, 0.0]) for n in range(2, 12)])
        assert await index.count() == 11
        assert not [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
        for n in range(2, 12):
            dense, words = await index.search(f"user{n}", dense=[1.0, 0.0], sparse=lexical.query("Maud"), limit=5)
            assert ([h.id for h in dense], [h.id for h in words]) == ([n], [n])
    finally:
        await index.close()


async def test_a_server_collection_with_points_needs_a_reindex_for_dense_vectors() -> None:
    index = await ServerIndex.open(":memory:")
    try:
        await index.upsert([entry(1, "indexed by words before any model answered")])
        with pytest.raises(IndexMismatch, match="gateway reindex"):
            await index.add_dense(3)
    finally:
        await index.close()


async def test_a_damaged_index_is_set_aside_and_its_users_named_for_indexing_again(tmp_path: Path) -> None:
    """An unreadable layout, or an index from before buckets that cannot be loaded: the whole index."""
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "edge_config.json").write_text("{not json")
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / "layout.json").write_text("{not json")
    for root in (tmp_path / "index", tmp_path / "sharded"):
        index = await EdgeIndex.open(root)
        try:
            assert await index.lost(["ann", "bob"]) == ["ann", "bob"]
            await index.upsert([entry(1, "written after the damage")])
            assert await index.count() == 1
            await index.forget_damaged()
            assert not root.with_name(root.name + ".damaged").exists()
            assert await index.lost(["ann", "bob"]) == []
        finally:
            await index.close()


async def test_a_shard_half_made_by_a_crash_is_set_aside_and_the_rest_opens(tmp_path: Path) -> None:
    """Killed while the engine wrote a new shard's first files: `wal/` and `segments/`, no `edge_config.json`."""
    root = tmp_path / "index"
    index = await EdgeIndex.open(root)
    users = [f"user{n}" for n in range(40)]
    await index.upsert([entry(n, f"{user} likes tea", user=user) for n, user in enumerate(users)])
    await index.close()
    bucket = zlib.crc32(b"user0") % edge.BUCKETS
    half = root / f"{bucket:02d}"
    shutil.rmtree(half)
    (half / "wal").mkdir(parents=True)
    (half / "segments").mkdir()
    (root / "03.new").mkdir()  # a shard being made when the process died
    again = await EdgeIndex.open(root)
    try:
        lost = await again.lost(users)
        assert "user0" in lost
        assert lost == [u for u in users if zlib.crc32(u.encode()) % edge.BUCKETS == bucket]
        assert not (root / "03.new").exists()
        others = [u for u in users if u not in lost]
        _, words = await again.search(others[0], dense=None, sparse=lexical.query("tea"), limit=5)
        assert [h.id for h in words] == [users.index(others[0])]  # the other shards are whole
        await again.upsert([entry(100, "user0 likes tea again", user="user0")])  # its shard is made anew
        await again.forget_damaged()
        assert not (root / f"{bucket:02d}.damaged").exists()
    finally:
        await again.close()


async def test_a_new_shard_is_made_whole_before_it_is_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the engine's first write is cut short, nothing is left at the shard's own path."""

    def cut_short(path: Path, dense: int | None) -> qe.EdgeShard:
        (path / "wal").mkdir(parents=True)
        raise RuntimeError("killed")

    monkeypatch.setattr(edge, "_create_shard", cut_short)
    index = await EdgeIndex.open(tmp_path / "index")
    try:
        with pytest.raises(IndexFailure, match="killed"):
            await index.upsert([entry(1, "first memory of a new user")])
        assert sorted(p.name for p in (tmp_path / "index").iterdir() if p.is_dir())[0].endswith(".new")
        assert not [p for p in (tmp_path / "index").iterdir() if p.is_dir() and p.name.isdigit()]
    finally:
        await index.close()


async def test_a_malformed_sparse_vector_never_reaches_the_embedded_engine(tmp_path: Path) -> None:
    index = await EdgeIndex.open(tmp_path / "index")
    try:
        bad = Entry(
            id=1,
            user="ann",
            conversation="c1",
            role="user",
            kind="message",
            text="x",
            created_at=1.0,
            sparse=lexical.SparseVector([1, 1], [0.5, 0.5]),
        )
        with pytest.raises(IndexFailure, match="malformed sparse vector"):
            await index.upsert([bad])
        await index.upsert([entry(2, "still writable")])
        assert await index.count() == 1
    finally:
        await index.close()


async def test_the_embedded_index_keeps_a_bounded_number_of_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "PAYLOADS_KEPT", 2)
    index = await EdgeIndex.open(tmp_path / "index")
    try:
        await index.upsert([entry(i, f"note {i}") for i in range(1, 5)])
        for ids in ([1, 2, 3], [4], [1, 4]):
            assert sorted(s.text for s in await index.fetch("ann", ids)) == [f"note {i}" for i in ids]
            assert len(index._payloads) <= 2
    finally:
        await index.close()


async def test_a_server_collection_is_made_with_users_as_tenants() -> None:
    with respx.mock(base_url="http://qdrant.test:6333", assert_all_called=True) as server:
        ok = {"result": True, "status": "ok", "time": 0.0}
        made = server.put("/collections/gateway_memories").respond(json=ok)
        indexed = server.put("/collections/gateway_memories/index").respond(
            json={"result": {"operation_id": 1, "status": "completed"}, "status": "ok", "time": 0.0}
        )
        client = AsyncQdrantClient(url="http://qdrant.test:6333", check_compatibility=False)
        try:
            await server_index._create(client, 384, indexed=True)
        finally:
            await client.close()
    assert json.loads(made.calls.last.request.content)["vectors"] == {"dense": {"size": 384, "distance": "Cosine"}}
    assert json.loads(indexed.calls.last.request.content) == {
        "field_name": "user",
        "field_schema": {"type": "keyword", "is_tenant": True},
    }

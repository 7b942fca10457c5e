"""Fusing the dense and sparse legs of a search into one ranking with a relevance from 0 to 1."""

from __future__ import annotations

from gateway.index import Hit
from gateway.recall import fuse


def hit(id: int, score: float = 1.0, created_at: float = 1_700_000_000.0) -> Hit:
    return Hit(
        id=id,
        score=score,
        conversation="c1",
        role="user",
        kind="message",
        text=f"memory {id}",
        created_at=created_at,
    )


def relevance(semantic: list[Hit] | None, lexical: list[Hit] | None) -> dict[int, float]:
    recalled = fuse(semantic, lexical, threshold=0.0, recency_weight=0.0, limit=10)
    return {r.id: r.score for r in recalled}


def test_first_in_both_legs_with_cosine_one_is_fully_relevant() -> None:
    assert relevance([hit(1, 1.0)], [hit(1, 7.3)]) == {1: 1.0}


def test_words_alone_reach_half_when_both_legs_ran() -> None:
    assert relevance([], [hit(1, 7.3)]) == {1: 0.5}


def test_words_alone_reach_one_when_only_the_sparse_leg_ran() -> None:
    assert relevance(None, [hit(1, 7.3)]) == {1: 1.0}


def test_the_dense_share_scales_with_the_cosine() -> None:
    assert relevance([hit(1, 0.6)], []) == {1: 0.3}
    assert relevance([hit(1, 0.6)], [hit(1, 7.3)]) == {1: 0.8}


def test_a_negative_cosine_contributes_nothing() -> None:
    assert relevance([hit(1, -0.4)], []) == {}
    assert relevance([hit(1, -0.4)], [hit(1, 7.3)]) == {1: 0.5}


def test_scores_are_rounded_to_four_places() -> None:
    # second in the sparse leg only: (1/12) / (2/11) = 11/24 = 0.458333...
    assert relevance([], [hit(2), hit(1)]) == {2: 0.5, 1: 0.4583}


def test_the_threshold_drops_weak_memories() -> None:
    recalled = fuse([hit(1, 1.0), hit(2, 0.2)], [hit(1)], threshold=0.3, recency_weight=0.0, limit=10)
    assert [r.id for r in recalled] == [1]


def test_the_limit_keeps_the_best() -> None:
    semantic = [hit(3, 0.9), hit(1, 0.8), hit(2, 0.7)]
    recalled = fuse(semantic, [hit(1)], threshold=0.0, recency_weight=0.0, limit=2)
    assert [r.id for r in recalled] == [1, 3]


def test_recency_breaks_a_tie_toward_the_newer_memory() -> None:
    older, newer = hit(1, 1.0, created_at=1000.0), hit(2, 7.3, created_at=2000.0)
    # equally relevant: first by meaning alone, and first by words alone
    tied = fuse([older], [newer], threshold=0.0, recency_weight=0.1, limit=10)
    assert [(r.id, r.score) for r in tied] == [(2, 0.5), (1, 0.5)]


def test_no_recency_weight_orders_by_relevance_alone() -> None:
    older, newer = hit(1, 1.0, created_at=1000.0), hit(2, 0.9, created_at=2000.0)
    recalled = fuse([older, newer], [], threshold=0.0, recency_weight=0.0, limit=10)
    assert [r.id for r in recalled] == [1, 2]


def test_the_recalled_memory_carries_the_hit() -> None:
    [recalled] = fuse(None, [hit(4, created_at=1234.5)], threshold=0.0, recency_weight=0.0, limit=10)
    assert (recalled.id, recalled.role, recalled.text) == (4, "user", "memory 4")
    assert (recalled.created_at, recalled.conversation) == (1234.5, "c1")


def test_nothing_found_is_nothing_recalled() -> None:
    assert fuse([], [], threshold=0.0, recency_weight=0.1, limit=10) == []
    assert fuse(None, None, threshold=0.0, recency_weight=0.1, limit=10) == []
    assert fuse(None, [], threshold=0.0, recency_weight=0.1, limit=10) == []

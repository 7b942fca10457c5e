"""Fusing the dense and sparse legs of a search into one ranking with a relevance from 0 to 1."""

from __future__ import annotations

from gateway.index import Scored
from gateway.recall import fuse


def hit(id: int, score: float = 1.0) -> Scored:
    return Scored(id, score)


def relevance(semantic: list[Scored] | None, lexical: list[Scored] | None) -> dict[int, float]:
    recalled = fuse(semantic, lexical, threshold=0.0, recency_weight=0.0, limit=10)
    return {r.id: r.score for r in recalled}


def test_first_in_both_legs_is_fully_relevant_whatever_the_raw_scores() -> None:
    assert relevance([hit(1, 0.31)], [hit(1, 7.3)]) == {1: 1.0}


def test_words_alone_reach_a_quarter_when_both_legs_ran() -> None:
    # the dense leg weighs DENSE_WEIGHT = 3 to the sparse leg's 1 (LoCoMo's choice)
    assert relevance([], [hit(1, 7.3)]) == {1: 0.25}
    assert relevance([hit(1, 0.9)], []) == {1: 0.75}


def test_words_alone_reach_one_when_only_the_sparse_leg_ran() -> None:
    assert relevance(None, [hit(1, 7.3)]) == {1: 1.0}


def test_relevance_falls_off_with_rank() -> None:
    # second in the dense leg, first in the sparse leg: (3/12 + 1/11) / (4/11) = 0.9375
    assert relevance([hit(2, 0.9), hit(1, 0.8)], [hit(1, 7.3)]) == {1: 0.9375, 2: 0.75}


def test_the_weights_decide_between_the_legs() -> None:
    semantic, lexical = [hit(1, 0.5), hit(2, 0.4)], [hit(2, 9.0), hit(1, 1.0)]
    assert [r.id for r in fuse(semantic, lexical, threshold=0, recency_weight=0, limit=2)] == [1, 2]
    evenly = fuse(semantic, lexical, threshold=0, recency_weight=0, limit=2, dense_weight=0.5)
    assert [r.id for r in evenly] == [2, 1]


def test_a_leg_weighing_zero_is_left_out() -> None:
    semantic, lexical = [hit(1, 0.5)], [hit(2, 9.0), hit(1, 1.0)]
    assert relevance_by(semantic, lexical, 3.0, 0.0) == {1: 1.0}
    assert relevance_by(semantic, lexical, 0.0, 1.0) == {2: 1.0, 1: 0.9167}


def relevance_by(semantic: list[Scored], lexical: list[Scored], dense: float, words: float) -> dict[int, float]:
    ranked = fuse(semantic, lexical, threshold=0, recency_weight=0, limit=10, dense_weight=dense, lexical_weight=words)
    return {r.id: r.score for r in ranked}


def test_scores_are_rounded_to_four_places() -> None:
    # second in the sparse leg only: (1/12) / (4/11) = 11/48 = 0.229166...
    assert relevance([], [hit(2), hit(1)]) == {2: 0.25, 1: 0.2292}


def test_the_threshold_drops_weak_memories() -> None:
    # 2 is second in the dense leg only: (3/12) / (4/11) = 0.6875
    recalled = fuse([hit(1, 1.0), hit(2, 0.2)], [hit(1)], threshold=0.7, recency_weight=0.0, limit=10)
    assert [r.id for r in recalled] == [1]


def test_the_limit_keeps_the_best() -> None:
    semantic = [hit(3, 0.9), hit(1, 0.8), hit(2, 0.7)]
    recalled = fuse(semantic, [hit(1)], threshold=0.0, recency_weight=0.0, limit=2)
    assert [r.id for r in recalled] == [1, 3]


def test_recency_breaks_a_tie_toward_the_newer_memory() -> None:
    older, newer = hit(1, 1.0), hit(2, 0.9)  # ids grow as messages are stored
    # equally relevant: both first by words alone
    tied = fuse(None, [older, newer], threshold=0.0, recency_weight=0.1, limit=10, k=10**9)
    assert [(r.id, r.score) for r in tied] == [(2, 1.0), (1, 1.0)]


def test_no_recency_weight_orders_by_relevance_alone() -> None:
    older, newer = hit(1, 1.0), hit(2, 0.9)
    recalled = fuse([older, newer], [], threshold=0.0, recency_weight=0.0, limit=10)
    assert [r.id for r in recalled] == [1, 2]


def test_nothing_found_is_nothing_recalled() -> None:
    assert fuse([], [], threshold=0.0, recency_weight=0.1, limit=10) == []
    assert fuse(None, None, threshold=0.0, recency_weight=0.1, limit=10) == []
    assert fuse(None, [], threshold=0.0, recency_weight=0.1, limit=10) == []

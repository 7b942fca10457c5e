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


def test_words_alone_reach_a_third_when_both_legs_ran() -> None:
    # the dense leg weighs DENSE_WEIGHT = 2 to the sparse leg's 1 (LoCoMo's choice); 20 is a weak words hit
    assert relevance([], [hit(10, 7.3), hit(20, 1.0)])[20] == 0.3056  # (1/12) / (3/11)
    assert relevance([hit(10, 0.9)], []) == {10: 0.6667}
    # the best words hit is a strong exact match: it counts as if first by meaning too
    assert relevance([], [hit(10, 7.3), hit(20, 1.0)])[10] == 1.0


def test_words_alone_reach_one_when_only_the_sparse_leg_ran() -> None:
    assert relevance(None, [hit(1, 7.3)]) == {1: 1.0}


def test_relevance_falls_off_with_rank() -> None:
    # 10 first in the words leg (a strong match, so lifted to 1), 20 first by meaning only: (2/11) / (3/11)
    assert relevance([hit(20, 0.9), hit(10, 0.8)], [hit(10, 7.3)]) == {10: 1.0, 20: 0.6667}
    assert relevance([hit(20, 0.9), hit(10, 0.8)], [hit(10, 7.3), hit(30, 7.0)]) == {10: 1.0, 20: 0.6667, 30: 1.0}


def test_the_weights_decide_between_the_legs() -> None:
    semantic, lexical = [hit(10, 0.5), hit(20, 0.4)], [hit(20, 9.0), hit(30, 8.9), hit(10, 1.0)]
    assert [r.id for r in fuse(semantic, lexical, threshold=0, recency_weight=0, limit=2)] == [20, 30]
    weak_words = [hit(20, 9.0), hit(30, 8.9), hit(10, 1.0)]
    assert [r.id for r in fuse(semantic, weak_words, threshold=0, recency_weight=0, limit=3)][2] == 10


def test_a_leg_weighing_zero_is_left_out() -> None:
    semantic, lexical = [hit(10, 0.5)], [hit(20, 9.0), hit(10, 1.0)]
    assert relevance_by(semantic, lexical, 3.0, 0.0) == {10: 1.0}
    assert relevance_by(semantic, lexical, 0.0, 1.0) == {20: 1.0, 10: 0.9167}


def relevance_by(semantic: list[Scored], lexical: list[Scored], dense: float, words: float) -> dict[int, float]:
    ranked = fuse(semantic, lexical, threshold=0, recency_weight=0, limit=10, dense_weight=dense, lexical_weight=words)
    return {r.id: r.score for r in ranked}


def test_scores_are_rounded_to_four_places() -> None:
    # second in the sparse leg only, and weak: (1/12) / (3/11) = 11/36 = 0.30555...
    assert relevance([], [hit(20, 1.0), hit(10, 0.5)])[10] == 0.3056


def test_the_threshold_drops_weak_memories() -> None:
    # 20 is second in the dense leg only: (2/12) / (3/11) = 0.6111
    recalled = fuse([hit(10, 1.0), hit(20, 0.2)], [hit(10)], threshold=0.7, recency_weight=0.0, limit=10)
    assert [r.id for r in recalled] == [10]


def test_the_limit_keeps_the_best() -> None:
    semantic = [hit(30, 0.9), hit(10, 0.8), hit(20, 0.7)]
    recalled = fuse(semantic, [hit(10)], threshold=0.0, recency_weight=0.0, limit=2)
    assert [r.id for r in recalled] == [10, 30]


def test_recency_breaks_a_tie_toward_the_newer_memory() -> None:
    older, newer = hit(10, 1.0), hit(20, 1.0)  # ids grow as messages are stored
    # equally relevant: both first by words alone
    tied = fuse(None, [older, newer], threshold=0.0, recency_weight=0.1, limit=10, k=10**9)
    assert [(r.id, r.score) for r in tied] == [(20, 1.0), (10, 1.0)]


def test_no_recency_weight_orders_by_relevance_alone() -> None:
    older, newer = hit(10, 1.0), hit(20, 0.9)
    recalled = fuse([older, newer], [], threshold=0.0, recency_weight=0.0, limit=10)
    assert [r.id for r in recalled] == [10, 20]


def test_a_neighbouring_turn_of_a_good_match_gains_half_its_score() -> None:
    """The evidence is often the reply to the turn that matched, or the question before it."""
    semantic = [hit(100, 0.9), hit(500, 0.8), hit(102, 0.7), hit(900, 0.6)]
    alone = relevance([hit(300, 0.9), *semantic[1:]], [])
    near = relevance(semantic, [])
    assert near[102] > near[500]
    assert alone[102] < alone[500]
    assert near[900] == alone[900]  # no neighbour found
    assert 101 not in near  # a neighbour no leg found never comes in


def test_one_rare_exact_word_is_not_outvoted_by_weak_meanings() -> None:
    """The rare word's memory is first by words by far, and nowhere in the meaning ranking."""
    semantic = [hit(n * 10, 0.31 - n / 1000) for n in range(1, 30)]  # weak meaning-only hits
    lexical = [hit(777, 12.5), hit(20, 2.1), hit(30, 1.9)]
    assert next(r.id for r in fuse(semantic, lexical, threshold=0, recency_weight=0, limit=3)) == 777


def test_several_strong_words_hits_all_count() -> None:
    lexical = [hit(700, 10.0), hit(800, 9.0), hit(900, 2.0)]
    semantic = [hit(n * 10, 0.5) for n in range(1, 20)]
    ranked = [r.id for r in fuse(semantic, lexical, threshold=0, recency_weight=0, limit=3)]
    assert ranked[:2] == [700, 800]


def test_nothing_found_is_nothing_recalled() -> None:
    assert fuse([], [], threshold=0.0, recency_weight=0.1, limit=10) == []
    assert fuse(None, None, threshold=0.0, recency_weight=0.1, limit=10) == []
    assert fuse(None, [], threshold=0.0, recency_weight=0.1, limit=10) == []

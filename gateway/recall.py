"""Fuse the two legs of a search into one ranking of memories, with a relevance from 0 to 1 (pure).

Each leg ranks the user's memories: the dense leg by meaning (cosine similarity), the sparse leg by shared
words weighted by rarity. Weighted reciprocal rank fusion adds w/(k + rank) per leg. Relevance is that sum
divided by its best possible value over the legs that ran, so a memory ranked first by every leg has
relevance 1 and it falls off with rank; `relevance_threshold` applies to it. Recency then nudges the order:
the newest candidate gains `recency_weight`, the oldest nothing (ids grow as messages are stored, so the
highest id is the newest). The weights (`[retrieval] dense_weight`, `lexical_weight`; 0 leaves a leg out)
and k were chosen on LoCoMo (tests/bench/locomo_recall.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter

from gateway.index import Scored

RRF_K = 10
DENSE_WEIGHT = 3.0
LEXICAL_WEIGHT = 1.0


def fuse(
    semantic: Sequence[Scored] | None,
    lexical: Sequence[Scored] | None,
    *,
    threshold: float,
    recency_weight: float,
    limit: int,
    k: int = RRF_K,
    dense_weight: float = DENSE_WEIGHT,
    lexical_weight: float = LEXICAL_WEIGHT,
) -> list[Scored]:
    """The best `limit` memories with their relevance, best first; a leg is None when it did not run."""
    legs = [(leg, weight) for leg, weight in ((semantic, dense_weight), (lexical, lexical_weight)) if weight > 0]
    ran = [(leg, weight) for leg, weight in legs if leg is not None]
    best = sum(weight for _, weight in ran) / (k + 1)
    relevance: dict[int, float] = {}
    get = relevance.get
    for leg, weight in ran:
        for hit, share in zip(leg, _shares(weight / best, k, len(leg)), strict=True):
            relevance[hit.id] = get(hit.id, 0.0) + share
    kept = sorted(i for i, score in relevance.items() if score >= threshold)  # oldest first
    step, scale = recency_weight / max(1, len(kept) - 1), 1 - recency_weight
    final = [(scale * relevance[i] + step * n, i) for n, i in enumerate(kept)]
    final.sort(key=itemgetter(0), reverse=True)  # stable: of equals, the older first
    return [Scored(i, round(relevance[i], 4)) for _, i in final[:limit]]


@lru_cache(maxsize=64)
def _shares(scale: float, k: int, ranks: int) -> tuple[float, ...]:
    """What each rank of a leg adds to a memory's relevance."""
    return tuple(scale / (k + rank) for rank in range(1, ranks + 1))

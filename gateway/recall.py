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
    for leg, weight in ran:
        shares = [weight / best / (k + rank) for rank in range(1, len(leg) + 1)]
        for hit, share in zip(leg, shares, strict=True):
            relevance[hit.id] = relevance.get(hit.id, 0.0) + share
    kept = sorted(i for i, score in relevance.items() if score >= threshold)  # oldest first
    step = recency_weight / max(1, len(kept) - 1)
    final = {i: (1 - recency_weight) * relevance[i] + step * n for n, i in enumerate(kept)}
    order = sorted(final, key=final.__getitem__, reverse=True)[:limit]
    return [Scored(i, round(relevance[i], 4)) for i in order]

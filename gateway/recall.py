"""Fuse the two legs of a search into one ranking of memories, with a relevance from 0 to 1 (pure).

Each leg ranks the user's memories: the dense leg by meaning (cosine similarity), the sparse leg by shared
words weighted by rarity. Reciprocal rank fusion adds 1/(k + rank) per leg; the dense leg's share is also
scaled by the cosine itself, because that leg ranks every memory, related or not. Relevance is the sum
divided by its best possible value over the legs that ran: a memory first in both legs with cosine 1 has
relevance 1, one found by words alone at most 0.5. `relevance_threshold` applies to it. Recency then nudges
the order: the newest candidate gains `recency_weight`, the oldest nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.index import Hit
from gateway.prompt import Recalled

RRF_K = 10


def fuse(
    semantic: Sequence[Hit] | None,
    lexical: Sequence[Hit] | None,
    *,
    threshold: float,
    recency_weight: float,
    limit: int,
    k: int = RRF_K,
) -> list[Recalled]:
    """The best `limit` memories, best first; a leg is None when it did not run."""
    ran = [leg for leg in (semantic, lexical) if leg is not None]
    fused: dict[int, float] = {}
    hits: dict[int, Hit] = {}
    for leg in ran:
        for rank, hit in enumerate(leg):
            weight = max(0.0, hit.score) if leg is semantic else 1.0
            fused[hit.id] = fused.get(hit.id, 0.0) + weight / (k + rank + 1)
            hits.setdefault(hit.id, hit)
    best = len(ran) / (k + 1)
    relevant = {i: score / best for i, score in fused.items() if score / best >= threshold and score > 0}
    by_age = sorted(relevant, key=lambda i: (hits[i].created_at, i))
    newness = {i: n / max(1, len(by_age) - 1) for n, i in enumerate(by_age)}
    final = {i: (1 - recency_weight) * relevant[i] + recency_weight * newness[i] for i in relevant}
    order = sorted(final, key=final.__getitem__, reverse=True)
    return [_recalled(hits[i], relevant[i]) for i in order[:limit]]


def _recalled(hit: Hit, relevance: float) -> Recalled:
    return Recalled(
        id=hit.id,
        role=hit.role,
        text=hit.text,
        created_at=hit.created_at,
        score=round(relevance, 4),
        conversation=hit.conversation,
    )

"""Fuse the two legs of a search into one ranking of memories, with a relevance from 0 to 1 (pure).

Each leg ranks the user's memories: the dense leg by meaning (cosine similarity), the sparse leg by shared
words weighted by rarity. Four steps, chosen on LoCoMo where the memory budget is small (see the README):

1. Weighted reciprocal rank fusion: w/(k + rank) per leg (`[retrieval] dense_weight`, `lexical_weight`; 0
   leaves a leg out).
2. A strong exact match (a words hit scoring at least STRONG of the best words hit) gains as much again as
   the words leg gives its first: a question whose one rare word is in one memory is not outvoted by weak
   meaning-only hits.
3. Context: each memory gains SPREAD of the best score among the memories at most REACH ids away, its
   neighbouring turns (ids grow as messages are stored), since the evidence is often the reply to the turn
   that matched, or the question before it. Only memories a leg returned are scored: a neighbour that no
   leg found (another user's message) never comes in.
4. Strong exact matches are then lifted by PIN times the best score, so they come first.

Relevance is the score divided by what a memory ranked first by every leg that ran gets from step 1, at most
1: `relevance_threshold` applies to it. Recency then nudges the order: the newest candidate gains
`recency_weight`, the oldest nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter

from gateway.index import Scored

RRF_K = 10
DENSE_WEIGHT = 2.0
LEXICAL_WEIGHT = 1.0
STRONG = 0.8  # of the best words hit's score: a strong exact match
SPREAD = 0.5  # of the best neighbour's score that a memory gains
REACH = 2  # ids either side that count as neighbours
PIN = 1.0  # of the best score that a strong exact match gains at last


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
    fused: dict[int, float] = {}
    get = fused.get
    for leg, weight in ran:
        for hit, share in zip(leg, _shares(weight / best, k, len(leg)), strict=True):
            fused[hit.id] = get(hit.id, 0.0) + share
    strong = _strong(lexical) if lexical and lexical_weight > 0 else {}
    for i, share in strong.items():
        fused[i] += share * lexical_weight / (k + 1) / best
    fused = {  # the neighbours within REACH = 2, spelt out: this runs for every candidate
        i: score + SPREAD * max(get(i - 2, 0.0), get(i - 1, 0.0), get(i + 1, 0.0), get(i + 2, 0.0))
        for i, score in fused.items()
    }
    if strong:
        lift = PIN * max(fused.values())
        for i, share in strong.items():
            fused[i] += share * lift
    kept = sorted(i for i, score in fused.items() if score >= threshold)  # oldest first
    step, scale = recency_weight / max(1, len(kept) - 1), 1 - recency_weight
    final = [(scale * fused[i] + step * n, i) for n, i in enumerate(kept)]
    final.sort(key=itemgetter(0), reverse=True)  # stable: of equals, the older first
    return [Scored(i, round(min(1.0, fused[i]), 4)) for _, i in final[:limit]]


def _strong(lexical: Sequence[Scored]) -> dict[int, float]:
    """The words hits scoring at least STRONG of the best one, with their share of it."""
    top = lexical[0].score
    return {h.id: h.score / top for h in lexical if h.score >= STRONG * top} if top > 0 else {}


@lru_cache(maxsize=64)
def _shares(scale: float, k: int, ranks: int) -> tuple[float, ...]:
    """What each rank of a leg adds to a memory's relevance."""
    return tuple(scale / (k + rank) for rank in range(1, ranks + 1))

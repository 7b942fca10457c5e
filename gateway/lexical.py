"""Sparse lexical vectors: BM25 term weights, the same for every index engine (pure).

A document's vector holds, per term, BM25's saturated term frequency; the engine multiplies in the IDF
(the sparse vector is configured with Qdrant's `idf` modifier), so a query vector is 1 per distinct term.
Terms are lower-cased words less stop words, lightly stemmed (Harman's S-stemmer: plurals only; it merges
few unrelated words, `news` with `new` being one), and hashed to stable 31-bit indices.
"""

from __future__ import annotations

import re
from hashlib import blake2b

from msgspec import Struct

K1 = 1.2
B = 0.75
AVERAGE_LENGTH = 16.0  # terms in a remembered chat message, about (after stop words)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves i'm you're it's that's
    don't didn't i've i'll i'd let's""".split()  # noqa: SIM905
)


class SparseVector(Struct, frozen=True):
    indices: list[int]
    values: list[float]


def terms(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("\u2019", "'"))  # phones type a curly apostrophe
    return [stem(word) for word in words if word not in STOP_WORDS]


def stem(word: str) -> str:
    """Harman's S-stemmer: `ies`→`y`, `es`→`e`, `s`→`` (but not `aes`, `eies`, `oes`, `ss`, `us`, `is`)."""
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith(("ss", "us", "is", "'s")):
        return word[:-2] if word.endswith("'s") else word
    return word[:-1]


def term_index(term: str) -> int:
    return int.from_bytes(blake2b(term.encode(), digest_size=4).digest(), "little") & 0x7FFFFFFF


def document(text: str) -> SparseVector:
    """BM25's term-frequency part for each term of a stored message."""
    counts: dict[int, int] = {}
    found = terms(text)
    for term in found:
        index = term_index(term)
        counts[index] = counts.get(index, 0) + 1
    norm = K1 * (1 - B + B * len(found) / AVERAGE_LENGTH)
    return SparseVector(list(counts), [tf * (K1 + 1) / (tf + norm) for tf in counts.values()])


def query(text: str) -> SparseVector:
    """One per distinct term: the engine's IDF weighs them."""
    indices = sorted({term_index(term) for term in terms(text)})
    return SparseVector(indices, [1.0] * len(indices))

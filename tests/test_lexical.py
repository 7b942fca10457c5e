"""Sparse lexical vectors: terms, BM25 document weights and query vectors."""

from __future__ import annotations

from gateway.lexical import K1, document, query, term_index, terms


def weight(text: str, term: str) -> float:
    """The document weight of one term of `text`."""
    vector = document(text)
    return vector.values[vector.indices.index(term_index(term))]


def test_terms_are_lower_cased_words_without_stop_words() -> None:
    assert terms("The Cat sat ON the Mat") == ["cat", "sat", "mat"]
    assert terms("What did you do before it?") == []


def test_plurals_are_stemmed_to_their_singular() -> None:
    assert terms("ponies caves") == ["pony", "cave"]


def test_words_that_only_look_plural_are_kept() -> None:
    assert terms("glass corpus analysis") == ["glass", "corpus", "analysis"]


def test_possessives_lose_their_s() -> None:
    assert terms("John's") == ["john"]


def test_three_letter_words_are_not_stemmed() -> None:
    assert terms("gas bus yes") == ["gas", "bus", "yes"]


def test_document_has_one_weight_per_distinct_term() -> None:
    vector = document("cat sat mat cat cats")
    # The embedded engine (qdrant-edge) panics, taking the process with it, when indices and values differ in
    # length or an index repeats: it must never be handed such a vector.
    assert len(vector.indices) == len(vector.values) == 3
    assert len(set(vector.indices)) == 3
    assert set(vector.indices) == {term_index("cat"), term_index("sat"), term_index("mat")}


def test_repeated_terms_weigh_more_but_saturate() -> None:
    # the same length each time, so only the repetition changes
    once = weight("cat " + "dog " * 15, "cat")
    twice = weight("cat " * 2 + "dog " * 14, "cat")
    often = weight("cat " * 16, "cat")
    assert once < twice < often < K1 + 1


def test_longer_documents_weigh_each_term_less() -> None:
    assert weight("cat dog bird fish horse cow sheep goat", "cat") < weight("cat dog", "cat")


def test_query_weighs_each_distinct_term_once() -> None:
    vector = query("Cats chase the cat, then the mouse")
    expected = sorted({term_index("cat"), term_index("chase"), term_index("mouse")})
    assert vector.indices == expected
    assert vector.values == [1.0, 1.0, 1.0]


def test_a_query_of_stop_words_is_empty() -> None:
    vector = query("what is it that you were doing?")
    assert vector.indices == []
    assert vector.values == []


def test_term_index_is_stable_and_31_bits() -> None:
    assert term_index("pony") == 76895126  # stored indices depend on it: a change orphans every memory
    assert all(0 <= term_index(f"term{n}") < 2**31 for n in range(1000))

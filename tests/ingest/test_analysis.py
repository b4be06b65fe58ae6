"""The one analyser every stage shares."""

from __future__ import annotations

from ingest import analysis
from ingest.lexical import LexicalIndex


def test_terms_are_stemmed_and_free_of_stop_words() -> None:
    assert analysis.terms(["How long does Baclofen stay in the system?"])[0] == ["long", "baclofen", "stay", "system"]
    assert analysis.terms(["Tablets", "tablet"]) == [["tablet"], ["tablet"]]


def test_stems_keep_every_word_in_order_for_phrase_matching() -> None:
    assert analysis.stems("Forgot to take a tablet") == ("forgot", "to", "take", "a", "tablet")


def test_content_words_drop_stop_words_and_numbers() -> None:
    assert analysis.content_words("What is the maximum dose of ibuprofen, 400 mg?") == ["maximum", "dose", "ibuprofen", "mg"]


def test_bm25_indexes_the_analysers_terms() -> None:
    index = LexicalIndex.build(["Baclofen tablets relax muscles.", "Store the bottle below 25 degrees."])
    assert analysis.stem("tablets") in index.vocabulary and "the" not in index.vocabulary
    scores = index.scores(analysis.terms(["which tablet relaxes muscles"])[0])
    assert scores[0] > 0 and scores[1] == 0

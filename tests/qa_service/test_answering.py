"""The pipeline's answer list: every source heard, no duplicates, filters."""

from __future__ import annotations

import pytest

from qa_service.answering import Answerer


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_when_both_documents_answer_both_are_heard(answerer: Answerer) -> None:
    response = answerer.ask("What is the maximum daily dose?", top_k=3)
    assert response.answered
    docs = [a.citation.doc_id for a in response.answers]
    assert set(docs) == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}
    # each document's best answer comes before any second answer of a document
    assert len(set(docs[:2])) == 2


def test_half_life_questions_get_a_half_life_statement(answerer: Answerer) -> None:
    # Both statements ("2.5-4 h" in the blood, "every two Hours") are in one document;
    # the leaflet says nothing about the half-life, so no second document is expected.
    blood = " ".join(a.text for a in answerer.ask("What is the half-life of baclofen in the blood?", top_k=5).answers)
    assert "2.5-4 h" in blood
    plain = " ".join(a.text for a in answerer.ask("What is the half-life of baclofen?", top_k=5).answers)
    assert "every two Hours" in plain or "roughly 2 hours" in plain or "2.5-4 h" in plain


def test_no_answer_repeats_or_overlaps_another(answerer: Answerer) -> None:
    for question in ("How long does baclofen stay in your system?", "What are the side effects?", "overdose"):
        answers = answerer.ask(question, top_k=10).answers
        texts = [_norm(a.text) for a in answers]
        assert len(texts) == len(set(texts))
        for i, a in enumerate(answers):
            for b in answers[i + 1:]:
                if a.citation.doc_id == b.citation.doc_id:
                    assert a.citation.end <= b.citation.start or b.citation.end <= a.citation.start


def test_doc_ids_restrict_the_answers(answerer: Answerer) -> None:
    response = answerer.ask("What is the maximum daily dose?", top_k=5, doc_ids=["baclofen-how-long-in-system"])
    assert response.answers
    assert {a.citation.doc_id for a in response.answers} == {"baclofen-how-long-in-system"}


def test_a_brand_named_in_the_corpus_brings_in_its_generic_name(answerer: Answerer) -> None:
    # The leaflet says "the analogues of Baclosan tablets are Baclofen, Liorasal".
    expansion = answerer.expander.expand("Is Liorasal safe in pregnancy?")
    assert expansion.names == ("baclofen", "baclosan")
    response = answerer.ask("Is Liorasal safe in pregnancy?")
    assert response.answered  # a name the corpus knows is not an unknown medicine


def test_answers_are_ranked_by_the_rankers_probability_of_their_unit(answerer: Answerer) -> None:
    import numpy as np

    from qa_service.ranking import FEATURES

    reading = answerer.read("How long does baclofen stay in the system?")
    assert len(reading.spans) > 3
    confidences = [s.confidence for s in reading.spans]
    assert confidences == sorted(confidences, reverse=True)
    for item in reading.spans:
        row = np.array([[item.features[f] for f in FEATURES]])
        assert item.confidence == pytest.approx(answerer.ranker(row)[0])
        unit = answerer.bundle.units[item.span.unit]
        assert item.span.start <= unit["start"] < unit["end"] <= item.span.end  # grown from that unit

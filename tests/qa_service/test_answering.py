"""The pipeline's answer list: every source heard, no duplicates, filters."""

from __future__ import annotations

import pytest

from ingest.embedding import Embedder
from qa_service.answering import Answerer
from qa_service.service import build_answerer
from qa_service.settings import ServiceSettings


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_when_both_documents_answer_both_are_heard(answerer: Answerer) -> None:
    response = answerer.ask("What is the maximum daily dose?", top_k=3)
    assert response.answered
    docs = [a.citation.doc_id for a in response.answers]
    assert set(docs) == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}
    # each document's best answer comes before any second answer of a document
    assert len(set(docs[:2])) == 2


def test_each_document_says_what_to_do_about_an_overdose(answerer: Answerer) -> None:
    # The leaflet's instruction ("... washing is performed") finishes the paragraph whose
    # chunk ends at the symptoms; read with its paragraph, it is among the answers.
    answers = answerer.ask("What should be done in case of an overdose?", top_k=5).answers
    said = {doc: " ".join(a.text for a in answers if a.citation.doc_id == doc) for doc in
            ("baclosan-tablets-leaflet", "baclofen-how-long-in-system")}
    assert "symptomatic washing is performed" in said["baclosan-tablets-leaflet"]
    assert "activated charcoal" in said["baclofen-how-long-in-system"]


def test_a_passage_is_read_with_the_rest_of_the_paragraph_its_chunk_cuts(
    answerer: Answerer, seed_settings: ServiceSettings, embedder: Embedder
) -> None:
    question = "What should be done in case of an overdose?"
    document = answerer.bundle.documents["baclosan-tablets-leaflet"]
    start = document.text.index("Specific antidote to the active substance")
    lo, hi = answerer.bundle.unit_range(document.doc_id, start, start + 1)
    row = next(r for r in range(lo - 1, hi + 1) if answerer.bundle.units["start"][r] == start)

    def candidates(reader: Answerer) -> set[int]:
        return set(reader.read(question).candidates.rows.tolist())

    assert row in candidates(answerer)
    chunk_only = seed_settings.model_copy(update={"answer": seed_settings.answer.model_copy(update={"context_units": 0})})
    assert row not in candidates(build_answerer(chunk_only, embedder))  # the chunk boundary hid it


def test_each_source_is_heard_with_up_to_its_best_answers(answerer: Answerer) -> None:
    limit = answerer.settings.answer.source_answers
    floor = answerer.settings.answer.source_confidence
    for question in ("What is the maximum daily dose?", "Can it be taken during pregnancy?", "What are the side effects?"):
        response = answerer.ask(question, top_k=20)
        assert response.answered
        for answer in response.answers:
            assert answer.score >= floor
        strong = answerer.settings.answer.min_confidence
        for doc in {a.citation.doc_id for a in response.answers}:
            weak = [a for a in response.answers if a.citation.doc_id == doc and a.score < strong]
            assert not weak or len([a for a in response.answers if a.citation.doc_id == doc]) <= limit


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

from __future__ import annotations

import pytest

from qa_service.abstention import confidence_label
from qa_service.answering import Answerer
from qa_service.coverage import said
import numpy as np

from qa_service.ranking import FEATURES, AnswerRanker


@pytest.mark.parametrize(
    "question,unknown",
    [
        ("What is the maximum dose of ibuprofen?", ["ibuprofen"]),
        ("Can I take paracetamol with warfarin?", ["paracetamol", "warfarin"]),
        ("What is the usual dose of tizanidine?", ["tizanidine"]),
        ("What is the maximum daily dose of baclofen?", []),
        ("What if I forgot a tablet?", []),
        ("Does it affect your eyesight?", []),
        ("What time does the pharmacy open on Sundays?", []),
    ],
)
def test_medicines_the_corpus_never_mentions_are_detected(answerer: Answerer, question: str, unknown: list[str]) -> None:
    known = answerer.expander.expand(question).known_words
    assert answerer.unknown_subjects.find(question, known) == unknown


def test_unknown_drug_question_is_declined_with_the_reason(answerer: Answerer) -> None:
    response = answerer.ask("How much metformin can a diabetic take?")
    assert not response.answered and response.answers == []
    # and what it may ask about instead: the medicines the index covers
    assert response.reason == f"the documents do not mention metformin; they are about {said(answerer.coverage().subjects)}"
    assert answerer.coverage().subjects and all(name in response.reason for name in answerer.coverage().subjects)


def test_off_topic_question_is_declined(answerer: Answerer) -> None:
    response = answerer.ask("How do I reset my password for the online portal?")
    assert not response.answered
    assert "confidence" in response.reason


def test_confidence_rises_with_evidence_and_falls_with_unknown_words() -> None:
    ranker = AnswerRanker.load()
    base = dict.fromkeys(FEATURES, 0.0)
    base.update({"cosine": 0.5, "coverage": 0.3, "passage_cosine": 0.5, "neighbour": 0.4, "length": 4.5})

    def p(**changes: float) -> float:
        return float(ranker(np.array([[{**base, **changes}[f] for f in FEATURES]]))[0])

    assert 0.0 < p() < 1.0
    assert p(cosine=0.8) > p()
    assert p(coverage=0.9) > p()
    assert p(absent=0.5) < p()


def test_every_answer_clears_the_threshold_and_is_labelled(answerer: Answerer) -> None:
    response = answerer.ask("What are the side effects of baclofen?", top_k=5)
    threshold = answerer.settings.answer.min_confidence
    assert response.answered
    for answer in response.answers:
        assert answer.score >= threshold
        assert answer.confidence == confidence_label(answer.score, threshold)
    assert confidence_label(0.9, 0.2) == "strong match"
    assert confidence_label(0.25, 0.2) == "moderate match"
    assert confidence_label(0.1, 0.2) == "weak match"


def test_a_lay_word_in_the_synonym_file_is_known_in_any_form(answerer: Answerer) -> None:
    # The synonym file's key is "expire"; the question says "expires".
    question = "When does a pack expire? Which date does it expire by, when it expires?"
    known = answerer.expander.expand(question).known_words
    assert "expire" in known
    assert "expires" not in answerer.unknown_subjects.absent_words(question, known)


def test_a_word_once_judged_is_not_encoded_again(seed_settings, embedder) -> None:  # noqa: ANN001
    from qa_service.service import build_answerer

    fresh = build_answerer(seed_settings, embedder)
    encoder = fresh.embedder  # the service's batching encoder, counting what it encodes
    try:
        first = fresh.ask("How much metformin can a diabetic take?")
        encoded = encoder.encoded
        # Another question with the same unknown word: only the question itself is encoded now.
        second = fresh.ask("What is the usual dose of metformin?")
        assert encoder.encoded == encoded + 1
        assert not first.answered and not second.answered
        assert first.reason == second.reason
        assert first.reason.startswith("the documents do not mention metformin; they are about ")
    finally:
        fresh.close()

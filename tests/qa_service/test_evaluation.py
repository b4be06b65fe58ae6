"""The gold set through the real pipeline: quality floors and the verbatim property."""

from __future__ import annotations

import json

import pytest

from qa_service.answering import Answerer
from qa_service.evaluation import QuestionResult, contains_evidence, load_gold, report, run_gold
from tests.conftest import GOLD, REPO

FLOORS = json.loads((REPO / "eval" / "floors.json").read_text())


@pytest.fixture(scope="module")
def gold_results(answerer: Answerer) -> list[QuestionResult]:
    return run_gold(answerer, load_gold(GOLD))


def test_gold_set_shape() -> None:
    gold = load_gold(GOLD)
    assert len({q.id for q in gold}) == len(gold)
    assert sum(q.answerable for q in gold) >= 40
    assert sum(not q.answerable for q in gold) >= 10
    assert {q.split for q in gold} == {"tune", "heldout"}
    texts = {p.stem: p.read_text(encoding="utf-8") for p in (REPO / "corpus").glob("*.txt")}
    for q in gold:
        for evidence in q.evidence:
            assert any(evidence in texts[d] for d in q.docs), (q.id, evidence)


@pytest.mark.parametrize("metric", sorted(FLOORS["min"]))
def test_quality_is_not_below_its_floor(gold_results, metric: str) -> None:
    value = report(gold_results)["all"][metric]
    assert value >= FLOORS["min"][metric], f"{metric} fell to {value:.3f}"


@pytest.mark.parametrize("metric", sorted(FLOORS["max"]))
def test_errors_are_not_above_their_ceiling(gold_results, metric: str) -> None:
    value = report(gold_results)["all"][metric]
    assert value <= FLOORS["max"][metric], f"{metric} rose to {value:.3f}"


def test_every_answer_of_every_gold_question_is_verbatim(answerer: Answerer) -> None:
    checked = 0
    for q in load_gold(GOLD):
        response = answerer.ask(q.question, top_k=5)
        for answer in response.answers:
            text = answerer.bundle.documents[answer.citation.doc_id].text
            assert text[answer.citation.start:answer.citation.end] == answer.text
            assert text[answer.passage.start:answer.passage.end] == answer.passage.text
            assert answer.passage.start <= answer.citation.start < answer.citation.end <= answer.passage.end
            checked += 1
    assert checked > 50


def test_evidence_matching_folds_case_and_spaces() -> None:
    assert contains_evidence("The  maximum\ndaily dose is 100 MG per day.", ["maximum daily dose is 100 mg"])
    assert not contains_evidence("The dose is 5 mg.", ["100 mg"])

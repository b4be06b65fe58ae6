"""The gold set through the real pipeline: quality floors and the verbatim property."""

from __future__ import annotations

import pytest

from qa_service.answering import Answerer
from qa_service.evaluation import Floors, QuestionResult, contains_evidence, load_gold, report, run_gold
from tests.conftest import CORPUS, GOLD, REPO

FLOORS = Floors.load(REPO / "eval" / "floors.json")


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@pytest.fixture(scope="module")
def gold_results(answerer: Answerer) -> list[QuestionResult]:
    return run_gold(answerer, load_gold(GOLD))


def test_gold_set_shape() -> None:
    gold = load_gold(GOLD)
    assert len({q.id for q in gold}) == len(gold)
    assert sum(q.answerable for q in gold) >= 40
    assert sum(not q.answerable for q in gold) >= 10
    assert {q.split for q in gold} == {"tune", "heldout"}
    texts = {p.stem: _fold(p.read_text(encoding="utf-8")) for p in CORPUS.glob("*.txt")}
    for q in gold:
        assert q.answerable == bool(q.evidence), q.id
        for evidence in q.evidence:
            # Evidence picks out the answering sentence: it occurs once in the whole
            # corpus, in one of the question's documents, and is no lone common word.
            assert len(evidence) >= 8, (q.id, evidence)
            assert sum(text.count(_fold(evidence)) for text in texts.values()) == 1, (q.id, evidence)
            assert any(_fold(evidence) in texts[d] for d in q.docs), (q.id, evidence)


@pytest.mark.parametrize("split", sorted(FLOORS.floors))
def test_quality_holds_its_floors(gold_results: list[QuestionResult], split: str) -> None:
    table = report(gold_results)
    breaches = [line for line in FLOORS.breaches(table) if line.startswith(f"{split} ")]
    changed = "\n".join(FLOORS.changes([r for r in gold_results if split == "all" or r.question.split == split]))
    assert not breaches, "\n".join(breaches) + "\nquestions that changed since the floors were set:\n" + changed


def test_the_floors_sit_the_stated_margin_under_the_baseline_run() -> None:
    # Each floor is margin_questions questions under the run that set it.
    gold = {q.id: q for q in load_gold(GOLD)}
    heldout = [o for o in FLOORS.baseline if gold[o.id].split == "heldout" and gold[o.id].answerable]
    hit1 = sum(o.answer_rank == 1 for o in heldout) / len(heldout)
    assert FLOORS.floors["heldout"]["answer_hit@1"] == pytest.approx(hit1 - FLOORS.margin_questions / len(heldout), abs=1e-3)


def test_every_answer_of_every_gold_question_is_verbatim_from_the_file(gold_results: list[QuestionResult]) -> None:
    # The canonical text of a .txt document is the file's content: check against the file itself.
    files = {p.stem: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")}
    checked = 0
    for result in gold_results:
        for answer in result.answers:
            citation, passage = answer["citation"], answer["passage"]
            text = files[citation["doc_id"]]
            assert text[citation["start"]:citation["end"]] == answer["text"]
            assert text[passage["start"]:passage["end"]] == passage["text"]
            assert passage["start"] <= citation["start"] < citation["end"] <= passage["end"]
            checked += 1
    assert checked > 50


def test_evidence_matching_folds_case_and_spaces() -> None:
    assert contains_evidence("The  maximum\ndaily dose is 100 MG per day.", ["maximum daily dose is 100 mg"])
    assert not contains_evidence("The dose is 5 mg.", ["100 mg"])

"""Answer units and how the best one grows into a span."""

from __future__ import annotations

import numpy as np

from ingest.documents import Document
from ingest.sections import split_sections
from ingest.units import split_units
from qa_service.answering import Answerer
from qa_service.extraction import SpanGrower, TermWeights, term_coverage

TEXT = (
    "Overdose\n\n"
    "Symptoms of overdose:\n\n"
    "  • Drowsiness\n"
    "  • loss of consciousness\n"
    "  • coma.\n\n"
    "Treatment is symptomatic. Empty the stomach and give activated charcoal. "
    "Baclosan tablets 10 mg, 50 pcs. - from 249 rubles.\n"
)
LEAD_IN_TEXT = (
    "Overdose\n\n"
    "Some patients take more than they should. The signs of an overdose are:\n"
    "  • drowsiness\n"
    "  • loss of consciousness\n"
    "  • coma\n\n"
    "Treatment is symptomatic and supportive. Empty the stomach and give activated charcoal. "
    "There is no specific antidote to baclofen. Call a doctor or a poison centre at once.\n"
)


def _doc(text: str = TEXT) -> Document:
    return Document("d", "d.txt", "Leaflet", "test", "txt", "h", text, split_sections(text))


def _texts(doc: Document, units, first: int, last: int) -> str:
    return doc.text[units[first].start:units[last].end]


def test_units_are_sentences_and_list_items_with_exact_offsets() -> None:
    doc = _doc()
    units = split_units(doc)
    texts = [TEXT[u.start:u.end] for u in units]
    assert texts[:2] == ["Overdose", "Symptoms of overdose:"] and units[0].heading and units[1].heading
    assert texts[2:5] == ["Drowsiness", "loss of consciousness", "coma."]
    assert all(u.list_item for u in units[2:5])
    assert "Treatment is symptomatic." in texts
    # a fragment after an abbreviation-like stop stays with its sentence
    assert any(t.endswith("50 pcs. - from 249 rubles.") for t in texts)


def test_a_lead_in_takes_the_list_it_introduces() -> None:
    doc = _doc(LEAD_IN_TEXT)
    units = split_units(doc)
    lead = next(i for i, u in enumerate(units) if u.lead_in)
    scores = np.zeros(len(units))
    first, last = SpanGrower().grow(units, scores, lead)
    assert _texts(doc, units, first, last) == (
        "The signs of an overdose are:\n  • drowsiness\n  • loss of consciousness\n  • coma"
    )


def test_a_list_item_takes_its_list_and_never_a_heading() -> None:
    doc = _doc()
    units = split_units(doc)
    item = next(i for i, u in enumerate(units) if doc.text[u.start:u.end] == "loss of consciousness")
    first, last = SpanGrower().grow(units, np.zeros(len(units)), item)
    assert _texts(doc, units, first, last) == "Drowsiness\n  • loss of consciousness\n  • coma."
    assert not any(units[i].heading for i in range(first, last + 1))


def test_neighbours_join_when_they_score_nearly_as_well_up_to_the_limits() -> None:
    doc = _doc(LEAD_IN_TEXT)
    units = split_units(doc)
    best = next(i for i, u in enumerate(units) if doc.text[u.start:u.end].startswith("Empty the stomach"))
    scores = np.zeros(len(units))
    scores[best], scores[best + 1], scores[best - 1] = 0.8, 0.75, 0.1
    first, last = SpanGrower(grow_ratio=0.9).grow(units, scores, best)
    assert _texts(doc, units, first, last) == (
        "Empty the stomach and give activated charcoal. There is no specific antidote to baclofen."
    )
    alone = SpanGrower(grow_ratio=0.99).grow(units, scores, best)
    assert alone == (best, best)
    tight = SpanGrower(max_chars=80, grow_ratio=0.9).grow(units, scores, best)
    assert tight == (best, best)  # the two sentences together are longer than 80 characters


def test_idf_weighted_coverage_counts_rare_terms_more() -> None:
    weights = TermWeights({"baclofen": 90, "lithium": 1}, num_docs=100)
    terms = {"baclofen", "lithium"}
    assert term_coverage(terms, "Lithium salts") == 0.5
    assert term_coverage(terms, "Baclofen tablets", weights) < 0.2
    assert term_coverage(terms, "Lithium salts", weights) > 0.8
    assert weights.known({"baclofen", "zebra"}) == {"baclofen"}


def test_units_from_the_whole_corpus_are_candidates_beside_the_passages_read(answerer: Answerer) -> None:
    # A sentence is reachable even when the chunk it lies in is not among the passages read.
    reading = answerer.read("What is the half-life of baclofen in the blood?")
    features = reading.candidates.features
    from qa_service.ranking import FEATURES

    unit_first = features[:, FEATURES.index("unit_first")]
    passage_first = features[:, FEATURES.index("passage_first")]
    assert (unit_first > 0).sum() == answerer.settings.answer.unit_candidates
    assert ((unit_first > 0) & (passage_first == 0)).any()
    bundle = answerer.bundle
    texts = []
    for row in reading.candidates.rows.tolist():
        unit = bundle.units[row]
        texts.append(bundle.documents[bundle.doc_ids[unit["doc"]]].text[unit["start"]:unit["end"]])
    assert any("2.5-4 h" in t for t in texts)  # the leaflet's "T1/2 in the blood is 2.5-4 h"

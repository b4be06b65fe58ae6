from __future__ import annotations

import numpy as np

from ingest.documents import Document
from ingest.sections import split_sections
from qa_service.answering import Answerer
from ingest.units import split_units
from qa_service.extraction import PassageUnits, SpanExtractor, TermWeights, term_coverage

TEXT = (
    "Overdose\n\n"
    "Symptoms of overdose:\n\n"
    "  • Drowsiness\n"
    "  • loss of consciousness\n"
    "  • coma.\n\n"
    "Treatment is symptomatic. Empty the stomach and give activated charcoal. "
    "Baclosan tablets 10 mg, 50 pcs. - from 249 rubles.\n"
)


def _doc(text: str = TEXT) -> Document:
    return Document("d", "d.txt", "Leaflet", "test", "txt", "h", text, split_sections(text))


def _passage(doc: Document, start: int, end: int, embedder, extractor: SpanExtractor | None = None) -> PassageUnits:
    reach = (extractor or SpanExtractor()).reach(doc, end)
    return PassageUnits.from_document(doc, start, end, reach, embedder)


def test_units_are_sentences_and_list_items_with_exact_offsets() -> None:
    doc = _doc()
    units = split_units(doc, 0, len(TEXT))
    texts = [TEXT[u.start:u.end] for u in units]
    assert texts[:2] == ["Overdose", "Symptoms of overdose:"] and units[0].heading and units[1].heading
    assert texts[2:5] == ["Drowsiness", "loss of consciousness", "coma."]
    assert all(u.list_item for u in units[2:5])
    assert "Treatment is symptomatic." in texts
    # a fragment after an abbreviation-like stop stays with its sentence
    assert any(t.endswith("50 pcs. - from 249 rubles.") for t in texts)


def test_list_answers_take_the_list_and_never_a_heading_alone(embedder) -> None:
    doc = _doc()
    extractor = SpanExtractor()
    question = "what are the symptoms of an overdose"
    [span] = extractor.extract(question, embedder.embed([question])[0], [_passage(doc, 0, len(TEXT), embedder)])
    text = TEXT[span.start:span.end]
    assert "Drowsiness" in text and "coma." in text
    assert text not in ("Overdose", "Symptoms of overdose:")


def test_span_is_a_few_sentences_not_the_passage(answerer: Answerer) -> None:
    bundle = answerer.bundle
    doc = bundle.documents["baclosan-tablets-leaflet"]
    section = next(s for s in doc.sections if s.title == "pharmachologic effect")
    question = "When does baclofen reach its highest concentration in the blood?"
    passage = PassageUnits.from_bundle(bundle, doc.doc_id, section.start, section.end, section.end)
    [span] = answerer.extractor.extract(question, answerer.embedder.embed([question])[0], [passage])
    text = doc.text[span.start:span.end]
    assert "2-3 hours" in text
    assert len(text) <= 400 < section.end - section.start


def test_idf_weighted_coverage_counts_rare_terms_more() -> None:
    weights = TermWeights({"baclofen": 90, "lithium": 1}, num_docs=100)
    terms = {"baclofen", "lithium"}
    assert term_coverage(terms, "Lithium salts") == 0.5
    assert term_coverage(terms, "Baclofen tablets", weights) < 0.2
    assert term_coverage(terms, "Lithium salts", weights) > 0.8
    assert weights.known({"baclofen", "zebra"}) == {"baclofen"}


def test_empty_passage_gives_no_span(embedder) -> None:
    doc = _doc("Overdose\n\nSome text here that is long enough.\n")
    extractor = SpanExtractor()
    vector = embedder.embed(["x"])[0]
    assert extractor.extract("x", vector, [_passage(doc, 0, 8, embedder)]) == [None]
    assert isinstance(vector, np.ndarray)


def test_a_sentence_among_relevant_neighbours_beats_a_lone_look_alike() -> None:
    from ingest.units import Unit

    units = [Unit(i * 10, i * 10 + 9, paragraph=i, list_item=False, heading=False) for i in range(5)]
    cos = np.array([0.61, 0.10, 0.10, 0.58, 0.55])
    cov = np.zeros(5)
    alone = SpanExtractor(neighbour_weight=0.0)._best_span(units, cos, cov, prior=0.0)
    among = SpanExtractor(neighbour_weight=0.2)._best_span(units, cos, cov, prior=0.0)
    assert alone.start == 0  # the single best-scoring sentence
    assert among.start == 30  # the sentence whose neighbour also matches


def test_a_lead_in_at_the_passage_end_takes_the_list_beyond_it(embedder) -> None:
    text = "Some patients overdose. " + TEXT[TEXT.index("Symptoms of overdose:"):]
    doc = _doc(text)
    end = text.index(":") + 1  # the passage stops right after the lead-in
    extractor = SpanExtractor()
    question = "what are the symptoms of an overdose"
    [span] = extractor.extract(question, embedder.embed([question])[0], [_passage(doc, 0, end, embedder)])
    assert span.start < end < span.end
    assert "Drowsiness" in text[span.start:span.end]


def test_the_neighbour_rule_through_the_public_path(embedder) -> None:
    # The same rule as above with real embeddings: a lone sentence that merely repeats
    # the question's words loses to the answer whose neighbour is on the subject too.
    sentences = [
        "The half-life of baclofen is something many callers ask about.",
        "The tablets are white and round.",
        "They come in a plastic bottle of 50.",
        "Baclofen leaves the blood with a half-life of 3 to 4 hours.",
        "Most of a dose is excreted in the urine within 72 hours.",
    ]
    text = " ".join(sentences) + "\n"
    doc = _doc(text)
    question = "What is the half-life of baclofen?"
    vector = embedder.embed([question])[0]

    def best(neighbour_weight: float) -> str:
        [span] = SpanExtractor(neighbour_weight=neighbour_weight).extract(question, vector, [_passage(doc, 0, len(text), embedder)])
        return text[span.start:span.end]

    assert best(0.0).startswith(sentences[0])
    assert best(0.2).startswith(sentences[3])

"""Subjects guessed from titles favour their documents without shutting the others out; expansion
terms stay on the lexical side; one passage is one search result; title debris names nothing.

Real files on disk, a real index, the real model.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from ingest.build import IndexBuilder
from ingest.documents import Document
from ingest.embedding import Embedder
from ingest.lexical import LexicalIndex
from ingest.subjects import assign_subjects
from qa_service.answering import Answerer, collapse_chunks
from qa_service.service import build_answerer
from qa_service.settings import ServiceSettings, SubjectNarrowing
from qa_service.subjects import SubjectFinder

PAGES = {
    # A page about the medicine, titled by its name: its subject is a guess from the title.
    "zorvex": ("Zorvex", "Zorvex is a medicine for high blood pressure. Zorvex lowers blood pressure by relaxing "
               "the blood vessels. Your doctor may prescribe Zorvex alone or with other medicines."),
    "quellin": ("Quellin", "Quellin is a medicine for migraine. Quellin narrows the swollen blood vessels around "
                "the brain. Take Quellin at the first sign of a migraine headache."),
    # The answer lies in a page that never names the medicine.
    "storage": ("Looking after your tablets at home",
                "Keep the tablets in their original blister pack, below 25 degrees Celsius, away from heat and "
                "moisture. Do not store them in the bathroom. Keep them out of the sight and reach of children."),
    # Title debris: a pronunciation line and a dose form, neither of them a subject.
    "pronounced": ("pronounced as (ZOR veks)", "Zorvex is taken once a day. Swallow Zorvex whole with water."),
    "forms": ("Oral tablets", "Oral tablets are swallowed whole with a glass of water. Oral tablets must not be chewed."),
}


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[ServiceSettings, Answerer]:
    root = tmp_path_factory.mktemp("web")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, (title, text) in PAGES.items():
        (corpus / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
        (corpus / f"{name}.txt.meta.json").write_text(f'{{"title": "{title}", "source": "web"}}', encoding="utf-8")
    settings = ServiceSettings(corpus_dir=corpus, index_dir=root / "index")
    IndexBuilder(settings, embedder).build()
    return settings, build_answerer(settings, embedder)


def test_subjects_record_where_they_came_from(web: tuple[ServiceSettings, Answerer]) -> None:
    documents = web[1].bundle.documents
    assert documents["zorvex"].subjects == ("Zorvex",) and documents["zorvex"].subject_sources == ("title",)


def test_title_debris_is_not_tagged_as_a_subject(web: tuple[ServiceSettings, Answerer]) -> None:
    documents = web[1].bundle.documents
    assert documents["pronounced"].subjects == ()
    assert documents["forms"].subjects == ()
    assert documents["storage"].subjects == ()
    # The same rules on documents in memory: a pronunciation in brackets goes, the name stays.
    text = "Baclofen relaxes muscles. Baclofen is taken three times a day. Take the tablets with food."
    made = assign_subjects([
        Document("a", "a.txt", "Baclofen (BAK-loe-fen) oral tablets", "x", "txt", "a", text),
        Document("b", "b.txt", "pronounced as (bak' loe fen)", "x", "txt", "b", text),
        Document("c", "c.txt", "Extended-release capsules", "x", "txt", "c", "Extended-release capsules. Capsules."),
    ])
    assert [d.subjects for d in made] == [("Baclofen",), (), ()]


def test_a_passage_that_does_not_name_the_medicine_is_still_found(web: tuple[ServiceSettings, Answerer]) -> None:
    settings, answerer = web
    found = answerer.search("How should I store Zorvex?", k=5)
    assert found.subjects == ["Zorvex"]
    docs = [r.citation.doc_id for r in found.results]
    assert "storage" in docs[:3]
    # The named medicine's page is favoured over the other medicine's.
    assert docs.index("zorvex") < docs.index("quellin") if "quellin" in docs else "zorvex" in docs
    # The previous behaviour, still selectable: only the documents about Zorvex.
    strict = Answerer(answerer.bundle, answerer.embedder,
                      settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"subject_narrowing": SubjectNarrowing.FILTER})}))
    assert {r.citation.doc_id for r in strict.search("How should I store Zorvex?", k=5).results} == {"zorvex"}


def test_a_question_naming_two_medicines_keeps_both(web: tuple[ServiceSettings, Answerer]) -> None:
    found = web[1].search("Can I take Zorvex and Quellin on the same day?", k=5)
    assert sorted(found.subjects) == ["Quellin", "Zorvex"]
    assert {"zorvex", "quellin"} <= {r.citation.doc_id for r in found.results[:3]}


def test_a_name_inside_another_is_no_misspelling_of_it() -> None:
    bodies = {"a": "Cetirizine relieves hay fever. Take cetirizine once a day."}
    documents = {"a": Document("a", "a.txt", "a", "a", "txt", "a", bodies["a"], subjects=("Cetirizine",),
                               subject_sources=("title",))}
    lexical = LexicalIndex.build(list(bodies.values()))
    finder = SubjectFinder(documents, lexical.vocabulary, lexical, ["a"])
    assert finder.find("what is the dose of cetirizien").names == ["Cetirizine"]  # a misspelling
    assert not finder.find("what is the dose of levocetirizine")  # another medicine


def test_expansion_terms_are_not_embedded(answerer: Answerer, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded: list[str] = []
    real = answerer.embedder.embed

    def spy(texts, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        embedded.extend(texts)
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(answerer.embedder, "embed", spy)
    question = "what should a person do if they swallowed too much of the medicine by accident"
    expansion = answerer.expander.expand(question)
    assert "overdose" in expansion.terms
    query = answerer._query(question, expansion, answerer.subjects.find(question))
    assert "overdose" in query.lexical and "overdose" not in query.dense
    answerer.search(question, k=3)
    assert embedded and not any("overdose" in text for text in embedded)


def test_answers_find_passages_as_search_does_when_asked_to(answerer: Answerer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The answer ranker was fitted on passages found with the expanded question: answers keep that
    # retrieval unless answers_follow_search, and then their passages come from the question alone.
    settings = answerer.settings
    follow = Answerer(answerer.bundle, answerer.embedder, settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"answers_follow_search": True})}))
    searched: list[np.ndarray] = []
    real = follow.retriever.search

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        searched.append(kwargs["query_vector"])
        return real(*args, **kwargs)

    monkeypatch.setattr(follow.retriever, "search", spy)
    question = "what should someone do after taking too much of it by accident"
    follow.read(question)
    plain = follow.embedder.embed([question])[0]
    assert len(searched) == 1 and float(searched[0] @ plain) == pytest.approx(1.0, abs=1e-5)


def _apart(results: list[dict]) -> None:
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            ca, cb = a["citation"], b["citation"]
            if ca["doc_id"] == cb["doc_id"] and ca["section"] == cb["section"]:
                # Neither overlapping nor touching: something other than white space between them.
                lo, hi = sorted([(ca["start"], ca["end"]), (cb["start"], cb["end"])])
                assert lo[1] < hi[0], (ca, cb)


@pytest.mark.parametrize("question", ["how long does baclofen stay in your system", "side effects of baclofen",
                                      "baclofen withdrawal symptoms", "how is baclofen excreted by the kidneys"])
def test_search_results_are_distinct_passages(client: httpx.Client, answerer: Answerer, question: str) -> None:
    body = client.get("/v1/search", params={"q": question, "k": 10}).json()
    results = body["results"]
    assert results
    _apart(results)
    texts = {d: answerer.bundle.documents[d].text for d in answerer.bundle.documents}
    for r in results:  # the text is the document's own, over the merged range
        c = r["citation"]
        assert r["text"] == texts[c["doc_id"]][c["start"]:c["end"]]


def test_chunks_of_one_passage_become_one_result() -> None:
    text = "a" * 50 + "  " + "b" * 50
    found = [("d", "s", 0, 30, 1.0), ("x", "s", 0, 5, 0.9), ("d", "s", 20, 50, 0.8), ("d", "s", 52, 80, 0.7),
             ("d", "t", 80, 90, 0.6), ("d", "s", 90, 100, 0.5)]
    assert collapse_chunks(found, lambda d: text) == [
        ("d", "s", 0, 80, 1.0), ("x", "s", 0, 5, 0.9), ("d", "t", 80, 90, 0.6), ("d", "s", 90, 100, 0.5)]
    # Once k results are made, later chunks stretch none of them.
    assert collapse_chunks(found, lambda d: text, k=2) == [("d", "s", 0, 30, 1.0), ("x", "s", 0, 5, 0.9)]


def test_without_collapsing_the_seed_search_repeats_a_passage(answerer: Answerer) -> None:
    # What collapsing is for: the raw chunk ranking does put neighbours of one passage side by side.
    def repeats(question: str) -> bool:
        raw = answerer.retriever.search(question, k=10)
        spans = [(c.chunk.doc_id, c.chunk.section, c.chunk.start, c.chunk.end) for c in raw]
        return any(a[:2] == b[:2] and a[2] <= b[3] and b[2] <= a[3] for i, a in enumerate(spans) for b in spans[i + 1:])

    assert any(repeats(q) for q in ("side effects of baclofen", "baclofen withdrawal symptoms",
                                     "how is baclofen excreted by the kidneys"))

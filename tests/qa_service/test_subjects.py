"""The medicine a question names decides which leaflets answer.

A corpus of leaflets written to one template (eval/leaflets.py), differing only
in their medicines' names and facts: every answer to a question about one
medicine must come from its own leaflet, whatever the wording, by brand or
generic name, misspelt, or next to a second medicine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from ingest.build import IndexBuilder
from ingest.documents import Document
from ingest.lexical import LexicalIndex
from ingest.embedding import Embedder
from qa_service.answering import Answerer
from qa_service.api import create_app
from qa_service.service import build_answerer
from qa_service.settings import ServiceSettings
from qa_service.subjects import SubjectFinder
from tests.conftest import REPO, LiveServer

sys.path.insert(0, str(REPO / "eval"))
from leaflets import OUT_OF_SCOPE, Medicine, medicines, questions, write_corpus  # noqa: E402

COUNT = 6


@pytest.fixture(scope="module")
def meds() -> list[Medicine]:
    return medicines(COUNT)


@pytest.fixture(scope="module")
def leaflet_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, meds: list[Medicine]) -> ServiceSettings:
    root = tmp_path_factory.mktemp("leaflets")
    write_corpus(root / "corpus", meds)
    settings = ServiceSettings(corpus_dir=root / "corpus", index_dir=root / "index")
    IndexBuilder(settings, embedder).build()
    return settings


@pytest.fixture(scope="module")
def leaflets(leaflet_settings: ServiceSettings, embedder: Embedder) -> Answerer:
    return build_answerer(leaflet_settings, embedder)


def _misspell(name: str) -> str:
    """One letter in the middle replaced, as a caller typing by ear might."""
    i = len(name) // 2
    return name[:i] + ("a" if name[i] != "a" else "e") + name[i + 1:]


def test_ingest_reads_each_leaflets_names(leaflets: Answerer, meds: list[Medicine]) -> None:
    for med in meds:
        subjects = {s.casefold() for s in leaflets.bundle.documents[med.doc_id].subjects}
        assert {med.brand.casefold(), med.generic.casefold()} <= subjects


@pytest.mark.parametrize("form", ["brand", "generic", "misspelt"])
def test_every_answer_comes_from_the_named_medicines_own_leaflet(
    leaflets: Answerer, meds: list[Medicine], form: str
) -> None:
    asked = questions(meds, generic=form == "generic")
    if form == "misspelt":
        asked = [
            type(q)(q.text.replace(med.brand, _misspell(med.brand)), q.doc_id, q.evidence, q.kind)
            for med in meds for q in asked if q.doc_id == med.doc_id
        ]
    right = 0
    for q in asked:
        response = leaflets.ask(q.text, top_k=3)
        # not one answer from another medicine's leaflet
        assert [a.citation.doc_id for a in response.answers] == [q.doc_id] * len(response.answers), q.text
        med = next(m for m in meds if m.doc_id == q.doc_id)
        assert response.subjects and response.subjects[0].casefold() in {med.brand.casefold(), med.generic.casefold()}
        right += any(q.evidence in a.text for a in response.answers)
    # and the leaflet's own answering sentence is among the answers for most questions
    assert right / len(asked) >= 0.7


def test_the_top_answer_comes_from_the_section_the_question_means(leaflets: Answerer, meds: list[Medicine]) -> None:
    """Within one leaflet the name tells no sentence from another: the missed-dose advice, not
    a sentence that happens to repeat the name ("Never take more than 16 mg of X in a day")."""
    for med in meds:
        response = leaflets.ask(f"What if I forget a dose of {med.brand}?", top_k=3)
        assert response.answers, med.brand
        top = response.answers[0]
        assert top.citation.doc_id == med.doc_id
        assert med.facts["missed"].split(". ")[0] in top.text, (med.brand, top.text)
        assert top.citation.section == f"If you forget to take {med.brand}"


def test_a_sentence_is_compared_with_the_heading_of_its_section(leaflets: Answerer, meds: list[Medicine]) -> None:
    """Section intent: "I skipped a dose" is nearer the heading "If you forget to take X" than
    "How to store X", and the ranker sees it in the unit's ``heading_cosine`` (0 for the units
    under the best-matching heading, less for the others)."""
    from qa_service.ranking import FEATURES

    bundle = leaflets.bundle
    med = meds[0]
    lo, hi = bundle.unit_range(med.doc_id)
    text = bundle.documents[med.doc_id].text
    row_of = {kind: next(r for r in range(lo, hi) if med.facts[kind].split(". ")[0] in
                         text[bundle.units["start"][r]:bundle.units["end"][r]]) for kind in ("missed", "storage")}
    question = "I skipped yesterday's tablet, what should I do?"
    vector = leaflets.embedder.embed([question])[0]
    rows = [row_of["missed"], row_of["storage"]]
    features = leaflets.features.build(question, vector, rows, {}, {}, 0.0).features
    heading = features[:, FEATURES.index("heading_cosine")]  # relative to the best heading among them
    assert heading[0] == 0.0 > heading[1]


def test_a_question_naming_two_medicines_hears_both(leaflets: Answerer, meds: list[Medicine]) -> None:
    a, b = meds[0], meds[1]
    response = leaflets.ask(f"Can I take {a.brand} and {b.brand} together?", top_k=5)
    assert sorted(response.subjects) == sorted([a.brand, b.brand])
    assert {x.citation.doc_id for x in response.answers} <= {a.doc_id, b.doc_id}
    search = leaflets.search(f"How should {a.brand} and {b.brand} be stored?", k=10)
    assert {r.citation.doc_id for r in search.results} == {a.doc_id, b.doc_id}


def test_a_medicine_the_leaflets_do_not_cover_is_declined(leaflets: Answerer) -> None:
    for question in OUT_OF_SCOPE:
        response = leaflets.ask(question)
        assert not response.answered, question
        assert response.subjects == []


def test_without_a_named_medicine_the_answer_says_so(leaflets: Answerer, meds: list[Medicine]) -> None:
    # The leaflets share one template: every one of them answers this, so the answers come from
    # several, and the reader is told that no medicine was named and which ones the answers are about.
    response = leaflets.ask("What if I forget to take a dose?", top_k=3)
    assert response.answered and response.subjects == []
    docs = {a.citation.doc_id for a in response.answers}
    assert len(docs) > 1, docs
    assert response.notice and response.notice.startswith("No medicine was named"), response.notice
    by_doc = {med.doc_id: med for med in meds}
    for doc_id in docs:
        assert by_doc[doc_id].brand in response.notice or by_doc[doc_id].generic in response.notice, (doc_id, response.notice)
    # naming one of them: its own leaflet only, and no notice
    named = leaflets.ask(f"What if I forget to take a dose of {meds[0].brand}?", top_k=3)
    assert {a.citation.doc_id for a in named.answers} == {meds[0].doc_id} and named.notice is None


def test_the_api_lists_subjects_and_says_which_were_recognised(
    leaflet_settings: ServiceSettings, meds: list[Medicine]
) -> None:
    med = meds[2]
    with LiveServer(create_app(leaflet_settings)) as live:
        listed = {d["doc_id"]: d["subjects"] for d in httpx.get(f"{live.url}/v1/documents", timeout=30).json()}
        assert med.brand in listed[med.doc_id]
        body = httpx.post(f"{live.url}/v1/ask", json={"question": f"how do i store {med.brand.lower()}?"}, timeout=60).json()
        assert body["subjects"] == [med.brand]
        assert {a["citation"]["doc_id"] for a in body["answers"]} == {med.doc_id}
        found = httpx.get(f"{live.url}/v1/search", params={"q": f"{med.generic} storage"}, timeout=60).json()
        assert found["subjects"] == [med.generic]
        assert {r["citation"]["doc_id"] for r in found["results"]} == {med.doc_id}


def test_the_seed_documents_share_their_medicine(answerer: Answerer) -> None:
    # Brand and generic joined: both pages are about baclofen, so a question naming
    # either name still hears both, and no "different medicines" notice is given.
    for name in ("baclofen", "Baclosan"):
        response = answerer.ask(f"What is the maximum daily dose of {name}?", top_k=5)
        assert response.subjects
        assert {a.citation.doc_id for a in response.answers} == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}
        assert response.notice is None


def test_a_sidecar_can_declare_subjects(tmp_path: Path, embedder: Embedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Take one tablet daily with water. Store below 25 degrees.\n", encoding="utf-8")
    (corpus / "a.txt.meta.json").write_text('{"title": "Leaflet", "source": "x", "subjects": ["Quorvex"]}', encoding="utf-8")
    (corpus / "b.txt").write_text("Take two tablets daily with food. Store in a fridge.\n", encoding="utf-8")
    settings = ServiceSettings(corpus_dir=corpus, index_dir=tmp_path / "index")
    IndexBuilder(settings, embedder).build()
    reader = build_answerer(settings, embedder)
    assert reader.bundle.documents["a"].subjects == ("Quorvex",)
    found = reader.search("how do I store quorvex", k=5)
    assert found.subjects == ["Quorvex"] and {r.citation.doc_id for r in found.results} == {"a"}


def _finder(texts: dict[str, tuple[str, ...]], bodies: dict[str, str]) -> SubjectFinder:
    """A finder over in-memory documents (one chunk each), with a real BM25 index of their text."""
    documents = {
        doc_id: Document(doc_id, f"{doc_id}.txt", doc_id, doc_id, "txt", doc_id, bodies[doc_id], subjects=subjects)
        for doc_id, subjects in texts.items()
    }
    lexical = LexicalIndex.build([bodies[d] for d in documents])
    return SubjectFinder(documents, lexical.vocabulary, lexical, list(documents))


def test_a_misspelling_as_near_two_names_is_not_guessed() -> None:
    finder = _finder({"a": ("Zorarizia",), "b": ("Zorivizia",)},
                     {"a": "Zorarizia tablets. Store below 25 degrees.", "b": "Zorivizia tablets. Keep in a fridge."})
    assert finder.find("how do I store zorarizia").names == ["Zorarizia"]
    unsure = finder.find("how do I store zoriaizia")
    assert not unsure and unsure.ambiguous == {"zoriaizia": ["Zorarizia", "Zorivizia"]}


def test_a_name_that_many_documents_discuss_narrows_nothing() -> None:
    # One title names adenovirus, four other articles discuss it: a question about
    # adenovirus must not be answered from that one article only.
    bodies = {f"d{i}": f"Adenovirus vectors were studied in trial {i}. Serotypes differ." for i in range(5)}
    bodies["solo"] = "Keratoconus thins the cornea."
    finder = _finder({"d0": ("Adenovirus",), **{f"d{i}": () for i in range(1, 5)}, "solo": ("Keratoconus",)}, bodies)
    assert not finder.find("How many serotypes of adenovirus are there?")
    assert finder.find("What causes keratoconus?").doc_ids == ["solo"]


def test_a_medicine_no_leaflet_covers_is_declined_by_name(leaflets: Answerer) -> None:
    response = leaflets.ask("What if I forget a dose of Quixomexa?")
    assert not response.answered and "do not mention Quixomexa" in (response.reason or "")


def test_a_misspelling_as_near_two_medicines_is_declined_over_http_with_the_choices(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for doc_id, name, storage in [("zorarizia", "Zorarizia", "Store below 25 degrees."),
                                  ("zorivizia", "Zorivizia", "Keep in a fridge.")]:
        (corpus / f"{doc_id}.txt").write_text(f"{name} tablets\n\nStorage\n\n{name} tablets: {storage}\n", encoding="utf-8")
        (corpus / f"{doc_id}.txt.meta.json").write_text(
            f'{{"title": "{name} leaflet", "source": "x", "subjects": ["{name}"]}}', encoding="utf-8")
    settings = ServiceSettings(corpus_dir=corpus, index_dir=tmp_path / "index")
    IndexBuilder(settings, embedder).build()
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        near_one = http.post("/v1/ask", json={"question": "How do I store zorarizza?"}).json()
        assert near_one["subjects"] == ["Zorarizia"]  # a misspelling near one name is read as it
        unsure = http.post("/v1/ask", json={"question": "How do I store zoriaizia?"})
        assert unsure.status_code == 200
        body = unsure.json()
        assert body["answered"] is False and body["answers"] == [] and body["subjects"] == []
        assert body["reason"] == "'zoriaizia' could be Zorarizia or Zorivizia: which one is meant?"
        assert body["choices"] == [{"word": "zoriaizia", "names": ["Zorarizia", "Zorivizia"]}]  # the same, as data

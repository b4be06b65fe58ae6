"""What the index covers (GET /v1/coverage) and the choices a declined question offers, over real
HTTP: on the seed index, and on a small corpus of two leaflets of medicines with close names whose
sections are others than the seed's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.analysis import terms
from ingest.build import IndexBuilder
from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.coverage import TOPICS
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer

CLOSE_NAMES = {
    "Cetrabine": ("Store below 25 degrees in the original package, away from moisture.",
                  "Take the missed tablet as soon as you remember, unless it is nearly time for the next one.",
                  "Cetrabine must not be taken in the last three months of pregnancy."),
    "Cetrapine": ("Keep in a refrigerator between 2 and 8 degrees; do not freeze.",
                  "Skip the missed dose and take the next one at the usual time; never take two doses together.",
                  "Cetrapine may be used during pregnancy only if the doctor considers it essential."),
}
"""Two medicines one letter apart, each a leaflet of three sections: storage, a forgotten dose, pregnancy."""
AMBIGUOUS = "cetravine"
"""A misspelling as near to Cetrabine as to Cetrapine (found by asking): the service can't tell which."""


def close_leaflets() -> dict[str, str]:
    """The two leaflets, with sidecars declaring their medicine: file name -> text."""
    files: dict[str, str] = {}
    for name, (storage, missed, pregnancy) in CLOSE_NAMES.items():
        leaflet = f"{name.lower()}-leaflet.txt"
        files[leaflet] = (f"{name} 20 mg film-coated tablets\n\nStorage\n\n{name} tablets: {storage}\n\n"
                          f"If you forget to take {name}\n\n{missed}\n\nPregnancy and breast-feeding\n\n{pregnancy}\n")
        sidecar = {"title": f"{name} 20 mg tablets: package leaflet", "source": "test leaflet", "subjects": [name]}
        files[leaflet + ".meta.json"] = json.dumps(sidecar)
    return files


def write_close_leaflets(corpus: Path) -> None:
    """The two leaflets (with sidecars declaring their medicine) into ``corpus``."""
    for name, text in close_leaflets().items():
        (corpus / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def close(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("close")
    (root / "corpus").mkdir()
    write_close_leaflets(root / "corpus")
    settings = ServiceSettings(corpus_dir=root / "corpus", index_dir=root / "index", admin_token=ADMIN_TOKEN)
    IndexBuilder(settings, embedder).build()
    with LiveServer(create_app(settings)) as live:
        yield live


def topics_of(sections: list[str]) -> set[str]:
    """The example topics some of these section titles are about (as the service reads titles)."""
    found = set()
    for title_terms in map(set, terms(sections)):
        found |= {t.name for t in TOPICS
                  if all(g & title_terms for g in t.needs) and not t.unless & title_terms}
    return found


def check_coverage(url: str) -> dict:
    """/v1/coverage of the server at ``url``, checked against its own /v1/documents."""
    coverage = httpx.get(url + "/v1/coverage").json()
    documents = httpx.get(url + "/v1/documents").json()
    assert set(coverage) == {"subjects", "documents", "examples"}
    assert coverage["documents"] == len(documents)
    listed = {s.casefold() for d in documents for s in d["subjects"]}
    assert {s.casefold() for s in coverage["subjects"]} == listed and len(coverage["subjects"]) == len(listed)
    assert coverage["subjects"] == sorted(coverage["subjects"], key=str.casefold)
    assert 1 <= len(coverage["examples"]) <= 4 and len(set(coverage["examples"])) == len(coverage["examples"])
    # each example is the template of a topic some document has a section on, naming a medicine
    # of a document with such a section
    for example in coverage["examples"]:
        [topic] = [t for t in TOPICS if example.startswith(t.template.split("{name}")[0])
                   and example.endswith(t.template.split("{name}")[1])]
        name = example[len(topic.template.split("{name}")[0]):len(example) - len(topic.template.split("{name}")[1])]
        having = [d for d in documents if name.casefold() in {s.casefold() for s in d["subjects"]}]
        assert any(topic.name in topics_of(d["sections"]) for d in having), (example, name)
    # one example a topic, as far as the documents' sections give topics (at most four)
    offered = [t.name for t in TOPICS if any(e.startswith(t.template.split("{name}")[0]) for e in coverage["examples"])]
    present = [t.name for t in TOPICS if t.name in topics_of([s for d in documents for s in d["sections"]])]
    assert offered == present[:4]
    return coverage


def test_the_seed_index_s_coverage(server: LiveServer) -> None:
    coverage = check_coverage(server.url)
    # the seed leaflets have sections on an overdose, a missed dose, storage and side effects
    assert [e.split()[-1].rstrip("?") for e in coverage["examples"]][:2] == ["Baclofen", "Baclofen"]
    assert any("overdose" in e for e in coverage["examples"]) and any("stored" in e for e in coverage["examples"])
    # every example is a question the service answers
    for example in coverage["examples"]:
        body = httpx.post(server.url + "/v1/ask", json={"question": example}, timeout=60).json()
        assert body["answered"] and body["subjects"], (example, body["reason"])


def test_another_corpus_gives_other_examples(close: LiveServer, server: LiveServer) -> None:
    coverage = check_coverage(close.url)
    assert coverage["subjects"] == sorted(CLOSE_NAMES) and coverage["documents"] == len(CLOSE_NAMES)
    assert not any("overdose" in e for e in coverage["examples"])  # no section on it here
    assert any("pregnancy" in e for e in coverage["examples"])  # the seed's has none on pregnancy alone
    assert set(coverage["examples"]).isdisjoint(httpx.get(server.url + "/v1/coverage").json()["examples"])
    # the examples name both medicines, not only the first
    assert {name for name in CLOSE_NAMES if any(name in e for e in coverage["examples"])} == set(CLOSE_NAMES)


def test_coverage_needs_the_key_where_keys_are_set(seed_settings: ServiceSettings) -> None:
    settings = seed_settings.model_copy(update={"api_keys": ["k1"]})
    with LiveServer(create_app(settings)) as live:
        refused = httpx.get(live.url + "/v1/coverage")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key"
        allowed = httpx.get(live.url + "/v1/coverage", headers={"Authorization": "Bearer k1"})
        assert allowed.status_code == 200 and allowed.json()["documents"] >= 2


def test_a_misspelling_near_two_names_is_declined_with_the_choices_as_data(close: LiveServer) -> None:
    body = httpx.post(close.url + "/v1/ask", json={"question": f"How should I store {AMBIGUOUS}?"}, timeout=60).json()
    assert body["answered"] is False and body["answers"] == []
    assert body["choices"] == [{"word": AMBIGUOUS, "names": sorted(CLOSE_NAMES)}]
    assert body["reason"] == f"'{AMBIGUOUS}' could be Cetrabine or Cetrapine: which one is meant?"  # kept
    # each choice asked with the name in the word's place is answered from that medicine's leaflet
    for name in sorted(CLOSE_NAMES):
        again = httpx.post(close.url + "/v1/ask", json={"question": f"How should I store {name}?"}, timeout=60).json()
        assert again["answered"] and again["subjects"] == [name] and again["choices"] == []
        assert {a["citation"]["doc_id"] for a in again["answers"]} == {f"{name.lower()}-leaflet"}


def test_a_medicine_the_corpus_lacks_is_declined_naming_those_it_has(close: LiveServer) -> None:
    body = httpx.post(close.url + "/v1/ask", json={"question": "Is ibuprofen safe in pregnancy?"}, timeout=60).json()
    assert body["answered"] is False and body["choices"] == []
    assert body["reason"] == "the documents do not mention ibuprofen; they are about Cetrabine and Cetrapine"


def test_answers_about_several_medicines_name_them_with_the_notice(close: LiveServer) -> None:
    body = httpx.post(close.url + "/v1/ask", json={"question": "How should I store my tablets?", "top_k": 5},
                      timeout=60).json()
    assert body["answered"] and body["subjects"] == [] and body["notice"]
    cited = {a["citation"]["doc_id"].split("-")[0].capitalize() for a in body["answers"]}
    assert sorted(body["notice_subjects"]) == sorted(cited) == sorted(CLOSE_NAMES)
    assert all(name in body["notice"] for name in body["notice_subjects"])
    # narrowed to one of them (the filter the widget's chips send), the answers are its own, without a notice
    narrowed = httpx.post(close.url + "/v1/ask", json={"question": "How should I store my tablets?", "top_k": 5,
                                                       "filter": {"subject": ["Cetrapine"]}}, timeout=60).json()
    assert narrowed["answered"] and narrowed["notice"] is None and narrowed["notice_subjects"] == []
    assert {a["citation"]["doc_id"] for a in narrowed["answers"]} == {"cetrapine-leaflet"}

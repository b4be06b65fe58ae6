"""The researchers' side of the API over real HTTP: passage ids, filters applied before ranking,
paging, collapse, subjects on or off, explain, highlight, the meta block and pinned index versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from ingest.analysis import terms
from ingest.build import IndexBuilder
from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import CORPUS, LiveServer

QUERIES = ["how is an overdose treated", "maximum daily dose", "side effects in the elderly",
           "how long does baclofen stay in the system", "storage of the tablets"]


def documents(client: httpx.Client) -> list[dict]:
    return [client.get(f"/v1/documents/{d['doc_id']}").json() for d in client.get("/v1/documents").json()]


def test_every_result_and_answer_has_a_passage_id_that_gives_it_back(client: httpx.Client) -> None:
    results = client.get("/v1/search", params={"q": QUERIES[0], "k": 20}).json()["results"]
    answers = client.post("/v1/ask", json={"question": QUESTION_ANSWERED, "top_k": 5}).json()["answers"]
    assert results and answers
    for item in [*results, *answers]:
        c = item["citation"]
        assert item["passage_id"] == f"{c['doc_id']}:{c['start']}-{c['end']}"
        fetched = client.get(f"/v1/passages/{item['passage_id']}")
        assert fetched.status_code == 200
        body = fetched.json()
        assert body["text"] == item["text"] and body["citation"] == c and body["passage_id"] == item["passage_id"]
    assert client.get("/v1/passages/no-such-doc:0-10").json()["error"]["code"] == "unknown_doc_id"
    assert client.get("/v1/passages/not-an-id").json()["error"]["code"] == "invalid_passage_id"
    doc = results[0]["citation"]["doc_id"]
    beyond = client.get(f"/v1/passages/{doc}:0-999999999")
    assert beyond.status_code == 404 and beyond.json()["error"]["code"] == "unknown_passage"


QUESTION_ANSWERED = "How is an overdose of baclofen treated?"


def test_passage_ids_are_the_same_after_a_rebuild_with_another_document(
    client: httpx.Client, tmp_path: Path, embedder: Embedder
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "zz-another-leaflet.txt").write_text(
        "Another leaflet\n\nOverdose\n\nIn case of overdose of Zorbex contact a doctor at once.\n", encoding="utf-8")
    settings = ServiceSettings(corpus_dir=corpus, index_dir=tmp_path / "index")
    IndexBuilder(settings, embedder).build()
    with LiveServer(create_app(settings)) as rebuilt, httpx.Client(base_url=rebuilt.url, timeout=60) as other:
        old_docs = [d["doc_id"] for d in client.get("/v1/documents").json()]
        # every chunk of the old documents (k=100 over their 89 chunks), in either index
        params = {"q": "dose", "k": 100, "collapse": "none", "doc_id": old_docs}
        before = {r["passage_id"]: r["text"] for r in client.get("/v1/search", params=params).json()["results"]}
        after = {r["passage_id"]: r["text"] for r in other.get("/v1/search", params=params).json()["results"]}
        assert len(before) > 40 and before == after
        for query in QUERIES:  # and an answer's span, fetched by its id from the rebuilt index
            for answer in client.post("/v1/ask", json={"question": query}).json()["answers"]:
                again = other.get(f"/v1/passages/{answer['passage_id']}").json()
                assert again["text"] == answer["text"] and again["citation"] == answer["citation"]


def _sections(client: httpx.Client) -> list[tuple[str, str]]:
    """(doc_id, section title) of every titled section."""
    found = []
    for document in client.get("/v1/documents").json():
        found += [(document["doc_id"], title) for title in document["sections"] if title]
    return found


def test_a_section_filter_is_applied_before_ranking(client: httpx.Client) -> None:
    checked = 0
    for _, title in _sections(client)[::4]:
        for query in QUERIES[:3]:
            response = client.post("/v1/search", json={"q": query, "k": 100, "filter": {"section": [title.upper()]}})
            assert response.status_code == 200
            results = response.json()["results"]
            assert results, (title, query)  # the section's passages are ranked, whatever the query
            assert {r["citation"]["section"].casefold() for r in results} == {title.casefold()}, (title, query)
            checked += 1
    assert checked >= 20


def test_filters_never_return_a_passage_outside_them(client: httpx.Client) -> None:
    docs = client.get("/v1/documents").json()
    one = docs[0]
    subject = one["subjects"][0]
    cases = [
        {"doc_id": [one["doc_id"]]},
        {"source": [one["source"]]},
        {"format": [one["format"]]},
        {"subject": [subject.upper()]},
        {"subject": [subject], "doc_id": [one["doc_id"]], "section": [t for t in one["sections"] if t][:3]},
    ]
    by_id = {d["doc_id"]: d for d in docs}
    for wanted in cases:
        for query in QUERIES:
            for kind, body in (("search", {"q": query, "k": 100, "filter": wanted}),
                               ("ask", {"question": query, "top_k": 20, "filter": wanted})):
                response = client.post(f"/v1/{kind}", json=body)
                assert response.status_code == 200, response.text
                items = response.json()["results" if kind == "search" else "answers"]
                for item in items:
                    c = item["citation"]
                    document = by_id[c["doc_id"]]
                    assert not wanted.get("doc_id") or c["doc_id"] in wanted["doc_id"]
                    assert not wanted.get("source") or document["source"] in wanted["source"]
                    assert not wanted.get("format") or document["format"] in wanted["format"]
                    assert not wanted.get("subject") or {s.casefold() for s in document["subjects"]} & \
                        {s.casefold() for s in wanted["subject"]}
                    assert not wanted.get("section") or c["section"] in wanted["section"], (kind, query, c)
    nothing = client.post("/v1/search", json={"q": "dose", "filter": {"subject": ["no such medicine"]}}).json()
    assert nothing["results"] == [] and nothing["candidates"] == 0
    declined = client.post("/v1/ask", json={"question": "dose?", "filter": {"format": ["pdf-none"]}}).json()
    assert declined["answered"] is False and declined["answers"] == []


def test_get_search_takes_the_filter_as_repeated_parameters(client: httpx.Client) -> None:
    titles = [t for _, t in _sections(client)][:2]
    got = client.get("/v1/search", params={"q": "dose", "k": 100, "section": titles}).json()["results"]
    posted = client.post("/v1/search", json={"q": "dose", "k": 100, "filter": {"section": titles}}).json()["results"]
    assert got == posted and got
    assert {r["citation"]["section"] for r in got} <= set(titles)


def test_offset_pages_through_one_ranking_and_k_goes_to_100(client: httpx.Client) -> None:
    whole = client.get("/v1/search", params={"q": "dose", "k": 30}).json()["results"]
    assert len(whole) == 30
    pages = []
    for offset in (0, 10, 20):
        page = client.get("/v1/search", params={"q": "dose", "k": 10, "offset": offset}).json()
        assert page["offset"] == offset
        pages += page["results"]
    # the same passages in the same order; one shown early may have grown by chunks a deeper page found
    assert len(pages) == len(whole)
    for shown, deep in zip(pages, whole):
        a, b = shown["citation"], deep["citation"]
        assert shown["score"] == deep["score"] and a["doc_id"] == b["doc_id"]
        assert b["start"] <= a["start"] < a["end"] <= b["end"], (shown["passage_id"], deep["passage_id"])
    for i, a in enumerate(pages):  # and no two pages share a passage, or any part of one
        for b in pages[i + 1:]:
            ca, cb = a["citation"], b["citation"]
            assert ca["doc_id"] != cb["doc_id"] or ca["end"] <= cb["start"] or cb["end"] <= ca["start"]
    none = [client.get("/v1/search", params={"q": "dose", "k": 10, "offset": o, "collapse": "none"}).json()["results"]
            for o in (0, 10)]
    assert none[0] + none[1] == client.get("/v1/search", params={"q": "dose", "k": 20, "collapse": "none"}).json()["results"]
    hundred = client.get("/v1/search", params={"q": "dose", "k": 100, "collapse": "none"}).json()
    chunks = client.get("/readyz").json()["chunks"]
    assert chunks > 20 and len(hundred["results"]) == min(100, chunks) and hundred["candidates"] == chunks


def test_collapse_passage_document_or_none(client: httpx.Client) -> None:
    for query in QUERIES:
        by_doc = client.post("/v1/search", json={"q": query, "k": 10, "collapse": "document"}).json()["results"]
        assert len({r["citation"]["doc_id"] for r in by_doc}) == len(by_doc) == 2  # one per document
        merged = client.post("/v1/search", json={"q": query, "k": 10, "collapse": "passage"}).json()["results"]
        for i, a in enumerate(merged):  # no two results overlap
            for b in merged[i + 1:]:
                ca, cb = a["citation"], b["citation"]
                assert ca["doc_id"] != cb["doc_id"] or ca["end"] <= cb["start"] or cb["end"] <= ca["start"]
        plain = client.post("/v1/search", json={"q": query, "k": 10, "collapse": "none"}).json()["results"]
        assert len(plain) == 10
        assert client.get("/v1/search", params={"q": query, "k": 10}).json()["results"] == merged  # the default


def test_subjects_off_ranks_every_document_alike(client: httpx.Client) -> None:
    question = "How long does baclofen stay in the system?"
    auto = client.post("/v1/search", json={"q": question, "explain": True}).json()
    off = client.post("/v1/search", json={"q": question, "explain": True, "subjects": "off"}).json()
    assert auto["subjects"] and off["subjects"] == []
    assert auto["explain"]["subjects_mode"] == "auto" and off["explain"]["subjects_mode"] == "off"
    assert off["explain"]["narrowed_to"] is None and off["explain"]["boosted"] is None
    assert all(r["explain"]["subject_boost"] == 0.0 for r in off["results"])
    assert any(r["explain"]["subject_boost"] > 0 for r in auto["results"])
    asked = client.post("/v1/ask", json={"question": question, "subjects": "off"}).json()
    assert asked["subjects"] == []


def test_explain_says_why_each_result_ranked_where_it_did(client: httpx.Client) -> None:
    body = client.post("/v1/search", json={"q": "how is an overdose treated", "k": 5, "explain": True}).json()
    query = body["explain"]
    assert query["lexical_terms"] and query["dense_query"] and "expanded_terms" in query
    assert query["fusion"] and 0.0 <= query["dense_weight"] <= 1.0
    assert abs(query["dense_weight"] + query["lexical_weight"] - 1.0) < 1e-9
    for result in body["results"]:
        why = result["explain"]
        assert why["fused"] == pytest.approx(result["score"], abs=1e-6)
        assert -1.0 <= why["dense"] <= 1.0 and why["lexical"] >= 0.0
        assert result["passage_id"] in why["chunks"] or why["chunks"]
    plain = client.post("/v1/search", json={"q": "how is an overdose treated", "k": 5}).json()
    assert plain["explain"] is None and all(r["explain"] is None for r in plain["results"])
    assert [r["passage_id"] for r in plain["results"]] == [r["passage_id"] for r in body["results"]]

    asked = client.post("/v1/ask", json={"question": QUESTION_ANSWERED, "explain": True}).json()
    assert asked["answered"] and asked["explain"]["min_confidence"] > 0
    for answer in asked["answers"]:
        why = answer["explain"]
        assert set(why["contributions"]) == set(why["features"])
        # the contributions and the ranker's intercept add up to its logit
        intercept = why["ranker_logit"] - sum(why["contributions"].values())
        assert abs(intercept - ANSWER_INTERCEPT(client)) < 1e-3, (intercept, why)


def ANSWER_INTERCEPT(client: httpx.Client) -> float:  # noqa: N802 - read once from the shipped ranker
    import json

    from qa_service.settings import AnswerSettings

    return float(json.loads(Path(AnswerSettings().ranker_model).read_text(encoding="utf-8"))["intercept"])


def test_highlights_are_the_query_terms_in_citation_coordinates(client: httpx.Client) -> None:
    texts = {d["doc_id"]: d["text"] for d in documents(client)}
    body = client.post("/v1/search", json={"q": "overdose symptoms drowsiness", "k": 10, "highlight": True,
                                           "explain": True}).json()
    wanted = set(body["explain"]["lexical_terms"])
    marked = 0
    for result in body["results"]:
        c = result["citation"]
        for mark in result["highlights"]:
            assert c["start"] <= mark["start"] < mark["end"] <= c["end"]
            assert terms([texts[c["doc_id"]][mark["start"]:mark["end"]]])[0][0] in wanted
            marked += 1
    assert marked >= 5
    asked = client.post("/v1/ask", json={"question": "What are the symptoms of an overdose?", "highlight": True}).json()
    assert any(a["highlights"] for a in asked["answers"])
    for answer in asked["answers"]:
        c = answer["citation"]
        assert all(c["start"] <= m["start"] < m["end"] <= c["end"] for m in answer["highlights"])
    assert all(r["highlights"] == [] for r in client.post("/v1/search", json={"q": "overdose"}).json()["results"])


def test_every_response_names_the_index_models_code_and_configuration(client: httpx.Client,
                                                                      seed_settings: ServiceSettings) -> None:
    ready = client.get("/readyz").json()
    search = client.get("/v1/search", params={"q": "dose"}).json()["meta"]
    ask = client.post("/v1/ask", json={"question": "dose?"}).json()["meta"]
    assert search == ask and search["index_version"] == ready["index_version"]
    assert search["models"]["embedding"] and search["code_version"] and len(search["config_hash"]) == 16
    passage = client.get("/v1/search", params={"q": "dose"}).json()["results"][0]["passage_id"]
    assert client.get(f"/v1/passages/{passage}").json()["meta"] == search
    # a setting that changes results changes the hash; one that only serves faster does not
    stricter = seed_settings.model_copy(update={"answer": seed_settings.answer.model_copy(update={"min_confidence": 0.9})})
    uncached = seed_settings.model_copy(update={"serving": seed_settings.serving.model_copy(update={"answer_cache": 0})})
    for settings, same in ((stricter, False), (uncached, True)):
        with LiveServer(create_app(settings)) as other:
            meta = httpx.get(other.url + "/v1/search", params={"q": "dose"}, timeout=60).json()["meta"]
        assert (meta["config_hash"] == search["config_hash"]) is same
        assert meta["index_version"] == search["index_version"]


def test_a_request_pinned_to_another_index_version_is_refused(client: httpx.Client) -> None:
    version = client.get("/readyz").json()["index_version"]
    for method, url, body in (("POST", "/v1/ask", {"question": "dose?"}), ("POST", "/v1/search", {"q": "dose"})):
        assert client.request(method, url, json={**body, "index_version": version}).status_code == 200
        refused = client.request(method, url, json={**body, "index_version": "0" * 12})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "index_version_mismatch"
    refused = client.get("/v1/search", params={"q": "dose", "index_version": "old"})
    assert refused.status_code == 409 and version in refused.json()["error"]["message"]


def test_results_are_the_same_on_every_run_and_equal_scores_go_by_passage_id(
    seed_settings: ServiceSettings,
) -> None:
    settings = seed_settings.model_copy(update={"serving": seed_settings.serving.model_copy(update={"answer_cache": 0})})
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        for query in QUERIES:
            runs = [http.get("/v1/search", params={"q": query, "k": 100, "collapse": "none"}).json()["results"]
                    for _ in range(2)]
            assert runs[0] == runs[1]
            keyed = [(-r["score"], r["citation"]["doc_id"], r["citation"]["start"], r["citation"]["end"]) for r in runs[0]]
            assert keyed == sorted(keyed), query

"""Feedback on answers: stored in SQLite over real HTTP, exported with the admin token."""

from __future__ import annotations

import json
import sqlite3

import httpx

from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer


def _an_answer(client: httpx.Client) -> tuple[str, dict]:
    question = "How is an overdose treated?"
    answer = client.post("/v1/ask", json={"question": question}).json()["answers"][0]
    return question, answer


def test_a_vote_is_stored_and_exported_as_json_lines(client: httpx.Client, seed_settings: ServiceSettings) -> None:
    question, answer = _an_answer(client)
    sent = {"question": question, "citation": answer["citation"], "answer": answer["text"], "vote": "down",
            "comment": "not the treatment"}
    response = client.post("/v1/feedback", json=sent)
    assert response.status_code == 201
    row_id = response.json()["id"]

    # in the SQLite file next to the index, not inside it (a re-ingest replaces that folder)
    path = seed_settings.feedback_path()
    assert path.parent == seed_settings.index_dir.parent
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT question, vote, comment, doc_id FROM feedback WHERE id = ?", (row_id,)).fetchone()
    assert stored == (question, "down", "not the treatment", answer["citation"]["doc_id"])

    export = client.get("/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in export.text.splitlines()]
    mine = next(r for r in records if r["id"] == row_id)
    assert mine["citation"] == answer["citation"] and mine["vote"] == "down" and mine["answer"] == answer["text"]


def test_export_needs_the_admin_token(client: httpx.Client) -> None:
    missing = client.get("/v1/feedback")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = client.get("/v1/feedback", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_export_is_disabled_without_a_token_setting(tmp_path) -> None:
    app = create_app(ServiceSettings(index_dir=tmp_path / "index"), load=False)
    with LiveServer(app, ready_path="/healthz") as live:
        response = httpx.get(live.url + "/v1/feedback", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


def test_bad_feedback_is_a_clear_4xx_and_stores_nothing(client: httpx.Client, seed_settings: ServiceSettings) -> None:
    question, answer = _an_answer(client)
    good = {"question": question, "citation": answer["citation"], "vote": "up"}
    before = client.get("/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text.count("\n")
    cases = [
        ({**good, "vote": "maybe"}, "invalid_vote"),
        ({k: v for k, v in good.items() if k != "citation"}, "invalid_citation"),
        ({**good, "citation": {**answer["citation"], "doc_id": "no-such-doc"}}, "unknown_doc_id"),
        ({**good, "question": ""}, "empty_question"),
        ({**good, "comment": "x" * 2001}, "comment_too_long"),
        ({**good, "reason": "outdated"}, "reason_needs_down_vote"),
        ({**good, "vote": "down", "reason": "boring"}, "invalid_reason"),
    ]
    for body, code in cases:
        response = client.post("/v1/feedback", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == code
    malformed = client.post("/v1/feedback", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    after = client.get("/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text.count("\n")
    assert after == before


REASONS = ("wrong_medicine", "wrong_section", "outdated", "other")


def test_a_down_vote_s_reason_is_stored_and_exported(client: httpx.Client, seed_settings: ServiceSettings) -> None:
    question, answer = _an_answer(client)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    sent = {reason: {"question": question, "citation": answer["citation"], "vote": "down", "reason": reason,
                     "comment": f"because {reason}"} for reason in REASONS}
    ids = {}
    for reason, body in sent.items():
        response = client.post("/v1/feedback", json=body)
        assert response.status_code == 201, response.text
        ids[response.json()["id"]] = reason
    # no reason, or an explicit null, with either vote
    for vote in ("up", "down"):
        for body in ({}, {"reason": None}):
            response = client.post("/v1/feedback", json={"question": question, "citation": answer["citation"],
                                                         "vote": vote, **body})
            assert response.status_code == 201, response.text
            ids[response.json()["id"]] = None

    with sqlite3.connect(seed_settings.feedback_path()) as db:
        stored = dict(db.execute(f"SELECT id, reason FROM feedback WHERE id IN ({','.join('?' * len(ids))})",
                                 list(ids)).fetchall())
    assert stored == ids
    exported = {r["id"]: r for r in map(json.loads, client.get("/v1/admin/feedback", headers=admin).text.splitlines())}
    assert {i: exported[i]["reason"] for i in ids} == ids
    for i, reason in ids.items():
        if reason:
            assert exported[i]["comment"] == f"because {reason}" and exported[i]["citation"] == answer["citation"]


def test_a_reason_needs_a_down_vote_and_one_of_four_values(client: httpx.Client) -> None:
    question, answer = _an_answer(client)
    good = {"question": question, "citation": answer["citation"], "vote": "down"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    before = client.get("/v1/admin/feedback", headers=admin).text
    cases = [
        ({**good, "vote": "up", "reason": "wrong_medicine"}, "reason_needs_down_vote"),
        ({**good, "vote": "up", "reason": "other", "comment": "fine really"}, "reason_needs_down_vote"),
        ({**good, "reason": "Outdated"}, "invalid_reason"),
        ({**good, "reason": ""}, "invalid_reason"),
        ({**good, "reason": 3}, "invalid_reason"),
        ({**good, "reason": ["outdated"]}, "invalid_reason"),
        ({**good, "vote": "up", "reason": "nonsense"}, "invalid_reason"),  # the value is checked first
    ]
    for body, code in cases:
        response = client.post("/v1/feedback", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), body
        message = response.json()["error"]["message"]
        assert "reason" in message and len(message) < 300
    assert client.get("/v1/admin/feedback", headers=admin).text == before


def test_export_is_oldest_first(client: httpx.Client) -> None:
    question, answer = _an_answer(client)
    ids = []
    for vote, comment in (("up", "first"), ("down", "second"), ("up", "third")):
        sent = {"question": question, "citation": answer["citation"], "vote": vote, "comment": comment}
        ids.append(client.post("/v1/feedback", json=sent).json()["id"])
    export = client.get("/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    records = [json.loads(line) for line in export.text.splitlines()]
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    assert [r["created_at"] for r in records] == sorted(r["created_at"] for r in records)
    mine = [r["comment"] for r in records if r["id"] in ids]
    assert mine == ["first", "second", "third"]


# --- the citation is the index's, every field capped, text that is text --------------------------------


def _document_length(client: httpx.Client, doc_id: str) -> int:
    return len(client.get(f"/v1/documents/{doc_id}").json()["text"])


def test_the_stored_citation_and_answer_are_rebuilt_from_the_index(
    client: httpx.Client, seed_settings: ServiceSettings
) -> None:
    question, answer = _an_answer(client)
    cited = answer["citation"]
    forged = {**cited, "title": "T" * 120_000, "source": "https://evil.example", "section": "Forged"}
    sent = {"question": question, "citation": forged, "answer": "not what the document says", "vote": "up"}
    response = client.post("/v1/feedback", json=sent)
    assert response.status_code == 201, response.text

    with sqlite3.connect(seed_settings.feedback_path()) as db:
        stored_answer, stored_citation = db.execute(
            "SELECT answer, citation FROM feedback WHERE id = ?", (response.json()["id"],)
        ).fetchone()
    assert json.loads(stored_citation) == cited  # title, source and section as the index has them
    text = client.get(f"/v1/documents/{cited['doc_id']}").json()["text"]
    assert stored_answer == text[cited["start"]:cited["end"]] == answer["text"]


def test_citations_and_fields_out_of_bounds_get_clear_codes(client: httpx.Client) -> None:
    question, answer = _an_answer(client)
    cited = answer["citation"]
    length = _document_length(client, cited["doc_id"])
    good = {"question": question, "citation": cited, "vote": "down"}
    before = client.get("/v1/admin/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text.count("\n")
    cases = [
        ({**good, "citation": {**cited, "start": -5}}, "citation_out_of_range"),
        ({**good, "citation": {**cited, "end": 1e15}}, "citation_out_of_range"),
        ({**good, "citation": {**cited, "end": length + 1}}, "citation_out_of_range"),
        ({**good, "citation": {**cited, "start": 10, "end": 10}}, "citation_out_of_range"),
        ({**good, "citation": {**cited, "start": 0, "end": 20_001}}, "citation_out_of_range"),
        ({**good, "citation": {**cited, "start": "the beginning"}}, "invalid_citation"),
        ({**good, "citation": {**cited, "doc_id": "d" * 257}}, "doc_id_too_long"),
        ({**good, "citation": {**cited, "doc_id": "no-such-doc"}}, "unknown_doc_id"),
        ({**good, "answer": "a" * 20_001}, "answer_too_long"),
        ({**good, "answer": ["a list"]}, "invalid_answer"),
        ({**good, "comment": "c" * 2001}, "comment_too_long"),
        ({**good, "comment": 42}, "invalid_comment"),
        ({**good, "comment": {"text": "an object"}}, "invalid_comment"),
        ({**good, "question": "q" * 2001}, "question_too_long"),
    ]
    for body, code in cases:
        response = client.post("/v1/feedback", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), body
        assert len(response.text) < 2000  # the message names the problem, it does not echo the input
    after = client.get("/v1/admin/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text.count("\n")
    assert after == before


def test_a_lone_surrogate_is_a_422_not_a_500(client: httpx.Client) -> None:
    question, answer = _an_answer(client)
    cited = answer["citation"]

    def post(**fields: object) -> httpx.Response:
        body = {"question": question, "citation": cited, "vote": "up", **fields}
        # \ud800 written as JSON's escape: a str holding it can't be encoded to send (nor to store)
        raw = json.dumps(body).replace("LONE", "\\ud800")
        return client.post("/v1/feedback", content=raw.encode(), headers={"content-type": "application/json"})

    for fields in ({"question": "What is LONE?"}, {"comment": "LONE"}, {"answer": "LONE"},
                   {"citation": {**cited, "doc_id": "LONE"}}):
        response = post(**fields)
        assert response.status_code == 422, (fields, response.text)
        assert response.json()["error"]["code"] == "invalid_unicode"
    # a title is not read (the index's is stored), so one holding a surrogate is no error
    assert post(citation={**cited, "title": "LONE"}).status_code == 201


def test_feedback_waits_for_the_index(tmp_path) -> None:  # noqa: ANN001
    settings = ServiceSettings(index_dir=tmp_path / "index", feedback_db=tmp_path / "records.sqlite3")
    with LiveServer(create_app(settings, load=False), ready_path="/healthz") as live:
        sent = {"question": "Can I drive?", "vote": "up",
                "citation": {"doc_id": "anything", "title": "", "source": "", "section": None, "start": 0, "end": 5}}
        response = httpx.post(live.url + "/v1/feedback", json=sent)
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    with sqlite3.connect(settings.feedback_db) as db:
        assert db.execute("SELECT COUNT(*) FROM feedback").fetchone() == (0,)

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
    ]
    for body, code in cases:
        response = client.post("/v1/feedback", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == code
    malformed = client.post("/v1/feedback", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    after = client.get("/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text.count("\n")
    assert after == before


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

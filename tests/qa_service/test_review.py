"""The review's reports: questions grouped by wording over a real records file, and the admin endpoints
that serve them as JSON and as CSV / JSON downloads, over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.analysis import terms
from qa_service.records import Records
from qa_service.review import group_asked, group_unanswered, most_asked, unanswered_groups, wording_key
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.qa_service.test_records import CITATION, TickingClock, log, vote

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    opened = Records(tmp_path / "records.sqlite3", now=TickingClock())
    yield opened
    opened.close()


# --- grouping, over a real records file -----------------------------------------------------


def test_questions_with_the_same_search_terms_are_one_group(records: Records) -> None:
    # one question, four ways (order, case, form of the words): two declines, a down vote and a third decline
    log(records, "How is an overdose of baclofen treated?")
    log(records, "baclofen overdose: how treated")
    vote(records, "How is an overdose of baclofen treated?", "down")
    log(records, "HOW IS A BACLOFEN OVERDOSE TREATED", reason="no_passage")
    # the same words about another medicine: another group
    log(records, "How is an overdose of ibuprofen treated?")
    # no search term at all: grouped with its own wording only, not with each other
    log(records, "What is it?")
    log(records, "what is  IT?")
    log(records, "Is it?")
    records.flush()

    groups = unanswered_groups(records)
    by_terms = {group.terms: group for group in groups}
    baclofen = by_terms[tuple(sorted(set(terms(["baclofen overdose treated"])[0])))]
    assert (baclofen.count, baclofen.declined, baclofen.thumbs_down) == (4, 3, 1)
    assert baclofen.question == "How is an overdose of baclofen treated?"  # the wording used most (2)
    assert [(w.question, w.count) for w in baclofen.wordings] == [
        ("How is an overdose of baclofen treated?", 2),
        ("HOW IS A BACLOFEN OVERDOSE TREATED", 1),  # of equals, the latest first
        ("baclofen overdose: how treated", 1),
    ]
    assert baclofen.reasons == ("low_confidence", "no_passage")
    ibuprofen = next(g for g in groups if "ibuprofen" in g.terms)
    assert ibuprofen.count == 1 and baclofen.last_asked < ibuprofen.last_asked

    empty = [g for g in groups if not g.terms]
    assert sorted((g.question, g.count) for g in empty) == [("Is it?", 1), ("what is  IT?", 2)]
    assert len(groups) == 4
    # most frequent first; of equals, the latest first
    assert [g.count for g in groups] == [4, 2, 1, 1]
    assert groups[2].question == "Is it?" and groups[3].question == "How is an overdose of ibuprofen treated?"
    assert unanswered_groups(records, limit=2) == groups[:2]
    assert wording_key("What is it?") != wording_key("Is it?")


def test_a_group_s_counts_are_whole_however_few_groups_are_kept(records: Records) -> None:
    # ten wordings of one question, each asked once, and a question asked three times in one wording:
    # the records' per-wording rows would rank the latter first, the groups rank the former
    for wording in ["dose baclofen child", "child dose baclofen", "Baclofen dose, child?", "baclofen child dose",
                    "dosing baclofen child", "Dose? Baclofen, child.", "child baclofen dose", "baclofen: dose (child)",
                    "child's dose of baclofen", "baclofen dose for a child"]:
        log(records, wording)
    for _ in range(3):
        log(records, "Can I drive while taking baclofen?")
    log(records, "Can I drive while taking baclofen?", answered=True)
    records.flush()

    assert records.unanswered(limit=1)[0].question == "Can I drive while taking baclofen?"
    [top] = unanswered_groups(records, limit=1)
    assert top.count == 10 and len(top.wordings) == 10
    assert group_unanswered(records.unanswered(limit=None), limit=1) == [top]

    asked = most_asked(records)
    assert [(g.count, g.answered) for g in asked] == [(10, 0), (4, 1)]
    assert group_asked(records.asked(), limit=1) == asked[:1]


def test_a_group_s_reasons_are_distinct_ignoring_case(records: Records) -> None:
    log(records, "Is ibuprofen safe?", reason="the documents do not mention ibuprofen")
    log(records, "IBUPROFEN: safe?", reason="the documents do not mention IBUPROFEN")
    log(records, "safe, ibuprofen?", reason="low_confidence")
    records.flush()
    [group] = unanswered_groups(records)
    assert group.count == 3 and group.reasons == ("low_confidence", "the documents do not mention IBUPROFEN")


def test_no_rows_no_groups(records: Records) -> None:
    assert unanswered_groups(records) == [] and most_asked(records) == [] and records.down_votes() == []


def test_down_votes_newest_first_with_reasons(records: Records) -> None:
    first = vote(records, "Can I drive?", "down", "too vague")
    vote(records, "Can I drive?", "up")
    second = records.add_feedback(question="Overdose?", answer="Seek help.", doc_id="ibuprofen",
                                  citation=CITATION, vote="down", comment=None, reason="outdated")
    found = records.down_votes()
    assert [(v.id, v.question, v.comment, v.reason) for v in found] == [
        (second, "Overdose?", None, "outdated"), (first, "Can I drive?", "too vague", None)]
    assert found[0].citation == CITATION and found[0].answer == "Seek help."
    assert records.down_votes(limit=1) == found[:1]


# --- over HTTP: a server with a records file of its own --------------------------------------


@pytest.fixture(scope="module")
def review_server(tmp_path_factory: pytest.TempPathFactory, seed_settings: ServiceSettings) -> Iterator[LiveServer]:
    from qa_service.api import create_app

    path = tmp_path_factory.mktemp("review-records") / "records.sqlite3"
    with LiveServer(create_app(seed_settings.model_copy(update={"feedback_db": path}))) as live:
        yield live


@pytest.fixture(scope="module")
def http(review_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=review_server.url, timeout=60) as client:
        yield client


ANSWERED = "How is an overdose of baclofen treated?"
DECLINED = ("Is ibuprofen safe with alcohol?", "ibuprofen with alcohol: safe?", "IS IBUPROFEN SAFE WITH ALCOHOL")
INJECTED = ("=HYPERLINK(\"http://evil.example\",\"click\") ibuprofen", "+1+1 ibuprofen cmd", "-2+3 warfarin dose",
            "@SUM(A1) warfarin")


@pytest.fixture(scope="module")
def asked(http: httpx.Client) -> dict[str, list[dict]]:
    """Real asks (answered and declined) and real thumbs-down, through the API: the responses by question."""
    responses: dict[str, list[dict]] = {}
    for question in [ANSWERED, ANSWERED, *DECLINED, *INJECTED, DECLINED[0]]:
        response = http.post("/v1/ask", json={"question": question})
        assert response.status_code == 200, response.text
        responses.setdefault(question, []).append(response.json())
    answer = responses[ANSWERED][0]["answers"][0]
    for reason, comment in (("wrong_section", "=1+1 not the treatment"), (None, None), ("outdated", "old leaflet")):
        sent = {"question": ANSWERED, "citation": answer["citation"], "vote": "down", "reason": reason,
                "comment": comment}
        assert http.post("/v1/feedback", json=sent).status_code == 201
    assert http.post("/v1/feedback", json={"question": ANSWERED, "citation": answer["citation"],
                                           "vote": "up"}).status_code == 201
    return responses


def test_grouped_unanswered_counts_come_from_the_asks(http: httpx.Client, asked: dict[str, list[dict]]) -> None:
    groups = http.get("/v1/admin/unanswered/groups", headers=ADMIN, params={"limit": 100})
    assert groups.status_code == 200 and groups.headers["cache-control"] == "no-store"
    found = groups.json()
    declined = {q: sum(not r["answered"] for r in rs) for q, rs in asked.items()}
    assert all(declined[q] for q in DECLINED)  # the corpus has no ibuprofen: every wording is declined
    ibuprofen = next(g for g in found if {w["question"] for w in g["wordings"]} == set(DECLINED))
    assert ibuprofen["declined"] == ibuprofen["count"] == sum(declined[q] for q in DECLINED) == 4
    assert ibuprofen["question"] == DECLINED[0] and ibuprofen["thumbs_down"] == 0
    assert ibuprofen["terms"] == sorted(set(terms([DECLINED[0]])[0]))
    # the answered question: in the report for its three down votes (one up vote does not count)
    overdose = next(g for g in found if g["question"] == ANSWERED)
    assert (overdose["declined"], overdose["thumbs_down"]) == (sum(declined[q] for q in [ANSWERED]), 3)
    assert sum(g["count"] for g in found) == sum(declined.values()) + 3


def test_thumbs_down_lists_reasons_comments_and_citations(http: httpx.Client, asked: dict[str, list[dict]]) -> None:
    response = http.get("/v1/admin/thumbs-down", headers=ADMIN)
    assert response.status_code == 200, response.text
    votes = response.json()
    answer = asked[ANSWERED][0]["answers"][0]
    assert [(v["reason"], v["comment"]) for v in votes] == [
        ("outdated", "old leaflet"), (None, None), ("wrong_section", "=1+1 not the treatment")]
    for v in votes:
        assert v["question"] == ANSWERED and v["citation"] == answer["citation"] and v["answer"] == answer["text"]
    assert [v["id"] for v in votes] == sorted((v["id"] for v in votes), reverse=True)


def test_most_asked_counts_every_ask(http: httpx.Client, asked: dict[str, list[dict]]) -> None:
    response = http.get("/v1/admin/most-asked", headers=ADMIN, params={"limit": 100})
    assert response.status_code == 200, response.text
    found = response.json()
    assert sum(g["count"] for g in found) == sum(len(rs) for rs in asked.values())
    assert sum(g["answered"] for g in found) == sum(r["answered"] for rs in asked.values() for r in rs)
    top = found[0]
    assert top["count"] == 4 and {w["question"] for w in top["wordings"]} == set(DECLINED)
    overdose = next(g for g in found if g["question"] == ANSWERED)
    assert overdose["count"] == overdose["answered"] == 2


def neutralised(cell: str) -> str:
    """A text cell as the export writes it: one that would start a spreadsheet formula, after an apostrophe."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def download(http: httpx.Client, path: str, fmt: str) -> httpx.Response:
    response = http.get(path, headers=ADMIN, params={"limit": 10000, "format": fmt})
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    stem = path.rsplit("/", 2)[-2 if path.endswith("/groups") else -1]
    assert re.fullmatch(rf'attachment; filename="{stem}-\d{{4}}-\d{{2}}-\d{{2}}\.{fmt}"', disposition), disposition
    assert response.headers["cache-control"] == "no-store"
    media = {"csv": "text/csv; charset=utf-8", "json": "application/json"}[fmt]
    assert response.headers["content-type"] == media
    return response


def csv_rows(content: bytes) -> list[dict[str, str]]:
    """A downloaded CSV file's rows (UTF-8 with a byte-order mark, CRLF line ends) by its header."""
    assert content.startswith(b"\xef\xbb\xbf")
    text = content.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text, newline="")))


UNANSWERED_CSV = ["question", "count", "declined", "thumbs_down", "last_asked", "reasons", "terms", "wordings"]
THUMBS_DOWN_CSV = ["id", "created_at", "question", "reason", "comment", "answer", "doc_id", "title", "section",
                   "start", "end", "source"]


def unanswered_csv(report: list[dict]) -> list[dict[str, str]]:
    """The CSV rows README documents for the JSON report of the unanswered groups."""
    return [dict(zip(UNANSWERED_CSV, (
        neutralised(g["question"]), str(g["count"]), str(g["declined"]), str(g["thumbs_down"]), g["last_asked"],
        "; ".join(g["reasons"]), " ".join(g["terms"]),
        neutralised("\n".join(f"{w['question']} ({w['count']})" for w in g["wordings"])),
    ), strict=True)) for g in report]


def thumbs_down_csv(report: list[dict]) -> list[dict[str, str]]:
    """The CSV rows README documents for the JSON report of the thumbs-down votes."""
    return [dict(zip(THUMBS_DOWN_CSV, (
        str(v["id"]), v["created_at"], neutralised(v["question"]), v["reason"] or "", neutralised(v["comment"] or ""),
        neutralised(v["answer"] or ""), v["citation"]["doc_id"], neutralised(v["citation"]["title"]),
        neutralised(v["citation"]["section"] or ""), str(v["citation"]["start"]), str(v["citation"]["end"]),
        neutralised(v["citation"]["source"]),
    ), strict=True)) for v in report]


def test_unanswered_export_as_json_and_csv_is_the_report(http: httpx.Client, asked: dict[str, list[dict]]) -> None:
    report = http.get("/v1/admin/unanswered/groups", headers=ADMIN, params={"limit": 10000}).json()
    assert download(http, "/v1/admin/unanswered/groups", "json").json() == report
    rows = csv_rows(download(http, "/v1/admin/unanswered/groups", "csv").content)
    assert rows == unanswered_csv(report) and list(rows[0]) == UNANSWERED_CSV
    # every question that would be a formula is one no more
    questions = {row["question"] for row in rows}
    assert not any(asked[question][0]["answered"] for question in INJECTED)  # no such medicine: in the report
    for question in INJECTED:
        assert "'" + question in questions and question not in questions


def test_thumbs_down_export_as_json_and_csv_is_the_report(http: httpx.Client, asked: dict[str, list[dict]]) -> None:
    report = http.get("/v1/admin/thumbs-down", headers=ADMIN, params={"limit": 10000}).json()
    assert download(http, "/v1/admin/thumbs-down", "json").json() == report
    rows = csv_rows(download(http, "/v1/admin/thumbs-down", "csv").content)
    assert rows == thumbs_down_csv(report) and list(rows[0]) == THUMBS_DOWN_CSV
    assert "'=1+1 not the treatment" in {row["comment"] for row in rows}


def test_the_reports_need_the_admin_token_and_check_their_parameters(http: httpx.Client) -> None:
    for path in ("/v1/admin/unanswered/groups", "/v1/admin/thumbs-down", "/v1/admin/most-asked"):
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            response = http.get(path, headers=headers, params={"format": "csv"})
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized", path
            assert "content-disposition" not in response.headers
        assert http.get(path, headers=ADMIN, params={"limit": 0}).status_code == 422
        assert http.get(path, headers=ADMIN, params={"limit": 10001}).status_code == 422
    for path in ("/v1/admin/unanswered/groups", "/v1/admin/thumbs-down"):
        bad = http.get(path, headers=ADMIN, params={"format": "xlsx"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_format"
        assert "content-disposition" not in bad.headers


def test_the_review_page_is_public_and_locked_down(http: httpx.Client) -> None:
    page = http.get("/admin")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["form-action"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'" and directives["trusted-types"] == "'none'"
    assert "unsafe" not in policy
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text and "onclick" not in page.text
    for name, media in (("/admin.js", "text/javascript; charset=utf-8"), ("/admin.css", "text/css; charset=utf-8")):
        response = http.get(name)
        assert response.status_code == 200 and response.headers["content-type"] == media
        assert response.headers["content-security-policy"] == policy
    script = http.get("/admin.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script
    assert json.dumps(ADMIN_TOKEN) not in page.text + script

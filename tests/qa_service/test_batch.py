"""Batches over real HTTP: POST /v1/search/batch and /v1/ask/batch take NDJSON or a JSON list and stream
one line per query in input order, each result the single call's body; a bad line gets its own error line;
each query counts against the rate limit; the batch body limit is the batches' own."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer

NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(queries: list) -> str:
    return "".join(json.dumps(q) + "\n" for q in queries)


def lines(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


def timeless(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "took_ms"}


@pytest.fixture(scope="module")
def uncached(seed_settings: ServiceSettings) -> Iterator[httpx.Client]:
    """A server without the answer cache: every single call and every batch line does the whole work."""
    settings = seed_settings.model_copy(update={"serving": seed_settings.serving.model_copy(update={"answer_cache": 0})})
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=120) as http:
        yield http


def searches(client: httpx.Client) -> list[dict]:
    docs = client.get("/v1/documents").json()
    one = docs[0]
    section = next(t for t in one["sections"] if t)
    return [
        {"q": "how is an overdose treated"},
        {"q": "maximum daily dose", "k": 5, "offset": 5},
        {"q": "side effects in the elderly", "k": 20, "collapse": "none", "explain": True},
        {"q": "dose", "k": 100, "filter": {"section": [section]}, "highlight": True},
        {"q": "How long does baclofen stay in the system?", "subjects": "off", "explain": True},
        {"q": "storage of the tablets", "doc_ids": [one["doc_id"]], "collapse": "document"},
        {"q": "dose", "filter": {"subject": [one["subjects"][0]], "format": [one["format"]]}, "k": 3, "offset": 2},
        {"q": "overdose symptoms drowsiness", "highlight": True, "explain": True, "k": 7},
        {"q": "nothing here", "filter": {"subject": ["no such medicine"]}},
    ]


QUESTIONS = [
    {"question": "How is an overdose of baclofen treated?", "explain": True},
    {"question": "What are the symptoms of an overdose?", "highlight": True, "top_k": 5},
    {"question": "How long does baclofen stay in the body?", "subjects": "off"},
    {"question": "What is the dose of ibuprofen for a child?"},
    {"question": "dose?", "filter": {"format": ["pdf-none"]}},
]


def test_each_line_is_the_single_call_s_body_in_input_order(uncached: httpx.Client) -> None:
    queries = searches(uncached)
    single = [timeless(uncached.post("/v1/search", json=q).json()) for q in queries]
    sent = [{"qid": f"s{i}", **q} for i, q in enumerate(queries)]
    got = lines(uncached.post("/v1/search/batch", content=ndjson(sent), headers=NDJSON))
    assert [line["qid"] for line in got] == [q["qid"] for q in sent]
    assert [timeless(line["result"]) for line in got] == single
    assert all(set(line) == {"qid", "result"} for line in got)
    # a JSON list is the same batch; without qids, each query's position (from 1) is its id
    listed = lines(uncached.post("/v1/search/batch", json=queries))
    assert [line["qid"] for line in listed] == list(range(1, len(queries) + 1))
    assert [timeless(line["result"]) for line in listed] == single

    answers = [timeless(uncached.post("/v1/ask", json=q).json()) for q in QUESTIONS]
    sent = [{"qid": 100 + i, **q} for i, q in enumerate(QUESTIONS)]
    got = lines(uncached.post("/v1/ask/batch", content=ndjson(sent), headers=NDJSON))
    assert [line["qid"] for line in got] == [100 + i for i in range(len(QUESTIONS))]
    assert [timeless(line["result"]) for line in got] == answers
    assert got[0]["result"]["answered"] and not got[-1]["result"]["answered"]


def test_question_may_stand_for_q_and_q_for_question(client: httpx.Client) -> None:
    search = lines(client.post("/v1/search/batch", json=[{"question": "overdose", "k": 3}, {"q": "overdose", "k": 3}]))
    assert timeless(search[0]["result"]) == timeless(search[1]["result"])
    assert search[0]["result"]["query"] == "overdose" and len(search[0]["result"]["results"]) == 3
    ask = lines(client.post("/v1/ask/batch", json=[{"q": "How is an overdose treated?"}]))
    assert ask[0]["result"]["question"] == "How is an overdose treated?"
    both = lines(client.post("/v1/search/batch", json=[{"q": "a", "question": "b"}]))
    assert both[0]["error"]["code"] == "invalid_request"


def test_each_result_is_one_line_to_every_line_splitter(client: httpx.Client) -> None:
    # JSON writes U+2028, U+2029 and NEL as they are; str.splitlines would break a line at them
    queries = [{"qid": "x\u2028", "q": "overdose\u2028treatment"}, {"q": "dose\x85 tablets\u2029"}]
    response = client.post("/v1/search/batch", json=queries)
    got = lines(response)
    assert len(got) == 2 and response.text.count("\n") == 2
    assert got[0]["qid"] == "x\u2028" and got[0]["result"]["query"] == "overdose\u2028treatment"
    assert got[1]["result"]["query"] == "dose\x85 tablets\u2029"


def test_a_bad_line_gets_its_own_error_and_the_others_are_answered(client: httpx.Client) -> None:
    version = client.get("/readyz").json()["index_version"]
    body = "\n".join([
        json.dumps({"qid": "ok1", "q": "overdose"}),
        "{not json",
        json.dumps({"qid": "no-q", "k": 3}),
        json.dumps({"qid": "k0", "q": "dose", "k": 0}),
        "",  # blank lines are skipped (the line numbers are the body's)
        json.dumps({"qid": "filter", "q": "dose", "filter": {"colour": ["red"]}}),
        json.dumps({"qid": "pinned", "q": "dose", "index_version": "0" * 12}),
        json.dumps({"qid": "doc", "q": "dose", "doc_ids": ["no-such-document"]}),
        json.dumps([1, 2]),
        json.dumps({"qid": {"an": "object"}, "q": "dose"}),
        json.dumps({"qid": 7.5, "q": "dose", "offset": -1}),
        json.dumps({"qid": "blank", "q": "   "}),
        json.dumps({"qid": "ok2", "q": "maximum daily dose", "index_version": version}),
    ]) + "\n"
    got = lines(client.post("/v1/search/batch", content=body, headers=NDJSON))
    errors = {line["qid"]: line["error"]["code"] for line in got if "error" in line}
    assert errors == {
        2: "malformed_json", "no-q": "invalid_query", "k0": "invalid_k", "filter": "invalid_filter",
        "pinned": "index_version_mismatch", "doc": "unknown_doc_id", 9: "invalid_body",
        10: "invalid_request", 7.5: "invalid_offset", "blank": "invalid_query",
    }
    assert [line["qid"] for line in got] == ["ok1", 2, "no-q", "k0", "filter", "pinned", "doc", 9, 10, 7.5,
                                             "blank", "ok2"]
    assert version in next(line for line in got if line["qid"] == "pinned")["error"]["message"]
    for line in got:
        assert set(line) == {"qid", "result"} or (set(line) == {"qid", "error"} and set(line["error"]) == {"code", "message"})
    assert [line["qid"] for line in got if "result" in line] == ["ok1", "ok2"]
    assert all(line["result"]["results"] for line in got if "result" in line)

    asked = lines(client.post("/v1/ask/batch", json=[
        {"question": "How is an overdose treated?"}, {"top_k": 2}, {"question": "x" * 2001}, {"question": ""},
        {"question": "dose?", "top_k": 21}, "a string",
    ]))
    assert ["result" in asked[0]] + [line["error"]["code"] for line in asked[1:]] == [
        True, "missing_question", "question_too_long", "empty_question", "invalid_top_k", "invalid_body"]


def test_a_batch_that_can_t_be_read_is_refused_whole(client: httpx.Client) -> None:
    for body, headers in (("", NDJSON), ("\n  \n", NDJSON), ("[]", {"Content-Type": "application/json"})):
        refused = client.post("/v1/search/batch", content=body, headers=headers)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "empty_batch", body
    broken = client.post("/v1/ask/batch", content='[{"question": "dose?"', headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"
    deep = client.post("/v1/search/batch", content="[" * 100_000 + "]" * 100_000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "malformed_json"
    lines_ = lines(client.post("/v1/search/batch", content='{"q": "dose"}\n' + "[" * 100_000 + "\n", headers=NDJSON))
    assert "result" in lines_[0] and lines_[1]["error"]["code"] == "malformed_json"
    single = client.post("/v1/search/batch", json={"q": "dose"})
    assert single.status_code == 422 and single.json()["error"]["code"] == "invalid_body"
    assert "NDJSON" in single.json()["error"]["message"]


def test_every_line_is_logged_as_the_single_call_is(client: httpx.Client) -> None:
    question = "Can a pet hamster take zorbexamol-batch-logged?"
    got = lines(client.post("/v1/ask/batch", json=[{"question": question}, {"q": question.upper()},
                                                     {"question": question, "top_k": 0}]))
    assert [("result" in line) for line in got] == [True, True, False]
    assert not got[0]["result"]["answered"]
    report = client.get("/v1/admin/unanswered", params={"limit": 1000},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    mine = [row for row in report if row["question"].casefold() == question.casefold()]
    assert len(mine) == 1 and mine[0]["declined"] == 2, mine


@pytest.fixture(scope="module")
def limited(seed_settings: ServiceSettings) -> Iterator[LiveServer]:
    settings = seed_settings.model_copy(update={
        "rate_limit": "5/minute", "api_keys": ["batch-key-1", "batch-key-2"],
    })
    with LiveServer(create_app(settings)) as live:
        yield live


def test_each_query_counts_against_the_rate_limit(limited: LiveServer) -> None:
    with httpx.Client(base_url=limited.url, timeout=60) as http:
        assert http.post("/v1/search/batch", json=[{"q": "dose"}]).status_code == 401  # the key is checked
        key = {"Authorization": "Bearer batch-key-1"}
        got = lines(http.post("/v1/search/batch", json=[{"qid": i, "q": "dose"} for i in range(8)], headers=key))
        assert [line["qid"] for line in got] == list(range(8))
        assert ["result" in line for line in got] == [True] * 5 + [False] * 3
        assert {line["error"]["code"] for line in got[5:]} == {"rate_limited"}
        assert "5/minute" in got[5]["error"]["message"]
        spent = http.post("/v1/search/batch", json=[{"q": "dose"}], headers=key)  # nothing left: 429 whole
        assert spent.status_code == 429 and spent.json()["error"]["code"] == "rate_limited"
        assert int(spent.headers["Retry-After"]) >= 1
        assert http.post("/v1/search", json={"q": "dose"}, headers=key).status_code == 429
        # another key has its own budget, spent alike by single calls and lines
        other = {"Authorization": "Bearer batch-key-2"}
        assert http.post("/v1/ask", json={"question": "dose?"}, headers=other).status_code == 200
        got = lines(http.post("/v1/ask/batch", content=ndjson([{"question": "dose?"}] * 6), headers={**other, **NDJSON}))
        assert ["result" in line for line in got] == [True] * 4 + [False] * 2


@pytest.fixture(scope="module")
def bounded(seed_settings: ServiceSettings) -> Iterator[LiveServer]:
    settings = seed_settings.model_copy(update={
        "max_body_bytes": 2048, "max_batch_body_bytes": 16384, "max_batch_queries": 40,
    })
    with LiveServer(create_app(settings)) as live:
        yield live


def test_the_batch_body_limit_and_query_cap_are_the_batches_own(bounded: LiveServer) -> None:
    with httpx.Client(base_url=bounded.url, timeout=120) as http:
        padded = {"q": "dose " + "x" * 300, "k": 1}
        body = ndjson([padded] * 30)  # over QA_MAX_BODY_BYTES, under QA_MAX_BATCH_BODY_BYTES
        assert 2048 < len(body.encode()) < 16384
        assert len(lines(http.post("/v1/search/batch", content=body, headers=NDJSON))) == 30
        single = http.post("/v1/search", json={"q": "dose " + "x" * 2100})  # the other routes keep theirs
        assert single.status_code == 413 and single.json()["error"]["code"] == "body_too_large"
        large = ndjson([{"q": "dose " + "x" * 1000}] * 17)
        assert len(large.encode()) > 16384
        for path in ("/v1/search/batch", "/v1/ask/batch"):
            refused = http.post(path, content=large, headers=NDJSON)
            assert refused.status_code == 413 and refused.json()["error"]["code"] == "body_too_large"
            assert "16384" in refused.json()["error"]["message"]
        # a body sent without a length is cut off at the limit too
        chunks = iter([large.encode()[:9000], large.encode()[9000:]])
        streamed = http.post("/v1/search/batch", content=chunks, headers=NDJSON)
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "body_too_large"
        too_many = http.post("/v1/search/batch", content=ndjson([{"q": "dose"}] * 41), headers=NDJSON)
        assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_queries"
        assert "40" in too_many.json()["error"]["message"]
        listed = http.post("/v1/ask/batch", json=[{"question": "dose?"}] * 41)
        assert listed.status_code == 413 and listed.json()["error"]["code"] == "too_many_queries"
        assert len(lines(http.post("/v1/search/batch", json=[{"q": "dose"}] * 40))) == 40


def test_the_batch_endpoints_are_described(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operation, line_field in (("/v1/search/batch", "search_batch", "q"), ("/v1/ask/batch", "ask_batch", "question")):
        post = paths[path]["post"]
        assert post["operationId"] == operation
        body = post["requestBody"]["content"]
        assert set(body) == {"application/x-ndjson", "application/json"}
        item = body["application/x-ndjson"]["schema"]["items"]
        assert {line_field, "qid"} <= set(item["properties"])
        assert "application/x-ndjson" in post["responses"]["200"]["content"]


def test_the_readme_s_batch_examples_run(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The curl batches of "For researchers" run as written (curl through bash against a real server), and
    the client's batch example prints one line a topic."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## For researchers"):]
    shell = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    assert "/v1/search/batch" in shell and "/v1/ask/batch" in shell
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", shell.replace("localhost:8000", server.url)],
                          capture_output=True, text=True, timeout=120, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    searched, asked = lines[:2], lines[2:]
    assert [line["qid"] for line in searched] == ["a", "b"] and all(line["result"]["results"] for line in searched)
    assert [line["qid"] for line in asked] == [1, 2] and all("answered" in line["result"] for line in asked)
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    topics = [("t1", "overdose treatment"), ("t2", "half-life of baclofen")]
    exec(example.replace("http://127.0.0.1:8000", server.url), {"topics": topics})  # noqa: S102 - our own README
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in printed] == ["t1", "t2"] and all(":" in line for line in printed)

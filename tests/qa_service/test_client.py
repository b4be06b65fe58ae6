"""The Python client (qa_service/client.py) over real HTTP, and held to the app's OpenAPI schema.

Over a real server: each method returns what the raw HTTP call returns (as the API's own models), every
error answers as a QAError with the envelope's status, code and message, and every request it sends
is an operation of the schema with the schema's parameters. Against ``app.openapi()``: every operation
has a meaningful operationId of its own, every client method is the schema's operation of that id
(same method and path, same parameters, same required ones, same response model), and every public
operation but an explicit few has a client method.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import re
import typing
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from pydantic import BaseModel

from qa_service.api import create_app
from qa_service.api.schemas import (
    AskResponse, Citation, FilterSpec, SearchBatchLine, SearchResponse,
)
from qa_service.client import OPERATIONS, QAClient, QAError
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer

APP = create_app(ServiceSettings(), load=False)
SCHEMA = APP.openapi()
LEFT_OUT = {
    # the operators' endpoints, for probes and Prometheus, not for programs asking questions
    "check_health", "check_readiness", "get_metrics",
}
"""The public operations (not the admin token's) the client has no method for."""
QUESTION = "How is an overdose of baclofen treated?"


def operations() -> dict[str, tuple[str, str, dict]]:
    """operationId: (HTTP method, path, the operation) of every operation of the schema."""
    return {op["operationId"]: (method.upper(), path, op)
            for path, item in SCHEMA["paths"].items() for method, op in item.items()}


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_schema(op: dict) -> dict:
    """The operation's JSON request body (an object's schema; a batch's: one line's), or an empty one."""
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body and body.get("type") == "array":
        return body["items"]
    return resolve(body) if body else {"properties": {}, "required": []}


def is_batch(op: dict) -> bool:
    return "application/x-ndjson" in op.get("requestBody", {}).get("content", {})


def schema_parameters(op: dict) -> tuple[set[str], set[str]]:
    """Every parameter of the operation (path, query and the body's fields) and the required ones."""
    params = {p["name"] for p in op.get("parameters", [])}
    required = {p["name"] for p in op.get("parameters", []) if p.get("required")}
    body = body_schema(op)
    return params | set(body["properties"]), required | set(body.get("required", []))


# --- the schema --------------------------------------------------------------------------------


def test_every_operation_has_a_meaningful_operation_id_of_its_own() -> None:
    ids = [op.get("operationId") for item in SCHEMA["paths"].values() for op in item.values()]
    assert all(ids) and len(ids) == len(set(ids)), ids
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids
    generated = {generate_unique_id(route) for route in APP.routes if isinstance(route, APIRoute)}
    assert not set(ids) & generated, "an operation has FastAPI's generated id (e.g. ask_v1_ask_post): name it"
    assert {"ask", "search", "search_post", "get_passage", "list_documents", "get_document", "send_feedback",
            "export_feedback", "reload_index"} <= set(ids)


def test_every_client_method_is_the_schema_s_operation_of_its_name() -> None:
    ops = operations()
    methods = {name for name, value in vars(QAClient).items() if callable(value) and not name.startswith("_")}
    assert methods - {"close"} == set(OPERATIONS)
    for name, (method, path) in OPERATIONS.items():
        assert name in ops, f"{name} is no operationId of the schema"
        assert ops[name][:2] == (method, path), name


def test_every_public_operation_has_a_client_method_but_a_listed_few() -> None:
    ops = operations()
    admin = {i for i, (_, _, op) in ops.items() if any("AdminToken" in s for s in op.get("security", []))}
    assert {path for i, (_, path, _) in ops.items() if i in admin} == {
        "/v1/admin/reload", "/v1/admin/feedback", "/v1/admin/unanswered", "/v1/admin/queries", "/v1/feedback",
        "/v1/admin/unanswered/groups", "/v1/admin/thumbs-down", "/v1/admin/most-asked"}
    assert LEFT_OUT <= set(ops) and not LEFT_OUT & admin  # the list names what there is
    missing = set(ops) - admin - LEFT_OUT - set(OPERATIONS)
    assert not missing, f"public operations without a client method: {missing} (add one, or list it in LEFT_OUT)"


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_client_s_parameters_and_response_are_the_schema_s(name: str) -> None:
    _, _, op = operations()[name]
    method = getattr(QAClient, name)
    signature = inspect.signature(method)
    params = {p.name: p for p in signature.parameters.values() if p.name != "self"}
    hints = typing.get_type_hints(method)
    status, response = next((s, r) for s, r in op["responses"].items() if s.startswith("2"))
    if is_batch(op):  # one parameter, the lines (the body's items), and an iterator of the answer's lines
        (lines,) = params
        line_models = [t for t in typing.get_args(typing.get_args(hints[lines])[0]) if isinstance(t, type)
                       and issubclass(t, BaseModel)]
        assert [m.__name__ for m in line_models] == [body_schema(op)["title"]], name
        assert set(line_models[0].model_fields) == set(body_schema(op)["properties"]), name
        returns = hints["return"]
        assert typing.get_origin(returns) is collections.abc.Iterator, name
        (item,) = typing.get_args(returns)
        items = response["content"]["application/x-ndjson"]["schema"]["items"]
        assert item.__name__ == items["title"] and set(item.model_fields) == set(items["properties"]), name
        return
    wanted, required = schema_parameters(op)
    assert set(params) == wanted, name
    assert {n for n, p in params.items() if p.default is inspect.Parameter.empty} == required, name
    # the return is the model of the operation's success response
    content = response["content"]["application/json"]["schema"]
    returns = hints["return"]
    if content.get("type") == "array":
        assert typing.get_origin(returns) is list
        returns, content = typing.get_args(returns)[0], content["items"]
    assert issubclass(returns, BaseModel) and content["$ref"].endswith("/" + returns.__name__), name
    assert status == ("201" if name == "send_feedback" else "200")


# --- over HTTP ---------------------------------------------------------------------------------


class Recording(httpx.HTTPTransport):
    """A real HTTP transport that keeps every request sent through it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


def operation_of(request: httpx.Request) -> tuple[str, dict]:
    """The schema's operation a request calls: its operationId and the operation."""
    path = request.url.raw_path.decode().split("?")[0]
    for op_id, (method, template, op) in operations().items():
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
        if method == request.method and re.fullmatch(pattern, path):
            return op_id, op
    raise AssertionError(f"{request.method} {path} is no operation of the schema")


def assert_sent_as_the_schema_says(sent: list[httpx.Request]) -> None:
    called = set()
    for request in sent:
        op_id, op = operation_of(request)
        called.add(op_id)
        query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert set(request.url.params) <= query, (op_id, request.url)
        if request.content:
            lines = request.content.splitlines() if is_batch(op) else [request.content]
            for line in lines:
                assert_fields_of(op_id, op, json.loads(line))
        else:
            assert not body_schema(op)["properties"], op_id
    assert called == set(OPERATIONS)  # every method was checked


def assert_fields_of(op_id: str, op: dict, body: dict) -> None:
    """Every field of a body (or of a batch's line) is the schema's, the nested objects' too (filter, citation)."""
    properties = body_schema(op)["properties"]
    assert set(body) <= set(properties), (op_id, body)
    for field, value in body.items():
        nested = next((resolve(s) for s in properties[field].get("anyOf", [properties[field]])
                       if "$ref" in s or "properties" in s), {})
        if isinstance(value, dict):
            assert nested and set(value) <= set(nested["properties"]), (op_id, field, value)


def dumped(result: BaseModel | list[BaseModel]) -> object:
    """A response model as JSON data, without the time it took (the one field two calls differ in)."""
    if isinstance(result, list):
        return [item.model_dump(mode="json") for item in result]
    data = result.model_dump(mode="json")
    data.pop("took_ms", None)
    return data


def raw(client: httpx.Client, method: str, url: str, **kwargs: object) -> object:
    response = client.request(method, url, **kwargs)
    assert response.is_success, response.text
    data = response.json()
    if isinstance(data, dict):
        data.pop("took_ms", None)
    return data


def test_each_method_returns_what_the_raw_http_call_returns(server: LiveServer, client: httpx.Client) -> None:
    transport = Recording()
    with QAClient(server.url, transport=transport) as qa:
        documents = qa.list_documents()
        assert dumped(documents) == raw(client, "GET", "/v1/documents") and len(documents) >= 2
        one = documents[0]
        document = qa.get_document(one.doc_id)
        assert dumped(document) == raw(client, "GET", f"/v1/documents/{one.doc_id}")
        assert document.text and document.doc_id == one.doc_id
        covered = qa.get_coverage()
        assert dumped(covered) == raw(client, "GET", "/v1/coverage") and covered.documents == len(documents)

        asked = qa.ask(QUESTION, top_k=5, highlight=True, explain=True, filter=FilterSpec(subject=one.subjects[:1]))
        body = {"question": QUESTION, "top_k": 5, "highlight": True, "explain": True,
                "filter": {"subject": one.subjects[:1]}}
        assert isinstance(asked, AskResponse) and asked.answered and asked.answers
        assert dumped(asked) == raw(client, "POST", "/v1/ask", json=body)
        assert any(answer.highlights for answer in asked.answers)
        plain = qa.ask(QUESTION)  # the server's defaults: nothing but the question is sent
        assert dumped(plain) == raw(client, "POST", "/v1/ask", json={"question": QUESTION})
        assert len(plain.answers) <= 3 and all(a.highlights == [] and a.explain is None for a in plain.answers)

        sections = [title for title in one.sections if title][:2]
        found = qa.search("overdose", k=5, doc_id=[one.doc_id], section=sections, highlight=True, subjects="off")
        params = {"q": "overdose", "k": 5, "doc_id": [one.doc_id], "section": sections, "highlight": "true",
                  "subjects": "off"}
        assert isinstance(found, SearchResponse) and found.results
        assert dumped(found) == raw(client, "GET", "/v1/search", params=params)
        assert {r.citation.section for r in found.results} <= set(sections)

        posted = qa.search_post("maximum daily dose", k=3, offset=1, collapse="document", explain=True,
                                filter={"format": [one.format]})
        body = {"q": "maximum daily dose", "k": 3, "offset": 1, "collapse": "document", "explain": True,
                "filter": {"format": [one.format]}}
        assert dumped(posted) == raw(client, "POST", "/v1/search", json=body) and posted.offset == 1

        passage = qa.get_passage(found.results[0].passage_id)
        assert dumped(passage) == raw(client, "GET", f"/v1/passages/{found.results[0].passage_id}")
        assert passage.text == found.results[0].text

        # the batches: lines as models or dicts, streamed back in input order, each the single call's
        # body and the raw batch's line; a bad line is its own error line
        searches = [SearchBatchLine(qid="a", q="maximum daily dose", k=3, filter=FilterSpec(format=[one.format])),
                    {"qid": "b", "q": "overdose", "k": 101}, {"qid": "c", "q": "overdose", "collapse": "document"}]
        streamed = list(qa.search_batch(searches))
        assert [item.qid for item in streamed] == ["a", "b", "c"]
        assert streamed[1].result is None and streamed[1].error.code == "invalid_k"
        assert dumped(streamed[0].result) == raw(client, "POST", "/v1/search", json={
            "q": "maximum daily dose", "k": 3, "filter": {"format": [one.format]}})
        assert dumped(streamed[2].result) == raw(client, "POST", "/v1/search", json={"q": "overdose",
                                                                                     "collapse": "document"})
        ndjson = "".join(json.dumps(line if isinstance(line, dict) else line.model_dump(exclude_none=True)) + "\n"
                         for line in searches)
        lines = client.post("/v1/search/batch", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        def timeless(item: dict) -> dict:
            return item | ({"result": item["result"] | {"took_ms": 0}} if item.get("result") else {})
        assert [timeless(json.loads(line)) for line in lines.text.splitlines()] == [
            timeless(item.model_dump(mode="json", exclude_unset=True)) for item in streamed]
        asks = list(qa.ask_batch([{"qid": 7, "question": QUESTION, "highlight": True}, {"question": "   "}]))
        assert [item.qid for item in asks] == [7, 2] and asks[1].error.code == "empty_question"
        assert dumped(asks[0].result) == raw(client, "POST", "/v1/ask", json={"question": QUESTION, "highlight": True})

        answer = asked.answers[0]
        assert isinstance(answer.citation, Citation)
        question = "client test: is this answer helpful?"
        stored = qa.send_feedback(question, answer.citation, "down", answer=answer.text, comment="from the client",
                                  reason="wrong_section")
        raw_vote = raw(client, "POST", "/v1/feedback", json={"question": question, "citation": answer.citation.model_dump(),
                                                               "vote": "up"})
        assert set(raw_vote) == set(type(stored).model_fields) and raw_vote["id"] != stored.id
        export = client.get("/v1/admin/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        rows = {row["id"]: row for row in map(json.loads, export.text.splitlines())}
        mine, theirs = rows[stored.id], rows[raw_vote["id"]]
        assert (mine["question"], mine["vote"], mine["comment"], mine["answer"], mine["reason"]) == (
            question, "down", "from the client", answer.text, "wrong_section")
        assert (theirs["vote"], theirs["reason"]) == ("up", None)
        assert mine["citation"] == theirs["citation"]  # the same span, stored from either
    assert_sent_as_the_schema_says(transport.sent)


def test_errors_are_qa_errors_with_the_envelope_s_code(server: LiveServer, client: httpx.Client) -> None:
    doc = client.get("/v1/documents").json()[0]["doc_id"]
    citation = {"doc_id": doc, "title": "t", "source": "s", "section": None, "start": 0, "end": 10}
    cases = [  # (the client's call, the raw call, the code)
        (lambda qa: qa.ask(" "), ("POST", "/v1/ask", {"json": {"question": " "}}), "empty_question"),
        (lambda qa: qa.ask(QUESTION, top_k=99), ("POST", "/v1/ask", {"json": {"question": QUESTION, "top_k": 99}}),
         "invalid_top_k"),
        (lambda qa: qa.ask(QUESTION, index_version="0" * 12),
         ("POST", "/v1/ask", {"json": {"question": QUESTION, "index_version": "0" * 12}}), "index_version_mismatch"),
        (lambda qa: qa.search("dose", k=0), ("GET", "/v1/search", {"params": {"q": "dose", "k": 0}}), "invalid_k"),
        (lambda qa: qa.search_post("dose", filter={"colour": ["red"]}),
         ("POST", "/v1/search", {"json": {"q": "dose", "filter": {"colour": ["red"]}}}), "invalid_filter"),
        (lambda qa: qa.search_post("dose", doc_ids=["no-such-doc"]),
         ("POST", "/v1/search", {"json": {"q": "dose", "doc_ids": ["no-such-doc"]}}), "unknown_doc_id"),
        (lambda qa: qa.get_passage("not-an-id"), ("GET", "/v1/passages/not-an-id", {}), "invalid_passage_id"),
        (lambda qa: qa.get_passage(f"{doc}:0-999999999"), ("GET", f"/v1/passages/{doc}:0-999999999", {}),
         "unknown_passage"),
        (lambda qa: qa.get_document("no-such-doc"), ("GET", "/v1/documents/no-such-doc", {}), "unknown_doc_id"),
        (lambda qa: qa.send_feedback("q?", {**citation, "end": 10**9}, "up"),
         ("POST", "/v1/feedback", {"json": {"question": "q?", "citation": {**citation, "end": 10**9}, "vote": "up"}}),
         "citation_out_of_range"),
        (lambda qa: qa.send_feedback("q?", citation, "sideways"),  # type: ignore[arg-type]
         ("POST", "/v1/feedback", {"json": {"question": "q?", "citation": citation, "vote": "sideways"}}),
         "invalid_vote"),
        (lambda qa: qa.search_batch([]), ("POST", "/v1/search/batch", {
            "content": b"", "headers": {"Content-Type": "application/x-ndjson"}}), "empty_batch"),
        (lambda qa: qa.ask_batch({"question": "q?"} for _ in range(1_001)), ("POST", "/v1/ask/batch", {
            "json": [{"question": "q?"}] * 1_001}), "too_many_queries"),
        (lambda qa: qa.send_feedback("q?", citation, "up", reason="outdated"),
         ("POST", "/v1/feedback", {"json": {"question": "q?", "citation": citation, "vote": "up", "reason": "outdated"}}),
         "reason_needs_down_vote"),
    ]
    with QAClient(server.url) as qa:
        for call, (method, url, kwargs), code in cases:
            with pytest.raises(QAError) as caught:
                call(qa)
            response = client.request(method, url, **kwargs)
            error = caught.value
            assert (error.status, error.code, error.message) == (
                response.status_code, code, response.json()["error"]["message"]), code
            assert error.retry_after is None and code in str(error)


def test_the_api_key_is_sent_and_refusals_are_qa_errors(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    # An index never loaded: a request with a good key gets past the key check to 503 not_ready.
    settings = seed_settings.model_copy(update={"api_keys": ["k1"], "rate_limit": "2/minute",
                                                "feedback_db": tmp_path / "records.sqlite3"})
    with LiveServer(create_app(settings, load=False), ready_path="/healthz") as live:
        for key, status, code in ((None, 401, "missing_api_key"), ("wrong", 401, "invalid_api_key"),
                                  ("k1", 503, "not_ready"), ("k1", 503, "not_ready"), ("k1", 429, "rate_limited")):
            with QAClient(live.url, api_key=key) as qa, pytest.raises(QAError) as caught:
                qa.list_documents()
            assert (caught.value.status, caught.value.code) == (status, code), key
        assert caught.value.retry_after is not None and caught.value.retry_after > 0  # the 429's Retry-After


def test_a_response_that_is_no_envelope_is_an_http_error() -> None:
    # what a proxy in front of the service may answer: not the API's envelope
    gateway = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>Bad gateway</html>"))
    with QAClient("http://qa.example", transport=gateway) as qa, pytest.raises(QAError) as caught:
        qa.get_document("x")
    assert (caught.value.status, caught.value.code) == (502, "http_error") and "Bad gateway" in caught.value.message


def test_the_readme_s_example_runs(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Python client"):]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example and "http://127.0.0.1:8000" in example.group(1)
    exec(example.group(1).replace("http://127.0.0.1:8000", server.url), {})  # noqa: S102 - our own README
    assert capsys.readouterr().out.splitlines()[-1] == "404 unknown_doc_id"

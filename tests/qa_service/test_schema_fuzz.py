"""Schemathesis against the service's own OpenAPI schema, over real HTTP.

Every operation of the schema the app publishes at ``/openapi.json`` gets bounded,
derandomized examples (valid and invalid requests, and the methods it does not
allow), sent to a real uvicorn server over the seed index; each response must not
be a 5xx, must conform to the schema and must have a documented status code.

The schema is taken from the app at import, because schemathesis makes one test per
operation when the tests are collected, before any server runs (its fixture-based
loader does not work with pytest 9: it sets ``Node._nodeid``); the first test checks
that the running server publishes that same schema.

The server is the tests' own ``LiveServer`` over the session's seed index, with a
records file of its own, so the feedback and questions fuzzed here never reach the
file the other tests read. Every operation is fuzzed without credentials; the admin
operations are fuzzed with the admin token too: the feedback export, the unanswered
report and the review page's reports (read only), the reload (the bundle on disk is the one served, so nothing changes) and
the query-log and feedback purges (harmless on this server's own file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from ingest.corpus import list_source_files
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, CORPUS, LiveServer

APP_SCHEMA = create_app(ServiceSettings(), load=False).openapi()
schema = schemathesis.openapi.from_dict(APP_SCHEMA)
DOC_IDS = [source.doc_id for source in list_source_files(CORPUS)[0]]
"""The seed index's documents: a random doc_id is never one, so half the time one of these is used."""

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _doc_id(generated: object) -> st.SearchStrategy:
    return st.one_of(st.just(generated), st.sampled_from(DOC_IDS))


@schema.hook
def flatmap_path_parameters(context, path_parameters):  # noqa: ANN001, ANN201 - a schemathesis hook
    """``/v1/documents/{doc_id}``: a real document half the time (else it is only ever a 404)."""
    if isinstance(path_parameters, dict) and "doc_id" in path_parameters:
        return _doc_id(path_parameters["doc_id"]).map(lambda d: {**path_parameters, "doc_id": d})
    return st.just(path_parameters)


@schema.hook
def flatmap_body(context, body):  # noqa: ANN001, ANN201 - a schemathesis hook
    """Feedback on a real document's answer and questions asked of real documents, half the time
    (else both are only ever a 422 ``unknown_doc_id``)."""
    if isinstance(body, dict) and isinstance(body.get("citation"), dict):
        citation = body["citation"]
        return _doc_id(citation.get("doc_id")).map(lambda d: {**body, "citation": {**citation, "doc_id": d}})
    if isinstance(body, dict) and isinstance(body.get("doc_ids"), list):
        real = st.lists(st.sampled_from(DOC_IDS), min_size=1, max_size=2, unique=True)
        return st.one_of(st.just(body), real.map(lambda d: {**body, "doc_ids": d}))
    return st.just(body)


@schemathesis.serializer("application/x-ndjson")
def ndjson_body(ctx, value) -> bytes:  # noqa: ANN001 - a schemathesis serializer
    """A batch body: each query of a list on a line of its own (anything else: its JSON on one line)."""
    return "".join(json.dumps(item) + "\n" for item in (value if isinstance(value, list) else [value])).encode()


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx, response) -> list:  # noqa: ANN001 - a schemathesis deserializer
    """A batch's answer (or the feedback export): one JSON value a line, read as a list."""
    return [json.loads(line) for line in response.content.split(b"\n") if line]


@pytest.fixture(scope="module")
def fuzz_server(seed_settings: ServiceSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = ServiceSettings(
        index_dir=seed_settings.index_dir, admin_token=ADMIN_TOKEN,
        # the fuzzer sends hundreds of admin calls and wrong tokens a minute: its limits are the seed's
        auth_failure_limit=seed_settings.auth_failure_limit, admin_rate_limit=seed_settings.admin_rate_limit,
        feedback_db=tmp_path_factory.mktemp("fuzz") / "records.sqlite3",
    )
    with LiveServer(create_app(settings)) as live:
        yield live


def test_the_fuzzed_schema_is_the_one_the_server_publishes(fuzz_server: LiveServer) -> None:
    published = httpx.get(fuzz_server.url + "/openapi.json", timeout=30)
    assert published.status_code == 200
    assert published.json() == APP_SCHEMA
    assert {path for path in APP_SCHEMA["paths"]} == {
        "/healthz", "/readyz", "/metrics", "/v1/ask", "/v1/search", "/v1/feedback", "/v1/documents", "/v1/coverage",
        "/v1/search/batch", "/v1/ask/batch", "/v1/passages/{passage_id}",
        "/v1/documents/{doc_id}", "/v1/admin/reload", "/v1/admin/feedback", "/v1/admin/unanswered",
        "/v1/admin/queries", "/v1/admin/unanswered/groups", "/v1/admin/thumbs-down", "/v1/admin/most-asked",
    }, "an operation was added or removed: is it destructive or admin? (see the module's docstring)"


@schema.parametrize()
@FUZZ
def test_every_operation_conforms_to_the_schema(case, fuzz_server: LiveServer) -> None:  # noqa: ANN001
    case.call_and_validate(base_url=fuzz_server.url, checks=CHECKS)


def export_is_json_lines(ctx, response, case) -> None:  # noqa: ANN001 - a schemathesis check
    """The export is "one JSON object a line", whichever line breaks the reader splits at."""
    if response.status_code == 200 and case.path.endswith("/feedback"):
        for line in response.text.splitlines():
            assert isinstance(json.loads(line), dict), line


@schema.include(path_regex="^/v1/admin/").include(method="GET", path="/v1/feedback").parametrize()
@FUZZ
def test_the_admin_operations_with_the_admin_token_conform(case, fuzz_server: LiveServer) -> None:  # noqa: ANN001
    case.call_and_validate(base_url=fuzz_server.url, headers=ADMIN, checks=[*CHECKS, export_is_json_lines])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    question=st.text(min_size=1, max_size=200),
    comment=st.one_of(st.none(), st.text(max_size=200)),
    vote=st.sampled_from(["up", "down"]),
)
# JSON writes U+2028, U+2029 and NEL unescaped: the export's one record read as three lines
@example(question="a\u2028b", comment="x\x85y\u2029z", vote="up")
def test_any_feedback_is_exported_as_one_json_line(fuzz_server: LiveServer, question: str, comment: str | None,
                                                    vote: str) -> None:
    citation = {"doc_id": DOC_IDS[0], "title": "t", "source": "s", "section": None, "start": 0, "end": 1}
    sent = {"question": question, "citation": citation, "vote": vote, "comment": comment}
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as http:
        stored = http.post("/v1/feedback", json=sent)
        assert stored.status_code == 201, stored.text
        export = http.get("/v1/feedback", headers=ADMIN)
    assert export.status_code == 200
    lines = export.text.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(lines) == export.text.count("\n")
    mine = next(r for r in records if r["id"] == stored.json()["id"])
    assert (mine["question"], mine["comment"], mine["vote"]) == (question, comment, vote)
    # the citation stored is the index's (its title and source, not the "t" and "s" sent)
    assert {key: mine["citation"][key] for key in ("doc_id", "start", "end")} == {"doc_id": DOC_IDS[0], "start": 0, "end": 1}
    assert (mine["citation"]["title"], mine["citation"]["source"]) != ("t", "s")

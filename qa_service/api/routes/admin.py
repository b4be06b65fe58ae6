"""Administration, behind the admin token: reload the index, export feedback, what went unanswered, and
the review page's reports (grouped unanswered questions, thumbs-down answers, the most asked)."""

from __future__ import annotations

import logging
from dataclasses import asdict
import os
import signal

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ... import review
from ...records import Records
from ..deps import AdminDep, RecordsDep, StateDep
from ..errors import RESPONSES, problem
from ..export import EXPORT_RESPONSES, ExportFormat, download
from ..schemas import (
    AskedGroup, ErrorResponse, PurgeResponse, ReloadResponse, ThumbsDown, UnansweredGroup, UnansweredQuestion,
)
from ..state import ReloadError

log = logging.getLogger("qa_service")

ADMIN_RESPONSES = {**RESPONSES, 409: {"model": ErrorResponse, "description": "The new index was refused"}}
NDJSON = {200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object a line"}}

router = APIRouter(tags=["admin"], dependencies=[AdminDep], responses=ADMIN_RESPONSES)


@router.post("/v1/admin/reload", response_model=ReloadResponse, operation_id="reload_index")
async def reload(state: StateDep) -> ReloadResponse:
    """Serve the bundle now in the index folder (after `qa ingest`), without a restart: requests in
    flight finish on the old one. A bundle that can't be loaded is refused (409, with the reason) and
    the old one serves on. With several worker processes, every worker reloads."""
    try:
        outcome = await run_in_threadpool(state.reload)
    except ReloadError as exc:
        raise problem(409, "reload_refused", f"the index was not reloaded, the previous one is still served: {exc}")
    if outcome.changed and state.settings.serving.workers > 1:
        # The supervisor of `qa serve --workers N` hands SIGHUP to every worker (this one finds nothing new).
        os.kill(os.getppid(), signal.SIGHUP)
    return ReloadResponse(**asdict(outcome))


@router.get("/v1/admin/feedback", responses=NDJSON, operation_id="export_feedback")
async def export_feedback(records: RecordsDep) -> StreamingResponse:
    """All feedback as JSON lines, oldest first."""
    return StreamingResponse(await records.run(records.export_feedback), media_type="application/x-ndjson")


@router.delete("/v1/admin/feedback", response_model=PurgeResponse, operation_id="purge_feedback")
async def purge_feedback(records: RecordsDep) -> PurgeResponse:
    """Delete every vote now (comments may hold what a patient told staff); the query log stays."""
    return PurgeResponse(deleted=await records.run(records.purge_feedback))


@router.get("/v1/admin/unanswered", response_model=list[UnansweredQuestion], operation_id="list_unanswered")
async def unanswered(records: RecordsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[UnansweredQuestion]:
    """The questions most often declined or voted down, most frequent first: what the documents lack."""
    found = await records.run(_unanswered, records, limit)
    return [UnansweredQuestion(**{**asdict(item), "reasons": list(item.reasons)}) for item in found]


def _unanswered(records: Records, limit: int) -> list:
    _flushed(records)
    return records.unanswered(limit)


def _flushed(records: Records) -> None:
    # The questions still queued for the log count too, unless the file is locked: then the report is
    # what is written so far (reading is not blocked by another writer's lock).
    records.flush(timeout=records.busy_timeout)


MAX_REPORT = 10_000
"""Most groups or votes one report gives (the review page exports with this limit)."""
FormatQuery = Annotated[ExportFormat | None, Query(
    alias="format", description="json or csv: the report as a file to download (Content-Disposition: attachment); "
    "the JSON file is exactly the JSON body. CSV cells that start with = + - @ get a leading apostrophe.")]
NO_STORE = "no-store"


def _unanswered_groups(records: Records, limit: int) -> list[review.UnansweredGroup]:
    _flushed(records)
    return review.unanswered_groups(records, limit)


@router.get("/v1/admin/unanswered/groups", response_model=list[UnansweredGroup], responses=EXPORT_RESPONSES,
            operation_id="list_unanswered_groups")
async def unanswered_groups(
    records: RecordsDep, response: Response, limit: Annotated[int, Query(ge=1, le=MAX_REPORT)] = 50,
    fmt: FormatQuery = None,
) -> list[UnansweredGroup] | Response:
    """The questions declined or voted down, grouped by similar wording (the same stemmed content words),
    most frequent first, with their counts, reasons and every wording."""
    found = [UnansweredGroup.model_validate(asdict(group))
             for group in await records.run(_unanswered_groups, records, limit)]
    if fmt is not None:
        return download("unanswered", fmt, found, UNANSWERED_CSV, _unanswered_row)
    response.headers["Cache-Control"] = NO_STORE
    return found


UNANSWERED_CSV = ("question", "count", "declined", "thumbs_down", "last_asked", "reasons", "terms", "wordings")


def _unanswered_row(group: UnansweredGroup) -> tuple:
    wordings = "\n".join(f"{w.question} ({w.count})" for w in group.wordings)
    return (group.question, group.count, group.declined, group.thumbs_down, group.last_asked,
            "; ".join(group.reasons), " ".join(group.terms), wordings)


@router.get("/v1/admin/thumbs-down", response_model=list[ThumbsDown], responses=EXPORT_RESPONSES,
            operation_id="list_thumbs_down")
async def thumbs_down(
    records: RecordsDep, response: Response, limit: Annotated[int, Query(ge=1, le=MAX_REPORT)] = 100,
    fmt: FormatQuery = None,
) -> list[ThumbsDown] | Response:
    """The thumbs-down votes, newest first: the question, the reason and comment, and the answer with its
    citation as the index had them."""
    found = [ThumbsDown.model_validate(asdict(vote)) for vote in await records.run(records.down_votes, limit)]
    if fmt is not None:
        return download("thumbs-down", fmt, found, THUMBS_DOWN_CSV, _thumbs_down_row)
    response.headers["Cache-Control"] = NO_STORE
    return found


THUMBS_DOWN_CSV = ("id", "created_at", "question", "reason", "comment", "answer", "doc_id", "title", "section",
                   "start", "end", "source")


def _thumbs_down_row(vote: ThumbsDown) -> tuple:
    cited = vote.citation
    return (vote.id, vote.created_at, vote.question, vote.reason, vote.comment, vote.answer, cited.doc_id,
            cited.title, cited.section, cited.start, cited.end, cited.source)


def _most_asked(records: Records, limit: int) -> list[review.AskedGroup]:
    _flushed(records)
    return review.most_asked(records, limit)


@router.get("/v1/admin/most-asked", response_model=list[AskedGroup], operation_id="list_most_asked")
async def most_asked(records: RecordsDep, response: Response,
                     limit: Annotated[int, Query(ge=1, le=MAX_REPORT)] = 20) -> list[AskedGroup]:
    """The questions asked most often (``/v1/ask``, answered or not), grouped by similar wording."""
    found = [AskedGroup.model_validate(asdict(group)) for group in await records.run(_most_asked, records, limit)]
    response.headers["Cache-Control"] = NO_STORE
    return found


@router.delete("/v1/admin/queries", response_model=PurgeResponse, operation_id="purge_queries")
async def purge_queries(records: RecordsDep) -> PurgeResponse:
    """Delete every logged question now (they may hold what a patient told staff); feedback stays."""
    return PurgeResponse(deleted=await records.run(records.purge_queries))


legacy = APIRouter(tags=["feedback"], dependencies=[AdminDep], responses=RESPONSES)
# The export's old address: the same endpoint.
legacy.add_api_route("/v1/feedback", export_feedback, methods=["GET"], responses=NDJSON, deprecated=True,
                     operation_id="export_feedback_legacy",
                     summary="Export Feedback (the old address of GET /v1/admin/feedback)")

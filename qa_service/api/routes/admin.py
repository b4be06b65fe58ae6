"""Administration, behind the admin token: reload the index, export feedback, what went unanswered."""

from __future__ import annotations

import logging
from dataclasses import asdict
import os
import signal

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...records import Records
from ..deps import AdminDep, RecordsDep, StateDep
from ..errors import RESPONSES, problem
from ..schemas import ErrorResponse, PurgeResponse, ReloadResponse, UnansweredQuestion
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
    # The questions still queued for the log count too, unless the file is locked: then the report is
    # what is written so far (reading is not blocked by another writer's lock).
    records.flush(timeout=records.busy_timeout)
    return records.unanswered(limit)


@router.delete("/v1/admin/queries", response_model=PurgeResponse, operation_id="purge_queries")
async def purge_queries(records: RecordsDep) -> PurgeResponse:
    """Delete every logged question now (they may hold what a patient told staff); feedback stays."""
    return PurgeResponse(deleted=await records.run(records.purge_queries))


legacy = APIRouter(tags=["feedback"], dependencies=[AdminDep], responses=RESPONSES)
# The export's old address: the same endpoint.
legacy.add_api_route("/v1/feedback", export_feedback, methods=["GET"], responses=NDJSON, deprecated=True,
                     operation_id="export_feedback_legacy",
                     summary="Export Feedback (the old address of GET /v1/admin/feedback)")

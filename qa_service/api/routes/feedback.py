"""The widget's thumbs up / down on an answer, kept in the records file."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from ..deps import RecordsDep, StateDep, require_api_key
from ..errors import RESPONSES, problem
from ..schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["feedback"], dependencies=[Depends(require_api_key)], responses=RESPONSES)


@router.post("/v1/feedback", status_code=201, response_model=FeedbackResponse)
async def add_feedback(body: FeedbackRequest, state: StateDep, records: RecordsDep) -> FeedbackResponse:
    """Store a thumbs up / down (and an optional comment) on one answer."""
    answerer = state.answerer
    if answerer is not None and body.citation.doc_id not in answerer.bundle.documents:
        raise problem(422, "unknown_doc_id", f"unknown doc_id: {body.citation.doc_id}")
    row = await run_in_threadpool(
        records.add_feedback, question=body.question, answer=body.answer, doc_id=body.citation.doc_id,
        citation=body.citation.model_dump(), vote=body.vote, comment=body.comment,
    )
    return FeedbackResponse(id=row)

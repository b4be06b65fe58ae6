"""The widget's thumbs up / down on an answer, kept in the records file."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from ..deps import AnswererDep, RecordsDep, require_api_key
from ..errors import RESPONSES
from ..schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["feedback"], dependencies=[Depends(require_api_key)], responses=RESPONSES)


@router.post("/v1/feedback", status_code=201, response_model=FeedbackResponse, operation_id="send_feedback")
async def add_feedback(body: FeedbackRequest, answerer: AnswererDep, records: RecordsDep) -> FeedbackResponse:
    """Store a thumbs up / down (and an optional comment; with a down vote, an optional reason) on one
    answer. The citation's document and
    offsets are checked against the index (422 `unknown_doc_id`, `citation_out_of_range`), and the
    citation and answer stored are the index's own. 503 `records_unavailable` when the records file
    can't be written now (locked): nothing was stored, try again."""
    citation, quote = answerer.quote(body.citation.doc_id, body.citation.start, body.citation.end)
    row = await records.run(
        records.add_feedback, question=body.question, answer=quote, doc_id=citation.doc_id,
        citation=asdict(citation), vote=body.vote, comment=body.comment, reason=body.reason,
    )
    return FeedbackResponse(id=row)

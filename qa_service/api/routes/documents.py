"""The indexed documents: the list, one document's canonical text (what every offset indexes into), and
what they cover (their medicines, how many, example questions)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from ..deps import AnswererDep, require_api_key
from ..errors import RESPONSES, problem
from ..schemas import CoverageResponse, DocumentDetail, DocumentSummary

router = APIRouter(tags=["documents"], dependencies=[Depends(require_api_key)],
                   responses=RESPONSES)


def _summary(document) -> DocumentSummary:  # noqa: ANN001 - ingest.documents.Document
    return DocumentSummary(
        doc_id=document.doc_id,
        title=document.title,
        source=document.source,
        format=document.format,
        length=len(document.text),
        sections=[s.title for s in document.sections if s.title],
        subjects=list(document.subjects),
    )


@router.get("/v1/documents", response_model=list[DocumentSummary], operation_id="list_documents")
async def documents(answerer: AnswererDep) -> list[DocumentSummary]:
    """Every indexed document: id, title, source, length, section titles and subjects."""
    return [_summary(d) for d in answerer.bundle.documents.values()]


@router.get("/v1/coverage", response_model=CoverageResponse, operation_id="get_coverage")
async def coverage(answerer: AnswererDep) -> CoverageResponse:
    """What the index covers: the medicines (subjects) its documents are about, how many documents, and a
    few example questions built from the sections the documents have."""
    # worked out once per index, in a worker thread (a large corpus has many section titles to read)
    return CoverageResponse.model_validate(await run_in_threadpool(answerer.coverage), from_attributes=True)


@router.get("/v1/documents/{doc_id}", response_model=DocumentDetail, operation_id="get_document")
async def document(doc_id: str, answerer: AnswererDep) -> DocumentDetail:
    """One document with its canonical text; every citation offset indexes into `text`."""
    found = answerer.bundle.documents.get(doc_id)
    if found is None:
        raise problem(404, "unknown_doc_id", f"unknown doc_id: {doc_id}")
    return DocumentDetail(**_summary(found).model_dump(), text=found.text)

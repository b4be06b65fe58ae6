"""For operators and their tools: liveness, readiness, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import OpsDep, StateDep
from ..errors import RESPONSES
from ..metrics import render

router = APIRouter(tags=["ops"])


@router.get("/healthz", operation_id="check_health")
async def healthz() -> dict:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="check_readiness", dependencies=[OpsDep], responses={401: RESPONSES[401], 503: RESPONSES[503]})
async def readyz(state: StateDep) -> dict:
    """The index is loaded and questions can be answered (503 until then)."""
    answerer = state.require()
    manifest = answerer.bundle.manifest
    return {
        "status": "ready",
        "documents": len(answerer.bundle.documents),
        "chunks": manifest.chunk_count,
        "embed_model": manifest.embed_model,
        "reader_model": answerer.reader.name if answerer.reader is not None else None,
        "index_built": manifest.created_at,
        "index_version": answerer.index_version,
    }


@router.get("/metrics", operation_id="get_metrics", dependencies=[OpsDep], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, 401: RESPONSES[401]})
async def metrics() -> Response:
    """Prometheus metrics: requests by route and status, latency, answered and declined questions,
    answer-cache hits, the served index's version, documents and chunks."""
    body, media_type = render()
    return Response(content=body, media_type=media_type)

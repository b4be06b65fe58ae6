"""The lead's review page: public files (the page asks for the admin token, and its data endpoints in
routes/admin.py check it). Its security headers are set in middleware.SecurityHeaders."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .widget import STATIC

router = APIRouter(include_in_schema=False)

def _static(name: str, media_type: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/admin")
async def review_page() -> FileResponse:
    """The review page: unanswered questions grouped, thumbs-down answers, the most asked; exports."""
    return _static("admin.html", "text/html; charset=utf-8")


@router.get("/admin.js")
async def review_js() -> FileResponse:
    return _static("admin.js", "text/javascript; charset=utf-8")


@router.get("/admin.css")
async def review_css() -> FileResponse:
    return _static("admin.css", "text/css; charset=utf-8")

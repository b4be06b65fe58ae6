"""The lead's review page: public files (the page asks for the admin token, and its data endpoints in
routes/admin.py check it). Its security headers are set in middleware.SecurityHeaders."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .widget import static_file

router = APIRouter(include_in_schema=False)


@router.get("/admin")
async def review_page() -> FileResponse:
    """The review page: unanswered questions grouped, thumbs-down answers, the most asked; exports."""
    return static_file("admin.html", "text/html; charset=utf-8")


@router.get("/admin.js")
async def review_js() -> FileResponse:
    return static_file("admin.js", "text/javascript; charset=utf-8")


@router.get("/admin.css")
async def review_css() -> FileResponse:
    return static_file("admin.css", "text/css; charset=utf-8")

"""The chat widget's files and a demo page with it open."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent.parent / "static"

router = APIRouter(include_in_schema=False)


def _static(name: str, media_type: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def demo_page() -> FileResponse:
    """A page with the chat widget open."""
    return _static("index.html", "text/html; charset=utf-8")


@router.get("/widget.js")
async def widget_js() -> FileResponse:
    return _static("widget.js", "text/javascript; charset=utf-8")


@router.get("/widget.css")
async def widget_css() -> FileResponse:
    return _static("widget.css", "text/css; charset=utf-8")

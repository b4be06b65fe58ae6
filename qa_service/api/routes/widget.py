"""The chat widget's files and a demo page with it open."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent.parent / "static"

router = APIRouter(include_in_schema=False)


def static_file(name: str, media_type: str) -> FileResponse:
    """A file of the static folder, revalidated on every use (a deploy shows at once)."""
    return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def demo_page() -> FileResponse:
    """A page with the chat widget open."""
    return static_file("index.html", "text/html; charset=utf-8")


@router.get("/widget.js")
async def widget_js() -> FileResponse:
    return static_file("widget.js", "text/javascript; charset=utf-8")


@router.get("/widget.css")
async def widget_css() -> FileResponse:
    return static_file("widget.css", "text/css; charset=utf-8")

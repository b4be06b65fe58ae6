"""Reports as downloads: the same rows as JSON or as CSV, with a file name.

CSV is written by Python's ``csv`` module (RFC 4180: every cell that needs it
quoted, CRLF line ends), UTF-8 with a byte-order mark so that spreadsheet
programs read accented text right. A text cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return would be read by a spreadsheet as a
formula (CSV injection: a question is whatever a visitor typed); it is written
with a leading apostrophe, which spreadsheets show as text and do not evaluate.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

ExportFormat = Literal["json", "csv"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a cell that a spreadsheet would evaluate as a formula begins (OWASP's list)."""

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def neutralise(cell: Any) -> Any:
    """A text cell as a spreadsheet should show it: one that would start a formula gets a leading
    apostrophe. Numbers and empty cells are left as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The rows under ``header`` as CSV text, every cell neutralised (None: an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out)  # the "excel" dialect: minimal quoting, \r\n
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow(["" if cell is None else neutralise(cell) for cell in row])
    return out.getvalue()


def attachment(name: str, extension: str) -> dict[str, str]:
    """Headers naming the download ``name-YYYY-MM-DD.extension`` (today, UTC), and keeping it out of caches."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return {"Content-Disposition": f'attachment; filename="{name}-{day}.{extension}"', "Cache-Control": "no-store"}


def download(name: str, fmt: ExportFormat, items: Sequence[BaseModel], header: Sequence[str],
             row: Callable[[Any], Sequence[Any]]) -> Response:
    """``items`` as a file: JSON (exactly the report's JSON body) or CSV (``row`` of each under ``header``)."""
    if fmt == "json":
        return JSONResponse(jsonable_encoder(items), headers=attachment(name, "json"))
    text = csv_text(header, (row(item) for item in items))
    return Response(("\ufeff" + text).encode("utf-8"), media_type=CSV_MEDIA_TYPE, headers=attachment(name, "csv"))


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON; with `format`, a file to download (Content-Disposition: attachment)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
}
"""The 200 of a report that can be downloaded: the JSON model (from the route) or CSV."""

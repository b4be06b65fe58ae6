"""The HTTP edge of the service: the FastAPI app, its routes, access control and observability.

``create_app(settings)`` builds it (``qa serve`` and the tests call it; with several
workers uvicorn calls it as the factory ``qa_service.api:create_app``). Everything
here turns the answering core's results into HTTP and back; nothing answers.

``create_app`` is imported on first use: the Python client (``qa_service.client``) reads
``qa_service.api.schemas`` without loading the app, its models and the index code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

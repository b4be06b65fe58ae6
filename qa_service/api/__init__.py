"""The HTTP edge of the service: the FastAPI app, its routes, access control and observability.

``create_app(settings)`` builds it (``qa serve`` and the tests call it; with several
workers uvicorn calls it as the factory ``qa_service.api:create_app``). Everything
here turns the answering core's results into HTTP and back; nothing answers.
"""

from .app import create_app

__all__ = ["create_app"]

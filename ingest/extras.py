"""The optional extras of pyproject.toml whose packages serving never imports.

The base install is what ``qa serve`` and ``qa ask`` need. ``qa ingest`` needs the ``ingest``
extra (reading the corpus, chunking, the ONNX export) and ``qa eval`` the ``eval`` extra (ranx);
without it they stop with a one-line message naming what to install, not a traceback.
"""

from __future__ import annotations

import importlib.util

EXTRAS: dict[str, tuple[str, ...]] = {
    "ingest": ("langchain_text_splitters", "pypdf", "selectolax", "markdown_it", "onnx"),
    "eval": ("ranx",),
}
"""The modules each extra's packages provide (tests/test_dependencies.py holds it to pyproject.toml)."""


class MissingExtraError(ImportError):
    """A command needs an extra that is not installed."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that can't be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError`, saying how to install it, unless ``extra`` is installed."""
    absent = missing(extra)
    if absent:
        raise MissingExtraError(
            f"{what} needs the '{extra}' extra ({', '.join(absent)} not installed): "
            f"pip install 'drug-qa[{extra}]' (in a checkout: make setup, "
            f"or pip install -c constraints.txt -e '.[{extra}]')"
        )

"""From a request's fields to the core's query options, and the index-version check: one place for
ask, search, and every line of a batch."""

from __future__ import annotations

from ..answering import Answerer
from ..scope import NO_FILTER, Collapse, Filter, QueryOptions, SubjectsMode
from .errors import problem
from .schemas import QueryFlags


def options_of(flags: QueryFlags, collapse: str | None = None, offset: int = 0) -> QueryOptions:
    """The core's options for a request's flags."""
    return QueryOptions(
        filter=Filter.of(flags.filter.values()) if flags.filter is not None else NO_FILTER,
        subjects=SubjectsMode(flags.subjects),
        collapse=Collapse(collapse) if collapse else None,
        offset=offset,
        explain=flags.explain,
        highlight=flags.highlight,
    )


def check_index_version(flags: QueryFlags, answerer: Answerer) -> None:
    """409 ``index_version_mismatch`` when the caller expects another index than the one served."""
    if flags.index_version is not None and flags.index_version != answerer.index_version:
        raise problem(409, "index_version_mismatch",
                      f"this server serves index {answerer.index_version}, not {flags.index_version}")

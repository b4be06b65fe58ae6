"""What a query may read and how its results are shaped: filters, applied before ranking, and the
options a researcher sets on a search or a question (collapse, implicit narrowing, paging, explain,
highlight).

One grammar for every caller: a :class:`Filter` holds, per field, the values any of which a passage
may match; every field given must match (``{"section": ["Overdose"], "subject": ["baclofen"]}``:
a passage under a heading "Overdose" of a document about baclofen). :class:`ScopeResolver` turns a
filter into the rows of the chunk and answer-unit tables that the retrievers may score: nothing
outside them is ever ranked, so nothing outside them is ever returned.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

import numpy as np

from ingest.bundle import Bundle


class Collapse(StrEnum):
    """How retrieved chunks become results (as Elasticsearch's ``collapse``)."""

    PASSAGE = "passage"
    """Overlapping or touching chunks of one section are one result, cited over the merged range."""
    DOCUMENT = "document"
    """One result per document: its best passage."""
    NONE = "none"
    """One result per chunk."""


class SubjectsMode(StrEnum):
    """What the medicines a question names do to retrieval."""

    AUTO = "auto"
    """Read the documents about them (see ``RetrievalSettings.subject_narrowing``)."""
    OFF = "off"
    """Nothing: every document is ranked alike and the names are words of the query."""


FILTER_FIELDS = ("doc_id", "section", "source", "subject", "format")


@dataclass(frozen=True, slots=True)
class Filter:
    """Per field, the values a passage may match (any of them); every field given must match.
    ``doc_id``, ``source`` and ``format`` match exactly; ``section`` (the heading's title) and
    ``subject`` (a document's medicine or topic) ignoring case."""

    doc_id: tuple[str, ...] = ()
    section: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    subject: tuple[str, ...] = ()
    format: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: dict[str, list[str] | tuple[str, ...] | None] | None) -> Filter:
        """A filter from a mapping of field -> values (None or empty: no condition on it)."""
        values = values or {}
        unknown = set(values) - set(FILTER_FIELDS)
        if unknown:
            raise ValueError(f"unknown filter fields: {sorted(unknown)} (known: {', '.join(FILTER_FIELDS)})")
        return cls(**{name: tuple(dict.fromkeys(values.get(name) or ())) for name in FILTER_FIELDS})

    def as_dict(self) -> dict[str, list[str]]:
        """The fields that hold a condition."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)}

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in FILTER_FIELDS)


NO_FILTER = Filter()


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """How one search or question is run, past its text and count (hashable: part of the cache key)."""

    filter: Filter = NO_FILTER
    subjects: SubjectsMode = SubjectsMode.AUTO
    collapse: Collapse | None = None
    """None: the service's setting (``RetrievalSettings.collapse_chunks``: passage, or none)."""
    offset: int = 0
    """Results skipped before the ``k`` returned (search)."""
    explain: bool = False
    highlight: bool = False


DEFAULT_OPTIONS = QueryOptions()


@dataclass(frozen=True)
class Scope:
    """The part of the index a query reads: ``doc_ids`` (None: every document) and, within them,
    the chunk and answer-unit rows (None: all of theirs)."""

    doc_ids: list[str] | None
    chunk_rows: np.ndarray | None = None
    unit_rows: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return self.doc_ids is not None and not self.doc_ids


class ScopeResolver:
    """Turns filters into the rows of one bundle's tables they allow."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._doc_row = {doc_id: row for row, doc_id in enumerate(bundle.doc_ids)}
        self._chunk_doc = np.array([self._doc_row[c.doc_id] for c in bundle.chunks], dtype=np.int64)
        self._chunk_start = np.array([c.start for c in bundle.chunks], dtype=np.int64)

    def resolve(self, wanted: Filter, doc_ids: list[str] | None = None) -> Scope:
        """The scope of ``wanted`` within ``doc_ids`` (the caller's own restriction, when given)."""
        if not wanted:
            return Scope(doc_ids)
        documents = self.bundle.documents
        candidates = doc_ids if doc_ids is not None else list(self.bundle.doc_ids)
        ids = set(wanted.doc_id)
        sources = set(wanted.source)
        formats = {f.lower().lstrip(".") for f in wanted.format}
        subjects = {s.casefold() for s in wanted.subject}
        kept = [
            d for d in candidates
            if (not ids or d in ids)
            and (not sources or documents[d].source in sources)
            and (not formats or documents[d].format.lower() in formats)
            and (not subjects or subjects & {s.casefold() for s in documents[d].subjects})
        ]
        if not wanted.section:
            return Scope(kept)
        titles = {t.casefold() for t in wanted.section}
        chunk_rows: list[np.ndarray] = []
        unit_rows: list[np.ndarray] = []
        with_section = []
        units = self.bundle.units
        for d in kept:
            ranges = [(s.start, s.end) for s in documents[d].sections if s.title and s.title.casefold() in titles]
            if not ranges:
                continue
            with_section.append(d)
            rows = np.flatnonzero(self._chunk_doc == self._doc_row[d])
            starts = self._chunk_start[rows]
            chunk_rows.append(rows[_inside(starts, ranges)])
            lo, hi = self.bundle.unit_range(d)
            unit_starts = units["start"][lo:hi]
            unit_rows.append(np.arange(lo, hi, dtype=np.int64)[_inside(unit_starts, ranges)])
        empty = np.zeros(0, dtype=np.int64)
        return Scope(
            with_section,
            np.concatenate(chunk_rows) if chunk_rows else empty,
            np.concatenate(unit_rows) if unit_rows else empty,
        )


def _inside(offsets: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    """Which ``offsets`` fall in any of ``ranges`` (``[start, end)``)."""
    mask = np.zeros(len(offsets), dtype=bool)
    for start, end in ranges:
        mask |= (offsets >= start) & (offsets < end)
    return mask

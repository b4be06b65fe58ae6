"""The typed records that flow from ingest into the index bundle."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A character range ``[start, end)`` of a document's canonical text."""

    start: int
    end: int


@dataclass(frozen=True)
class Section:
    """A headed part of a document: ``title`` is ``None`` for text before the first heading."""

    title: str | None
    start: int
    end: int
    heading: Span | None = None


@dataclass(frozen=True)
class Document:
    """One source file turned into canonical text plus metadata.

    Every offset anywhere in the service indexes into ``text``.
    """

    doc_id: str
    path: str
    title: str
    source: str
    format: str
    content_hash: str
    text: str
    sections: tuple[Section, ...] = field(default_factory=tuple)
    subjects: tuple[str, ...] = ()
    """What the document is about: its medicines' or its topic's names (``ingest.subjects``)."""
    subject_sources: tuple[str, ...] = ()
    """Where each subject came from, in the same order (``ingest.subjects.SOURCES``): declared by
    the corpus (``metadata``, ``template``) or guessed from the title (``title``)."""

    def section_at(self, offset: int) -> Section | None:
        for section in self.sections:
            if section.start <= offset < section.end:
                return section
        return None


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, with offsets into its canonical text."""

    chunk_id: int
    doc_id: str
    start: int
    end: int
    section: str | None

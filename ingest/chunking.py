"""Split sections into overlapping, sentence-aware chunks with exact offsets."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .documents import Section

# Paragraphs first, then lines (list items), then sentence ends, then words.
SEPARATORS = [r"\n\s*\n", r"\n", r"(?<=[.!?])\s+", r"(?<=[;:])\s+", r"\s+", ""]
CHUNKER_VERSION = "recursive-sentence-v1"


@dataclass(frozen=True)
class ChunkSpan:
    start: int
    end: int
    section: str | None


class SectionChunker:
    """Chunks never cross a section boundary; each carries its section title."""

    def __init__(self, chunk_size: int = 600, chunk_overlap: int = 100) -> None:
        if chunk_overlap >= chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            is_separator_regex=True,
            keep_separator=True,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            strip_whitespace=True,
        )

    def split(self, text: str, sections: tuple[Section, ...]) -> list[ChunkSpan]:
        spans: list[ChunkSpan] = []
        for section in sections:
            body = text[section.start:section.end]
            cursor = 0
            pending: int | None = None  # start of a bare heading waiting for its text
            for piece in self._splitter.split_text(body):
                found = body.find(piece, cursor)
                if found < 0:  # pragma: no cover - the splitter only strips and joins
                    raise RuntimeError("chunk text is not a substring of its section")
                start, end = section.start + found, section.start + found + len(piece)
                cursor = found + 1
                heading = section.heading
                if heading is not None and heading.start <= start and end <= heading.end:
                    pending = start if pending is None else pending
                    continue
                # A chunk never is a bare heading: the heading joins the text it heads.
                spans.append(ChunkSpan(pending if pending is not None else start, end, section.title))
                pending = None
            if pending is not None:
                spans.append(ChunkSpan(pending, section.heading.end, section.title))
        return spans

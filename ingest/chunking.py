"""Split sections into overlapping, sentence-aware chunks with exact offsets."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .documents import Section

# Paragraphs first, then lines (list items), then sentence ends, then words.
SEPARATORS = [r"\n\s*\n", r"\n", r"(?<=[.!?])\s+", r"(?<=[;:])\s+", r"\s+", ""]
CHUNKER_VERSION = "recursive-sentence-v2"


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

    def _pieces(self, body: str) -> list[tuple[int, int]]:
        """(start, end) of each piece the splitter makes of ``body``, in order, covering it."""
        ranges: list[tuple[int, int]] = []
        previous: tuple[int, int] | None = None
        for piece in self._splitter.split_text(body):
            found = locate(body, piece, previous)
            if found < 0:
                continue  # its text is covered below, as a gap
            previous = (found, found + len(piece))
            ranges.append(previous)
        if not ranges and body.strip():
            # Nothing located (pathological repeats): plain windows, exact by construction.
            step = self.chunk_size - self.chunk_overlap
            return [(a, min(a + self.chunk_size, len(body))) for a in range(0, len(body), step)
                    if body[a:a + self.chunk_size].strip()]
        # Text the pieces missed (where repeated text made a place ambiguous) gets
        # pieces of its own, so that every word is in some chunk.
        ranges.sort()
        covered_to, gaps = 0, []
        for a, b in ranges:
            if body[covered_to:a].strip():
                gaps.append((covered_to, a))
            covered_to = max(covered_to, b)
        if body[covered_to:].strip():
            gaps.append((covered_to, len(body)))
        for a, b in gaps:
            ranges.extend((a + x, a + y) for x, y in self._pieces(body[a:b]))
        return sorted(ranges)

    def split(self, text: str, sections: tuple[Section, ...]) -> list[ChunkSpan]:
        spans: list[ChunkSpan] = []
        for section in sections:
            body = text[section.start:section.end]
            pending: int | None = None  # start of a bare heading waiting for its text
            for found, found_end in self._pieces(body):
                start, end = section.start + found, section.start + found_end
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


def locate(body: str, piece: str, previous: tuple[int, int] | None) -> int:
    """Offset of ``piece`` in ``body``, given the previous piece's (start, end).

    The splitter's pieces come in order, each overlapping, touching or following
    the previous one, and sometimes lying inside it (an overlap tail emitted on
    its own). Text repeats ("There are several types of skin cancer." twice,
    "Baclofen Baclofen ..."), so among the occurrences from the previous start
    on, the first that extends the previous piece wins; else the first right after
    it (only stripped white space between); else the first inside it; else the
    first further on.
    """
    if previous is None:
        return body.find(piece)
    prev_start, prev_end = previous
    inside = after = -1
    found = body.find(piece, prev_start)
    while found != -1:
        if found > prev_end:
            if not body[prev_end:found].strip():
                return found  # after white space the splitter stripped
            after = found  # further on, past text of its own: a last resort
            break
        if found + len(piece) > prev_end:
            return found  # overlaps or touches the previous piece and extends it
        if inside == -1:
            inside = found
        found = body.find(piece, found + 1)
    return inside if inside != -1 else after

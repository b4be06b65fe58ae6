from __future__ import annotations

import pytest

from ingest.chunking import SectionChunker
from ingest.sections import split_sections
from tests.conftest import CORPUS


@pytest.mark.parametrize("size,overlap", [(600, 100), (300, 50)])
def test_chunks_are_verbatim_bounded_and_inside_one_section(size: int, overlap: int) -> None:
    for path in sorted(CORPUS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        sections = split_sections(text)
        chunks = SectionChunker(size, overlap).split(text, sections)
        assert chunks
        for chunk in chunks:
            piece = text[chunk.start:chunk.end]
            assert piece == piece.strip() and piece
            owner_heading = next(s for s in sections if s.start <= chunk.start < s.end).heading
            allowance = (owner_heading.end - owner_heading.start + 2) if owner_heading else 0
            assert len(piece) <= size + allowance
            owner = [s for s in sections if s.start <= chunk.start < s.end]
            assert len(owner) == 1 and chunk.end <= owner[0].end
            assert chunk.section == owner[0].title


def test_chunks_end_at_sentence_boundaries_when_they_can() -> None:
    sentence = "Baclofen relaxes muscles by acting on the spinal cord. "
    text = "Action\n\n" + sentence * 30
    chunks = SectionChunker(200, 40).split(text, split_sections(text))
    assert len(chunks) > 3
    for chunk in chunks[:-1]:
        assert text[chunk.start:chunk.end].endswith(".")


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError):
        SectionChunker(100, 100)

from __future__ import annotations

from ingest.sections import detect_headings, split_sections
from tests.conftest import CORPUS


def _titles(name: str) -> list[str | None]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [s.title for s in split_sections(text)]


def test_plain_line_headings_of_the_seed_documents_are_found() -> None:
    leaflet = _titles("baclosan-tablets-leaflet.txt")
    for heading in ("Side effects", "Indications for use", "Baclosan price", "Terms and conditions of storage"):
        assert heading in leaflet
    other = _titles("baclofen-how-long-in-system.txt")
    for heading in ("Pregnancy and lactation", "Baclofen: missed dose", "Symptoms of overdose:", "Lithium salts."):
        assert heading in other


def test_sentences_and_list_items_are_not_headings() -> None:
    text = (
        "Dosage\n\n"
        "Take it after a meal with a glass of water, as your doctor prescribed.\n\n"
        "  • Potato starch.\n"
        "- Lactose\n\n"
        "Data regarding use in children up to the age of 4 are limited.\n\n"
        "Category C. For pregnant women, use only if necessary.\n\n"
        "Storage\n\nKeep dry.\n"
    )
    headings = [text[h.start:h.end] for h in detect_headings(text)]
    assert headings == ["Dosage", "Storage"]


def test_sections_cover_the_text_and_adjacent_headings_merge() -> None:
    text = "This leaflet tells you about the medicine.\n\nSide effects\n\nVery often\n\n  • drowsiness\n\nStorage\n\nKeep dry.\n"
    sections = split_sections(text)
    assert [s.title for s in sections] == [None, "Side effects / Very often", "Storage"]
    assert sections[0].start == 0 and sections[-1].end == len(text)
    for before, after in zip(sections, sections[1:]):
        assert before.end == after.start

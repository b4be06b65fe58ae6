"""Each format loader on a small real file that the test writes to disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from fpdf import FPDF

from ingest.corpus import SourceFile, read_document
from ingest.loaders import LoadError


def _read(path: Path, doc_id: str = "doc"):
    return read_document(SourceFile(path, path.name, doc_id))


def test_txt_canonical_text_is_the_file_content_unchanged(tmp_path: Path) -> None:
    raw = "Dosage\r\n\r\nTake 5 mg three times a day.\r\n  • with food\r\n"
    path = tmp_path / "leaflet.txt"
    path.write_bytes(raw.encode("utf-8"))
    doc = _read(path)
    assert doc.text == raw
    assert doc.format == "txt"
    assert doc.title == "Dosage"  # first line, no sidecar
    assert doc.source == "leaflet.txt"


def test_txt_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfHello there.\n")
    assert _read(path).text == "Hello there.\n"


def test_txt_bad_encoding_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Posologie: 5 mg trois fois par jour, après le repas.".encode("latin-1"))
    with pytest.raises(LoadError, match="not valid UTF-8"):
        _read(path)


@pytest.mark.parametrize("content", [b"", b"   \n\n"])
def test_empty_file_is_a_load_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(LoadError, match="empty"):
        _read(path)


def test_markdown_keeps_text_and_uses_its_headings(tmp_path: Path) -> None:
    raw = "# Baclofen tablets\n\nA muscle relaxant.\n\n## Side effects\n\nDrowsiness and nausea.\n"
    path = tmp_path / "baclofen.md"
    path.write_text(raw, encoding="utf-8")
    doc = _read(path)
    assert doc.text == raw
    assert doc.title == "Baclofen tablets"
    assert [s.title for s in doc.sections] == ["Baclofen tablets", "Side effects"]
    side_effects = doc.sections[1]
    assert "Drowsiness and nausea." in doc.text[side_effects.start:side_effects.end]


def test_html_text_by_block_with_headings_and_no_script(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Baclofen leaflet</title><style>p{color:red}</style></head><body>"
        "<nav>Home</nav><h1>Baclofen</h1><p>Baclofen is a <b>muscle</b> relaxant.</p>"
        "<h2>Overdose</h2><ul><li>Drowsiness</li><li>Coma</li></ul>"
        "<script>alert('x')</script></body></html>",
        encoding="utf-8",
    )
    doc = _read(path)
    assert doc.title == "Baclofen leaflet"
    assert "Baclofen is a muscle relaxant." in doc.text
    assert "alert" not in doc.text and "color:red" not in doc.text
    assert "Drowsiness\n\nComa" in doc.text
    assert [s.title for s in doc.sections if s.title] == ["Baclofen", "Overdose"]


def _make_pdf(path: Path, lines: list[str], title: str | None = None) -> None:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for line in lines:
        pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def test_pdf_text_and_metadata_title(tmp_path: Path) -> None:
    path = tmp_path / "leaflet.pdf"
    _make_pdf(path, ["Storage", "Keep below 25 C, away from light."], title="Baclofen PDF leaflet")
    doc = _read(path)
    assert doc.format == "pdf"
    assert doc.title == "Baclofen PDF leaflet"
    assert "Keep below 25 C, away from light." in doc.text


def test_broken_pdf_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without xref\n")
    with pytest.raises(LoadError, match="PDF"):
        _read(path)


def test_sidecar_metadata_sets_title_and_source(tmp_path: Path) -> None:
    path = tmp_path / "leaflet.txt"
    path.write_text("Some leaflet text.\n", encoding="utf-8")
    (tmp_path / "leaflet.txt.meta.json").write_text(
        '{"title": "Baclofen 10 mg", "source": "https://example.org/baclofen"}', encoding="utf-8"
    )
    doc = _read(path)
    assert (doc.title, doc.source) == ("Baclofen 10 mg", "https://example.org/baclofen")


def test_invalid_sidecar_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "leaflet.txt"
    path.write_text("Some leaflet text.\n", encoding="utf-8")
    (tmp_path / "leaflet.txt.meta.json").write_text("{title: nope", encoding="utf-8")
    with pytest.raises(LoadError, match="not valid JSON"):
        _read(path)


def test_htm_is_read_as_html(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_text("<html><head><title>Old page</title></head><body><h1>Storage</h1><p>Keep dry.</p></body></html>",
                    encoding="utf-8")
    doc = _read(path)
    assert (doc.title, doc.format) == ("Old page", "htm")
    assert "Keep dry." in doc.text and "<p>" not in doc.text


def test_document_ids_follow_the_path_and_never_collide(tmp_path: Path) -> None:
    from ingest.corpus import list_source_files

    files = {
        "EU leaflets/Xenical 120mg.txt": "x",
        "us/xenical 120mg.txt": "x",
        "leaflet.txt": "x",
        "leaflet.md": "x",
        "Leaflet.TXT": "x",
        "sub/leaflet.txt": "x",
        "notes.docx": "x",
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content, encoding="utf-8")
    found, skipped = list_source_files(tmp_path)
    ids = {f.relative: f.doc_id for f in found}
    assert ids["EU leaflets/Xenical 120mg.txt"] == "eu-leaflets-xenical-120mg"  # folders and spaces become "-"
    assert ids["us/xenical 120mg.txt"] == "us-xenical-120mg"
    assert ids["sub/leaflet.txt"] == "sub-leaflet"
    # three files whose ids would be "leaflet": the first by path keeps it, the others get the extension
    assert ids["Leaflet.TXT"] == "leaflet"
    assert {ids["leaflet.md"], ids["leaflet.txt"]} == {"leaflet-md", "leaflet-txt"}
    assert len(set(ids.values())) == len(ids)
    assert [s.path for s in skipped] == ["notes.docx"]
    # the same folder gives the same ids every time
    assert {f.relative: f.doc_id for f in list_source_files(tmp_path)[0]} == ids

"""Properties of ingest for any text: exact offsets everywhere, nothing lost, every answer verbatim.

The documents are drawn from lines of leaflet words, list items, headings and any
characters at all (unicode, tabs, CR, form feeds, very long words), joined by LF,
CRLF, blank and whitespace-only lines.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.documents import Document
from ingest.loaders import LoadError, load_html, load_md, load_txt
from ingest.sections import split_sections
from ingest.units import LIST_ITEM, split_units

_WORDS = st.sampled_from(
    ["Baclofen", "dose", "tablets", "mg", "a", "the", "Overdose", "Symptoms:", "e.g.", "Dr.", "2.5-4", "h.",
     "coma.", "Take", "(bedwetting)", "ü", "—", "Side effects", "Keep", "children.", "Lioresal®", "¿Qué?",
     "Überdosis.", "α-blockers", "2–3", "日本語の文。", "«Baclosan»", "?", "!", "...", "\t", "Mr.", "No."]
)
_LONG_WORD = st.text(st.characters(exclude_categories=["Cs", "Zs", "Cc"]), min_size=60, max_size=300)
_LINE = st.one_of(
    st.lists(_WORDS, min_size=1, max_size=40).map(" ".join),  # a sentence-ish line
    st.lists(_WORDS, min_size=1, max_size=4).map(" ".join),  # a short line: may read as a heading
    st.lists(_WORDS, min_size=1, max_size=8).map(lambda w: "  • " + " ".join(w)),  # a list item
    st.tuples(st.sampled_from(["- ", "* ", "1. ", "2) ", "(a) ", "b. ", "– ", "\t• "]), st.lists(_WORDS, max_size=8))
    .map(lambda m: m[0] + " ".join(m[1])),  # other list markers, some with nothing after them
    st.lists(_WORDS, min_size=1, max_size=3).map(lambda w: "#" * 2 + " " + " ".join(w)),  # a Markdown heading
    _LONG_WORD,
    st.sampled_from(["", " ", "\t", "  \t ", "\x0c", "\u00a0", "\u2028"]),  # empty and whitespace-only
    st.text(min_size=1, max_size=80),  # anything at all
)
_SEPARATOR = st.sampled_from(["\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n  \n", "\n\t\n"])


@st.composite
def documents(draw) -> str:  # noqa: ANN001
    lines = draw(st.lists(_LINE, min_size=1, max_size=25))
    if draw(st.booleans()) and len(lines) > 2:  # repeated text, as real leaflets have
        lines += lines[: draw(st.integers(1, len(lines)))]
    return "".join(line + draw(_SEPARATOR) for line in lines)


ANY_TEXT = st.one_of(documents(), st.text(max_size=400))
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _document(text: str, markdown: bool = False) -> Document:
    headings = load_md(text.encode("utf-8")).headings if markdown and text.strip() and "\x00" not in text else None
    return Document("d", "d.txt", "Leaflet", "test", "txt", "h", text, split_sections(text, headings))


def _list_markers(text: str) -> set[int]:
    """Offsets of the characters of every line's list marker ("  • ", "1. ", "(a) ")."""
    marked: set[int] = set()
    offset = 0
    for line in text.split("\n"):
        marker = LIST_ITEM.match(line)
        if marker:
            marked.update(range(offset, offset + marker.end()))
        offset += len(line) + 1
    return marked


# --- answer units --------------------------------------------------------------------------

@PROPERTY
@given(text=ANY_TEXT, markdown=st.booleans())
# pysbd placed a sentence that repeats the text before it back inside that one, and the last "?" was in no unit
@example(text="Baclofen ? ? ?\n", markdown=False)
def test_answer_units_are_exact_ordered_and_cover_all_but_list_markers(text: str, markdown: bool) -> None:
    """Units (ingest.units.split_units, what the bundle stores):

    - each is a non-empty, stripped piece of one line: ``text[start:end]`` has no
      leading or trailing white space and no line feed;
    - they are in order and do not overlap; paragraph numbers never go down;
    - cover: every character that is not white space lies in exactly one unit, but
      for the list marker at the start of a line (``LIST_ITEM``: "  • ", "1. ", "(a) "),
      which no unit holds; nothing else is dropped.
    """
    document = _document(text)
    units = split_units(document)
    headings = [s.heading for s in document.sections if s.heading is not None]
    covered = [0] * len(text)
    for unit in units:
        assert 0 <= unit.start < unit.end <= len(text)
        piece = text[unit.start:unit.end]
        assert piece == piece.strip() and "\n" not in piece
        assert unit.lead_in == piece.endswith(":")
        assert unit.heading == any(h.start <= unit.start < h.end for h in headings)
        for i in range(unit.start, unit.end):
            covered[i] += 1
    for before, after in zip(units, units[1:]):
        assert before.end <= after.start
        assert before.paragraph <= after.paragraph
    markers = _list_markers(text)
    for i, ch in enumerate(text):
        if i in markers:
            assert covered[i] == 0, f"list marker character {ch!r} at {i} is in a unit"
        elif not ch.isspace():
            assert covered[i] == 1, f"{ch!r} at {i} is in {covered[i]} units"


# --- sections ------------------------------------------------------------------------------

def _assert_sections_cover(text: str, sections) -> None:  # noqa: ANN001
    """Sections run end to end from the first non-blank character to the end of the text:
    each ends where the next starts, none is empty, a heading lies at the start of its
    section, and what precedes the first section is white space only."""
    if not text.strip():
        assert sections == ()
        return
    assert sections
    assert not text[: sections[0].start].strip()
    assert sections[-1].end == len(text)
    for before, after in zip(sections, sections[1:]):
        assert before.end == after.start
    for section in sections:
        assert 0 <= section.start < section.end <= len(text)
        assert text[section.start:section.end].strip()
        if section.heading is None:
            assert section.title is None
        else:
            assert section.heading.start == section.start <= section.heading.end <= section.end
            heading_text = " ".join(text[section.heading.start:section.heading.end].split())
            for title in (section.title or "").split(" / "):
                assert title in heading_text


@PROPERTY
@given(text=ANY_TEXT)
def test_sections_are_exact_ordered_and_cover_the_text(text: str) -> None:
    _assert_sections_cover(text, split_sections(text))


# --- loaders -------------------------------------------------------------------------------

@PROPERTY
@given(text=ANY_TEXT)
def test_txt_canonical_text_is_the_file_text(text: str) -> None:
    """A ``.txt`` file's canonical text is its decoded content unchanged (so every word is kept)."""
    if not text.strip():
        with pytest.raises(LoadError, match=r"no text in the file \(empty\)"):
            load_txt(text.encode("utf-8"))
        return
    if "\x00" in text:
        with pytest.raises(LoadError, match="NUL"):
            load_txt(text.encode("utf-8"))
        return
    assert load_txt(text.encode("utf-8")).text == text
    assert load_txt(b"\xef\xbb\xbf" + text.encode("utf-8")).text == text


def _markdown_headings(text: str) -> list[str]:
    """What markdown-it reads as each heading's text (white space normalised)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    return [" ".join(tokens[i + 1].content.split()) for i, t in enumerate(tokens) if t.type == "heading_open"]


@PROPERTY
@given(text=ANY_TEXT)
# the loader counted lines with str.splitlines, which also ends one at U+2028 or a form feed: the heading
# span pointed at "y", the line before "# Dose"
@example(text="x\u2028y\n# Dose\n")
def test_markdown_canonical_text_is_the_file_text_and_its_headings_point_at_them(text: str) -> None:
    """A ``.md`` file's canonical text is its content unchanged; each heading span the loader
    passes on holds the heading Markdown reads there, and the sections they make cover the text."""
    if not text.strip() or "\x00" in text:
        return
    parsed = load_md(text.encode("utf-8"))
    assert parsed.text == text
    headings = parsed.headings or []
    expected = _markdown_headings(text)
    assert len(headings) == len(expected)
    for span, words in zip(headings, expected):
        assert 0 <= span.start <= span.end <= len(text)
        assert words in " ".join(text[span.start:span.end].split())
    for before, after in zip(headings, headings[1:]):
        assert before.end <= after.start
    _assert_sections_cover(text, split_sections(parsed.text, parsed.headings))


_BLOCK_TAGS = st.sampled_from(["p", "h1", "h2", "h3", "li", "div", "td", "blockquote", "pre"])
_WRAP = {"li": "<ul>{}</ul>", "td": "<table><tr>{}</tr></table>"}
"""Where a block may stand (the parser drops a ``<td>`` outside a table)."""


@PROPERTY
@given(blocks=st.lists(st.tuples(_BLOCK_TAGS, ANY_TEXT), min_size=1, max_size=8))
def test_html_canonical_text_keeps_every_word_of_every_block(blocks: list[tuple[str, str]]) -> None:
    """HTML: each block element's text, white space collapsed, is one paragraph of the
    canonical text (blank-line separated), every word kept in order; headings point at theirs."""
    body = "".join(_WRAP.get(tag, "{}").format(f"<{tag}>{html.escape(text)}</{tag}>") for tag, text in blocks)
    page = f"<html><head><title>t</title></head><body>{body}</body></html>"
    kept = [(tag, " ".join(text.split())) for tag, text in blocks]
    kept = [(tag, words) for tag, words in kept if words]
    if "\x00" in page:
        return
    if not kept:
        with pytest.raises(LoadError, match=r"no text in the HTML document \(empty\)"):
            load_html(page.encode("utf-8"))
        return
    parsed = load_html(page.encode("utf-8"))
    assert parsed.text == "\n\n".join(words for _, words in kept)
    assert [parsed.text[h.start:h.end] for h in parsed.headings or []] == [
        words for tag, words in kept if tag.startswith("h")
    ]
    _assert_sections_cover(parsed.text, split_sections(parsed.text, parsed.headings))


# --- answers -------------------------------------------------------------------------------

MARKDOWN_DOC = (
    "# Lioresal® (baclofen) — patient notes\r\n\r\n"
    "Lioresal relaxes muscles. Take it ? ? ? with food.\r\n\r\n"
    "## Überdosis / overdose\r\n\r\n"
    "Symptoms of overdose:\r\n"
    "- drowsiness\r\n"
    "- breathing problems\r\n"
    "- coma\r\n\r\n"
    "x\u2028y\n## Storage\n\nKeep below 25 °C, out of the reach of children.\n"
)
HTML_DOC = (
    "<html><head><title>Baclofen FAQ</title></head><body>"
    "<h1>Baclofen FAQ</h1><p>Baclofen\tis a muscle relaxant. Its half-life is 2–4 hours.</p>"
    "<h2>Dose</h2><ul><li>Start with 5 mg three times a day.</li><li>Increase by 5 mg every 3 days.</li></ul>"
    "<table><tr><td>Max dose</td><td>80 mg/day</td></tr></table></body></html>"
)
TEXT_DOC = (
    "Warnings\r\n\r\n"
    "\tDo not stop taking baclofen suddenly: hallucinations and seizures may follow.\r\n"
    "  • Tell your doctor if you are pregnant.\r\n"
    "  • \r\n"
    "1) Avoid alcohol.\r\n\r\n\r\n"
    + "W" * 300 + " is a very long word.\r\n"
    "日本語の文。 Dr. No. 5 ... Mr. Smith took 2.5-4 mg.\r\n"
)


@pytest.fixture(scope="module")
def small_answerer(tmp_path_factory: pytest.TempPathFactory, embedder):  # noqa: ANN001, ANN201
    """One real index, built once for the module: the first half of a seed leaflet (its first
    sections: half the time to embed) and three small documents in Markdown (CRLF, U+2028),
    HTML and plain text (tabs, bullets, an empty item, a very long word)."""
    from ingest.build import IndexBuilder
    from ingest.bundle import load_bundle
    from qa_service.answering import Answerer
    from qa_service.settings import ServiceSettings, ServingSettings
    from tests.conftest import CORPUS

    root = tmp_path_factory.mktemp("props")
    corpus = root / "corpus"
    corpus.mkdir()
    leaflet = (CORPUS / "baclosan-tablets-leaflet.txt").read_text(encoding="utf-8")
    (corpus / "baclosan-tablets-leaflet.txt").write_text(leaflet[: leaflet.rfind("\n\n", 0, 5000) + 1], encoding="utf-8")
    shutil.copy(CORPUS / "baclosan-tablets-leaflet.txt.meta.json", corpus)
    (corpus / "lioresal-notes.md").write_bytes(MARKDOWN_DOC.encode("utf-8"))
    (corpus / "baclofen-faq.html").write_bytes(HTML_DOC.encode("utf-8"))
    (corpus / "warnings.txt").write_bytes(TEXT_DOC.encode("utf-8"))
    # no answer cache: every example is answered afresh
    settings = ServiceSettings(corpus_dir=corpus, index_dir=root / "index", serving=ServingSettings(answer_cache=0))
    report = IndexBuilder(settings, embedder).build()
    assert report.documents == 4 and not report.skipped
    return Answerer(load_bundle(settings.index_dir), embedder, settings)


_QUESTION_WORDS = st.sampled_from(
    ["What", "is", "the", "dose", "of", "baclofen", "Lioresal", "Baclosan", "overdose", "symptoms", "?", "how",
     "long", "half-life", "pregnant", "alcohol", "storage", "children", "mg", "xanax", "ibuprofen", "Überdosis",
     "日本語", "W" * 50, "can", "I", "take", "it", "with", "food", "stop", "suddenly"]
)
QUESTIONS = st.one_of(
    st.lists(_QUESTION_WORDS, min_size=1, max_size=15).map(" ".join),
    st.text(min_size=1, max_size=200),
).filter(lambda q: q.strip())  # the API's contract (AskRequest): a question that is not blank


ASKED = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ONLY = st.one_of(st.none(), st.lists(st.sampled_from(
    ["baclosan-tablets-leaflet", "lioresal-notes", "baclofen-faq", "warnings"]), max_size=3, unique=True))
"""No restriction, or some of the documents (none at all, too: the API lets ``doc_ids: []`` through)."""


@ASKED
@given(question=QUESTIONS, top_k=st.integers(1, 20), only=ONLY)
def test_every_answer_and_passage_is_verbatim(small_answerer, question: str, top_k: int, only) -> None:  # noqa: ANN001
    """For any question, nothing raises, and every answer is ``document.text[start:end]`` of its
    citation, inside its passage, which is ``document.text[start:end]`` too, from the documents asked;
    the citation names the section the answer starts in."""
    bundle = small_answerer.bundle
    response = small_answerer.ask(question, top_k=top_k, doc_ids=only)
    assert response.answered == bool(response.answers)
    assert len(response.answers) <= top_k
    for answer in response.answers:
        citation, passage = answer.citation, answer.passage
        document = bundle.documents[citation.doc_id]
        assert only is None or citation.doc_id in only
        assert 0 <= citation.start < citation.end <= len(document.text)
        assert answer.text == document.text[citation.start:citation.end]
        assert passage.text == document.text[passage.start:passage.end]
        assert passage.start <= citation.start and citation.end <= passage.end
        section = document.section_at(citation.start)
        assert citation.section == (section.title if section else None)


@settings(ASKED, max_examples=20)
@given(query=QUESTIONS, k=st.integers(1, 20), only=ONLY)
def test_every_search_result_is_verbatim(small_answerer, query: str, k: int, only) -> None:  # noqa: ANN001
    """For any query, nothing raises, and every passage found is ``document.text[start:end]``."""
    results = small_answerer.search(query, k=k, doc_ids=only).results
    assert len(results) <= k
    for result in results:
        citation = result.citation
        document = small_answerer.bundle.documents[citation.doc_id]
        assert only is None or citation.doc_id in only
        assert result.text == document.text[citation.start:citation.end] and result.text.strip()

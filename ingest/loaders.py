"""Format loaders: a file's bytes become canonical text, a title hint and known headings.

One loader per format, chosen by file suffix through :func:`loader_for`. A loader
raises :class:`LoadError` with a reason a person can act on; the corpus reader
reports it by file name and goes on with the rest.

Canonical text rules:
- ``.txt`` and ``.md``: the file's decoded UTF-8 content, unchanged (a leading
  byte-order mark is dropped), so a citation can be checked against the file.
- ``.html``: the visible text, one block element (heading, paragraph, list item,
  table cell ...) per paragraph; headings ``h1``-``h6`` are kept as known headings.
- ``.pdf``: the extracted text of each page, pages separated by a blank line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .documents import Span


class LoadError(Exception):
    """A file that can't be turned into text; the message says why."""


@dataclass(frozen=True)
class ParsedText:
    text: str
    title: str | None = None
    headings: list[Span] | None = field(default=None)
    """Heading spans known from the format's markup; ``None`` means "detect them"."""


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    if "\x00" in text:
        raise LoadError("contains NUL bytes: a binary file, not text")
    return text


def _require_text(text: str) -> str:
    if not text.strip():
        raise LoadError("no text in the file (empty)")
    return text


def load_txt(data: bytes) -> ParsedText:
    return ParsedText(_require_text(_decode(data)))


_MARKDOWN_LINE_END = re.compile(r"\r\n?|\n")


def load_md(data: bytes) -> ParsedText:
    from markdown_it import MarkdownIt

    text = _require_text(_decode(data))
    # Markdown's lines (token.map counts them) end at LF, CR LF or CR only; str.splitlines
    # would also end one at a form feed, U+2028 and the like, and every heading after it
    # would point at the line before its own.
    line_starts = [0, *(m.end() for m in _MARKDOWN_LINE_END.finditer(text)), len(text)]
    headings: list[Span] = []
    title = None
    tokens = MarkdownIt("commonmark").parse(text)
    for i, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None:
            continue
        first, last = token.map
        start, end = line_starts[first], line_starts[last]
        end = start + len(text[start:end].rstrip())
        headings.append(Span(start, end))
        if title is None and token.tag == "h1":
            title = tokens[i + 1].content.strip() or None
    return ParsedText(text, title=title, headings=headings)


_HTML_BLOCKS = {
    "address", "article", "aside", "blockquote", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "ul", "br",
}
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_SKIP = "script, style, noscript, template, head, svg, iframe, object"


def load_html(data: bytes) -> ParsedText:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_decode(data))
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else None
    tree.strip_tags(_HTML_SKIP.split(", "))
    root = tree.body or tree.root
    if root is None:
        raise LoadError("no text in the HTML document (empty)")

    blocks: list[tuple[str, bool]] = []  # (text, is_heading)
    current: list[str] = []

    def flush(is_heading: bool = False) -> None:
        joined = " ".join("".join(current).split())
        if joined:
            blocks.append((joined, is_heading))
        current.clear()

    def walk(node) -> None:  # noqa: ANN001 - selectolax node
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                current.append(child.text_content or "")
            elif tag in _HTML_BLOCKS:
                flush()
                walk(child)
                flush(is_heading=tag in _HTML_HEADINGS)
            elif tag not in ("-comment",):
                walk(child)

    walk(root)
    flush()
    if not blocks:
        raise LoadError("no text in the HTML document (empty)")

    parts: list[str] = []
    headings: list[Span] = []
    offset = 0
    for text, is_heading in blocks:
        if is_heading:
            headings.append(Span(offset, offset + len(text)))
            if title is None:
                title = text
        parts.append(text)
        offset += len(text) + 2
    return ParsedText("\n\n".join(parts), title=title or None, headings=headings)


def load_pdf(data: bytes) -> ParsedText:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError("the PDF is encrypted")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({exc.__class__.__name__}: {exc})") from None
    text = "\n\n".join(page for page in pages if page)
    if not text.strip():
        raise LoadError("the PDF has no extractable text (a scanned image?)")
    return ParsedText(text, title=(meta_title or "").strip() or None)


Loader = Callable[[bytes], ParsedText]

LOADERS: dict[str, Loader] = {
    ".txt": load_txt,
    ".text": load_txt,
    ".md": load_md,
    ".markdown": load_md,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}


def loader_for(suffix: str) -> Loader | None:
    """The loader for a file suffix such as ``".pdf"``, or ``None`` if unsupported."""
    return LOADERS.get(suffix.lower())

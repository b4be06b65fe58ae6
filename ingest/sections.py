"""Split a document's canonical text into headed sections.

Formats with markup (Markdown, HTML) pass their headings in. Plain text and PDF
text have none, so headings are detected: a short line that stands on its own
after a blank line (or at the start of the text), is not a list item, and reads
like a title rather than a sentence.
"""

from __future__ import annotations

import re

from .documents import Section, Span

MAX_HEADING_CHARS = 100
MAX_HEADING_WORDS = 12
# A heading may end in "." or ":" only when it is this short ("Lithium salts.").
MAX_PUNCTUATED_HEADING_WORDS = 5

_LIST_MARKER = re.compile(r"^\s*(?:[-*+•·●▪◦‣–—]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
_LINE = re.compile(r"[^\n]*(?:\n|$)")


def _looks_like_heading(line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > MAX_HEADING_CHARS:
        return False
    if _LIST_MARKER.match(line) or line[:1].isspace():
        return False
    if not any(ch.isalpha() for ch in stripped):
        return False
    words = stripped.split()
    if len(words) > MAX_HEADING_WORDS:
        return False
    last = stripped[-1]
    if last in ",;":
        return False
    if last in ".:" and len(words) > MAX_PUNCTUATED_HEADING_WORDS:
        return False
    # A sentence broken across the line ("... the doses used afterPlasma") has
    # inner sentence punctuation; a heading rarely does.
    if re.search(r"[.!?;]\s+\S", stripped) and last != "?":
        return False
    return True


def detect_headings(text: str) -> list[Span]:
    """Heading spans found by layout in plain text."""
    headings: list[Span] = []
    previous_blank = True
    offset = 0
    for match in _LINE.finditer(text):
        line = match.group(0)
        if not line:
            break
        body = line.rstrip("\r\n")
        if body.strip() and previous_blank and _looks_like_heading(body):
            rest = text[match.end():]
            if rest.strip():  # a heading introduces something
                start = offset + (len(body) - len(body.lstrip()))
                headings.append(Span(start, offset + len(body.rstrip())))
        previous_blank = not body.strip()
        offset = match.end()
    return headings


def split_sections(text: str, headings: list[Span] | None = None) -> tuple[Section, ...]:
    """Sections covering ``text`` end to end, each running from its heading to the next."""
    if headings is None:
        headings = detect_headings(text)
    headings = sorted(headings, key=lambda span: span.start)
    sections: list[Section] = []
    if not headings or headings[0].start > 0:
        first_end = headings[0].start if headings else len(text)
        if text[:first_end].strip():
            sections.append(Section(title=None, start=0, end=first_end))
    # Headings with nothing between them ("Side effects" then "Very often") make
    # one section whose title names both, so no chunk is a bare heading.
    groups: list[list[Span]] = []
    for i, heading in enumerate(headings):
        if groups and not text[groups[-1][-1].end:heading.start].strip():
            groups[-1].append(heading)
        else:
            groups.append([heading])
    for i, group in enumerate(groups):
        end = groups[i + 1][0].start if i + 1 < len(groups) else len(text)
        titles: list[str] = []
        for span in group:
            title = " ".join(text[span.start:span.end].split()).lstrip("#").strip()
            if title and title.casefold() not in (t.casefold() for t in titles):
                titles.append(title)
        heading = Span(group[0].start, group[-1].end)
        sections.append(
            Section(title=" / ".join(titles) or None, start=heading.start, end=end, heading=heading)
        )
    return tuple(sections)

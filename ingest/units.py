"""Answer units: the sentences, list items and headings a document is read in.

Ingest cuts every document into units once, with exact offsets, and stores
them (and their vectors) in the bundle; the query service scores and joins
them into answers without segmenting or embedding anything per question.
A line is a paragraph's worth of sentences (pysbd), a list item, or a
heading; a blank line, a list item or a heading ends a paragraph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pysbd

from .documents import Document

MIN_SENTENCE_CHARS = 25
"""A fragment shorter than this ("- from 249 rubles." after "50 pcs.") joins the sentence before it."""
LIST_ITEM = re.compile(r"^\s*(?:[-*+•·●▪◦‣–—]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")
UNITS_VERSION = "pysbd-lines-v2"

LIST_FLAG, HEADING_FLAG, LEAD_IN_FLAG = 1, 2, 4
UNIT_DTYPE = np.dtype([("doc", "<i4"), ("start", "<i8"), ("end", "<i8"), ("paragraph", "<i4"), ("flags", "u1")])
"""One row a unit: the document's row in the bundle, offsets, paragraph number, flags."""


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    paragraph: int
    """Units in the same paragraph share this number (counted through the document)."""
    list_item: bool
    heading: bool
    lead_in: bool = False
    """The unit ends in ":" and introduces what follows."""

    @property
    def flags(self) -> int:
        return (LIST_FLAG if self.list_item else 0) | (HEADING_FLAG if self.heading else 0) | (
            LEAD_IN_FLAG if self.lead_in else 0
        )


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def _sentences(body: str) -> list[tuple[int, int]]:
    """Sentence ranges of one line; fragments too short to stand alone join their neighbour.

    pysbd says where the sentences are, but its own character spans can't be trusted: it
    finds each sentence by searching the whole line again, so a sentence that repeats
    text before it ("Baclofen ? ? ?") is placed back inside the one before and the end
    of the line is lost. The sentences are found here in order, each after the one
    before, and each runs to where the next begins: the ranges tile the line.
    """
    starts: list[int] = []
    cursor = 0
    for sentence in _segmenter().segment(body):
        words = sentence.sent.strip()
        at = body.find(words, cursor) if words else -1
        if at < 0:
            continue  # not found as pysbd wrote it: it stays with the sentence before
        starts.append(at)
        cursor = at + len(words)
    if not starts:
        return [(0, len(body))] if body.strip() else []
    starts[0] = 0
    pieces: list[tuple[int, int]] = []
    for a, next_start in zip(starts, [*starts[1:], len(body)]):
        b = a + len(body[a:next_start].rstrip())
        if b <= a:
            continue
        if pieces and (
            len(body[a:b].strip()) < MIN_SENTENCE_CHARS
            or len(body[pieces[-1][0]:pieces[-1][1]].strip()) < MIN_SENTENCE_CHARS
        ):
            pieces[-1] = (pieces[-1][0], b)
        else:
            pieces.append((a, b))
    return pieces


def split_units(document: Document, start: int = 0, end: int | None = None) -> list[Unit]:
    """Sentences, list items and headings of ``document.text[start:end]``, with absolute offsets."""
    text = document.text
    end = len(text) if end is None else end
    headings = [s.heading for s in document.sections if s.heading is not None]
    units: list[Unit] = []
    paragraph = 0
    offset = start
    for line in text[start:end].split("\n"):
        line_start = offset
        offset += len(line) + 1
        if not line.strip():
            paragraph += 1
            continue
        marker = LIST_ITEM.match(line)
        body_start = line_start + (marker.end() if marker else len(line) - len(line.lstrip()))
        body = text[body_start:line_start + len(line)].rstrip()
        if not body:
            continue
        is_heading = any(h.start <= body_start < h.end for h in headings)
        pieces = [(0, len(body))] if marker or is_heading else _sentences(body)
        for a, b in pieces:
            while a < b and body[a].isspace():
                a += 1
            if a < b:
                units.append(
                    Unit(body_start + a, body_start + b, paragraph, list_item=bool(marker), heading=is_heading,
                         lead_in=body[b - 1] == ":")
                )
        if marker or is_heading:
            paragraph += 1
    return units


def unit_rows(doc_row: int, units: Iterable[Unit]) -> np.ndarray:
    """The bundle's table rows for one document's units."""
    units = list(units)
    table = np.zeros(len(units), dtype=UNIT_DTYPE)
    for i, u in enumerate(units):
        table[i] = (doc_row, u.start, u.end, u.paragraph, u.flags)
    return table


def unit_from_row(row: np.void) -> Unit:
    flags = int(row["flags"])
    return Unit(int(row["start"]), int(row["end"]), int(row["paragraph"]), bool(flags & LIST_FLAG),
                bool(flags & HEADING_FLAG), bool(flags & LEAD_IN_FLAG))

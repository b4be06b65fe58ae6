"""The lead's review: questions grouped by similar wording, from the records file.

Two questions are one group when they have the same set of search terms: the
content words the one analyser (``ingest.analysis.terms``) keeps, lower-cased
and stemmed, in any order and any number of times. So "How is an overdose
treated?", "overdose: how treated" and "HOW IS AN OVERDOSE TREATED" are one,
while "baclofen dose for children" and "ibuprofen dose for children" stay two
(a medicine's name is a term like any other: no threshold of "close enough"
merges questions about different medicines). A question with no search term at
all ("What is it?") is grouped only with its own wording (ignoring case and
spacing, as the records group rows).

The records group rows by that coarser key first (``normalise_question``);
this module merges those rows into groups, and the counts of a group are the
sums of its wordings'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from ingest.analysis import terms

from .records import AskedQuestion, Records, UnansweredQuestion, normalise_question


@dataclass(frozen=True)
class Wording:
    """One way a group's question was put (its latest form, ignoring case and spacing), and how often."""

    question: str
    count: int


@dataclass(frozen=True)
class UnansweredGroup:
    """Declined or voted-down questions that share their search terms.

    ``question`` is the wording used most often (of equals, the latest);
    ``count`` = ``declined`` + ``thumbs_down``; ``reasons`` are the distinct
    reasons for declining (ignoring case), sorted; ``wordings`` most frequent first.
    """

    question: str
    terms: tuple[str, ...]
    count: int
    declined: int
    thumbs_down: int
    last_asked: str
    reasons: tuple[str, ...]
    wordings: tuple[Wording, ...]


@dataclass(frozen=True)
class AskedGroup:
    """Asked questions that share their search terms: ``count`` asks, ``answered`` of them answered."""

    question: str
    terms: tuple[str, ...]
    count: int
    answered: int
    last_asked: str
    wordings: tuple[Wording, ...]


GroupKey = tuple[tuple[str, ...], str]


def wording_key(question: str) -> GroupKey:
    """What questions of one group share: their distinct search terms, sorted; for a question with
    none, its own wording ignoring case and spacing (so such questions are not all one group)."""
    found = tuple(sorted(set(terms([question])[0])))
    return found, "" if found else normalise_question(question)


_Row = TypeVar("_Row")
_G = TypeVar("_G", UnansweredGroup, AskedGroup)


def _grouped(rows: Iterable[_Row], question: Callable[[_Row], str], count: Callable[[_Row], int],
             last: Callable[[_Row], str]) -> list[tuple[GroupKey, list[_Row]]]:
    """Rows by their question's key, each group's rows most frequent first (of equals, latest first)."""
    groups: dict[GroupKey, list[_Row]] = {}
    for row in rows:
        groups.setdefault(wording_key(question(row)), []).append(row)
    for members in groups.values():
        members.sort(key=last, reverse=True)
        members.sort(key=count, reverse=True)  # stable: equals stay latest first
    return list(groups.items())


def _ranked(groups: list[_G], limit: int | None) -> list[_G]:
    """Most frequent first, then the latest, then by wording (a stable order)."""
    groups.sort(key=lambda g: g.question)
    groups.sort(key=lambda g: g.last_asked, reverse=True)
    groups.sort(key=lambda g: g.count, reverse=True)
    return groups if limit is None else groups[:limit]


def _distinct(reasons: Iterable[str]) -> tuple[str, ...]:
    """The reasons once each, ignoring case (a reason may quote the question's wording of a name), sorted."""
    found: dict[str, str] = {}
    for reason in sorted(reasons):
        found.setdefault(reason.casefold(), reason)
    return tuple(sorted(found.values()))


def group_unanswered(rows: Iterable[UnansweredQuestion], limit: int | None = None) -> list[UnansweredGroup]:
    """``Records.unanswered`` rows merged into groups of similar wording, most frequent first."""
    groups = []
    for (key, _), members in _grouped(rows, lambda r: r.question, lambda r: r.declined + r.thumbs_down,
                                      lambda r: r.last_asked):
        groups.append(UnansweredGroup(
            question=members[0].question,
            terms=key,
            count=sum(m.declined + m.thumbs_down for m in members),
            declined=sum(m.declined for m in members),
            thumbs_down=sum(m.thumbs_down for m in members),
            last_asked=max(m.last_asked for m in members),
            reasons=_distinct(r for m in members for r in m.reasons),
            wordings=tuple(Wording(m.question, m.declined + m.thumbs_down) for m in members),
        ))
    return _ranked(groups, limit)


def group_asked(rows: Iterable[AskedQuestion], limit: int | None = None) -> list[AskedGroup]:
    """``Records.asked`` rows merged into groups of similar wording, most asked first."""
    groups = []
    for (key, _), members in _grouped(rows, lambda r: r.question, lambda r: r.asked, lambda r: r.last_asked):
        groups.append(AskedGroup(
            question=members[0].question,
            terms=key,
            count=sum(m.asked for m in members),
            answered=sum(m.answered for m in members),
            last_asked=max(m.last_asked for m in members),
            wordings=tuple(Wording(m.question, m.asked) for m in members),
        ))
    return _ranked(groups, limit)


def unanswered_groups(records: Records, limit: int | None = None) -> list[UnansweredGroup]:
    """The unanswered questions of the records file, grouped (every row is read: a group's counts
    are whole however many groups are kept)."""
    return group_unanswered(records.unanswered(limit=None), limit)


def most_asked(records: Records, limit: int | None = None) -> list[AskedGroup]:
    """The questions asked most often, grouped alike."""
    return group_asked(records.asked(limit=None), limit)


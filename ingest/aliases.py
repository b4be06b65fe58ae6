"""Brand ↔ generic names, read off the corpus itself.

Leaflets say which names stand for the same medicine: "the analogues of
Baclosan tablets are Baclofen, Liorasal", "the active substance of Baclosan is
baclofen", "baclofen, sold under the brand names Lioresal and Kemstro". A
question that uses one name should find passages that use another, so each
name found in such a statement expands to the others (see QueryExpander).

Only explicit statements count: a name is never guessed from a parenthesis or
from capitalisation alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .analysis import STOP_WORDS

_NAME = r"[A-Za-z][A-Za-z0-9-]{2,}"
# Words that follow a name without being one ("Baclosan tablets").
_FORMS = r"(?:\s+(?:tablets?|capsules?|pills?|injection|solution|suspension|syrup|drops|cream|gel|drug|medicine|preparation))?"
_LIST = r"([^.;\n]{3,200})"

_PATTERNS = [
    # "the analogues of Baclosan tablets are Baclofen, Liorasal (rectal suppositories)"
    re.compile(
        r"\b(?:analogues|analogs|equivalents|generics|brand names|trade names|other names)\s+(?:of|for|to)\s+"
        rf"(?:the\s+)?(?P<name>{_NAME}){_FORMS}\s*(?:are|is|include|includes|:)\s+{_LIST}",
        re.IGNORECASE,
    ),
    # "the active substance of Baclosan tablets is baclofen"
    re.compile(
        r"\b(?:active\s+(?:substance|ingredient|component)|generic\s+name|international\s+non-?proprietary\s+name)"
        rf"\s+(?:of|in)\s+(?:the\s+)?(?P<name>{_NAME}){_FORMS}\s*(?:is|:)\s+{_LIST}",
        re.IGNORECASE,
    ),
    # "baclofen, sold under the brand names Lioresal and Kemstro" / "baclofen (brand name: Lioresal)"
    re.compile(
        rf"\b(?P<name>{_NAME})\s*[,(]\s*(?:(?:also\s+)?(?:sold|marketed|known)\s+(?:under\s+|as\s+)(?:the\s+)?)?"
        rf"(?:brand|trade)\s+names?\s*:?\s*{_LIST}",
        re.IGNORECASE,
    ),
]
_SEPARATORS = re.compile(r",|\band\b|\bor\b|/")
_NOT_NAMES = STOP_WORDS | {
    "tablet", "tablets", "capsule", "capsules", "drug", "drugs", "medicine", "medicines", "preparation",
    "preparations", "form", "forms", "rectal", "oral", "suppositories", "injection", "solution", "substance",
    "active", "ingredient", "brand", "brands", "name", "names", "generic", "analogues", "analogs", "such",
}


def _names(listing: str) -> list[str]:
    """The first word of each item of a listing: "Baclofen, Liorasal (rectal suppositories)"."""
    names = []
    depth = 0
    for piece in re.split(r"(\(|\))", listing):
        if piece == "(":
            depth += 1
        elif piece == ")":
            if depth == 0:
                break  # the parenthesis the statement stands in is closed
            depth -= 1
        elif depth == 0:
            for item in _SEPARATORS.split(piece):
                words = re.findall(r"[A-Za-z][A-Za-z0-9-]*", item)
                if words and re.fullmatch(_NAME, words[0]) and words[0].casefold() not in _NOT_NAMES:
                    names.append(words[0])
    return names


def find_aliases(texts: Iterable[str]) -> dict[str, list[str]]:
    """Each name stated to stand for the same medicine as others → those others (lower case)."""
    groups: list[set[str]] = []
    for text in texts:
        for pattern in _PATTERNS:
            for match in pattern.finditer(text):
                group = {match.group("name").casefold()} | {n.casefold() for n in _names(match.group(match.lastindex))}
                group -= _NOT_NAMES
                if len(group) > 1:
                    groups.append(group)
    # Statements that share a name describe one medicine: merge them.
    merged: list[set[str]] = []
    for group in groups:
        overlapping = [g for g in merged if g & group]
        for g in overlapping:
            merged.remove(g)
            group |= g
        merged.append(group)
    return {name: sorted(group - {name}) for group in merged for name in sorted(group)}

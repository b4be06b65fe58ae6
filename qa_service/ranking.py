"""The learned answer ranker: features of every candidate answer unit, and the model that scores them.

Candidates are the answer units of the passages retrieval found, and the units
closest to the question anywhere in the corpus (so the right sentence is
reachable even when its chunk ranks low), each with its neighbours. Every
candidate gets the features below; a logistic model fitted on the dev splits
(``eval/train_ranker.py``, shipped as ``data/ranker.json``) turns them into
the probability that the unit holds the answer. That probability ranks the
answers and, calibrated by the same fit, is the confidence abstention uses.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.bundle import Bundle
from ingest.documents import Document
from ingest.analysis import terms as tokenize
from ingest.units import HEADING_FLAG, LEAD_IN_FLAG, LIST_FLAG

DEFAULT_MODEL = Path(__file__).parent / "data" / "ranker.json"

FEATURES = (
    "cosine",            # question ~ unit
    "cosine_gap",        # the best candidate's cosine minus this one's
    "coverage",          # idf-weighted share of the question's terms in the unit
    "neighbour",         # the better cosine of the unit before and after it (same document)
    "lead_in",           # cosine of the lead-in ("Symptoms of overdose:") a list item belongs to
    "section",           # idf-weighted share of the question's terms in the unit's section title
    "heading_cosine",    # question ~ the heading of the unit's section, minus the best candidate's (section intent)
    "passage_cosine",    # question ~ the chunk the unit lies in
    "passage_score",     # that chunk's fused retrieval score, min-max over the passages read (0: not read)
    "passage_first",     # 1 / rank of that chunk among the passages read (0: not read)
    "unit_first",        # 1 / rank of the unit in the corpus-wide unit search (0: not found by it)
    "type_match",        # the question asks for a duration / amount / instruction and the unit has one
    "type_missing",      # the question asks for one of those and the unit has none
    "list_item",
    "first_in_section",
    "length",            # log of the unit's characters
    "absent",            # share of the question's words the corpus never uses
)

_DURATION_Q = re.compile(r"\b(how long|half[- ]?life|how soon|how quickly|when will|stay in|last|duration|take effect|to work)\b", re.I)
_AMOUNT_Q = re.compile(r"\b(how much|how many|dose|dosage|doses|maximum|mg|amount|strength)\b", re.I)
_INSTRUCTION_Q = re.compile(r"\b(what (should|to|do|can)|how (to|should|is|are|do)|handled?|treated|treat|manage|do if|should i)\b", re.I)
_DURATION_A = re.compile(r"\b\d+([.,]\d+)?\s*(-|to|–)?\s*\d*\s*(hours?|h|hrs?|minutes?|min|days?|weeks?|months?|years?)\b", re.I)
_AMOUNT_A = re.compile(r"\b\d+([.,]\d+)?\s*(-|to|–)?\s*\d*\s*(mg|g|ml|mcg|μg|µg|tablets?|capsules?|units?|%)", re.I)
_INSTRUCTION_A = re.compile(
    r"\b(should|must|need to|take|give|stop|avoid|consult|contact|call|seek|use|do not|don't|empty|rinse|"
    r"administer|treatment|therapy|recommended|(is|are|be) (carried out|performed|done|given|required))\b", re.I
)


def question_types(question: str) -> tuple[bool, bool, bool]:
    """Whether the question asks for a duration, an amount, an instruction."""
    return bool(_DURATION_Q.search(question)), bool(_AMOUNT_Q.search(question)), bool(_INSTRUCTION_Q.search(question))


def _coverage(terms: set[str], weights: dict[str, float], tokens: Sequence[str]) -> float:
    if not terms:
        return 0.0
    present = terms & set(tokens)
    total = sum(weights.get(t, 0.0) for t in terms)
    return sum(weights.get(t, 0.0) for t in present) / total if total else 0.0


def _heading_rows(units: np.ndarray) -> np.ndarray:
    """For each unit row, the row of the nearest heading at or before it in the same document (-1: none)."""
    n = len(units)
    if not n:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)
    last = np.maximum.accumulate(np.where(units["flags"] & HEADING_FLAG, rows, -1))
    valid = last >= 0
    valid[valid] = units["doc"][last[valid]] == units["doc"][valid]
    return np.where(valid, last, -1)


def _sections_at(document: Document, offsets: np.ndarray) -> np.ndarray:
    """Index into ``document.sections`` of the section each offset lies in (-1: none), as
    ``document.section_at`` finds it."""
    sections = document.sections
    starts = np.array([s.start for s in sections], dtype=np.int64)
    ends = np.array([s.end for s in sections], dtype=np.int64)
    if np.all(starts <= ends) and np.all(starts[1:] >= ends[:-1]):
        # in order and apart: the one that starts last at or before the offset, if it reaches it
        at = np.searchsorted(starts, offsets, side="right") - 1
        inside = (at >= 0) & (offsets < ends[np.maximum(at, 0)]) & (offsets >= starts[np.maximum(at, 0)])
        return np.where(inside, at, -1)
    found = [document.section_at(int(o)) for o in offsets]
    index = {id(s): i for i, s in enumerate(sections)}
    return np.array([-1 if s is None else index[id(s)] for s in found], dtype=np.int64)


@dataclass
class Candidates:
    """Candidate answer units of one question: bundle rows and their feature matrix."""

    rows: np.ndarray
    features: np.ndarray
    cosine: np.ndarray
    chunk_of: list[int]
    """Chunk id each unit lies in (the best-scoring one that holds it)."""


class FeatureBuilder:
    """Computes :data:`FEATURES` for candidate units of a bundle.

    What a feature needs of a unit and not of the question (its neighbours, the
    lead-in of its list, its heading, its section, its length; lazily its terms,
    answer types and the chunks holding it) is worked out once per bundle, so a
    question costs array arithmetic over its candidates plus one small loop for
    the chunk each unit is read in. The features are those of the plain per-unit
    reading, value for value.
    """

    def __init__(self, bundle: Bundle, idf: dict[str, float]) -> None:
        self.bundle = bundle
        self.idf = idf
        self._chunk_starts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        by_doc: dict[str, list] = {}
        for chunk in bundle.chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        for doc_id, chunks in by_doc.items():
            chunks.sort(key=lambda c: c.start)
            self._chunk_starts[doc_id] = (
                np.array([c.start for c in chunks]), np.array([c.end for c in chunks]), np.array([c.chunk_id for c in chunks])
            )
        units = bundle.units
        n = len(units)
        self._heading_of = _heading_rows(units)
        # a plain view of the (memory-mapped) unit vectors: a row costs an index, not a memmap
        self._unit_vectors = np.asarray(bundle.unit_vectors)
        doc = units["doc"].astype(np.int64)
        flags = units["flags"].astype(np.int64)
        rows = np.arange(n, dtype=np.int64)
        heading = (flags & HEADING_FLAG) > 0
        # The units before and after each one in its document, unless a heading (-1: none).
        self._prev = np.full(n, -1, dtype=np.int64)
        self._next = np.full(n, -1, dtype=np.int64)
        if n > 1:
            ok = (doc[:-1] == doc[1:]) & ~heading[:-1]
            self._prev[1:][ok] = rows[:-1][ok]
            ok = (doc[1:] == doc[:-1]) & ~heading[1:]
            self._next[:-1][ok] = rows[1:][ok]
        # The lead-in ("Symptoms of overdose:") or heading a list item's list follows (-1: none).
        self._lead_in = np.full(n, -1, dtype=np.int64)
        doc_list, flag_list = doc.tolist(), flags.tolist()
        for row in np.flatnonzero(flags & LIST_FLAG).tolist():
            j = row - 1
            while j >= 0 and j > row - 30 and doc_list[j] == doc_list[row] and flag_list[j] & LIST_FLAG:
                j -= 1
            if j >= 0 and doc_list[j] == doc_list[row] and flag_list[j] & (LEAD_IN_FLAG | HEADING_FLAG):
                self._lead_in[row] = j
        self._list_item = ((flags & LIST_FLAG) > 0).astype(np.float64)
        starts, ends = units["start"].tolist(), units["end"].tolist()
        self._length = np.array([math.log1p(e - s) for s, e in zip(starts, ends)], dtype=np.float64)
        # The section each unit begins in: its title's terms (by title), and whether the unit opens it.
        self._section_of = np.full(n, -1, dtype=np.int64)
        self._first = np.zeros(n, dtype=np.float64)
        titles: dict[str, int] = {}
        unit_starts = units["start"]
        after_heading = np.zeros(n, dtype=bool)
        after_heading[1:] = heading[:-1]
        for doc_id in bundle.doc_ids:
            document = bundle.documents[doc_id]
            lo, hi = bundle.unit_range(doc_id)
            if not document.sections or lo == hi:
                continue
            title = np.array([titles.setdefault(s.title, len(titles)) if s.title else -1 for s in document.sections])
            headed = np.array([s.heading is not None for s in document.sections] + [False])
            at = _sections_at(document, unit_starts[lo:hi])
            self._section_of[lo:hi] = np.where(at >= 0, title[at], -1)
            self._first[lo:hi] = headed[at] & after_heading[lo:hi]  # (at == -1 reads the False at the end)
        self._title_terms = [frozenset(tokenize([title])[0]) for title in titles]
        self._title_keys = list(titles)
        # Per unit, filled the first time it is a candidate: its terms, its answer types, the chunks holding it.
        # (kept for at most 200,000 units at a time: a large corpus is read a part at a time)
        self._seen: dict[int, tuple[frozenset[str], tuple[int, ...]]] = {}
        self._types = np.zeros(n, dtype=np.int8)

    def context_of(self, row: int) -> tuple[str, str | None, str | None, str]:
        """What a reader sees of unit ``row``: its document's title, its section's title, the lead-in
        of the list it belongs to (not a heading: that is the section's title), and its own text."""
        bundle = self.bundle
        unit = bundle.units[row]
        document = bundle.documents[bundle.doc_ids[unit["doc"]]]
        section = int(self._section_of[row])
        lead = int(self._lead_in[row])
        lead_in = None
        if lead >= 0 and not bundle.units["flags"][lead] & HEADING_FLAG:
            lead_unit = bundle.units[lead]
            lead_in = document.text[lead_unit["start"]:lead_unit["end"]]
        return (document.title, self._title_keys[section] if section >= 0 else None, lead_in,
                document.text[unit["start"]:unit["end"]])

    def _tokens(self, row: int) -> list[str]:
        unit = self.bundle.units[row]
        text = self.bundle.documents[self.bundle.doc_ids[unit["doc"]]].text[unit["start"]:unit["end"]]
        return tokenize([text])[0]

    def chunks_holding(self, doc_id: str, start: int) -> np.ndarray:
        starts, ends, ids = self._chunk_starts.get(doc_id, (np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)))
        hi = int(np.searchsorted(starts, start, side="right"))
        holding = [int(ids[i]) for i in range(max(0, hi - 8), hi) if ends[i] > start]
        return np.array(holding or ([int(ids[hi - 1])] if hi else []), dtype=np.int64)

    def _learn(self, rows: list[int]) -> None:
        """Terms, answer types and holding chunks of units not seen before."""
        bundle = self.bundle
        units = bundle.units
        seen = self._seen
        if len(seen) + len(rows) > 200_000:
            seen.clear()
        for row in rows:
            if row in seen:
                continue
            unit = units[row]
            doc_id = bundle.doc_ids[unit["doc"]]
            start, end = int(unit["start"]), int(unit["end"])
            text = bundle.documents[doc_id].text[start:end]
            self._types[row] = (
                (1 if _DURATION_A.search(text) else 0) | (2 if _AMOUNT_A.search(text) else 0)
                | (4 if _INSTRUCTION_A.search(text) else 0)
            )
            seen[row] = (frozenset(tokenize([text])[0]), tuple(self.chunks_holding(doc_id, start).tolist()))

    def build(
        self,
        question: str,
        question_vector: np.ndarray,
        rows: np.ndarray,
        passage_scores: dict[int, tuple[float, int]],
        unit_ranks: dict[int, int],
        absent: float,
        read_with: dict[int, int] | None = None,
    ) -> Candidates:
        """Features of the units ``rows``; ``passage_scores`` maps a read chunk to (normalised score, rank),
        ``unit_ranks`` a unit found by the corpus-wide unit search to its rank, ``read_with`` a unit
        read as context of a passage that does not hold it (the rest of a paragraph the chunk cuts)
        to that passage."""
        return self.build_many(question, [question_vector], rows, passage_scores, unit_ranks, absent, read_with)[0]

    def build_many(
        self,
        question: str,
        question_vectors: Sequence[np.ndarray],
        rows: np.ndarray,
        passage_scores: dict[int, tuple[float, int]],
        unit_ranks: dict[int, int],
        absent: float,
        read_with: dict[int, int] | None = None,
    ) -> list[Candidates]:
        """:meth:`build` for each of ``question_vectors`` (readings of one question that differ only in
        what is embedded): what does not depend on the vector is computed once."""
        read_with = read_with or {}
        bundle = self.bundle
        rows = np.asarray(rows, dtype=np.int64)
        row_list = rows.tolist()
        count = len(row_list)
        self._learn(row_list)
        terms = {t for t in tokenize([question])[0] if t in self.idf}
        wants = question_types(question)
        base = np.zeros((count, len(FEATURES)), dtype=np.float64)
        column = {name: i for i, name in enumerate(FEATURES)}

        # idf-weighted coverage of the question's terms: by the unit, by its section's title
        idf = self.idf
        if terms:
            total = sum(idf.get(t, 0.0) for t in terms)
            if total:
                seen = self._seen
                base[:, column["coverage"]] = [
                    sum(idf.get(t, 0.0) for t in terms & seen[row][0]) / total for row in row_list
                ]
                sections = self._section_of[rows]
                title_cov = {s: sum(idf.get(t, 0.0) for t in terms & self._title_terms[s]) / total
                             for s in set(sections.tolist()) if s >= 0}
                base[:, column["section"]] = [title_cov.get(s, 0.0) for s in sections.tolist()]

        # the chunk each unit is read in: a read passage if one holds it, else the best chunk that does
        chunk_of: list[int] = []
        p_scores = base[:, column["passage_score"]]
        p_first = base[:, column["passage_first"]]
        seen = self._seen
        for i, row in enumerate(row_list):
            holding = seen[row][1]
            read = [c for c in holding if c in passage_scores]
            if not read and row in read_with:
                read = [read_with[row]]
            if read:
                chunk = max(read, key=lambda c: passage_scores[c][0])
                p_score, p_rank = passage_scores[chunk]
                p_scores[i] = p_score
                p_first[i] = 1.0 / p_rank if p_rank else 0.0
            else:
                chunk = holding[0] if holding else -1
            chunk_of.append(chunk)
        base[:, column["unit_first"]] = [1.0 / unit_ranks[r] if r in unit_ranks else 0.0 for r in row_list]

        # the answer type the question asks for, and whether the unit has one
        wanted = (1 if wants[0] else 0) | (2 if wants[1] else 0) | (4 if wants[2] else 0)
        if wanted:
            matched = (self._types[rows] & wanted) > 0
            base[:, column["type_match"]] = matched
            base[:, column["type_missing"]] = ~matched
        base[:, column["list_item"]] = self._list_item[rows]
        base[:, column["first_in_section"]] = self._first[rows]
        base[:, column["length"]] = self._length[rows]
        base[:, column["absent"]] = absent

        # the vector's part: cosines of the units, their neighbours, lead-ins, headings and chunks
        prev, nxt, lead, heading = self._prev[rows], self._next[rows], self._lead_in[rows], self._heading_of[rows]
        distinct = sorted({c for c in chunk_of if c >= 0})
        chunk_vectors = bundle.vectors(distinct)
        in_rows = set(row_list)
        extra = sorted({r for r in np.concatenate([prev, nxt, lead, heading]).tolist() if r >= 0} - in_rows)
        known = np.array(row_list + extra, dtype=np.int64)
        order = np.argsort(known, kind="stable")
        known_sorted = known[order]
        unit_vectors = self._unit_vectors
        out = []
        for question_vector in question_vectors:
            features = base.copy()
            if count:
                cos = np.asarray(unit_vectors[rows], dtype=np.float32) @ question_vector
                # one row at a time, as a unit outside the candidates always was (same float rounding)
                extra_cos = [float(np.asarray(unit_vectors[r], dtype=np.float32) @ question_vector) for r in extra]
                values = np.concatenate([cos.astype(np.float64), np.array(extra_cos, dtype=np.float64)])[order]

                def cosine_of(which: np.ndarray) -> np.ndarray:
                    found = np.where(which >= 0, values[np.searchsorted(known_sorted, np.maximum(which, 0))], 0.0)
                    return found

                best_cos = float(cos.max())
                features[:, column["cosine"]] = cos
                features[:, column["cosine_gap"]] = best_cos - cos
                neighbour = np.maximum(np.where(prev >= 0, cosine_of(prev), 0.0), 0.0)
                neighbour = np.maximum(neighbour, np.where(nxt >= 0, cosine_of(nxt), 0.0))
                features[:, column["neighbour"]] = neighbour
                features[:, column["lead_in"]] = cosine_of(lead)
                features[:, column["heading_cosine"]] = cosine_of(heading)
                chunk_cos = {c: float(chunk_vectors[k] @ question_vector) for k, c in enumerate(distinct)}
                features[:, column["passage_cosine"]] = [chunk_cos[c] if c >= 0 else 0.0 for c in chunk_of]
                # Relative to the best-matching heading among the candidates: which section the question
                # means ("If you forget to take X" for "I skipped a dose"), not how headed the corpus is.
                features[:, column["heading_cosine"]] -= features[:, column["heading_cosine"]].max()
            else:
                cos = np.zeros(0)
            out.append(Candidates(rows, features, cos, list(chunk_of)))
        return out


@dataclass(frozen=True)
class ReadingModel:
    """The confidence of a candidate the reader has read: a logistic model over the ranker's logit,
    the reader's logit and the share of the question's words the corpus never uses, fitted on the
    dev splits for one reader (``reader``: its fingerprint) and calibrated on the gold tune split,
    where the questions the documents don't answer are (``eval/train_ranker.py``)."""

    coef: np.ndarray
    """Weights of (ranker logit, reader logit, absent)."""
    intercept: float
    reader: str

    def __call__(self, ranker_logit: np.ndarray, reader_logit: np.ndarray, absent: float) -> np.ndarray:
        """Calibrated confidence in 0..1 of each read candidate."""
        z = self.coef[0] * ranker_logit + self.coef[1] * reader_logit + self.coef[2] * absent + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"coef": [float(c) for c in self.coef], "intercept": float(self.intercept), "reader": self.reader}

    @classmethod
    def from_dict(cls, data: dict) -> ReadingModel:
        return cls(np.array(data["coef"], dtype=np.float64), float(data["intercept"]), str(data["reader"]))


@dataclass(frozen=True)
class AnswerRanker:
    """A logistic model over :data:`FEATURES` (standardised): P(the unit holds the answer)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    calibration: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """(a, b, c): the answer's confidence is sigmoid(a * ranker logit + b * absent + c), fitted on
    the gold tune split's best candidates, where questions the documents don't answer are."""
    reading: ReadingModel | None = None
    """The confidence once the reader has read a candidate (None: fitted without a reader)."""

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> AnswerRanker:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if list(data["features"]) != list(FEATURES):
            raise ValueError(f"ranker {path} was fitted on other features; refit it with eval/train_ranker.py")
        calibration = tuple(float(x) for x in data.get("calibration", (1.0, 0.0, 0.0)))
        reading = data.get("reading")
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["coef"]), float(data["intercept"]),
                   calibration,  # type: ignore[arg-type]
                   ReadingModel.from_dict(reading) if reading else None)

    def logit(self, features: np.ndarray) -> np.ndarray:
        """The ranker's score (log-odds that the unit holds the answer); ranks the candidates."""
        if not len(features):
            return np.zeros(0)
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's share of one candidate's logit (the intercept aside): standardised value
        times its coefficient."""
        return (np.asarray(features) - self.mean) / self.scale * self.coef

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Calibrated confidence in 0..1; the same order as :meth:`logit` within a question."""
        if not len(features):
            return np.zeros(0)
        a, b, c = self.calibration
        z = a * self.logit(features) + b * features[:, FEATURES.index("absent")] + c
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self, **extra: object) -> str:
        return json.dumps(
            {"features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
             "coef": self.coef.tolist(), "intercept": self.intercept, "calibration": list(self.calibration),
             **({"reading": self.reading.to_dict()} if self.reading else {}), **extra},
            indent=1,
        )

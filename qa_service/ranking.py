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


@dataclass
class Candidates:
    """Candidate answer units of one question: bundle rows and their feature matrix."""

    rows: np.ndarray
    features: np.ndarray
    cosine: np.ndarray
    chunk_of: list[int]
    """Chunk id each unit lies in (the best-scoring one that holds it)."""


class FeatureBuilder:
    """Computes :data:`FEATURES` for candidate units of a bundle."""

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
        self._unit_tokens: dict[int, list[str]] = {}
        self._heading_of = _heading_rows(bundle.units)

    def _tokens(self, row: int) -> list[str]:
        cached = self._unit_tokens.get(row)
        if cached is None:
            unit = self.bundle.units[row]
            text = self.bundle.documents[self.bundle.doc_ids[unit["doc"]]].text[unit["start"]:unit["end"]]
            cached = self._unit_tokens[row] = tokenize([text])[0]
            if len(self._unit_tokens) > 200_000:
                self._unit_tokens.clear()
        return cached

    def chunks_holding(self, doc_id: str, start: int) -> np.ndarray:
        starts, ends, ids = self._chunk_starts.get(doc_id, (np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)))
        hi = int(np.searchsorted(starts, start, side="right"))
        holding = [int(ids[i]) for i in range(max(0, hi - 8), hi) if ends[i] > start]
        return np.array(holding or ([int(ids[hi - 1])] if hi else []), dtype=np.int64)

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
        read_with = read_with or {}
        bundle = self.bundle
        units = bundle.units
        vectors = bundle.unit_vectors
        n_units = len(units)
        rows = np.asarray(rows, dtype=np.int64)
        cos = np.asarray(vectors[rows], dtype=np.float32) @ question_vector if len(rows) else np.zeros(0)
        terms = {t for t in tokenize([question])[0] if t in self.idf}
        wants = question_types(question)
        best_cos = float(cos.max()) if len(cos) else 0.0
        features = np.zeros((len(rows), len(FEATURES)), dtype=np.float64)
        chunk_of: list[int] = []
        cosine_cache: dict[int, float] = {int(r): float(c) for r, c in zip(rows, cos)}

        def unit_cos(row: int) -> float:
            if row not in cosine_cache:
                cosine_cache[row] = float(np.asarray(vectors[row], dtype=np.float32) @ question_vector)
            return cosine_cache[row]

        chunk_cos: dict[int, float] = {}
        for i, row in enumerate(rows.tolist()):
            unit = units[row]
            doc_id = bundle.doc_ids[unit["doc"]]
            document = bundle.documents[doc_id]
            start, end, flags = int(unit["start"]), int(unit["end"]), int(unit["flags"])
            # neighbours in the same document
            neighbour = 0.0
            for other in (row - 1, row + 1):
                if 0 <= other < n_units and units[other]["doc"] == unit["doc"] and not units[other]["flags"] & HEADING_FLAG:
                    neighbour = max(neighbour, unit_cos(other))
            # the lead-in a list item belongs to
            lead_in = 0.0
            if flags & LIST_FLAG:
                j = row - 1
                while j >= 0 and j > row - 30 and units[j]["doc"] == unit["doc"] and units[j]["flags"] & LIST_FLAG:
                    j -= 1
                if j >= 0 and units[j]["doc"] == unit["doc"] and units[j]["flags"] & (LEAD_IN_FLAG | HEADING_FLAG):
                    lead_in = unit_cos(j)
            heading = int(self._heading_of[row])
            heading_cos = unit_cos(heading) if heading >= 0 else 0.0
            section = document.section_at(start)
            title = section.title if section and section.title else ""
            section_cov = _coverage(terms, self.idf, tokenize([title])[0]) if title else 0.0
            first = section is not None and section.heading is not None and row > 0 and bool(
                units[row - 1]["flags"] & HEADING_FLAG
            )
            # the chunk: a read passage if one holds the unit, else the best chunk that does
            holding = self.chunks_holding(doc_id, start)
            read = [c for c in holding.tolist() if c in passage_scores]
            if not read and row in read_with:
                read = [read_with[row]]
            if read:
                chunk = max(read, key=lambda c: passage_scores[c][0])
                p_score, p_rank = passage_scores[chunk]
            else:
                chunk, p_score, p_rank = (int(holding[0]) if len(holding) else -1), 0.0, 0
            if chunk >= 0 and chunk not in chunk_cos:
                chunk_cos[chunk] = float(bundle.vectors([chunk])[0] @ question_vector)
            chunk_of.append(chunk)
            text = document.text[start:end]
            has = (bool(_DURATION_A.search(text)), bool(_AMOUNT_A.search(text)), bool(_INSTRUCTION_A.search(text)))
            asked = [w for w in wants if w]
            match = sum(1 for w, h in zip(wants, has) if w and h)
            features[i] = (
                cos[i],
                best_cos - cos[i],
                _coverage(terms, self.idf, self._tokens(row)),
                neighbour,
                lead_in,
                section_cov,
                heading_cos,
                chunk_cos.get(chunk, 0.0),
                p_score,
                1.0 / p_rank if p_rank else 0.0,
                1.0 / unit_ranks[row] if row in unit_ranks else 0.0,
                float(match > 0),
                float(bool(asked) and match == 0),
                float(bool(flags & LIST_FLAG)),
                float(first),
                math.log1p(end - start),
                absent,
            )
        if len(rows):
            # Relative to the best-matching heading among the candidates: which section the question
            # means ("If you forget to take X" for "I skipped a dose"), not how headed the corpus is.
            column = FEATURES.index("heading_cosine")
            features[:, column] -= features[:, column].max()
        return Candidates(rows, features, cos, chunk_of)


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

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> AnswerRanker:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if list(data["features"]) != list(FEATURES):
            raise ValueError(f"ranker {path} was fitted on other features; refit it with eval/train_ranker.py")
        calibration = tuple(float(x) for x in data.get("calibration", (1.0, 0.0, 0.0)))
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["coef"]), float(data["intercept"]),
                   calibration)  # type: ignore[arg-type]

    def logit(self, features: np.ndarray) -> np.ndarray:
        """The ranker's score (log-odds that the unit holds the answer); ranks the candidates."""
        if not len(features):
            return np.zeros(0)
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept

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
             "coef": self.coef.tolist(), "intercept": self.intercept, "calibration": list(self.calibration), **extra},
            indent=1,
        )

"""The question-answering pipeline: retrieve, extract spans, rank, decide to answer."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar

from cachetools import LRUCache

from ingest.bundle import Bundle
from ingest.documents import Document
from ingest.embedding import VectorEncoder

import numpy as np

from ingest.units import HEADING_FLAG, Unit, unit_from_row

from ingest.analysis import term_spans, terms
from ingest.subjects import other_names
from .abstention import UnknownSubjectDetector, confidence_label
from .expansion import Expansion, QueryExpander
from .extraction import SpanGrower, TermWeights
from .ranking import FEATURES, AnswerRanker, Candidates, FeatureBuilder
from .reader import AnswerReader, ReaderError, reader_passage
from .reranking import CrossEncoderReranker
from .subjects import SubjectFinder, SubjectMatch
from .provenance import code_version, config_hash
from .retrieval import Candidate, HybridRetriever, SubjectNarrowing, SubjectQuery, minmax
from .coverage import Coverage, coverage_of, said
from .results import Answer, AskResult, Choice, Citation, Hit, Meta, Passage, SearchResult, Source, passage_id
from .scope import DEFAULT_OPTIONS, Collapse, QueryOptions, Scope, ScopeResolver, SubjectsMode
from .settings import AnswerSettings, ServiceSettings


_R = TypeVar("_R", AskResult, SearchResult)
MAX_SILENT = 10
"""Documents named as silent on a question at most: beyond it, naming them says nothing useful."""


class UnknownDocumentError(ValueError):
    def __init__(self, doc_ids: list[str]) -> None:
        super().__init__(f"unknown doc_id: {', '.join(doc_ids)}")
        self.doc_ids = doc_ids


class CitationRangeError(ValueError):
    """Offsets that are no span of the document's text: 0 <= start < end <= len(text) is needed."""


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    unit: int
    """Bundle row of the unit the span was grown from."""


@dataclass(frozen=True)
class ScoredSpan:
    """An answer candidate: a span grown from its best unit, the passage it lies in,
    the unit's features, and the ranker's probability that it answers."""

    candidate: Candidate
    span: Span
    features: dict[str, float]
    confidence: float
    order: float | None = None
    """What the answers are ordered by, when it is not the confidence (see :meth:`Answerer.read`)."""
    decision: float | None = None
    """What decides whether the question is answered, when it is not the confidence: the ranker's
    calibrated probability (see :meth:`Answerer.read`)."""

    @property
    def deciding(self) -> float:
        return self.confidence if self.decision is None else self.decision

    @property
    def rank(self) -> float:
        return self.confidence if self.order is None else self.order


@dataclass(frozen=True)
class Query:
    """A question as each side searches it."""

    dense: str
    """What is embedded."""
    lexical: str
    """What BM25 searches for."""
    ranking: str
    """What the ranking features compare units with."""
    units: str | None = None
    """What is embedded to compare units with, when it differs from ``dense``: within the
    documents about the named subjects the names tell no sentence from another."""
    expansion: tuple[str, ...] = ()
    """The clinical terms the question's lay words stand for (a lexical signal of their own)."""
    reading: str | None = None
    """What is embedded to compare answer units with (the ranking features), when it differs
    from ``dense``: the question with its expansion, as the ranker was fitted."""


@dataclass(frozen=True)
class Reading:
    """What the pipeline found for a question, before the decision to answer."""

    unknown_subjects: list[str]
    spans: list[ScoredSpan]
    """Best first (by the ranker's probability)."""
    subjects: SubjectMatch = field(default_factory=SubjectMatch)
    """The subjects the question names; the documents read were restricted to theirs."""
    candidates: Candidates | None = None
    """Every candidate unit with its features (for training and inspection)."""
    ambiguous: str | None = None
    """Why the question can't be read: a name as near to two subjects as to one."""
    ranker_logits: np.ndarray | None = None
    """The ranker's logit of each candidate (the better of the question's readings)."""
    query: Query | None = None
    """The question as it was searched."""
    narrowed_to: list[str] | None = None
    """The documents the question was read in, when not all."""
    reader_logits: np.ndarray | None = None
    """The reader's logit of each candidate it read (NaN: not read; None: no reader)."""


def _duplicate(a: ScoredSpan, b: ScoredSpan, text: str, other_text: str) -> bool:
    """The same words (found twice) or overlapping ranges of one document."""
    if " ".join(text.split()).casefold() == " ".join(other_text.split()).casefold():
        return True
    if a.candidate.chunk.doc_id != b.candidate.chunk.doc_id:
        return False
    return a.span.start < b.span.end and b.span.start < a.span.end


def select_answers(found: list[ScoredSpan], text_of: Callable[[ScoredSpan], str], settings: AnswerSettings) -> list[ScoredSpan]:
    """The answers to give, in order; none when nothing reaches ``settings.min_confidence``.

    The question is answered when an answer's deciding score (the ranker's calibrated
    probability) reaches ``min_confidence``; every such answer is kept (duplicates dropped).
    Then each document is heard at a lower bar: its best ``source_answers`` answers whose
    confidence clears ``source_confidence``, so sources that disagree are shown side by side
    and a source with nothing above the bar is not offered. Order: each document's best answer first
    (by rank: the confidence, unless the reading ordered them otherwise), then the rest.
    """
    kept: list[ScoredSpan] = []

    def fresh(item: ScoredSpan) -> bool:
        return not any(_duplicate(item, other, text_of(item), text_of(other)) for other in kept)

    for item in found:
        if item.deciding >= settings.min_confidence and fresh(item):
            kept.append(item)
    if not kept:
        return []
    heard = Counter(item.candidate.chunk.doc_id for item in kept)
    for item in found:
        doc_id = item.candidate.chunk.doc_id
        if item.deciding >= settings.min_confidence or item.confidence < settings.source_confidence:
            continue
        if heard[doc_id] < settings.source_answers and fresh(item):
            kept.append(item)
            heard[doc_id] += 1
    kept.sort(key=lambda item: -item.rank)
    seen: set[str] = set()
    leaders, others = [], []
    for item in kept:
        doc_id = item.candidate.chunk.doc_id
        (others if doc_id in seen else leaders).append(item)
        seen.add(doc_id)
    return leaders + others


Ranged = tuple[str, str | None, int, int, float]
"""A search result before it is cited: document, section, start, end, score."""


def collapse_chunks(found: list[Ranged], text_of: Callable[[str], str], k: int | None = None) -> list[Ranged]:
    """Chunks of one passage made one result: in rank order, a chunk that overlaps or touches
    (nothing but white space between) a better one of the same document section joins it, the
    result covering both ranges with the better score; one long passage can't take two places.
    Stops once ``k`` results are made (later chunks don't stretch them)."""
    kept: list[list] = []
    for doc_id, section, start, end, score in found:
        if k is not None and len(kept) >= k:
            break
        text = text_of(doc_id)

        def touches(other: list) -> bool:
            if other[0] != doc_id or other[1] != section:
                return False
            if start <= other[3] and other[2] <= end:  # overlapping (or meeting)
                return True
            gap = text[other[3]:start] if other[3] < start else text[end:other[2]]
            return not gap.strip()

        joined = [other for other in kept if touches(other)]
        if not joined:
            kept.append([doc_id, section, start, end, score])
            continue
        first = joined[0]
        first[2] = min([start, *(o[2] for o in joined)])
        first[3] = max([end, *(o[3] for o in joined)])
        kept = [other for other in kept if other is first or not any(other is o for o in joined)]
    return [tuple(item) for item in kept]  # type: ignore[misc]


class Answerer:
    """Answers questions from one loaded bundle."""

    def __init__(self, bundle: Bundle, embedder: VectorEncoder, settings: ServiceSettings,
                 reader: AnswerReader | None = None) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.settings = settings
        self.index_version = bundle.manifest.version
        """The bundle's version (``Manifest.version``), worked out once."""
        self.retriever = HybridRetriever(
            bundle, embedder, settings.retrieval.candidates, settings.retrieval.fusion, settings.retrieval.fusion_params()
        )
        lexical = bundle.lexical
        # Lay words from the synonym file; brand <-> generic names from the documents.
        self.expander = QueryExpander.from_file(
            settings.retrieval.synonyms_file, names=other_names(list(bundle.documents.values()))
        )
        self.subjects = SubjectFinder(
            bundle.documents, lexical.vocabulary, lexical, [chunk.doc_id for chunk in bundle.chunks],
            strict_misspellings=settings.retrieval.strict_misspellings,
        )
        self.unknown_subjects = UnknownSubjectDetector(
            lexical.vocabulary, embedder, settings.answer.unknown_drug_similarity
        )
        weights = TermWeights(lexical.document_frequencies(), lexical.num_docs)
        self.features = FeatureBuilder(bundle, {t: weights(t) for t in lexical.document_frequencies()})
        self.ranker = AnswerRanker.load(settings.answer.ranker_model)
        self.grower = SpanGrower(grow_ratio=settings.answer.grow_ratio)
        self.reader = reader
        if reader is not None and self.ranker.reading is not None and self.ranker.reading.reader != reader.config.fingerprint:
            raise ReaderError(
                f"the ranker {settings.answer.ranker_model} was fitted for another reader than {reader.folder} "
                f"({self.ranker.reading.reader}, not {reader.config.fingerprint}); refit it with eval/train_ranker.py"
            )
        self.reranker = CrossEncoderReranker(settings.answer.rerank_model) if settings.answer.rerank_model else None
        size = settings.serving.answer_cache
        self._cache: LRUCache | None = LRUCache(maxsize=size) if size else None
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        # Answer units as the span grower reads them: a document's, the first time a span grows in it.
        self._units: list[Unit | None] = [None] * len(bundle.units)
        self._doc_units = [bundle.unit_range(doc_id) for doc_id in bundle.doc_ids]
        self.scopes = ScopeResolver(bundle)
        self._coverage: Coverage | None = None
        self.meta = Meta(
            index_version=self.index_version,
            models={"embedding": bundle.manifest.embed_model,
                    "reader": reader.name if reader is not None else None},
            code_version=code_version(),
            config_hash=config_hash(settings, reader.config.fingerprint if reader is not None else None),
        )

    @property
    def models(self) -> str:
        """The models that answer (as ``X-Model`` gives them): the embedding model, and the reader's
        name and fingerprint when there is one."""
        embed = self.bundle.manifest.embed_model
        return f"{embed}; reader={self.reader.name}" if self.reader is not None else embed

    def _window(self, doc_row: int, lo: int, hi: int) -> list[Unit]:
        """Units ``[lo, hi)`` of the bundle, all of document ``doc_row``."""
        made = self._units
        first, end = self._doc_units[doc_row]
        if first < end and made[first] is None:
            made[first:end] = [unit_from_row(row) for row in self.bundle.units[first:end]]
        return made[lo:hi]  # type: ignore[return-value]

    def close(self) -> None:
        """Release the encoder's thread (the index was replaced); requests still answering finish."""
        close = getattr(self.embedder, "close", None)
        if close is not None:
            close()

    def _check_doc_ids(self, doc_ids: Collection[str] | None) -> list[str] | None:
        """The documents to search, each once (in the order given); an unknown one is refused."""
        if doc_ids is None:
            return None
        distinct = list(dict.fromkeys(doc_ids))  # a repeated id would be searched again for every repeat
        unknown = [d for d in distinct if d not in self.bundle.documents]
        if unknown:
            raise UnknownDocumentError(unknown)
        return distinct

    def quote(self, doc_id: str, start: int, end: int) -> tuple[Citation, str]:
        """The citation of ``text[start:end]`` of document ``doc_id`` as this index gives it (title,
        source, section), and that text: what a client's citation is checked and rebuilt from.

        UnknownDocumentError for a document not in the index, CitationRangeError
        unless ``0 <= start < end <= len(text)``.
        """
        document = self.bundle.documents.get(doc_id)
        if document is None:
            raise UnknownDocumentError([doc_id])
        if not 0 <= start < end <= len(document.text):
            raise CitationRangeError(
                f"the citation's offsets {start}..{end} are no span of {doc_id}'s text "
                f"(0 <= start < end <= {len(document.text)})"
            )
        return self._citation(document, start, end), document.text[start:end]

    def _citation(self, document: Document, start: int, end: int) -> Citation:
        section = document.section_at(start)
        return Citation(
            doc_id=document.doc_id,
            title=document.title,
            source=document.source,
            section=section.title if section else None,
            start=start,
            end=end,
        )

    def _follow_subjects(
        self, question: str, doc_ids: Collection[str] | None, mode: SubjectsMode = SubjectsMode.AUTO
    ) -> tuple[SubjectMatch, str, Collection[str] | None, list[str] | None]:
        """The subjects the question names, the question with misspelt names put right, the
        documents to read (those about the subjects, unless the caller chose documents, where the
        subjects filter: see :class:`SubjectNarrowing`), and the documents whose passages gain the
        subject bonus (where they don't). ``mode`` off: no subjects, the question as it is."""
        if mode == SubjectsMode.OFF:
            return SubjectMatch(), question, doc_ids, None
        subjects = self.subjects.find(question)
        for word, name in subjects.corrected.items():
            question = re.sub(rf"\b{re.escape(word)}\b", name, question)
        boosted = None
        if subjects and doc_ids is None:
            retrieval = self.settings.retrieval
            if retrieval.subject_narrowing == SubjectNarrowing.FILTER or subjects.declared:
                doc_ids = subjects.doc_ids
            elif retrieval.subject_boost > 0:
                boosted = subjects.doc_ids
        return subjects, question, doc_ids, boosted

    def _query(self, question: str, expansion: Expansion, subjects: SubjectMatch) -> Query:
        """The question as each side searches it (see :class:`SubjectQuery`). The expansion's
        terms join the lexical side only, unless ``embed_expansion``: passages are found by the
        question's own embedding. Answer units are still compared with the expanded question
        (``reading``, ``units``): the answer ranker was fitted on those comparisons."""
        mode = self.settings.retrieval.subject_query
        plain = not self.settings.retrieval.embed_expansion
        narrowed = subjects and len(subjects.doc_ids) < len(self.bundle.documents)
        names = subjects.words_in(question) if narrowed and mode != SubjectQuery.KEEP else []
        terms = tuple(expansion.terms)
        if not names:
            return Query(expansion.question if plain else expansion.query, expansion.lexical_query, question,
                         expansion=terms, reading=expansion.query)
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
        without = " ".join(pattern.sub(" ", question).split())
        lexical = self.expander.expand(without).query
        # Answer units are compared with the question as if the names were "it" (the unit search
        # and the ranking features): within these documents "Never take more than 20 mg of
        # Xenical a day" is no nearer to "What if I take too much Xenical?" for naming it.
        pronoun = self.expander.expand(" ".join(pattern.sub("it", question).split()))
        units = pronoun.query
        reading = units if mode == SubjectQuery.PRONOUN else expansion.query
        dense = (pronoun.question if mode == SubjectQuery.PRONOUN else expansion.question) if plain else reading
        return Query(dense, lexical, without, units if units != reading else None, terms, reading)

    def search(self, query: str, k: int = 10, doc_ids: Collection[str] | None = None,
               options: QueryOptions = DEFAULT_OPTIONS) -> SearchResult:
        """The passages that match ``query`` best, after ``options.offset`` of them: only from
        ``doc_ids`` and the filter's passages when given (nothing else is ranked)."""
        began = time.perf_counter()
        doc_ids = self._check_doc_ids(doc_ids)
        return self._cached(
            self._cache_key("search", query, k, doc_ids, options),
            lambda: self._search(query, k, self.scopes.resolve(options.filter, doc_ids), options, began),
            query, began,
        )

    def _search(self, query: str, k: int, scope: Scope, options: QueryOptions, began: float) -> SearchResult:
        retrieval = self.settings.retrieval
        collapse = options.collapse or (Collapse.PASSAGE if retrieval.collapse_chunks else Collapse.NONE)
        if scope.empty:
            return SearchResult(query=query, results=[], took_ms=(time.perf_counter() - began) * 1000,
                                offset=options.offset, meta=self.meta)
        subjects, query_text, doc_ids, boosted = self._follow_subjects(query, scope.doc_ids, options.subjects)
        searched = self._query(query_text, self.expander.expand(query_text), subjects)
        query_vector = self.embedder.embed([searched.dense])[0]
        wanted = options.offset + k
        # Collapsing merges chunks: rank more, so that ``wanted`` distinct passages are left (every
        # chunk of the pool for one passage a document).
        ranked = {Collapse.NONE: wanted, Collapse.PASSAGE: 3 * wanted}.get(collapse, 1 << 30)
        ranking = self.retriever.rank(searched.lexical, ranked, doc_ids, query_vector=query_vector,
                                      boost_docs=boosted, boost=retrieval.subject_boost,
                                      expansion=searched.expansion, expansion_weight=retrieval.expansion_weight,
                                      rows=scope.chunk_rows, depth=max(self.retriever.candidates, wanted))
        found = ranking.candidates
        ranges = [(c.chunk.doc_id, c.chunk.section, c.chunk.start, c.chunk.end, c.score) for c in found]
        if collapse == Collapse.PASSAGE:
            # Chunks join a passage until ``wanted`` passages are made: a passage shown on an early
            # page may have grown by the time a later page is cut (never into another page's passage).
            ranges = collapse_chunks(ranges, lambda doc_id: self.bundle.documents[doc_id].text, wanted)
        elif collapse == Collapse.DOCUMENT:
            ranges = list({r[0]: r for r in reversed(ranges)}.values())[::-1]  # each document's best
            ranges.sort(key=lambda r: -r[4])
        by_range = {(c.chunk.doc_id, c.chunk.start, c.chunk.end): c for c in found}
        # Equal (shown) scores in passage-id order: the same list on every run.
        ranges = sorted(ranges, key=lambda r: (-round(r[4], 6), r[0], r[2], r[3]))
        wanted_terms = frozenset(terms([searched.lexical])[0]) if options.highlight else frozenset()
        results = []
        for doc_id, _, start, end, score in ranges[options.offset:wanted]:
            document = self.bundle.documents[doc_id]
            text = document.text[start:end]
            candidate = by_range.get((doc_id, start, end))
            results.append(
                Hit(
                    text=text,
                    score=round(score, 6),
                    citation=self._citation(document, start, end),
                    passage_id=passage_id(doc_id, start, end),
                    highlights=tuple((start + a, start + b) for a, b in term_spans(text, wanted_terms)),
                    explain=self._explain_hit(candidate, ranking, found, doc_id, start, end)
                    if options.explain else None,
                )
            )
        explain = None
        if options.explain:
            explain = self._explain_query(searched, subjects, doc_ids, boosted, options)
            explain.update(fusion=ranking.fusion, dense_weight=ranking.dense_weight,
                           lexical_weight=None if ranking.dense_weight is None else 1.0 - ranking.dense_weight,
                           collapse=collapse.value)
        return SearchResult(
            query=query, subjects=subjects.names, results=results, took_ms=(time.perf_counter() - began) * 1000,
            offset=options.offset, candidates=ranking.considered, meta=self.meta, explain=explain,
        )

    def _explain_query(self, searched: Query, subjects: SubjectMatch, doc_ids: Collection[str] | None,
                       boosted: list[str] | None, options: QueryOptions) -> dict:
        """How a query was searched: what each side searched for, the expansion, the subjects."""
        return {
            "dense_query": searched.dense,
            "lexical_query": searched.lexical,
            "lexical_terms": list(dict.fromkeys(terms([searched.lexical])[0])),
            "expanded_terms": list(searched.expansion),
            "subjects": subjects.names,
            "subjects_mode": options.subjects.value,
            "narrowed_to": None if doc_ids is None else sorted(doc_ids),
            "boosted": None if boosted is None else sorted(boosted),
            "filter": options.filter.as_dict(),
        }

    def _explain_hit(self, candidate: Candidate | None, ranking, found: list[Candidate],  # noqa: ANN001
                     doc_id: str, start: int, end: int) -> dict:
        """Why a result ranked where it did: its best chunk's raw scores and bonuses, and the
        chunks merged into it (a collapsed passage)."""
        merged = [c for c in found if c.chunk.doc_id == doc_id and start <= c.chunk.start and c.chunk.end <= end]
        best = candidate or (merged[0] if merged else None)
        retrieval = self.settings.retrieval
        return {
            "dense": None if best is None else round(best.dense, 6),
            "lexical": None if best is None else round(best.lexical, 6),
            "fused": None if best is None else round(best.score, 6),
            "dense_weight": ranking.dense_weight,
            "expansion_share": None if best is None else round(best.phrase, 6),
            "expansion_weight": retrieval.expansion_weight,
            "subject_boost": retrieval.subject_boost if best is not None and best.boosted else 0.0,
            "chunks": [passage_id(c.chunk.doc_id, c.chunk.start, c.chunk.end) for c in merged],
        }

    def unit_search(self, query_vector: np.ndarray, doc_ids: Collection[str] | None, k: int,
                    within: np.ndarray | None = None) -> dict[int, int]:
        """The ``k`` answer units closest to the question in the whole corpus (or in ``doc_ids``, and
        among the rows ``within``): row -> rank."""
        bundle = self.bundle
        if k <= 0 or not len(bundle.units):
            return {}
        rows = within
        if doc_ids is not None:
            ranges = [bundle.unit_range(d) for d in doc_ids]
            rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges]) if ranges else np.zeros(0, dtype=np.int64)
            if within is not None:
                rows = np.intersect1d(rows, within)
        if rows is not None and not len(rows):
            return {}
        # Headings are not answers: ask for more until k others are found (or none are left).
        available = len(bundle.units) if rows is None else len(rows)
        asked = 2 * k
        while True:
            ids, _ = bundle.unit_index.search(query_vector, min(asked, available), rows)
            kept = ids[(bundle.units["flags"][ids] & HEADING_FLAG) == 0][:k]
            if len(kept) == k or asked >= available:
                break
            asked *= 4
        return {int(row): rank for rank, row in enumerate(kept, start=1)}

    def _whole_paragraphs(self, lo: int, hi: int, first: int, last: int) -> tuple[int, int]:
        """Widen the unit rows ``[lo, hi)`` of a passage to the paragraphs it cuts (at most
        ``context_units`` more on each side): a chunk boundary must not hide the sentence
        that finishes the thought ("... a coma develops. [chunk ends] There is no antidote ...")."""
        if hi <= lo:
            return lo, hi
        paragraph = self.bundle.units["paragraph"]
        extra = self.settings.answer.context_units
        start, end = lo, hi
        while start > first and lo - start < extra and paragraph[start - 1] == paragraph[lo]:
            start -= 1
        while end < last and end - hi < extra and paragraph[end] == paragraph[hi - 1]:
            end += 1
        return start, end

    def read(self, question: str, doc_ids: Collection[str] | None = None,
             options: QueryOptions = DEFAULT_OPTIONS) -> Reading:
        """Retrieve passages and units, score every candidate unit, grow the best into spans (no decision
        yet); only in ``doc_ids`` and the passages of the options' filter, when given."""
        scope = self.scopes.resolve(options.filter, None if doc_ids is None else list(doc_ids))
        if scope.empty:
            return Reading([], [], SubjectMatch(), narrowed_to=[])
        subjects, question, doc_ids, boosted = self._follow_subjects(question, scope.doc_ids, options.subjects)
        if subjects.ambiguous:
            word, names = next(iter(subjects.ambiguous.items()))
            return Reading([], [], subjects, ambiguous=f"'{word}' could be {' or '.join(names)}: which one is meant?")
        expansion = self.expander.expand(question)
        query = self._query(question, expansion, subjects)
        absent_words = self.unknown_subjects.absent_words(question, expansion.known_words)
        # One encode for all the question needs: it, its form for the answer units, its absent words
        # not judged before.
        undecided = self.unknown_subjects.undecided(absent_words)
        # (And, when passages are found by another text than units are compared with, that text.)
        reading = query.reading or query.dense
        follow = self.settings.retrieval.answers_follow_search
        apart = [query.dense] if follow and query.dense != reading else []
        texts = [reading, *([query.units] if query.units else []), *undecided, *apart]
        vectors = self.embedder.embed(texts)
        query_vector = vectors[0]
        unit_vector = vectors[1] if query.units else query_vector
        passage_vector = vectors[-1] if apart else query_vector
        first_undecided = 1 + bool(query.units)
        unknown = self.unknown_subjects.names_among(
            absent_words, dict(zip(undecided, vectors[first_undecided:first_undecided + len(undecided)]))
        )
        if unknown:
            return Reading(unknown, [], subjects, query=query)
        absent = self.unknown_subjects.absent_share(question, absent_words)
        passage_docs = doc_ids
        if boosted is not None:
            # Subjects guessed from titles: passages from every document, the named subjects' favoured;
            # answer units are still searched among the named subjects' documents.
            doc_ids = boosted
        passages = self.retriever.search(
            query.lexical, self.settings.answer.reader_passages, passage_docs, query_vector=passage_vector,
            boost_docs=boosted, boost=self.settings.retrieval.subject_boost,
            expansion=query.expansion, expansion_weight=self.settings.retrieval.expansion_weight if follow else 0.0,
            rows=scope.chunk_rows,
        )
        bundle = self.bundle
        units = bundle.units
        norm = minmax([c.score for c in passages])
        passage_scores = {c.chunk.chunk_id: (float(norm[i]), i + 1) for i, c in enumerate(passages)}
        by_chunk = {c.chunk.chunk_id: c for c in passages}
        rows: set[int] = set()
        read_with: dict[int, int] = {}  # a unit read as the context of a passage that does not hold it
        for c in passages:
            first, last = bundle.unit_range(c.chunk.doc_id)
            lo, hi = bundle.unit_range(c.chunk.doc_id, c.chunk.start, c.chunk.end)
            if lo > first and units["end"][lo - 1] > c.chunk.start:
                lo -= 1  # the sentence the passage starts inside of
            rows.update(range(lo, hi))
            start, end = self._whole_paragraphs(lo, hi, first, last)
            for row in (*range(start, lo), *range(hi, end)):
                read_with.setdefault(row, c.chunk.chunk_id)
                rows.add(row)
        unit_ranks = self.unit_search(unit_vector, doc_ids, self.settings.answer.unit_candidates, scope.unit_rows)
        for row in unit_ranks:
            rows.add(row)
        ordered = np.array(sorted(rows), dtype=np.int64)
        ordered = ordered[(units["flags"][ordered] & HEADING_FLAG) == 0]
        if scope.unit_rows is not None:  # a section filter: no unit outside it is scored, or grown into
            ordered = ordered[np.isin(ordered, scope.unit_rows)]
        # Units compared with "it" for the names order the answers; but the ranker's confidence
        # was fitted on questions compared whole, and "What is it?" is near nothing. Each unit's
        # confidence is the better of the two readings, so naming a medicine never costs an answer.
        readings = self.features.build_many(
            query.ranking, [unit_vector, query_vector] if query.units else [unit_vector], ordered,
            passage_scores, unit_ranks, absent, read_with,
        )
        candidates = readings[0]
        probability = self.ranker(candidates.features)
        confidence = probability
        logits = self.ranker.logit(candidates.features)
        if query.units:
            confidence = np.maximum(probability, self.ranker(readings[1].features))
            logits = np.maximum(logits, self.ranker.logit(readings[1].features))
        ranked = np.argsort(-probability, kind="stable")
        seeds = ranked[: self.settings.answer.max_spans]
        deciding = confidence
        reader_logits = None
        order: np.ndarray | None = probability if query.units else None
        if self.reader is not None and len(ordered):
            # The reader reads the ranker's best candidates with the whole question; once fitted
            # for it, the reading model's confidence orders the answers and is each one's bar;
            # the ranker's probability still decides whether the question is answered at all
            # (the reading model's calibration declined fewer out-of-scope questions: docs/evaluation.md).
            read = ranked[: self.settings.answer.reader_candidates]
            passages = [reader_passage(*self.features.context_of(int(ordered[i]))) for i in read.tolist()]
            reader_logits = np.full(len(ordered), np.nan)
            reader_logits[read] = self.reader.scores(question, passages)
            if self.ranker.reading is not None:
                confidence = np.zeros(len(ordered))
                confidence[read] = self.ranker.reading(logits[read], reader_logits[read], absent)
                seeds = read[np.argsort(-confidence[read], kind="stable")][: self.settings.answer.max_spans]
                order = None

        scored: list[ScoredSpan] = []
        covered: list[tuple[int, int]] = []  # unit rows already inside an answer span
        passage_cosine = FEATURES.index("passage_cosine")
        for i in seeds.tolist():
            row = int(ordered[i])
            if any(a <= row <= b for a, b in covered):
                continue
            doc_row = int(units["doc"][row])
            first_row, end_row = self._doc_units[doc_row]
            lo, hi = max(first_row, row - 40), min(end_row, row + 41)
            window = self._window(doc_row, lo, hi)
            # the window's scores: the candidates' probabilities (``ordered`` is sorted), -inf elsewhere
            scores = np.full(hi - lo, -np.inf)
            a, b = np.searchsorted(ordered, (lo, hi)).tolist()
            scores[ordered[a:b] - lo] = probability[a:b]
            a, b = self.grower.grow(window, scores, row - lo)
            covered.append((lo + a, lo + b))
            chunk_id = candidates.chunk_of[i]
            candidate = by_chunk.get(chunk_id) or Candidate(
                bundle.chunks[chunk_id], 0.0, float(candidates.features[i][passage_cosine]), 0.0
            )
            span = Span(window[a].start, window[b].end, row)
            features = dict(zip(FEATURES, candidates.features[i].tolist()))
            scored.append(ScoredSpan(candidate, span, features, float(confidence[i]),
                                     None if order is None else float(order[i]),
                                     None if deciding is confidence else float(deciding[i])))
        if self.reranker is not None and scored:
            head = scored[: self.settings.answer.rerank_candidates]
            texts = [bundle.documents[s.candidate.chunk.doc_id].text[s.span.start:s.span.end] for s in head]
            reranked = np.argsort(-self.reranker.scores(question, texts), kind="stable")
            scored = [head[i] for i in reranked] + scored[len(head):]
        return Reading([], scored, subjects, candidates, ranker_logits=logits, reader_logits=reader_logits,
                       query=query, narrowed_to=None if passage_docs is None else list(passage_docs))

    def _subjects_of_each(self, doc_ids: list[str]) -> list[str]:
        """The main subject of each document (as the notice names them), each once."""
        return list(dict.fromkeys(s[0] for d in dict.fromkeys(doc_ids) if (s := self.subjects.subjects_of(d))))

    def coverage(self) -> Coverage:
        """What this index covers: its subjects, its document count, example questions (worked out once)."""
        if self._coverage is None:
            self._coverage = coverage_of(self.bundle.documents, self.subjects)
        return self._coverage

    def _what_they_are_about(self) -> str:
        """"; they are about A, B and C": what a question may name instead (nothing without subjects)."""
        names = self.coverage().subjects
        return f"; they are about {said(names)}" if names else ""

    def _several_subjects_notice(self, doc_ids: list[str]) -> str | None:
        """When a question names no subject and its answers come from documents about
        different ones (no subject in common), say so: the reader must pick the right one."""
        docs = list(dict.fromkeys(doc_ids))
        for i, a in enumerate(docs):
            for b in docs[i + 1:]:
                if self.subjects.same_subject(a, b) is False:
                    return (
                        "No medicine was named: these answers come from documents about different ones ("
                        + ", ".join(self._subjects_of_each(docs)) + ")."
                    )
        return None

    def _cache_key(self, kind: str, question: str, count: int, doc_ids: Collection[str] | None,
                   options: QueryOptions = DEFAULT_OPTIONS) -> tuple:
        """Repeats of a question (case and spacing aside, same options, same index) share one entry."""
        return (kind, " ".join(question.casefold().split()), count,
                None if doc_ids is None else tuple(sorted(set(doc_ids))), options, self.index_version)

    def _recall(self, key: tuple, question: str, began: float) -> AskResult | SearchResult | None:
        """The kept response for ``key``, echoing the caller's own wording and its own time (None: not kept)."""
        if self._cache is None:
            return None
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            self.cache_hits += 1
        field = "question" if isinstance(hit, AskResult) else "query"
        return dataclasses.replace(hit, **{field: question, "took_ms": (time.perf_counter() - began) * 1000})

    def _cached(self, key: tuple, compute: Callable[[], _R], question: str, began: float) -> _R:
        """``compute()``'s response, kept for the next time the same question is asked."""
        hit = self._recall(key, question, began)
        if hit is not None:
            return hit  # type: ignore[return-value]
        made = compute()
        if self._cache is not None:
            with self._cache_lock:
                self._cache[key] = made
                self.cache_misses += 1
        return made

    def recall_ask(self, question: str, top_k: int = 3, doc_ids: Collection[str] | None = None,
                   options: QueryOptions = DEFAULT_OPTIONS) -> AskResult | None:
        """:meth:`ask`'s answer if it is in the answer cache, else None: a dictionary look-up, no
        model and no index, cheap enough for the server's event loop (a miss then goes to a worker)."""
        began = time.perf_counter()
        doc_ids = self._check_doc_ids(doc_ids)
        return self._recall(self._cache_key("ask", question, top_k, doc_ids, options), question, began)  # type: ignore[return-value]

    def recall_search(self, query: str, k: int = 10, doc_ids: Collection[str] | None = None,
                      options: QueryOptions = DEFAULT_OPTIONS) -> SearchResult | None:
        """:meth:`search`'s passages if they are in the answer cache, else None (as :meth:`recall_ask`)."""
        began = time.perf_counter()
        doc_ids = self._check_doc_ids(doc_ids)
        return self._recall(self._cache_key("search", query, k, doc_ids, options), query, began)  # type: ignore[return-value]

    def ask(self, question: str, top_k: int = 3, doc_ids: Collection[str] | None = None,
            options: QueryOptions = DEFAULT_OPTIONS) -> AskResult:
        """Verbatim answers to ``question`` with their citations, or why there are none; only from
        ``doc_ids`` and the passages of the options' filter, when given."""
        began = time.perf_counter()
        doc_ids = self._check_doc_ids(doc_ids)
        return self._cached(
            self._cache_key("ask", question, top_k, doc_ids, options),
            lambda: self._ask(question, top_k, doc_ids, options, began), question, began,
        )

    def _ask(self, question: str, top_k: int, doc_ids: Collection[str] | None, options: QueryOptions,
             began: float) -> AskResult:

        subjects: list[str] = []

        reading = self.read(question, doc_ids, options)
        subjects = reading.subjects.names
        candidates = 0 if reading.candidates is None else len(reading.candidates.features)
        explain = self._explain_reading(reading, options) if options.explain else None

        def declined(reason: str, choices: list[Choice] | None = None) -> AskResult:
            return AskResult(
                question=question,
                answered=False,
                reason=reason,
                choices=choices or [],
                subjects=subjects,
                answers=[],
                took_ms=(time.perf_counter() - began) * 1000,
                candidates=candidates,
                meta=self.meta,
                explain=explain,
            )

        if reading.narrowed_to == [] and reading.query is None:
            return declined("no document matches the filter")
        if reading.unknown_subjects:
            return declined(f"the documents do not mention {', '.join(reading.unknown_subjects)}"
                            + self._what_they_are_about())
        if reading.ambiguous:
            return declined(reading.ambiguous, [Choice(word, list(names))
                                                for word, names in reading.subjects.ambiguous.items()])
        found = reading.spans
        documents = self.bundle.documents

        def text_of(item: ScoredSpan) -> str:
            return documents[item.candidate.chunk.doc_id].text[item.span.start:item.span.end]

        threshold = self.settings.answer.min_confidence
        chosen = select_answers(found, text_of, self.settings.answer)
        if not chosen:
            best = max((item.deciding for item in found), default=0.0)
            return declined(
                f"no passage answers the question with enough confidence (best {best:.2f}, "
                f"needed {threshold:.2f})"
            )
        answers = []
        wanted_terms = frozenset(terms([reading.query.lexical])[0]) if options.highlight and reading.query else frozenset()
        for item in chosen[:top_k]:
            chunk = item.candidate.chunk
            document = documents[chunk.doc_id]
            # A list the answer takes may run past the chunk: the passage holds it all.
            p_start, p_end = min(chunk.start, item.span.start), max(chunk.end, item.span.end)
            text = document.text[item.span.start:item.span.end]
            answers.append(
                Answer(
                    text=text,
                    score=round(item.confidence, 4),
                    confidence=confidence_label(item.confidence, threshold),
                    citation=self._citation(document, item.span.start, item.span.end),
                    passage=Passage(text=document.text[p_start:p_end], start=p_start, end=p_end),
                    passage_id=passage_id(chunk.doc_id, item.span.start, item.span.end),
                    highlights=tuple((item.span.start + a, item.span.start + b)
                                     for a, b in term_spans(text, wanted_terms)),
                    explain=self._explain_answer(item) if options.explain else None,
                )
            )
        heard = {item.candidate.chunk.doc_id for item in chosen}
        named = reading.subjects.doc_ids if subjects and doc_ids is None else (doc_ids or [])
        answered_from = [a.citation.doc_id for a in answers]
        notice = None if subjects else self._several_subjects_notice(answered_from)
        notice_subjects = self._subjects_of_each(answered_from) if notice else []
        silent = [Source(d, documents[d].title) for d in sorted(named) if d not in heard and d in documents]
        return AskResult(
            question=question,
            answered=True,
            subjects=subjects,
            notice=notice,
            notice_subjects=notice_subjects,
            answers=answers,
            silent=silent if len(silent) <= MAX_SILENT else [],
            took_ms=(time.perf_counter() - began) * 1000,
            candidates=candidates,
            meta=self.meta,
            explain=explain,
        )

    def _explain_reading(self, reading: Reading, options: QueryOptions) -> dict:
        """How a question was read: what each side searched for, the expansion, the subjects, the bar."""
        query = reading.query
        return {
            "dense_query": None if query is None else query.dense,
            "lexical_query": None if query is None else query.lexical,
            "lexical_terms": [] if query is None else list(dict.fromkeys(terms([query.lexical])[0])),
            "expanded_terms": [] if query is None else list(query.expansion),
            "subjects": reading.subjects.names,
            "subjects_mode": options.subjects.value,
            "narrowed_to": None if reading.narrowed_to is None else sorted(reading.narrowed_to),
            "filter": options.filter.as_dict(),
            "min_confidence": self.settings.answer.min_confidence,
            "fusion": self.retriever.fusion.value,
        }

    def _explain_answer(self, item: ScoredSpan) -> dict:
        """Why an answer ranked where it did: the ranker's features, each one's contribution to its
        logit, the confidence, and its passage's retrieval scores."""
        values = np.array([item.features[name] for name in FEATURES])
        contributions = self.ranker.contributions(values)
        return {
            "confidence": round(item.confidence, 6),
            "ranker_logit": round(float(self.ranker.logit(values[None, :])[0]), 6),
            "features": {name: round(float(v), 6) for name, v in zip(FEATURES, values)},
            "contributions": {name: round(float(c), 6) for name, c in zip(FEATURES, contributions)},
            "passage": {"dense": round(item.candidate.dense, 6), "lexical": round(item.candidate.lexical, 6),
                        "fused": round(item.candidate.score, 6)},
        }

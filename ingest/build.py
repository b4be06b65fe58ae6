"""Corpus → index bundle, re-embedding only documents whose content changed."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .bundle import (
    REUSABLE_FORMATS,
    Bundle,
    BundleError,
    FORMAT_VERSION,
    BundleWriter,
    DocumentEntry,
    SkippedEntry,
    load_bundle,
    new_manifest,
    read_manifest,
)
from .chunking import CHUNKER_VERSION, SectionChunker
from .corpus import Skipped, read_corpus
from .documents import Chunk, Document
from .subjects import SUBJECTS_VERSION, assign_subjects
from .embedding import VectorEncoder
from .onnx_encoder import backend_of, make_encoder
from .lexical import LEXICAL_VERSION, LexicalIndex
from .settings import IngestSettings
from .units import UNIT_DTYPE, UNITS_VERSION, Unit, split_units, unit_rows
from .vector_index import choose_spec

EMBED_TEXT_VERSION = "title-section-chunk-v2"


def embed_text(document: Document, chunk: Chunk) -> str:
    """The text whose embedding stands for a chunk in the dense index.

    The chunk is embedded with its document title and section title as context,
    so that a chunk under "Symptoms of overdose" is found by "what happens if
    someone takes too much?" even when its own lines never say "overdose".
    """
    body = document.text[chunk.start:chunk.end]
    context = [
        part
        for part in dict.fromkeys([document.title, chunk.section or ""])
        if part and not body.startswith(part)
    ]
    return "\n".join(context + [body])


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, n: int) -> None: ...


@dataclass
class IngestReport:
    documents: int = 0
    chunks: int = 0
    units: int = 0
    embedded_documents: int = 0
    reused_documents: int = 0
    removed_documents: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    up_to_date: bool = False

    def summary(self) -> str:
        state = "index up to date" if self.up_to_date else "index built"
        return (
            f"{state}: {self.documents} documents, {self.chunks} chunks, {self.units} answer units, "
            f"{len(self.skipped)} skipped ({self.embedded_documents} embedded, "
            f"{self.reused_documents} reused, {self.removed_documents} removed) "
            f"in {self.seconds:.1f} s"
        )


class IndexBuilder:
    """Builds or refreshes the bundle at ``settings.index_dir`` from ``settings.corpus_dir``.

    ``embedder`` is where the vectors are computed: the model in this process by
    default, or any :class:`~ingest.embedding.VectorEncoder`, e.g. a
    ``ingest.ray_embedding.RayEncoder`` that spreads them over a Ray cluster. Everything
    else (parsing, splitting, the order of rows, the bundle) is the same either way.
    """

    def __init__(self, settings: IngestSettings, embedder: VectorEncoder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder if embedder is not None else make_encoder(
            settings.embed_model, settings.embed_backend, settings.embed_batch_size, cache_dir=settings.encoder_cache_dir
        )
        self.chunker = SectionChunker(settings.chunk_size, settings.chunk_overlap)

    def recorded_settings(self) -> dict[str, int | str]:
        return {
            **self.settings.chunking(),
            "chunker": CHUNKER_VERSION,
            "lexical": LEXICAL_VERSION,
            "embed_text": EMBED_TEXT_VERSION,
            "units": UNITS_VERSION,
            "subjects": SUBJECTS_VERSION,
            "vector_index": self.settings.vector_index.model_dump_json(exclude_defaults=True),
            # ONNX only (torch bundles keep their settings): the exported encoder the vectors came from
            **({"embed_backend": backend_of(self.embedder), "encoder": self.embedder.fingerprint}
               if backend_of(self.embedder) != "torch" else {}),
        }

    def _previous(self, index_dir: Path) -> Bundle | None:
        """The current bundle if its vectors can be reused (same model and settings, but
        for the lexical index's and the subjects', rebuilt from the text every time; a bundle of
        an earlier format whose vectors are laid out alike counts too)."""
        try:
            manifest = read_manifest(index_dir, REUSABLE_FORMATS)
        except BundleError:
            return None

        def vector_settings(settings: dict[str, int | str]) -> dict[str, int | str]:
            return {key: value for key, value in settings.items() if key not in ("lexical", "vector_index", "subjects")}

        if manifest.embed_model != self.settings.embed_model or vector_settings(manifest.settings) != vector_settings(
            self.recorded_settings()
        ):
            return None
        try:
            return load_bundle(index_dir, formats=REUSABLE_FORMATS)
        except BundleError:
            return None

    def build(self, progress: Progress | None = None, force: bool = False) -> IngestReport:
        began = time.perf_counter()
        corpus_dir, index_dir = Path(self.settings.corpus_dir), Path(self.settings.index_dir)
        if not corpus_dir.is_dir():
            raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist")
        report = IngestReport()
        documents: list[Document] = []
        for item in read_corpus(corpus_dir):
            if isinstance(item, Skipped):
                report.skipped.append(item)
            else:
                documents.append(item)

        previous = None if force else self._previous(index_dir)
        # Each new or changed document is split now (chunks and answer units), so
        # that one the splitters can't handle is skipped with its reason instead
        # of failing the whole build.
        old = previous.manifest.documents if previous else {}
        fresh_spans: dict[str, list] = {}
        fresh_units: dict[str, list[Unit]] = {}
        kept: list[Document] = []
        for document in documents:
            entry = old.get(document.doc_id)
            if entry is None or entry.content_hash != document.content_hash:
                try:
                    fresh_spans[document.doc_id] = self.chunker.split(document.text, document.sections)
                    fresh_units[document.doc_id] = split_units(document)
                except Exception as exc:  # noqa: BLE001
                    report.skipped.append(
                        Skipped(document.path, f"it could not be split into passages ({type(exc).__name__}: {exc})")
                    )
                    continue
            kept.append(document)
        documents = kept
        current = {d.doc_id: d.content_hash for d in documents}
        report.documents = len(documents)
        report.removed_documents = len(set(old) - set(current))
        if (
            previous is not None
            and previous.manifest.format_version == FORMAT_VERSION
            and previous.manifest.settings == self.recorded_settings()
            and current == {k: v.content_hash for k, v in old.items()}
        ):
            report.up_to_date = True
            report.chunks = previous.manifest.chunk_count
            report.units = previous.manifest.unit_count
            report.reused_documents = len(documents)
            report.seconds = time.perf_counter() - began
            return report

        documents = assign_subjects(documents)
        with BundleWriter(index_dir) as writer:
            writer.write_documents(documents)
            chunk_rows: list[tuple[Document, int, int, str | None]] = []
            reused: dict[int, np.ndarray] = {}
            to_embed: list[int] = []
            unit_tables: list[np.ndarray] = []
            unit_vectors: list[np.ndarray | None] = []
            unit_texts: list[str] = []
            old_chunks: dict[str, list[Chunk]] = {}
            if previous is not None:
                for chunk in previous.chunks:
                    old_chunks.setdefault(chunk.doc_id, []).append(chunk)
            for row, document in enumerate(documents):
                if document.doc_id not in fresh_spans:
                    report.reused_documents += 1
                    prior = old_chunks.get(document.doc_id, [])
                    vectors = previous.vectors([c.chunk_id for c in prior])
                    for chunk, vector in zip(prior, vectors):
                        reused[len(chunk_rows)] = vector
                        chunk_rows.append((document, chunk.start, chunk.end, chunk.section))
                    lo, hi = previous.unit_range(document.doc_id)
                    table = np.array(previous.units[lo:hi])
                    table["doc"] = row
                    unit_tables.append(table)
                    unit_vectors.append(np.asarray(previous.unit_vectors[lo:hi], dtype=np.float32))
                else:
                    report.embedded_documents += 1
                    for span in fresh_spans[document.doc_id]:
                        to_embed.append(len(chunk_rows))
                        chunk_rows.append((document, span.start, span.end, span.section))
                    units = fresh_units[document.doc_id]
                    unit_tables.append(unit_rows(row, units))
                    unit_vectors.append(None)
                    unit_texts.extend(document.text[u.start:u.end] for u in units)

            chunks = [
                Chunk(chunk_id=i, doc_id=doc.doc_id, start=start, end=end, section=section)
                for i, (doc, start, end, section) in enumerate(chunk_rows)
            ]
            by_id = {d.doc_id: d for d in documents}
            if progress is not None:
                progress.start(len(to_embed) + len(unit_texts))
            advance = progress.advance if progress is not None else None
            fresh = self.embedder.embed([embed_text(by_id[chunks[i].doc_id], chunks[i]) for i in to_embed], progress=advance)
            fresh_unit_vectors = self.embedder.embed(unit_texts, progress=advance)
            dimension = fresh.shape[1] if len(to_embed) else (
                previous.manifest.dimension if previous is not None else self.embedder.dimension
            )
            vectors = np.zeros((len(chunks), dimension), dtype=np.float32)
            for row, vector in reused.items():
                vectors[row] = vector
            for row, vector in zip(to_embed, fresh):
                vectors[row] = vector
            # Units: reused vectors where the document is unchanged, fresh ones in order otherwise.
            taken = 0
            for i, table in enumerate(unit_tables):
                if unit_vectors[i] is None:
                    unit_vectors[i] = fresh_unit_vectors[taken:taken + len(table)]
                    taken += len(table)
            all_units = np.concatenate(unit_tables) if unit_tables else np.zeros(0, dtype=UNIT_DTYPE)
            all_unit_vectors = (
                np.concatenate([v.reshape(-1, dimension) for v in unit_vectors])
                if unit_vectors else np.zeros((0, dimension), dtype=np.float32)
            )
            per_document = Counter(c.doc_id for c in chunks)
            writer.write_chunks(chunks)
            dense_spec = choose_spec(len(vectors), self.settings.vector_index)
            unit_spec = choose_spec(len(all_unit_vectors), self.settings.vector_index)
            writer.write_dense(vectors, dense_spec)
            writer.write_units(all_units, all_unit_vectors, unit_spec)
            writer.write_lexical(LexicalIndex.build([by_id[c.doc_id].text[c.start:c.end] for c in chunks]))
            if backend_of(self.embedder) != "torch":
                writer.write_encoder(self.embedder.folder)
            writer.commit(
                new_manifest(
                    embed_model=self.settings.embed_model,
                    dimension=dimension,
                    settings=self.recorded_settings(),
                    documents={
                        d.doc_id: DocumentEntry(
                            path=d.path, content_hash=d.content_hash, chunks=per_document[d.doc_id]
                        )
                        for d in documents
                    },
                    skipped=[SkippedEntry(path=s.path, reason=s.reason) for s in report.skipped],
                    chunk_count=len(chunks),
                    unit_count=len(all_units),
                    dense_index=dense_spec,
                    unit_index=unit_spec,
                )
            )
        report.units = len(all_units)
        report.chunks = len(chunks)
        report.seconds = time.perf_counter() - began
        return report

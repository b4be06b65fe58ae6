"""The index bundle: the one place that writes and reads it.

A bundle is a folder::

    manifest.json      format version, model, dimension, settings, per-document hashes
    documents.jsonl    one document a line: metadata, subjects, sections and canonical text
    chunks.jsonl       one chunk a line: document, section, start, end
    dense.faiss        FAISS inner-product index of the chunk vectors, row i = chunk i
    lexical/           BM25 index (bm25s), row i = chunk i
    units.npy          answer units (sentences, list items, headings): document row, offsets, flags
    units.faiss        FAISS inner-product index of the answer units' vectors, row i = unit i
    encoder/           the exported ONNX encoder the vectors were made with (ONNX backends only)

Both FAISS files keep every float vector and are memory-mapped when read; their
kind (exact, or approximate beyond a size) and parameters are in the manifest
(``ingest.vector_index``).

Writes go to a staging folder beside the target, which is renamed into place
only when every file is complete; a crash leaves the previous bundle as it was.
Every folder and file of the bundle gets the modes the process's umask gives new
ones (0755 and 0644 under umask 022), whatever the files were copied from, so a
service running as another user can read it.
"""

from __future__ import annotations

import hashlib

import json
import os
import shutil
import stat
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from .documents import Chunk, Document, Section, Span
from .lexical import LexicalIndex
from .units import UNIT_DTYPE
from .vector_index import IndexSpec, VectorIndex, build_index, write_index

FORMAT_VERSION = 5
"""5: documents record where each subject came from (``subject_sources``)."""
REUSABLE_FORMATS = (4, 5)
"""Formats whose vectors, chunks and units a new build may reuse (their layout is this one's)."""
MANIFEST = "manifest.json"
DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
DENSE = "dense.faiss"
LEXICAL = "lexical"
UNITS = "units.npy"
UNIT_VECTORS = "units.faiss"
ENCODER = "encoder"
_STAGING = ".staging-"
_RETIRED = ".retired-"


class BundleError(Exception):
    """A bundle that is missing, damaged or built for another model or format."""


class DocumentEntry(BaseModel):
    path: str
    content_hash: str
    chunks: int


class SkippedEntry(BaseModel):
    path: str
    reason: str


class Manifest(BaseModel):
    format_version: int
    created_at: str
    embed_model: str
    dimension: int
    settings: dict[str, int | str]
    documents: dict[str, DocumentEntry]
    skipped: list[SkippedEntry] = []
    chunk_count: int
    unit_count: int
    dense_index: IndexSpec = IndexSpec()
    unit_index: IndexSpec = IndexSpec()

    @property
    def version(self) -> str:
        """What the bundle answers from, in 12 hex digits: the format, the model, the settings and every
        document's content. Two builds of the same corpus with the same settings share it; any change
        to a document or a setting gives a new one (responses carry it, so a caller can say which index
        answered, and caches keyed on it are emptied with the index)."""
        identity = {
            "format": self.format_version, "model": self.embed_model, "settings": self.settings,
            "documents": {doc_id: entry.content_hash for doc_id, entry in sorted(self.documents.items())},
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Bundle:
    """A loaded index: documents, chunk table and both search indexes."""

    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    dense: VectorIndex
    """The chunk vectors, row i = chunk i."""
    lexical: LexicalIndex
    units: np.ndarray
    """Answer units (``ingest.units.UNIT_DTYPE``), sorted by document row then start."""
    unit_index: VectorIndex
    """The answer units' vectors, row i = unit i."""

    @property
    def unit_vectors(self) -> np.ndarray:
        """Row i embeds unit i (read-only, over the memory-mapped file)."""
        return self.unit_index.vectors

    def __post_init__(self) -> None:
        self.doc_ids = list(self.documents)
        rows = self.units["doc"]
        bounds = np.searchsorted(rows, np.arange(len(self.doc_ids) + 1))
        self._unit_bounds = {doc: (int(bounds[i]), int(bounds[i + 1])) for i, doc in enumerate(self.doc_ids)}

    def unit_range(self, doc_id: str, start: int = 0, end: int | None = None) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of the units of ``doc_id`` that begin in ``[start, end)``."""
        lo, hi = self._unit_bounds.get(doc_id, (0, 0))
        starts = self.units["start"][lo:hi]
        a = lo + int(np.searchsorted(starts, start, side="left"))
        b = hi if end is None else lo + int(np.searchsorted(starts, end, side="left"))
        return a, b

    def chunk_text(self, chunk: Chunk) -> str:
        return self.documents[chunk.doc_id].text[chunk.start:chunk.end]

    def vectors(self, chunk_ids: list[int]) -> np.ndarray:
        """The stored embedding of each chunk, in the order given."""
        if not chunk_ids:
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        return np.array(self.dense.vectors[np.asarray(chunk_ids, dtype=np.int64)], dtype=np.float32)


def _section_from_json(row: dict) -> Section:
    heading = row.get("heading")
    return Section(row["title"], row["start"], row["end"], Span(**heading) if heading else None)


def _siblings(index_dir: Path, marker: str) -> list[Path]:
    return sorted(index_dir.parent.glob(f".{index_dir.name}{marker}*"))


def _recover(index_dir: Path) -> None:
    """Finish a swap that a crash interrupted between its two renames."""
    if index_dir.exists():
        return
    retired = _siblings(index_dir, _RETIRED)
    if retired:
        os.replace(retired[-1], index_dir)


def read_manifest(index_dir: Path, formats: tuple[int, ...] = (FORMAT_VERSION,)) -> Manifest:
    """The bundle's manifest; one of another format than ``formats`` is refused."""
    index_dir = Path(index_dir)
    _recover(index_dir)
    path = index_dir / MANIFEST
    if not path.exists():
        raise BundleError(f"no index at {index_dir}: build it with 'qa ingest'")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"the index manifest at {path} is unreadable ({exc}); re-ingest with 'qa ingest'") from None
    version = raw.get("format_version")
    if version not in formats:
        raise BundleError(
            f"the index at {index_dir} has format version {version}, this service reads "
            f"version {FORMAT_VERSION}; re-ingest with 'qa ingest'"
        )
    try:
        return Manifest.model_validate(raw)
    except ValueError as exc:
        raise BundleError(f"the index manifest at {path} is invalid ({exc}); re-ingest with 'qa ingest'") from None


def load_bundle(index_dir: Path, expected_model: str | None = None,
                formats: tuple[int, ...] = (FORMAT_VERSION,)) -> Bundle:
    """Read a bundle, refusing one built with another model or format version (but ``formats``)."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir, formats)
    if expected_model is not None and manifest.embed_model != expected_model:
        raise BundleError(
            f"the index at {index_dir} was built with embedding model {manifest.embed_model!r}, "
            f"but this service is set to use {expected_model!r}; re-ingest with 'qa ingest'"
        )
    try:
        documents: dict[str, Document] = {}
        with open(index_dir / DOCUMENTS, encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                row["sections"] = tuple(_section_from_json(s) for s in row["sections"])
                row["subjects"] = tuple(row.get("subjects", ()))
                row["subject_sources"] = tuple(row.get("subject_sources", ()))
                documents[row["doc_id"]] = Document(**row)
        with open(index_dir / CHUNKS, encoding="utf-8") as handle:
            chunks = [Chunk(**json.loads(line)) for line in handle]
        dense = VectorIndex.read(index_dir / DENSE, manifest.dense_index)
        lexical = LexicalIndex.load(index_dir / LEXICAL)
        units = np.load(index_dir / UNITS, allow_pickle=False)
        unit_index = VectorIndex.read(index_dir / UNIT_VECTORS, manifest.unit_index)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise BundleError(f"the index at {index_dir} is damaged ({exc}); re-ingest with 'qa ingest'") from None
    if (
        dense.ntotal != len(chunks)
        or dense.dimension != manifest.dimension
        or units.dtype != UNIT_DTYPE
        or len(units) != manifest.unit_count
        or unit_index.vectors.shape != (len(units), manifest.dimension)
    ):
        raise BundleError(f"the index at {index_dir} is inconsistent; re-ingest with 'qa ingest'")
    return Bundle(manifest, documents, chunks, dense, lexical, units, unit_index)


def _new_folder_mode(parent: Path) -> int:
    """The mode a new folder gets here (0777 less the umask), read off one made and removed (asking for
    the umask sets it, for every thread)."""
    probe = parent / ".mode-probe"
    probe.mkdir(0o777)
    try:
        return stat.S_IMODE(probe.stat().st_mode)
    finally:
        probe.rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BundleWriter:
    """Stage a new bundle next to ``index_dir`` and swap it in on :meth:`commit`.

    Use as a context manager: leaving the block without committing (an
    exception) removes the staging folder and leaves the old bundle untouched.
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.index_dir.parent.mkdir(parents=True, exist_ok=True)
        _recover(self.index_dir)
        self._remove_abandoned()
        prefix = f".{self.index_dir.name}{_STAGING}{os.getpid()}-"
        self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=self.index_dir.parent))
        self._dir_mode = _new_folder_mode(self.staging)
        self.staging.chmod(self._dir_mode)  # mkdtemp makes it 0700
        self._committed = False

    def _remove_abandoned(self) -> None:
        """Staging folders of ingests that died (their process is gone)."""
        for path in _siblings(self.index_dir, _STAGING):
            pid = path.name.split(_STAGING, 1)[1].split("-", 1)[0]
            if not pid.isdigit() or not _pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
        if self.index_dir.exists():
            for path in _siblings(self.index_dir, _RETIRED):
                shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            shutil.rmtree(self.staging, ignore_errors=True)

    def write_documents(self, documents: list[Document]) -> None:
        with open(self.staging / DOCUMENTS, "w", encoding="utf-8") as handle:
            for document in documents:
                handle.write(json.dumps(asdict(document), ensure_ascii=False) + "\n")

    def write_chunks(self, chunks: list[Chunk]) -> None:
        with open(self.staging / CHUNKS, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")

    def write_dense(self, vectors: np.ndarray, spec: IndexSpec) -> None:
        write_index(build_index(vectors, spec), self.staging / DENSE)

    def write_units(self, units: np.ndarray, vectors: np.ndarray, spec: IndexSpec) -> None:
        np.save(self.staging / UNITS, np.ascontiguousarray(units, dtype=UNIT_DTYPE), allow_pickle=False)
        write_index(build_index(vectors, spec), self.staging / UNIT_VECTORS)

    def write_lexical(self, lexical: LexicalIndex) -> None:
        lexical.save(self.staging / LEXICAL)

    def write_encoder(self, folder: Path) -> None:
        """A copy of the exported encoder folder (``ingest.onnx_encoder``) the vectors were made with."""
        shutil.copytree(folder, self.staging / ENCODER)

    def _follow_umask(self) -> None:
        """Folders and files copied in (the encoder, from a cache made with mkdtemp: 0700) get the modes
        new ones get."""
        file_mode = self._dir_mode & 0o666
        for root, folders, files in os.walk(self.staging):
            for name, mode in [*((f, self._dir_mode) for f in folders), *((f, file_mode) for f in files)]:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.chmod(path, mode)

    def commit(self, manifest: Manifest) -> None:
        """Write the manifest last, then swap the staged bundle into place."""
        self._follow_umask()
        path = self.staging / MANIFEST
        path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        retired = None
        if self.index_dir.exists():
            retired = self.index_dir.with_name(f".{self.index_dir.name}{_RETIRED}{os.getpid()}")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(self.index_dir, retired)
        os.replace(self.staging, self.index_dir)
        self._committed = True
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)


def new_manifest(**fields: object) -> Manifest:
    return Manifest(
        format_version=FORMAT_VERSION,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields,
    )

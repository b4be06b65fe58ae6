"""Vector search over one set of unit-length embeddings (chunks, or answer units).

The index type follows the size of the set (``IndexKind``, chosen by
``choose_spec``): exact inner product while it is small, an approximate FAISS
index beyond ``approximate_above`` rows, whose candidates are then re-scored
exactly. Either way the file keeps every float vector, and it is read with
FAISS's memory mapping, so a large set costs page cache shared by every server
process instead of private memory, and loading it reads almost nothing.

Thresholds and parameters were chosen by measurement (eval/bench_scale.py,
docs/benchmarks.md "Scale"); the spec a bundle was built with is recorded in
its manifest and its search parameters are applied when it is read.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel


class IndexKind(str, Enum):
    """``flat``: exact inner product over every vector. ``ivf``: an inverted file of
    ``nlist`` k-means cells with 8-bit scalar-quantised codes in memory; a search reads
    ``nprobe`` cells and re-scores the best ``k_factor * k`` with the exact vectors.
    ``hnsw``: a graph of ``m`` links a node over the exact vectors (``ef_search``
    candidates a search); fastest to search, slowest to build and largest in memory."""

    FLAT = "flat"
    IVF = "ivf"
    HNSW = "hnsw"


class IndexSpec(BaseModel):
    """What a bundle records of one vector index: its kind and parameters."""

    kind: IndexKind = IndexKind.FLAT
    nlist: int = 0
    nprobe: int = 0
    k_factor: int = 0
    m: int = 0
    ef_construction: int = 0
    ef_search: int = 0

    def factory(self) -> str:
        """FAISS's ``index_factory`` description of the index."""
        if self.kind is IndexKind.IVF:
            return f"IVF{self.nlist},SQ8,Refine(Flat)"
        if self.kind is IndexKind.HNSW:
            return f"HNSW{self.m},Flat"
        return "Flat"


class IndexPolicy(BaseModel):
    """How the index type is chosen from the number of vectors (``IngestSettings.vector_index``)."""

    kind: IndexKind | None = None
    """Force one kind; ``None`` chooses by size."""
    approximate_above: int = 50_000
    """Rows beyond which an approximate index replaces exact search (an exact search reads
    every vector: 50k MiniLM vectors are 77 MB a question; docs/benchmarks.md "Scale")."""
    approximate: IndexKind = IndexKind.IVF
    cells_per_sqrt: float = 2.0
    """``nlist`` = this x sqrt(rows), rounded to a power of two (1M rows: 2,048 cells)."""
    nprobe: int = 32
    """Cells read a search: recall@10 0.98 at 100k rows with 256 or 1,024 cells alike (what
    decides recall is how many cells are read, not their share)."""
    k_factor: int = 8
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 96


def choose_spec(rows: int, policy: IndexPolicy | None = None) -> IndexSpec:
    policy = policy or IndexPolicy()
    kind = policy.kind or (policy.approximate if rows > policy.approximate_above else IndexKind.FLAT)
    if kind is IndexKind.IVF:
        nlist = 2 ** max(4, round(math.log2(max(1.0, policy.cells_per_sqrt * math.sqrt(max(rows, 1))))))
        return IndexSpec(kind=kind, nlist=nlist, nprobe=min(policy.nprobe, nlist), k_factor=policy.k_factor)
    if kind is IndexKind.HNSW:
        return IndexSpec(kind=kind, m=policy.hnsw_m, ef_construction=policy.ef_construction, ef_search=policy.ef_search)
    return IndexSpec(kind=IndexKind.FLAT)


ADD_BLOCK = 65_536
TRAIN_PER_CELL = 40
"""K-means of an IVF index learns from this many sample vectors a cell (at most every vector)."""


def build_index(vectors: np.ndarray, spec: IndexSpec, seed: int = 0) -> faiss.Index:
    """A FAISS inner-product index holding ``vectors`` (row i = id i)."""
    dimension = vectors.shape[1]
    index = faiss.index_factory(dimension, spec.factory(), faiss.METRIC_INNER_PRODUCT)
    if spec.kind is IndexKind.HNSW:
        faiss.downcast_index(index).hnsw.efConstruction = spec.ef_construction
    if not index.is_trained:
        sample = vectors
        wanted = spec.nlist * TRAIN_PER_CELL
        if len(vectors) > wanted:
            rows = np.random.default_rng(seed).choice(len(vectors), wanted, replace=False)
            sample = vectors[np.sort(rows)]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    for begin in range(0, len(vectors), ADD_BLOCK):  # a memory-mapped array is read a block at a time
        index.add(np.ascontiguousarray(vectors[begin:begin + ADD_BLOCK], dtype=np.float32))
    return index


def write_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


class VectorIndex:
    """Top-k inner-product search over a stored set of vectors, optionally within given rows.

    ``exact_rows`` bounds the filtered searches answered exactly (a handful of documents'
    rows: gathering them from the mapped file is cheaper than an approximate search that
    must skip every other row); larger filters go through the index with an id selector.
    """

    def __init__(self, index: faiss.Index, spec: IndexSpec, exact_rows: int = 50_000) -> None:
        self.index = index
        self.spec = spec
        self.exact_rows = exact_rows
        self.vectors = _float_view(index)
        """Every stored vector as a read-only float32 array over the mapped file (row i = id i)."""
        self._params = _search_params(index, spec)

    @classmethod
    def read(cls, path: Path, spec: IndexSpec) -> VectorIndex:
        return cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY), spec)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def search(self, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best ids (within ``rows`` when given) and their exact inner products, best first."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        limit = self.ntotal if rows is None else len(rows)
        k = min(k, limit)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        few = rows is not None and (
            len(rows) <= self.exact_rows or (self.spec.kind is IndexKind.FLAT and len(rows) < self.ntotal // 4)
        )
        if few:
            rows = np.unique(np.asarray(rows, dtype=np.int64))
            scores = self.vectors[rows] @ query[0]
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            return rows[top], scores[top].astype(np.float32)
        params = self._params if rows is None else _search_params(self.index, self.spec, faiss.IDSelectorBatch(rows))
        scores, ids = self.index.search(query, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]


def _flat_of(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        return faiss.downcast_index(index.refine_index)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.downcast_index(index.storage)
    return index


def _float_view(index: faiss.Index) -> np.ndarray:
    flat = _flat_of(index)
    if not isinstance(flat, faiss.IndexFlat):
        raise ValueError(f"a vector index must keep its float vectors, not {type(flat).__name__}")
    count, dimension = int(flat.ntotal), int(flat.d)
    if count == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    raw = faiss.rev_swig_ptr(flat.get_xb(), count * dimension)
    view = np.asarray(_Mapped(index, raw.__array_interface__["data"][0], (count, dimension)))
    view.flags.writeable = False
    return view


class _Mapped:
    """The float vectors inside a FAISS index, as an array that keeps the index (and its
    mapped file) alive for as long as any view of it lives."""

    def __init__(self, owner: faiss.Index, address: int, shape: tuple[int, int]) -> None:
        self.owner = owner
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": "<f4", "version": 3}


def _search_params(index: faiss.Index, spec: IndexSpec, selector: faiss.IDSelector | None = None):  # noqa: ANN202
    if spec.kind is IndexKind.IVF:
        base = faiss.SearchParametersIVF(nprobe=spec.nprobe)
        if selector is not None:
            base.sel = selector
        params = faiss.IndexRefineSearchParameters(k_factor=float(spec.k_factor), base_index_params=base)
        params._keep = (base, selector)  # the SWIG objects must outlive the search
        return params
    if spec.kind is IndexKind.HNSW:
        params = faiss.SearchParametersHNSW(efSearch=spec.ef_search)
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
        params._keep = selector
    return params

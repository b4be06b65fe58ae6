"""Sentence embeddings from a model on local disk; nothing is ever downloaded."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class ModelNotFoundError(Exception):
    """The configured embedding model is not on this machine."""


def resolve_model_path(model: str) -> Path:
    """A model folder path, or an installed package that ships ``model/`` next to its module."""
    candidate = Path(model).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    module = model.replace("-", "_")
    if module.isidentifier():
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            packaged = Path(spec.origin).resolve().parent / "model"
            if packaged.is_dir():
                return packaged
    raise ModelNotFoundError(
        f"embedding model {model!r} is neither a folder nor an installed package that "
        "ships a 'model/' folder; set QA_EMBED_MODEL to a sentence-transformers model on disk"
    )


class VectorEncoder(Protocol):
    """Texts → unit-length vectors: what the index builder needs of an embedding model.

    :class:`Embedder` runs the model in this process; ``ingest.ray_embedding.RayEncoder``
    runs it on the workers of a Ray cluster; the service's ``BatchingEncoder`` shares one
    among concurrent requests. Row i of ``embed(texts)`` embeds ``texts[i]``.
    """

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray: ...


def length_order(texts: Sequence[str]) -> np.ndarray:
    """Indexes of ``texts`` from shortest to longest (stable): the order texts are encoded in."""
    return np.argsort([len(t) for t in texts], kind="stable")


class Embedder:
    """Normalised sentence embeddings; the model is loaded on first use."""

    def __init__(self, model: str, batch_size: int = 32, device: str = "cpu") -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            path = resolve_model_path(self.model)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()

            self._model = SentenceTransformer(str(path), device=self.device, local_files_only=True)

    @property
    def dimension(self) -> int:
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    def embed(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text; ``progress(n)`` after each batch.

        Texts are encoded in order of length, so each batch pads to a similar length
        (a batch of one long chunk and 31 short sentences costs as much as 32 long ones).
        """
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = length_order(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for begin in range(0, len(texts), self.batch_size):
            rows = order[begin:begin + self.batch_size]
            out[rows] = self._model.encode(
                [texts[i] for i in rows],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(len(rows))
        return out

"""An optional cross-encoder that re-orders the answer candidates (``QA_ANSWER__RERANK_MODEL``).

None ships on this machine and nothing is downloaded: a deployment that has a
sentence-transformers ``CrossEncoder`` folder on disk (for instance an MS MARCO
MiniLM cross-encoder) points the setting at it. The cross-encoder scores each
(question, answer span) pair; answers are then ordered by that score, while the
answer ranker's calibrated probability stays the confidence that abstention uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class RerankerError(Exception):
    """The configured cross-encoder can't be loaded."""


class CrossEncoderReranker:
    def __init__(self, path: Path, batch_size: int = 32) -> None:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise RerankerError(f"rerank model {str(path)!r} is not a folder; set QA_ANSWER__RERANK_MODEL to a CrossEncoder folder on disk")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        try:
            self._model = CrossEncoder(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure is a configuration error
            raise RerankerError(f"rerank model {str(path)!r} can't be loaded as a CrossEncoder: {exc}") from None
        self.path = path
        self.batch_size = batch_size

    def scores(self, question: str, texts: list[str]) -> np.ndarray:
        """One relevance score per text (higher is better)."""
        if not texts:
            return np.zeros(0)
        pairs = [(question, text) for text in texts]
        return np.asarray(self._model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False), dtype=np.float64).reshape(len(texts), -1)[:, -1]

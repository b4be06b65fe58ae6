"""The answer reader: a model trained here that reads the best candidate units with the question.

The embedding model compares a question with each sentence alone, as retrieval
needs. The reader compares it with the unit as a reader sees it in its place
(:func:`reader_passage`): the document's title, its section's title and the
lead-in of the list it belongs to, so "Take it as soon as you remember" is
read as the missed-dose advice of the medicine the title names, and "The
shelf life is 3 years" as the storage section's, not the half-life. It is the
packaged MiniLM fine-tuned on question / answer-unit pairs mined by the
service itself (``eval/reader_data.py``, ``eval/train_reader.py``; its card is
``data/reader/README.md``), exported to ONNX and run with ``onnxruntime`` and
``tokenizers`` alone: serving imports no torch.

Its score is the cosine of the question's and the passage's embeddings under
the fine-tuned model: a bi-encoder read of the few candidates the ranker puts
first. (A cross-encoder of the same MiniLM, which reads both texts together,
did not learn within this machine's training budget: docs/evaluation.md.)

A reader folder is an exported encoder (``ingest.onnx_encoder``: ``model.onnx``,
``tokenizer.json``, ``encoder.json``) plus ``reader.json`` (name, input format,
fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.onnx_encoder import MODEL_FILE, TOKENIZER_FILE

DEFAULT_READER = Path(__file__).parent / "data" / "reader"
CONFIG_FILE = "reader.json"
INPUT_FORMAT = "title>section: lead-in unit (v1)"
"""How a unit is put to the reader (:func:`reader_passage`); a reader trained on another form is refused."""


class ReaderError(Exception):
    """The reader folder can't be used; the message says why."""


def reader_passage(title: str | None, section: str | None, lead_in: str | None, text: str) -> str:
    """What the reader reads for one answer unit: ``title > section: lead-in unit``.

    A section whose title begins with the document's (a leaflet's first heading, a paper's title
    line) adds nothing to it: the title is given once."""
    context = [part.strip() for part in (title, section) if part and part.strip()]
    if len(context) == 2 and context[1].casefold().startswith(context[0].casefold()):
        context = context[:1]
    head = " > ".join(context)
    body = f"{lead_in.strip()} {text.strip()}" if lead_in and lead_in.strip() else text.strip()
    return f"{head}: {body}" if head else body


@dataclass(frozen=True)
class ReaderConfig:
    name: str
    variant: str
    fingerprint: str
    input_format: str

    @classmethod
    def read(cls, folder: Path) -> ReaderConfig:
        path = folder / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["name"]), str(data["variant"]), str(data["fingerprint"]), str(data["input_format"]))
        except FileNotFoundError:
            raise ReaderError(f"reader {str(folder)!r} has no {CONFIG_FILE}; set QA_ANSWER__READER_MODEL to a reader folder") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ReaderError(f"reader {str(folder)!r}: {CONFIG_FILE} can't be read ({exc})") from None


def folder_fingerprint(folder: Path) -> str:
    """A short hash of the reader's weights and tokenizer: which reader produced a score."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, TOKENIZER_FILE):
        with open(folder / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


class AnswerReader:
    """Scores (question, passage) pairs with the trained reader: the cosine of their embeddings,
    higher when the passage more likely answers. ``threads``: ONNX Runtime's intra-op threads (0: every core)."""

    def __init__(self, folder: Path = DEFAULT_READER, threads: int = 0, batch_size: int = 32) -> None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ReaderError(f"reader {str(folder)!r} is not a folder; set QA_ANSWER__READER_MODEL to a reader folder")
        self.folder = folder
        self.config = ReaderConfig.read(folder)
        if self.config.input_format != INPUT_FORMAT:
            raise ReaderError(f"reader {str(folder)!r} was trained on inputs {self.config.input_format!r}, "
                              f"not {INPUT_FORMAT!r}; retrain it with eval/train_reader.py")
        from ingest.onnx_encoder import EncoderFolderError, OnnxEncoder

        try:
            self._encoder = OnnxEncoder(folder, batch_size, threads)
        except EncoderFolderError as exc:
            raise ReaderError(f"reader {str(folder)!r}: {exc}") from None

    @property
    def name(self) -> str:
        """The reader's name and fingerprint, as ``X-Model`` and ``/readyz`` give them."""
        return f"{self.config.name}@{self.config.fingerprint}"

    def warm_up(self) -> None:
        from ingest.onnx_encoder import EncoderFolderError

        try:
            self._encoder.warm_up()
        except EncoderFolderError as exc:
            raise ReaderError(f"reader {str(self.folder)!r}: {exc}") from None

    def scores(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One score per passage (float64, the cosine with the question), in the order given."""
        if not passages:
            return np.zeros(0)
        vectors = self._encoder.embed([question, *passages])
        return (vectors[1:] @ vectors[0]).astype(np.float64)

"""The answer reader: a cross-encoder trained here that reads (question, answer unit) pairs.

The embedding model compares a question and a sentence each encoded alone; the
reader reads both together, so it can tell the sentence that answers ("The
half-life is 2.5-4 h") from one that merely shares the words ("The shelf life
is 3 years"). It is the packaged MiniLM fine-tuned with a one-logit head on
question / answer-unit pairs (``eval/train_reader.py``; its card is
``data/reader/README.md``), exported to ONNX and run here with ``onnxruntime``
and ``tokenizers`` alone: serving imports no torch.

A unit is read with its context (:func:`reader_passage`): the document's title,
its section's title and the lead-in of the list it belongs to, so "Take it as
soon as you remember" is read as the missed-dose advice of the medicine the
title names. Training and serving build that text with the same function.

A reader folder holds ``model.onnx``, ``tokenizer.json`` and ``reader.json``
(name, variant, maximum length, inputs, fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_READER = Path(__file__).parent / "data" / "reader"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
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
    max_length: int
    inputs: tuple[str, ...]
    fingerprint: str
    input_format: str

    @classmethod
    def read(cls, folder: Path) -> ReaderConfig:
        path = folder / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["name"]), str(data["variant"]), int(data["max_length"]), tuple(data["inputs"]),
                       str(data["fingerprint"]), str(data["input_format"]))
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
    """Scores (question, passage) pairs with an exported cross-encoder: one logit each, higher
    means the passage more likely answers. ``threads``: ONNX Runtime's intra-op threads (0: every core)."""

    def __init__(self, folder: Path = DEFAULT_READER, threads: int = 0, batch_size: int = 32) -> None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ReaderError(f"reader {str(folder)!r} is not a folder; set QA_ANSWER__READER_MODEL to a reader folder")
        self.folder = folder
        self.config = ReaderConfig.read(folder)
        if self.config.input_format != INPUT_FORMAT:
            raise ReaderError(f"reader {str(folder)!r} was trained on inputs {self.config.input_format!r}, "
                              f"not {INPUT_FORMAT!r}; retrain it with eval/train_reader.py")
        self.threads = threads
        self.batch_size = batch_size
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The reader's name and fingerprint, as the manifest and ``X-Model`` give them."""
        return f"{self.config.name}@{self.config.fingerprint}"

    def warm_up(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            try:
                tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
            except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception types
                raise ReaderError(f"reader {str(self.folder)!r}: its tokenizer can't be read ({exc})") from None
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.config.max_length, strategy="longest_first")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            try:
                session = ort.InferenceSession(str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise ReaderError(f"reader {str(self.folder)!r}: its model can't be loaded ({exc})") from None
            self._tokenizer = tokenizer
            self._session = session

    def scores(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One logit per passage (float64), in the order given."""
        self.warm_up()
        if not passages:
            return np.zeros(0)
        encodings = self._tokenizer.encode_batch([(question, p) for p in passages], add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        out = np.zeros(len(passages), dtype=np.float64)
        for begin in range(0, len(order), self.batch_size):
            rows = order[begin:begin + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows.tolist()):
                encoding = encodings[i]
                n = len(encoding.ids)
                ids[j, :n] = encoding.ids
                mask[j, :n] = 1
                types[j, :n] = encoding.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            logits = self._session.run(None, {name: feed[name] for name in self.config.inputs})[0]
            out[rows] = np.asarray(logits, dtype=np.float64).reshape(len(rows), -1)[:, -1]
        return out

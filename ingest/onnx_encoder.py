"""Sentence embeddings with ONNX Runtime: the same vectors as sentence-transformers, without torch.

A sentence-transformers model (a BERT-like transformer, mean or CLS pooling, unit
length) is exported once with :func:`export_encoder` into a self-contained folder::

    model.onnx       the transformer with pooling and L2 normalisation in the graph
    tokenizer.json   the fast (Rust) tokenizer of the model
    encoder.json     variant, source model, max_seq_length, dimension, fingerprint

:class:`OnnxEncoder` runs such a folder with ``onnxruntime`` and ``tokenizers``
alone: it imports neither torch nor sentence-transformers, so a service whose
index was built with it starts in a fraction of the time. The export (which does
need torch and transformers) happens at ingest; the folder is copied into the
index bundle (``encoder/``) so that every replica serving the bundle encodes
questions exactly as its passages were encoded.

Variants: ``onnx`` (float32, the same arithmetic as torch up to rounding) and
``onnx-int8`` (weights of the matrix products dynamically quantised to int8).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .embedding import resolve_model_path

BACKENDS = ("torch", "onnx", "onnx-int8")
"""Values of ``QA_EMBED_BACKEND``: ``torch`` runs sentence-transformers, the others an exported folder."""
ONNX_BACKENDS = ("onnx", "onnx-int8")
EXPORT_VERSION = 1
"""Bump when the export changes what a folder holds: cached exports are then redone."""
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "encoder.json"


class EncoderExportError(ValueError):
    """The model can't be exported to ONNX (an architecture or pooling this exporter doesn't handle)."""


class EncoderFolderError(Exception):
    """An exported encoder folder that is missing or unreadable."""


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(model_path: Path, variant: str) -> str:
    """What an export depends on: the model's files, the variant and this exporter's version."""
    digest = hashlib.sha256(f"{variant}:{EXPORT_VERSION}".encode())
    for path in sorted(p for p in Path(model_path).rglob("*") if p.is_file()):
        if path.suffix in {".onnx", ".md"} or "onnx" in path.parts or "openvino" in path.parts:
            continue
        digest.update(str(path.relative_to(model_path)).encode())
        digest.update(_file_digest(path).encode())
    return digest.hexdigest()[:20]


def _pooling_mode(model_path: Path) -> tuple[str, bool, int]:
    """(pooling, normalised, max_seq_length) from the sentence-transformers config files."""
    modules_file = model_path / "modules.json"
    pooling = "mean"
    if modules_file.exists():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        unsupported = [k for k in kinds if k not in {"Transformer", "Pooling", "Normalize"}]
        if unsupported or kinds[:1] != ["Transformer"]:
            raise EncoderExportError(
                f"the model at {model_path} has modules {kinds}; the ONNX export handles a Transformer "
                "followed by Pooling (and Normalize) only: use QA_EMBED_BACKEND=torch"
            )
        for module in modules:
            if module.get("type", "").endswith("Pooling"):
                config = json.loads((model_path / module["path"] / "config.json").read_text(encoding="utf-8"))
                modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
                if isinstance(config.get("pooling_mode"), str):  # sentence-transformers 6 writes one name
                    modes = [f"pooling_mode_{ {'mean': 'mean_tokens', 'cls': 'cls_token'}.get(config['pooling_mode'], config['pooling_mode'])}"]
                if modes == ["pooling_mode_mean_tokens"]:
                    pooling = "mean"
                elif modes == ["pooling_mode_cls_token"]:
                    pooling = "cls"
                else:
                    raise EncoderExportError(
                        f"pooling {modes} of the model at {model_path} is not handled by the ONNX export: "
                        "use QA_EMBED_BACKEND=torch"
                    )
    max_seq_length = 512
    st_config = model_path / "sentence_bert_config.json"
    if st_config.exists():
        max_seq_length = int(json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length") or 512)
    return pooling, True, max_seq_length


def export_encoder(model: str, variant: str, out_dir: Path) -> Path:
    """Export the sentence-transformers model ``model`` (a folder or a package shipping one) to
    ``out_dir`` as ``variant`` (``onnx`` or ``onnx-int8``). Needs torch, transformers, onnx and
    onnxruntime; runs offline."""
    if variant not in ONNX_BACKENDS:
        raise ValueError(f"unknown ONNX variant {variant!r}; one of {ONNX_BACKENDS}")
    model_path = resolve_model_path(model)
    pooling, normalise, max_seq_length = _pooling_mode(model_path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise EncoderExportError(f"the model at {model_path} has no fast tokenizer; use QA_EMBED_BACKEND=torch")
    max_seq_length = min(max_seq_length, int(getattr(tokenizer, "model_max_length", max_seq_length) or max_seq_length))
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    transformer = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager")
    transformer.eval()
    inputs = ["input_ids", "attention_mask"]
    uses_token_types = "token_type_ids" in tokenizer.model_input_names
    if uses_token_types:
        inputs.append("token_type_ids")

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # noqa: ANN001, ANN201
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1) if normalise else pooled

    sample = tokenizer(["an example sentence", "another, longer example sentence for the export"],
                       padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in inputs)
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes["sentence_embedding"] = {0: "batch"}
    fp32 = out_dir / ("model-fp32.onnx" if variant == "onnx-int8" else MODEL_FILE)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on shapes it treats as constants concern decoders' caches, not this graph
        # (the tests compare the export with torch at many lengths and batch sizes).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(), args, str(fp32), input_names=inputs, output_names=["sentence_embedding"],
            dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False,
        )
    dimension = int(transformer.config.hidden_size)
    if variant == "onnx-int8":
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))  # quantize_dynamic's "consider pre-processing" hint
        try:
            quantize_dynamic(str(fp32), str(out_dir / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
        finally:
            root.setLevel(level)
        fp32.unlink()
    config = {
        "format": EXPORT_VERSION,
        "variant": variant,
        "source_model": model,
        "fingerprint": model_fingerprint(model_path, variant),
        "max_seq_length": max_seq_length,
        "dimension": dimension,
        "pooling": pooling,
        "normalised": normalise,
        "inputs": inputs,
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "exported_with": {"torch": torch.__version__},
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out_dir


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "drug-qa" / "encoders"


def cached_export(model: str, variant: str, cache_dir: Path | None = None) -> Path:
    """The exported folder of ``model`` as ``variant``, exported on first use and kept under
    ``cache_dir`` by fingerprint (a changed model file or exporter means a new export)."""
    model_path = resolve_model_path(model)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / f"{variant}-{model_fingerprint(model_path, variant)}"
    if (target / CONFIG_FILE).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        export_encoder(model, variant, staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished the same export first
            if not (target / CONFIG_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_encoder_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EncoderFolderError(f"no readable exported encoder at {folder} ({exc})") from None
    if config.get("format") != EXPORT_VERSION:
        raise EncoderFolderError(f"the encoder at {folder} has export format {config.get('format')}, "
                                 f"this version reads {EXPORT_VERSION}")
    return config


class OnnxEncoder:
    """Unit-length float32 sentence embeddings from an exported folder (see :func:`export_encoder`).

    The same contract as :class:`~ingest.embedding.Embedder`: ``embed(texts)`` → one row per text.
    Texts are tokenised together (the Rust tokenizer's own threads), truncated to the model's
    ``max_seq_length`` as sentence-transformers does, and run in batches of similar token
    length, so each batch pads little. ``threads``: ONNX Runtime's intra-op threads (0: every core).
    """

    thread_safe = True
    """``embed`` may be called from several threads at once (ONNX Runtime's sessions and the Rust tokenizer,
    whose settings are fixed at load, allow it)."""

    def __init__(self, folder: Path, batch_size: int = 32, threads: int = 0) -> None:
        self._folder = Path(folder) if folder is not None else None
        self._config: dict | None = None
        self.batch_size = batch_size
        self.threads = threads
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._export: tuple[str, str, Path | None] | None = None
        if self._folder is not None:
            self._config = read_encoder_config(self._folder)
            self.backend: str = self._config["variant"]
            self.model: str = self._config["source_model"]

    @classmethod
    def for_model(cls, model: str, variant: str, batch_size: int = 32, threads: int = 0,
                  cache_dir: Path | None = None) -> OnnxEncoder:
        """``model`` exported as ``variant`` on first use (or taken from the export cache)."""
        if variant not in ONNX_BACKENDS:
            raise ValueError(f"unknown ONNX variant {variant!r}; one of {ONNX_BACKENDS}")
        encoder = cls(None, batch_size, threads)  # type: ignore[arg-type]
        encoder.backend, encoder.model = variant, model
        encoder._export = (model, variant, cache_dir)
        return encoder

    @property
    def folder(self) -> Path:
        """The exported folder (exported now if it isn't yet)."""
        if self._folder is None:
            with self._lock:
                if self._folder is None:
                    model, variant, cache_dir = self._export
                    folder = cached_export(model, variant, cache_dir)
                    self._config = read_encoder_config(folder)
                    self._folder = folder
        return self._folder

    @property
    def config(self) -> dict:
        self.folder  # noqa: B018 - exports if needed
        return self._config

    @property
    def fingerprint(self) -> str:
        return str(self.config["fingerprint"])

    @property
    def dimension(self) -> int:
        return int(self.config["dimension"])

    def warm_up(self) -> None:
        if self._session is not None:
            return
        folder = self.folder
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            try:
                tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for a bad file
                raise EncoderFolderError(f"the encoder's tokenizer at {folder} can't be loaded ({exc})") from None
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=int(self.config["max_seq_length"]))
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
            options.inter_op_num_threads = 1
            # Idle intra-op threads would spin for the next batch, taking the cores that request
            # threads (tokenising, ranking, HTTP) need between encodes.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            try:
                session = ort.InferenceSession(str(folder / MODEL_FILE), options,
                                               providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise EncoderFolderError(f"the encoder model at {folder} can't be loaded ({exc})") from None
            self._tokenizer = tokenizer
            self._session = session

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        inputs = self.config["inputs"]
        pad = int(self.config.get("pad_token_id", 0))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for rows in _length_batches(order, lengths, self.batch_size):
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                encoding = encodings[i]
                n = len(encoding.ids)
                ids[j, :n] = encoding.ids
                mask[j, :n] = 1
                types[j, :n] = encoding.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            out[rows] = self._session.run(None, {name: feed[name] for name in inputs})[0]
            if progress is not None:
                progress(len(rows))
        return out


MAX_PADDING = 0.25
"""Largest share of a batch's token cells that may be padding. On a CPU the model's cost grows with
cells (rows x longest text): a question and a one-word text encoded together cost nearly two questions,
apart about one and a fifth. Length-sorted chunks at ingest are near enough in length to fill batches."""


def _length_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Rows in ``order`` (ascending length) cut into batches of at most ``batch_size`` rows, a new batch
    begun where the next row would make more than :data:`MAX_PADDING` of the batch's cells padding."""
    batches: list[np.ndarray] = []
    begin, real = 0, 0
    for end, row in enumerate(order):
        length = int(lengths[row])
        rows = end - begin + 1
        if end > begin and (rows > batch_size or rows * length - (real + length) > MAX_PADDING * rows * length):
            batches.append(order[begin:end])
            begin, real = end, 0
        real += length
    batches.append(order[begin:])
    return batches


def make_encoder(model: str, backend: str = "torch", batch_size: int = 32, threads: int = 0,
                 cache_dir: Path | None = None):  # noqa: ANN201 - Embedder | OnnxEncoder
    """The encoder ``QA_EMBED_BACKEND`` asks for: sentence-transformers on torch, or an ONNX export
    (made on first use, then kept in ``cache_dir``)."""
    if backend == "torch":
        from .embedding import Embedder

        return Embedder(model, batch_size)
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; one of {BACKENDS}")
    return OnnxEncoder.for_model(model, backend, batch_size, threads, cache_dir)


def backend_of(encoder: object) -> str:
    """The backend an encoder runs (``torch`` for sentence-transformers and anything else)."""
    return getattr(encoder, "backend", "torch")


def bundle_encoder(index_dir: Path, manifest, batch_size: int = 32, threads: int = 0):  # noqa: ANN001, ANN201
    """The encoder that made a bundle's vectors: its own ``encoder/`` folder for an ONNX bundle,
    sentence-transformers on torch otherwise (``None``: the caller builds the torch one)."""
    from .bundle import ENCODER, BundleError

    backend = manifest.settings.get("embed_backend", "torch")
    if backend == "torch":
        return None
    folder = Path(index_dir) / ENCODER
    try:
        encoder = OnnxEncoder(folder, batch_size, threads)
    except EncoderFolderError as exc:
        raise BundleError(f"{exc}; re-ingest with 'qa ingest'") from None
    if encoder.backend != backend or encoder.fingerprint != manifest.settings.get("encoder"):
        raise BundleError(f"the encoder in {folder} is not the one the index was built with; re-ingest with 'qa ingest'")
    return encoder

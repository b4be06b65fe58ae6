"""The ONNX encoder: the packaged model exported here, compared with sentence-transformers on torch,
built into a bundle, and served from it without importing torch."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ingest.build import IndexBuilder
from ingest.bundle import ENCODER, MANIFEST, load_bundle
from ingest.embedding import Embedder, resolve_model_path
from ingest.onnx_encoder import (
    CONFIG_FILE,
    MODEL_FILE,
    EncoderExportError,
    OnnxEncoder,
    _length_batches,
    cached_export,
    export_encoder,
)
from ingest.settings import IngestSettings
from qa_service.service import ServiceError, build_answerer
from qa_service.settings import ServiceSettings
from tests.conftest import CORPUS, PYTHON, REPO, clean_env

MODEL = IngestSettings().embed_model


@pytest.fixture(scope="session")
def encoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoders")


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Real passages of the seed corpus cut at many lengths, a question, a word, and one past 256 tokens."""
    leaflet = (CORPUS / "baclosan-tablets-leaflet.txt").read_text(encoding="utf-8")
    cuts = [leaflet[i * 97:i * 97 + n] for i, n in enumerate([20, 80, 300, 600, 650, 900, 1500, 3000] * 3)]
    return [*cuts, "How long does baclofen stay in the system?", "dizziness", " ".join(["tablet"] * 600)]


@pytest.fixture(scope="session")
def torch_vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return embedder.embed(texts)


def test_float32_export_gives_the_torch_vectors(
    encoder_cache: Path, texts: list[str], torch_vectors: np.ndarray
) -> None:
    encoder = OnnxEncoder.for_model(MODEL, "onnx", batch_size=8, cache_dir=encoder_cache)
    vectors = encoder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == torch_vectors.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors - torch_vectors).max() < 1e-4
    # A text's vector doesn't depend on what it is batched with (nor on the batch size).
    alone = np.stack([encoder.embed([t])[0] for t in texts[:5]])
    assert np.abs(alone - vectors[:5]).max() < 1e-5


def test_texts_far_apart_in_length_are_encoded_in_separate_runs() -> None:
    # A question and its one-word companions: padding the words to the question's length would cost
    # nearly a question each. Chunks of like length share batches up to the batch size.
    lengths = np.array([22, 4, 5, 18, 3])
    batches = _length_batches(np.argsort(lengths, kind="stable"), lengths, 32)
    assert [lengths[b].tolist() for b in batches] == [[3, 4, 5], [18, 22]]
    even = np.full(70, 120)
    assert [len(b) for b in _length_batches(np.arange(70), even, 32)] == [32, 32, 6]


def test_int8_export_stays_close_to_the_torch_vectors(
    encoder_cache: Path, texts: list[str], torch_vectors: np.ndarray
) -> None:
    encoder = OnnxEncoder.for_model(MODEL, "onnx-int8", cache_dir=encoder_cache)
    cosine = (encoder.embed(texts) * torch_vectors).sum(1)
    assert cosine.min() > 0.95 and cosine.mean() > 0.98
    assert (encoder.folder / MODEL_FILE).stat().st_size < (cached_export(MODEL, "onnx", encoder_cache) / MODEL_FILE).stat().st_size


def test_the_export_is_cached_by_fingerprint(encoder_cache: Path) -> None:
    first = cached_export(MODEL, "onnx", encoder_cache)
    config = json.loads((first / CONFIG_FILE).read_text())
    assert cached_export(MODEL, "onnx", encoder_cache) == first
    assert (config["variant"], config["max_seq_length"], config["dimension"], config["pooling"]) == ("onnx", 256, 384, "mean")
    assert first.name.endswith(config["fingerprint"])


def test_a_model_with_modules_the_export_does_not_handle_is_refused(tmp_path: Path) -> None:
    source = resolve_model_path(MODEL)
    model = tmp_path / "model"
    model.mkdir()
    for path in source.iterdir():
        (model / path.name).symlink_to(path)
    (model / "modules.json").unlink()
    modules = json.loads((source / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EncoderExportError, match="QA_EMBED_BACKEND=torch"):
        export_encoder(str(model), "onnx", tmp_path / "out")


@pytest.fixture(scope="session")
def onnx_index(tmp_path_factory: pytest.TempPathFactory, encoder_cache: Path) -> ServiceSettings:
    """The seed corpus built with the ONNX backend, as `qa ingest` does with QA_EMBED_BACKEND=onnx."""
    index = tmp_path_factory.mktemp("onnx") / "index"
    settings = ServiceSettings(corpus_dir=CORPUS, index_dir=index, embed_backend="onnx", encoder_cache_dir=encoder_cache)
    IndexBuilder(settings).build()
    return settings


def test_a_bundle_built_with_onnx_carries_its_encoder_and_answers(onnx_index: ServiceSettings, embedder: Embedder) -> None:
    manifest = json.loads((onnx_index.index_dir / MANIFEST).read_text())
    assert manifest["settings"]["embed_backend"] == "onnx"
    encoder_dir = onnx_index.index_dir / ENCODER
    assert manifest["settings"]["encoder"] == json.loads((encoder_dir / CONFIG_FILE).read_text())["fingerprint"]
    answerer = build_answerer(onnx_index)
    assert isinstance(answerer.embedder.embedder, OnnxEncoder)
    response = answerer.ask("How long does baclofen stay in the system?")
    assert response.answered and response.answers[0].citation.doc_id == "baclofen-how-long-in-system"
    # A torch encoder can't be paired with vectors it didn't make.
    with pytest.raises(ServiceError, match="built with the onnx encoder"):
        build_answerer(onnx_index, embedder)


def test_an_onnx_bundle_whose_encoder_is_missing_is_refused(onnx_index: ServiceSettings, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(onnx_index.index_dir, copy)
    shutil.rmtree(copy / ENCODER)
    load_bundle(copy)  # the rest of the bundle is fine
    with pytest.raises(ServiceError, match="re-ingest"):
        build_answerer(onnx_index.model_copy(update={"index_dir": copy}))


def test_switching_the_backend_re_embeds_everything(onnx_index: ServiceSettings, embedder: Embedder, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(onnx_index.index_dir, index)
    settings = onnx_index.model_copy(update={"index_dir": index})
    again = IndexBuilder(settings).build()
    assert again.up_to_date
    report = IndexBuilder(settings, embedder).build()
    assert not report.up_to_date and report.reused_documents == 0
    assert not (index / ENCODER).exists()
    assert "embed_backend" not in json.loads((index / MANIFEST).read_text())["settings"]


SERVE_WITHOUT_TORCH = """
import sys
from fastapi.testclient import TestClient
from qa_service.api import create_app
from qa_service.settings import ServiceSettings

app = create_app(ServiceSettings())
with TestClient(app) as client:
    import time
    for _ in range(600):
        if client.get("/readyz").status_code == 200:
            break
        time.sleep(0.1)
    answer = client.post("/v1/ask", json={"question": "How long does baclofen stay in the system?"}).json()
    assert answer["answers"], answer
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print("imported:", ",".join(heavy) or "none")
"""


def test_serving_an_onnx_bundle_imports_no_torch(onnx_index: ServiceSettings) -> None:
    result = subprocess.run(
        [PYTHON, "-c", SERVE_WITHOUT_TORCH], cwd=REPO, capture_output=True, text=True, timeout=300,
        env=clean_env(QA_INDEX_DIR=str(onnx_index.index_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "imported: none"

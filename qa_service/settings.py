"""Service settings: the ingest settings plus how to serve and answer (prefix ``QA_``).

Settings that decide the answers are grouped by concern: ``retrieval`` (finding
passages) and ``answer`` (reading, ranking and deciding to answer). In the
environment a group's field is ``QA_<GROUP>__<FIELD>``, e.g.
``QA_ANSWER__MIN_CONFIDENCE=0.3`` or ``QA_RETRIEVAL__FUSION=rrf``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from ingest.settings import IngestSettings

from .retrieval import FusionMode, SubjectQuery

DATA = Path(__file__).parent / "data"


class RetrievalSettings(BaseModel):
    """How passages are found: dense and BM25 candidates, fused per query."""

    candidates: int = Field(40, ge=1, description="Candidates taken from each retriever before fusion.")
    fusion: FusionMode = Field(
        FusionMode.ADAPTIVE,
        description="How dense and BM25 rankings are fused: adaptive (per query), linear, rrf or dense.",
    )
    fusion_alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the dense side in linear fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    synonyms_file: Path = Field(
        DATA / "synonyms.toml", description="TOML file of lay → clinical terms used to expand questions."
    )
    subject_query: SubjectQuery = Field(
        SubjectQuery.DROP,
        description=(
            "Once the documents are narrowed to the subjects a question names, what becomes of the names in "
            "the query: keep, drop (from the lexical side and the ranking features) or pronoun (drop, and "
            "'it' in their place for the embedding)."
        ),
    )

    def fusion_params(self) -> dict[str, float]:
        if self.fusion == FusionMode.LINEAR:
            return {"alpha": self.fusion_alpha}
        if self.fusion == FusionMode.RRF:
            return {"k": self.rrf_k}
        return {}


class AnswerSettings(BaseModel):
    """How answers are read, ranked and given (or declined)."""

    reader_passages: int = Field(6, ge=1, description="Top fused passages whose answer units are read.")
    context_units: int = Field(
        3, ge=0, description="Units of a paragraph a passage cuts that are read with it, on each side (at most)."
    )
    unit_candidates: int = Field(
        20, ge=0, description="Answer units taken from a search of every unit in the corpus, besides the passages' own."
    )
    max_spans: int = Field(12, ge=1, description="Answer spans grown from the best-scoring units (before dedup and top_k).")
    grow_ratio: float = Field(
        0.9, gt=0.0, description="A neighbour joins an answer span when it scores at least this share of the best unit."
    )
    ranker_model: Path = Field(
        DATA / "ranker.json", description="The learned answer ranker (refit with eval/train_ranker.py)."
    )
    rerank_model: Path | None = Field(
        None,
        description=(
            "A sentence-transformers CrossEncoder folder on disk that re-orders the answer candidates "
            "(off by default: none ships here)."
        ),
    )
    rerank_candidates: int = Field(20, ge=1, description="Answer candidates the cross-encoder re-orders.")
    min_confidence: float = Field(
        0.2, ge=0.0, le=1.0, description="Answers below this confidence are not given (chosen on the gold tune split)."
    )
    source_confidence: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description=(
            "Once a question is answered, another document's answers are shown from this confidence "
            "(so disagreeing sources are seen side by side)."
        ),
    )
    source_answers: int = Field(
        2,
        ge=1,
        description=(
            "Once a question is answered, each document's best answers are shown down to source_confidence, "
            "up to this many per document (counting those above min_confidence)."
        ),
    )
    unknown_drug_similarity: float = Field(
        0.42,
        description=(
            "A question word absent from the corpus whose embedding is at least this close "
            "to 'medication' names a medicine the documents don't cover: the question is declined."
        ),
    )


class ServingSettings(BaseModel):
    """How the server spends its cores: repeated questions, concurrent encodes, model threads."""

    answer_cache: int = Field(
        4096, ge=0,
        description=(
            "Answers kept for repeated questions (keyed on the question with case and spacing folded, "
            "top_k, doc_ids and the index version; emptied with the index). 0: no cache."
        ),
    )
    batch_size: int = Field(
        32, ge=1,
        description=(
            "Most questions encoded together: those that arrive while a batch is being encoded "
            "form the next one (micro-batching; a question alone is encoded at once)."
        ),
    )
    workers: int = Field(
        1, ge=1,
        description=(
            "Server processes (`qa serve --workers`), each with the bundle memory-mapped and its own model: "
            "one process is bound by its Python work under the GIL, so more cores need more processes."
        ),
    )
    model_threads: int = Field(
        0, ge=0,
        description=(
            "Threads the model's matrix arithmetic uses (torch.set_num_threads); 0: the machine's cores "
            "shared out among the workers. Encodes run one batch at a time in one thread, so a process's "
            "threads go to the batch."
        ),
    )
    request_threads: int = Field(
        0, ge=0,
        description=(
            "Requests answered at once in a process (the rest wait their turn in arrival order); "
            "0: one more than the cores. Answering is CPU work under one interpreter lock: forty "
            "threads at once (the web framework's default) starve each other and the event loop "
            "(16 clients on 2 cores: p99 2.2 s with 40, 0.73 s with 3, the same throughput)."
        ),
    )


class ServiceSettings(IngestSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="Port `qa serve` listens on (0: any free port, printed at start).")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    cors_origins: list[str] = Field(
        [],
        description=(
            "Origins (scheme://host[:port]) whose pages may call the API, e.g. a support portal "
            'embedding the widget. JSON list in the environment: QA_CORS_ORIGINS=\'["https://portal.example"]\''
        ),
    )
    cors_origin_regex: str | None = Field(
        r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$",
        description="Origins matching this regular expression are allowed too (default: localhost on any port).",
    )
    feedback_db: Path | None = Field(
        None,
        description=(
            "SQLite file for answer feedback. Default: feedback.sqlite3 next to the index folder "
            "(not inside it: a re-ingest replaces that folder)."
        ),
    )
    admin_token: str | None = Field(
        None, description="Bearer token for GET /v1/feedback; unset, the export is disabled."
    )
    def feedback_path(self) -> Path:
        return self.feedback_db or Path(self.index_dir).parent / "feedback.sqlite3"

"""Service settings: the ingest settings plus how to serve and answer (prefix ``QA_``).

Settings that decide the answers are grouped by concern: ``retrieval`` (finding
passages) and ``answer`` (reading, ranking and deciding to answer). In the
environment a group's field is ``QA_<GROUP>__<FIELD>``, e.g.
``QA_ANSWER__MIN_CONFIDENCE=0.3`` or ``QA_RETRIEVAL__FUSION=rrf``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsConfigDict

from ingest.settings import IngestSettings

from .retrieval import CONFIDENT_DEFAULTS, FusionMode, SubjectNarrowing, SubjectQuery

DATA = Path(__file__).parent / "data"
MIN_ADMIN_TOKEN_CHARS = 16


class ApiKeysError(ValueError):
    """The configured API keys can't be used (a keys file unreadable, not UTF-8, or with no key)."""


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

    subject_narrowing: SubjectNarrowing = Field(
        SubjectNarrowing.DECLARED,
        description=(
            "What the subjects a question names do: filter (only their documents are read) or declared "
            "(filter where the documents declare their subjects; elsewhere a bonus for their documents)."
        ),
    )
    subject_boost: float = Field(
        0.5, ge=0.0,
        description="Bonus (a share of the fused scores' range) for passages of the named subjects' documents "
                    "where they are not a filter.",
    )
    fusion_confidence: bool = Field(
        False,
        description="Adaptive fusion: the BM25 weight also falls when the best dense match is clearly ahead of the rest.",
    )
    embed_expansion: bool = Field(
        False,
        description="Embed the question's expansion terms with it (off: they join the lexical side only).",
    )
    expansion_weight: float = Field(
        0.2, ge=0.0,
        description="Bonus (a share of the fused scores' range) times the share of the question's expansion "
                    "terms a passage holds as phrases (0: none).",
    )
    strict_misspellings: bool = Field(
        True,
        description="A question word is taken for a misspelt name only if it neither holds the name nor is held "
                    "by it and is within two letters of its length (off: any near spelling, as before).",
    )
    answers_follow_search: bool = Field(
        False,
        description="Answers (ask) find their passages as search does: without the expansion in the embedding, "
                    "with the phrase bonus. Off until the answer ranker is refit on that retrieval.",
    )
    collapse_chunks: bool = Field(
        True,
        description="Search results: overlapping or adjacent chunks of one document section become one result.",
    )

    def fusion_params(self) -> dict[str, float]:
        if self.fusion == FusionMode.LINEAR:
            return {"alpha": self.fusion_alpha}
        if self.fusion == FusionMode.RRF:
            return {"k": self.rrf_k}
        if self.fusion == FusionMode.ADAPTIVE and self.fusion_confidence:
            return dict(CONFIDENT_DEFAULTS)
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
    reader_model: Path | None = Field(
        None,
        description=(
            "The answer reader: a folder exported by eval/train_reader.py (one ships in "
            "qa_service/data/reader) that reads the ranker's best candidates with the question; the "
            "reading model's confidence then orders the answers and is a source's bar. Off by default: "
            "it lost some questions the ranker alone answers (docs/evaluation.md)."
        ),
    )
    reader_candidates: int = Field(
        12, ge=1, description="Best candidate units (by the ranker) the reader reads; answers are grown from these."
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
        0.2, ge=0.0, le=1.0, description="A question is answered when an answer's ranker probability reaches this (chosen on the gold tune split)."
    )
    source_confidence: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description=(
            "Once a question is answered, another document's answers are shown from this confidence "
            "(so disagreeing sources are seen side by side); a document about the named medicine with none "
            "is listed as silent."
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


    @field_validator("reader_model", "rerank_model", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


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
    # Records: one SQLite file for the widget's feedback and the query log.
    feedback_db: Path | None = Field(
        None,
        description=(
            "SQLite file for answer feedback and the query log. Default: feedback.sqlite3 next to the "
            "index folder (not inside it: a re-ingest replaces that folder)."
        ),
    )
    query_log: bool = Field(
        True,
        description=(
            "Log every question (its text, answered or declined, why, time, index version) in the records "
            "file, for GET /v1/admin/unanswered. It never leaves the machine; QA_QUERY_LOG=off turns it off."
        ),
    )
    query_log_days: float = Field(
        30.0, gt=0, description="Logged questions older than this many days are deleted."
    )
    feedback_days: float = Field(
        365.0, gt=0, description="Feedback (votes and their comments) older than this many days is deleted."
    )
    records_prune_interval: float = Field(
        3600.0, gt=0,
        description=(
            "Seconds between retention passes over the records file (logged questions and feedback past "
            "their days are deleted), whether or not anything new was written."
        ),
    )
    records_busy_timeout: float = Field(
        1.0, ge=0.0, le=30.0,
        description=(
            "Seconds a feedback write or an admin report waits for another connection's lock on the records "
            "file; then it answers 503 records_unavailable. Logged questions are not lost to a lock: they "
            "stay queued and are written once the file is free."
        ),
    )
    # Access: who may ask, and how often.
    api_keys: list[str] = Field(
        [],
        description=(
            "Keys for the read endpoints (ask, search, documents, feedback): set, each call needs "
            "`Authorization: Bearer KEY`. JSON list: QA_API_KEYS='[\"k1\",\"k2\"]'. Empty: open. "
            "A blank key is refused."
        ),
    )
    api_keys_file: Path | None = Field(
        None,
        description=(
            "A file of API keys (UTF-8), one a line (# comments and blank lines skipped); read again on reload. "
            "A file that holds no key is refused (at start and on reload): it never opens the API."
        ),
    )
    public_api_keys: list[str] = Field(
        [],
        description=(
            "Keys that sit in a web page (the widget's data-api-key): valid on the read endpoints like any "
            "key, but the rate limit counts each address that uses one on its own, so one visitor's burst "
            "does not lock out every other. JSON list."
        ),
    )
    admin_token: str | None = Field(
        None,
        description=(
            "Bearer token for the admin endpoints (reload, feedback export, unanswered questions, query-log "
            f"purge), at least {MIN_ADMIN_TOKEN_CHARS} characters; unset, they are disabled."
        ),
    )
    rate_limit: str | None = Field(
        None,
        description=(
            "Requests a client (its API key, else its address; a public key: key and address) may make, in "
            "the notation of the `limits` library: '60/minute', '10/second;500/hour'. Unset: no limit. Each "
            "worker process counts its own unless rate_limit_storage is shared."
        ),
    )
    rate_limit_storage: str = Field(
        "memory://", description="Where the rate limiter counts: memory:// (per process) or a shared store URI."
    )
    auth_failure_limit: str | None = Field(
        "10/minute",
        description=(
            "Failed attempts (a wrong or missing API key or admin token) an address may make; beyond it, "
            "every call of that address that needs a key or the token gets 429 until the window has passed. "
            "Empty: no limit."
        ),
    )
    admin_rate_limit: str | None = Field(
        "60/minute", description="Calls to the admin endpoints an address may make (empty: no limit)."
    )
    protect_ops: bool = Field(
        False,
        description=(
            "/metrics, /readyz and the API's description (/docs, /redoc, /openapi.json) need an API key or "
            "the admin token too (/healthz stays open for liveness probes)."
        ),
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description=(
            "Addresses of the reverse proxies whose X-Forwarded-For is believed, comma-separated, or '*' "
            "(`qa serve --forwarded-allow-ips`); unset: 127.0.0.1 only. Without it, behind a proxy on "
            "another host every caller is the proxy and shares one rate-limit budget."
        ),
    )
    max_body_bytes: int = Field(
        131_072, ge=1024, description="Request bodies larger than this are refused with 413 before they are read."
    )
    max_batch_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024,
        description="The body limit of the batch endpoints (POST /v1/search/batch, /v1/ask/batch), in place of "
        "max_body_bytes: larger batch bodies are refused with 413 before they are read.",
    )
    max_batch_queries: int = Field(
        1000, ge=1, description="Most queries (lines) one batch may hold; more are refused with 413 too_many_queries."
    )
    discard_body_bytes: int = Field(
        16 * 1024 * 1024, ge=0,
        description="After a 413, up to this many bytes of the refused body are read and thrown away before the "
        "connection is closed, so that a client sending its whole body before it reads (Python's urllib) gets the "
        "413 and not a reset; 0: close at once.",
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Server logs: one JSON object a line (with a request id per request), or plain text."
    )

    @field_validator("rate_limit", "auth_failure_limit", "admin_rate_limit")
    @classmethod
    def _known_notation(cls, value: str | None) -> str | None:
        if value:
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit ('60/minute', '10/second;500/hour'): {exc}") from None
        return value or None

    @field_validator("api_keys", "public_api_keys")
    @classmethod
    def _no_blank_key(cls, value: list[str]) -> list[str]:
        if any(not key.strip() for key in value):
            raise ValueError("a blank API key (it would leave the API open): remove it")
        return [key.strip() for key in value]

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None  # QA_ADMIN_TOKEN= (empty): unset, the admin endpoints disabled
        if value is not None and len(value.strip()) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(
                f"the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} characters "
                "(e.g. openssl rand -hex 32); unset it to disable the admin endpoints"
            )
        return value

    @model_validator(mode="after")
    def _ops_protected_by_something(self) -> ServiceSettings:
        if self.protect_ops and not (self.api_keys or self.public_api_keys or self.api_keys_file or self.admin_token):
            raise ValueError("protect_ops needs API keys or an admin token to let anybody in")
        return self

    def feedback_path(self) -> Path:
        return self.feedback_db or Path(self.index_dir).parent / "feedback.sqlite3"

    def read_api_keys(self) -> frozenset[str]:
        """The keys of ``api_keys``, ``public_api_keys`` and ``api_keys_file`` together (empty: the read
        endpoints are open). A keys file that can't be read, isn't UTF-8 or holds no key raises
        :class:`ApiKeysError`: configured but empty must never open the API."""
        keys = set(self.api_keys) | set(self.public_api_keys)
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ApiKeysError(f"the API keys file {self.api_keys_file} is not UTF-8 text ({exc.reason} "
                                   f"at byte {exc.start})") from None
            except OSError as exc:
                raise ApiKeysError(f"the API keys file can't be read: {exc}") from None
            in_file = {line.strip() for line in text.splitlines()} - {""}
            in_file = {line for line in in_file if not line.startswith("#")}
            if not in_file:
                raise ApiKeysError(
                    f"the API keys file {self.api_keys_file} holds no key: refused rather than open the API "
                    "to everyone (unset QA_API_KEYS_FILE to run without keys)"
                )
            keys |= in_file
        return frozenset(keys)


def _group_model(annotation: object) -> type[BaseModel] | None:
    """The settings model a field holds (``X`` or ``X | None``), if it holds one."""
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if len(models) == 1 else None


def environment_names(settings: type[BaseModel] = ServiceSettings) -> dict[str, FieldInfo]:
    """Every environment variable ``settings`` reads, upper-cased, with its field: ``QA_<FIELD>``
    and, for a group of settings, ``QA_<GROUP>`` (a JSON object) and ``QA_<GROUP>__<FIELD>``."""
    config = getattr(settings, "model_config", {})
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = config.get("env_nested_delimiter") or "__"
    names: dict[str, FieldInfo] = {}

    def walk(model: type[BaseModel], stem: str) -> None:
        for field_name, info in model.model_fields.items():
            name = (stem + field_name).upper()
            names[name] = info
            group = _group_model(info.annotation)
            if group is not None:
                walk(group, name + delimiter)

    walk(settings, prefix)
    return names


def unknown_environment(environ: Mapping[str, str], settings: type[BaseModel] = ServiceSettings) -> list[tuple[str, str | None]]:
    """The ``QA_`` variables of ``environ`` that no setting reads (pydantic ignores them), each with
    the closest setting's name (same field name in another group first, else the nearest spelling)."""
    known = environment_names(settings)
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known:
            continue
        leaf = upper.rsplit("__", 1)[-1].removeprefix(prefix)
        same_leaf = [k for k in known if k.rsplit("__", 1)[-1].removeprefix(prefix) == leaf]
        nearest = same_leaf or difflib.get_close_matches(upper, list(known), n=1, cutoff=0.7)
        found.append((name, nearest[0] if nearest else None))
    return found

"""What produced a response, for the ``meta`` block: the code's version and a hash of the settings
that change results, so that a researcher can tell two runs apart and cite the one used."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ingest.analysis import ANALYSER_VERSION

from .settings import ServiceSettings

PACKAGE = "drug-qa"
_SOURCES = [Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "ingest"]


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package's version and a digest of its Python sources (``0.1.0+3f9c2a71d0``): an edit
    to the code that answers changes it, whether or not the version number was raised."""
    try:
        number = version(PACKAGE)
    except PackageNotFoundError:  # run from a checkout that was never installed
        number = "0"
    digest = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{number}+{digest.hexdigest()[:10]}"


def _file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"


def config_hash(settings: ServiceSettings, reader_fingerprint: str | None = None) -> str:
    """A hash of every setting that changes results: the retrieval and answer settings, with the
    files they name (ranker data, synonyms) by content, not by path, the reader by its fingerprint,
    and the analyser. Serving settings (caches, threads) and the index's own settings (in its
    version) are not in it."""
    retrieval = settings.retrieval.model_dump(mode="json")
    retrieval["synonyms_file"] = _file_digest(settings.retrieval.synonyms_file)
    answer = settings.answer.model_dump(mode="json")
    answer["ranker_model"] = _file_digest(settings.answer.ranker_model)
    answer["reader_model"] = reader_fingerprint
    if settings.answer.rerank_model is not None:
        answer["rerank_model"] = _file_digest(Path(settings.answer.rerank_model) / "config.json")
    payload = {"retrieval": retrieval, "answer": answer, "analyser": ANALYSER_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

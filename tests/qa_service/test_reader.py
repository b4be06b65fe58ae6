"""The shipped reader in the pipeline (QA_ANSWER__READER_MODEL, off by default): what it reads, what
decides the confidence; silent sources (with or without it)."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pytest

from ingest.embedding import Embedder
from qa_service.answering import Answerer
from qa_service.ranking import FEATURES
from qa_service.reader import DEFAULT_READER, AnswerReader
from qa_service.service import ServiceError, build_answerer
from qa_service.settings import ServiceSettings
from tests.conftest import LiveServer

HALF_LIFE = "What is the half-life of baclofen?"
LEAFLET = "baclosan-tablets-leaflet"


def _with_answer(settings: ServiceSettings, **values: object) -> ServiceSettings:
    return settings.model_copy(update={"answer": settings.answer.model_copy(update=values)})


@pytest.fixture(scope="module")
def reading(seed_settings: ServiceSettings, embedder: Embedder) -> Answerer:
    """The service over the seed corpus with the shipped reader on."""
    return build_answerer(_with_answer(seed_settings, reader_model=DEFAULT_READER), embedder)


def test_the_shipped_reader_and_its_reading_model_belong_together(reading: Answerer) -> None:
    answerer = reading
    assert answerer.reader is not None and answerer.reader.folder == DEFAULT_READER
    assert answerer.ranker.reading is not None
    assert answerer.ranker.reading.reader == answerer.reader.config.fingerprint
    assert (DEFAULT_READER / "model.onnx").stat().st_size < 100e6


def test_the_reader_reads_the_rankers_best_candidates_and_decides_the_confidence(reading: Answerer) -> None:
    answerer = reading
    reading = answerer.read("What should I do if I miss a dose of baclofen?")
    read = np.flatnonzero(~np.isnan(reading.reader_logits))
    wanted = answerer.settings.answer.reader_candidates
    assert len(read) == min(wanted, len(reading.candidates.rows))
    probability = answerer.ranker(reading.candidates.features)
    assert set(read.tolist()) == set(np.argsort(-probability, kind="stable")[:wanted].tolist())
    # every answer is grown from a unit the reader read, with the reading model's confidence
    rows = reading.candidates.rows.tolist()
    absent = reading.candidates.features[0, FEATURES.index("absent")]
    for span in reading.spans:
        i = rows.index(span.span.unit)
        assert i in read
        expected = answerer.ranker.reading(reading.ranker_logits[i:i + 1], reading.reader_logits[i:i + 1], absent)[0]
        assert span.confidence == pytest.approx(expected)
    assert [s.confidence for s in reading.spans] == sorted((s.confidence for s in reading.spans), reverse=True)


@pytest.mark.xfail(strict=True, reason="issue 22 target not met: the leaflet's shelf-life sentence clears the "
                   "source bar (confidence 0.40) and the page's 'T 1/2 ... 2.5-4 h' is not found")
def test_a_source_without_an_answer_is_said_to_be_silent_not_guessed_from(reading: Answerer) -> None:
    answerer = reading
    # The web page gives the half-life; the leaflet has none (only a shelf life of 3 years).
    response = answerer.ask(HALF_LIFE, top_k=5)
    assert response.answered
    assert all("shelf life" not in a.text for a in response.answers)
    assert [s.doc_id for s in response.silent] == [LEAFLET]


@pytest.mark.parametrize("question", [HALF_LIFE, "How should baclofen be stored?", "Can I drink alcohol with baclofen?",
                                      "What are the side effects of baclofen?"])
def test_the_documents_about_the_medicine_are_heard_or_said_to_be_silent(server: LiveServer, question: str) -> None:
    body = httpx.post(f"{server.url}/v1/ask", json={"question": question, "top_k": 20}, timeout=60).json()
    assert body["answered"] and body["subjects"]
    about = {d["doc_id"] for d in httpx.get(f"{server.url}/v1/documents", timeout=60).json()
             if set(map(str.casefold, d["subjects"])) & set(map(str.casefold, body["subjects"]))}
    heard = {a["citation"]["doc_id"] for a in body["answers"]}
    silent = {s["doc_id"] for s in body["silent"]}
    assert not heard & silent
    assert heard | silent == about


def test_without_a_reader_the_ranker_alone_answers(answerer: Answerer) -> None:
    plain = answerer
    reading = plain.read("What should I do if I miss a dose of baclofen?")
    assert plain.reader is None and reading.reader_logits is None
    assert plain.ask("What should I do if I miss a dose of baclofen?").answered


def test_an_empty_reader_setting_turns_the_reader_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_ANSWER__READER_MODEL", "")
    assert ServiceSettings().answer.reader_model is None


def test_the_models_that_answer_are_named_in_every_response(seed_settings: ServiceSettings) -> None:
    from qa_service.api import create_app

    with LiveServer(create_app(_with_answer(seed_settings, reader_model=DEFAULT_READER))) as live:
        ready = httpx.get(f"{live.url}/readyz", timeout=60).json()
        assert re.fullmatch(r"drugqa-reader-minilm-l6@[0-9a-f]{12}", ready["reader_model"])
        answer = httpx.post(f"{live.url}/v1/ask", json={"question": "How is an overdose of baclofen handled?"},
                            timeout=60)
        assert answer.headers["X-Model"] == f"{ready['embed_model']}; reader={ready['reader_model']}"


def test_a_ranker_fitted_for_another_reader_is_refused(
    seed_settings: ServiceSettings, embedder: Embedder, tmp_path  # noqa: ANN001
) -> None:
    data = json.loads(seed_settings.answer.ranker_model.read_text(encoding="utf-8"))
    data["reading"]["reader"] = "another-reader"
    ranker = tmp_path / "ranker.json"
    ranker.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ServiceError, match="fitted for another reader"):
        build_answerer(_with_answer(seed_settings, ranker_model=ranker, reader_model=DEFAULT_READER), embedder)


def test_a_reader_setting_that_is_not_a_reader_is_refused_with_the_reason(
    seed_settings: ServiceSettings, embedder: Embedder, tmp_path  # noqa: ANN001
) -> None:
    with pytest.raises(ServiceError, match="not a folder"):
        build_answerer(_with_answer(seed_settings, reader_model=tmp_path / "none"), embedder)


def test_the_reader_prefers_the_answering_sentence_to_one_sharing_its_words() -> None:
    reader = AnswerReader()
    scores = reader.scores(HALF_LIFE, [
        "How Long Does Baclofen Stay in Your System? > Pharmacokinetics: T 1/2 in the blood is 2.5-4 h.",
        "Baclosan tablets > Storage: The shelf life of Baclosan tablets is 3 years from the date of manufacture.",
    ])
    assert scores[0] > scores[1]

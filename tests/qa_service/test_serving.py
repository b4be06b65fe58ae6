"""Serving many callers: repeated questions answered from the cache, concurrent encodes batched."""

from __future__ import annotations

from dataclasses import replace

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from ingest.embedding import Embedder, ModelNotFoundError
from qa_service.answering import Answerer
from qa_service.api.routes.qa import to_json
from qa_service.batching import BatchingEncoder, encoded_alone
from qa_service.service import build_answerer
from qa_service.settings import ServiceSettings


def test_concurrent_encodes_are_batched_and_each_caller_gets_its_own_vector(embedder: Embedder) -> None:
    encoder = BatchingEncoder(embedder, max_batch=64)
    try:
        texts = [f"How long does dose number {i} of baclofen last?" for i in range(24)]
        expected = embedder.embed(texts)
        # One caller keeps the encoder busy with a long batch; the others arrive meanwhile.
        long_batch = [f"a long passage about spasticity and muscle tone, part {i} " * 8 for i in range(150)]
        busy = threading.Thread(target=encoder.embed, args=(long_batch,))
        busy.start()
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            vectors = list(pool.map(lambda t: encoder.embed([t])[0], texts))
        busy.join(120)
        assert not busy.is_alive()
        np.testing.assert_allclose(np.stack(vectors), expected, atol=1e-5)
        # 150 + 24 texts in far fewer batches than callers
        assert encoder.encoded == len(long_batch) + len(texts)
        assert encoder.batches < 1 + len(texts) // 2
    finally:
        encoder.close()


def test_texts_encoded_alone_are_exactly_those_of_a_request_served_alone(embedder: Embedder) -> None:
    encoder = BatchingEncoder(embedder, max_batch=64)
    try:
        texts = [f"Can dose number {i} of baclofen be taken with food?" for i in range(12)]
        alone = [embedder.embed([text]) for text in texts]
        # Other callers' texts queue with them; encoded together, rows come out a little apart.
        busy = threading.Thread(target=encoder.embed, args=([f"a long passage, part {i} " * 8 for i in range(100)],))
        busy.start()

        def call(text: str, exact: bool) -> np.ndarray:
            if not exact:
                return encoder.embed([text])
            with encoded_alone():
                return encoder.embed([text])

        with ThreadPoolExecutor(max_workers=2 * len(texts)) as pool:
            exact = list(pool.map(lambda t: call(t, True), texts))
            shared = list(pool.map(lambda t: call(t + " (shared)", False), texts))
        busy.join(120)
        assert all(np.array_equal(a, b) for a, b in zip(alone, exact, strict=True))
        assert len(shared) == len(texts)
        # within one memo, texts are encoded once and come back the same
        calls: list[list[str]] = []
        real = encoder.embedder.embed
        encoder.embedder.embed = lambda texts, progress=None: calls.append(list(texts)) or real(texts, progress)
        memo: dict = {}
        pair = ["What is baclofen?", "What is Baclosan?"]
        try:
            with encoded_alone(memo):
                first = encoder.embed(pair)
                first[:] = 0  # a caller's copy: the memo keeps its own
                again = encoder.embed(pair)
        finally:
            del encoder.embedder.embed
        assert calls == [pair] and np.array_equal(again, embedder.embed(pair))
    finally:
        encoder.close()


def test_identical_questions_asked_at_once_are_encoded_once(embedder: Embedder) -> None:
    encoder = BatchingEncoder(embedder)
    try:
        vectors = encoder.embed(["What is baclofen?"] * 5 + ["What is Baclosan?"])
        assert encoder.encoded == 2
        np.testing.assert_allclose(vectors[0], vectors[4])
        assert not np.allclose(vectors[0], vectors[5])
    finally:
        encoder.close()


class _HeldEmbedder(Embedder):
    """A real embedder of a model that does not exist, whose first encode waits for the test:
    the batches it is asked for are recorded, and each fails as the real one does."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def embed(self, texts, progress=None):  # noqa: ANN001, ANN201
        self.batches.append(list(texts))
        self.entered.set()
        assert self.release.wait(60), "the test never released the encoder"
        return super().embed(texts, progress)


def test_a_failing_encode_reaches_every_waiting_caller() -> None:
    embedder = _HeldEmbedder("no-such-model-anywhere")
    encoder = BatchingEncoder(embedder)
    outcomes: dict[str, BaseException | np.ndarray] = {}

    def call(text: str) -> None:
        try:
            outcomes[text] = encoder.embed([text])
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcomes[text] = exc

    try:
        first = threading.Thread(target=call, args=("first",))
        first.start()
        assert embedder.entered.wait(60)  # the encoder thread is busy with "first"
        waiting = [threading.Thread(target=call, args=(text,)) for text in ("second", "third")]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 60
        while encoder._queue.qsize() < 2:  # both are queued behind the busy encoder: one batch
            assert time.monotonic() < deadline, "the two callers did not queue"
            time.sleep(0.005)
        embedder.release.set()
        for thread in [first, *waiting]:
            thread.join(60)
            assert not thread.is_alive(), "a caller is still waiting"
        assert embedder.batches == [["first"], ["second", "third"]]
        for text in ("first", "second", "third"):
            assert isinstance(outcomes[text], ModelNotFoundError), (text, outcomes[text])
            assert "no-such-model-anywhere" in str(outcomes[text])
        with pytest.raises(ModelNotFoundError, match="no-such-model-anywhere"):  # and the encoder thread survives it
            encoder.embed(["later"])
        assert embedder.batches[-1] == ["later"]
    finally:
        embedder.release.set()
        encoder.close()


def test_a_repeated_question_is_answered_from_the_cache(answerer: Answerer) -> None:
    first = answerer.ask("How is an overdose of baclofen handled?")
    hits = answerer.cache_hits
    again = answerer.ask("  how is an OVERDOSE of baclofen   handled?")
    assert answerer.cache_hits == hits + 1
    assert again.question == "  how is an OVERDOSE of baclofen   handled?"
    assert replace(again, question="", took_ms=0) == replace(first, question="", took_ms=0)
    # other options are another entry
    answerer.ask("How is an overdose of baclofen handled?", top_k=1)
    assert answerer.cache_hits == hits + 1
    search = answerer.search("baclofen overdose", k=3)
    assert answerer.search("Baclofen  overdose", k=3).results == search.results
    assert answerer.cache_hits == hits + 2


def test_the_cache_can_be_turned_off(seed_settings: ServiceSettings, embedder: Embedder) -> None:
    settings = seed_settings.model_copy(update={"serving": seed_settings.serving.model_copy(update={"answer_cache": 0})})
    answerer = build_answerer(settings, embedder)
    answerer.ask("What is baclofen?")
    answerer.ask("What is baclofen?")
    assert answerer.cache_hits == 0


def test_concurrent_http_questions_all_get_their_own_answers(
    server, seed_settings: ServiceSettings, embedder: Embedder  # noqa: ANN001
) -> None:
    questions = [
        "Which kidney problems matter with baclofen?",
        "What happens if baclofen is stopped all at once?",
        "Who should not take Baclosan tablets?",
        "How quickly is baclofen absorbed after a tablet?",
    ] * 4

    def ask(question: str) -> dict:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            response = http.post("/v1/ask", json={"question": question})
            assert response.status_code == 200
            return response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:  # first asked all at once, the cache cold
        together = list(pool.map(ask, questions))
    serving = seed_settings.serving.model_copy(update={"answer_cache": 0})
    alone = build_answerer(seed_settings.model_copy(update={"serving": serving}), embedder)
    for question, body in zip(questions, together):
        expected = json.loads(to_json(alone.ask(question)))  # as the server writes it (highlights a list)
        assert body["question"] == question
        assert body["answers"] == expected["answers"], question

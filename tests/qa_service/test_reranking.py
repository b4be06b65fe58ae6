"""The reranker slot: a sentence-transformers CrossEncoder folder on disk re-orders the answers.

No cross-encoder ships here, so the test builds a tiny one with random weights
(a one-layer BERT and a word-level vocabulary) in a temporary folder: the
loading and scoring path is the real one a deployment's model takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa_service.answering import Answerer
from qa_service.reranking import CrossEncoderReranker
from qa_service.service import ServiceError, build_answerer
from qa_service.settings import ServiceSettings


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "baclofen", "overdose", "dose", "the", "a", "is", "of", "in"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def test_a_cross_encoder_on_disk_reorders_the_answers(
    tiny_cross_encoder: Path, answerer: Answerer, seed_settings: ServiceSettings, embedder
) -> None:
    question = "What should be done in case of an overdose?"
    settings = seed_settings.model_copy(
        update={"answer": seed_settings.answer.model_copy(update={"rerank_model": tiny_cross_encoder, "rerank_candidates": 50})}
    )
    reranked = build_answerer(settings, embedder)
    assert isinstance(reranked.reranker, CrossEncoderReranker)
    spans = reranked.read(question).spans
    plain = answerer.read(question).spans
    key = lambda s: (s.span.start, s.span.end)  # noqa: E731
    assert sorted(map(key, spans)) == sorted(map(key, plain))  # the same candidates...
    bundle = reranked.bundle
    texts = [bundle.documents[s.candidate.chunk.doc_id].text[s.span.start:s.span.end] for s in spans]
    scores = reranked.reranker.scores(question, texts)
    assert list(scores) == sorted(scores, reverse=True)  # ...in the cross-encoder's order
    assert np.unique(np.round(scores, 6)).size > 1  # and it does tell them apart
    response = reranked.ask(question, top_k=3)
    assert response.answered and 1 <= len(response.answers) <= 3


def with_reranker(settings: ServiceSettings, path: Path) -> ServiceSettings:
    return settings.model_copy(update={"answer": settings.answer.model_copy(update={"rerank_model": path})})


def test_a_missing_or_broken_rerank_model_is_a_clear_error(tmp_path: Path, seed_settings: ServiceSettings, embedder) -> None:
    with pytest.raises(ServiceError, match="not a folder"):
        build_answerer(with_reranker(seed_settings, tmp_path / "nope"), embedder)
    (tmp_path / "broken").mkdir()
    with pytest.raises(ServiceError, match="can't be loaded as a CrossEncoder"):
        build_answerer(with_reranker(seed_settings, tmp_path / "broken"), embedder)

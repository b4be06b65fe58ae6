"""Training the reader: a tiny model trained for a few steps loads as a reader and scores as on torch."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "eval"))
from train_reader import export, held_mrr, torch_scorer, train, triplets  # noqa: E402

from qa_service.reader import CONFIG_FILE, AnswerReader, ReaderError, reader_passage  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

QUESTION = "What should I do if I forget a dose of Lumixa?"
PAIRS = [
    {"source": "tiny", "qid": "q1", "question": QUESTION, "label": 1,
     "passage": reader_passage("Lumixa leaflet", "If you forget to take Lumixa", None,
                               "Take it as soon as you remember, then carry on as usual.")},
    {"source": "tiny", "qid": "q1", "question": QUESTION, "label": 0,
     "passage": reader_passage("Lumixa leaflet", "How to store Lumixa", None, "Store below 25 degrees C.")},
    {"source": "tiny", "qid": "q2", "question": "How should I store Lumixa?", "label": 1,
     "passage": reader_passage("Lumixa leaflet", "How to store Lumixa", None, "Store below 25 degrees C.")},
    {"source": "tiny", "qid": "q2", "question": "How should I store Lumixa?", "label": 0,
     "passage": reader_passage("Lumixa leaflet", "Driving and using machines", None, "It may make you dizzy.")},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    work = tmp_path_factory.mktemp("reader")
    folder = train(PAIRS, ServiceSettings().embed_model, work, max_length=64, batch_size=2, max_steps=2)
    return folder, work


@pytest.mark.parametrize("variant", ["onnx", "onnx-int8"])
def test_a_model_trained_a_few_steps_loads_as_a_reader_and_scores(trained, variant: str) -> None:  # noqa: ANN001
    folder, work = trained
    out = export(folder, work / variant, variant, "tiny-reader", 64)
    reader = AnswerReader(out)
    passages = [p["passage"] for p in PAIRS[:2]]
    scores = reader.scores(QUESTION, passages)
    assert scores.shape == (2,) and np.all(np.isfinite(scores)) and np.all(np.abs(scores) <= 1.0 + 1e-5)
    assert reader.scores(QUESTION, []).shape == (0,)
    assert reader.name == f"tiny-reader@{json.loads((out / CONFIG_FILE).read_text())['fingerprint']}"
    reference = np.asarray(torch_scorer(folder)(QUESTION, passages))
    # float32 is torch's arithmetic up to rounding; int8 weights move the cosines a little
    assert np.allclose(scores, reference, atol=1e-4 if variant == "onnx" else 0.05), (scores, reference)
    assert np.allclose(reader.scores(QUESTION, passages[::-1])[::-1], scores, atol=1e-5)
    assert set(held_mrr(reader.scores, PAIRS)) == {"tiny"}


def test_training_rows_pair_each_right_passage_with_a_wrong_one_of_its_question() -> None:
    import random

    rows = triplets(PAIRS, random.Random(0))
    assert len(rows) == 2
    by_question = {r["question"]: r for r in rows}
    assert by_question[QUESTION]["positive"] == PAIRS[0]["passage"]
    assert by_question[QUESTION]["negative"] == PAIRS[1]["passage"]


def test_a_folder_without_a_reader_is_refused_with_the_reason(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ReaderError, match="not a folder"):
        AnswerReader(tmp_path / "missing")
    with pytest.raises(ReaderError, match="reader.json"):
        AnswerReader(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"name": "x", "variant": "onnx", "fingerprint": "f",
                                                    "input_format": "something else"}))
    with pytest.raises(ReaderError, match="trained on inputs"):
        AnswerReader(tmp_path)


def test_the_reader_reads_a_unit_with_its_title_section_and_lead_in() -> None:
    assert reader_passage("Baclosan", "Overdose", "Symptoms:", "- drowsiness") == "Baclosan > Overdose: Symptoms: - drowsiness"
    assert reader_passage("Baclosan", "Baclosan tablets 10 mg", None, "Text.") == "Baclosan: Text."
    assert reader_passage("", None, None, " Text. ") == "Text."

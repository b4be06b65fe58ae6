"""Calibrated answer confidence: a logistic model over a few answer features.

The weights live in ``data/confidence.json``; ``eval/calibrate.py`` refits them
on the tune half of the gold set (label: the answer contains the gold evidence;
every answer to an unanswerable question is a negative).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = Path(__file__).parent / "data" / "confidence.json"
FEATURES = ("cosine", "coverage", "prior", "absent")
"""cosine: question ~ answer sentence; coverage: idf-weighted share of question terms in it;
prior: question ~ whole passage; absent: share of question words the corpus never uses."""


@dataclass(frozen=True)
class ConfidenceModel:
    weights: dict[str, float]
    bias: float

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> ConfidenceModel:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls({name: float(data["weights"][name]) for name in FEATURES}, float(data["bias"]))

    def __call__(self, features: dict[str, float]) -> float:
        z = self.bias + sum(self.weights[name] * features[name] for name in FEATURES)
        return 1.0 / (1.0 + math.exp(-z))

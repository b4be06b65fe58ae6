"""Refit the answer-confidence model on the tune half of the gold set and show the
abstention trade-off on both halves.

    python eval/calibrate.py [--index index] [--write | --shipped]

Each answer candidate the pipeline reads (up to the top 5 per question) is a
training row: its features (see qa_service/confidence.py) and label 1 when it
contains the question's gold evidence, 0 otherwise (always 0 for unanswerable
questions). With --write the fitted weights replace qa_service/data/confidence.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from ingest.bundle import load_bundle  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.confidence import DEFAULT_MODEL, FEATURES, ConfidenceModel  # noqa: E402
from qa_service.evaluation import contains_evidence, load_gold  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

THRESHOLDS = [0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, default=REPO / "index")
    parser.add_argument("--gold", type=Path, default=REPO / "eval" / "gold.jsonl")
    parser.add_argument("--write", action="store_true", help="Save the fitted model")
    parser.add_argument("--shipped", action="store_true", help="Show the trade-off of the shipped model; fit nothing")
    args = parser.parse_args()

    settings = ServiceSettings(index_dir=args.index, min_confidence=0.0)
    bundle = load_bundle(args.index)
    answerer = Answerer(bundle, Embedder(bundle.manifest.embed_model), settings)
    gold = load_gold(args.gold)
    readings = {}
    for q in gold:
        reading = answerer.read(q.question)
        rows = []
        for item in reading.spans[:5]:
            doc = bundle.documents[item.candidate.chunk.doc_id]
            hit = q.answerable and contains_evidence(doc.text[item.span.start:item.span.end], q.evidence)
            rows.append(([item.features[f] for f in FEATURES], int(hit)))
        readings[q.id] = (q, bool(reading.unknown_subjects), rows)

    if args.shipped:
        model = answerer.confidence
        args.write = False
        print("the shipped model:", {k: round(v, 3) for k, v in model.weights.items()}, "bias:", round(model.bias, 3))
    train = [] if args.shipped else [row for q, _, rows in readings.values() if q.split == "tune" for row in rows]
    if not args.shipped:
        x = np.array([features for features, _ in train])
        y = np.array([label for _, label in train])
        fitted = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
        model = ConfidenceModel(dict(zip(FEATURES, map(float, fitted.coef_[0]))), float(fitted.intercept_[0]))
        print(f"fitted on {len(train)} answer candidates ({int(y.sum())} right) from the tune split")
        print("weights:", {k: round(v, 3) for k, v in model.weights.items()}, "bias:", round(model.bias, 3))

    print("\n| threshold | tune: unanswerable declined | tune: answerable declined | heldout: unanswerable declined | heldout: answerable declined |")
    print("|---|---|---|---|---|")
    for t in THRESHOLDS:
        cells = []
        for split in ("tune", "heldout"):
            un = an = un_declined = an_declined = 0
            for q, rule, rows in readings.values():
                if q.split != split:
                    continue
                best = max((model(dict(zip(FEATURES, f))) for f, _ in rows), default=0.0)
                declined = rule or best < t
                if q.answerable:
                    an, an_declined = an + 1, an_declined + declined
                else:
                    un, un_declined = un + 1, un_declined + declined
            cells += [f"{un_declined / un:.2f}", f"{an_declined / an:.2f}"]
        print(f"| {t} | " + " | ".join(cells) + " |")

    if args.write:
        DEFAULT_MODEL.write_text(
            json.dumps(
                {
                    "_comment": "Logistic confidence model; refit with: python eval/calibrate.py --write",
                    "weights": {k: round(v, 4) for k, v in model.weights.items()},
                    "bias": round(model.bias, 4),
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nwrote {DEFAULT_MODEL}")


if __name__ == "__main__":
    main()

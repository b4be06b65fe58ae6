"""Dump everything the answerer says about a set of questions, to compare two versions of the code.

    python eval/dump_answers.py --index index --questions gold OUT.jsonl
    python eval/dump_answers.py --index LEAFLET_INDEX --questions leaflets OUT.jsonl
    python eval/dump_answers.py --index COVID_INDEX --questions covidqa:DOCS_FILE OUT.jsonl

One line a question: the full ``ask`` response (``took_ms`` left out; floats
rounded to 1e-9), the ``search`` response, and the reading behind the answer
(every candidate row with its features, every scored span). A speed change
must leave two dumps identical (``cmp A B``).
"""

from __future__ import annotations

import dataclasses

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))

from qa_service.evaluation import load_gold  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402


def rounded(value):  # noqa: ANN001, ANN201
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items() if k != "took_ms"}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def questions(kind: str) -> list[str]:
    if kind == "gold":
        return [q.question for q in load_gold(REPO / "eval" / "gold.jsonl")]
    if kind == "leaflets":
        import leaflets

        meds = leaflets.medicines(12)
        out = [q.text for q in leaflets.questions(meds)]
        out += [q.text for q in leaflets.questions(meds, generic=True)]
        out += [q.text for q in leaflets.questions(meds, wordings=leaflets.DEV_QUESTIONS)]
        return out + list(leaflets.OUT_OF_SCOPE)
    if kind.startswith("covidqa:"):
        docs = set(Path(kind.split(":", 1)[1]).read_text().split())
        qrels = Path("/work/shared/bench/covidqa/qrels.jsonl").read_text(encoding="utf-8").splitlines()
        return [r["question"] for r in map(json.loads, qrels) if r["doc"] in docs]
    raise SystemExit(f"unknown question set {kind}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--index", type=Path, default=REPO / "index")
    parser.add_argument("--questions", default="gold")
    parser.add_argument("--vectors", type=Path, help="Keep every text's encoding in this file and reuse it: the "
                        "model's float noise from run to run (a last bit of a cosine) is then out of the comparison")
    args = parser.parse_args()
    settings = ServiceSettings(index_dir=args.index)
    answerer = build_answerer(settings)
    answerer._cache = None  # every question read afresh
    if args.vectors:
        import pickle

        import numpy as np

        known = pickle.loads(args.vectors.read_bytes()) if args.vectors.exists() else {}
        encode = answerer.embedder.embed

        def embed(texts, progress=None):  # noqa: ANN001, ANN202
            missing = [t for t in dict.fromkeys(texts) if t not in known]
            if missing:
                known.update(zip(missing, encode(missing)))
            return np.stack([known[t] for t in texts])

        answerer.embedder.embed = embed
    with open(args.out, "w", encoding="utf-8") as out:
        for question in questions(args.questions):
            record = {"question": question}
            record["ask"] = rounded(dataclasses.asdict(answerer.ask(question, top_k=5)))
            record["search"] = rounded(dataclasses.asdict(answerer.search(question, k=10)))
            reading = answerer.read(question)
            record["reading"] = {
                "unknown": reading.unknown_subjects,
                "ambiguous": reading.ambiguous,
                "rows": None if reading.candidates is None else reading.candidates.rows.tolist(),
                "chunk_of": None if reading.candidates is None else list(map(int, reading.candidates.chunk_of)),
                "features": None if reading.candidates is None else rounded(reading.candidates.features.tolist()),
                "spans": [
                    rounded([s.candidate.chunk.chunk_id, s.candidate.score, s.candidate.dense, s.candidate.lexical,
                             s.span.start, s.span.end, s.span.unit, s.features, s.confidence, s.order])
                    for s in reading.spans
                ],
            }
            out.write(json.dumps(record, sort_keys=True) + "\n")
    if args.vectors:
        args.vectors.write_bytes(pickle.dumps(known))
    print(f"{args.out}: done", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Choose the answer bars on the gold tune split: replay the answer selection over one reading a question.

    python eval/tune_selection.py [--split tune] [--min 0.1,0.12,0.15,0.2] [--source 0.02,0.05,0.1,0.15]

Each question is read once (``Answerer.read``: candidates, reader, confidences,
spans); :func:`qa_service.answering.select_answers` is then replayed for every
pair of ``QA_ANSWER__MIN_CONFIDENCE`` (an answer below it is not given; with
none left the question is declined) and ``QA_ANSWER__SOURCE_CONFIDENCE`` (the
bar another document's answer must clear once the question is answered). The
table gives, per pair: answer hit@1 and @3, unanswerable and answerable
questions declined, both sources heard where both answer, and an answer shown
from a document that does not answer (questions one document answers).
Held-out questions are never read here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import REPO, bench_index  # noqa: E402

from ingest.build import IndexBuilder  # noqa: E402
from ingest.onnx_encoder import make_encoder  # noqa: E402
from qa_service.answering import select_answers  # noqa: E402
from qa_service.evaluation import _fold, contains_evidence, load_gold  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="tune")
    parser.add_argument("--min", default="0.1,0.12,0.15,0.2")
    parser.add_argument("--source", default="0.02,0.05,0.1,0.15,0.2")
    args = parser.parse_args()
    if args.split == "heldout":
        sys.exit("error: the held-out split is never tuned on")
    base = ServiceSettings(corpus_dir=REPO / "corpus", index_dir=bench_index("gold"))
    embedder = make_encoder(base.embed_model, base.embed_backend, base.embed_batch_size, cache_dir=base.encoder_cache_dir)
    IndexBuilder(base, embedder).build()
    answerer = build_answerer(base, embedder)
    documents = answerer.bundle.documents
    gold = [q for q in load_gold(REPO / "eval" / "gold.jsonl") if q.split == args.split]
    readings = [answerer.read(q.question) for q in gold]
    print("| min_confidence | source_confidence | hit@1 | hit@3 | unanswerable declined | answerable declined "
          "| both sources heard | other source shown |\n|---|---|---|---|---|---|---|---|")
    for low in (float(x) for x in args.min.split(",")):
        for source in (float(x) for x in args.source.split(",")):
            settings = base.answer.model_copy(update={"min_confidence": low, "source_confidence": min(source, low)})
            hit1, hit3, unans, ans, heard, other = [], [], [], [], [], []
            for q, reading in zip(gold, readings):
                blocked = bool(reading.unknown_subjects or reading.ambiguous)

                def text_of(item) -> str:  # noqa: ANN001
                    return documents[item.candidate.chunk.doc_id].text[item.span.start:item.span.end]

                chosen = [] if blocked else select_answers(reading.spans, text_of, settings)[:5]
                if not q.answerable:
                    unans.append(not chosen)
                    continue
                ans.append(not chosen)
                hits = [contains_evidence(text_of(c), q.evidence) for c in chosen]
                hit1.append(bool(hits[:1] and hits[0]))
                hit3.append(any(hits[:3]))
                if len(q.docs) > 1:
                    own = {d: [e for e in q.evidence if _fold(e) in _fold(documents[d].text)] for d in q.docs}
                    own = {d: e for d, e in own.items() if e}
                    if len(own) > 1:
                        heard.append(all(any(c.candidate.chunk.doc_id == d and contains_evidence(text_of(c), e)
                                             for c in chosen) for d, e in own.items()))
                elif len(q.docs) == 1 and chosen:
                    other.append(any(c.candidate.chunk.doc_id not in q.docs for c in chosen))
            share = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
            print(f"| {low} | {min(source, low)} | {share(hit1):.3f} | {share(hit3):.3f} | {share(unans):.3f} | "
                  f"{share(ans):.3f} | {share(heard):.3f} | {share(other):.3f} |")


if __name__ == "__main__":
    main()

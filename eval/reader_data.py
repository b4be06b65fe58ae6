"""Training pairs for the answer reader, mined by the service's own retrieval.

    python eval/reader_data.py [--shared ../shared] [--out .bench/reader] [--sources covidqa,medquad,leaflets]

For each training question the service reads the corpus as it would to answer
(``Answerer.read``: the passages retrieval finds, the corpus-wide unit search,
the paragraphs around them) and the pairs are (question, candidate unit as the
reader sees it, :func:`qa_service.reader.reader_passage`). Positives are the
units that hold the answer; negatives are the candidates the current ranker
puts highest without holding it (what the service confuses), plus a couple of
others at random. Three sources, so that the reader learns to read rather than
one set's templates:

- **COVID-QA**, the reader half of the dev articles (``reader_split``): expert
  questions, a unit is right when it overlaps the gold answer span. The other
  half of the dev articles is left for fitting the ranker on the reader's score;
  test articles are never read.
- **MedQuAD training pairs** (``../shared/train/medquad/train.jsonl``, which
  shares nothing with the benchmark): a sample of topics written as one
  document per answer, titled with its topic as the benchmark's passages are.
  A unit is right when it is among the first sentences of an answer to the
  question (pairs with the same question are answers of one another); other
  units of the right answer are left out, neither right nor wrong. Negatives
  are the other answers about the same topic (another question type) and other
  topics' answers to the same type of question, as retrieval confuses them.
- **Generated leaflets** (``eval/leaflets.py``) of other medicines than the
  benchmark's and the ranker's (``TRAIN_SEED``), asked in wordings of their own
  (``TRAIN_QUESTIONS``: lay wordings and the MedlinePlus drug-question templates
  of ``drug_questions.jsonl``), about more of the leaflet than the benchmark
  asks (dose, interactions, who should not take it, contents). Negatives are the
  sections other than the one asked about, and other leaflets' same section.

Writes one JSON line a pair (``source, qid, question, passage, label``) to
``OUT/pairs.jsonl`` and prints the counts. Held-out and test splits are never read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import REPO, load_covidqa  # noqa: E402

from ingest.build import IndexBuilder  # noqa: E402
from ingest.onnx_encoder import make_encoder  # noqa: E402
from ingest.units import HEADING_FLAG  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.reader import reader_passage  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

SEED = 20261204
HARD_NEGATIVES = 6
RANDOM_NEGATIVES = 2
MEDQUAD_TOPICS = 900
MEDQUAD_QUESTIONS = 2500
POSITIVE_UNITS = 3
"""MedQuAD: the first units of an answer that count as holding it."""
TRAIN_SEED = 101
TRAIN_LEAFLETS = 40


def serve(corpus: Path, index: Path, embedder) -> Answerer:  # noqa: ANN001
    """The service over ``corpus``, indexed into ``index`` (rebuilt only when stale)."""
    settings = ServiceSettings(corpus_dir=corpus, index_dir=index)
    IndexBuilder(settings, embedder).build()
    return build_answerer(settings, embedder)


def reader_split(doc: str) -> str:
    """COVID-QA dev articles in two halves: ``reader`` (trains the reader), ``fit`` (fits the ranker on it)."""
    return "reader" if hashlib.sha256(doc.encode()).digest()[1] % 2 == 0 else "fit"


def passages_of(answerer: Answerer, rows: list[int]) -> list[str]:
    return [reader_passage(*answerer.features.context_of(row)) for row in rows]


def mine(answerer: Answerer, question: str, positive, excluded=None, doc_ids=None, gold_rows=(),  # noqa: ANN001
         rng: random.Random | None = None) -> list[tuple[str, int]]:
    """(passage, label) pairs of one question: every right candidate (and the gold units retrieval
    missed, up to two), the ``HARD_NEGATIVES`` wrong ones the ranker puts first, ``RANDOM_NEGATIVES`` others."""
    rng = rng or random.Random(SEED)
    reading = answerer.read(question, doc_ids)
    if reading.candidates is None or not len(reading.candidates.rows):
        return []
    rows = reading.candidates.rows.tolist()
    order = np.argsort(-answerer.ranker.logit(reading.candidates.features), kind="stable").tolist()
    pos, neg = [], []
    for i in order:
        row = rows[i]
        if positive(row):
            pos.append(row)
        elif excluded is None or not excluded(row):
            neg.append(row)
    pos += [r for r in gold_rows if r not in pos][: max(0, 2 - len(pos))]
    if not pos:
        return []
    hard, rest = neg[:HARD_NEGATIVES], neg[HARD_NEGATIVES:]
    picked = hard + rng.sample(rest, min(RANDOM_NEGATIVES, len(rest)))
    texts = passages_of(answerer, pos + picked)
    return [(t, int(i < len(pos))) for i, t in enumerate(texts)]


def overlapping(answerer: Answerer, doc_id: str, start: int, end: int) -> list[int]:
    """Rows of the units of ``doc_id`` overlapping ``[start, end)`` (no headings)."""
    bundle = answerer.bundle
    lo, hi = bundle.unit_range(doc_id)
    units = bundle.units[lo:hi]
    hit = np.flatnonzero((units["start"] < end) & (units["end"] > start) & ((units["flags"] & HEADING_FLAG) == 0))
    return (lo + hit).tolist()


def covid_pairs(shared: Path, embedder, rng: random.Random) -> list[dict]:  # noqa: ANN001
    from bench_quality import build_service

    bench = load_covidqa(shared / "bench" / "covidqa")
    answerer, _ = build_service(bench, embedder)
    dev_docs = sorted({d for q in bench.questions if q.split == "dev" for d in q.docs})
    out = []
    for q in bench.questions:
        doc = next(iter(q.docs))
        if q.split != "dev" or reader_split(doc) != "reader":
            continue
        bundle = answerer.bundle
        units = bundle.units
        doc_ids = bundle.doc_ids

        def positive(row: int, q=q) -> bool:
            u = units[row]
            return q.hit(doc_ids[u["doc"]], int(u["start"]), int(u["end"]))

        gold = overlapping(answerer, doc, *q.span)
        for passage, label in mine(answerer, q.text, positive, doc_ids=dev_docs, gold_rows=gold, rng=rng):
            out.append({"source": "covidqa", "qid": q.id, "question": q.text, "passage": passage, "label": label})
    return out


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text).split()).casefold()


def medquad_pairs(shared: Path, embedder, rng: random.Random, work: Path) -> list[dict]:  # noqa: ANN001
    rows = [json.loads(line) for line in open(shared / "train" / "medquad" / "train.jsonl", encoding="utf-8")]
    by_focus: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_focus[row["focus"]].append(row)
    topics = sorted(by_focus)
    rng.shuffle(topics)
    chosen = [row for topic in sorted(topics[:MEDQUAD_TOPICS]) for row in by_focus[topic]]
    corpus = work / "medquad-train-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    for row in chosen:
        name = row["id"]
        (corpus / f"{name}.txt").write_text(row["answer"], encoding="utf-8")
        meta = {"title": f"{row['focus']} ({row['collection']})", "source": row["url"]}
        (corpus / f"{name}.txt.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    answerer = serve(corpus, work / "medquad-train-index", embedder)
    bundle = answerer.bundle
    units = bundle.units
    doc_ids = bundle.doc_ids
    by_question: dict[str, list[str]] = defaultdict(list)
    for row in chosen:
        by_question[_fold(row["question"])].append(row["id"])
    questions = list(dict.fromkeys(_fold(row["question"]) for row in chosen))
    asked = {(_fold(row["question"])): row["question"] for row in chosen}
    rng.shuffle(questions)
    out = []
    for folded in questions[:MEDQUAD_QUESTIONS]:
        answers = set(by_question[folded])
        first: set[int] = set()
        for doc in answers:
            lo, hi = bundle.unit_range(doc)
            kept = [r for r in range(lo, hi) if not units["flags"][r] & HEADING_FLAG
                    and not bundle.documents[doc].text[units["start"][r]:units["end"][r]].rstrip().endswith("?")]
            first.update(kept[:POSITIVE_UNITS])

        def excluded(row: int, answers=answers) -> bool:
            return doc_ids[units["doc"][row]] in answers

        pairs = mine(answerer, asked[folded], first.__contains__, excluded, gold_rows=sorted(first)[:2], rng=rng)
        for passage, label in pairs:
            out.append({"source": "medquad", "qid": folded, "question": asked[folded], "passage": passage, "label": label})
    return out


TRAIN_QUESTIONS = {
    "missed": ["What should I do if I forget a dose of {name}?", "I forgot to take my {name} today",
               "missed a {name} tablet yesterday, do I take two today?", "is it ok to take {name} late if I forgot"],
    "overdose": ["What to do in case of emergency or overdose of {name}?", "took double my {name} dose",
                 "my kid got into the {name} pills", "is an extra {name} tablet dangerous"],
    "storage": ["What should I know about storage and disposal of {name}?", "how do I store {name}",
                "what temperature should {name} be kept at", "can I keep {name} in the bathroom cabinet"],
    "driving": ["can I drive on {name}", "does {name} make you too sleepy to drive", "is it safe to drive after {name}"],
    "use": ["Who should get {name} and why is it prescribed?", "what is {name} for", "what's {name} prescribed for"],
    "dose": ["How should {name} be used and what is the dosage?", "how much {name} should I take",
             "what's the normal dose of {name}", "how often do I take {name}"],
    "allergy": ["Who should not take {name}?", "Are there safety concerns or special precautions about {name}?",
                "I'm allergic to {generic}, can I take {name}?"],
    "interactions": ["Are there interactions between {name} and other medications?",
                     "can I take {name} with my other pills", "does {name} interact with other drugs"],
    "contents": ["What is the active ingredient of {name}?", "what's in {name}", "what does {name} contain"],
}
"""Training wordings: none of the benchmark's (``QUESTIONS``) or the ranker's (``DEV_QUESTIONS``)."""
TEMPLATE_EVIDENCE = {
    "dose": "The recommended dose is {dose} mg once a day",
    "allergy": "Do not take {brand} if you are allergic",
    "interactions": "Tell your doctor if you are taking",
    "contents": "{brand} contains the active substance {generic}",
}


def leaflet_pairs(embedder, rng: random.Random, work: Path) -> list[dict]:  # noqa: ANN001
    from leaflets import medicines, write_corpus

    from train_ranker import evidence_ranges

    meds = medicines(TRAIN_LEAFLETS, seed=TRAIN_SEED)
    corpus = work / "leaflets-train-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    write_corpus(corpus, meds)
    answerer = serve(corpus, work / "leaflets-train-index", embedder)
    bundle = answerer.bundle
    units = bundle.units
    doc_ids = bundle.doc_ids
    out = []
    for med in meds:
        for kind, forms in TRAIN_QUESTIONS.items():
            if kind in med.facts:
                evidence = med.facts[kind].split(". ")[0].rstrip(".")
            else:
                evidence = TEMPLATE_EVIDENCE[kind].format(brand=med.brand, generic=med.generic, dose=med.dose)
            ranges = evidence_ranges(bundle.documents[med.doc_id].text, [evidence])
            gold = [r for a, b in ranges for r in overlapping(answerer, med.doc_id, a, b)]
            for form in forms:
                name = rng.choice([med.brand, med.brand, med.generic])
                question = form.format(name=name, generic=med.generic)

                def positive(row: int, ranges=ranges, own=med.doc_id) -> bool:
                    u = units[row]
                    return doc_ids[u["doc"]] == own and any(a < u["end"] and u["start"] < b for a, b in ranges)

                for passage, label in mine(answerer, question, positive, gold_rows=gold, rng=rng):
                    out.append({"source": "leaflets", "qid": f"{med.doc_id}:{kind}:{form}", "question": question,
                                "passage": passage, "label": label})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "reader")
    parser.add_argument("--sources", default="covidqa,medquad,leaflets")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = ServiceSettings()
    embedder = make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size,
                            cache_dir=settings.encoder_cache_dir)
    sources = [s.strip() for s in args.sources.split(",")]
    pairs: list[dict] = []
    for source in sources:
        rng = random.Random(f"{SEED}:{source}")
        if source == "covidqa":
            made = covid_pairs(args.shared, embedder, rng)
        elif source == "medquad":
            made = medquad_pairs(args.shared, embedder, rng, args.out)
        elif source == "leaflets":
            made = leaflet_pairs(embedder, rng, args.out)
        else:
            sys.exit(f"error: unknown source {source!r}")
        questions = len({p["qid"] for p in made})
        print(f"{source}: {len(made)} pairs ({sum(p['label'] for p in made)} right) from {questions} questions", flush=True)
        (args.out / f"pairs-{source}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in made), encoding="utf-8")
        pairs += made


if __name__ == "__main__":
    main()

"""Retrieval settings compared side by side on every benchmark, search only, in one run.

    python eval/bench_variants.py [--bench medquad,covidqa,gold,leaflets] [--variants current,new]
                                  [--splits dev] [--shared ../shared/bench] [--previous-subjects DIR]

Each benchmark's index is built (or reused) as eval/bench_quality.py builds it;
every variant is an Answerer over that one bundle with some ``RetrievalSettings``
changed, and every question goes through its ``search`` (what /v1/search
returns), scored as bench_quality scores it: MedQuAD R@1 / R@5 / MRR@10 on
distinct files from the top 50, COVID-QA R@5 / MRR@10 on the top 10 passages
(span overlap), the gold set's and the leaflets' passage hit@3 (evidence in one
of the top 3 passages). Plain dense (600/100 chunks, the same model) is scored
beside them; its rankings are cached under .bench/ (they depend on nothing
here). Question embeddings are cached across variants. Decide on dev.

``--previous-subjects DIR`` reads the documents' subjects from the bundles
(one folder per benchmark, ``DIR/<name>-index-onnx``) an earlier ingest wrote,
for the variants marked ``previous_subjects``: the configuration before title
debris was left out, exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import (  # noqa: E402
    LOADERS, REPO, PlainBaselines, bench_index, collapse, score,
)

from ingest.build import IndexBuilder  # noqa: E402
from ingest.onnx_encoder import make_encoder  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.evaluation import contains_evidence, load_gold  # noqa: E402
from qa_service.retrieval import CONFIDENT_DEFAULTS  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

PREVIOUS = {"subject_narrowing": "filter", "fusion_confidence": False, "embed_expansion": True, "expansion_weight": 0.0,
            "collapse_chunks": False, "strict_misspellings": False}
NEW = {"subject_narrowing": "declared", "subject_boost": 0.5, "fusion_confidence": False, "embed_expansion": False,
       "expansion_weight": 0.2, "collapse_chunks": True, "strict_misspellings": True}
VARIANTS: dict[str, dict] = {
    "current": {**PREVIOUS, "previous_subjects": True},
    "current-newsubjects": PREVIOUS,
    "boost": {**PREVIOUS, "subject_narrowing": "declared"},
    "confident": {**PREVIOUS, "fusion_confidence": True},
    "new-confident": {**NEW, "fusion_confidence": True},
    "lexical-expansion": {**PREVIOUS, "embed_expansion": False},
    "collapse": {**PREVIOUS, "collapse_chunks": True},
    "new": NEW,
    "new-keepnames": {**NEW, "subject_query": "keep"},
    "new-nocollapse": {**NEW, "collapse_chunks": False},
    **{f"new-boost{b}": {**NEW, "subject_boost": b} for b in (0.05, 0.1, 0.2, 0.3, 0.5)},
    **{f"lexexp-w{w}": {**PREVIOUS, "embed_expansion": False, "expansion_weight": w} for w in (0.1, 0.2, 0.3, 0.5)},
    **{f"new-w{w}": {**NEW, "expansion_weight": w} for w in (0.1, 0.2, 0.3, 0.5)},
}
"""Name -> RetrievalSettings fields (and ``previous_subjects``); more with --set name:field=value,..."""


class CachedEncoder:
    """An encoder whose vectors are kept by text, so that variants don't encode a question twice."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.cache: dict[str, object] = {}

    def embed(self, texts, **kwargs):  # noqa: ANN001, ANN003, ANN201
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing, **kwargs)))
        return np.stack([self.cache[t] for t in texts]) if texts else self.inner.embed(texts, **kwargs)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)


def answerer_for(base: Answerer, settings: ServiceSettings, overrides: dict, previous: dict | None) -> Answerer:
    fields = {k: v for k, v in overrides.items() if k != "previous_subjects"}
    retrieval = type(settings.retrieval).model_validate({**settings.retrieval.model_dump(), **fields})
    changed = settings.model_copy(update={"retrieval": retrieval})
    bundle = base.bundle
    if overrides.get("previous_subjects") and previous is not None:
        documents = {d: dataclasses.replace(doc, subjects=previous.get(d, ()), subject_sources=())
                     for d, doc in bundle.documents.items()}
        bundle = dataclasses.replace(bundle, documents=documents)
    return Answerer(bundle, base.embedder, changed, None)


def previous_subjects(folder: Path | None, name: str) -> dict | None:
    if folder is None:
        return None
    path = folder / f"{name}-index-onnx" / "documents.jsonl"
    if not path.exists():
        print(f"(no previous subjects for {name} at {path})", file=sys.stderr)
        return None
    out = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out[row["doc_id"]] = tuple(row.get("subjects", ()))
    return out


def plain_cached(name: str, corpus: Path, embedder, texts: list[str], depth: int):  # noqa: ANN001, ANN201
    path = REPO / ".bench" / f"plain-dense-{name}.pkl"
    if path.exists():
        with open(path, "rb") as handle:
            cached = pickle.load(handle)
        if cached["texts"] == texts and cached["depth"] == depth:
            return cached["ranked"]
    plain = PlainBaselines(corpus, embedder)
    ranked = plain.dense_search(texts, depth)
    with open(path, "wb") as handle:
        pickle.dump({"texts": texts, "depth": depth, "ranked": ranked}, handle)
    return ranked


def run_retrieval_bench(name: str, shared: Path, encoder, variants: dict, splits: set[str], previous: Path | None) -> dict:  # noqa: ANN001
    bench = LOADERS[name](shared / name)
    settings = ServiceSettings(corpus_dir=bench.corpus, index_dir=bench_index(name), answer={"reader_model": None})
    IndexBuilder(settings, encoder.inner).build()
    base = build_answerer(settings, encoder.inner)
    base.embedder = encoder
    questions = [q for q in bench.questions if q.split in splits]
    depth = 10 if bench.span_level else 50
    finish = (lambda r: r[:10]) if bench.span_level else collapse
    runs = {"dense": [finish(r) for r in plain_cached(name, bench.corpus, encoder.inner, [q.text for q in questions], depth)]}
    old = previous_subjects(previous, name)
    for label, overrides in variants.items():
        answerer = answerer_for(base, settings, overrides, old)
        began = time.perf_counter()
        runs[label] = [finish([(r.citation.doc_id, r.citation.start, r.citation.end)
                               for r in answerer.search(q.text, k=depth).results]) for q in questions]
        print(f"  {name} {label}: {(time.perf_counter() - began) * 1000 / max(len(questions), 1):.1f} ms/question",
              file=sys.stderr, flush=True)
    table = {}
    for split in sorted(splits):
        chosen = [i for i, q in enumerate(questions) if q.split == split]
        if not chosen:
            continue
        table[split] = {system: score([questions[i] for i in chosen], [ranked[i] for i in chosen],
                                      ["hit_rate@1", "hit_rate@5", "mrr@10"])
                        for system, ranked in runs.items()}
        table[split]["n"] = len(chosen)
    return table


def run_gold(encoder, variants: dict, splits: set[str], previous: Path | None) -> dict:  # noqa: ANN001
    settings = ServiceSettings(corpus_dir=REPO / "corpus", index_dir=bench_index("gold"), answer={"reader_model": None})
    IndexBuilder(settings, encoder.inner).build()
    base = build_answerer(settings, encoder.inner)
    base.embedder = encoder
    wanted = {"dev": "tune", "test": "heldout"}
    gold = [q for q in load_gold(REPO / "eval" / "gold.jsonl") if q.answerable and q.split in {wanted[s] for s in splits}]
    plain = PlainBaselines(REPO / "corpus", encoder.inner)
    texts = {p.stem: p.read_text(encoding="utf-8") for p in (REPO / "corpus").glob("*.txt")}
    hits = {"dense": [[contains_evidence(texts[d][a:b], q.evidence) for d, a, b in r]
                      for q, r in zip(gold, plain.dense_search([q.question for q in gold], 10))]}
    old = previous_subjects(previous, "gold")
    for label, overrides in variants.items():
        answerer = answerer_for(base, settings, overrides, old)
        hits[label] = [[contains_evidence(p.text, q.evidence) for p in answerer.search(q.question, k=10).results]
                       for q in gold]
    table = {}
    for split, name in wanted.items():
        chosen = [i for i, q in enumerate(gold) if q.split == name]
        if chosen:
            table[name] = {s: {"passage_hit@3": sum(any(h[i][:3]) for i in chosen) / len(chosen)} for s, h in hits.items()}
            table[name]["n"] = len(chosen)
    return table


def run_leaflets(encoder, variants: dict, previous: Path | None) -> dict:  # noqa: ANN001
    import shutil

    from bench_quality import LEAFLET_COUNT
    from leaflets import medicines, questions, write_corpus

    meds = medicines(LEAFLET_COUNT)
    corpus = REPO / ".bench" / "leaflets-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    write_corpus(corpus, meds)
    settings = ServiceSettings(corpus_dir=corpus, index_dir=bench_index("leaflets"), answer={"reader_model": None})
    IndexBuilder(settings, encoder.inner).build()
    base = build_answerer(settings, encoder.inner)
    base.embedder = encoder

    def misspelt(text: str, name: str) -> str:
        i = len(name) // 2
        return text.replace(name, name[:i] + ("a" if name[i] != "a" else "e") + name[i + 1:])

    asked = [*questions(meds), *questions(meds, generic=True),
             *(type(q)(misspelt(q.text, m.brand), q.doc_id, q.evidence, q.kind) for m in meds for q in questions([m]))]
    plain = PlainBaselines(corpus, encoder.inner)
    texts = {p.stem: p.read_text(encoding="utf-8") for p in corpus.glob("*.md")}
    hits = {"dense": [[d == q.doc_id and q.evidence in texts[d][a:b] for d, a, b in r]
                      for q, r in zip(asked, plain.dense_search([q.text for q in asked], 10))]}
    old = previous_subjects(previous, "leaflets")
    for label, overrides in variants.items():
        answerer = answerer_for(base, settings, overrides, old)
        hits[label] = [[p.citation.doc_id == q.doc_id and q.evidence in p.text for p in answerer.search(q.text, k=10).results]
                       for q in asked]
    table = {"all": {s: {"passage_hit@3": sum(any(r[:3]) for r in h) / len(h)} for s, h in hits.items()}}
    table["all"]["n"] = len(asked)
    return table


def parse_set(specs: list[str]) -> dict:
    out = {}
    for spec in specs:
        name, _, rest = spec.partition(":")
        fields = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            base = VARIANTS.get(value) if key == "base" else None
            if base is not None:
                fields.update(base)
                continue
            try:
                fields[key] = json.loads(value)
            except json.JSONDecodeError:
                fields[key] = value
        out[name] = fields
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="medquad,covidqa,gold,leaflets")
    parser.add_argument("--variants", default="current,new")
    parser.add_argument("--set", action="append", default=[], help="name:field=value,...  (base=VARIANT copies one)")
    parser.add_argument("--splits", default="dev", help="dev, or dev,test")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench")
    parser.add_argument("--previous-subjects", type=Path, default=None)
    parser.add_argument("--fusion", default=None, help="JSON adaptive parameters replacing CONFIDENT_DEFAULTS")
    args = parser.parse_args()
    if args.fusion:
        CONFIDENT_DEFAULTS.update(json.loads(args.fusion))
    variants = {name: VARIANTS[name] for name in filter(None, args.variants.split(","))}
    variants.update(parse_set(args.set))
    settings = ServiceSettings()
    encoder = CachedEncoder(make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size,
                                         cache_dir=settings.encoder_cache_dir))
    splits = set(args.splits.split(","))
    results = {}
    for name in args.bench.split(","):
        began = time.perf_counter()
        if name in LOADERS:
            results[name] = run_retrieval_bench(name, args.shared, encoder, variants, splits, args.previous_subjects)
        elif name == "gold":
            results[name] = run_gold(encoder, variants, splits, args.previous_subjects)
        elif name == "leaflets":
            results[name] = run_leaflets(encoder, variants, args.previous_subjects)
        print(f"## {name} ({time.perf_counter() - began:.0f} s)")
        for split, rows in results[name].items():
            print(f"{split} (n={rows['n']})")
            for system, metrics in rows.items():
                if system != "n":
                    print(f"  {system:24s} " + "  ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

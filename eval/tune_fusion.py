"""Choose how dense and BM25 scores are fused, per query, on the dev splits.

    python eval/tune_fusion.py [--shared ../shared/bench] [--split dev]

For every question of the gold set (tune split), COVID-QA (dev) and MedQuAD
(dev), the service's own retriever gives a pool of candidates (its dense and
BM25 top 100) with both raw scores; fusion rules are then replayed on those
pools, so dozens of rules cost seconds. Each rule's R@1 / R@5 / MRR@10 is
printed per benchmark beside dense alone. The shipped rule is the one that is
at least as good as dense alone on every benchmark's dev split and best on
their mean; the test split is never looked at here.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import LOADERS, REPO, Question, bench_index, build_service, collapse  # noqa: E402

from ingest.onnx_encoder import make_encoder  # noqa: E402
from qa_service.evaluation import contains_evidence, load_gold  # noqa: E402
from qa_service.retrieval import FUSIONS, QueryFeatures, fuse  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

POOL = 100


@dataclass
class Pool:
    ids: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    features: QueryFeatures
    judge: list[bool]
    """Whether each candidate is a hit (passage level: per candidate, before collapsing)."""
    docs: list[str]


def pools_for(answerer, questions: list[tuple[str, object]], judge) -> list[Pool]:  # noqa: ANN001
    retriever = answerer.retriever
    bundle = answerer.bundle
    pools = []
    for text, target in questions:
        expansion = answerer.expander.expand(text)
        embedded = expansion.query if answerer.settings.retrieval.embed_expansion else expansion.question
        vector = answerer.embedder.embed([embedded])[0]
        pool = retriever.pool(expansion.lexical_query, vector, depth=POOL)
        chunks = [bundle.chunks[i] for i in pool.ids]
        pools.append(
            Pool(pool.ids, pool.dense, pool.lexical, pool.features,
                 [judge(target, c) for c in chunks], [c.doc_id for c in chunks])
        )
    return pools


def evaluate(pools: list[Pool], rule: str, params: dict, passage_level: bool) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for pool in pools:
        fused = fuse(rule, pool.dense, pool.lexical, pool.features, **params)
        order = np.argsort(-fused, kind="stable")
        hits = [pool.judge[i] for i in order]
        if passage_level:  # collapse to distinct documents, as the benchmark scores them
            ranked = collapse([(pool.docs[i], 0, 0) for i in order[:50]])
            first_of = {}
            for i in order:
                first_of.setdefault(pool.docs[i], pool.judge[i])
            hits = [first_of[d] for d, _, _ in ranked]
        rank = next((k + 1 for k, h in enumerate(hits[:10]) if h), None)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        mrr += 1.0 / rank if rank else 0.0
    n = len(pools)
    return {"R@1": r1 / n, "R@5": r5 / n, "MRR@10": mrr / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench")
    parser.add_argument("--split", default="dev", help="Benchmark split to tune on (gold: tune)")
    parser.add_argument("--reuse-pools", action="store_true", help="Replay the pools cached by the last run")
    parser.add_argument("--rules", default=None, help="Only these rules (comma-separated: dense, linear, adaptive, ...)")
    args = parser.parse_args()
    cache = REPO / ".bench" / f"fusion-pools-{args.split}.pkl"
    if args.reuse_pools and cache.exists():
        with open(cache, "rb") as handle:
            benches = pickle.load(handle)
    else:
        benches = collect(args)
        with open(cache, "wb") as handle:
            pickle.dump(benches, handle)
    replay(benches, args.split, args.rules.split(",") if args.rules else None)


def collect(args: argparse.Namespace) -> dict:
    settings = ServiceSettings()
    # The backend QA_EMBED_BACKEND names, as eval/bench_quality.py builds its indexes.
    embedder = make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size,
                            cache_dir=settings.encoder_cache_dir)
    benches = {}

    # gold (tune split): a passage is a hit when it holds an evidence string
    from ingest.build import IndexBuilder
    from qa_service.service import build_answerer

    gold_split = "tune" if args.split == "dev" else "heldout"
    settings = ServiceSettings(corpus_dir=REPO / "corpus", index_dir=bench_index("gold"))
    IndexBuilder(settings, embedder).build()
    gold_answerer = build_answerer(settings, embedder)
    gold = [q for q in load_gold(REPO / "eval" / "gold.jsonl") if q.answerable and q.split == gold_split]
    bundle = gold_answerer.bundle
    benches["gold"] = (
        pools_for(gold_answerer, [(q.question, q) for q in gold],
                  lambda q, c: contains_evidence(bundle.chunk_text(c), q.evidence)),
        False,
    )
    for name, loader in LOADERS.items():
        bench = loader(args.shared / name)
        answerer, _ = build_service(bench, embedder)
        questions = [q for q in bench.questions if q.split == args.split]

        def judge(q: Question, c) -> bool:  # noqa: ANN001
            return q.hit(c.doc_id, c.start, c.end)

        benches[name] = (pools_for(answerer, [(q.text, q) for q in questions], judge), not bench.span_level)
    return benches


def replay(benches: dict, split: str, rules: list[str] | None = None) -> None:
    gold_split = "tune" if split == "dev" else "heldout"
    grid: list[tuple[str, dict]] = [("dense", {}), ("lexical", {})]
    grid += [("linear", {"alpha": a}) for a in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    grid += [("rrf", {"k": k}) for k in (10, 60)]
    for name, spec in FUSIONS.items():
        if name.startswith("adaptive"):
            grid += [(name, params) for params in spec]
    if rules:
        grid = [(rule, params) for rule, params in grid if rule in rules or rule == "dense"]
    rows = []
    for rule, params in grid:
        row = {b: evaluate(pools, rule, params, passage) for b, (pools, passage) in benches.items()}
        rows.append((rule, params, row))
    dense = rows[0][2]
    print(f"split {split} (gold: {gold_split}); questions: " + ", ".join(f"{b} {len(p)}" for b, (p, _) in benches.items()))
    print("| rule | " + " | ".join(f"{b} R@1 / R@5 / MRR" for b in benches) + " | >= dense everywhere |")
    print("|---" * (len(benches) + 2) + "|")
    for rule, params, row in rows:
        ok = all(row[b][m] >= dense[b][m] - 1e-9 for b in benches for m in row[b])
        label = rule + ("(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else "")
        cells = " | ".join(f"{row[b]['R@1']:.3f} / {row[b]['R@5']:.3f} / {row[b]['MRR@10']:.3f}" for b in benches)
        print(f"| {label} | {cells} | {'yes' if ok else ''} |")


if __name__ == "__main__":
    main()

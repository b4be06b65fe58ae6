"""Retrieval and answer quality on COVID-QA, side by side with a plain dense baseline.

    python eval/bench_quality.py [--bench ../shared/bench/covidqa] [--ask-sample N]

The articles are indexed with the project's own ingest (cached under
.bench/, rebuilt when the settings or files change). Every question goes
through the service's search (recall@1/3/5/10, MRR@10) and its ask (answer-span
hit@1). In the same run, the baseline is built and scored the same way:
RecursiveCharacterTextSplitter 600/100, the same embedding model, FAISS flat
inner product, dense only. A passage or answer is a hit when it comes from the
gold document and its character range overlaps the gold answer span.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402
from ranx import Qrels, Run, evaluate  # noqa: E402

from ingest.build import IndexBuilder  # noqa: E402
from ingest.bundle import load_bundle  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

RETRIEVAL_METRICS = ["hit_rate@1", "hit_rate@3", "hit_rate@5", "hit_rate@10", "mrr@10"]


def load_questions(bench: Path) -> list[dict]:
    with open(bench / "qrels.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def overlaps(q: dict, doc_id: str, start: int, end: int) -> bool:
    gold_start = q["answer_start"]
    gold_end = gold_start + len(q["answer_text"])
    return doc_id == Path(q["doc"]).stem and start < gold_end and gold_start < end


def score(questions: list[dict], ranked: list[list[tuple[str, int, int]]], metrics: list[str]) -> dict[str, float]:
    """ranx metrics where a hit is a result overlapping the gold span."""
    qrels, run = {}, {}
    for q, results in zip(questions, ranked):
        hits = [overlaps(q, *r) for r in results]
        qrels[q["id"]] = {"__gold__": 1, **{f"r{i}": 1 for i, h in enumerate(hits) if h}}
        run[q["id"]] = {f"r{i}": float(len(results) - i) for i in range(len(results))} or {"__none__": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = evaluate(Qrels(qrels), Run(run), metrics)
    return {m: float(v) for m, v in values.items()} if len(metrics) > 1 else {metrics[0]: float(values)}


def baseline(bench: Path, questions: list[dict], embedder: Embedder) -> tuple[dict[str, float], dict]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=600, chunk_overlap=100, add_start_index=True)
    chunks: list[tuple[str, int, int]] = []
    texts: list[str] = []
    for path in sorted((bench / "corpus").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for doc in splitter.create_documents([text]):
            start = doc.metadata["start_index"]
            chunks.append((path.stem, start, start + len(doc.page_content)))
            texts.append(doc.page_content)
    began = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_seconds = time.perf_counter() - began
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    began = time.perf_counter()
    _, ids = index.search(embedder.embed([q["question"] for q in questions]), 10)
    query_ms = (time.perf_counter() - began) * 1000 / len(questions)
    ranked = [[chunks[i] for i in row if i >= 0] for row in ids]
    info = {"chunks": len(chunks), "embed_chunks_per_s": len(chunks) / embed_seconds, "search_ms": query_ms}
    return score(questions, ranked, RETRIEVAL_METRICS), info


def service(bench: Path, questions: list[dict], embedder: Embedder, ask_sample: int) -> tuple[dict[str, float], dict]:
    settings = ServiceSettings(corpus_dir=bench / "corpus", index_dir=REPO / ".bench" / "covidqa-index")
    report = IndexBuilder(settings, embedder).build()
    answerer = Answerer(load_bundle(settings.index_dir), embedder, settings)
    began = time.perf_counter()
    ranked = []
    for q in questions:
        results = answerer.search(q["question"], k=10).results
        ranked.append([(r.citation.doc_id, r.citation.start, r.citation.end) for r in results])
    search_ms = (time.perf_counter() - began) * 1000 / len(questions)
    metrics = score(questions, ranked, RETRIEVAL_METRICS)
    if ask_sample < 0:
        return metrics, {"chunks": report.chunks, "search_ms": search_ms}
    sample = questions if ask_sample == 0 else questions[:: max(1, len(questions) // ask_sample)][:ask_sample]
    began = time.perf_counter()
    hits = declined = 0
    for q in sample:
        response = answerer.ask(q["question"], top_k=1)
        if not response.answered:
            declined += 1
            continue
        c = response.answers[0].citation
        hits += overlaps(q, c.doc_id, c.start, c.end)
    ask_ms = (time.perf_counter() - began) * 1000 / len(sample)
    metrics["answer_hit@1"] = hits / len(sample)
    metrics["declined"] = declined / len(sample)
    info = {
        "chunks": report.chunks,
        "ingest_seconds": report.seconds,
        "search_ms": search_ms,
        "ask_ms": ask_ms,
        "ask_questions": len(sample),
    }
    return metrics, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=REPO.parent / "shared" / "bench" / "covidqa")
    parser.add_argument("--ask-sample", type=int, default=0, help="Ask only N questions (0: all, -1: none)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here")
    args = parser.parse_args()
    if not (args.bench / "qrels.jsonl").exists():
        sys.exit(f"error: no COVID-QA benchmark at {args.bench} (pass --bench)")
    questions = load_questions(args.bench)
    embedder = Embedder(ServiceSettings().embed_model)
    began = time.perf_counter()
    ours, our_info = service(args.bench, questions, embedder, args.ask_sample)
    rows = {"service": ours}
    info = {"service": our_info}
    if not args.no_baseline:
        rows["baseline"], info["baseline"] = baseline(args.bench, questions, embedder)
    names = {"hit_rate@1": "R@1", "hit_rate@3": "R@3", "hit_rate@5": "R@5", "hit_rate@10": "R@10", "mrr@10": "MRR@10",
             "answer_hit@1": "answer hit@1", "declined": "declined"}
    print(f"COVID-QA: {len(questions)} questions, {len(list((args.bench / 'corpus').glob('*.txt')))} articles")
    header = "| metric | " + " | ".join(rows) + (" | ratio |" if "baseline" in rows else " |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for key, label in names.items():
        cells = [f"{rows[r][key]:.3f}" if key in rows[r] else "" for r in rows]
        ratio = ""
        if "baseline" in rows and key in rows["baseline"] and rows["baseline"][key]:
            ratio = f" {rows['service'][key] / rows['baseline'][key]:.2f} |"
        print(f"| {label} | " + " | ".join(cells) + (" |" + ratio if "baseline" in rows else " |"))
    print(json.dumps(info, indent=1))
    print(f"total {time.perf_counter() - began:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"metrics": rows, "info": info}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""COVID-QA as TREC topics and qrels, for `qa search --topics` and `qa eval --qrels`.

    python eval/covidqa_trec.py [--shared ../shared/bench] [--split test|dev|all] [--out .bench/covidqa-trec] [--index]

Reads the benchmark as eval/bench_quality.py does (the same questions, the same dev/test split
by article) and writes, for the split:

- ``topics-<split>.tsv``: ``qid<TAB>question``;
- ``qrels-<split>-passage.txt``: one line a question, its docno the gold answer span as a passage
  id (``covidqa-630:370-466``): a retrieved passage is relevant when it overlaps it, as
  bench_quality judges a hit;
- ``qrels-<split>-document.txt``: the same questions judged by the gold article alone.

With ``--index`` it also builds (or refreshes) the cached benchmark index bench_quality uses
(``.bench/covidqa-index[-<backend>]``, the shipped settings) and prints its folder, for
``qa search --index``. The README's "For researchers" and docs/evaluation.md give the commands.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

import bench_quality  # noqa: E402  (puts the checkout on sys.path, offline model settings)


def write_trec(bench: bench_quality.Benchmark, split: str, out: Path) -> dict[str, Path]:
    """The topics and both qrels of ``split`` (``all``: every question) in ``out``."""
    questions = [q for q in bench.questions if split == "all" or q.split == split]
    out.mkdir(parents=True, exist_ok=True)
    paths = {"topics": out / f"topics-{split}.tsv", "passage": out / f"qrels-{split}-passage.txt",
             "document": out / f"qrels-{split}-document.txt"}
    with (open(paths["topics"], "w", encoding="utf-8") as topics,
          open(paths["passage"], "w", encoding="utf-8") as passage,
          open(paths["document"], "w", encoding="utf-8") as document):
        for q in questions:
            (doc,) = q.docs
            start, end = q.span
            # a TSV line holds no line break: 3 questions' line breaks are read as spaces (as tokenisers do)
            text = re.sub(r"[\t\r\n]", " ", q.text).strip()
            topics.write(f"{q.id}\t{text}\n")
            passage.write(f"{q.id} 0 {doc}:{start}-{end} 1\n")
            document.write(f"{q.id} 0 {doc} 1\n")
    return paths


def build_index(bench: bench_quality.Benchmark) -> Path:
    """The benchmark's cached index, built or refreshed with the shipped settings (as bench_quality does)."""
    from ingest.onnx_encoder import make_encoder
    from qa_service.settings import ServiceSettings

    settings = ServiceSettings()
    embedder = make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size,
                            cache_dir=settings.encoder_cache_dir)
    index = bench_quality.bench_index(bench.name)
    report = bench_quality.IndexBuilder(bench_quality.service_settings(bench.corpus, index), embedder).build()
    print(report.summary(), file=sys.stderr)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench",
                        help="Folder holding the benchmarks")
    parser.add_argument("--split", choices=["test", "dev", "all"], default="test")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "covidqa-trec")
    parser.add_argument("--index", action="store_true", help="Also build the benchmark's index and print its folder")
    args = parser.parse_args()
    folder = args.shared / "covidqa"
    if not (folder / "qrels.jsonl").exists():
        sys.exit(f"error: no covidqa benchmark at {folder} (pass --shared)")
    bench = bench_quality.load_covidqa(folder)
    paths = write_trec(bench, args.split, args.out)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if args.index:
        print(f"index: {build_index(bench)}")


if __name__ == "__main__":
    main()

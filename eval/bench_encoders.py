"""Chunks embedded per second by each encoder backend, on the real chunks of a corpus, interleaved.

    python eval/bench_encoders.py [--corpus ../shared/bench/covidqa/corpus] [--chunks 600] [--repeats 3]

The chunks are what ``qa ingest`` embeds (the project's chunker, title and section
prepended: ``ingest.build.embed_text``), every n-th of the corpus's chunks so
that short and long ones are both in. Each round runs every variant once, in
turn, so that a neighbour's load on the shared cores hits them all alike; the
figure is the median over rounds. Variants:

- ``st-default``: ``SentenceTransformer(path).encode(texts)`` with default settings
  (the baseline of the speed target);
- ``embedder``: the project's torch :class:`~ingest.embedding.Embedder`;
- ``onnx`` / ``onnx-int8`` at several batch sizes: :class:`~ingest.onnx_encoder.OnnxEncoder`.

Also printed: each ONNX variant's smallest cosine to the torch vectors of the same
chunks, and the largest difference of a coordinate. Nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from ingest.build import embed_text  # noqa: E402
from ingest.chunking import SectionChunker  # noqa: E402
from ingest.corpus import Skipped, read_corpus  # noqa: E402
from ingest.embedding import Embedder, resolve_model_path  # noqa: E402
from ingest.onnx_encoder import OnnxEncoder  # noqa: E402
from ingest.settings import IngestSettings  # noqa: E402


def corpus_chunks(corpus: Path, settings: IngestSettings) -> list[str]:
    chunker = SectionChunker(settings.chunk_size, settings.chunk_overlap)
    texts = []
    for document in read_corpus(corpus):
        if isinstance(document, Skipped):
            continue
        from ingest.documents import Chunk

        for span in chunker.split(document.text, document.sections):
            chunk = Chunk(chunk_id=0, doc_id=document.doc_id, start=span.start, end=span.end, section=span.section)
            texts.append(embed_text(document, chunk))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "bench" / "covidqa" / "corpus")
    parser.add_argument("--chunks", type=int, default=600, help="How many of the corpus's chunks (every n-th)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="16,32,64")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here")
    args = parser.parse_args()
    settings = IngestSettings()
    everything = corpus_chunks(args.corpus, settings)
    step = max(1, len(everything) // args.chunks)
    texts = everything[::step][: args.chunks]
    print(f"{len(texts)} of {len(everything)} chunks from {args.corpus}, median {statistics.median(map(len, texts)):.0f} chars")

    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(settings.embed_model)
    plain = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    embedder = Embedder(settings.embed_model, settings.embed_batch_size)
    embedder.warm_up()
    encoders = {v: OnnxEncoder.for_model(settings.embed_model, v) for v in ("onnx", "onnx-int8")}
    variants: dict[str, callable] = {
        "st-default": lambda: plain.encode(texts),
        "embedder (torch, bs 32)": lambda: embedder.embed(texts),
    }
    for size in (int(s) for s in args.batch_sizes.split(",")):
        for name, encoder in encoders.items():
            def run(encoder: OnnxEncoder = encoder, size: int = size) -> np.ndarray:
                encoder.batch_size = size
                return encoder.embed(texts)
            variants[f"{name} (bs {size})"] = run
    for encoder in encoders.values():  # warm: first-call costs are not throughput
        encoder.warm_up()
        encoder.embed(texts[:64])
    plain.encode(texts[:64])
    rates: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, np.ndarray] = {}
    for round_ in range(args.repeats):
        for name, run in variants.items():
            began = time.perf_counter()
            outputs[name] = run()
            rates[name].append(len(texts) / (time.perf_counter() - began))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1]:.1f}" for n, r in rates.items()), flush=True)
    reference = outputs["embedder (torch, bs 32)"]
    base = statistics.median(rates["st-default"])
    rows = {}
    print("\n| variant | chunks/s (median) | × st-default | min cosine to torch | max abs diff |")
    print("|---|---|---|---|---|")
    for name, rate in rates.items():
        vectors = np.asarray(outputs[name], dtype=np.float32)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        cosine = float((vectors * reference).sum(1).min())
        diff = float(np.abs(vectors - reference).max())
        rows[name] = {"chunks_per_s": round(statistics.median(rate), 1), "ratio": round(statistics.median(rate) / base, 2),
                      "all": [round(r, 1) for r in rate], "min_cosine": round(cosine, 6), "max_abs_diff": float(f"{diff:.3g}")}
        print(f"| {name} | {statistics.median(rate):.1f} | {statistics.median(rate) / base:.2f} | {cosine:.6f} | {diff:.2g} |")
    if args.out:
        args.out.write_text(json.dumps({"chunks": len(texts), "corpus": str(args.corpus), "cores": os.cpu_count(),
                                        "variants": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

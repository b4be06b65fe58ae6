"""What the index costs as the corpus grows: 1k, 10k, 100k and 1M chunks.

    python eval/bench_scale.py [--shared ../shared/bench] [--sizes 1000,10000,100000,1000000]
                               [--out docs/benchmarks.md] [--plot docs/scale.png]

Real text first: the COVID-QA articles and MedQuAD passages (../shared/bench)
are ingested with the project's own ingest (cached in .bench/scale-real-index),
which gives real chunk vectors, real answer-unit vectors and real BM25 terms
(about 12k chunks). Beyond that, what is synthetic, exactly:

- chunk and unit vectors: a synthetic row is ``normalise(a + 0.5 b + n)``,
  ``a`` and ``b`` two real rows drawn at random and ``n`` Gaussian noise of
  norm 0.25 (a point between two real passages, near neither exactly);
- BM25 terms: a synthetic chunk is the first half of one real chunk's terms and
  the second half of another's (real term statistics, no new words: a real
  corpus of 1M chunks has a larger vocabulary);
- units per chunk: the real corpus's ratio.

Questions are 200 real COVID-QA and MedQuAD questions, embedded by the model.
For each size the bundle's own index types are built as ingest would build
them (``ingest.vector_index.choose_spec``), then a fresh process reads them
(memory-mapped, as the service does) and measures, beside the floor (one query
encode) measured in the same run: dense search of the chunks (top 40, what
retrieval asks), search of the answer units (top 40), BM25 (scores and the top
40), recall@10 of each approximate search against exact search, memory (the
process's private memory, and file pages mapped) and build time. At 100k and 1M
the other index kinds are measured too, which is how the default was chosen.
Ingest time adds to the measured builds the embedding time at the rate
measured here on real chunks and units (embedding 1M chunks for real would take
hours on 2 cores; the rate is what scales).

Benchmarks are not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORK = REPO / ".bench" / "scale"
QUERIES = 200
DEPTH = 40


def _rss() -> dict[str, float]:
    """Private (anonymous) and file-backed resident memory of this process, MB."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(("RssAnon:", "RssFile:")):
                key, value = line.split(":")
                fields[key] = int(value.split()[0]) / 1024
    return {"private_mb": fields.get("RssAnon", 0.0), "mapped_mb": fields.get("RssFile", 0.0)}


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


# ---------------------------------------------------------------------------- real sample

def real_sample(shared: Path) -> Path:
    """Real chunk and unit vectors, chunk terms and question vectors, cached in .bench/scale/real.npz."""
    out = WORK / "real.npz"
    if out.exists():
        return out
    from ingest.analysis import terms
    from ingest.build import IndexBuilder, embed_text
    from ingest.bundle import load_bundle
    from ingest.onnx_encoder import make_encoder
    from ingest.settings import IngestSettings

    corpus = REPO / ".bench" / "scale-corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in ("covidqa", "medquad"):
        for path in sorted((shared / name / "corpus").iterdir()):
            link = corpus / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    settings = IngestSettings(corpus_dir=corpus, index_dir=REPO / ".bench" / "scale-real-index")
    embedder = make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size)
    IndexBuilder(settings, embedder).build()
    # What the rest of the bundle (document texts, chunk and unit tables) holds in memory, a chunk:
    # loaded in a fresh process.
    held = subprocess.run(
        [sys.executable, "-c", "import sys, json; sys.path.insert(0, sys.argv[2]); from eval.bench_scale import held_mb; "
         "print(held_mb(sys.argv[1]))", str(settings.index_dir), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    bundle = load_bundle(settings.index_dir)
    held_per_chunk = float(held.stdout.split()[-1]) * 2**20 / len(bundle.chunks)
    chunk_terms = terms([bundle.chunk_text(c) for c in bundle.chunks])
    vocabulary = sorted({t for row in chunk_terms for t in row})
    ids = {t: i for i, t in enumerate(vocabulary)}
    flat = np.array([ids[t] for row in chunk_terms for t in row], dtype=np.int32)
    offsets = np.cumsum([0] + [len(row) for row in chunk_terms]).astype(np.int64)

    questions = []
    for name in ("covidqa", "medquad"):
        with open(shared / name / "qrels.jsonl", encoding="utf-8") as handle:
            rows = [json.loads(line)["question"] for line in handle]
        questions += list(dict.fromkeys(rows))[: QUERIES // 2]
    question_vectors = embedder.embed(questions)

    sample_chunks = [embed_text(bundle.documents[c.doc_id], c) for c in bundle.chunks[::30]]
    sample_units = [bundle.documents[bundle.doc_ids[int(u["doc"])]].text[int(u["start"]):int(u["end"])] for u in bundle.units[::25]]
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        chunk_vectors=np.array(bundle.dense.vectors),
        unit_vectors=np.array(bundle.unit_vectors),
        term_ids=flat,
        term_offsets=offsets,
        vocabulary=np.array(vocabulary),
        question_vectors=question_vectors,
        questions=np.array(questions),
        question_terms=np.array([" ".join(row) for row in terms(questions)]),
        sample_chunks=np.array(sample_chunks),
        sample_units=np.array(sample_units),
        documents=np.array([len(bundle.documents)]),
        held_per_chunk=np.array([held_per_chunk]),
    )
    return out


def held_mb(index_dir: str) -> float:
    """Private memory a fresh process gains loading the bundle at ``index_dir`` (MB)."""
    from ingest.bundle import load_bundle

    before = _rss()["private_mb"]
    bundle = load_bundle(Path(index_dir))
    held = _rss()["private_mb"] - before
    del bundle
    return held


def synthetic(real: np.ndarray, count: int, seed: int, path: Path) -> np.ndarray:
    """``count`` rows: the real ones first, then mixes of two real rows plus noise (memory-mapped file)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, real.shape[1]))
    taken = min(count, len(real))
    out[:taken] = real[:taken]
    rng = np.random.default_rng(seed)
    for begin in range(taken, count, 100_000):
        n = min(100_000, count - begin)
        a = real[rng.integers(0, len(real), n)]
        b = real[rng.integers(0, len(real), n)]
        noise = rng.standard_normal((n, real.shape[1])).astype(np.float32)
        noise *= 0.25 / np.linalg.norm(noise, axis=1, keepdims=True)
        mixed = a + 0.5 * b + noise
        out[begin:begin + n] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    out.flush()
    return out


def synthetic_terms(sample: dict, count: int, seed: int) -> list[list[str]]:
    vocabulary = sample["vocabulary"]
    ids, offsets = sample["term_ids"], sample["term_offsets"]
    real = len(offsets) - 1
    rows = [vocabulary[ids[offsets[i]:offsets[i + 1]]].tolist() for i in range(min(count, real))]
    rng = np.random.default_rng(seed)
    for a, b in zip(rng.integers(0, real, count - len(rows)), rng.integers(0, real, count - len(rows))):
        left = ids[offsets[a]:offsets[a + 1]]
        right = ids[offsets[b]:offsets[b + 1]]
        rows.append(vocabulary[np.concatenate([left[: len(left) // 2], right[len(right) // 2:]])].tolist())
    return rows


# ---------------------------------------------------------------------------- one size

def build_size(sample_path: Path, size: int, kinds: list[str]) -> dict:
    """Write the indexes of one size under .bench/scale/<size>/; their build times."""
    from ingest.lexical import LexicalIndex
    from ingest.vector_index import IndexKind, IndexPolicy, build_index, choose_spec, write_index

    sample = dict(np.load(sample_path))
    folder = WORK / str(size)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ratio = len(sample["unit_vectors"]) / len(sample["chunk_vectors"])
    units = int(round(size * ratio))
    info: dict = {"chunks": size, "units": units, "builds": {}}
    for name, real, count, seed in (("chunks", sample["chunk_vectors"], size, 1), ("units", sample["unit_vectors"], units, 2)):
        vectors = synthetic(real, count, seed, folder / f"{name}.npy")
        for kind in kinds:
            if name == "units" and kind != "default":
                continue
            spec = choose_spec(count) if kind == "default" else choose_spec(count, IndexPolicy(kind=IndexKind(kind)))
            began = time.perf_counter()
            index = build_index(vectors, spec)
            write_index(index, folder / f"{name}-{kind}.faiss")
            info["builds"][f"{name}-{kind}"] = {"spec": spec.model_dump(mode="json"), "seconds": time.perf_counter() - began}
            del index
        del vectors
        (folder / f"{name}.npy").unlink()
    terms = synthetic_terms(sample, size, 3)
    began = time.perf_counter()
    lexical = LexicalIndex.from_terms(terms)
    lexical.save(folder / "lexical")
    info["builds"]["lexical"] = {"seconds": time.perf_counter() - began}
    (folder / "build.json").write_text(json.dumps(info, indent=1))
    return info


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Ground truth: the exact top 10 of every query over the same float vectors."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(vectors), 250_000):
        block = queries @ np.asarray(vectors[lo:lo + 250_000]).T
        ids = np.argpartition(-block, min(10, block.shape[1] - 1), axis=1)[:, :10]
        best_scores = np.hstack([best_scores, np.take_along_axis(block, ids, axis=1)])
        best_ids = np.hstack([best_ids, ids + lo])
        keep = np.argsort(-best_scores, axis=1)[:, :10]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
    return best_ids


def measure_size(sample_path: Path, size: int, kinds: list[str]) -> dict:
    """Read one size's indexes as the service does (memory-mapped) and time their searches."""
    import faiss

    from ingest.lexical import LexicalIndex
    from ingest.vector_index import IndexSpec, VectorIndex

    faiss.omp_set_num_threads(1)  # as the service searches (qa_service/service.py)
    sample = dict(np.load(sample_path))
    queries = sample["question_vectors"].astype(np.float32)
    query_terms = [str(t).split() for t in sample["question_terms"]]
    folder = WORK / str(size)
    info = json.loads((folder / "build.json").read_text())
    del sample
    out: dict = {"chunks": info["chunks"], "units": info["units"], "indexes": {}}
    exact: dict[str, np.ndarray] = {}
    for name in ("chunks", "units"):
        for kind in kinds:
            key = f"{name}-{kind}"
            if key not in info["builds"]:
                continue
            spec = IndexSpec.model_validate(info["builds"][key]["spec"])
            if name not in exact:
                exact[name] = exact_top10(VectorIndex.read(folder / f"{key}.faiss", spec).vectors, queries)
            gc.collect()
            before = _rss()
            index = VectorIndex.read(folder / f"{key}.faiss", spec)
            loaded = _rss()
            # Twice over the questions: the first pass reads the mapped pages it needs from the file
            # (a server's first questions), the second finds them in memory (a server that has run).
            cold, times, recalls = [], [], []
            for pass_ in (cold, times):
                for i, query in enumerate(queries):
                    began = time.perf_counter()
                    ids, _ = index.search(query, DEPTH)
                    pass_.append((time.perf_counter() - began) * 1000)
                    if pass_ is times:
                        recalls.append(len(set(ids[:10].tolist()) & set(exact[name][i].tolist())) / 10)
            # A search narrowed to a few documents' rows (a question that names a medicine).
            rows = np.arange(0, min(index.ntotal, 60))
            narrowed = []
            for query in queries:
                began = time.perf_counter()
                index.search(query, DEPTH, rows)
                narrowed.append((time.perf_counter() - began) * 1000)
            after = _rss()
            out["indexes"][key] = {
                "kind": spec.kind.value,
                "spec": info["builds"][key]["spec"],
                "build_seconds": info["builds"][key]["seconds"],
                **_percentiles(times),
                "cold_p50_ms": float(np.percentile(cold, 50)),
                "narrowed_p50_ms": float(np.percentile(narrowed, 50)),
                "recall_at_10": float(np.mean(recalls)),
                "private_mb_loaded": loaded["private_mb"] - before["private_mb"],
                "private_mb": after["private_mb"] - before["private_mb"],
                "mapped_mb": after["mapped_mb"] - before["mapped_mb"],
                "disk_mb": (folder / f"{key}.faiss").stat().st_size / 2**20,
            }
            del index
    before = _rss()
    lexical = LexicalIndex.load(folder / "lexical")
    loaded = _rss()
    times = []
    for round_ in range(2):
        for tokens in query_terms:
            began = time.perf_counter()
            scores = lexical.scores(tokens)
            positive = np.flatnonzero(scores > 0)
            if len(positive) > DEPTH:
                positive = positive[np.argpartition(-scores[positive], DEPTH)[:DEPTH]]
            positive[np.argsort(-scores[positive], kind="stable")]
            if round_:
                times.append((time.perf_counter() - began) * 1000)
    after = _rss()
    disk = sum(p.stat().st_size for p in (folder / "lexical").iterdir()) / 2**20
    out["indexes"]["lexical"] = {
        "kind": "bm25s",
        "build_seconds": info["builds"]["lexical"]["seconds"],
        **_percentiles(times),
        "private_mb_loaded": loaded["private_mb"] - before["private_mb"],
        "private_mb": after["private_mb"] - before["private_mb"],
        "mapped_mb": after["mapped_mb"] - before["mapped_mb"],
        "disk_mb": disk,
    }
    return out


# ---------------------------------------------------------------------------- report

def embedding_rates(embedder, data) -> np.ndarray:  # noqa: ANN001
    """Chunks and answer units embedded a second, as ingest embeds them (every 30th chunk, every 25th unit)."""
    chunks, units = [str(t) for t in data["sample_chunks"]], [str(t) for t in data["sample_units"]]
    embedder.embed(chunks[:32])
    began = time.perf_counter()
    embedder.embed(chunks)
    chunk_rate = len(chunks) / (time.perf_counter() - began)
    began = time.perf_counter()
    embedder.embed(units)
    return np.array([chunk_rate, len(units) / (time.perf_counter() - began)])


def floor_ms(embedder, questions: list[str]) -> float:  # noqa: ANN001
    embedder.embed(questions[:4])
    times = []
    for question in questions * 2:
        began = time.perf_counter()
        embedder.embed([question])
        times.append((time.perf_counter() - began) * 1000)
    return float(np.median(times))


def _child(mode: str, sample: Path, size: int, kinds: list[str]) -> dict:
    command = [sys.executable, __file__, f"--{mode}", str(size), "--sample", str(sample), "--kinds", ",".join(kinds)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"


def table(results: list[dict]) -> str:
    lines = [
        "| chunks | floor ms | answer units | chunk index | build s | search p50 ms (/ floor) | p99 ms | first pass p50 ms | recall@10 | narrowed p50 ms "
        "| unit index | unit search p50 ms (/ floor) | p99 ms | first pass p50 ms | recall@10 | BM25 p50 ms | p99 ms "
        "| private MB (/ chunk) | mapped MB | disk MB | ingest min (embedding est.) |",
        "|" + "---|" * 20,
    ]
    for result in results:
        chunks, units = result["chunks"], result["units"]
        floor, rates = result["floor_ms"], result["rates"]
        c, u, b = result["indexes"]["chunks-default"], result["indexes"]["units-default"], result["indexes"]["lexical"]
        private = c["private_mb"] + u["private_mb"] + b["private_mb"]
        mapped = c["mapped_mb"] + u["mapped_mb"] + b["mapped_mb"]
        disk = c["disk_mb"] + u["disk_mb"] + b["disk_mb"]
        embed_min = (chunks / rates[0] + units / rates[1]) / 60
        build_min = (c["build_seconds"] + u["build_seconds"] + b["build_seconds"]) / 60
        lines.append(
            f"| {chunks:,} | {floor:.1f} | {units:,} | {c['kind']} | {c['build_seconds']:.1f} | {c['p50_ms']:.2f} ({c['p50_ms'] / floor:.2f}) "
            f"| {c['p99_ms']:.2f} | {_ms(c.get('cold_p50_ms'))} | {c['recall_at_10']:.3f} | {c['narrowed_p50_ms']:.2f} | {u['kind']} "
            f"| {u['p50_ms']:.2f} ({u['p50_ms'] / floor:.2f}) | {u['p99_ms']:.2f} | {_ms(u.get('cold_p50_ms'))} | {u['recall_at_10']:.3f} "
            f"| {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {private:,.0f} ({private * 2**20 / chunks:,.0f} B) | {mapped:,.0f} "
            f"| {disk:,.0f} | {build_min + embed_min:,.1f} ({embed_min:,.1f}) |"
        )
    return "\n".join(lines)


def kinds_table(results: list[dict]) -> str:
    lines = [
        "| chunks | chunk index | parameters | build s | search p50 ms (/ floor) | p99 ms | recall@10 | private MB | disk MB |",
        "|" + "---|" * 9,
    ]
    for result in results:
        floor = result["floor_ms"]
        for key, entry in result["indexes"].items():
            if not key.startswith("chunks-") or key == "chunks-default":
                continue
            spec = {k: v for k, v in entry["spec"].items() if v and k != "kind"}
            lines.append(
                f"| {result['chunks']:,} | {entry['kind']} | {json.dumps(spec) if spec else 'exact'} | {entry['build_seconds']:.1f} "
                f"| {entry['p50_ms']:.2f} ({entry['p50_ms'] / floor:.2f}) | {entry['p99_ms']:.2f} | {entry['recall_at_10']:.3f} "
                f"| {entry['private_mb']:,.0f} | {entry['disk_mb']:,.0f} |"
            )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for key, label in (("chunks-default", "chunk search"), ("units-default", "unit search"), ("lexical", "BM25")):
        ax.plot(sizes, [r["indexes"][key]["p50_ms"] for r in results], "o-", label=f"{label} p50")
        ax.plot(sizes, [r["indexes"][key]["p99_ms"] for r in results], "o--", label=f"{label} p99", alpha=0.6)
    floors = [r["floor_ms"] for r in results]
    ax.plot(sizes, floors, "k-", lw=0.8, label="floor (one query encode)")
    ax.plot(sizes, [f / 2 for f in floors], "k:", lw=0.8, label="0.5x floor")
    ax.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms", title="Search latency")
    ax.legend(fontsize=7)
    ax = axes[1]
    for key, label in (("chunks-default", "chunk index"), ("units-default", "unit index"), ("lexical", "BM25")):
        ax.plot(sizes, [r["indexes"][key]["private_mb"] for r in results], "o-", label=f"{label}, private")
        ax.plot(sizes, [r["indexes"][key]["disk_mb"] for r in results], "o--", label=f"{label}, on disk", alpha=0.6)
    ax.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MB", title="Memory and disk")
    ax.legend(fontsize=7)
    ax = axes[2]
    build = [sum(r["indexes"][k]["build_seconds"] for k in ("chunks-default", "units-default", "lexical")) / 60 for r in results]
    embed = [(r["chunks"] / r["rates"][0] + r["units"] / r["rates"][1]) / 60 for r in results]
    ax.plot(sizes, build, "o-", label="index builds (measured)")
    ax.plot(sizes, embed, "o--", label="embedding (measured rate x size)")
    ax.set(xscale="log", yscale="log", xlabel="chunks", ylabel="minutes", title="Ingest time")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(out: Path, text: str) -> None:
    begin, end = "<!-- scale: written by eval/bench_scale.py -->", "<!-- /scale -->"
    current = out.read_text(encoding="utf-8") if out.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        current = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    out.write_text(current, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--compare-at", default="100000,1000000", help="sizes at which every index kind is measured")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "scale.png")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench" / "scale.json")
    parser.add_argument("--fresh", action="store_true", help="forget the sizes of earlier runs (docs/bench/scale.json)")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kinds", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.build or args.measure:
        kinds = args.kinds.split(",")
        result = build_size(args.sample, args.build, kinds) if args.build else measure_size(args.sample, args.measure, kinds)
        print(json.dumps(result))
        return

    from ingest.onnx_encoder import make_encoder
    from ingest.settings import IngestSettings

    began = time.perf_counter()
    sample = real_sample(args.shared)
    data = np.load(sample)
    settings = IngestSettings()
    embedder = make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size)
    questions = [str(t) for t in data["questions"]][:50]
    floor = floor_ms(embedder, questions)
    rates = embedding_rates(embedder, data)
    print(f"real sample: {len(data['chunk_vectors']):,} chunks, {len(data['unit_vectors']):,} units; "
          f"embedding {rates[0]:.0f} chunks/s, {rates[1]:.0f} units/s; floor {floor:.1f} ms", flush=True)
    compare = {int(s) for s in args.compare_at.split(",") if s}
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        kinds = ["default", "flat", "ivf", "hnsw"] if size in compare else ["default"]
        if size > 200_000 and "hnsw" in kinds:
            kinds.remove("hnsw")  # hours to build on 2 cores; measured at 100k
        _child("build", sample, size, kinds)
        result = _child("measure", sample, size, kinds)
        results.append(result)
        c = result["indexes"]["chunks-default"]
        print(f"{size:>9,} chunks: {c['kind']} p50 {c['p50_ms']:.2f} ms recall {c['recall_at_10']:.3f}", flush=True)
        shutil.rmtree(WORK / str(size), ignore_errors=True)

    for result in results:  # each row keeps the floor and rates of the run that measured it
        result.update(floor_ms=floor, rates=rates.tolist(), measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if args.json.exists() and not args.fresh:  # sizes measured by an earlier run and not this one are kept
        earlier = {r["chunks"]: r for r in json.loads(args.json.read_text()).get("results", []) if "floor_ms" in r}
        earlier.update({r["chunks"]: r for r in results})
        results = [earlier[size] for size in sorted(earlier)]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results}, indent=1))
    plot(results, args.plot)
    import faiss

    header = (
        f"## Scale\n\nWritten by `make bench-scale` (eval/bench_scale.py) on "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: {platform.platform()}, {os.cpu_count()} CPUs; "
        f"faiss {faiss.__version__}. Every row gives the floor of the run that measured it (one query encode "
        f"with the encoder ingest was set to use); this run's, with `{settings.embed_backend}`: **{floor:.1f} ms**. "
        f"Real sample: {len(data['chunk_vectors']):,} chunks and {len(data['unit_vectors']):,} answer units of the "
        f"COVID-QA and MedQuAD articles; beyond them the rows are synthetic as eval/bench_scale.py says. "
        f"Embedding rate measured here: {rates[0]:.0f} chunks/s, {rates[1]:.0f} units/s. "
        f"Besides the indexes below, the bundle's document texts and chunk and unit tables are held in memory: "
        f"{float(data['held_per_chunk'][0]):,.0f} bytes a chunk on the real sample (about "
        f"{float(data['held_per_chunk'][0]) * 1e6 / 2**30:,.1f} GiB at 1M chunks). "
        f"The suite took {(time.perf_counter() - began) / 60:.0f} min.\n\n"
        f"![cost curve]({args.plot.name})\n\n"
    )
    text = (
        header + table(results)
        + "\n\nSearch is top 40 (what retrieval asks of each side); recall@10 is against exact search over the same "
        "vectors; narrowed = within a few documents' rows (answered exactly). Private memory is what the process "
        "holds of its own once loaded and searched; mapped is file pages it touched (page cache, shared by every "
        "server process and reclaimable).\n\nEvery index kind at the compared sizes:\n\n" + kinds_table(results)
    )
    write_report(args.out, text)
    print(text)


if __name__ == "__main__":
    main()

"""Retrieval and answer quality on the external benchmarks, beside plain baselines built in the same run.

    python eval/bench_quality.py [--bench gold|leaflets|covidqa|medquad|all] [--shared ../shared/bench] [--out-dir docs/bench]

Each benchmark's documents are indexed with the project's own ingest (cached
under .bench/, rebuilt when the settings or files change) and every question
goes through the service's search (and, for span benchmarks, its ask). In the
same run two plain baselines are built over the same documents and scored the
same way: RecursiveCharacterTextSplitter 600/100 chunks searched by the same
embedding model (FAISS flat inner product, dense only), and by BM25 (bm25s,
the project's analyser).

- COVID-QA (span level): a passage or answer is a hit when it comes from the
  gold article and its character range overlaps the gold answer span. The set
  has no split of its own: articles are split dev/test by a hash of their
  name, so that no article is in both.
- MedQuAD (passage level): a result is a hit when it comes from one of the
  question's relevant passages (files); ranked results are collapsed to
  distinct files (from the top 50 chunks), as the benchmark's README does;
  focus@1: the top result is about the question's focus (its sidecar title).
- leaflets: 30 generated leaflets of one template (eval/leaflets.py), asked
  by brand, generic and misspelt name; answers must come from the named
  medicine's own leaflet.

Tune on dev; the test split is what is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402
from ranx import Qrels, Run, evaluate  # noqa: E402

from ingest.build import IndexBuilder  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from ingest.onnx_encoder import make_encoder  # noqa: E402
from ingest.analysis import terms as tokenize  # noqa: E402
from ingest.lexical import LexicalIndex  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

RETRIEVAL_METRICS = ["hit_rate@1", "hit_rate@3", "hit_rate@5", "hit_rate@10", "mrr@10"]
LABELS = {"hit_rate@1": "R@1", "hit_rate@3": "R@3", "hit_rate@5": "R@5", "hit_rate@10": "R@10", "mrr@10": "MRR@10",
          "answer_hit@1": "answer hit@1", "answer_hit@3": "answer hit@3", "answer_mrr": "answer MRR",
          "passage_hit@3": "passage hit@3", "passage_mrr@10": "passage MRR@10", "declined": "declined",
          "answerable_declined": "answerable declined (sample)", "out_of_scope_declined": "out-of-scope declined",
          "focus@1": "top result about the question's focus", "other_leaflet_answers": "answered from another medicine's leaflet"}
COLLAPSE_FROM = 50
"""Passage-level benchmarks: distinct documents are taken from this many top chunks."""

Result = tuple[str, int, int]
"""(doc_id, start, end) of a retrieved passage or answer."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    split: str
    docs: frozenset[str]
    """Relevant document ids (file stems)."""
    span: tuple[int, int] | None = None
    """Gold answer span in the one relevant document (span-level benchmarks)."""

    def hit(self, doc_id: str, start: int, end: int) -> bool:
        if doc_id not in self.docs:
            return False
        return self.span is None or (start < self.span[1] and self.span[0] < end)


@dataclass
class Benchmark:
    name: str
    corpus: Path
    questions: list[Question]
    span_level: bool
    notes: dict = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return sorted({q.split for q in self.questions})


def _stem(doc: str) -> str:
    return Path(doc).stem


def load_covidqa(folder: Path) -> Benchmark:
    questions = []
    with open(folder / "qrels.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            digest = hashlib.sha256(row["doc"].encode()).digest()
            split = "dev" if digest[0] % 2 == 0 else "test"
            start = row["answer_start"]
            questions.append(
                Question(row["id"], row["question"], split, frozenset({_stem(row["doc"])}), (start, start + len(row["answer_text"])))
            )
    return Benchmark("covidqa", folder / "corpus", questions, span_level=True,
                     notes={"split": "articles split dev/test by sha256(article file name)[0] % 2"})


def load_medquad(folder: Path) -> Benchmark:
    grouped: dict[str, dict] = {}
    with open(folder / "qrels.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            entry = grouped.setdefault(row["id"], {"question": row["question"], "split": row["split"], "docs": set()})
            entry["docs"].add(_stem(row["doc"]))
    questions = [Question(qid, e["question"], e["split"], frozenset(e["docs"])) for qid, e in grouped.items()]
    return Benchmark("medquad", folder / "corpus", questions, span_level=False)


LOADERS = {"covidqa": load_covidqa, "medquad": load_medquad}


def bench_focus(bench: Benchmark) -> dict[str, str]:
    """Each passage's focus, from its sidecar title ("Keratoconus (GARD)" -> "keratoconus"):
    the judge of whether a result is about what the question asks about."""
    focus = {}
    for meta in bench.corpus.glob("*.meta.json"):
        title = json.loads(meta.read_text(encoding="utf-8")).get("title", "")
        focus[_stem(meta.name[: -len(".meta.json")])] = re.sub(r"\s*\([^()]*\)\s*$", "", title).strip().casefold()
    return focus


def collapse(results: Sequence[Result], k: int = 10) -> list[Result]:
    """The first result of each distinct document, top ``k``."""
    seen: set[str] = set()
    out = []
    for result in results:
        if result[0] not in seen:
            seen.add(result[0])
            out.append(result)
    return out[:k]


def score(questions: list[Question], ranked: list[list[Result]], metrics: list[str]) -> dict[str, float]:
    """ranx metrics where a hit is a result the question's judge accepts."""
    qrels, run = {}, {}
    for q, results in zip(questions, ranked):
        hits = [q.hit(*r) for r in results]
        qrels[q.id] = {"__gold__": 1, **{f"r{i}": 1 for i, h in enumerate(hits) if h}}
        run[q.id] = {f"r{i}": float(len(results) - i) for i in range(len(results))} or {"__none__": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = evaluate(Qrels(qrels), Run(run), metrics)
    return {m: float(v) for m, v in values.items()} if len(metrics) > 1 else {metrics[0]: float(values)}


class PlainBaselines:
    """The plain pipeline: 600/100 recursive chunks, one embedding each (dense) or BM25."""

    def __init__(self, corpus: Path, embedder: Embedder) -> None:
        splitter = RecursiveCharacterTextSplitter(chunk_size=600, chunk_overlap=100, add_start_index=True)
        self.chunks: list[Result] = []
        texts: list[str] = []
        for path in sorted([*corpus.glob("*.txt"), *corpus.glob("*.md")]):
            text = path.read_text(encoding="utf-8")
            for doc in splitter.create_documents([text]):
                start = doc.metadata["start_index"]
                self.chunks.append((path.stem, start, start + len(doc.page_content)))
                texts.append(doc.page_content)
        self.embedder = embedder
        began = time.perf_counter()
        vectors = embedder.embed(texts)
        self.embed_seconds = time.perf_counter() - began
        self.dense = faiss.IndexFlatIP(vectors.shape[1])
        self.dense.add(vectors)
        self.lexical = LexicalIndex.build(texts)

    def dense_search(self, questions: list[str], k: int) -> list[list[Result]]:
        _, ids = self.dense.search(self.embedder.embed(questions), k)
        return [[self.chunks[i] for i in row if i >= 0] for row in ids]

    def bm25_search(self, questions: list[str], k: int) -> list[list[Result]]:
        ranked = []
        for tokens in tokenize(questions):
            scores = self.lexical.scores(tokens)
            top = np.argsort(-scores, kind="stable")[:k]
            ranked.append([self.chunks[i] for i in top if scores[i] > 0])
        return ranked


def bench_index(name: str) -> Path:
    """The cached index of a benchmark, one per embedding backend (QA_EMBED_BACKEND)."""
    backend = ServiceSettings().embed_backend
    return REPO / ".bench" / (f"{name}-index" if backend == "torch" else f"{name}-index-{backend}")


PREVIOUS = {
    "answer": {"reader_model": None, "min_confidence": 0.2, "source_confidence": 0.02},
    "retrieval": {"subject_narrowing": "filter", "fusion_confidence": False, "embed_expansion": True,
                  "expansion_weight": 0.0, "collapse_chunks": False, "strict_misspellings": False},
}
"""The configuration the shipped one replaces, measured beside it in the same run ("previous"):
the settings that differ, by group. Today: the configuration before issue 22 (answers ranked
without the reader, subjects always a filter, the expansion embedded, chunks not collapsed).
(The subjects ingest tags are today's: leaving title debris out moved no figure, docs/evaluation.md.)"""
SYSTEMS = ("service", "previous")


def service_settings(corpus: Path, index: Path, system: str = "service") -> ServiceSettings:
    """The settings of ``system``: the shipped configuration, or the one it replaces (:data:`PREVIOUS`)."""
    settings = ServiceSettings(corpus_dir=corpus, index_dir=index)
    if system == "previous":
        for group, values in PREVIOUS.items():
            settings = settings.model_copy(update={group: getattr(settings, group).model_copy(update=values)})
    return settings


def build_service(bench: Benchmark, embedder: Embedder, system: str = "service"):  # noqa: ANN201 - (Answerer, report)
    from qa_service.service import build_answerer

    settings = service_settings(bench.corpus, bench_index(bench.name), system)
    report = IndexBuilder(settings, embedder).build()
    return build_answerer(settings, embedder), report


def run_benchmark(bench: Benchmark, embedder: Embedder, ask: bool = True, baselines: bool = True,
                  systems: Sequence[str] = SYSTEMS) -> dict:
    services = {system: build_service(bench, embedder, system) for system in systems}
    report = services["service"][1]
    depth = 10 if bench.span_level else COLLAPSE_FROM
    finish: Callable[[list[Result]], list[Result]] = (lambda r: r[:10]) if bench.span_level else collapse
    questions = bench.questions
    runs: dict[str, list[list[Result]]] = {}
    info: dict = {}
    for system, (answerer, _) in services.items():
        began = time.perf_counter()
        system_runs = []
        for q in questions:
            results = answerer.search(q.text, k=depth).results
            system_runs.append(finish([(r.citation.doc_id, r.citation.start, r.citation.end) for r in results]))
        search_ms = (time.perf_counter() - began) * 1000 / len(questions)
        runs[system] = system_runs
        info[system] = {"chunks": report.chunks, "ingest_seconds": round(report.seconds, 1), "search_ms": round(search_ms, 1)}
    if baselines:
        plain = PlainBaselines(bench.corpus, embedder)
        texts = [q.text for q in questions]
        began = time.perf_counter()
        runs["dense"] = [finish(r) for r in plain.dense_search(texts, depth)]
        dense_ms = (time.perf_counter() - began) * 1000 / len(questions)
        runs["bm25"] = [finish(r) for r in plain.bm25_search(texts, depth)]
        info["dense"] = {"chunks": len(plain.chunks), "embed_chunks_per_s": round(len(plain.chunks) / plain.embed_seconds, 1),
                         "search_ms": round(dense_ms, 1)}
    answers: dict[str, dict[str, tuple[bool, bool]]] = {}
    abstention: dict[str, dict[str, float]] = {}
    for system, (answerer, _) in services.items():
        if ask and bench.span_level:
            answers[system] = {}
            began = time.perf_counter()
            for q in questions:
                response = answerer.ask(q.text, top_k=1)
                if not response.answered:
                    answers[system][q.id] = (False, True)
                    continue
                c = response.answers[0].citation
                answers[system][q.id] = (q.hit(c.doc_id, c.start, c.end), False)
            info[system]["ask_ms"] = round((time.perf_counter() - began) * 1000 / len(questions), 1)
        if ask and not bench.span_level:
            # Abstention at scale: answerable questions (a sample of the test split) should be
            # answered; the drug gold set's questions, about medicines this corpus never
            # mentions, should be declined.
            from qa_service.evaluation import load_gold

            sample = [q for q in questions if q.split == "test"][::4]
            began = time.perf_counter()
            in_scope = [not answerer.ask(q.text, top_k=1).answered for q in sample]
            info[system]["ask_ms"] = round((time.perf_counter() - began) * 1000 / max(len(sample), 1), 1)
            gold = load_gold(REPO / "eval" / "gold.jsonl")
            out_of_scope = [not answerer.ask(q.question, top_k=1).answered for q in gold]
            abstention[system] = {
                "answerable_declined": sum(in_scope) / len(in_scope),
                "out_of_scope_declined": sum(out_of_scope) / len(out_of_scope),
            }
            info["abstention"] = {"answerable_sample": len(sample), "out_of_scope": len(gold),
                                  "out_of_scope_note": "the drug gold set's questions: baclofen is in no MedQuAD passage"}
    focus = bench_focus(bench) if not bench.span_level else {}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for split in bench.splits + ["all"]:
        chosen = [i for i, q in enumerate(questions) if split == "all" or q.split == split]
        qs = [questions[i] for i in chosen]
        table[split] = {}
        for system, ranked in runs.items():
            table[split][system] = score(qs, [ranked[i] for i in chosen], RETRIEVAL_METRICS)
            if focus:
                table[split][system]["focus@1"] = sum(
                    bool(ranked[i]) and focus.get(ranked[i][0][0]) in {focus.get(d) for d in questions[i].docs}
                    for i in chosen
                ) / len(chosen)
        for system, given in answers.items():
            table[split][system]["answer_hit@1"] = sum(given[q.id][0] for q in qs) / len(qs)
            table[split][system]["declined"] = sum(given[q.id][1] for q in qs) / len(qs)
        table[split]["questions"] = {"n": len(qs)}
    for system, figures in abstention.items():
        table["test"][system].update(figures)
    return {"benchmark": bench.name, "notes": bench.notes, "metrics": table, "info": info}


def run_gold_benchmark(embedder: Embedder, baselines: bool = True, systems: Sequence[str] = SYSTEMS) -> dict:
    """The drug gold set: the service's answers and passages beside the plain dense pipeline's.

    The plain pipeline's passages are its dense chunks; its answers are the
    corpus's sentences (the bundle's answer units, embedded alone by the same
    model) ranked by cosine alone: what "plain dense" means for answers.
    """
    from qa_service.evaluation import contains_evidence, load_gold, run_gold
    from qa_service.service import build_answerer

    gold = load_gold(REPO / "eval" / "gold.jsonl")
    rows: dict[str, dict[str, list[list[bool]]]] = {}
    info: dict = {"note": "answerable questions only; abstention is in qa eval"}
    for system in systems:
        settings = service_settings(REPO / "corpus", bench_index("gold"), system)
        IndexBuilder(settings, embedder).build()
        answerer = build_answerer(settings, embedder)
        began = time.perf_counter()
        results = run_gold(answerer, gold)
        info[system] = {"ask_and_search_ms": round((time.perf_counter() - began) * 1000 / len(gold), 1)}
        rows[system] = {"answers": [r.answer_hits for r in results], "passages": [r.passage_hits for r in results]}
    answerable = [q.answerable for q in gold]
    if baselines:
        plain = PlainBaselines(REPO / "corpus", embedder)
        texts = {p.stem: p.read_text(encoding="utf-8") for p in (REPO / "corpus").glob("*.txt")}
        dense = plain.dense_search([q.question for q in gold], 10)
        bundle = answerer.bundle
        unit_texts = [bundle.documents[bundle.doc_ids[u["doc"]]].text[u["start"]:u["end"]] for u in bundle.units]
        sims = embedder.embed([q.question for q in gold]) @ np.asarray(bundle.unit_vectors).T
        rows["dense"] = {
            "passages": [[contains_evidence(texts[d][a:b], q.evidence) for d, a, b in ranked] for q, ranked in zip(gold, dense)],
            "answers": [[contains_evidence(unit_texts[i], q.evidence) for i in np.argsort(-row)[:5]] for q, row in zip(gold, sims)],
        }

    def ranking(hits: list[list[bool]], k: int | None) -> tuple[float, float]:
        firsts = [next((i + 1 for i, h in enumerate(row[: (k or 10)]) if h), None) for row in hits]
        return (sum(f is not None for f in firsts) / len(firsts), sum(1.0 / f for f in firsts if f) / len(firsts))

    table: dict = {}
    for split in ("heldout", "tune", "all"):
        chosen = [i for i, q in enumerate(gold) if q.answerable and (split == "all" or q.split == split)]
        table[split] = {"questions": {"n": len(chosen)}}
        for system, hits in rows.items():
            answers = [hits["answers"][i] for i in chosen]
            passages = [hits["passages"][i] for i in chosen]
            table[split][system] = {
                "answer_hit@1": ranking(answers, 1)[0],
                "answer_hit@3": ranking(answers, 3)[0],
                "answer_mrr": ranking(answers, 5)[1],
                "passage_hit@3": ranking(passages, 3)[0],
                "passage_mrr@10": ranking(passages, 10)[1],
            }
    del answerable
    return {"benchmark": "gold", "notes": {}, "metrics": table, "info": info}


RANKING_FIELDS = {
    # fingerprint key -> where the setting lives
    "embed_model": "embed_model", "chunk_size": "chunk_size", "chunk_overlap": "chunk_overlap",
    "retrieval_candidates": "retrieval.candidates", "fusion": "retrieval.fusion",
    "fusion_alpha": "retrieval.fusion_alpha", "rrf_k": "retrieval.rrf_k", "subject_query": "retrieval.subject_query",
    "subject_narrowing": "retrieval.subject_narrowing", "subject_boost": "retrieval.subject_boost",
    "fusion_confidence": "retrieval.fusion_confidence", "embed_expansion": "retrieval.embed_expansion",
    "expansion_weight": "retrieval.expansion_weight", "collapse_chunks": "retrieval.collapse_chunks",
    "strict_misspellings": "retrieval.strict_misspellings", "answers_follow_search": "retrieval.answers_follow_search",
    "reader_passages": "answer.reader_passages", "context_units": "answer.context_units",
    "unit_candidates": "answer.unit_candidates",
    "max_spans": "answer.max_spans", "grow_ratio": "answer.grow_ratio", "min_confidence": "answer.min_confidence",
    "source_confidence": "answer.source_confidence", "source_answers": "answer.source_answers",
    "unknown_drug_similarity": "answer.unknown_drug_similarity",
    "reader_model": "answer.reader_model", "reader_candidates": "answer.reader_candidates",
}


def _setting(settings: ServiceSettings, path: str) -> object:
    value: object = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def config_fingerprint(settings: ServiceSettings | None = None) -> str:
    """A hash of everything that decides the figures: ranking settings, ranker weights, synonyms, fusion defaults."""
    from qa_service.retrieval import ADAPTIVE_DEFAULTS, CONFIDENT_DEFAULTS

    settings = settings or ServiceSettings()
    fields = {key: str(_setting(settings, path)) for key, path in RANKING_FIELDS.items()}
    digest = hashlib.sha256()
    digest.update(json.dumps(fields, sort_keys=True).encode())
    digest.update(json.dumps(ADAPTIVE_DEFAULTS, sort_keys=True).encode())
    if settings.retrieval.fusion_confidence:
        digest.update(json.dumps(CONFIDENT_DEFAULTS, sort_keys=True).encode())
    digest.update(Path(settings.answer.ranker_model).read_bytes())
    digest.update(Path(settings.retrieval.synonyms_file).read_bytes())
    if settings.answer.reader_model is not None and (settings.answer.reader_model / "reader.json").exists():
        digest.update((settings.answer.reader_model / "reader.json").read_bytes())
    digest.update(json.dumps(PREVIOUS, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def print_table(result: dict) -> None:
    print(f"\n## {result['benchmark']}")
    for split, rows in result["metrics"].items():
        systems = [s for s in rows if s != "questions"]
        print(f"\n{split} ({rows['questions']['n']} questions)\n")
        print("| metric | " + " | ".join(systems) + " |")
        print("|---" * (len(systems) + 1) + "|")
        for key, label in LABELS.items():
            if any(key in rows[s] for s in systems):
                print(f"| {label} | " + " | ".join(f"{rows[s][key]:.3f}" if key in rows[s] else "" for s in systems) + " |")
    print(json.dumps(result["info"], indent=1))


LEAFLET_COUNT = 30
UNSEEN_COUNT = 5


def run_leaflets_benchmark(embedder: Embedder, baselines: bool = True, systems: Sequence[str] = SYSTEMS) -> dict:
    """Leaflets written to one template (eval/leaflets.py), asked by brand, generic and misspelt
    name: is every answer from the named medicine's own leaflet? Plain dense answers are the
    corpus's sentences by cosine alone, its passages its dense chunks. Out of scope: questions
    about medicines no leaflet covers (real ones, and invented ones left out of the corpus)."""
    import shutil

    from leaflets import OUT_OF_SCOPE, medicines, questions, write_corpus

    from qa_service.service import build_answerer

    meds = medicines(LEAFLET_COUNT + UNSEEN_COUNT)
    corpus, unseen = REPO / ".bench" / "leaflets-corpus", meds[LEAFLET_COUNT:]
    meds = meds[:LEAFLET_COUNT]
    shutil.rmtree(corpus, ignore_errors=True)
    write_corpus(corpus, meds)
    answerers = {}
    for system in systems:
        settings = service_settings(corpus, bench_index("leaflets"), system)
        IndexBuilder(settings, embedder).build()
        answerers[system] = build_answerer(settings, embedder)
    answerer = answerers["service"]

    def misspelt(text: str, name: str) -> str:
        i = len(name) // 2
        return text.replace(name, name[:i] + ("a" if name[i] != "a" else "e") + name[i + 1:])

    asked = {
        "brand": questions(meds),
        "generic": questions(meds, generic=True),
        "misspelt": [type(q)(misspelt(q.text, m.brand), q.doc_id, q.evidence, q.kind)
                     for m in meds for q in questions([m])],
    }
    Hits = tuple[list[bool], list[bool], list[str]]  # answers right, passages right, answer doc ids

    def service(q, answerer) -> Hits:  # noqa: ANN001
        response = answerer.ask(q.text, top_k=3)
        passages = answerer.search(q.text, k=10).results
        return ([a.citation.doc_id == q.doc_id and q.evidence in a.text for a in response.answers],
                [p.citation.doc_id == q.doc_id and q.evidence in p.text for p in passages],
                [a.citation.doc_id for a in response.answers])

    runs: dict[str, dict[str, list[Hits]]] = {}
    info: dict = {}
    for system, system_answerer in answerers.items():
        began = time.perf_counter()
        runs[system] = {split: [service(q, system_answerer) for q in qs] for split, qs in asked.items()}
        info[system] = {"ask_and_search_ms": round((time.perf_counter() - began) * 1000
                                                    / sum(len(qs) for qs in asked.values()), 1)}
    if baselines:
        plain = PlainBaselines(corpus, embedder)
        texts = {p.stem: p.read_text(encoding="utf-8") for p in corpus.glob("*.md")}
        bundle = answerer.bundle
        units = [(bundle.doc_ids[u["doc"]], bundle.documents[bundle.doc_ids[u["doc"]]].text[u["start"]:u["end"]])
                 for u in bundle.units]
        runs["dense"] = {}
        for split, qs in asked.items():
            dense = plain.dense_search([q.text for q in qs], 10)
            sims = embedder.embed([q.text for q in qs]) @ np.asarray(bundle.unit_vectors).T
            rows = []
            for q, ranked, row in zip(qs, dense, sims):
                top = [units[i] for i in np.argsort(-row)[:3]]
                rows.append(([d == q.doc_id and q.evidence in t for d, t in top],
                             [d == q.doc_id and q.evidence in texts[d][a:b] for d, a, b in ranked],
                             [d for d, _ in top]))
            runs["dense"][split] = rows
    out_of_scope = [*OUT_OF_SCOPE, *(q.text for q in questions(unseen))]
    declined = {system: [not a.ask(text).answered for text in out_of_scope] for system, a in answerers.items()}

    table: dict = {}
    for split in [*asked, "all"]:
        table[split] = {"questions": {"n": sum(len(v) for k, v in asked.items() if split in (k, "all"))}}
        for system, by_split in runs.items():
            rows = [r for k, v in by_split.items() if split in (k, "all") for r in v]
            own = [q.doc_id for k, qs in asked.items() if split in (k, "all") for q in qs]
            table[split][system] = {
                "answer_hit@1": sum(bool(a[:1]) and a[0] for a, _, _ in rows) / len(rows),
                "answer_hit@3": sum(any(a[:3]) for a, _, _ in rows) / len(rows),
                "passage_hit@3": sum(any(p[:3]) for _, p, _ in rows) / len(rows),
                "other_leaflet_answers": sum(any(d != o for d in docs) for (_, _, docs), o in zip(rows, own)) / len(rows),
            }
    for system, flags in declined.items():
        table["all"][system]["out_of_scope_declined"] = sum(flags) / len(flags)
    info.update({"leaflets": LEAFLET_COUNT, "out_of_scope": len(out_of_scope),
                 "note": "other_leaflet_answers: share of questions with any of the top 3 answers from another medicine's leaflet"})
    return {"benchmark": "leaflets", "notes": {}, "metrics": table, "info": info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", choices=["gold", "leaflets", *LOADERS, "all"], default="all")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench", help="Folder holding the benchmarks")
    parser.add_argument("--no-ask", action="store_true", help="Skip the answer-span run (retrieval only)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-previous", action="store_true",
                        help="Skip the configuration the shipped one replaces (PREVIOUS)")
    parser.add_argument("--out-dir", type=Path, default=None, help="Write each benchmark's figures as JSON here")
    args = parser.parse_args()
    names = ["gold", "leaflets", *LOADERS] if args.bench == "all" else [args.bench]
    systems = ("service",) if args.no_previous else SYSTEMS
    settings = ServiceSettings()
    # The backend QA_EMBED_BACKEND names, for the service's index and the plain baselines alike.
    embedder = make_encoder(settings.embed_model, settings.embed_backend, settings.embed_batch_size,
                            cache_dir=settings.encoder_cache_dir)
    for name in names:
        began = time.perf_counter()
        if name == "gold":
            result = run_gold_benchmark(embedder, baselines=not args.no_baselines, systems=systems)
        elif name == "leaflets":
            result = run_leaflets_benchmark(embedder, baselines=not args.no_baselines, systems=systems)
        else:
            folder = args.shared / name
            if not (folder / "qrels.jsonl").exists():
                sys.exit(f"error: no {name} benchmark at {folder} (pass --shared)")
            result = run_benchmark(LOADERS[name](folder), embedder, ask=not args.no_ask, baselines=not args.no_baselines,
                                   systems=systems)
        result["info"]["total_seconds"] = round(time.perf_counter() - began)
        result["config"] = config_fingerprint()
        print_table(result)
        if args.out_dir:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""``qa search`` runs and ``qa eval --qrels --run`` as a researcher runs them: real processes over the seed
index, real files; the scores checked against values worked out by hand."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from qa_service.answering import Answerer
from qa_service.results import parse_passage_id
from qa_service.settings import ServiceSettings
from qa_service.trec import TrecFormatError, judged_run, ranx_metric, read_qrels, read_run, read_topics, score_run
from tests.conftest import PYTHON, REPO, clean_env

QUERIES = {"q1": "how is an overdose treated", "q2": "maximum daily dose", "q3": "storage of the tablets"}


def qa(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "qa_service", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=clean_env())


def trec_run(path: Path) -> dict[str, list[list[str]]]:
    lines: dict[str, list[list[str]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        assert len(parts) == 6, line
        lines[parts[0]].append(parts)
    return lines


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("topics") / "topics.tsv"
    path.write_text("".join(f"{qid}\t{query}\n" for qid, query in QUERIES.items()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_file(seed_settings: ServiceSettings, topics: Path) -> Path:
    """The seed index's TREC run of the three topics, 20 passages each."""
    out = topics.parent / "run.trec"
    result = qa("search", "--topics", str(topics), "--index", str(seed_settings.index_dir), "--hits", "20",
                "--run-tag", "mine", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 queries" in result.stderr and "index " in result.stderr and "Traceback" not in result.stderr
    return out


def test_a_topics_tsv_gives_a_well_formed_trec_run(run_file: Path, answerer: Answerer) -> None:
    run = trec_run(run_file)
    assert list(run) == list(QUERIES)  # in the topics' order
    for qid, lines in run.items():
        assert 0 < len(lines) <= 20
        assert [int(parts[3]) for parts in lines] == list(range(1, len(lines) + 1))
        scores = [float(parts[4]) for parts in lines]
        assert scores == sorted(scores, reverse=True)
        assert {parts[1] for parts in lines} == {"Q0"} and {parts[5] for parts in lines} == {"mine"}
        ids = [parts[2] for parts in lines]
        assert len(set(ids)) == len(ids)
        for pid in ids:
            doc_id, start, end = parse_passage_id(pid)
            citation, text = answerer.quote(doc_id, start, end)  # what GET /v1/passages/{id} answers
            assert text and citation.start == start and citation.end == end


def test_a_run_is_the_single_query_search_and_jsonl_topics_give_jsonl(
    run_file: Path, seed_settings: ServiceSettings, tmp_path: Path, answerer: Answerer
) -> None:
    one = qa("search", QUERIES["q2"], "--index", str(seed_settings.index_dir), "--k", "20", "--json")
    assert one.returncode == 0, one.stderr
    body = json.loads(one.stdout)
    assert [r["passage_id"] for r in body["results"]] == [p[2] for p in trec_run(run_file)["q2"]]
    assert body["meta"]["index_version"] == answerer.index_version

    topics = tmp_path / "topics.jsonl"
    topics.write_text(json.dumps({"qid": "a", "query": "side effects"}) + "\n"
                      + json.dumps({"id": 7, "text": "how long does baclofen stay in the system"}) + "\n")
    out = tmp_path / "run.jsonl"
    result = qa("search", "--topics", str(topics), "--index", str(seed_settings.index_dir), "--hits", "5",
                "--output", str(out), "--filter", "section=Side effects")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["qid"] for r in rows] == ["a", "7"]
    assert rows[0]["results"], "a filter on a section the corpus has finds passages"
    for row in rows:
        assert [h["rank"] for h in row["results"]] == list(range(1, len(row["results"]) + 1))
        for hit in row["results"]:
            assert hit["citation"]["section"].casefold() == "side effects"
            _, text = answerer.quote(*parse_passage_id(hit["passage_id"]))
            assert hit["text"] == text
    assert read_run(out)["a"][0][0] == rows[0]["results"][0]["passage_id"]  # qa eval reads it back


def test_hits_go_up_to_1000_and_no_further(seed_settings: ServiceSettings, tmp_path: Path, answerer: Answerer) -> None:
    refused = qa("search", "dose", "--index", str(seed_settings.index_dir), "--hits", "1001")
    assert refused.returncode == 2 and "1000" in refused.stderr and "Traceback" not in refused.stderr
    topics = tmp_path / "t.tsv"
    topics.write_text("d\tdose\n", encoding="utf-8")
    out = tmp_path / "all.trec"
    every = qa("search", "--topics", str(topics), "--index", str(seed_settings.index_dir), "--hits", "1000",
               "--collapse", "none", "-o", str(out))
    assert every.returncode == 0, every.stderr
    assert len(trec_run(out)["d"]) == len(answerer.bundle.chunks)  # every chunk (89), none twice


@pytest.mark.parametrize(
    "args,message",
    [
        (["--topics", "{missing}"], "does not exist"),
        (["--topics", "{bad}"], "line 2: expected qid<TAB>query"),
        (["q", "--filter", "colour=red"], "invalid --filter"),
        (["q", "--output", "x.trec"], "--output and --format write a run of --topics"),
        ([], "give one query or --topics FILE"),
    ],
)
def test_search_bad_input_is_a_message(seed_settings: ServiceSettings, tmp_path: Path, args, message) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("q1\tfine\nno tab here\n", encoding="utf-8")
    args = [a.format(missing=tmp_path / "nope.tsv", bad=bad) for a in args]
    result = qa("search", *args, "--index", str(seed_settings.index_dir))
    assert result.returncode in (1, 2) and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def evaluate(qrels: Path, run: Path, *metrics: str, level: str | None = None) -> dict[str, float]:
    """What ``qa eval --qrels --run`` scores, in process (ranx's first call in a process costs seconds; the
    command itself is run by the test of a real run, which checks it prints these figures)."""
    return score_run(read_run(run), read_qrels(qrels), list(metrics), level or "auto").metrics


def evaluate_cli(qrels: Path, run: Path, *metrics: str, level: str | None = None) -> dict[str, float]:
    args = ["eval", "--qrels", str(qrels), "--run", str(run), "--json"]
    args += [a for m in metrics for a in ("-m", m)] + (["--level", level] if level else [])
    result = qa(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["metrics"]


def test_eval_scores_a_real_run_at_passage_and_document_level(run_file: Path, tmp_path: Path) -> None:
    run = trec_run(run_file)
    second = run["q1"][1][2]  # q1's passage at rank 2
    doc, start, end = parse_passage_id(second)
    # q1: a span inside its rank-2 passage; q2: a span of no document retrieved
    passage = write(tmp_path / "passage.qrels", [f"q1 0 {doc}:{start + 1}-{start + 5} 1", "q2 0 nowhere:0-10 1"])
    figures = evaluate_cli(passage, run_file, "recip_rank", "P.2", "success.1", "mrr@10", "recall.100")
    assert figures == evaluate(passage, run_file, "recip_rank", "P.2", "success.1", "mrr@10", "recall.100")
    assert figures == {"recip_rank": 0.25, "P.2": 0.25, "success.1": 0.0, "mrr@10": 0.25, "recall.100": 0.5}

    # document level: q1's relevant document is the one of its rank-2 passage; it is counted once, at the
    # rank of its first passage among the documents (passages of a document seen above are dropped)
    documents = list(dict.fromkeys(parse_passage_id(p[2])[0] for p in run["q1"]))
    assert doc in documents
    by_doc = write(tmp_path / "doc.qrels", [f"q1 0 {doc} 1"])
    assert evaluate(by_doc, run_file, "recip_rank")["recip_rank"] == pytest.approx(1 / (documents.index(doc) + 1))
    # the same passage qrels read at document level
    assert evaluate_cli(passage, run_file, "recip_rank", level="document")["recip_rank"] == pytest.approx(
        (1 / (documents.index(doc) + 1) + 0) / 2)


def test_eval_passage_level_counts_overlap_and_only_overlap(tmp_path: Path) -> None:
    run = write(tmp_path / "run.trec", [
        "q1 Q0 d1:0-100 1 3.0 t", "q1 Q0 d1:500-600 2 2.0 t", "q1 Q0 d2:0-100 3 1.0 t",
        "q2 Q0 d3:0-50 1 5.0 t", "q2 Q0 d3:60-90 2 4.0 t",
    ])
    # q1's span overlaps the rank-2 passage's end; q2's lies inside its rank-2 passage
    overlapping = write(tmp_path / "a.qrels", ["q1 0 d1:590-700 1", "q2 0 d3:80-85 1"])
    assert evaluate(overlapping, run, "recip_rank", "ndcg_cut.10") == pytest.approx(
        {"recip_rank": 0.5, "ndcg_cut.10": 1 / 1.5849625007211563})
    # touching is not overlapping: [600, 700) begins where d1:500-600 ends; d3:50-60 lies between two passages;
    # the same offsets in another document don't count
    apart = write(tmp_path / "b.qrels", ["q1 0 d1:600-700 1", "q2 0 d3:50-60 1", "q3 0 d2:500-600 1"])
    assert evaluate(apart, run, "recip_rank", "recall.100") == {"recip_rank": 0.0, "recall.100": 0.0}
    # a passage covering a span counts once: a second passage over the same span is no second hit
    twice = write(tmp_path / "twice.trec", ["q1 Q0 d1:0-100 1 2.0 t", "q1 Q0 d1:50-150 2 1.0 t"])
    one_span = write(tmp_path / "c.qrels", ["q1 0 d1:60-70 1", "q1 0 d1:400-500 1"])
    assert evaluate(one_span, twice, "recall.100", "P.2", "map") == {"recall.100": 0.5, "P.2": 0.5, "map": 0.5}


def test_eval_document_level_counts_each_document_once_at_its_best_rank(tmp_path: Path) -> None:
    run = write(tmp_path / "run.trec", [
        "q1 Q0 d1:0-100 1 4.0 t", "q1 Q0 d1:200-300 2 3.0 t", "q1 Q0 d2:0-100 3 2.0 t", "q1 Q0 d2:300-400 4 1.0 t",
    ])
    qrels = write(tmp_path / "d.qrels", ["q1 0 d2 1", "q1 0 d9 1"])
    # documents d1, d2: d2 at rank 2 (not 3); P.2 = 1/2; recall: 1 of 2 relevant documents
    assert evaluate(qrels, run, "recip_rank", "P.2", "recall.100") == {"recip_rank": 0.5, "P.2": 0.5,
                                                                      "recall.100": 0.5}


def test_eval_orders_a_run_by_score_not_by_line(tmp_path: Path) -> None:
    run = write(tmp_path / "run.trec", ["q1 Q0 a 1 1.0 t", "q1 Q0 b 2 9.0 t"])
    qrels = write(tmp_path / "q.qrels", ["q1 0 a 1"])
    assert evaluate(qrels, run, "recip_rank") == {"recip_rank": 0.5}


@pytest.mark.parametrize(
    "qrels_lines,run_lines,metric,message",
    [
        (["q1 0 d 1"], ["q1 Q0 d 1 1.0 t"], "ndcg_at_10", "unknown metric 'ndcg_at_10'"),
        (None, ["q1 Q0 d 1 1.0 t"], "map", "does not exist"),
        (["q1 0 d 1"], None, "map", "does not exist"),
        (["q1 0 d"], ["q1 Q0 d 1 1.0 t"], "map", "line 1: a qrels line has 4 columns"),
        (["q1 0 d 1"], ["q1 Q0 d 1 x t"], "map", "line 1: the rank '1' or the score 'x' is not a number"),
        (["q1 0 d 1"], ["q1 Q0 d 1 1.0 t", "q1 Q0 d 2 0.5 t"], "map", "line 2: d is retrieved twice"),
        (["q1 0 d:0-5 1", "q1 0 e 1"], ["q1 Q0 d 1 1.0 t"], "map", "mix passage ids"),
        (["q1 0 d 0"], ["q1 Q0 d 1 1.0 t"], "map", "no query of the qrels has a relevant item"),
    ],
)
def test_eval_bad_files_and_metrics_exit_1_with_a_message(tmp_path: Path, qrels_lines, run_lines, metric,
                                                          message) -> None:
    qrels = write(tmp_path / "q.qrels", qrels_lines) if qrels_lines else tmp_path / "missing.qrels"
    run = write(tmp_path / "r.trec", run_lines) if run_lines else tmp_path / "missing.trec"
    result = qa("eval", "--qrels", str(qrels), "--run", str(run), "-m", metric)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_eval_of_a_run_takes_both_files_and_not_the_gold_options(tmp_path: Path) -> None:
    qrels = write(tmp_path / "q.qrels", ["q1 0 d 1"])
    alone = qa("eval", "--qrels", str(qrels))
    assert alone.returncode == 2 and "--qrels FILE and --run FILE" in alone.stderr
    mixed = qa("eval", "--qrels", str(qrels), "--run", str(qrels), "--write-floors")
    assert mixed.returncode == 2 and "--write-floors" in mixed.stderr


def test_trec_eval_names_map_to_ranx() -> None:
    assert [ranx_metric(m) for m in ("recip_rank", "ndcg_cut.10", "ndcg_cut_10", "recall.100", "map", "P.5",
                                     "P_5", "success.1", "map_cut.10", "Rprec", "mrr@10", "hit_rate@3")] == [
        "mrr", "ndcg@10", "ndcg@10", "recall@100", "map", "precision@5", "precision@5", "hit_rate@1", "map@10",
        "r-precision", "mrr@10", "hit_rate@3"]
    for bad in ("P", "P.0", "ndcg_cut", "recip", "mrr@", "foo@3"):
        with pytest.raises(ValueError, match="unknown metric"):
            ranx_metric(bad)


def test_topics_and_run_files_in_process(tmp_path: Path) -> None:
    topics = write(tmp_path / "t.tsv", ["# a comment", "1\tfirst query", "", "2\tsecond\twith a tab"])
    assert [(t.qid, t.query) for t in read_topics(topics)] == [("1", "first query"), ("2", "second\twith a tab")]
    with pytest.raises(TrecFormatError, match="repeated"):
        read_topics(write(tmp_path / "r.tsv", ["1\ta", "1\tb"]))
    with pytest.raises(TrecFormatError, match="holds no topics"):
        read_topics(write(tmp_path / "e.tsv", [""]))
    run = {"q": [("d:0-10", 2.0, 1), ("d:5-20", 1.0, 2), ("e:0-10", 0.5, 3)]}
    qrels = read_qrels(write(tmp_path / "q.qrels", ["q 0 d:8-12 2", "q 0 d:15-16 1"]))
    judged, ranked = judged_run(run, qrels, "passage")
    # the first passage takes the best-graded span it overlaps; the second the span left to it
    assert list(ranked["q"]) == ["d:8-12", "d:15-16", "e:0-10"] and judged == {"q": {"d:8-12": 2, "d:15-16": 1}}
    assert score_run(run, qrels, ["recall.100"]).metrics == {"recall.100": 1.0}

"""Runs, topics and qrels as IR research tools write them, and a run scored with ranx.

- **Topics**: ``qid<TAB>query`` lines (TSV), or JSON lines ``{"qid", "query"}`` (``id``/``query_id``
  and ``text``/``question`` are read too).
- **Runs**: TREC (``qid Q0 docno rank score tag``, one retrieved passage a line, ``docno`` the
  passage id ``doc_id:start-end``), or the JSON lines ``qa search --format jsonl`` writes (one query a line).
- **Qrels**: TREC (``qid iter docno rel``). A ``docno`` that is a passage id (``doc:start-end``) is a
  relevant *span*: a retrieved passage is judged by it when it overlaps it (or contains it, or lies
  in it) in the same document. Any other ``docno`` is a *document*: a retrieved passage is judged by
  its document.

Scoring turns the run into what ranx scores, then calls ``ranx.evaluate``:

- **passage level**: each retrieved passage takes the name of the best-graded span it overlaps that
  no passage ranked above it took; other passages keep their own ids (unjudged, not relevant) and
  their rank, so a span is found once, at its best rank, and a second passage over it is a miss.
- **document level**: each retrieved passage stands for its document; a document is counted once,
  at its best rank (the passages below it of the same document are dropped, as a document run
  would list it once). Span qrels are read as their document's (the highest grade of its spans).

A run is scored in its own order: by score, descending, ties in the file's rank order (trec_eval
breaks them by docno instead; ``qa search`` writes none out of order). Queries of the qrels with
no relevant item are left out (as trec_eval does); those with relevant items that the run lacks
score 0 (as ``trec_eval -c``).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .results import parse_passage_id


class TrecFormatError(ValueError):
    """A topics, run or qrels file that can't be read; the message names the file and line."""


@dataclass(frozen=True)
class Topic:
    qid: str
    query: str


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrecFormatError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise TrecFormatError(f"{path} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise TrecFormatError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise TrecFormatError(f"{path} can't be read: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _is_jsonl(path: Path, first: str | None) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson") or (first or "").lstrip().startswith("{")


_QID_KEYS = ("qid", "id", "query_id", "_id")
_QUERY_KEYS = ("query", "text", "question")


def read_topics(path: Path) -> list[Topic]:
    """The topics of a TSV or JSON-lines file, in file order (a repeated qid is an error)."""
    lines = list(_lines(path))
    jsonl = _is_jsonl(path, lines[0][1] if lines else None)
    topics: list[Topic] = []
    seen: set[str] = set()
    for number, line in lines:
        where = f"{path} line {number}"
        if jsonl:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrecFormatError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise TrecFormatError(f"{where}: a topic is a JSON object with a qid and a query")
            qid = next((row[k] for k in _QID_KEYS if k in row), None)
            query = next((row[k] for k in _QUERY_KEYS if k in row), None)
            if qid is None or not isinstance(query, str):
                raise TrecFormatError(f"{where}: a topic needs \"qid\" and \"query\" (a string)")
            qid = str(qid)
        else:
            if line.startswith("#"):
                continue
            if "\t" not in line:
                raise TrecFormatError(f"{where}: expected qid<TAB>query")
            qid, query = line.split("\t", 1)
        qid, query = qid.strip(), query.strip()
        if not qid or any(c.isspace() for c in qid):
            raise TrecFormatError(f"{where}: the qid {qid!r} is empty or holds white space (a TREC run can't)")
        if not query:
            raise TrecFormatError(f"{where}: the query of {qid} is empty")
        if qid in seen:
            raise TrecFormatError(f"{where}: the qid {qid} is repeated")
        seen.add(qid)
        topics.append(Topic(qid, query))
    if not topics:
        raise TrecFormatError(f"{path} holds no topics")
    return topics


def trec_lines(qid: str, passage_ids: list[str], scores: list[float], tag: str, first: int = 1) -> list[str]:
    """One query's lines of a TREC run: ranks from ``first`` (1 unless paged), in the order given (best first)."""
    return [f"{qid} Q0 {pid} {rank} {score:.6f} {tag}"
            for rank, (pid, score) in enumerate(zip(passage_ids, scores, strict=True), start=first)]


Ranked = dict[str, list[tuple[str, float, int]]]
"""qid -> [(docno, score, rank)], in file order."""


def read_run(path: Path) -> Ranked:
    """A TREC run or ``qa search``'s JSON lines: each query's retrieved items."""
    lines = list(_lines(path))
    if not lines:
        raise TrecFormatError(f"{path} holds no results")
    run: Ranked = {}
    seen: dict[str, set[str]] = {}

    def add(qid: str, docno: str, score: float, rank: int, where: str) -> None:
        if docno in seen.setdefault(qid, set()):
            raise TrecFormatError(f"{where}: {docno} is retrieved twice for query {qid}")
        if not math.isfinite(score):
            raise TrecFormatError(f"{where}: the score {score} is not a finite number")
        seen[qid].add(docno)
        run.setdefault(qid, []).append((docno, score, rank))

    if _is_jsonl(path, lines[0][1]):
        for number, line in lines:
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
                qid = str(row["qid"])
                for i, hit in enumerate(row["results"], start=1):
                    add(qid, str(hit["passage_id"]), float(hit["score"]), int(hit.get("rank", i)), where)
            except json.JSONDecodeError as exc:
                raise TrecFormatError(f"{where}: not JSON ({exc.msg})") from None
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, TrecFormatError):
                    raise
                raise TrecFormatError(
                    f"{where}: expected {{\"qid\", \"results\": [{{\"passage_id\", \"score\"}}]}} ({exc!r})"
                ) from None
            run.setdefault(qid, [])
        return run
    for number, line in lines:
        where = f"{path} line {number}"
        parts = line.split()
        if len(parts) != 6:
            raise TrecFormatError(f"{where}: a TREC run line has 6 columns (qid Q0 docno rank score tag), "
                                  f"this one {len(parts)}")
        qid, _, docno, rank, score, _ = parts
        try:
            add(qid, docno, float(score), int(rank), where)
        except ValueError as exc:
            if isinstance(exc, TrecFormatError):
                raise
            raise TrecFormatError(f"{where}: the rank {rank!r} or the score {score!r} is not a number") from None
    return run


@dataclass(frozen=True)
class Judgement:
    docno: str
    grade: int
    span: tuple[str, int, int] | None
    """(doc_id, start, end) when the docno is a passage id."""


Qrels = dict[str, list[Judgement]]


def _span(docno: str) -> tuple[str, int, int] | None:
    try:
        return parse_passage_id(docno)
    except ValueError:
        return None


def read_qrels(path: Path) -> Qrels:
    """A TREC qrels file: each query's judgements."""
    qrels: Qrels = {}
    seen: set[tuple[str, str]] = set()
    for number, line in _lines(path):
        where = f"{path} line {number}"
        parts = line.split()
        if len(parts) != 4:
            raise TrecFormatError(f"{where}: a qrels line has 4 columns (qid iter docno relevance), "
                                  f"this one {len(parts)}")
        qid, _, docno, grade = parts
        try:
            value = int(grade)
        except ValueError:
            raise TrecFormatError(f"{where}: the relevance {grade!r} is not a whole number") from None
        if (qid, docno) in seen:
            raise TrecFormatError(f"{where}: {docno} is judged twice for query {qid}")
        seen.add((qid, docno))
        qrels.setdefault(qid, []).append(Judgement(docno, value, _span(docno)))
    if not qrels:
        raise TrecFormatError(f"{path} holds no judgements")
    return qrels


LEVELS = ("auto", "passage", "document")


def qrels_level(qrels: Qrels) -> str:
    """``passage`` when every docno is a passage id, ``document`` when none is."""
    spans = {j.span is not None for judged in qrels.values() for j in judged}
    if spans == {True}:
        return "passage"
    if spans == {False}:
        return "document"
    raise TrecFormatError("the qrels mix passage ids (doc:start-end) and document ids: pass --level passage or document")


TREC_EVAL_NAMES = {"recip_rank": "mrr", "map": "map", "ndcg": "ndcg", "Rprec": "r-precision", "bpref": "bpref"}
TREC_EVAL_CUT = {"P": "precision", "recall": "recall", "ndcg_cut": "ndcg", "map_cut": "map", "success": "hit_rate"}
RANX_METRICS = ("hits", "hit_rate", "precision", "recall", "f1", "r-precision", "mrr", "map", "dcg", "dcg_burges",
                "ndcg", "ndcg_burges", "bpref")


def ranx_metric(name: str) -> str:
    """The ranx name of a trec_eval measure (``recip_rank``, ``ndcg_cut.10`` or ``ndcg_cut_10``, ``P.5``,
    ``recall.100``, ``map``, ``success.1``...) or of a ranx one given as such (``mrr@10``)."""
    if name in TREC_EVAL_NAMES:
        return TREC_EVAL_NAMES[name]
    cut = re.fullmatch(r"([A-Za-z_]+?)[._](\d+)", name)
    if cut and cut.group(1) in TREC_EVAL_CUT and int(cut.group(2)) > 0:
        return f"{TREC_EVAL_CUT[cut.group(1)]}@{int(cut.group(2))}"
    ranx = re.fullmatch(r"([a-z_-]+)(?:@(\d+))?", name)
    if ranx and ranx.group(1) in RANX_METRICS and (ranx.group(2) is None or int(ranx.group(2)) > 0):
        return name
    raise ValueError(
        f"unknown metric {name!r}: trec_eval names ({', '.join(TREC_EVAL_NAMES)}, "
        f"{', '.join(k + '.N' for k in TREC_EVAL_CUT)}) or ranx ones ({', '.join(RANX_METRICS)}, with @N)"
    )


def _ordered(items: list[tuple[str, float, int]]) -> list[str]:
    """The docnos by score, descending; ties in rank order, then file order."""
    indexed = sorted(enumerate(items), key=lambda e: (-e[1][1], e[1][2], e[0]))
    return [item[0] for _, item in indexed]


def _overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def _document(docno: str) -> str:
    span = _span(docno)
    return span[0] if span else docno


def judged_run(run: Ranked, qrels: Qrels, level: str) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """The qrels and run ranx scores: retrieved passages named by the judgement each one meets (see the
    module's notes), scores their position from the bottom (so ranx keeps the run's order)."""
    if level == "auto":
        level = qrels_level(qrels)
    out_qrels: dict[str, dict[str, int]] = {}
    out_run: dict[str, dict[str, float]] = {}
    for qid, judged in qrels.items():
        if level == "document":
            grades: dict[str, int] = {}
            for j in judged:
                doc = _document(j.docno)
                grades[doc] = max(grades.get(doc, j.grade), j.grade)
            if not any(g > 0 for g in grades.values()):
                continue
            out_qrels[qid] = grades
            docs = list(dict.fromkeys(_document(d) for d in _ordered(run.get(qid, []))))
            out_run[qid] = {d: float(len(docs) - i) for i, d in enumerate(docs)}
            continue
        if any(j.span is None for j in judged):
            raise TrecFormatError(f"query {qid}: passage level needs every qrels docno to be a passage id (doc:start-end)")
        if not any(j.grade > 0 for j in judged):
            continue
        out_qrels[qid] = {j.docno: j.grade for j in judged}
        ordered = _ordered(run.get(qid, []))
        taken: set[str] = set()
        named: dict[str, float] = {}
        for position, docno in enumerate(ordered):
            span = _span(docno)
            met = [j for j in judged if j.docno not in taken and span is not None and _overlaps(span, j.span)]
            key = max(met, key=lambda j: j.grade).docno if met else docno
            if met:
                taken.add(key)
            elif key in out_qrels[qid] or key in named:  # a judged span's own id, already found above
                key = f"{docno}#{position + 1}"
            named[key] = float(len(ordered) - position)
        out_run[qid] = named
    return out_qrels, out_run


@dataclass
class RunScores:
    metrics: dict[str, float]
    level: str
    queries: int
    """Queries scored: those of the qrels with a relevant item."""
    missing: int
    """Of them, those the run retrieved nothing for (scored 0)."""
    unjudged: int
    """Queries of the run the qrels don't judge (left out)."""


def score_run(run: Ranked, qrels: Qrels, metrics: list[str], level: str = "auto") -> RunScores:
    """``metrics`` (as given: trec_eval or ranx names) of ``run`` against ``qrels`` with ranx."""
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    names = {m: ranx_metric(m) for m in metrics}
    chosen = qrels_level(qrels) if level == "auto" else level
    judged, ranked = judged_run(run, qrels, chosen)
    if not judged:
        raise TrecFormatError("no query of the qrels has a relevant item")
    missing = sum(1 for qid in judged if not ranked.get(qid))
    # ranx wants every query to hold an item: a query the run lacks holds one no judgement names
    ranked = {qid: ranked.get(qid) or {"__nothing_retrieved__": 0.0} for qid in judged}
    wanted = list(dict.fromkeys(names.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = evaluate(RanxQrels(judged), RanxRun(ranked), wanted)
    if len(wanted) == 1:
        values = {wanted[0]: values}
    return RunScores(
        metrics={m: float(values[r]) for m, r in names.items()},
        level=chosen,
        queries=len(judged),
        missing=missing,
        unjudged=len(set(run) - set(qrels)),
    )

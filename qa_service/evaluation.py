"""Gold-set evaluation: answer-span and passage hits, MRR, and abstention rates.

A gold line is ``{"id", "question", "answerable", "evidence": [str], "docs": [str], "split"}``.
An answer or passage is a hit when it contains one of the evidence strings
(compared case-insensitively with white space folded). Ranking metrics come
from ranx; the abstention rates are plain shares.
"""

from __future__ import annotations

import dataclasses

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from .answering import Answerer


class GoldQuestion(BaseModel):
    id: str
    question: str
    answerable: bool
    evidence: list[str] = []
    docs: list[str] = []
    split: str = "tune"
    topic: str | None = None


def load_gold(path: Path) -> list[GoldQuestion]:
    with open(path, encoding="utf-8") as handle:
        return [GoldQuestion.model_validate_json(line) for line in handle if line.strip()]


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def contains_evidence(text: str, evidence: list[str]) -> bool:
    folded = _fold(text)
    return any(_fold(e) in folded for e in evidence)


@dataclass
class QuestionResult:
    question: GoldQuestion
    answered: bool
    answer_hits: list[bool]
    passage_hits: list[bool]
    answers: list[dict] = field(default_factory=list)
    sources: dict[str, bool] | None = None
    """For a question several documents answer: whether each one's words are among the answers."""
    other_source: bool | None = None
    """For a question one document answers: whether an answer came from another one (which is silent on it)."""


METRICS = (
    "answer_hit@1",
    "answer_hit@3",
    "answer_mrr",
    "passage_hit@3",
    "passage_mrr@10",
    "unanswerable_declined",
    "answerable_declined",
    "sources_heard",
    "other_source_shown",
)


def _ranking_metrics(results: list[QuestionResult], attr: str, metrics: list[str]) -> dict[str, float]:
    from ranx import Qrels, Run, evaluate

    qrels, run = {}, {}
    for r in results:
        hits = getattr(r, attr)
        qid = r.question.id
        # "__gold__" is never retrieved: it keeps every query judged even with no hit.
        qrels[qid] = {"__gold__": 1, **{f"r{i}": 1 for i, hit in enumerate(hits) if hit}}
        run[qid] = {f"r{i}": float(len(hits) - i) for i in range(len(hits))} or {"__none__": 0.0}
    if not qrels:
        return {m: float("nan") for m in metrics}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = evaluate(Qrels(qrels), Run(run), metrics)
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    return {m: float(v) for m, v in scores.items()}


def summarize(results: list[QuestionResult]) -> dict[str, float]:
    answerable = [r for r in results if r.question.answerable]
    unanswerable = [r for r in results if not r.question.answerable]
    answer = _ranking_metrics(answerable, "answer_hits", ["hit_rate@1", "hit_rate@3", "mrr"])
    passage = _ranking_metrics(answerable, "passage_hits", ["hit_rate@3", "mrr@10"])
    several = [r for r in answerable if r.sources is not None]
    single = [r for r in answerable if r.other_source is not None]
    share = lambda items, pred: sum(map(pred, items)) / len(items) if items else float("nan")  # noqa: E731
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "several_sources": len(several),
        "single_source": len(single),
        "answer_hit@1": answer["hit_rate@1"],
        "answer_hit@3": answer["hit_rate@3"],
        "answer_mrr": answer["mrr"],
        "passage_hit@3": passage["hit_rate@3"],
        "passage_mrr@10": passage["mrr@10"],
        "unanswerable_declined": share(unanswerable, lambda r: not r.answered),
        "answerable_declined": share(answerable, lambda r: not r.answered),
        "sources_heard": share(several, lambda r: all(r.sources.values())),
        "other_source_shown": share(single, lambda r: r.other_source),
    }


def run_gold(answerer: Answerer, gold: list[GoldQuestion], top_k: int = 5) -> list[QuestionResult]:
    results = []
    for q in gold:
        response = answerer.ask(q.question, top_k=top_k)
        passages = answerer.search(q.question, k=10).results
        sources = None
        if q.answerable and len(q.docs) > 1:
            texts = {d: _fold(answerer.bundle.documents[d].text) for d in q.docs if d in answerer.bundle.documents}
            own = {d: [e for e in q.evidence if _fold(e) in text] for d, text in texts.items()}
            sources = {
                d: any(a.citation.doc_id == d and contains_evidence(a.text, own[d]) for a in response.answers)
                for d in own if own[d]
            }
            sources = sources if len(sources) > 1 else None
        other_source = None
        if q.answerable and len(q.docs) == 1 and response.answered:
            other_source = any(a.citation.doc_id not in q.docs for a in response.answers)
        results.append(
            QuestionResult(
                question=q,
                answered=response.answered,
                answer_hits=[contains_evidence(a.text, q.evidence) for a in response.answers],
                passage_hits=[contains_evidence(p.text, q.evidence) for p in passages],
                answers=[dataclasses.asdict(a) for a in response.answers],
                sources=sources,
                other_source=other_source,
            )
        )
    return results


def report(results: list[QuestionResult]) -> dict[str, dict[str, float]]:
    """Metrics for each split and for all questions together."""
    splits = sorted({r.question.split for r in results})
    table = {split: summarize([r for r in results if r.question.split == split]) for split in splits}
    table["all"] = summarize(results)
    return table


def first_hit(hits: list[bool]) -> int | None:
    """Rank (from 1) of the first hit, or None."""
    return next((i + 1 for i, hit in enumerate(hits) if hit), None)


class Outcome(BaseModel):
    """One question's result as the floors remember it."""

    id: str
    split: str
    answered: bool
    answer_rank: int | None
    passage_rank: int | None

    @classmethod
    def of(cls, result: QuestionResult) -> Outcome:
        return cls(
            id=result.question.id,
            split=result.question.split,
            answered=result.answered,
            answer_rank=first_hit(result.answer_hits),
            passage_rank=first_hit(result.passage_hits),
        )


class Floors(BaseModel):
    """Quality floors per split, each a stated number of questions under the figures
    of the run that set them; ``baseline`` is that run's outcome per question, so a
    breach can name the questions that changed."""

    comment: str = (
        "Set by `qa eval --write-floors` (held-out on its own, and all questions). `qa eval` and "
        "tests/qa_service/test_evaluation.py fail past them and name the questions that changed."
    )
    margin_questions: int
    floors: dict[str, dict[str, float]]
    """split -> metric -> floor (a ceiling for ``answerable_declined``)."""
    baseline: list[Outcome]

    @classmethod
    def load(cls, path: Path) -> Floors:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_results(cls, results: list[QuestionResult], splits: list[str], margin_questions: int = 2) -> Floors:
        table = report(results)
        floors: dict[str, dict[str, float]] = {}
        for split in splits:
            row = table[split]
            floors[split] = {}
            for metric in METRICS:
                n = {"unanswerable_declined": row["unanswerable"], "sources_heard": row["several_sources"],
                     "other_source_shown": row["single_source"]}.get(
                    metric, row["answerable"]
                )
                if not n:
                    continue
                slack = margin_questions / n
                value = row[metric] + slack if metric in CEILINGS else row[metric] - slack
                floors[split][metric] = round(min(1.0, max(0.0, value)), 3)
        return cls(margin_questions=margin_questions, floors=floors, baseline=[Outcome.of(r) for r in results])

    def breaches(self, table: dict[str, dict[str, float]]) -> list[str]:
        """Each metric of ``table`` past its floor, in words ('' when all hold)."""
        found = []
        for split, metrics in self.floors.items():
            for metric, bound in metrics.items():
                value = table.get(split, {}).get(metric)
                if value is None:
                    found.append(f"{split} {metric}: not measured (floor {bound:.3f})")
                elif metric in CEILINGS and value > bound:
                    found.append(f"{split} {metric} rose to {value:.3f} (ceiling {bound:.3f})")
                elif metric not in CEILINGS and value < bound:
                    found.append(f"{split} {metric} fell to {value:.3f} (floor {bound:.3f})")
        return found

    def changes(self, results: list[QuestionResult]) -> list[str]:
        """The questions whose outcome differs from the baseline run, one line each."""
        before = {o.id: o for o in self.baseline}
        lines = []
        for result in results:
            now = Outcome.of(result)
            then = before.get(now.id)
            if then is None:
                lines.append(f"{now.id} [{now.split}] is new: {_describe_outcome(now)}")
            elif (then.answered, then.answer_rank, then.passage_rank) != (now.answered, now.answer_rank, now.passage_rank):
                lines.append(
                    f"{now.id} [{now.split}] {result.question.question!r}: "
                    f"{_describe_outcome(then)} -> {_describe_outcome(now)}"
                )
        return lines


CEILINGS = frozenset({"answerable_declined", "other_source_shown"})
"""Metrics where lower is better: their bound is a ceiling."""


def _describe_outcome(outcome: Outcome) -> str:
    if not outcome.answered:
        return "declined"
    answer = f"answer #{outcome.answer_rank}" if outcome.answer_rank else "no right answer"
    passage = f"passage #{outcome.passage_rank}" if outcome.passage_rank else "no right passage"
    return f"{answer}, {passage}"


def dump_results(results: list[QuestionResult], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for r in results:
            handle.write(
                json.dumps(
                    {
                        "id": r.question.id,
                        "question": r.question.question,
                        "answerable": r.question.answerable,
                        "answered": r.answered,
                        "answer_hits": r.answer_hits,
                        "passage_hits": r.passage_hits,
                        "answers": [{"text": a["text"], "score": a["score"]} for a in r.answers],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )

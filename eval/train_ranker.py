"""Fit the answer ranker on the dev splits and choose the abstention threshold.

    python eval/train_ranker.py [--shared ../shared/bench] [--write]

Training rows are the candidate units the service reads for each question
(``Answerer.read``: the units of the passages retrieval found and of the
corpus-wide unit search), with the features of ``qa_service/ranking.py``.
Labels: on the gold set's tune split, a unit is right when it overlaps an
occurrence of one of the question's evidence strings (every unit of an
unanswerable question is wrong); on COVID-QA's dev split, when it overlaps the
gold answer span; on generated template leaflets (eval/leaflets.py, other
medicines and other wordings than the benchmark's), when it overlaps the
answering sentence of the medicine's own leaflet. The sets weigh the same in the fit. The model is a
logistic regression on standardised features (scikit-learn), so its output is
a probability: it ranks the answers and is the confidence abstention uses.

With --write the model replaces qa_service/data/ranker.json. The threshold
table shows, on the tune split, the share of unanswerable questions declined
and of answerable ones wrongly declined at each confidence threshold.
Held-out and test splits are never read here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import REPO, build_service, load_covidqa  # noqa: E402

from sklearn.linear_model import LogisticRegression  # noqa: E402

from ingest.build import IndexBuilder  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.evaluation import load_gold  # noqa: E402
from qa_service.ranking import FEATURES, AnswerRanker, ReadingModel  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

THRESHOLDS = [0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]


def evidence_ranges(text: str, evidence: list[str]) -> list[tuple[int, int]]:
    """Where each evidence string occurs in ``text`` (case and white space folded)."""
    ranges = []
    for item in evidence:
        pattern = r"\s+".join(re.escape(word) for word in item.split())
        ranges += [(m.start(), m.end()) for m in re.finditer(pattern, text, flags=re.IGNORECASE)]
    return ranges


FIT_READ = 30
"""Candidates the reader reads while the reading model is fitted."""
READ_COLUMNS = 3
"""Rows of the reading model: (ranker logit, reader logit, absent)."""


def rows_for(answerer: Answerer, question: str, label, reading_rows: list | None = None  # noqa: ANN001
             ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Feature rows and labels of one question's candidates; whether it was declined by rule.
    With ``reading_rows``, the candidates the reader read are appended to it as (rows, labels)."""
    reading = answerer.read(question)
    if reading.candidates is None:
        if reading_rows is not None:
            reading_rows.append((np.zeros((0, READ_COLUMNS)), np.zeros(0)))
        return np.zeros((0, len(FEATURES))), np.zeros(0), True
    bundle = answerer.bundle
    labels = []
    for row in reading.candidates.rows.tolist():
        unit = bundle.units[row]
        labels.append(label(bundle.doc_ids[unit["doc"]], int(unit["start"]), int(unit["end"])))
    y = np.array(labels, dtype=float)
    if reading_rows is not None:
        if reading.reader_logits is None:
            raise SystemExit("error: no reader to fit the reading model for (QA_ANSWER__READER_MODEL is empty)")
        read = np.flatnonzero(~np.isnan(reading.reader_logits))
        absent = reading.candidates.features[read, FEATURES.index("absent")]
        reading_rows.append((np.column_stack([reading.ranker_logits[read], reading.reader_logits[read], absent]),
                             y[read]))
    return reading.candidates.features, y, False


def fit_reading(sets: dict[str, list], gold_answerable: list[bool], reader: str) -> ReadingModel:
    """The reading model: weights of (ranker logit, reader score) that put each question's right read
    candidate first (a softmax over the question's read candidates, the likelihood of the right ones;
    every set weighs the same), then calibrated on the gold tune split's five best read candidates a
    question, where the questions the documents don't answer are, with the share of absent words."""
    from scipy.optimize import minimize

    groups = []
    for items in sets.values():
        usable = [(X[:, :2], y) for X, y in items if len(y) and y.any() and not y.all()]
        groups += [(X, y, 1.0 / max(len(usable), 1)) for X, y in usable]

    def loss(w: np.ndarray) -> float:
        total = 0.0
        for X, y, weight in groups:
            z = X @ w
            top = z.max()
            total -= weight * (np.log(np.exp(z[y > 0] - top).sum()) - np.log(np.exp(z - top).sum()))
        return total + 1e-3 * float(w @ w)

    w = minimize(loss, np.array([1.0, 1.0]), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6}).x
    cal_X, cal_y = [], []
    for (X_, y_), answerable in zip(sets["gold"], gold_answerable):
        if not len(X_):
            continue
        z = X_[:, :2] @ w
        for i in np.argsort(-z)[:5]:
            cal_X.append([z[i], X_[i, 2]])
            cal_y.append(y_[i] if answerable else 0.0)
    cal = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(cal_X), np.array(cal_y))
    a, b = float(cal.coef_[0][0]), float(cal.coef_[0][1])
    return ReadingModel(np.array([a * w[0], a * w[1], b]), float(cal.intercept_[0]), reader)


def fit_one(shipped: AnswerRanker, feature: str, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> AnswerRanker:
    """The shipped model with one feature's weight (and the intercept) fitted by weighted
    log-loss, every other weight held: a feature added to a fitted ranker, learned without
    refitting what the other features already do well."""
    from scipy.optimize import minimize

    i = FEATURES.index(feature)
    mean, scale = shipped.mean.copy(), shipped.scale.copy()
    mean[i], scale[i] = X[:, i].mean(), (X[:, i].std() or 1.0)
    base = shipped.logit(X) - ((X[:, i] - shipped.mean[i]) / shipped.scale[i]) * shipped.coef[i]
    z = (X[:, i] - mean[i]) / scale[i]

    def loss(params: np.ndarray) -> float:
        logit = base + params[0] * z + params[1]
        return float(np.sum(w * (np.logaddexp(0.0, logit) - y * logit)))

    fitted = minimize(loss, np.zeros(2), method="Nelder-Mead").x
    coef = shipped.coef.copy()
    coef[i] = fitted[0]
    return AnswerRanker(mean, scale, coef, shipped.intercept + float(fitted[1]))


def leaflet_rows(embedder: Embedder, reading_rows: list | None = None, answer=None  # noqa: ANN001
                 ) -> list[tuple[np.ndarray, np.ndarray, bool, bool]]:
    """Template leaflets of other medicines, asked in other wordings than the benchmark's
    (eval/leaflets.py DEV_SEED, DEV_QUESTIONS): a unit is right when it overlaps the
    answering sentence in the medicine's own leaflet. Where sections share their headings
    across documents, the heading is what tells the overdose advice from the missed-dose one."""
    import shutil

    from leaflets import DEV_QUESTIONS, DEV_SEED, medicines, questions, write_corpus

    corpus = REPO / ".bench" / "leaflets-dev-corpus"
    meds = medicines(30, seed=DEV_SEED)
    shutil.rmtree(corpus, ignore_errors=True)
    write_corpus(corpus, meds)
    settings = ServiceSettings(corpus_dir=corpus, index_dir=REPO / ".bench" / "leaflets-dev-index")
    if answer is not None:
        settings = settings.model_copy(update={"answer": answer})
    IndexBuilder(settings, embedder).build()
    answerer = build_answerer(settings, embedder)
    out = []
    for q in questions(meds, wordings=DEV_QUESTIONS):
        ranges = evidence_ranges(answerer.bundle.documents[q.doc_id].text, [q.evidence])

        def label(doc_id: str, start: int, end: int, ranges=ranges, own=q.doc_id) -> bool:  # noqa: ANN001
            return doc_id == own and any(a < end and start < b for a, b in ranges)

        out.append((*rows_for(answerer, q.text, label, reading_rows)[:2], True, False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench")
    parser.add_argument("--write", action="store_true", help="Save the fitted model to qa_service/data/ranker.json")
    parser.add_argument("--covid-limit", type=int, default=0, help="Use only this many COVID-QA dev questions (0: all)")
    parser.add_argument("--only", choices=FEATURES, default=None,
                        help="Fit only this feature's weight (and the intercept), the shipped model's other weights held")
    parser.add_argument("--sets", default="gold,covidqa,leaflets",
                        help="Training sets, comma-separated (gold, covidqa, leaflets); each weighs the same")
    parser.add_argument("--reading", action="store_true",
                        help="Fit only the reading model (the confidence once the reader has read a candidate) for "
                             "QA_ANSWER__READER_MODEL, the ranker held; COVID-QA: the dev articles the reader was "
                             "not trained on")
    args = parser.parse_args()
    args.sets = [name.strip() for name in args.sets.split(",")]
    if args.reading:
        return fit_reading_main(args)
    embedder = Embedder(ServiceSettings().embed_model)

    settings = ServiceSettings(corpus_dir=REPO / "corpus", index_dir=REPO / ".bench" / "gold-index")
    IndexBuilder(settings, embedder).build()
    gold_answerer = build_answerer(settings, embedder)
    gold = [q for q in load_gold(REPO / "eval" / "gold.jsonl") if q.split == "tune"]
    sets: dict[str, list[tuple[np.ndarray, np.ndarray, bool, bool]]] = {"gold": [], "covidqa": []}
    for q in gold:
        ranges = {
            d: evidence_ranges(gold_answerer.bundle.documents[d].text, q.evidence) for d in gold_answerer.bundle.documents
        } if q.answerable else {}

        def label(doc_id: str, start: int, end: int, ranges=ranges) -> bool:  # noqa: ANN001
            return any(a < end and start < b for a, b in ranges.get(doc_id, []))

        X, y, by_rule = rows_for(gold_answerer, q.question, label)
        sets["gold"].append((X, y, q.answerable, by_rule))

    bench = load_covidqa(args.shared / "covidqa")
    covid_answerer, _ = build_service(bench, embedder)
    dev = [q for q in bench.questions if q.split == "dev"]
    if args.covid_limit:
        dev = dev[: args.covid_limit]
    for q in dev:
        X, y, by_rule = rows_for(covid_answerer, q.text, q.hit)
        sets["covidqa"].append((X, y, True, by_rule))

    sets["leaflets"] = leaflet_rows(embedder)

    Xs, ys, ws = [], [], []
    for name, items in sets.items():
        if name not in args.sets:
            continue
        n_rows = sum(len(X) for X, *_ in items)
        for X, y, *_ in items:
            Xs.append(X)
            ys.append(y)
            ws.append(np.full(len(y), 1.0 / max(n_rows, 1)))
    X, y, w = np.vstack(Xs), np.concatenate(ys), np.concatenate(ws)
    w = w / w.mean()
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    if args.only:
        ranker = fit_one(gold_answerer.ranker, args.only, X, y, w)
    else:
        model = LogisticRegression(C=1.0, max_iter=2000)
        model.fit((X - mean) / scale, y, sample_weight=w)
        ranker = AnswerRanker(mean, scale, model.coef_[0], float(model.intercept_[0]))

    # Calibration for abstention, on the gold tune split only (the one set with questions
    # the documents don't answer): each question's five best candidates, by the ranker's
    # logit and the share of the question's words the corpus never uses.
    absent = FEATURES.index("absent")
    cal_X, cal_y = [], []
    for X_, y_, answerable, _ in sets["gold"]:
        if not len(X_):
            continue
        logits = ranker.logit(X_)
        for i in np.argsort(-logits)[:5]:
            cal_X.append([logits[i], X_[i, absent]])
            cal_y.append(y_[i] if answerable else 0.0)
    calibrator = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(cal_X), np.array(cal_y))
    calibration = (float(calibrator.coef_[0][0]), float(calibrator.coef_[0][1]), float(calibrator.intercept_[0]))
    if args.only:  # one weight added: the shipped confidence scale stands
        calibration = gold_answerer.ranker.calibration
    ranker = AnswerRanker(ranker.mean, ranker.scale, ranker.coef, ranker.intercept, calibration)
    print(f"calibration: confidence = sigmoid({ranker.calibration[0]:.3f} x logit {ranker.calibration[1]:+.3f} x absent "
          f"{ranker.calibration[2]:+.3f})")

    print(f"rows: {len(y)} ({int(y.sum())} right); questions: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items())
          + f"; fitted on {args.sets}")
    print("| feature | weight (standardised) |\n|---|---|")
    for name, c in sorted(zip(FEATURES, ranker.coef), key=lambda t: -abs(t[1])):
        print(f"| {name} | {c:+.3f} |")
    shipped = gold_answerer.ranker
    for name, items in sets.items():
        for label, model_ in (("fitted", ranker), ("shipped", shipped)):
            top1 = [bool(len(y_) and y_[np.argmax(model_.logit(X_))]) for X_, y_, answerable, _ in items if answerable]
            print(f"{name}: best unit right for {np.mean(top1):.3f} of {len(top1)} answerable questions "
                  f"(unit level, dev; {label} model)")
    print("\nthreshold trade-off on the gold tune split (best candidate's probability):")
    print("| threshold | unanswerable declined | answerable declined |\n|---|---|---|")
    for t in THRESHOLDS:
        unans = [by_rule or not len(X_) or ranker(X_).max() < t for X_, _, answerable, by_rule in sets["gold"] if not answerable]
        ans = [by_rule or not len(X_) or ranker(X_).max() < t for X_, _, answerable, by_rule in sets["gold"] if answerable]
        print(f"| {t} | {np.mean(unans):.2f} | {np.mean(ans):.2f} |")
    if args.write:
        path = REPO / "qa_service" / "data" / "ranker.json"
        comment = f"fitted by eval/train_ranker.py --sets {','.join(args.sets)}" + (
            f" --only {args.only} (the other weights and the calibration are the previous model's)" if args.only else "")
        path.write_text(ranker.to_json(comment=comment) + "\n",
                        encoding="utf-8")
        print(f"written {path}")


def fit_reading_main(args: argparse.Namespace) -> None:
    """``--reading``: fit the reading model on the dev sets, the ranker held; print what it does."""
    from bench_quality import bench_index
    from reader_data import reader_split

    from ingest.onnx_encoder import make_encoder

    base = ServiceSettings()
    embedder = make_encoder(base.embed_model, base.embed_backend, base.embed_batch_size,
                            cache_dir=base.encoder_cache_dir)
    # Read with the reader but without a reading model: the ranker's order, the reader's logits.
    unfitted = base.answer.ranker_model.parent / "ranker-unread.json"
    shipped_ranker = AnswerRanker.load(base.answer.ranker_model)
    unfitted.write_text(AnswerRanker(shipped_ranker.mean, shipped_ranker.scale, shipped_ranker.coef,
                                     shipped_ranker.intercept, shipped_ranker.calibration).to_json() + "\n")
    try:
        from qa_service.reader import DEFAULT_READER

        # The reader QA_ANSWER__READER_MODEL names (the shipped one when unset), reading the ranker's
        # best FIT_READ candidates: the table below shows what fewer would have read.
        answer = base.answer.model_copy(update={"ranker_model": unfitted, "reader_candidates": FIT_READ,
                                                "reader_model": base.answer.reader_model or DEFAULT_READER})

        def settings_for(corpus: Path, index: Path) -> ServiceSettings:
            return ServiceSettings(corpus_dir=corpus, index_dir=index, answer=answer)

        settings = settings_for(REPO / "corpus", bench_index("gold"))
        IndexBuilder(settings, embedder).build()
        gold_answerer = build_answerer(settings, embedder)
        reader = gold_answerer.reader
        gold = [q for q in load_gold(REPO / "eval" / "gold.jsonl") if q.split == "tune"]
        reading: dict[str, list] = {"gold": [], "covidqa": [], "leaflets": []}
        for q in gold:
            ranges = {d: evidence_ranges(gold_answerer.bundle.documents[d].text, q.evidence)
                      for d in gold_answerer.bundle.documents} if q.answerable else {}

            def label(doc_id: str, start: int, end: int, ranges=ranges) -> bool:  # noqa: ANN001
                return any(a < end and start < b for a, b in ranges.get(doc_id, []))

            rows_for(gold_answerer, q.question, label, reading["gold"])
        if "covidqa" in args.sets:
            bench = load_covidqa(args.shared / "covidqa")
            settings = settings_for(bench.corpus, bench_index(bench.name))
            IndexBuilder(settings, embedder).build()
            covid = build_answerer(settings, embedder)
            fit = [q for q in bench.questions if q.split == "dev" and reader_split(next(iter(q.docs))) == "fit"]
            for q in fit[: args.covid_limit or None]:
                rows_for(covid, q.text, q.hit, reading["covidqa"])
        if "leaflets" in args.sets:
            leaflet_rows(embedder, reading["leaflets"], settings.answer)
    finally:
        unfitted.unlink()
    reading = {name: items for name, items in reading.items() if items}
    import pickle

    with open(REPO / ".bench" / "reader" / "reading-rows.pkl", "wb") as handle:
        pickle.dump({"reading": reading, "gold_answerable": [q.answerable for q in gold],
                     "reader": reader.config.fingerprint, "reader_name": reader.name}, handle)
    model = fit_reading(reading, [q.answerable for q in gold], reader.config.fingerprint)
    print(f"reading model for {reader.name}: confidence = sigmoid({model.coef[0]:+.3f} x ranker logit "
          f"{model.coef[1]:+.3f} x reader logit {model.coef[2]:+.3f} x absent {model.intercept:+.3f})")
    for name, items in reading.items():
        for label_, score in (("ranker", lambda X: X[:, 0]), ("reader", lambda X: X[:, 1]),
                              ("reading model", lambda X: X @ model.coef)):
            answerable = [(X, y) for (X, y), q in zip(items, gold if name == "gold" else [None] * len(items))
                          if q is None or q.answerable]
            top1 = [bool(len(y) and y[np.argmax(score(X))]) for X, y in answerable]
            print(f"{name}: best read unit right for {np.mean(top1):.3f} of {len(top1)} questions ({label_})")
    print("\nhow many candidates to read (the ranker's best N; unit level, best read unit right):")
    print("| N | " + " | ".join(reading) + " |\n|---" * 1 + "|---" * len(reading) + "|")
    for n in (4, 8, 12, 16, 20, 30):
        cells = []
        for name, items in reading.items():
            answerable = [(X, y) for (X, y), q in zip(items, gold if name == "gold" else [None] * len(items))
                          if q is None or q.answerable]
            top1 = []
            for X, y in answerable:
                keep = np.argsort(-X[:, 0], kind="stable")[:n]
                top1.append(bool(len(keep) and y[keep][np.argmax(X[keep] @ model.coef)]))
            cells.append(f"{np.mean(top1):.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nthreshold trade-off on the gold tune split (best read candidate's confidence):")
    print("| threshold | unanswerable declined | answerable declined |\n|---|---|---|")
    best = [model(X[:, 0], X[:, 1], X[0, 2]).max() if len(X) else 0.0 for X, _ in reading["gold"]]
    for t in THRESHOLDS:
        unans = [b < t for b, q in zip(best, gold) if not q.answerable]
        ans = [b < t for b, q in zip(best, gold) if q.answerable]
        print(f"| {t} | {np.mean(unans):.2f} | {np.mean(ans):.2f} |")
    if args.write:
        path = base.answer.ranker_model
        data = json.loads(path.read_text(encoding="utf-8"))
        data["reading"] = model.to_dict()
        data["reading_comment"] = (f"fitted by eval/train_ranker.py --reading --sets {','.join(reading)} "
                                   f"for the reader {reader.name}")
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"written {path}")


if __name__ == "__main__":
    main()

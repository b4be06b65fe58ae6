"""Train the answer reader: the packaged MiniLM fine-tuned on mined (question, answer unit) pairs.

    python eval/reader_data.py                 # mine the training pairs (.bench/reader/pairs-*.jsonl)
    python eval/train_reader.py [--write]      # train, export, compare, write the card

The packaged all-MiniLM-L6-v2 (``QA_EMBED_MODEL``) is loaded by path as a
``SentenceTransformer`` and fine-tuned with ``SentenceTransformerTrainer`` and
the multiple-negatives ranking loss on (question, right unit, mined wrong unit)
triplets, every unit given as the reader sees it (``reader_passage``: title,
section, lead-in, text), as sentence-transformers' training examples with hard
negatives do. The pairs are drawn per source as ``--mix`` says (sampled with a
fixed seed), so that no one set's templates dominate. A twentieth of the
questions of each source is held back to check the reader (MRR of the right
unit among each question's mined candidates) before and after training.

(A cross-encoder of the same MiniLM, trained with binary cross-entropy on the
same pairs, stayed at chance over 110-200 steps at learning rates 4e-5 and
1e-4: its [CLS] head starts from nothing, and this machine affords a few hundred
steps. The bi-encoder starts from the model's own pretrained similarity.)

The trained model is exported with the encoder export of ``ingest.onnx_encoder``
(``--variant``: ``onnx-int8``, weights of the matrix products in int8, or
``onnx`` float32) into ``qa_service/data/reader/`` (with ``--write``; else
``.bench/reader/export``), with ``reader.json``, ``training.json`` and a model
card (``README.md``): data, hyper-parameters, time, figures. Seeds are fixed;
``make train`` runs it all.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from ingest.embedding import resolve_model_path  # noqa: E402
from qa_service.reader import CONFIG_FILE, DEFAULT_READER, INPUT_FORMAT, MODEL_FILE, AnswerReader, folder_fingerprint  # noqa: E402

SEED = 20261204
DEFAULT_MIX = {"medquad": 5000, "covidqa": 3000, "leaflets": 4000}
"""Pairs drawn from each source (with repetition where a source has fewer)."""


def load_pairs(folder: Path, mix: dict[str, int], rng: random.Random, held_share: float = 0.05
               ) -> tuple[list[dict], list[dict]]:
    """Training pairs drawn per ``mix`` and the held-back pairs (a share of each source's questions)."""
    train, held = [], []
    for source, count in mix.items():
        path = folder / f"pairs-{source}.jsonl"
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        qids = sorted({r["qid"] for r in rows})
        rng.shuffle(qids)
        held_qids = set(qids[: max(1, int(len(qids) * held_share))])
        held += [r for r in rows if r["qid"] in held_qids]
        pool = [r for r in rows if r["qid"] not in held_qids]
        if count <= len(pool):
            train += rng.sample(pool, count)
        else:
            train += pool * (count // len(pool)) + rng.sample(pool, count % len(pool))
    rng.shuffle(train)
    return train, held


def held_mrr(score, pairs: list[dict]) -> dict[str, float]:  # noqa: ANN001 - (question, passages) -> scores
    """Per source: mean reciprocal rank of the first right unit among each question's mined candidates."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for p in pairs:
        groups[(p["source"], p["qid"])].append(p)
    ranks: dict[str, list[float]] = defaultdict(list)
    for (source, _), rows in sorted(groups.items()):
        scores = np.asarray(score(rows[0]["question"], [r["passage"] for r in rows]))
        order = np.argsort(-scores, kind="stable")
        first = next((k for k, i in enumerate(order) if rows[i]["label"]), None)
        ranks[source].append(0.0 if first is None else 1.0 / (first + 1))
    return {s: round(float(np.mean(v)), 4) for s, v in ranks.items()}


def triplets(pairs: list[dict], rng: random.Random) -> list[dict]:
    """(question, right passage, wrong passage) rows: each right passage of a question beside one of
    its wrong ones, the hardest (mined first) first, so every question's hard negatives are used."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for p in pairs:
        groups[(p["source"], p["qid"])].append(p)
    rows = []
    for key in sorted(groups):
        group = groups[key]
        right = list(dict.fromkeys(p["passage"] for p in group if p["label"]))
        wrong = list(dict.fromkeys(p["passage"] for p in group if not p["label"]))
        for i, passage in enumerate(right):
            if wrong:
                rows.append({"question": group[0]["question"], "positive": passage, "negative": wrong[i % len(wrong)]})
    rng.shuffle(rows)
    return rows


def train(pairs: list[dict], base_model: str, out_dir: Path, max_length: int = 128, batch_size: int = 32,
          epochs: float = 1.0, learning_rate: float = 2e-5, max_steps: int = -1, seed: int = SEED) -> Path:
    """Fine-tune ``base_model`` (a sentence-transformers folder or package) on (question, right passage,
    wrong passage) triplets with the multiple-negatives ranking loss: each question against its right
    passage, its mined wrong one and every other passage of the batch (no text twice in a batch)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    torch.manual_seed(seed)
    model = SentenceTransformer(str(resolve_model_path(base_model)), device="cpu", local_files_only=True)
    model.max_seq_length = max_length
    rows = triplets(pairs, random.Random(seed))
    data = Dataset.from_dict({k: [r[k] for r in rows] for k in ("question", "positive", "negative")})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir / "checkpoints"), num_train_epochs=epochs, max_steps=max_steps,
        per_device_train_batch_size=batch_size, learning_rate=learning_rate, warmup_steps=0.1,
        weight_decay=0.01, seed=seed, data_seed=seed, logging_steps=10, save_strategy="no", report_to="none",
        use_cpu=True, dataloader_num_workers=0, disable_tqdm=not sys.stderr.isatty(),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                               loss=MultipleNegativesRankingLoss(model)).train()
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    folder = out_dir / "torch"
    model.save(str(folder))
    return folder


def export(model_dir: Path, out_dir: Path, variant: str, name: str, max_length: int) -> Path:
    """The trained model as a reader folder (``qa_service.reader``): its ONNX export (``onnx`` float32, or
    ``onnx-int8``, the matrix products' weights dynamically quantised), reading at most ``max_length``
    tokens a text as in training, and ``reader.json``."""
    from ingest.onnx_encoder import CONFIG_FILE as ENCODER_CONFIG, export_encoder

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    export_encoder(str(model_dir), variant, out_dir)
    encoder = json.loads((out_dir / ENCODER_CONFIG).read_text(encoding="utf-8"))
    encoder["max_seq_length"] = max_length
    encoder["source_model"] = name  # not the training folder's path on this machine
    (out_dir / ENCODER_CONFIG).write_text(json.dumps(encoder, indent=2) + "\n", encoding="utf-8")
    config = {"name": name, "variant": variant, "input_format": INPUT_FORMAT, "fingerprint": folder_fingerprint(out_dir)}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out_dir


def torch_scorer(model_dir: Path | str):  # noqa: ANN201
    """(question, passages) -> cosines under a sentence-transformers model run on torch."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(resolve_model_path(str(model_dir))), device="cpu", local_files_only=True)

    def score(question: str, passages: list[str]) -> np.ndarray:
        vectors = model.encode([question, *passages], normalize_embeddings=True, show_progress_bar=False)
        return vectors[1:] @ vectors[0]

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=REPO / ".bench" / "reader")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "reader")
    parser.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()),
                        help="pairs per source, e.g. medquad=16000,covidqa=6000,leaflets=5000")
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--variant", choices=["onnx", "onnx-int8"], default="onnx-int8")
    parser.add_argument("--base-model", default=None, help="default: QA_EMBED_MODEL (the packaged MiniLM)")
    parser.add_argument("--skip-training", action="store_true",
                        help="Export and check the model the last run trained (WORK/torch) again")
    parser.add_argument("--write", action="store_true", help=f"export into {DEFAULT_READER.relative_to(REPO)}")
    args = parser.parse_args()
    from qa_service.settings import ServiceSettings

    base = args.base_model or ServiceSettings().embed_model
    mix = {k: int(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    rng = random.Random(SEED)
    pairs, held = load_pairs(args.pairs, mix, rng)
    print(f"training pairs: {len(pairs)} ({sum(p['label'] for p in pairs)} right); held back: {len(held)}", flush=True)
    began = time.perf_counter()
    timing = args.work / "torch" / "train_minutes.txt"
    if args.skip_training:
        folder, minutes = args.work / "torch", float(timing.read_text())
    else:
        folder = train(pairs, base, args.work, args.max_length, args.batch_size, args.epochs, args.lr, args.max_steps)
        minutes = (time.perf_counter() - began) / 60
        timing.write_text(f"{minutes:.2f}\n")
    print(f"trained in {minutes:.1f} min", flush=True)
    out = DEFAULT_READER if args.write else args.work / "export"
    name = "drugqa-reader-minilm-l6"
    print("held back, before training: " + json.dumps(held_mrr(torch_scorer(base), held)), flush=True)
    export(folder, out, args.variant, name, args.max_length)
    figures = {"untrained (the packaged model)": held_mrr(torch_scorer(base), held),
               "trained, torch": held_mrr(torch_scorer(folder), held),
               f"trained, {args.variant}": held_mrr(AnswerReader(out).scores, held)}
    print(json.dumps(figures, indent=1))
    card = {
        "name": name, "base_model": str(base), "variant": args.variant, "input_format": INPUT_FORMAT,
        "max_length": args.max_length, "batch_size": args.batch_size, "epochs": args.epochs,
        "learning_rate": args.lr, "seed": SEED, "mix": mix, "pairs": len(pairs),
        "right_pairs": sum(p["label"] for p in pairs), "held_pairs": len(held),
        "triplets": len(triplets(pairs, random.Random(SEED))),
        "train_minutes": round(minutes, 1), "held_mrr": figures,
        "size_mb": round((out / MODEL_FILE).stat().st_size / 1e6, 1),
    }
    (out / "training.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(card), encoding="utf-8")
    print(f"written {out}")


def model_card(card: dict) -> str:
    """The reader's model card: what it is, its data, hyper-parameters, time and figures."""
    mix = ", ".join(f"{source} {count:,}" for source, count in card["mix"].items())
    rows = "\n".join(f"| {variant} | " + " | ".join(f"{v:.3f}" for v in figures.values()) + " |"
                     for variant, figures in card["held_mrr"].items())
    sources = " | ".join(next(iter(card["held_mrr"].values())))
    return f"""# {card['name']}

The answer reader of this service (`qa_service/reader.py`): the packaged MiniLM fine-tuned to
embed a question near the answer unit that answers it (a sentence, list item or short paragraph,
given with its document's title, its section's title and the lead-in of its list:
`{card['input_format']}`). The service reads the ranker's best candidates with it; their cosine and
the answer ranker's logit are combined by the reading model in `qa_service/data/ranker.json` into
the answer's confidence, which orders the answers and is the bar a source's answer must clear.

- Base: `{card['base_model']}` (all-MiniLM-L6-v2, 6 layers, 384 wide, mean pooling), loaded by path
  as a sentence-transformers `SentenceTransformer`.
- Shipped as `{card['variant']}` (`model.onnx`, {card['size_mb']} MB), run with ONNX Runtime; no torch at serving.
- Trained by `eval/train_reader.py` (`make train`), seed {card['seed']}, on this machine's 2 CPU cores in
  {card['train_minutes']} minutes.

## Data

Pairs mined by the service's own retrieval (`eval/reader_data.py`): for each training question the
candidates the service reads; positives hold the answer, negatives are the candidates the ranker put
highest without holding it, and two at random. Pairs drawn per source ({mix}; {card['pairs']:,} pairs,
{card['right_pairs']:,} right):

- COVID-QA, the half of the dev articles set aside for the reader (the other half fits the reading
  model; test articles are never read): a unit is right when it overlaps the gold answer span.
- MedQuAD training pairs (`shared/train/medquad/train.jsonl`, 900 topics; no page, topic or question of the
  benchmark): the first three sentences of an answer to the question are right; other topics' and
  other question types' answers are the negatives.
- Generated package leaflets of other medicines than the benchmark's (`eval/leaflets.py`, seed 101),
  asked in training wordings of their own (lay wordings and MedlinePlus's drug-question templates)
  about nine sections.

CC BY 4.0 (MedQuAD), Apache-2.0 (COVID-QA); the base model is Apache-2.0.

## Hyper-parameters

Multiple-negatives ranking loss over (question, right unit, mined wrong unit) triplets ({card['triplets']:,}:
each right unit beside one of its question's wrong ones), in-batch negatives, no text twice in a batch;
AdamW, learning rate {card['learning_rate']}, 10% warm-up, weight decay 0.01, batch {card['batch_size']},
{card['epochs']} epoch, at most {card['max_length']} tokens a text.

## Figures

Mean reciprocal rank of the right unit among each held-back question's mined candidates (the
ranker's hardest wrong ones)
({card['held_pairs']:,} pairs of a twentieth of each source's questions, never trained on):

| variant | {sources} |
|---|{'---|' * len(card['held_mrr'][next(iter(card['held_mrr']))])}
{rows}

End-to-end figures (with the reading model, on the benchmarks' test and held-out splits) are in
`docs/evaluation.md`.
"""


if __name__ == "__main__":
    main()

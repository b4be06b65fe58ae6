"""Train the answer reader: the packaged MiniLM fine-tuned as a cross-encoder, exported to ONNX.

    python eval/reader_data.py                 # mine the training pairs (.bench/reader/pairs-*.jsonl)
    python eval/train_reader.py [--write]      # train, export, compare fp32 and int8, write the card

The packaged all-MiniLM-L6-v2 (``QA_EMBED_MODEL``) is loaded by path as a
sentence-transformers ``CrossEncoder``, which adds a one-logit head, and is
trained with ``CrossEncoderTrainer`` and binary cross-entropy on the mined
(question, answer unit) pairs, as sentence-transformers' MS MARCO cross-encoder
examples do. Every source weighs as the ``--mix`` says (pairs sampled per source
with a fixed seed), so that no one set's templates dominate. A twentieth of the
questions of each source is held back to check the reader (MRR of the right
unit among each question's mined candidates) before and after training.

The trained model is exported with torch.onnx and quantised (``--variant``:
``onnx-int8``, weights of the matrix products in int8, or ``onnx`` float32) into
``qa_service/data/reader/`` (with ``--write``; else ``.bench/reader/export``),
with ``reader.json`` and a model card (``README.md``): data, hyper-parameters,
time, figures. Seeds are fixed; ``make train`` runs it all.
"""

from __future__ import annotations

import argparse
import json
import logging
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
from qa_service.reader import (  # noqa: E402
    CONFIG_FILE, DEFAULT_READER, INPUT_FORMAT, MODEL_FILE, TOKENIZER_FILE, AnswerReader, folder_fingerprint,
)

SEED = 20261204
DEFAULT_MIX = {"medquad": 16000, "covidqa": 6000, "leaflets": 5000}
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


def train(pairs: list[dict], base_model: str, out_dir: Path, max_length: int = 192, batch_size: int = 32,
          epochs: float = 1.0, learning_rate: float = 4e-5, max_steps: int = -1, seed: int = SEED) -> Path:
    """Fine-tune ``base_model`` (a sentence-transformers folder or package) as a one-logit cross-encoder."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    torch.manual_seed(seed)
    model = CrossEncoder(str(resolve_model_path(base_model)), num_labels=1, max_length=max_length, device="cpu",
                         local_files_only=True)
    data = Dataset.from_dict({"question": [p["question"] for p in pairs], "passage": [p["passage"] for p in pairs],
                              "label": [float(p["label"]) for p in pairs]})
    positives = max(1, sum(p["label"] for p in pairs))
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor((len(pairs) - positives) / positives))
    args = CrossEncoderTrainingArguments(
        output_dir=str(out_dir / "checkpoints"), num_train_epochs=epochs, max_steps=max_steps,
        per_device_train_batch_size=batch_size, learning_rate=learning_rate, warmup_steps=0.1,
        weight_decay=0.01, seed=seed, data_seed=seed, logging_steps=50, save_strategy="no", report_to="none",
        use_cpu=True, dataloader_num_workers=0, disable_tqdm=not sys.stderr.isatty(),
    )
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    folder = out_dir / "torch"
    model.save_pretrained(str(folder))
    return folder


def export(model_dir: Path, out_dir: Path, variant: str, name: str, max_length: int) -> Path:
    """The trained cross-encoder as an ONNX reader folder (``qa_service.reader``): ``onnx`` (float32)
    or ``onnx-int8`` (the matrix products' weights dynamically quantised to int8)."""
    import torch
    import warnings
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True,
                                                               attn_implementation="eager")
    model.eval()
    inputs = ["input_ids", "attention_mask", "token_type_ids"]

    class Logit(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    sample = tokenizer(["a question", "another question"], ["an answer", "a longer answer to it"], padding=True,
                       return_tensors="pt")
    fp32 = out_dir / ("model-fp32.onnx" if variant == "onnx-int8" else MODEL_FILE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logit(), tuple(sample[n] for n in inputs), str(fp32), input_names=inputs,
                          output_names=["logits"], dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in inputs},
                                                                 "logits": {0: "batch"}},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    if variant == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            quantize_dynamic(str(fp32), str(out_dir / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
        finally:
            root.setLevel(level)
        fp32.unlink()
    config = {"name": name, "variant": variant, "max_length": max_length, "inputs": inputs,
              "input_format": INPUT_FORMAT, "fingerprint": folder_fingerprint(out_dir)}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out_dir


def torch_scorer(model_dir: Path, max_length: int):  # noqa: ANN201
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(model_dir), max_length=max_length, device="cpu", local_files_only=True)
    return lambda q, passages: model.predict([(q, p) for p in passages], activation_fn=None, show_progress_bar=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=REPO / ".bench" / "reader")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "reader")
    parser.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()),
                        help="pairs per source, e.g. medquad=16000,covidqa=6000,leaflets=5000")
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--variant", choices=["onnx", "onnx-int8"], default="onnx-int8")
    parser.add_argument("--base-model", default=None, help="default: QA_EMBED_MODEL (the packaged MiniLM)")
    parser.add_argument("--write", action="store_true", help=f"export into {DEFAULT_READER.relative_to(REPO)}")
    args = parser.parse_args()
    from qa_service.settings import ServiceSettings

    base = args.base_model or ServiceSettings().embed_model
    mix = {k: int(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    rng = random.Random(SEED)
    pairs, held = load_pairs(args.pairs, mix, rng)
    print(f"training pairs: {len(pairs)} ({sum(p['label'] for p in pairs)} right); held back: {len(held)}", flush=True)
    began = time.perf_counter()
    folder = train(pairs, base, args.work, args.max_length, args.batch_size, args.epochs, args.lr, args.max_steps)
    minutes = (time.perf_counter() - began) / 60
    print(f"trained in {minutes:.1f} min", flush=True)
    out = DEFAULT_READER if args.write else args.work / "export"
    name = "drugqa-reader-minilm-l6"
    export(folder, out, args.variant, name, args.max_length)
    figures = {"torch": held_mrr(torch_scorer(folder, args.max_length), held),
               args.variant: held_mrr(AnswerReader(out).scores, held)}
    print(json.dumps(figures, indent=1))
    card = {
        "name": name, "base_model": str(base), "variant": args.variant, "input_format": INPUT_FORMAT,
        "max_length": args.max_length, "batch_size": args.batch_size, "epochs": args.epochs,
        "learning_rate": args.lr, "seed": SEED, "mix": mix, "pairs": len(pairs),
        "right_pairs": sum(p["label"] for p in pairs), "held_pairs": len(held),
        "train_minutes": round(minutes, 1), "held_mrr": figures,
        "size_mb": round((out / MODEL_FILE).stat().st_size / 1e6, 1),
    }
    (out / "training.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"written {out}")


if __name__ == "__main__":
    main()

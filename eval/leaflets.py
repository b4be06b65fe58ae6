"""Package leaflets written to one template, differing in their medicine's names and facts.

    python eval/leaflets.py OUT_DIR [--count 12]

Real EU package leaflets share their headings ("If you forget to take X", "How
to store X", "Driving and using machines"); across such a corpus only the
medicine's names tell one leaflet's answer from another's. This module writes
such a corpus (Markdown, one leaflet per invented medicine, with a sidecar
giving its title and source) and the questions to ask of it, each with the
sentence of its own leaflet that answers it. The tests and the leaflets
benchmark (``eval/bench_quality.py``) ask the ``QUESTIONS`` wordings of the
medicines of the default seed; the answer ranker is fitted
(``eval/train_ranker.py``) on other medicines (``DEV_SEED``) asked in other
wordings (``DEV_QUESTIONS``), so the benchmark reads neither.

The answering sentences come from a few shared wordings (as real leaflets
share them), so a right answer is judged by its leaflet and its sentence.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

SYLLABLES_A = ["zor", "vel", "tam", "qui", "lum", "dex", "pra", "nor", "fen", "cal", "mir", "tro", "sel", "vor", "bax"]
SYLLABLES_B = ["ifa", "ota", "ena", "ixo", "ura", "ela", "ano", "ivi", "ome", "ari"]
SUFFIX_BRAND = ["x", "ra", "tel", "vix", "na", "lon", "zia", "mex"]
SUFFIX_GENERIC = ["prazole", "sartan", "tinib", "vastatin", "floxacin", "mab", "dipine", "olol", "gliptin", "lukast"]
CONDITIONS = [
    "high blood pressure", "raised cholesterol", "type 2 diabetes", "heartburn and acid reflux", "asthma",
    "migraine", "rheumatoid arthritis", "an overactive bladder", "chronic plaque psoriasis", "angina",
]
STORAGE = [
    "Store below {t} degrees C in the original package to protect from moisture.",
    "Keep the bottle tightly closed and store below {t} degrees C.",
    "Store in a refrigerator (2 to 8 degrees C); it may be kept at up to {t} degrees C for one week.",
]
MISSED = [
    "If you forget a dose, take it as soon as you remember unless the next dose is due within {h} hours; then skip the missed dose.",
    "Do not take a double dose to make up for a forgotten tablet; wait {h} hours and take the next dose at the usual time.",
    "If you miss a dose by more than {h} hours, leave it out and carry on with your usual schedule.",
]
OVERDOSE = [
    "If you have taken more than {n} tablets, contact your doctor or the nearest hospital emergency department at once.",
    "Taking {n} tablets or more at once can cause a slow heartbeat and fainting; get medical help straight away.",
    "If a child swallows {n} tablets or more, take the child and this leaflet to a hospital immediately.",
]
DRIVING = [
    "It may make you feel dizzy for the first {h} hours after a dose; do not drive until you know how it affects you.",
    "It has no known effect on the ability to drive, but blurred vision has been reported in {n} in 1,000 patients.",
    "Do not drive or use machines for {h} hours after each dose because it can cause drowsiness.",
]

TEMPLATE = """# {brand} {strength} mg film-coated tablets

Package leaflet: Information for the user. {brand} {strength} mg film-coated tablets, {generic}.

## 1. What {brand} is and what it is used for

{brand} contains the active substance {generic}. {brand} is used to treat {condition} in adults.

## 2. What you need to know before you take {brand}

Do not take {brand} if you are allergic to {generic} or to any of the other ingredients of this medicine.

### Driving and using machines

{driving}

### {brand} with other medicines

Tell your doctor if you are taking, have recently taken or might take any other medicines.

## 3. How to take {brand}

The recommended dose is {dose} mg once a day, with or without food.

### If you take more {brand} than you should

{overdose}

### If you forget to take {brand}

{missed}

## 5. How to store {brand}

{storage}

## 6. Contents of the pack and other information

### What {brand} contains

The active substance is {generic}. Each film-coated tablet contains {strength} mg of {generic}.
"""

QUESTIONS = {
    "missed": ["What if I forget a dose of {name}?", "I missed my {name} this morning, what should I do?"],
    "driving": ["Is it safe for me to drive while I'm on {name}?", "Can I use machines after taking {name}?"],
    "overdose": ["I took too many {name} tablets by mistake, what now?", "What happens if someone takes too much {name}?"],
    "storage": ["How should I store {name}?", "Does {name} need to go in the fridge?"],
    "use": ["What is {name} used for?", "What does {name} treat?"],
}
"""The test wordings (the benchmark's and the tests')."""

DEV_QUESTIONS = {
    "missed": ["I skipped yesterday's {name}, should I double up?", "Forgot my {name} last night, now what?"],
    "driving": ["Will {name} affect my driving?", "Am I ok to operate machinery on {name}?"],
    "overdose": ["My son swallowed a handful of {name}, what do I do?", "I accidentally took an extra {name} dose"],
    "storage": ["Where do I keep {name}?", "Can {name} be kept at room temperature?"],
    "use": ["Why would a doctor prescribe {name}?", "Which condition is {name} for?"],
}
"""Other wordings, asked of other medicines (``DEV_SEED``): what the answer ranker is fitted on."""

DEV_SEED = 11


@dataclass(frozen=True)
class Medicine:
    brand: str
    generic: str
    strength: int
    dose: int
    condition: str
    facts: dict[str, str]
    """Question kind -> the sentence of this leaflet that answers it."""

    @property
    def doc_id(self) -> str:
        return f"{self.brand.lower()}-leaflet"

    def text(self) -> str:
        return TEMPLATE.format(brand=self.brand, generic=self.generic, strength=self.strength, dose=self.dose,
                               condition=self.condition, **{k: v for k, v in self.facts.items() if k != "use"})


@dataclass(frozen=True)
class LeafletQuestion:
    text: str
    doc_id: str
    """The leaflet that answers it."""
    evidence: str
    """Its answering sentence (verbatim; a right answer comes from ``doc_id`` and holds it)."""
    kind: str


def medicines(count: int, seed: int = 7) -> list[Medicine]:
    """``count`` invented medicines with distinct names and facts (deterministic)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    out = []
    while len(out) < count:
        brand = (rng.choice(SYLLABLES_A) + rng.choice(SYLLABLES_B) + rng.choice(SUFFIX_BRAND)).capitalize()
        generic = rng.choice(SYLLABLES_A) + rng.choice(SYLLABLES_A) + rng.choice(SUFFIX_GENERIC)
        if brand.lower() in taken or generic in taken or len(brand) < 6:
            continue
        taken |= {brand.lower(), generic}
        i = len(out)
        strength = 5 * (i + 1) + 3
        hours, number, temp = 3 + i, 11 + i, 20 + (i % 6)
        facts = {
            "storage": rng.choice(STORAGE).format(t=temp) + f" Do not use {brand} after the expiry date, batch {1000 + i}.",
            "missed": rng.choice(MISSED).format(h=hours) + f" Never take more than {strength * 2} mg of {brand} in a day.",
            "overdose": rng.choice(OVERDOSE).format(n=number) + f" Bring the {brand} pack with you.",
            "driving": rng.choice(DRIVING).format(h=hours, n=number) + f" This applies to {brand} {strength} mg.",
            "use": f"{brand} is used to treat {CONDITIONS[i % len(CONDITIONS)]} in adults.",
        }
        out.append(Medicine(brand, generic, strength, 10 * (i + 1), CONDITIONS[i % len(CONDITIONS)], facts))
    return out


def write_corpus(folder: Path, meds: list[Medicine]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for med in meds:
        path = folder / f"{med.doc_id}.md"
        path.write_text(med.text(), encoding="utf-8")
        meta = {"title": f"{med.brand} {med.strength} mg film-coated tablets", "source": f"https://example.org/{med.doc_id}"}
        (folder / f"{path.name}.meta.json").write_text(json.dumps(meta), encoding="utf-8")


def questions(meds: list[Medicine], generic: bool = False, wordings: dict[str, list[str]] = QUESTIONS) -> list[LeafletQuestion]:
    """Each question kind asked of each medicine, by its brand name (or its generic name)."""
    out = []
    for med in meds:
        for kind, forms in wordings.items():
            for form in forms:
                name = med.generic if generic else med.brand
                evidence = med.facts[kind].split(". ")[0].rstrip(".")
                out.append(LeafletQuestion(form.format(name=name), med.doc_id, evidence, kind))
    return out


OUT_OF_SCOPE = [
    "What is the usual dose of ibuprofen?",
    "Can I take metformin with food?",
    "How should I store my insulin pens?",
    "Is paracetamol safe in pregnancy?",
    "What if I forget a dose of warfarin?",
    "Can atorvastatin cause muscle pain?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=12)
    args = parser.parse_args()
    write_corpus(args.out, medicines(args.count))
    print(f"{args.count} leaflets written to {args.out}")


if __name__ == "__main__":
    main()

from __future__ import annotations

from pathlib import Path

from ingest.aliases import find_aliases

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def test_the_seed_leaflet_names_its_analogues() -> None:
    aliases = find_aliases(path.read_text(encoding="utf-8") for path in CORPUS.glob("*.txt"))
    assert aliases["baclosan"] == ["baclofen", "liorasal"]
    assert aliases["baclofen"] == ["baclosan", "liorasal"]


def test_explicit_statements_of_each_kind_are_found_and_merged() -> None:
    aliases = find_aliases(
        [
            "Baclofen, sold under the brand names Lioresal and Kemstro, is a muscle relaxant.",
            "The active ingredient of Lioresal tablets is baclofen.",
            "Metformin (brand name: Glucophage) is used in type 2 diabetes.",
            "Analogues of Zyrtec: cetirizine, Zodak (drops).",
        ]
    )
    assert aliases["baclofen"] == ["kemstro", "lioresal"]
    assert aliases["kemstro"] == ["baclofen", "lioresal"]
    assert aliases["glucophage"] == ["metformin"]  # the closing parenthesis ends the statement
    assert aliases["zyrtec"] == ["cetirizine", "zodak"]


def test_no_statement_no_alias() -> None:
    assert find_aliases(["Baclofen (a GABA derivative) relaxes muscles. Take it with water."]) == {}
    assert find_aliases([]) == {}

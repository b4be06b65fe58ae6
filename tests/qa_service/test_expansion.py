from __future__ import annotations

from pathlib import Path

import pytest

from qa_service.expansion import QueryExpander


def test_lay_words_map_to_clinical_terms_across_word_endings() -> None:
    expander = QueryExpander({"too much": ["overdose"], "forgot": ["missed dose"], "kidney": ["renal"]})
    assert expander.expand("What if someone takes too much?").terms == ["overdose"]
    assert expander.expand("My kidneys are weak").terms == ["renal"]
    expansion = expander.expand("I forgot my tablet and took too much")
    assert expansion.terms == ["overdose", "missed dose"]
    assert expansion.known_words == frozenset({"too", "much", "forgot"})
    assert expander.expand("much too late").terms == []  # words of a phrase must be in order


def test_the_shipped_file_loads_and_expands_common_lay_questions() -> None:
    expander = QueryExpander.from_file()
    assert "overdose" in expander.expand("what happens if you take too many").terms
    assert "half-life" in expander.expand("how long does it stay in your body").terms
    assert "lactation" in expander.expand("is it ok when breastfeeding").terms


def test_a_broken_synonym_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "synonyms.toml"
    bad.write_text("[terms]\n\"too much\" = \"overdose\"\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lists of strings"):
        QueryExpander.from_file(bad)
    bad.write_text("[terms\n", encoding="utf-8")
    with pytest.raises(ValueError, match="can't be read"):
        QueryExpander.from_file(bad)


def test_other_names_of_a_medicine_join_the_lexical_query_only() -> None:
    expander = QueryExpander({"too much": ["overdose"]}, names={"baclosan": ["baclofen", "liorasal"]})
    expansion = expander.expand("What if someone takes too much Baclosan?")
    assert expansion.names == ("baclofen", "liorasal")
    assert "baclofen" not in expansion.query  # the embedding sees the question and clinical terms
    assert expansion.lexical_query.endswith("overdose baclofen liorasal")
    assert expander.expand("What is baclofen?").names == ()  # not a known name: nothing added

"""The recorded benchmark figures (`make bench-quality` writes docs/bench/*.json):
the shipped configuration is at least as good as the plain dense baseline of the
same run, on every benchmark, split and metric, and the figures are current."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "eval"))
from bench_quality import config_fingerprint  # noqa: E402

BENCHMARKS = ["gold", "leaflets", "covidqa", "medquad"]
LOWER_IS_BETTER = {"declined", "answerable_declined", "other_leaflet_answers"}


def _figures(name: str) -> dict:
    path = REPO / "docs" / "bench" / f"{name}.json"
    assert path.exists(), f"{path} is missing: run `make bench-quality`"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_figures_are_of_the_shipped_configuration(name: str) -> None:
    assert _figures(name).get("config") == config_fingerprint(), (
        f"docs/bench/{name}.json was measured with another ranking configuration: run `make bench-quality`"
    )


SERVICE_ONLY = {
    ("leaflets", "all"): {"out_of_scope_declined"},
    ("covidqa", "dev"): {"answer_hit@1", "declined"},
    ("covidqa", "test"): {"answer_hit@1", "declined"},
    ("covidqa", "all"): {"answer_hit@1", "declined"},
    ("medquad", "test"): {"answerable_declined", "out_of_scope_declined"},
}
"""Metrics the plain dense baseline has no figure for, by benchmark and split: it never declines
(declined, out_of_scope_declined, answerable_declined) and gives covidqa passages, not answers
(answer_hit@1). Any other metric missing on either side fails the test."""


@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_service_is_at_least_as_good_as_plain_dense_everywhere(name: str) -> None:
    worse = []
    compared = 0
    for split, systems in _figures(name)["metrics"].items():
        service, dense = systems["service"], systems["dense"]
        exempt = SERVICE_ONLY.get((name, split), set())
        assert not dense.keys() - service.keys(), f"{split}: the service has no figure for {dense.keys() - service.keys()}"
        assert service.keys() - dense.keys() == exempt, (
            f"{split}: metrics measured for the service only {sorted(service.keys() - dense.keys())}, "
            f"listed as such {sorted(exempt)}"
        )
        for metric in dense:
            compared += 1
            if metric in LOWER_IS_BETTER:
                if service[metric] > dense[metric] + 1e-9:
                    worse.append(f"{split} {metric}: service {service[metric]:.3f} > dense {dense[metric]:.3f}")
                continue
            if service[metric] < dense[metric] - 1e-9:
                worse.append(f"{split} {metric}: service {service[metric]:.3f} < dense {dense[metric]:.3f}")
    assert compared and not worse, "\n".join(worse)


KNOWN_BELOW_PREVIOUS = {("leaflets", "misspelt", "passage_hit@3")}
"""Where the shipped configuration is below the one it replaces, in the recorded run: one misspelt-name
leaflet question of 300 lost its passage in the top 3 with the retrieval round of issue 22
(docs/evaluation.md). Any other metric below the previous configuration fails the test."""


@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_service_is_at_least_as_good_as_the_configuration_it_replaces(name: str) -> None:
    worse = []
    measured = 0
    for split, systems in _figures(name)["metrics"].items():
        service, previous = systems["service"], systems["previous"]
        assert set(previous) == set(service), f"{split}: the previous configuration was measured on other metrics"
        for metric in previous:
            measured += 1
            lower = metric in LOWER_IS_BETTER
            below = service[metric] > previous[metric] + 1e-9 if lower else service[metric] < previous[metric] - 1e-9
            if below and (name, split, metric) not in KNOWN_BELOW_PREVIOUS:
                worse.append(f"{split} {metric}: service {service[metric]:.3f}, previous {previous[metric]:.3f}")
    assert measured and not worse, "\n".join(worse)

"""QA_ variables no setting reads are named, with the setting meant, by every qa command that reads settings."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from pydantic_settings import EnvSettingsSource

from qa_service.settings import ServiceSettings, environment_names, unknown_environment
from tests.conftest import PYTHON, REPO, clean_env, read_line


def _read(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """What pydantic-settings' environment source takes from an environment holding only ``name=value``."""
    with monkeypatch.context() as env:
        env.setenv(name, value)
        return EnvSettingsSource(ServiceSettings)()


def _settings(monkeypatch: pytest.MonkeyPatch, **environ: str) -> ServiceSettings:
    with monkeypatch.context() as env:
        for name, value in environ.items():
            env.setenv(name, value)
        return ServiceSettings()


def test_the_known_names_are_exactly_what_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    names = environment_names()
    # the groups and their fields, derived from the models (not a hand list)
    assert {"QA_INDEX_DIR", "QA_RETRIEVAL", "QA_RETRIEVAL__SYNONYMS_FILE", "QA_ANSWER__MIN_CONFIDENCE",
            "QA_SERVING__WORKERS", "QA_VECTOR_INDEX__NPROBE"} <= set(names)
    assert len(names) > 60
    for name in names:
        group = any(other.startswith(name + "__") for other in names)  # a group reads a JSON object
        assert _read(name, "{}" if group else "1", monkeypatch), f"pydantic-settings does not read {name}"
    # near misses are not known, and the settings ignore them without a word
    default = _settings(monkeypatch)
    assert _settings(monkeypatch, QA_RETRIEVAL__SYNONYMS_FILE="/elsewhere.toml").retrieval.synonyms_file == Path("/elsewhere.toml")
    assert _settings(monkeypatch, QA_ANSWER__MIN_CONFIDENCE="0.9").answer.min_confidence == 0.9
    for name, value in (("QA_SYNONYMS_FILE", "/elsewhere.toml"), ("QA_MIN_CONFIDENCE", "0.9"),
                        ("QA_ANSWER__MIN_CONFIDANCE", "0.9")):
        assert name not in names and _settings(monkeypatch, **{name: value}) == default, name


def test_each_unknown_name_gets_the_closest_setting() -> None:
    found = dict(unknown_environment({
        "QA_SYNONYMS_FILE": "x", "QA_MIN_CONFIDENCE": "0.3", "QA_ANSWER__MIN_CONFIDANCE": "0.3",
        "QA_ADMIN_TOKN": "t", "QA_ZZZ_NOTHING_NEAR": "1",
        "QA_INDEX_DIR": "i", "qa_answer__min_confidence": "0.3", "QA_ANSWER": "{}", "HOME": "/root",
    }))
    assert found == {
        "QA_SYNONYMS_FILE": "QA_RETRIEVAL__SYNONYMS_FILE",
        "QA_MIN_CONFIDENCE": "QA_ANSWER__MIN_CONFIDENCE",
        "QA_ANSWER__MIN_CONFIDANCE": "QA_ANSWER__MIN_CONFIDENCE",
        "QA_ADMIN_TOKN": "QA_ADMIN_TOKEN",
        "QA_ZZZ_NOTHING_NEAR": None,
    }


def test_qa_serve_warns_of_unknown_settings_before_it_serves(tmp_path: Path) -> None:
    env = clean_env(
        QA_SYNONYMS_FILE=str(tmp_path / "synonyms.toml"),  # the README's old name: ignored by the settings
        QA_ZZZ_NOTHING_NEAR="1",
        QA_RETRIEVAL__FUSION="rrf",
        QA_FEEDBACK_DB=str(tmp_path / "records.sqlite3"),
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "qa_service", "serve", "--index", str(tmp_path / "index"), "--port", "0"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        before = []
        while not (line := read_line(proc.stderr, 120)).startswith("Chat widget demo at"):
            assert line, f"qa serve ended before serving: {before}"
            before.append(line.strip())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert before == [
        "warning: QA_SYNONYMS_FILE is not a setting and is ignored; did you mean QA_RETRIEVAL__SYNONYMS_FILE?",
        'warning: QA_ZZZ_NOTHING_NEAR is not a setting and is ignored (README, "Settings", lists them)',
    ]


@pytest.mark.parametrize("command", [["ask", "What is baclofen?"], ["eval", "eval/gold.jsonl"], ["ingest"]])
def test_every_command_that_reads_settings_warns(command: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "qa_service", *command, "--index", str(tmp_path / "missing" / "index")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=clean_env(QA_CORPUS_DIRS="corpus", QA_CORPUS_DIR=str(tmp_path / "no-corpus")),
    )
    assert result.returncode != 0  # no index (ask, eval), no corpus (ingest): it stops after the warning
    assert result.stderr.splitlines()[0] == (
        "warning: QA_CORPUS_DIRS is not a setting and is ignored; did you mean QA_CORPUS_DIR?"
    ), result.stderr
    assert "Traceback" not in result.stderr

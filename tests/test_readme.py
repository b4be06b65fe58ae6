"""The README is the front door: what it says about settings, error codes and the ``qa`` command is
checked against the code here, both ways where both ways can drift."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic import BaseModel

from ingest.onnx_encoder import default_cache_dir

from qa_service.api.schemas import ErrorCode
from qa_service.cli import app as cli_app
from qa_service.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
PREFIX, NESTED = "QA_", "__"

DESCRIBED = {
    # defaults the README describes in words, with what the code holds for them
    "QA_FEEDBACK_DB": "`feedback.sqlite3` next to the index folder",
    "QA_ENCODER_CACHE_DIR": "`~/.cache/drug-qa/encoders`",
    "QA_CORS_ORIGIN_REGEX": "localhost on any port",
}


def section(title: str) -> str:
    """The README's text under a heading ``title`` (any level), up to the next heading of that level or above."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", README, re.M)
    assert match, f"the README has no section {title!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(README, match.end())
    return README[match.end():end.start() if end else len(README)]


def resolve(variable: str) -> tuple[Any, Any]:
    """The settings field a ``QA_`` variable sets, as (its model, its default); KeyError if there is none."""
    parts = variable.removeprefix(PREFIX).lower().split(NESTED)
    model: type[BaseModel] = ServiceSettings
    default: Any = None
    for i, part in enumerate(parts):
        field = model.model_fields[part]
        default = field.get_default(call_default_factory=True)
        if i < len(parts) - 1:
            model = type(default)
            assert issubclass(model, BaseModel), f"{variable}: {part} is not a group of settings"
    return model, default


def named_variables(cell: str) -> list[str]:
    """The ``QA_`` variables a table cell or sentence names; ``__FIELD`` after a ``QA_GROUP__X`` is that group's."""
    names: list[str] = []
    group = ""
    for token in re.findall(r"`((?:QA_|__)[A-Z0-9_]+)`", cell):
        if token.startswith(PREFIX):
            names.append(token)
            group = token[: token.rindex(NESTED)] if NESTED in token.removeprefix(PREFIX) else ""
        else:
            assert group, f"{token} follows no group: {cell!r}"
            names.append(group + token)
    return names


def settings_rows() -> list[tuple[list[str], str]]:
    """The settings tables' rows: the variables of the first cell, and the default cell."""
    rows = []
    for line in section("Settings").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `QA_"):
            rows.append((named_variables(cells[0]), cells[1]))
    return rows


def matches(stated: str, value: Any) -> bool:
    """Whether the README's ``stated`` default (backticks and remarks in brackets removed) is ``value``."""
    text = re.sub(r"\([^)]*\)", "", stated).replace("`", "").strip()
    if text.startswith("unset"):
        return value is None
    if isinstance(value, bool):
        return text in (("true", "on") if value else ("false", "off"))
    if isinstance(value, int | float):
        try:
            return float(text.replace(",", "")) == float(value)
        except ValueError:
            return False
    if isinstance(value, list):
        return text == "[]" and value == []
    if isinstance(value, Enum):
        return text == str(value.value)
    if isinstance(value, Path) and value.is_absolute():
        return value == REPO / text
    return text == str(value)


def split_defaults(cell: str, count: int) -> list[str]:
    if count == 1:
        return [cell]
    bare = re.sub(r"\([^)]*\)", "", cell)
    for separator in (" / ", ", "):
        parts = [p.strip() for p in bare.split(separator)]
        if len(parts) == count:
            return parts
    raise AssertionError(f"{cell!r} does not give one default for each of {count} variables")


def test_the_readme_documents_settings_in_tables() -> None:
    rows = settings_rows()
    assert len(rows) >= 40 and sum(len(names) for names, _ in rows) >= 50, rows


@pytest.mark.parametrize("variables,cell", settings_rows(), ids=lambda v: v[0] if isinstance(v, list) else "")
def test_every_setting_in_the_tables_exists_with_the_stated_default(variables: list[str], cell: str) -> None:
    for variable, stated in zip(variables, split_defaults(cell, len(variables)), strict=True):
        try:
            _, default = resolve(variable)
        except KeyError:
            pytest.fail(f"the README names {variable}, which is no setting: it would be silently ignored")
        if variable in DESCRIBED:
            assert stated == DESCRIBED[variable], (variable, stated)
            continue
        assert matches(stated, default), f"{variable}: the README says {stated!r}, the code's default is {default!r}"


def test_the_defaults_described_in_words_are_the_code_s(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("QA_FEEDBACK_DB")[1] is None and resolve("QA_ENCODER_CACHE_DIR")[1] is None
    settings = ServiceSettings(index_dir=Path("/srv/qa/index"))
    assert settings.feedback_path() == Path("/srv/qa/feedback.sqlite3")
    regex = re.compile(resolve("QA_CORS_ORIGIN_REGEX")[1])
    assert all(regex.match(o) for o in ("http://localhost:5173", "http://127.0.0.1:8000", "https://localhost"))
    assert not any(regex.match(o) for o in ("https://localhost.example.com", "http://10.0.0.1:80"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == Path("~/.cache/drug-qa/encoders").expanduser()


def test_every_qa_variable_the_readme_names_anywhere_is_a_setting() -> None:
    named = set(named_variables(README)) | set(re.findall(r"\bQA_[A-Z0-9_]*[A-Z0-9]\b", README))
    unknown = set()
    for variable in named:
        try:
            resolve(variable)
        except (KeyError, AssertionError):
            unknown.add(variable)
    assert unknown == set(), "named in the README but no setting (silently ignored if set)"


def test_every_setting_of_the_service_is_in_the_tables() -> None:
    documented = {v for names, _ in settings_rows() for v in names}
    groups = {v.rsplit(NESTED, 1)[0] for v in documented if NESTED in v}
    missing = []
    for name, field in ServiceSettings.model_fields.items():
        variable = PREFIX + name.upper()
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            assert variable in groups, f"the README's tables name no field of the group {variable}"
            continue
        if variable not in documented:
            missing.append(variable)
    assert missing == [], "settings the README's tables don't name"


def readme_error_codes() -> dict[str, set[int]]:
    """The codes the README lists, each with the statuses it is listed under."""
    text = section("HTTP API")
    listing = text[text.index("Codes:"):]
    listing = listing[: listing.index("\n\n")]
    codes: dict[str, set[int]] = {}
    for group in listing.removeprefix("Codes:").split(";"):
        status = re.search(r"\((\d{3})[^)]*\)\s*\.?\s*$", group.strip())
        for code in re.findall(r"`([a-z_]+)`", group):
            codes.setdefault(code, set()).add(int(status.group(1)) if status else 0)
    return codes


def test_every_error_code_the_readme_lists_is_one_the_api_returns_and_the_reverse() -> None:
    listed = set(readme_error_codes())
    returned = {code.value for code in ErrorCode}
    assert listed - returned == set(), "listed in the README, but the API never answers with them"
    assert returned - listed == set(), "the API answers with them, but the README does not list them"


def test_an_error_code_that_is_not_in_the_list_cannot_be_answered() -> None:
    from qa_service.api.errors import error_response, problem  # noqa: PLC0415

    with pytest.raises(ValueError, match="export_disabled"):
        problem(403, "export_disabled", "no such code")
    with pytest.raises(ValueError, match="export_disabled"):
        error_response(403, "export_disabled", "no such code")


def readme_usage() -> dict[str, set[str]]:
    """The options each ``qa`` command shows in the README's usage lines."""
    block = re.search(r"```sh\n(.*?)```", section("Command line"), re.S)
    assert block, "the README's Command line section has no usage block"
    usage: dict[str, set[str]] = {}
    for line in block.group(1).splitlines():
        match = re.match(r"\.venv/bin/qa (\w+)(.*)", line.split("#")[0])
        assert match, f"not a usage line: {line!r}"
        usage.setdefault(match.group(1), set()).update(re.findall(r"--[a-z][a-z0-9-]*", match.group(2)))
    return usage


def test_the_qa_usage_lines_match_the_cli() -> None:
    group = typer.main.get_command(cli_app)
    usage = readme_usage()
    assert set(usage) == set(group.commands), "the README's usage lines and the CLI's commands differ"
    for name, command in group.commands.items():
        options = [param for param in command.params if param.param_type_name == "option" and param.name != "help"]
        spelled = {opt for param in options for opt in [*param.opts, *param.secondary_opts]}
        assert usage[name] - spelled == set(), f"qa {name}: the README shows options it does not take"
        unshown = [param.opts[0] for param in options if not set(param.opts + param.secondary_opts) & usage[name]]
        assert unshown == [], f"qa {name}: options the README's usage lines leave out"

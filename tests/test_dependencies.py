"""What an install takes: serving needs the base set only, the extras hold the rest, and
constraints.txt pins every package within pyproject.toml's bounds (make setup installs with it)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import tomllib
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ingest.extras import EXTRAS
from qa_service.settings import ServiceSettings
from tests.conftest import CORPUS, PYTHON, REPO, clean_env, wait_ready

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
BASE = [Requirement(r) for r in PROJECT["dependencies"]]
OPTIONAL = {extra: [Requirement(r) for r in reqs] for extra, reqs in PROJECT["optional-dependencies"].items()}
FREEZE_OMITS = {"pip", "setuptools", "wheel", "distribute"}
"""What `pip freeze` leaves out unless --all: constraints.txt doesn't pin them."""


def closure(requirements: list[Requirement]) -> dict[str, list[Requirement]]:
    """Every distribution ``requirements`` bring in, as installed here (with the requirements on each)."""
    found: dict[str, list[Requirement]] = {}
    todo = [(req, frozenset()) for req in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
            continue
        name = canonicalize_name(req.name)
        found.setdefault(name, []).append(req)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        for line in metadata.distribution(req.name).requires or []:
            todo.append((Requirement(line), frozenset(req.extras)))
    return found


def modules_of(distributions: set[str]) -> set[str]:
    """The top-level modules these installed distributions provide."""
    return {module for module, dists in metadata.packages_distributions().items()
            if any(canonicalize_name(d) in distributions for d in dists)}


BASE_CLOSURE = set(closure(BASE))
EXTRA_ONLY = set(closure(OPTIONAL["eval"] + OPTIONAL["ingest"])) - BASE_CLOSURE
"""The distributions only the eval and ingest extras bring in: a serving install lacks them."""
INSTALLED = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions()}
NOT_BASE = INSTALLED - BASE_CLOSURE - FREEZE_OMITS - {"drug-qa"}
"""What is installed here (every extra) but not in a base install: pip install drug-qa."""

# Imported by site at start-up, before anything else: as if the blocked packages were not installed,
# their modules can't be imported (ModuleNotFoundError; importlib.util.find_spec says None) and their
# metadata is not found (sentence-transformers, for one, imports datasets when its metadata is there).
BLOCKER = """import importlib.machinery, re, sys
for _name in {modules!r}:
    sys.modules[_name] = None
_DISTRIBUTIONS = set({distributions!r})
_find = importlib.machinery.PathFinder.find_distributions


def _installed(*args, **kwargs):
    for dist in _find(*args, **kwargs):
        if re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower() not in _DISTRIBUTIONS:
            yield dist


importlib.machinery.PathFinder.find_distributions = staticmethod(_installed)
"""


def base_only_env(folder: Path) -> dict[str, str]:
    """clean_env() for a process (and the processes it starts) that sees only the base set's packages:
    a sitecustomize.py on PYTHONPATH hides every other distribution and the modules only they provide."""
    modules = modules_of(NOT_BASE) - modules_of(BASE_CLOSURE | FREEZE_OMITS | {"drug-qa"})
    assert {"ranx", "onnx", "numba", "pandas", "seaborn", "langchain_text_splitters", "pypdf", "selectolax",
            "datasets", "ray", "pytest"} <= modules
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        BLOCKER.format(modules=sorted(modules), distributions=sorted(NOT_BASE)), encoding="utf-8")
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    return env


def test_the_blocker_hides_the_extras_and_nothing_of_the_base_set(tmp_path: Path) -> None:
    probe = ("import importlib.metadata, importlib.util, sys\n"
             "dists = {d.metadata['Name'].lower() for d in importlib.metadata.distributions()}\n"
             "for name, dist in zip(sys.argv[1::2], sys.argv[2::2]):\n"
             "    print(name, importlib.util.find_spec(name) is not None, dist in dists)\n")
    names = {"ranx": "ranx", "onnx": "onnx", "pandas": "pandas", "pypdf": "pypdf", "datasets": "datasets",
             "torch": "torch", "onnxruntime": "onnxruntime", "fastapi": "fastapi",
             "sentence_transformers": "sentence-transformers"}
    result = subprocess.run([PYTHON, "-c", probe, *(x for pair in names.items() for x in pair)], cwd=REPO,
                            env=base_only_env(tmp_path / "site"), capture_output=True, text=True, timeout=60, check=True)
    base = {"torch", "onnxruntime", "fastapi", "sentence_transformers"}
    assert result.stdout.splitlines() == [f"{name} {name in base} {name in base}" for name in names]


def test_the_heavy_evaluation_and_ingest_packages_are_not_in_the_base_set() -> None:
    assert {"ranx", "numba", "pandas", "seaborn", "onnx", "langchain-text-splitters", "pypdf"} <= EXTRA_ONLY
    assert "torch" in BASE_CLOSURE and str(next(r for r in BASE if r.name == "torch").specifier) == "==2.13.0"


def test_extras_module_names_are_pyprojects_extras() -> None:
    """ingest/extras.py names the modules `qa ingest` and `qa eval` check for: those of the extras' packages."""
    for extra, modules in EXTRAS.items():
        provided = modules_of({canonicalize_name(r.name) for r in OPTIONAL[extra]})
        assert set(modules) == provided - {"tests"}, extra


def test_every_qa_service_module_imports_and_qa_ask_answers_with_the_base_set_only(
    seed_settings: ServiceSettings, tmp_path: Path,
) -> None:
    env = base_only_env(tmp_path / "site")
    walk = ("import importlib, pkgutil, qa_service\n"
            "for module in pkgutil.walk_packages(qa_service.__path__, 'qa_service.'):\n"
            "    if not module.name.endswith('__main__'):\n"
            "        importlib.import_module(module.name)\n"
            "print('imported')\n")
    imported = subprocess.run([PYTHON, "-c", walk], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0 and imported.stdout == "imported\n", imported.stderr
    assert subprocess.run([PYTHON, "-m", "qa_service", "--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120).returncode == 0
    asked = subprocess.run([PYTHON, "-m", "qa_service", "ask", "How long does baclofen stay in the body?",
                            "--index", str(seed_settings.index_dir), "--json"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert asked.returncode == 0 and json.loads(asked.stdout)["answered"], asked.stderr


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index as `make index` builds it (qa ingest's default: the ONNX encoder in the bundle)."""
    index = tmp_path_factory.mktemp("onnx") / "index"
    built = subprocess.run([PYTHON, "-m", "qa_service", "ingest", str(CORPUS), "--index", str(index)],
                           cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert built.returncode == 0 and (index / "encoder").is_dir(), built.stderr
    return index


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_qa_serve_answers_with_the_base_set_only(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Both encoders a bundle may hold: qa ingest's ONNX export, and sentence-transformers (the seed index)."""
    index = request.getfixturevalue("onnx_index") if backend == "onnx" else request.getfixturevalue("seed_settings").index_dir
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:  # a file, not a pipe: the server's log lines never block it
        proc = subprocess.Popen([PYTHON, "-m", "qa_service", "serve", "--index", str(index), "--port", "0"],
                                cwd=REPO, env=base_only_env(tmp_path / "site"), text=True,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while not (match := re.search(r"at (http://\S+)/ ", log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        base = match.group(1)
        try:
            ready = wait_ready(base + "/readyz", process=proc)
        except RuntimeError as exc:
            raise AssertionError("\n".join(line for line in log.read_text().splitlines()
                                           if "qa_service.access" not in line)) from exc
        assert ready.json()["status"] == "ready"
        answer = httpx.post(base + "/v1/ask", json={"question": "How long does baclofen stay in the body?"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["answered"], answer.text
        assert httpx.get(base + "/v1/search", params={"q": "overdose"}, timeout=60).json()["results"]
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -signal.SIGTERM)
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize(("command", "extra"), [
    (["eval", "eval/gold.jsonl"], "eval"),
    (["ingest", "corpus"], "ingest"),
])
def test_a_command_without_its_extra_says_what_to_install(command: list[str], extra: str, tmp_path: Path) -> None:
    result = subprocess.run([PYTHON, "-m", "qa_service", *command, "--index", str(tmp_path / "index")],
                            cwd=REPO, env=base_only_env(tmp_path / "site"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: qa {command[0]} needs the '{extra}' extra ("), result.stderr
    missing = result.stderr.split("(", 1)[1].split(" not installed")[0].split(", ")
    assert set(missing) == set(EXTRAS[extra]) - modules_of(BASE_CLOSURE)  # markdown-it-py comes with rich
    assert f"pip install 'drug-qa[{extra}]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "index").exists()


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name), f"not a name==version pin: {line}"
        assert canonicalize_name(name) not in pins, f"pinned twice: {name}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def test_constraints_pin_every_package_within_the_projects_bounds() -> None:
    pins = _pins()
    assert "drug-qa" not in pins
    everything = closure(BASE + [r for reqs in OPTIONAL.values() for r in reqs])
    unpinned = set(everything) - set(pins) - FREEZE_OMITS - {"drug-qa"}
    assert not unpinned, f"constraints.txt lacks {sorted(unpinned)}: make lock"
    for name, requirements in everything.items():
        for req in requirements:  # pyproject's bounds and every package's bounds on its own dependencies
            if name in pins:
                assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} breaks {req}"
    assert pins["torch"].public == "2.13.0"
    assert "ranx" in pins and "onnx" in pins


def test_make_setup_installs_every_extra_with_the_constraints_and_make_lock_rewrites_them() -> None:
    setup = subprocess.run(["make", "-n", "-B", "setup"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    installs = [line for line in setup.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs), setup
    assert "torch==2.13.0" in installs[0]
    extras = re.search(r"-e '\.\[([^\]]+)\]'", installs[1])
    assert extras and set(extras.group(1).split(",")) == set(OPTIONAL), installs[1]
    lock = subprocess.run(["make", "-n", "lock"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "freeze --exclude-editable" in lock and "constraints.txt" in lock and "-c constraints.txt" not in lock
    assert f"-e '.[{extras.group(1)}]'" in lock

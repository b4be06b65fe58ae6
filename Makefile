# Set-up, index, serve and test. Everything installs into .venv with pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

# Nothing may download a model at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup index run test eval bench-quality clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first and pinned, so that no dependency pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Builds the index if it is missing or stale (a no-op when nothing changed).
# Exit status 3 means "built, but some files were skipped": they are listed above it.
index: setup
	$(BIN)/qa ingest corpus --index index || [ $$? -eq 3 ]

run: index
	$(BIN)/qa serve --index index --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest

eval: index
	$(BIN)/qa eval eval/gold.jsonl --index index

# COVID-QA (../shared/bench/covidqa) with the plain dense baseline side by side,
# then the gold set; about 18 minutes on 2 cores (the article index is cached in .bench/).
BENCH ?= ../shared/bench/covidqa
bench-quality: index
	$(BIN)/python eval/bench_quality.py --bench $(BENCH) --out docs/bench/covidqa.json
	$(BIN)/qa eval eval/gold.jsonl --index index

clean:
	rm -rf index .index.* .pytest_cache

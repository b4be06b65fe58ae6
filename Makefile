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

.PHONY: setup lock browser node index run test train eval bench bench-speed bench-scale bench-load bench-quality screenshot clean

# Every extra the tests need; the base set alone is what `qa serve` needs.
EXTRAS := test,train,ray,eval,ingest

setup: $(STAMP)

# Versions come from constraints.txt (make lock refreshes it).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first and pinned, so that no dependency pulls a CUDA build.
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Rewrites constraints.txt with the newest versions pyproject.toml allows: a throwaway venv
# installed as make setup does but without the constraints, then frozen (without the project).
# Run the tests on the result (make test) before committing it.
lock:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --upgrade pip; \
	"$$tmp/venv/bin/pip" install --quiet torch==2.13.0; \
	"$$tmp/venv/bin/pip" install --quiet -e '.[$(EXTRAS)]'; \
	{ sed -n '/^#/p' constraints.txt; "$$tmp/venv/bin/pip" freeze --exclude-editable; } > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" constraints.txt
	@echo "constraints.txt refreshed: review git diff constraints.txt, then make test"

# Builds the index if it is missing or stale (a no-op when nothing changed).
# Exit status 3 means "built, but some files were skipped": they are listed above it.
index: setup
	$(BIN)/qa ingest corpus --index index || [ $$? -eq 3 ]

run: index
	$(BIN)/qa serve --index index --host $(HOST) --port $(PORT)

# The widget's browser tests drive Debian's Chromium (never a browser download of Playwright's own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the widget's browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# The browser tests' JavaScript tools (axe-core for the accessibility checks), exactly as
# package-lock.json pins them; reinstalled only when the lock file changes. Never served.
NODE_STAMP := node_modules/.installed

node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian's nodejs and npm for the accessibility tests (axe-core)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

test: setup browser node
	$(BIN)/python -m pytest

# Refreshes the README's pictures from the browser tests: docs/widget.png (an answer), docs/widget-start.png
# (the empty panel), docs/widget-choice.png (a misspelt name's choices) and docs/admin.png (the review page).
screenshot: setup browser node
	QA_WIDGET_SCREENSHOT=docs/widget.png $(BIN)/python -m pytest -q tests/qa_service/test_widget.py -k see_an_answer
	QA_WIDGET_SCREENSHOT=docs/widget.png $(BIN)/python -m pytest -q tests/qa_service/test_widget_help.py \
	  -k "1280px and (empty_panel or misspelt_name_offers)"
	QA_ADMIN_SCREENSHOT=docs/admin.png $(BIN)/python -m pytest -q tests/qa_service/test_admin_page.py -k "shows_what and desktop"

eval: index
	$(BIN)/qa eval eval/gold.jsonl --index index

# The gold set, COVID-QA and MedQuAD (../shared/bench), each beside the plain dense
# (and BM25) baseline built in the same run; figures to docs/bench/*.json, which
# tests/eval/test_benchmarks.py holds to "at least as good as plain dense".
# About 40 minutes on 2 cores the first time (article indexes are then cached in .bench/).
BENCH ?= ../shared/bench
bench-quality: index
	$(BIN)/python eval/bench_quality.py --shared $(BENCH) --out-dir docs/bench
	$(BIN)/qa eval eval/gold.jsonl --index index

# The speed suite: latency, throughput, cold start and memory of the served seed index
# (about 3 minutes), then the cost curve at 1k, 10k, 100k and 1M chunks (about 45
# minutes on 2 cores, most of it building the 1M-chunk indexes). Both write
# docs/benchmarks.md, every latency beside the floor (one query encode) of the same run.
bench: bench-speed bench-scale

bench-speed: index
	$(BIN)/python eval/bench_speed.py --index index --out docs/benchmarks.md --shared $(BENCH)

bench-scale: setup
	$(BIN)/python eval/bench_scale.py --shared $(BENCH) --out docs/benchmarks.md --plot docs/scale.png

# Load and soak (about 13 minutes): 32 clients for 60 s with the index hot-reloaded at 30 s
# (POST /v1/admin/reload), then 10 minutes of 8 clients with the server's memory sampled
# (SOAK=seconds to shorten it). Writes its section of docs/benchmarks.md, docs/bench/load.json
# and docs/load.png.
SOAK ?= 600
bench-load: index
	$(BIN)/python eval/bench_load.py --index index --out docs/benchmarks.md --plot docs/load.png --soak-seconds $(SOAK)

# Retrains every shipped model with fixed seeds (about 60-90 minutes on 2 cores): the reader's
# training pairs mined by the service, the reader (qa_service/data/reader/), then the reading
# model in qa_service/data/ranker.json. make run and make test never train.
SHARED ?= ../shared
train: setup
	$(BIN)/python eval/reader_data.py --shared $(SHARED)
	$(BIN)/python eval/train_reader.py --write
	$(BIN)/python eval/train_ranker.py --shared $(BENCH) --reading --write

clean:
	rm -rf index .index.* .pytest_cache

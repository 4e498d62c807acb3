# The two commands that matter (README): `make test` and `make bench`.
# Each creates .venv if needed, installs what requirements-dev.txt lists, builds the extension
# in place, then runs. FASTSNN_BUILD_CUDA=auto|1|0 is passed through to setup.py; CUDA_HOME
# defaults to /usr/local/cuda when that toolkit exists.
# `make test-triton-oldest` runs the Triton tests again against the oldest supported torch /
# Triton (requirements-triton-oldest.txt) in a venv of their own, without the extension.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ifneq ($(wildcard /usr/local/cuda/include/cuda_runtime.h),)
export CUDA_HOME ?= /usr/local/cuda
endif
export MAX_JOBS ?= 2

OLDEST_VENV ?= build/venv-triton-oldest
OLDEST_SRC := build/triton-oldest-src
TRITON_TESTS := tests/test_triton.py tests/test_rlif_triton.py tests/test_triton_aot.py

.PHONY: setup build test test-slow test-triton-oldest bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Installing and building happen again only when their inputs change (stamps in the venv): `make
# bench` after `make test` does not rebuild the extension. The build mode is part of the stamp.
SETUP_STAMP := $(VENV)/.fastsnn-setup
BUILD_STAMP := $(VENV)/.fastsnn-build$(FASTSNN_BUILD_CUDA)
EXT_SOURCES := $(shell find csrc -path csrc/emu -prune -o -type f \( -name '*.cpp' -o \
                 -name '*.cu' -o -name '*.h' -o -name '*.cuh' \) -print) setup.py pyproject.toml

$(SETUP_STAMP): requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

$(BUILD_STAMP): $(SETUP_STAMP) $(EXT_SOURCES)
	rm -f $(VENV)/.fastsnn-build*
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

setup: $(SETUP_STAMP)

build: $(BUILD_STAMP)

test: build
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

test-slow: build
	$(PY) -m pytest -q tests --runslow $(PYTEST_ARGS)

$(OLDEST_VENV)/installed: requirements-triton-oldest.txt
	rm -rf $(OLDEST_VENV)
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install -r requirements-triton-oldest.txt
	touch $@

# The tests run from a copy of the sources without the compiled extension (built for .venv's
# torch, it must not be loaded into another torch); they skip what needs it. The warning left
# out is NumPy's about Triton 3.6's interpreter (see requirements-triton-oldest.txt).
test-triton-oldest: $(OLDEST_VENV)/installed
	rm -rf $(OLDEST_SRC) && mkdir -p $(OLDEST_SRC)
	tar -c --exclude='*.so' --exclude=__pycache__ fastsnn tests pyproject.toml \
	    | tar -x -C $(OLDEST_SRC)
	cd $(OLDEST_SRC) && $(abspath $(OLDEST_VENV))/bin/python -m pytest -q $(TRITON_TESTS) \
	    -W "ignore:Conversion of an array with ndim > 0:DeprecationWarning"

bench: build
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf build fastsnn/_C*.so *.egg-info $(VENV)/.fastsnn-*

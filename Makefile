# The two commands that matter (README): `make test` and `make bench`.
# Each creates .venv if needed, installs what requirements-dev.txt lists, builds the extension
# in place, then runs. FASTSNN_BUILD_CUDA=auto|1|0 is passed through to setup.py; CUDA_HOME
# defaults to /usr/local/cuda when that toolkit exists.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ifneq ($(wildcard /usr/local/cuda/include/cuda_runtime.h),)
export CUDA_HOME ?= /usr/local/cuda
endif
export MAX_JOBS ?= 2

.PHONY: setup build test test-slow bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY)
	$(PY) -m pip install -r requirements-dev.txt

build: setup
	$(PY) -m pip install --no-deps --no-build-isolation -e .

test: build
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

test-slow: build
	$(PY) -m pytest -q tests --runslow $(PYTEST_ARGS)

bench: build
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf build fastsnn/_C*.so *.egg-info

# Orate: `make demo` sets everything up and runs the main job; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
RUN_DIR ?= .run
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/orate/v1/*.proto)
FIXTURE_PROTOS := $(wildcard tests/fixtures/proto/orate_fixtures/v1/*.proto)

.PHONY: install proto demo up down status test test-unit test-integration lint bench clean

install: $(STAMP) proto

# torch first, from the local CPU wheel, so nothing later pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps ttskit==0.3.8
	touch $(STAMP)

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto --grpc_python_out=proto $(PROTOS)
	@if [ -n "$(FIXTURE_PROTOS)" ]; then \
	  $(PY) -m grpc_tools.protoc -Iproto -Itests/fixtures/proto --python_out=tests/fixtures/proto \
	    --pyi_out=tests/fixtures/proto $(FIXTURE_PROTOS); fi

up: install
	$(VENV)/bin/orate up --run-dir $(RUN_DIR)

status:
	$(VENV)/bin/orate status --run-dir $(RUN_DIR)

down:
	$(VENV)/bin/orate down --run-dir $(RUN_DIR)

demo: install
	$(VENV)/bin/orate demo --run-dir $(RUN_DIR)

test: install
	$(VENV)/bin/pytest -q -rs tests

test-unit: install
	$(VENV)/bin/pytest -q tests/unit

test-integration: install
	$(VENV)/bin/pytest -q -rs tests/integration

lint: install
	$(VENV)/bin/ruff check .

# Benchmarks print tables and write loadtests/results/<name>.json; they never fail on speed.
bench: install
	$(PY) loadtests/spine_overhead.py
	$(PY) loadtests/broker_growth.py
	$(PY) loadtests/data_throughput.py
	$(PY) loadtests/face_vqvae_bench.py --threads 1
	$(PY) loadtests/asr_sactc_bench.py

clean:
	rm -rf $(RUN_DIR) proto/orate/v1/*_pb2*.py* tests/fixtures/proto/orate_fixtures/v1/*_pb2*.py*

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

.PHONY: install system-packages sources k8s-tools proto demo up down status test test-unit test-integration lint \
  bench images clean

# Debian packages: offline voices (shared/voices.py), held-out real evaluation audio (shared/evalsets.py),
# real training speech and English text for asr-sactc (codec2-examples, alsa-utils, fortunes),
# Mesa's software OpenGL through EGL for the preview renderer (shared/render; glcontext needs libgl1 too),
# npm to fetch the Silero VAD weights' and helm's packages (shared/sources.py) unless an npm is already on
# PATH (a Node.js install of its own), and podman, buildah and mmdebstrap to build the service images.
SYSTEM_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
  pocketsphinx-testdata transcriber codec2-examples alsa-utils fortunes fortunes-min libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 podman buildah mmdebstrap \
  $(if $(shell command -v npm),,npm)

install: system-packages $(STAMP) proto sources k8s-tools

# apt-get as root; anyone else is stopped here, before anything starts, with the exact command to run.
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages; run this first:"; \
	    echo "  sudo apt-get install -y --no-install-recommends" $$missing; \
	    exit 1; \
	  fi; \
	fi

# torch first, from the local CPU wheel, so nothing later pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps ttskit==0.3.8
	touch $(STAMP)

# Registry archives whose bundled real data the evaluation sets and the gesture and capture generators read
# (downloaded into ~/.cache/orate/sources, never installed).
sources: $(STAMP)
	$(PY) -m shared.sources

# helm (from an npm tarball) and checkov (in a venv of its own: it pins older boto3 and packaging) for the
# chart tests, under ~/.cache/orate/tools.
k8s-tools: $(STAMP)
	$(PY) charts/k8s_tools.py

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
	$(PY) loadtests/broker_choice.py
	$(PY) loadtests/soak.py --minutes 30
	$(PY) loadtests/data_throughput.py
	$(PY) loadtests/face_vqvae_bench.py --threads 1
	$(PY) loadtests/asr_sactc_bench.py

# One image per service from a Debian base made by mmdebstrap (root) and one shared build stage
# (deploy/images/builder.Dockerfile); `make images VARIANT=gpu` for the CUDA model images. Sizes go to
# loadtests/results/images.json.
VARIANT ?= cpu
images:
	VARIANT=$(VARIANT) nice -n 19 deploy/images/build.sh

clean:
	rm -rf $(RUN_DIR) proto/orate/v1/*_pb2*.py* tests/fixtures/proto/orate_fixtures/v1/*_pb2*.py*

# The README's two commands: `make serve` and `make test`. Both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_BIN := $(shell scripts/node-path.sh 2>/dev/null)
export PATH := $(CURDIR)/node_modules/.bin:$(NODE_BIN):$(PATH)
PY := inference/.venv/bin/python

.PHONY: help setup setup-test serve test lint typecheck test-python test-ts fixtures bench bench-inference bench-backends bench-load bench-collections bench-retrieval

help:
	@echo "make serve   install what is missing, start AkiDB (config: akidb.yaml if present)"
	@echo "make test    install what is missing, lint + type-check both languages, run every test"
	@echo "make bench   run the benchmarks and record them in docs/benchmarks.md"

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

serve: setup
	@bin/akidb serve $(if $(wildcard akidb.yaml),--config akidb.yaml,)

lint: setup-test
	@$(MAKE) --no-print-directory -s _lint

_lint:
	cd inference && .venv/bin/ruff check --config pyproject.toml . ../bench && .venv/bin/ruff format --check --config pyproject.toml . ../bench
	npx biome check .
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true redocly lint --format=stylish openapi.yaml
	scripts/generate-types.sh --check

typecheck: setup-test
	@$(MAKE) --no-print-directory -s _typecheck

_typecheck:
	cd inference && .venv/bin/mypy && .venv/bin/mypy ../bench
	npm run -s typecheck

fixtures: setup-test
	cd inference && .venv/bin/python -m tests.fixtures.build

test-python: fixtures
	cd inference && .venv/bin/pytest -q

test-ts: fixtures
	npx vitest run

test: setup-test
	@$(MAKE) --no-print-directory _lint _typecheck
	@$(MAKE) --no-print-directory test-python test-ts

bench: bench-inference bench-backends bench-load bench-collections bench-retrieval

bench-inference: setup-test
	$(PY) bench/inference.py

bench-backends: setup-test
	$(PY) bench/backends.py

# LOAD_ARGS="--only onnx": the ONNX backend through the control plane at the real shapes (needs
# `cd inference && .venv/bin/python -m tests.fixtures.build --real-size` once).
bench-load: fixtures
	node bench/load.ts $(LOAD_ARGS)

# The peers (hnswlib, Chroma) get a venv of their own, never the project lock; see docs/benchmarks.md.
BENCH_PEERS := .tools/bench-peers
BENCH_PYTHON ?= $(BENCH_PEERS)/bin/python
$(BENCH_PEERS)/bin/python:
	python3 -m venv $(BENCH_PEERS)
	$(BENCH_PEERS)/bin/pip install --quiet hnswlib==0.8.0 chromadb==1.5.9 numpy

bench-collections: setup-test $(BENCH_PEERS)/bin/python
	node bench/collections.ts --python $(BENCH_PYTHON)

# Needs apt's English long descriptions: `apt-get update -o Acquire::Languages=en` once (as root).
bench-retrieval: setup-test
	$(PY) bench/retrieval_data.py
	$(PY) bench/retrieval.py

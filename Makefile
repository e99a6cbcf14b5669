SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# The two commands of the README, and the steps they are made of.
BIN := .venv/bin

.PHONY: run test bootstrap lint typecheck unit down

## run: install what is missing, start BookVault in the background and load the sample data
run: bootstrap
	state_dir="$$(scripts/state-dir.sh)"; \
	$(BIN)/bookvault up --detach --state-dir "$$state_dir"; \
	$(BIN)/bookvault seed --state-dir "$$state_dir"; \
	echo; \
	echo "BookVault is running with sample data; the gateway is http://127.0.0.1:8080"; \
	echo "  $(BIN)/bookvault status --state-dir $$state_dir"; \
	echo "  $(BIN)/bookvault token --member 1 --state-dir $$state_dir"; \
	echo "  $(BIN)/bookvault down --state-dir $$state_dir    (or: make down)"

## test: install what is missing, then formatting, lint, types, import contracts and every test
test: bootstrap lint typecheck
	$(BIN)/pytest

bootstrap:
	scripts/bootstrap.sh

lint:
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

typecheck:
	$(BIN)/mypy
	$(BIN)/lint-imports

## unit: the tests that need no PostgreSQL or Redis
unit:
	$(BIN)/pytest tests/unit

down:
	$(BIN)/bookvault down --state-dir "$$(scripts/state-dir.sh)"

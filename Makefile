# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each installs what it needs first and is quick when it is already there.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SOL_STAMP := contracts/ethereum/build/.stamp
EXTRAS := ethereum,utxo,elements,fabric,agent,test,docker,bench,lint,postgres
PYTEST_ARGS ?=

.DEFAULT_GOAL := setup
-include mk/*.mk

.PHONY: setup contracts lint test test-drills test-unit test-fast demo up down clean
setup: $(PY_STAMP) $(NODE_STAMP) contracts $(EXTRA_SETUP)

$(PY_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==26.3"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

$(NODE_STAMP): package.json package-lock.json
	# The lock lists anvil's optional package for every OS, so `npm install` takes exactly the
	# locked versions and leaves the tracked lock file as it is (a fresh clone stays clean).
	npm install --no-audit --no-fund --loglevel=error
	touch $@

contracts: $(NODE_STAMP)
	node contracts/ethereum/build.mjs

lint: setup
	$(BIN)/ruff check core adapters agent tests docs/profile
	$(BIN)/ruff format --check core adapters agent tests docs/profile
	$(BIN)/mypy
	# The import layers and the no-cycle rule (pyproject.toml, [tool.importlinter]; docs/design.md, "Layers").
	$(BIN)/lint-imports --no-cache

test: setup lint $(TEST_SETUP)
	# The Fabric chaincode's rules on an in-memory ledger (the network tests are in tests/fabric).
	$(MAKE) --no-print-directory fabric-cc-test
	# One crash drill per platform here; the rest of the matrix (minutes a scenario): `make test-drills`.
	$(BIN)/python -m pytest -m "not fabric_drills and not matrix" $(PYTEST_ARGS)

## The whole crash-drill matrix (every pair and outcome), beyond the one drill per platform in `make test`
test-drills: setup
	$(BIN)/python -m pytest -m "matrix or fabric_drills" $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not fabric_drills" $(PYTEST_ARGS)

demo: setup
	$(BIN)/dvp demo

up: setup
	$(BIN)/dvp up

down:
	$(BIN)/dvp down

clean:
	rm -rf $(VENV) node_modules contracts/ethereum/build .dvp reports

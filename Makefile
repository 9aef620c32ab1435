# rag-finetune-operator: one entry point for users, developers and CI.
# Area-specific targets live in mk/*.mk (chart, control plane, images, bench, ...).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Binaries that are slow to build or fetch are cached outside the clone, keyed by version.
CACHE_DIR ?= $(HOME)/.cache/rag-finetune-operator
export RAG_CACHE_DIR := $(CACHE_DIR)
PYTEST_ARGS ?=

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[job,operator,dev]'
	touch $@

.PHONY: install
install: $(VENV)/.installed ## create .venv/ and install the job, the operator and the dev tools

.PHONY: test
test: install ## run the whole test suite (fetches helm/kubectl and builds the control plane once, cached)
	@$(MAKE) --no-print-directory tools toolchain \
		|| echo "make test: toolchain incomplete (see above); the tests that need it skip and say why"
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: demo
demo: install ## fine-tune a tiny RAG model with and without retrieval on a generated knowledge base (local Ray cluster)
	$(PY) -m rag_job demo --out out/demo

.PHONY: clean
clean: ## remove outputs (keeps .venv and the tool cache)
	rm -rf out .pytest_cache

-include mk/*.mk

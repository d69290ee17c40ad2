# Two commands do all the set-up on a fresh machine:
#   make demo   - install COMPASS in .venv and open it on the built-in demo incident
#   make test   - install COMPASS, its test dependencies, Prometheus and Alertmanager, then run the tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench

$(BIN)/compass: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/compass

install: $(BIN)/compass
	@# bytecode now, so no run compiles the sources (nor pays for it where Python writes none)
	$(BIN)/python -m compileall -q compass_tui

demo: install
	$(BIN)/compass demo

test: install
	bash scripts/ensure-prometheus
	bash scripts/ensure-alertmanager
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/accuracy.py

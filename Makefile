# The two commands a newcomer needs: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/replaybench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/replaybench     ## set up, ingest the demo logs, replay them, print the report's path
	$(BIN)/replaybench demo

test: $(BIN)/replaybench     ## lint, then the tests (real DuckDB, the local fleet on loopback, Prefect's harness)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(BIN)/replaybench
	$(BIN)/ruff check .

clean:
	rm -rf .replaybench data/warehouse.duckdb data/warehouse.duckdb.wal reports/*.html

# The two commands a newcomer needs: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: demo test test-e2e lint lock clean

# the versions the tests ran on (requirements.lock), then replaybench itself on top of them
$(BIN)/replaybench: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/replaybench     ## set up, ingest the demo logs, replay them, print the report's path
	$(BIN)/replaybench demo

test: $(BIN)/replaybench     ## lint, then the tests (real DuckDB, the local fleet on loopback, Prefect's harness); not the end-to-end nights
	$(BIN)/ruff check .
	FUZZ_RECORDS=1000 $(BIN)/python -m pytest -m "not e2e" -n auto --dist loadfile

test-e2e: $(BIN)/replaybench ## the end-to-end nights and backfills, and the fuzz tests at their full budget (CI runs both targets)
	$(BIN)/python -m pytest -m "e2e or fuzz" -n auto --dist loadfile

lint: $(BIN)/replaybench
	$(BIN)/ruff check .

lock: $(BIN)/replaybench     ## re-resolve requirements.lock: the newest versions within pyproject's bounds
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf .replaybench data/*.duckdb data/*.duckdb.wal data/*.duckdb.lock data/*.duckdb.runs \
	       data/*.duckdb.shards data/*.duckdb.journal reports/*.html

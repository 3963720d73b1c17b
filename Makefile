# Everything a fresh machine needs comes from here: a virtual environment, the package, the
# Kafka broker jars (Maven Central), then the demo or the tests against that real broker.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

demo: install kafka-fetch
	$(BIN)/packflow demo

.PHONY: demo test install kafka-fetch kafka-start kafka-stop topics lint typecheck compose-check clean bench soak faults

test: install kafka-fetch
	$(BIN)/pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev,torch,otel]'
	touch $(STAMP)

# The fault suite in full (10 kills, 100k records per scenario; docs/RELIABILITY.md), with
# its table in faults-report.md. `make test` runs the same scenarios in a short form.
faults: install kafka-fetch
	rm -f faults-report.jsonl
	PACKFLOW_FAULTS=full PACKFLOW_FAULTS_REPORT=faults-report.jsonl $(BIN)/pytest tests/faults -s
	$(BIN)/python -m tests.faults.report faults-report.jsonl | tee faults-report.md

# Benchmarks (docs/PERFORMANCE.md): reports only, nothing asserted. A quick run:
#   make bench BENCH_ARGS="--records 50000 --rounds 1 --latency-seconds 5"
bench: install kafka-fetch
	$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev,torch,otel,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

#   make soak SOAK_ARGS="--records 1000000"
soak: install kafka-fetch
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

kafka-fetch: install
	$(BIN)/packflow kafka fetch

kafka-start: install
	$(BIN)/packflow kafka start

kafka-stop: install
	$(BIN)/packflow kafka stop

topics: install
	$(BIN)/packflow topics create

lint: install
	$(BIN)/ruff check packflow consumer backends tests bench
	$(BIN)/ruff format --check packflow consumer backends tests bench

typecheck: install
	$(BIN)/mypy

compose-check:
	docker compose config --quiet

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
